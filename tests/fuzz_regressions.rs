//! Hostile state files, kept: every input under `tests/fixtures/fuzz/` (crash inputs the fuzz loop
//! found, and a hand-made corpus of the hostile shapes SPEC section 9 names) goes through the fuzz
//! oracle, and a short burst of generated inputs keeps the generators honest. The long run is
//! `cargo run --release --example fuzz_state` (CI runs a million inputs).
//!
//! The oracle (`examples/fuzz_state/harness.rs`): no panic, the engine opens, a corrupt file is
//! quarantined byte for byte and never silently emptied, a file that parses is not rewritten by
//! opening it, the file left after a few events parses, and unknown keys survive.

#[path = "../examples/fuzz_state/generate.rs"]
mod generate;
#[path = "../examples/fuzz_state/harness.rs"]
mod harness;

use std::path::PathBuf;

use daemon_state::store::Broken;
use harness::{Rng, Verdict, check, check_with};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).expect("fixture")
}

#[track_caller]
fn check_fixture(name: &str, expected: Verdict) {
    assert_eq!(check(&fixture(name)), Ok(expected), "{name}");
}

#[test]
fn each_hostile_shape_is_read_or_quarantined() {
    use Verdict::{Parsed, Quarantined};
    // Nesting: serde_json reads 127 levels and no more; the object and 126 arrays make 127.
    check_fixture("deep-array-126.json", Parsed);
    check_fixture("deep-array-127.json", Quarantined);
    check_fixture("deep-object-unclosed.json", Quarantined);
    // Numbers past u64 and f64 are kept digit for digit and read leniently.
    check_fixture("numbers-beyond-f64.json", Parsed);
    // Invalid UTF-8, raw or as a lone surrogate escape, is corruption.
    check_fixture("invalid-utf8-surrogate-in-id.json", Quarantined);
    check_fixture("invalid-utf8-truncated-at-end.json", Quarantined);
    check_fixture("lone-surrogate-escape.json", Quarantined);
    // Duplicate keys: the last one wins, as in Python.
    check_fixture("duplicate-known-keys.json", Parsed);
    check_fixture("wrong-types-everywhere.json", Parsed);
    check_fixture("long-session-ids.json", Parsed);
    check_fixture("nul-and-controls.json", Parsed);
    check_fixture("session-starts-overflow.json", Parsed);
    check_fixture("extreme-timestamps.json", Parsed);
    check_fixture("empty.json", Quarantined);
    check_fixture("zero-filled.json", Quarantined);
}

#[test]
fn every_kept_input_passes_the_oracle() {
    let mut names: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    names.sort();
    assert!(names.len() >= 15, "the corpus is missing: {names:?}");
    for path in names {
        let bytes = std::fs::read(&path).expect("input");
        if let Err(rule) = check(&bytes) {
            panic!("{}: {rule}", path.display());
        }
    }
}

#[test]
fn the_oracle_catches_a_corrupt_file_read_as_empty() {
    // The negative control: a store that reads a corrupt file as an empty record, without
    // quarantine, must fail the oracle, or the oracle has no teeth.
    for name in ["empty.json", "deep-array-127.json", "invalid-utf8-truncated-at-end.json"] {
        let result = check_with(&fixture(name), Some(Broken::CorruptReadsAsEmpty));
        assert!(result.is_err(), "{name}: the broken store passed: {result:?}");
    }
}

#[test]
fn a_burst_of_generated_inputs_passes() {
    let mut rng = Rng::new(7);
    let mut seen = [0usize; generate::FAMILIES.len()];
    let (mut parsed, mut quarantined) = (0, 0);
    for n in 0..600 {
        let (family, bytes) = generate::input(&mut rng);
        seen[family] += 1;
        match check(&bytes) {
            Ok(Verdict::Parsed) => parsed += 1,
            Ok(Verdict::Quarantined) => quarantined += 1,
            Err(rule) => panic!("input {n} ({}): {rule}", generate::FAMILIES[family]),
        }
    }
    assert!(seen.iter().all(|&count| count > 0), "a family never came up: {seen:?}");
    assert!(parsed > 100 && quarantined > 100, "{parsed} parsed, {quarantined} quarantined");
}
