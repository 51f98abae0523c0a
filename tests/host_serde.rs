//! A host that depends on this crate keeps serde_json as it documents itself: this test is compiled
//! against the same serde_json, with the features this crate turns on, so Cargo's feature
//! unification cannot hide what a host would see.

use serde::Deserialize;

/// The four-line host of the issue: an internally tagged enum holding an `f64`. serde buffers the
/// fields of a tagged enum, and under serde_json's `arbitrary_precision` a buffered number is a
/// map, so this failed with `invalid type: map, expected f64` once this crate was a dependency.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(tag = "type")]
enum Reading {
    Temperature { celsius: f64 },
    Count { n: u64 },
}

#[test]
fn a_hosts_tagged_enum_with_a_float_decodes() {
    let reading: Reading =
        serde_json::from_str(r#"{"type": "Temperature", "celsius": 21.5}"#).expect("decodes");
    assert_eq!(reading, Reading::Temperature { celsius: 21.5 });
    let reading: Reading = serde_json::from_str(r#"{"type": "Count", "n": 7}"#).expect("decodes");
    assert_eq!(reading, Reading::Count { n: 7 });
    // The library is linked in, so its features are the ones in force here.
    assert!(daemon_state::record::Record::from_slice(b"{}").is_ok());
}
