//! The `serve` protocol over the library's stream API: the seed project's control messages
//! (acceptance 12.10, dispatcher and session_open lists), one message per engine event, and
//! malformed input. Every server reads a fixed clock; every state file lives in a temp directory.

use daemon_state::serve::MAX_LINE_BYTES;
use daemon_state::store::Call;
use daemon_state::table::StateName;
use daemon_state::timestamp;
use serde_json::{Value, json};

use super::{Daemon, NOW};

/// Sends `request` and compares the whole reply.
#[track_caller]
fn check(daemon: &Daemon, request: &str, expected: Value) {
    assert_eq!(daemon.ask(request), expected, "request {request}");
}

/// Sends `request`, expects `invalid_message` with an error naming `field`, and nothing written.
#[track_caller]
fn check_invalid(daemon: &Daemon, request: &str, field: &str) {
    let writes = daemon.durable_writes();
    let reply = daemon.ask(request);
    assert_eq!(reply["ok"], json!(false), "{request} -> {reply}");
    assert_eq!(reply["reason"], json!("invalid_message"), "{request} -> {reply}");
    let error = reply["error"].as_str().unwrap();
    assert!(error.contains(field), "{request} -> {error:?} does not name {field}");
    assert_eq!(daemon.durable_writes(), writes, "{request} wrote");
}

fn dreaming() -> Value {
    json!({
        "fsm_state": "DREAMING",
        "fsm_transition_at": "2026-04-18T03:00:00+00:00",
        "night": {"started_at": "2026-04-18T03:00:00+00:00", "planned": 1, "completed": 0,
                  "lock_lost": false, "activity_at": null},
    })
}

