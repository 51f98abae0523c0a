//! Moments that would be written in a form nobody reads back are refused at input, naming the
//! argument or field: `--now` and a serve message's `ts` outside 0001-01-01T00:00:00Z ..=
//! 9999-12-31T23:59:59.999999Z in UTC. Moments at the very ends are taken, and what the engine
//! computes from them stays readable.

use assert_cmd::Command;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_daemon-state");

const OUT_OF_RANGE: [&str; 3] =
    ["9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00Z", "0001-01-01T00:00:00+00:01"];

fn command(file: &std::path::Path) -> Command {
    let mut command = Command::new(BIN);
    command.env_remove("DAEMON_STATE_FILE").env_remove("DAEMON_STATE_TZ").env_remove("RUST_LOG");
    command.arg("--state-file").arg(file);
    command
}

/// Every moment the file holds reads back with Python's `fromisoformat` range: a four-digit year.
fn assert_readable(text: &str) {
    let doc: Value = serde_json::from_str(text).unwrap();
    let mut strings = vec![&doc];
    while let Some(value) = strings.pop() {
        match value {
            Value::String(s) if s.len() > 4 && s.as_bytes()[4] == b'-' => {
                assert!(daemon_state::timestamp::parse(s).is_some(), "{s} in {text}")
            }
            Value::String(s) => assert!(!s.starts_with('+') && !s.starts_with("0000"), "{s}"),
            Value::Array(items) => strings.extend(items),
            Value::Object(map) => strings.extend(map.values()),
            _ => {}
        }
    }
}

#[test]
fn a_now_outside_the_years_python_writes_is_refused_naming_the_argument() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.json");
    for now in OUT_OF_RANGE {
        let output = command(&file).args(["--now", now, "event", "boot"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{now}: {stderr}");
        assert!(stderr.contains("--now") && stderr.contains("outside"), "{now}: {stderr}");
        assert!(!file.exists(), "{now}: nothing is written");
    }
}

#[test]
fn a_serve_ts_outside_the_years_python_writes_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.json");
    let lines: String = OUT_OF_RANGE
        .iter()
        .map(|ts| format!("{{\"type\": \"tick\", \"ts\": \"{ts}\"}}\n"))
        .collect();
    let output = command(&file)
        .args(["--now", "2026-04-18T12:00:00Z", "serve"])
        .write_stdin(lines)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let replies: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(replies.len(), OUT_OF_RANGE.len(), "{stdout}");
    for reply in replies {
        assert_eq!(reply["ok"], false, "{reply}");
        assert!(
            reply["error"].as_str().unwrap().starts_with("ts must be a moment from"),
            "{reply}"
        );
    }
    if let Ok(text) = std::fs::read_to_string(&file) {
        assert_readable(&text);
    }
}

#[test]
fn moments_at_the_ends_of_the_range_write_only_readable_moments() {
    for now in ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "9999-12-31T22:00:00Z"] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        for args in [
            &["event", "boot"][..],
            &["event", "session-started", "s1"],
            &["event", "user-sleep", "now"],
            &["event", "tick"],
            &["event", "lock-denied"],
            &["event", "tick"],
        ] {
            let output = command(&file).args(["--json", "--now", now]).args(args).output().unwrap();
            assert!(output.status.code().is_some(), "{now} {args:?}: no crash");
            assert_ne!(output.status.code(), Some(101), "{now} {args:?}: a panic");
            assert_readable(&std::fs::read_to_string(&file).unwrap());
        }
        let status = command(&file).args(["--json", "--now", now, "status"]).output().unwrap();
        assert_eq!(status.status.code(), Some(0), "{now}");
        assert_readable(&String::from_utf8(status.stdout).unwrap());
    }
}

#[test]
fn zones_far_from_utc_at_the_ends_of_the_range_do_not_panic() {
    use daemon_state::engine::Engine;
    use daemon_state::event::{Event, EventKind};
    use daemon_state::timestamp::{earliest, format, latest};

    let (first, last) = (earliest(), latest());
    let near =
        [first, first + chrono::Duration::hours(13), last, last - chrono::Duration::hours(13)];
    for zone in ["Pacific/Kiritimati", "Etc/GMT+12", "UTC"] {
        for at in near {
            for window in [serde_json::json!([0, 48]), serde_json::json!([46, 4])] {
                let doc = serde_json::json!({
                    "fsm_state": "WAKE", "timezone": zone, "quiet_window": window,
                    "quiet_window_learned_at": format(at), "last_session_ts": format(at),
                    "session_starts": format!("{} {}", at.timestamp_micros(), first.timestamp_micros()),
                });
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("state.json");
                std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
                let (mut engine, _) = Engine::open(&path).unwrap();
                for kind in [
                    EventKind::Boot,
                    EventKind::SessionStarted { session_id: Some("s".into()) },
                    EventKind::Tick { store_empty: false },
                    EventKind::LockDenied,
                    EventKind::Tick { store_empty: false },
                    EventKind::Shutdown,
                ] {
                    let _ = engine.handle(Event::new(at, kind));
                    assert_readable(&serde_json::to_string(&engine.status(at)).unwrap());
                    assert_readable(&std::fs::read_to_string(&path).unwrap());
                }
            }
        }
    }
}
