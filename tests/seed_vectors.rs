//! Replays the seed's recorded operations (`tests/fixtures/seed-ops.jsonl`, produced by running the
//! Python seed on random seed-format state files) through the library functions the command line
//! uses, and compares each step's output and the value of every key the seed left in the file.
//!
//! Values are compared by their serialized text, so timestamps must match byte for byte and object
//! keys must come in the seed's order. Cases where this product changes the seed on purpose (a
//! `last_digest_shown_at` in the future, ties at the 100-entry cap) are not in the file.

use daemon_state::digest;
use daemon_state::record::Record;
use daemon_state::sessions;
use daemon_state::timestamp::{self, Timestamp};
use serde_json::{Map, Value};

mod ordered;
use ordered::Ordered;

const VECTORS: &str = include_str!("fixtures/seed-ops.jsonl");

/// Runs one command on the document at `now`, as the command line does: what it prints, and
/// whether the document changed (only then is it written back).
fn run(state: &mut Record, command: &[&str], now: Timestamp) -> (Value, bool) {
    match command {
        ["sessions", "open", id] => {
            let changed = sessions::open_in(state, id, now);
            (Value::Null, changed)
        }
        ["sessions", "consume", id] => {
            let consumed = sessions::consume_in(state, id);
            (Value::Bool(consumed), consumed)
        }
        ["sessions", "prune", "--ttl-secs", secs] => {
            let secs: f64 = secs.parse().expect("a number of seconds");
            let dropped = sessions::reap_in(state, now, secs);
            let changed = !dropped.is_empty();
            (Value::from(dropped), changed)
        }
        ["digest", "take"] => {
            let taken = digest::take(state, now);
            let delivered = taken.is_some();
            (taken.map_or(Value::Null, |d| d.to_value()), delivered)
        }
        other => panic!("unknown command {other:?}"),
    }
}

fn text(value: &Value) -> String {
    serde_json::to_string(value).expect("serializable")
}

fn field<'a>(object: &'a Value, key: &str) -> &'a Value {
    object.get(key).unwrap_or_else(|| panic!("no {key:?} in {object}"))
}

#[test]
fn every_recorded_step_matches_the_seed() {
    let mut cases = 0;
    let mut steps = 0;
    for line in VECTORS.lines().filter(|line| !line.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("a JSON line");
        // The same line with its objects' keys in the seed's order, for comparing text.
        let ordered_case = Ordered::parse(line);
        let number = field(&case, "case");
        let initial = ordered_case.get("initial_state").expect("an initial state").text();
        // The file on disk between steps: each step starts from what the previous one left there.
        let mut on_disk = Record::from_slice(initial.as_bytes())
            .unwrap_or_else(|e| panic!("case {number}: the initial state is not an object: {e}"));
        let Value::Array(recorded) = field(&case, "steps") else {
            panic!("case {number}: no steps");
        };
        let ordered_steps = ordered_case.get("steps").map_or(&[][..], Ordered::items);
        for (index, (step, ordered_step)) in recorded.iter().zip(ordered_steps).enumerate() {
            let now = field(step, "now").as_str().and_then(timestamp::parse).expect("a step's now");
            let command: Vec<&str> = match field(step, "command") {
                Value::Array(words) => words.iter().filter_map(Value::as_str).collect(),
                other => panic!("case {number} step {index}: command {other}"),
            };
            let mut state = on_disk.clone();
            let (output, changed) = run(&mut state, &command, now);
            let at = format!("case {number} step {index} ({})", command.join(" "));
            assert_eq!(text(&output), text(field(step, "output")), "{at}: output");
            if changed {
                on_disk = state;
            } else {
                assert_eq!(state, on_disk, "{at}: reported no change but changed the document");
            }
            let Value::Object(expected) = field(step, "state_after") else {
                panic!("{at}: state_after is not an object");
            };
            // What the file holds, compared as text with the keys of every object in order.
            let written = Ordered::parse(std::str::from_utf8(&on_disk.to_vec()).expect("UTF-8"));
            let expected_in_order =
                ordered_step.get("state_after").map_or(&[][..], Ordered::members);
            assert_eq!(expected_in_order.len(), expected.len(), "{at}: state_after read twice");
            for (key, value) in expected_in_order {
                let actual = written.get(key).map(Ordered::text);
                assert_eq!(actual.as_deref(), Some(value.text().as_str()), "{at}: key {key:?}");
            }
            let extra: Map<String, Value> = on_disk
                .iter()
                .filter(|(key, _)| !expected.contains_key(*key))
                .map(|(key, value)| (key.to_owned(), value.clone()))
                .collect();
            assert!(extra.is_empty(), "{at}: keys the seed did not write: {extra:?}");
            steps += 1;
        }
        cases += 1;
    }
    assert_eq!((cases, steps), (60, 720), "every case and step was replayed");
}
