//! Files Python's `json` module writes and reads load, and what this product does not know comes
//! back byte for byte: `NaN`, `Infinity` and `-Infinity` literals, lone surrogate escapes in keys
//! and values, nesting up to 1,000 levels. Deeper nesting is corruption, refused without a crash.
//! The fixtures `python-*.json` were written by Python's `json.dump(..., indent=2)`.

use std::path::Path;
use std::process::Command;

use chrono::{TimeZone, Utc};
use daemon_state::engine::Engine;
use daemon_state::event::{Event, EventKind};
use daemon_state::record::{Record, RecordError, keys};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
}

/// The top-level members of a file indented by two spaces, each as written (without its comma).
fn members(text: &str) -> Vec<String> {
    let mut members: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("  \"") {
            members.push(line.to_owned());
        } else if let Some(last) = members.last_mut()
            && line != "}"
        {
            last.push('\n');
            last.push_str(line);
        }
    }
    members.into_iter().map(|m| m.trim_end_matches(',').to_owned()).collect()
}

fn is_known(member: &str) -> bool {
    keys::ALL.iter().any(|key| member.starts_with(&format!("  \"{key}\":")))
}

/// Opens `text` as a state file, marks a session (which writes the file), and returns the file
/// left and the warnings of the open.
fn write_through_engine(text: &str) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, text).unwrap();
    let (mut engine, report) = Engine::open(&path).unwrap();
    assert!(report.recovery.is_none(), "{:?}", report.recovery);
    let at = Utc.with_ymd_and_hms(2026, 4, 18, 12, 0, 0).unwrap();
    let event = EventKind::SessionStarted { session_id: Some("sess-1".into()) };
    let _ = engine.handle(Event::new(at, event)).unwrap();
    (std::fs::read_to_string(&path).unwrap(), report.warnings)
}

/// Python reads `after`, and its members that this product does not know are those of `before`,
/// in the same order. Skipped, with a note, when `python3` is not on PATH.
fn python_sees_the_same_unknown_keys(before: &str, after: &str) {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("note: python3 is not on PATH; skipping the Python check");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("before.json"), dir.path().join("after.json"));
    std::fs::write(&a, before).unwrap();
    std::fs::write(&b, after).unwrap();
    let script = "import json, sys\n\
                  known = set(sys.argv[3].split(','))\n\
                  def unknown(p):\n    \
                      d = json.load(open(p, encoding='utf-8'))\n    \
                      return [(k, repr(v)) for k, v in d.items() if k not in known]\n\
                  was, now = unknown(sys.argv[1]), unknown(sys.argv[2])\n\
                  assert was == now, (was, now)\n\
                  print(len(now))\n";
    let output = Command::new("python3")
        .args(["-c", script])
        .args([&a, &b])
        .arg(keys::ALL.join(","))
        .output()
        .unwrap();
    assert!(output.status.success(), "python3: {}", String::from_utf8_lossy(&output.stderr));
    assert_ne!(String::from_utf8_lossy(&output.stdout).trim(), "0", "the check compared nothing");
}

#[test]
fn python_only_literals_in_unknown_keys_round_trip() {
    let before = fixture("python-literals.json");
    let (after, warnings) = write_through_engine(&before);
    let kept = members(&after);
    for member in members(&before).iter().filter(|m| !is_known(m)) {
        assert!(kept.contains(member), "{member} was not written back verbatim:\n{after}");
    }
    // A known key holding a literal serde_json cannot hold reads as wrong-typed, with a warning,
    // and stays as it was.
    assert!(warnings.iter().any(|w| w == "rem_cycle_count holds NaN; read as 4"), "{warnings:?}");
    assert!(kept.contains(&"  \"rem_cycle_count\": NaN".to_owned()), "{after}");
    assert!(after.contains("\"sess-1\""), "the engine wrote the file:\n{after}");
    python_sees_the_same_unknown_keys(&before, &after);
}

#[test]
fn lone_surrogates_round_trip() {
    let before = fixture("python-surrogates.json");
    let (after, warnings) = write_through_engine(&before);
    let kept = members(&after);
    // Two spellings of one key are one key, as in Python: the first place, the last value.
    assert!(kept.contains(&"  \"\\ud800\": \"high alone, again\"".to_owned()), "{after}");
    assert!(!after.contains("\\uD800"), "{after}");
    for member in members(&before)
        .iter()
        .filter(|m| !is_known(m) && !m.to_lowercase().starts_with("  \"\\ud800\""))
    {
        assert!(kept.contains(member), "{member} was not written back verbatim:\n{after}");
    }
    assert!(
        warnings.iter().any(|w| w == "timezone holds \"\\udc00\"; read as UTC"),
        "{warnings:?}"
    );
    assert!(kept.contains(&"  \"timezone\": \"\\udc00\"".to_owned()), "{after}");
    python_sees_the_same_unknown_keys(&before, &after);
}

