//! Hostile inputs, kept: every state file under `tests/fixtures/fuzz/` and every request stream
//! under `tests/fixtures/fuzz/serve/` (inputs the fuzz loop failed on, and a hand-made corpus of the
//! hostile shapes SPEC section 9 names) goes through its fuzz oracle, and a short burst of
//! generated inputs keeps the generators honest. The long run is
//! `cargo run --release --example fuzz_state -- --inputs 1000000 --serve-inputs 250000`, as CI runs it.
//!
//! The state-file oracle (`examples/fuzz_state/harness.rs`): no panic, the engine opens, a corrupt
//! file is quarantined byte for byte and never silently emptied, a file that parses is not rewritten
//! by opening it, the file left after a few events parses, and unknown keys survive. The serve
//! oracle (`examples/fuzz_state/serve.rs`): no panic, one reply with a boolean `ok` per request
//! line and none per blank line, and the file left parses with its unknown keys.

#[path = "../examples/fuzz_state/generate.rs"]
mod generate;
#[path = "../examples/fuzz_state/harness.rs"]
mod harness;
#[path = "../examples/fuzz_state/serve.rs"]
mod serve;

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
    // Nesting: Python reads about 1,000 levels, and so does the loader; the object and 999 arrays
    // make 1,000. serde_json's own limit of 128 no longer applies to the file.
    check_fixture("deep-array-126.json", Parsed);
    check_fixture("deep-array-127.json", Parsed);
    check_fixture("deep-array-999.json", Parsed);
    check_fixture("deep-array-1000.json", Quarantined);
    check_fixture("deep-object-unclosed.json", Quarantined);
    // Python's literals and lone surrogate escapes load, and unknown keys keep them.
    check_fixture("nan-and-infinity.json", Parsed);
    check_fixture("lone-surrogate-keys.json", Parsed);
    // Numbers past u64 and f64 are kept digit for digit and read leniently.
    check_fixture("numbers-beyond-f64.json", Parsed);
    // Invalid UTF-8 is corruption (a surrogate encoded in the bytes too, as Python's UTF-8 decoder
    // refuses it); a lone surrogate escape is JSON that Python reads.
    check_fixture("invalid-utf8-surrogate-in-id.json", Quarantined);
    check_fixture("invalid-utf8-truncated-at-end.json", Quarantined);
    check_fixture("lone-surrogate-escape.json", Parsed);
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

/// The files in `dir` whose names end in `.extension`, sorted.
fn kept(dir: PathBuf, extension: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixtures")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == extension))
        .collect();
    paths.sort();
    paths
}

#[test]
fn every_kept_state_file_passes_the_oracle() {
    let paths = kept(fixtures(), "json");
    assert!(paths.len() >= 15, "the corpus is missing: {paths:?}");
    for path in paths {
        let bytes = std::fs::read(&path).expect("input");
        if let Err(rule) = check(&bytes) {
            panic!("{}: {rule}", path.display());
        }
    }
}

#[test]
fn every_kept_request_stream_passes_the_serve_oracle() {
    let paths = kept(fixtures().join("serve"), "ndjson");
    assert!(paths.len() >= 3, "the corpus is missing: {paths:?}");
    for path in paths {
        let bytes = std::fs::read(&path).expect("input");
        if let Err(rule) = serve::check(&bytes) {
            panic!("{}: {rule}", path.display());
        }
    }
}

#[test]
fn an_over_long_line_is_refused_and_the_stream_goes_on() {
    let long = format!("{{\"type\": \"status\", \"pad\": \"{}\"}}", "x".repeat(1 << 20));
    let stream = format!("{{\"type\": \"status\"}}\n{long}\n{{\"type\": \"status\"}}\n");
    assert_eq!(serve::check(stream.as_bytes()), Ok(()));
}

#[test]
fn the_oracle_catches_a_corrupt_file_read_as_empty() {
    // The negative control: a store that reads a corrupt file as an empty record, without
    // quarantine, must fail the oracle, or the oracle has no teeth.
    for name in ["empty.json", "deep-array-1000.json", "invalid-utf8-truncated-at-end.json"] {
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

#[test]
fn a_burst_of_generated_request_streams_passes() {
    let mut rng = Rng::new(11);
    for n in 0..200 {
        let bytes = serve::input(&mut rng);
        if let Err(rule) = serve::check(&bytes) {
            panic!("stream {n}: {rule}\n{}", String::from_utf8_lossy(&bytes));
        }
    }
}

#[test]
fn the_oracle_catches_an_unreadable_moment() {
    // The negative control for the range rule: a moment the engine formatted past year 9999 or
    // at year 0 fails the oracle, unless the input already held it.
    let written = |text: &str| {
        let doc = format!("{{\"fsm_transition_at\": \"{text}\"}}");
        daemon_state::record::Record::from_slice(doc.as_bytes()).unwrap()
    };
    for text in ["+10000-01-01T00:04:59+00:00", "0000-12-31T23:59:59+00:00"] {
        assert!(harness::moments_readable(None, &written(text)).is_err(), "{text}");
        let held = written(text);
        assert!(harness::moments_readable(Some(&held), &written(text)).is_ok(), "{text}");
    }
    assert!(harness::moments_readable(None, &written("9999-12-31T23:59:59.999999+00:00")).is_ok());
}
