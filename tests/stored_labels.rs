//! Labels a client sends are stored clipped, as the seed clips a sleep request's `reason`: a
//! control message's `ts` (fix: the seed stored it as sent, and one 1 MiB label made every later
//! save of the file slow).

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

#[test]
fn control_message_ts_labels_are_stored_clipped_to_64_characters() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.json");
    // Multi-byte characters: the clip counts characters, as Python does.
    let long = "é".repeat(100_000);
    let clipped = "é".repeat(64);
    let lines: String = [
        format!("{{\"type\": \"user_initiated_sleep\", \"reason\": \"bed\", \"ts\": \"{long}\"}}"),
        format!("{{\"type\": \"force_rem\", \"ts\": \"{long}\"}}"),
        format!("{{\"type\": \"force_wake\", \"ts\": \"{long}\"}}"),
        format!("{{\"type\": \"session_open\", \"session_id\": \"s1\", \"ts\": \"{long}\"}}"),
    ]
    .map(|line| line + "\n")
    .concat();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_daemon-state"))
        .env_remove("DAEMON_STATE_FILE")
        .env_remove("DAEMON_STATE_TZ")
        .arg("--state-file")
        .arg(&file)
        .args(["--now", "2026-04-18T12:00:00Z", "serve"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    serve.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
    let output = serve.wait_with_output().unwrap();
    let replies = String::from_utf8(output.stdout).unwrap();
    for reply in replies.lines() {
        let reply: Value = serde_json::from_str(reply).unwrap();
        assert_eq!(reply["ok"], true, "{reply}");
    }
    let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    for key in ["user_sleep_request", "force_rem_request", "force_wake_request"] {
        assert_eq!(doc[key]["ts"], clipped.as_str(), "{key}");
    }
    assert_eq!(doc["last_session_open"]["ts"], clipped.as_str());
    assert_eq!(doc["hippea_cascade_request"]["ts"], clipped.as_str());
    assert!(std::fs::metadata(&file).unwrap().len() < 4096, "the file stays small");
}

#[test]
fn a_short_ts_label_is_stored_as_sent() {
    assert_eq!(daemon_state::data::clip_ts("whenever"), "whenever");
    assert_eq!(daemon_state::data::clip_ts(&"x".repeat(64)), "x".repeat(64));
    assert_eq!(daemon_state::data::clip_ts(&"x".repeat(65)), "x".repeat(64));
}
