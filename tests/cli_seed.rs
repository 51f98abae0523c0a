//! The seed's recorded operations (`tests/fixtures/seed-ops.jsonl`) through the real binary.
//!
//! Each case starts from the seed's state file (written as `json.dump(..., indent=2)`, mode 0600);
//! each step runs `daemon-state --state-file F --now NOW --json COMMAND...` and must print what the
//! seed returned (the field of the JSON object beside `ok`; `sessions open` returned nothing) and leave, for every key
//! the seed's file held afterwards, the same value, compared as text so timestamps match byte for
//! byte. Keys of this product's own (`generation`) may be added.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::Value;

mod ordered;
use ordered::Ordered;

const BIN: &str = env!("CARGO_BIN_EXE_daemon-state");
const VECTORS: &str = include_str!("fixtures/seed-ops.jsonl");

fn text(value: &Value) -> String {
    serde_json::to_string(value).expect("serializable")
}

fn field<'a>(object: &'a Value, key: &str) -> &'a Value {
    object.get(key).unwrap_or_else(|| panic!("no {key:?} in {object}"))
}

/// Runs one recorded step against the state file and compares it with the seed's.
#[track_caller]
fn check(file: &std::path::Path, at: &str, step: &Value, ordered_step: &Ordered) {
    let now = field(step, "now").as_str().expect("now");
    let command: Vec<&str> = field(step, "command")
        .as_array()
        .expect("command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let output = Command::new(BIN)
        .env_remove("DAEMON_STATE_FILE")
        .env_remove("DAEMON_STATE_TZ")
        .env_remove("RUST_LOG")
        .arg("--state-file")
        .arg(file)
        .args(["--now", now, "--json"])
        .args(&command)
        .output()
        .expect("run daemon-state");
    let at = format!("{at} ({})", command.join(" "));
    assert_eq!(output.status.code(), Some(0), "{at}: {}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).expect("one JSON document");
    assert_eq!(printed["ok"], Value::Bool(true), "{at}: {printed}");
    // The seed's return value is the one field besides `ok` (`sessions open` returned nothing).
    let answer = match command[..2] {
        ["sessions", "consume"] => Some("first_turn"),
        ["sessions", "prune"] => Some("dropped"),
        ["digest", "take"] => Some("digest"),
        ["sessions", "open"] => None,
        ref other => panic!("{at}: no recorded answer known for {other:?}"),
    };
    if let Some(key) = answer {
        assert_eq!(text(&printed[key]), text(field(step, "output")), "{at}: output");
    }
    // The file and the seed's state compared as text, with the keys of every object in order.
    let on_disk =
        Ordered::parse(&String::from_utf8(fs::read(file).expect("state file")).expect("UTF-8"));
    let Some(expected @ Ordered::Object(_)) = ordered_step.get("state_after") else {
        panic!("{at}: state_after is not an object");
    };
    for (key, value) in expected.members() {
        let actual = on_disk.get(key).map(Ordered::text);
        assert_eq!(actual.as_deref(), Some(value.text().as_str()), "{at}: key {key:?}");
    }
}

#[test]
fn every_recorded_step_matches_the_seed_through_the_binary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut cases, mut steps) = (0, 0);
    for line in VECTORS.lines().filter(|line| !line.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("a JSON line");
        // The same line with its objects' keys in the seed's order.
        let ordered_case = Ordered::parse(line);
        let number = field(&case, "case");
        let file = dir.path().join(format!("case-{number}.json"));
        let initial = ordered_case.get("initial_state").expect("an initial state");
        let initial = serde_json::to_vec_pretty(initial).expect("json");
        fs::write(&file, initial).expect("write the initial state");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).expect("chmod");
        let ordered_steps = ordered_case.get("steps").map_or(&[][..], Ordered::items);
        let steps_in_case = field(&case, "steps").as_array().expect("steps");
        assert_eq!(steps_in_case.len(), ordered_steps.len(), "case {number}: steps read twice");
        for (index, (step, ordered_step)) in steps_in_case.iter().zip(ordered_steps).enumerate() {
            check(&file, &format!("case {number} step {index}"), step, ordered_step);
            steps += 1;
        }
        cases += 1;
    }
    assert_eq!((cases, steps), (60, 720), "every case and step was replayed");
}