/// `{"deep": [[...]]}`, nested `depth` levels counting the top-level object.
fn nested(depth: usize) -> String {
    format!("{{\"deep\": {}1{}}}", "[".repeat(depth - 1), "]".repeat(depth - 1))
}

#[test]
fn nesting_up_to_1000_loads_and_deeper_is_refused_without_a_crash() {
    for depth in [127, 128, 129, 500, 1000] {
        let text = nested(depth);
        let record = Record::from_slice(text.as_bytes()).unwrap_or_else(|e| panic!("{depth}: {e}"));
        assert_eq!(
            String::from_utf8(record.to_vec()).unwrap(),
            "{\n  \"deep\": ".to_owned() + &text[9..text.len() - 1] + "\n}"
        );
        let (after, _) = write_through_engine(&text);
        assert!(members(&after).contains(&format!("  \"deep\": {}", &text[9..text.len() - 1])));
    }
    // A known key nested past serde_json's limit reads as wrong-typed.
    let known = format!("{{\"quiet_window\": {}{}}}", "[".repeat(600), "]".repeat(600));
    let (after, warnings) = write_through_engine(&known);
    assert!(warnings.iter().any(|w| w.starts_with("quiet_window holds")), "{warnings:?}");
    assert!(after.contains(&known[17..known.len() - 1]), "kept as it was:\n{after}");

    for depth in [1001, 5_000, 1_000_000] {
        let text = nested(depth);
        match Record::from_slice(text.as_bytes()) {
            Err(RecordError::NotJson(message)) => {
                assert!(message.contains("nesting no deeper than 1000"), "{message}")
            }
            other => panic!("{depth}: {other:?}"),
        }
        let unclosed = "[".repeat(depth);
        assert!(Record::from_slice(unclosed.as_bytes()).is_err());
    }
    // Opening such a file quarantines it and starts fresh.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, nested(1001)).unwrap();
    let (_engine, report) = Engine::open(&path).unwrap();
    assert!(report.recovery.is_some());
    assert!(!Path::new(&path).exists() || std::fs::read(&path).unwrap() != nested(1001).as_bytes());
}

/// A value only Python's `json` writes, or one nested past serde_json's limit.
fn python_value() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        Just("NaN".to_owned()),
        Just("Infinity".to_owned()),
        Just("-Infinity".to_owned()),
        Just("\"\\ud800\"".to_owned()),
        Just("\"x\\uDFFF\\u00e9\"".to_owned()),
        Just("{\"\\udbff\": [NaN, -Infinity]}".to_owned()),
        (126usize..=999).prop_map(|depth| format!("{}NaN{}", "[".repeat(depth), "]".repeat(depth))),
        (126usize..=999).prop_map(|depth| format!(
            "{}{}",
            "{\"a\": ".repeat(depth),
            "1".to_owned() + &"}".repeat(depth)
        )),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Unknown members holding what only Python writes, nested 127 to 1,000 levels deep, load and
    /// are written back byte for byte and in order, around known keys the engine rewrites.
    #[test]
    fn python_only_unknown_members_round_trip_byte_for_byte(
        values in proptest::collection::vec(python_value(), 1..5),
        lone_keys in proptest::collection::vec(proptest::bool::ANY, 1..5),
    ) {
        let mut members = vec!["  \"fsm_state\": \"WAKE\"".to_owned()];
        for (i, (value, lone)) in values.iter().zip(lone_keys.iter().cycle()).enumerate() {
            let key = if *lone { format!("\\ud8{i:02x}") } else { format!("x_{i}") };
            members.push(format!("  \"{key}\": {value}"));
        }
        members.push("  \"last_session_ts\": \"2026-04-18T11:00:00+00:00\"".to_owned());
        let text = format!("{{\n{}\n}}", members.join(",\n"));
        let record = Record::from_slice(text.as_bytes()).unwrap();
        proptest::prop_assert_eq!(String::from_utf8(record.to_vec()).unwrap(), text.clone());
        let (after, _) = write_through_engine(&text);
        let kept = self::members(&after);
        for member in &members[1..members.len() - 1] {
            proptest::prop_assert!(kept.contains(member), "{} lost", member);
        }
        // One level more than the deepest value allows is refused.
        let deeper = format!("{{\"x\": [{}]}}", values.iter().map(|v| format!("{}{v}{}", "[".repeat(999), "]".repeat(999))).collect::<Vec<_>>().join(", "));
        proptest::prop_assert!(Record::from_slice(deeper.as_bytes()).is_err());
    }
}
