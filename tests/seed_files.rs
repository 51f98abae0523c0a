//! State files written in the seed's format, legacy values and all, load and round-trip through the
//! engine with nothing lost: unknown keys verbatim and in order, wrong-typed known keys untouched
//! until the engine has a reason to rewrite them.

use chrono::{TimeZone, Utc};
use daemon_state::engine::Engine;
use daemon_state::event::{Event, EventKind};
use daemon_state::record::Record;
use daemon_state::table::StateName;
use indexmap::IndexMap;
use serde_json::Value;

/// A state file's members, keys in the file's order.
fn load(bytes: &[u8]) -> IndexMap<String, Value> {
    let record = Record::from_slice(bytes).unwrap();
    record.iter().map(|(key, value)| (key.to_owned(), value.clone())).collect()
}

/// Opens a copy of `fixture`, sends `event`, and returns the file before and after.
fn round_trip(
    fixture: &str,
    event: EventKind,
) -> (IndexMap<String, Value>, IndexMap<String, Value>, String, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".daemon-state.json");
    let original =
        std::fs::read(format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    std::fs::write(&path, &original).unwrap();
    let (mut engine, report) = Engine::open(&path).unwrap();
    assert!(report.recovery.is_none());
    let at = Utc.with_ymd_and_hms(2026, 4, 18, 12, 0, 0).unwrap();
    let _ = engine.handle(Event::new(at, event)).unwrap();
    let raw = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
    (load(&original), load(raw.as_bytes()), raw, engine)
}

#[test]
fn legacy_values_survive_a_write_untouched() {
    let (before, after, raw, _engine) = round_trip("seed-legacy.json", EventKind::Pause);
    // The engine had a reason to rewrite only scheduler_paused (and to add its own keys).
    for (key, value) in &before {
        if key != "scheduler_paused" {
            assert_eq!(after.get(key), Some(value), "{key} changed");
        }
    }
    assert_eq!(after["scheduler_paused"], Value::Bool(true));
    let order: Vec<&String> = after.keys().filter(|k| before.contains_key(*k)).collect();
    let original: Vec<&String> = before.keys().collect();
    assert_eq!(order, original, "known and unknown keys keep their order");
    assert!(
        raw.contains("123456789012345678901234567890"),
        "huge numbers are kept digit for digit"
    );
}

#[test]
fn legacy_values_are_read_as_the_spec_says() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".daemon-state.json");
    std::fs::copy(format!("{}/tests/fixtures/seed-legacy.json", env!("CARGO_MANIFEST_DIR")), &path)
        .unwrap();
    let (engine, report) = Engine::open(&path).unwrap();
    let view = engine.data().view();
    // "yes" is true for the seed's `if value:` and so paused (fix: one reading of a stored flag
    // everywhere; it was read as not paused), with a warning; the string "5" reads as the seed's
    // int("5").
    assert!(view.paused);
    assert_eq!(view.rem_cycle_count, 5);
    assert_eq!(view.window.map(|w| (w.start, w.duration)), Some((44, 16)));
    assert!(
        report.warnings.iter().any(|w| w.starts_with("scheduler_paused")),
        "{:?}",
        report.warnings
    );
    // A non-string last_digest_shown_at counts as never shown: the digest is delivered.
    let mut engine = engine;
    let at = Utc.with_ymd_and_hms(2026, 4, 18, 12, 0, 0).unwrap();
    let outcome = engine
        .handle(Event::new(at, EventKind::Recall { session_id: Some("sess-legacy-true".into()) }))
        .unwrap();
    assert_eq!(outcome.first_turn, Some(true), "a legacy `true` counts as marked");
    assert_eq!(
        outcome.digest.unwrap().get("main_insight_text").unwrap(),
        "today's unifying insight é☃"
    );
}

#[test]
fn a_mid_night_seed_file_boots_to_wake_keeping_unknown_keys() {
    let (before, after, _, engine) = round_trip("seed-minimal.json", EventKind::Boot);
    assert_eq!(engine.state(), StateName::Wake);
    assert_eq!(after["fsm_state"], "WAKE");
    assert_eq!(after["unknown_first"], before["unknown_first"]);
    assert_eq!(after["pending_digest"], before["pending_digest"]);
    assert_eq!(after.keys().next().map(String::as_str), Some("fsm_state"));
}