// acceptance 12.10 dispatcher 1
#[test]
fn status_echoes_the_state_with_a_truncated_digest() {
    let long = "an insight ".repeat(100);
    let daemon = Daemon::new(json!({
        "fsm_state": "WAKE",
        "daemon_started_at": "2026-04-18T00:00:00+00:00",
        "last_tick_at": "2026-04-18T12:30:00+00:00",
        "quiet_window": [44, 16],
        "pending_digest": {"rem_cycles_completed": 2, "episodes_processed": 15,
                           "schemas_induced_tier0": 3, "claude_call_used": true,
                           "main_insight_text": long},
        "scheduler_paused": false,
    }));
    let expected = json!({
        "ok": true,
        "state": "WAKE",
        "uptime_sec": 45000.0,
        "version": env!("CARGO_PKG_VERSION"),
        "fsm_state": "WAKE",
        "last_tick_at": "2026-04-18T12:30:00+00:00",
        "quiet_window": [44, 16],
        "pending_digest": {"rem_cycles_completed": 2, "episodes_processed": 15,
                           "schemas_induced_tier0": 3, "claude_call_used": true},
        "daemon_started_at": "2026-04-18T00:00:00+00:00",
        "scheduler_paused": false,
        "next_deadline": NOW,
    });
    check(&daemon, r#"{"type": "status"}"#, expected);
    assert_eq!(daemon.durable_writes(), 0, "status writes nothing");
}

#[test]
fn status_of_a_fresh_file_has_nulls_and_defaults() {
    let daemon = Daemon::new(Value::Null);
    let expected = json!({
        "ok": true, "state": "WAKE", "uptime_sec": null, "version": env!("CARGO_PKG_VERSION"),
        "fsm_state": "WAKE", "last_tick_at": null, "quiet_window": null, "pending_digest": null,
        "daemon_started_at": null, "scheduler_paused": false, "next_deadline": NOW,
    });
    check(&daemon, r#"{"type": "status"}"#, expected);
    assert!(!daemon.path.exists(), "status creates no file");
}

// acceptance 12.10 dispatcher 2
#[test]
fn user_sleep_in_wake_queues_the_request_and_stays_wake() {
    let daemon = Daemon::new(json!({"fsm_state": "WAKE"}));
    check(
        &daemon,
        r#"{"type": "user_initiated_sleep", "reason": "I am going to bed", "ts": "2026-04-18T23:00:00+00:00"}"#,
        json!({"ok": true, "state": "TRANSITIONING"}),
    );
    let disk = daemon.disk();
    assert_eq!(
        disk["user_sleep_request"],
        json!({"reason": "I am going to bed", "ts": "2026-04-18T23:00:00+00:00", "pending": true})
    );
    assert_eq!(disk["fsm_state"], json!("WAKE"));
    let engine = daemon.server.engine();
    assert_eq!(engine.state(), StateName::Wake, "the reply is only a promise");
    assert_eq!(engine.record().get("fsm_state"), Some(&json!("WAKE")));
}

// acceptance 12.10 dispatcher 3
#[test]
fn user_sleep_outside_wake_is_already_sleeping_and_writes_nothing() {
    for state in ["DREAMING", "SLEEP", "TRANSITIONING"] {
        let daemon = Daemon::new(json!({"fsm_state": state}));
        let before = std::fs::read(&daemon.path).unwrap();
        check(
            &daemon,
            r#"{"type": "user_initiated_sleep", "reason": "bed", "ts": "2026-04-18T23:00:00+00:00"}"#,
            json!({"ok": false, "reason": "already_sleeping"}),
        );
        assert_eq!(std::fs::read(&daemon.path).unwrap(), before, "{state}: file untouched");
        assert!(daemon.server.engine().record().get("user_sleep_request").is_none());
    }
}

// acceptance 12.10 dispatcher 4
#[test]
fn force_wake_and_force_rem_are_queued_in_any_state() {
    let daemon = Daemon::new(dreaming());
    check(
        &daemon,
        r#"{"type": "force_wake", "ts": "2026-04-18T23:45:00+00:00"}"#,
        json!({"ok": true, "reason": "wake_queued"}),
    );
    assert_eq!(
        daemon.disk()["force_wake_request"],
        json!({"ts": "2026-04-18T23:45:00+00:00", "pending": true})
    );
    check(
        &daemon,
        r#"{"type": "force_rem", "ts": "2026-04-18T10:00:00+00:00"}"#,
        json!({"ok": true, "reason": "rem_queued"}),
    );
    assert_eq!(
        daemon.disk()["force_rem_request"],
        json!({"ts": "2026-04-18T10:00:00+00:00", "pending": true})
    );
    assert_eq!(daemon.disk()["fsm_state"], json!("DREAMING"));
}

// acceptance 12.10 dispatcher 5
#[test]
fn pause_and_resume_persist_the_flag() {
    let daemon = Daemon::new(json!({"fsm_state": "WAKE"}));
    check(&daemon, r#"{"type": "pause"}"#, json!({"ok": true, "paused": true}));
    check(&daemon, r#"{"type": "resume"}"#, json!({"ok": true, "paused": false}));
    assert_eq!(daemon.disk()["scheduler_paused"], json!(false));

    let daemon = Daemon::new(json!({"fsm_state": "WAKE"}));
    check(&daemon, r#"{"type": "pause", "seconds": 30}"#, json!({"ok": true, "paused": true}));
    assert_eq!(daemon.disk()["scheduler_paused"], json!(true), "seconds is ignored");
}

// acceptance 12.10 dispatcher 6
#[test]
fn unknown_types_are_named_back() {
    let daemon = Daemon::new(Value::Null);
    check(
        &daemon,
        r#"{"type": "nuke_from_orbit", "ts": "whatever"}"#,
        json!({"ok": false, "reason": "unknown_message_type", "type": "nuke_from_orbit"}),
    );
    check(
        &daemon,
        r#"{"type": "configure"}"#,
        json!({"ok": false, "reason": "unknown_message_type", "type": "configure"}),
    );
    assert!(!daemon.path.exists());
}

// acceptance 12.10 dispatcher 7
#[test]
fn invalid_messages_name_the_field() {
    let daemon = Daemon::new(json!({"fsm_state": "WAKE"}));
    let cases = [
        (r#"{"type": "force_wake"}"#, "ts"),
        (r#"{"type": "force_rem", "ts": 5}"#, "ts"),
        (
            r#"{"type": "user_initiated_sleep", "reason": 42, "ts": "2026-04-18T23:00:00Z"}"#,
            "reason",
        ),
        (r#"{"type": 42}"#, "type"),
        (r#"{"no_type": true}"#, "type"),
        (r#"{"type": "pause", "seconds": "forever"}"#, "seconds"),
        (r#"{"type": "resume", "seconds": true}"#, "seconds"),
        (r#"{"type": "tick", "store_empty": 1}"#, "store_empty"),
        (r#"{"type": "boot", "ts": "at dawn"}"#, "ts"),
        (r#"{"type": "recall"}"#, "session_id"),
        (r#"{"type": "rem_cycle_finished", "result": []}"#, "result"),
        (
            r#"{"type": "rem_cycle_finished", "result": {"summaries_created": "3"}}"#,
            "summaries_created",
        ),
        ("[1, 2]", "object"),
        ("42", "object"),
        // Engine messages take only their own fields: a misplaced field is not dropped silently.
        (r#"{"type": "rem_cycle_finished", "summaries_created": 3}"#, "summaries_created"),
        (r#"{"type": "rem_cycle_finished", "result": {"summary": "x"}}"#, "result.summary"),
        (r#"{"type": "tick", "storeEmpty": true}"#, "storeEmpty"),
        (r#"{"type": "boot", "time": "2026-04-18T23:00:00Z"}"#, "time"),
    ];
    for (request, field) in cases {
        check_invalid(&daemon, request, field);
    }
    let error = daemon.ask(r#"{"type": 42}"#)["error"].clone();
    assert_eq!(error, json!("type must be a string"));
}

#[test]
fn control_messages_ignore_unknown_fields_as_the_seed_does() {
    let daemon = Daemon::new(json!({"fsm_state": "WAKE"}));
    check(
        &daemon,
        r#"{"type": "pause", "seconds": 30, "until": "tomorrow"}"#,
        json!({"ok": true, "paused": true}),
    );
    check(
        &daemon,
        r#"{"type": "force_rem", "ts": "soon", "why": "testing"}"#,
        json!({"ok": true, "reason": "rem_queued"}),
    );
}

#[test]
fn a_control_message_happens_at_its_ts_when_it_is_a_moment() {
    let daemon = Daemon::new(json!({"fsm_state": "WAKE", "daemon_started_at": NOW}));
    // status at its ts: the uptime and the deadline are counted from it.
    let reply = daemon.ask(r#"{"type": "status", "ts": "2026-04-18T13:30:00+00:00"}"#);
    assert_eq!(reply["uptime_sec"], json!(3600.0));
    assert_eq!(reply["next_deadline"], json!("2026-04-18T13:30:00+00:00"));
    // A label that is no moment, or a moment out of range: the server's clock, the text stored.
    for ts in ["after lunch", "10000-01-01T00:00:00Z"] {
        let request = json!({"type": "session_open", "session_id": "s", "ts": ts});
        check(&daemon, &request.to_string(), json!({"ok": true, "reason": "session_open_queued"}));
        let disk = daemon.disk();
        assert_eq!(disk["last_session_ts"], json!(NOW), "{ts}");
        assert_eq!(disk["last_session_open"], json!({"session_id": "s", "ts": ts}));
    }
    check(
        &daemon,
        r#"{"type": "force_wake", "ts": "2026-04-18T09:00:00+02:00"}"#,
        json!({"ok": true, "reason": "wake_queued"}),
    );
    let disk = daemon.disk();
    assert_eq!(disk["force_wake_request"]["ts"], json!("2026-04-18T09:00:00+02:00"), "as sent");
}

// acceptance 12.10 dispatcher 8
#[test]
fn a_long_reason_is_stored_as_500_characters() {
    let daemon = Daemon::new(json!({"fsm_state": "WAKE"}));
    let request = json!({"type": "user_initiated_sleep", "reason": "x".repeat(5000),
                         "ts": "2026-04-18T23:00:00+00:00"});
    check(&daemon, &request.to_string(), json!({"ok": true, "state": "TRANSITIONING"}));
    assert_eq!(daemon.disk()["user_sleep_request"]["reason"], json!("x".repeat(500)));
}

// acceptance 12.10 dispatcher 9 (over the stream API from two threads; the socket test has two
// real clients)
#[test]
fn concurrent_force_rem_and_pause_both_persist() {
    let daemon = Daemon::new(json!({"fsm_state": "WAKE"}));
    let (rem, pause) = std::thread::scope(|scope| {
        let rem = scope
            .spawn(|| daemon.ask(r#"{"type": "force_rem", "ts": "2026-04-18T10:00:00+00:00"}"#));
        let pause = scope.spawn(|| daemon.ask(r#"{"type": "pause"}"#));
        (rem.join().unwrap(), pause.join().unwrap())
    });
    assert_eq!(rem, json!({"ok": true, "reason": "rem_queued"}));
    assert_eq!(pause, json!({"ok": true, "paused": true}));
    let disk = daemon.disk();
    assert_eq!(disk["force_rem_request"]["pending"], json!(true));
    assert_eq!(disk["scheduler_paused"], json!(true));
}

// acceptance 12.10 dispatcher 10
#[test]
fn the_full_matrix_on_one_connection() {
    let daemon = Daemon::new(json!({"fsm_state": "WAKE"}));
    let input = [
        r#"{"type": "status"}"#,
        r#"{"type": "user_initiated_sleep", "reason": "bed", "ts": "2026-04-18T23:00:00+00:00"}"#,
        r#"{"type": "force_rem", "ts": "2026-04-18T23:00:01+00:00"}"#,
        r#"{"type": "force_wake", "ts": "2026-04-18T23:00:02+00:00"}"#,
        r#"{"type": "pause"}"#,
        r#"{"type": "resume"}"#,
    ]
    .map(|line| format!("{line}\n"))
    .concat();
    let replies = daemon.feed(input.as_bytes());
    let shapes: Vec<(Value, Value)> =
        replies.iter().map(|r| (r["ok"].clone(), r["reason"].clone())).collect();
    assert_eq!(replies.len(), 6);
    assert_eq!(replies[0]["state"], json!("WAKE"));
    assert_eq!(replies[1], json!({"ok": true, "state": "TRANSITIONING"}));
    assert_eq!(
        shapes[2..4],
        [(json!(true), json!("rem_queued")), (json!(true), json!("wake_queued"))]
    );
    assert_eq!(replies[4], json!({"ok": true, "paused": true}));
    assert_eq!(replies[5], json!({"ok": true, "paused": false}));
    let disk = daemon.disk();
    for key in ["user_sleep_request", "force_rem_request", "force_wake_request"] {
        assert_eq!(disk[key]["pending"], json!(true), "{key}");
    }
    assert_eq!(disk["scheduler_paused"], json!(false));
    assert_eq!(disk["fsm_state"], json!("WAKE"));
}

// acceptance 12.10 session_open 1
#[test]
fn session_open_marks_the_first_turn_and_raises_the_cascade() {
    let daemon = Daemon::new(json!({"fsm_state": "WAKE"}));
    check(
        &daemon,
        r#"{"type": "session_open", "session_id": "sess-abc", "ts": "2026-04-19T12:00:00Z"}"#,
        json!({"ok": true, "reason": "session_open_queued"}),
    );
    let disk = daemon.disk();
    let mark = disk["first_turn_pending"]["sess-abc"].as_str().unwrap();
    // The message's ts is a moment: the session opened then, not at the server's clock.
    let opened = "2026-04-19T12:00:00+00:00";
    assert_eq!(timestamp::parse(mark), timestamp::parse(opened), "marked at the message's ts");
    assert_eq!(
        disk["hippea_cascade_request"],
        json!({"session_id": "sess-abc", "ts": "2026-04-19T12:00:00Z", "pending": true})
    );
    assert_eq!(
        disk["last_session_open"],
        json!({"session_id": "sess-abc", "ts": "2026-04-19T12:00:00Z"})
    );
    assert_eq!(disk["last_session_ts"], json!(opened), "the engine's session start");
    let recall = daemon.ask(r#"{"type": "recall", "session_id": "sess-abc"}"#);
    assert_eq!(recall["first_turn"], json!(true));
}

// acceptance 12.10 session_open 2 (fix: a missing id marks no first turn)
#[test]
fn session_open_without_an_id_is_accepted() {
    let daemon = Daemon::new(json!({"fsm_state": "WAKE"}));
    check(
        &daemon,
        r#"{"type": "session_open"}"#,
        json!({"ok": true, "reason": "session_open_queued"}),
    );
    let disk = daemon.disk();
    assert_eq!(disk.get("first_turn_pending"), None, "no empty id is stored");
    assert_eq!(disk["last_session_open"], json!({"session_id": "", "ts": ""}));
    assert_eq!(
        disk["hippea_cascade_request"],
        json!({"session_id": "", "ts": "", "pending": true})
    );
    assert_eq!(disk["last_session_ts"], json!(NOW), "still a session start");
}

// acceptance 12.10 session_open 3
#[test]
fn session_open_clips_the_id_to_128_characters() {
    let daemon = Daemon::new(json!({"fsm_state": "WAKE"}));
    let long = "a".repeat(1000);
    let request = json!({"type": "session_open", "session_id": long, "ts": "2026-04-19T12:00:00Z"});
    check(&daemon, &request.to_string(), json!({"ok": true, "reason": "session_open_queued"}));
    let disk = daemon.disk();
    let clipped = "a".repeat(128);
    let ids: Vec<&String> = disk["first_turn_pending"].as_object().unwrap().keys().collect();
    assert_eq!(ids, [&clipped]);
    assert_eq!(disk["last_session_open"]["session_id"], json!(clipped));
    assert_eq!(disk["hippea_cascade_request"]["session_id"], json!(clipped));
    let recall = json!({"type": "recall", "session_id": long}).to_string();
    assert_eq!(daemon.ask(&recall)["first_turn"], json!(true), "the long id finds its mark");
}

// acceptance 12.10 session_open 4
#[test]
fn session_open_validates_its_fields() {
    let daemon = Daemon::new(json!({"fsm_state": "WAKE"}));
    check_invalid(&daemon, r#"{"type": "session_open", "session_id": 123}"#, "session_id");
    check_invalid(&daemon, r#"{"type": "session_open", "session_id": "s", "ts": 42}"#, "ts");
    assert_eq!(daemon.disk(), json!({"fsm_state": "WAKE"}));
}

// the seed's control plane: a failed save replies state_write_failed with the first 200
// characters of the error. (fix: the engine is back at the last durable state, where the seed kept
// the mutation in memory.)
#[test]
fn a_failed_save_replies_state_write_failed() {
    let (daemon, fs) = Daemon::on_sim(json!({"fsm_state": "WAKE"}));
    fs.fail_at(Call::Write, 0, libc::ENOSPC);
    let reply = daemon.ask(r#"{"type": "pause"}"#);
    assert!(fs.take_injected());
    assert_eq!(reply["ok"], json!(false), "{reply}");
    assert_eq!(reply["reason"], json!("state_write_failed"), "{reply}");
    let error = reply["error"].as_str().unwrap();
    assert!(error.contains(".daemon-state.json") && error.chars().count() <= 200, "{error}");
    assert_eq!(daemon.ask(r#"{"type": "status"}"#)["scheduler_paused"], json!(false));
    fs.fail_at(Call::Write, 0, libc::EIO);
    let reply = daemon.ask(r#"{"type": "tick", "store_empty": true}"#);
    assert_eq!(reply["reason"], json!("state_write_failed"), "engine messages too: {reply}");
    check(&daemon, r#"{"type": "pause"}"#, json!({"ok": true, "paused": true}));
}

/// Feeds one line and compares its one reply's error (an `invalid_message`) with `error`.
#[track_caller]
fn check_garbage(daemon: &Daemon, line: &[u8], error: &str) {
    let replies = daemon.feed(&[line, b"\n"].concat());
    let expected = json!({"ok": false, "reason": "invalid_message", "error": error});
    assert_eq!(replies, [expected], "line {:?}", String::from_utf8_lossy(line));
}

#[test]
fn garbage_lines_get_an_error_reply() {
    let daemon = Daemon::new(json!({"fsm_state": "WAKE"}));
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: [(&[u8], &str); 7] = [
        (b"not json", "line is not JSON: expected ident at line 1 column 2"),
        (
            b"{\"type\": \"pause\"",
            "line is not JSON: EOF while parsing an object at line 1 column 16",
        ),
        (
            b"{\"type\": \"pause\"} {\"type\": \"resume\"}",
            "line is not JSON: trailing characters at line 1 column 19",
        ),
        (b"{\"type\": \"pa\xffuse\"}", "line is not UTF-8 (byte 12)"),
        (b"\xfe\xff", "line is not UTF-8 (byte 0)"),
        (deep.as_bytes(), "line is not JSON: recursion limit exceeded at line 1 column 128"),
        (b"\"pause\"", "message must be an object"),
    ];
    for (line, error) in cases {
        check_garbage(&daemon, line, error);
    }
    assert_eq!(daemon.durable_writes(), 0);
}

#[test]
fn blank_lines_get_no_reply_and_crlf_is_accepted() {
    let daemon = Daemon::new(json!({"fsm_state": "WAKE"}));
    let replies = daemon.feed(b"\n   \n\t\r\n{\"type\": \"pause\"}\r\n\n");
    assert_eq!(replies, [json!({"ok": true, "paused": true})]);
}

#[test]
fn a_2_mib_line_is_refused_and_the_next_line_is_served() {
    let daemon = Daemon::new(json!({"fsm_state": "WAKE"}));
    let huge = format!(r#"{{"type": "pause", "pad": "{}"}}"#, "x".repeat(2 << 20));
    let input = format!("{huge}\n{{\"type\": \"status\"}}\n");
    let replies = daemon.feed(input.as_bytes());
    let error = format!("line is longer than {MAX_LINE_BYTES} bytes");
    assert_eq!(replies[0], json!({"ok": false, "reason": "invalid_message", "error": error}));
    assert_eq!(replies[1]["scheduler_paused"], json!(false), "the long line was not acted on");
    assert_eq!(replies.len(), 2);
    assert_eq!(daemon.durable_writes(), 0);

    let head = r#"{"type": "pause", "pad": ""#;
    let exact = format!("{head}{}\"}}", "x".repeat(MAX_LINE_BYTES - head.len() - 2));
    assert_eq!(exact.len(), MAX_LINE_BYTES);
    assert_eq!(daemon.feed(format!("{exact}\n").as_bytes()), [json!({"ok": true, "paused": true})]);
}

#[test]
fn input_that_ends_mid_line_is_harmless() {
    let daemon = Daemon::new(json!({"fsm_state": "WAKE"}));
    let replies = daemon.feed(b"{\"type\": \"status\"}\n{\"type\": \"pau");
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[1]["reason"], json!("invalid_message"));
    assert_eq!(daemon.durable_writes(), 0, "the cut line changed nothing");
    // A whole message whose newline never came is still a whole message.
    assert_eq!(daemon.feed(b"{\"type\": \"pause\"}"), [json!({"ok": true, "paused": true})]);
    assert_eq!(daemon.feed(b""), Vec::<Value>::new());
}
