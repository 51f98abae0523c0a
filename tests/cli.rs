//! The command line end to end: every subcommand's output and exit code on a temp state file.
//!
//! Each row runs the real binary as `daemon-state --state-file F --now NOW --json ARGS...`. A command
//! that fails must leave the state file byte for byte as it was.

use std::fs;
use std::path::PathBuf;

use assert_cmd::Command;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_daemon-state");

/// A temp directory holding one state file.
struct Sandbox {
    _dir: tempfile::TempDir,
    file: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("state.json");
        Self { _dir: dir, file }
    }

    /// A sandbox whose state file starts as `doc`.
    fn with(doc: Value) -> Self {
        let sandbox = Self::new();
        fs::write(&sandbox.file, serde_json::to_vec_pretty(&doc).expect("json")).expect("write");
        // Private, as the store and the seed write it (a wider mode is repaired with a warning).
        fs::set_permissions(&sandbox.file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        sandbox
    }

    fn bytes(&self) -> Option<Vec<u8>> {
        fs::read(&self.file).ok()
    }

    fn doc(&self) -> Value {
        serde_json::from_slice(&self.bytes().expect("a state file")).expect("state file parses")
    }
}

/// The binary with a clean environment.
fn command() -> Command {
    let mut command = Command::new(BIN);
    command.env_remove("DAEMON_STATE_FILE").env_remove("DAEMON_STATE_TZ").env_remove("RUST_LOG");
    command
}

/// What one run printed and how it exited.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(sandbox: &Sandbox, now: &str, args: &[&str], json: bool) -> Run {
    let mut command = command();
    command.arg("--state-file").arg(&sandbox.file).args(["--now", now]);
    if json {
        command.arg("--json");
    }
    let output = command.args(args).output().expect("run daemon-state");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    }
}

/// Runs one command with `--json`; checks the exit code and the printed document. A failing
/// command must print one line on stderr and leave the state file as it was.
#[track_caller]
fn check(sandbox: &Sandbox, now: &str, args: &[&str], code: i32, expected: Value) {
    let before = sandbox.bytes();
    let run = run(sandbox, now, args, true);
    let at = format!("daemon-state {}", args.join(" "));
    assert_eq!(run.code, code, "{at}: exit code; stderr {:?}", run.stderr);
    let mut printed: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{at}: stdout {:?} is not JSON: {e}", run.stdout));
    if args.first() == Some(&"event") {
        // An event's reply says when to tick next, as serve's does: the deadline `status` gives
        // for the file the event left.
        let deadline = printed.as_object_mut().and_then(|fields| fields.remove("next_deadline"));
        let status = run_status(sandbox, now);
        assert_eq!(deadline.as_ref(), Some(&status["next_deadline"]), "{at}: next_deadline");
    }
    assert_eq!(printed, expected, "{at}: output");
    if code != 0 {
        assert_eq!(run.stderr.lines().count(), 1, "{at}: stderr {:?}", run.stderr);
        assert!(run.stderr.starts_with("daemon-state: "), "{at}: stderr {:?}", run.stderr);
        assert!(sandbox.bytes() == before, "{at}: a failed command changed the state file");
    }
}

/// `status --json` at `now`, which reads the file and changes nothing.
fn run_status(sandbox: &Sandbox, now: &str) -> Value {
    let run = run(sandbox, now, &["status"], true);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("status: {:?}: {e}", run.stdout))
}

fn transition(from: &str, to: &str, reason: &str, at: &str) -> Value {
    json!({"from": from, "to": to, "reason": reason, "at": at})
}

fn reply(state: &str, transitions: Value, effects: Value) -> Value {
    json!({"ok": true, "state": state, "transitions": transitions, "effects": effects})
}

fn rejected(state: &str, error: &str) -> Value {
    json!({"ok": false, "reason": "rejected", "state": state, "error": error})
}

#[test]
fn a_night_through_the_event_command() {
    let s = Sandbox::new();
    let none = json!([]);
    check(
        &s,
        "2026-04-18T23:00:00Z",
        &["event", "user-sleep", "bed"],
        0,
        reply("WAKE", json!([]), json!([])),
    );
    check(
        &s,
        "2026-04-18T23:00:30Z",
        &["event", "tick"],
        0,
        reply(
            "TRANSITIONING",
            json!([transition(
                "WAKE",
                "TRANSITIONING",
                "user_sleep_request",
                "2026-04-18T23:00:30+00:00"
            )]),
            json!([{"effect": "acquire_lock"}]),
        ),
    );
    check(
        &s,
        "2026-04-18T23:00:31Z",
        &["event", "lock-acquired"],
        0,
        reply(
            "DREAMING",
            json!([
                transition("TRANSITIONING", "SLEEP", "lock_acquired", "2026-04-18T23:00:31+00:00"),
                transition("SLEEP", "DREAMING", "next_cycle", "2026-04-18T23:00:31+00:00"),
            ]),
            json!([{"effect": "run_rem_cycle", "cycle": 1, "of": 4, "is_last": false}]),
        ),
    );
    check(
        &s,
        "2026-04-18T23:10:00Z",
        &["event", "rem-cycle-finished", "--summaries", "2", "--schema-candidates", "1"],
        0,
        reply(
            "DREAMING",
            json!([
                transition("DREAMING", "SLEEP", "rem_cycle_finished", "2026-04-18T23:10:00+00:00"),
                transition("SLEEP", "DREAMING", "next_cycle", "2026-04-18T23:10:00+00:00"),
            ]),
            json!([{"effect": "run_rem_cycle", "cycle": 2, "of": 4, "is_last": false}]),
        ),
    );
    // Refused while asleep: exit 1, the reply on stdout, the file untouched.
    check(
        &s,
        "2026-04-18T23:20:00Z",
        &["event", "user-sleep"],
        1,
        rejected("DREAMING", "user_sleep_requested is not accepted in DREAMING: already sleeping"),
    );
    check(
        &s,
        "2026-04-18T23:20:00Z",
        &["event", "lock-lost"],
        0,
        reply("DREAMING", none.clone(), none.clone()),
    );
    check(
        &s,
        "2026-04-18T23:30:00Z",
        &["event", "rem-cycle-finished", "--claude-insight", "sleep helps", "--timed-out"],
        0,
        reply(
            "WAKE",
            json!([
                transition("DREAMING", "SLEEP", "rem_cycle_finished", "2026-04-18T23:30:00+00:00"),
                transition(
                    "SLEEP",
                    "WAKE",
                    "mcp_reacquired_mid_night",
                    "2026-04-18T23:30:00+00:00"
                ),
            ]),
            json!([
                {"effect": "emit", "kind": "daemon_yielded", "severity": "info",
                 "payload": {"reason": "mcp_reacquired_mid_night", "completed_cycles": 2}},
                {"effect": "release_lock"},
            ]),
        ),
    );
    check(
        &s,
        "2026-04-19T07:00:00Z",
        &["event", "session-started", "s1"],
        0,
        reply("WAKE", json!([]), json!([])),
    );
    let mut first = reply("WAKE", json!([]), json!([]));
    first["first_turn"] = json!(true);
    first["digest"] = json!({
        "rem_cycles_completed": 2, "episodes_processed": 2, "schemas_induced_tier0": 1,
        "claude_call_used": true, "main_insight_text": "sleep helps", "timed_out_cycles": 1,
    });
    check(&s, "2026-04-19T07:00:01Z", &["event", "recall", "s1"], 0, first);
    let mut again = reply("WAKE", json!([]), json!([]));
    again["first_turn"] = json!(false);
    again["digest"] = Value::Null;
    check(&s, "2026-04-19T07:00:02Z", &["event", "recall", "s1"], 0, again);
    check(
        &s,
        "2026-04-19T07:00:03Z",
        &["event", "lock-acquired"],
        1,
        rejected("WAKE", "lock_acquired is not accepted in WAKE: no row for it in this state"),
    );
    let doc = s.doc();
    assert_eq!(doc["fsm_state"], "WAKE");
    assert_eq!(doc["last_completed_cycles"], 2);
    assert_eq!(doc["user_sleep_request"]["pending"], false);
}

#[test]
fn operator_events_and_the_way_back_to_wake() {
    let s = Sandbox::new();
    let quiet = || reply("WAKE", json!([]), json!([]));
    check(&s, "2026-04-19T07:00:00Z", &["event", "boot"], 0, quiet());
    check(&s, "2026-04-19T07:00:01Z", &["event", "mcp-activity"], 0, quiet());
    check(&s, "2026-04-19T07:00:02Z", &["event", "pause"], 0, quiet());
    let skipped = json!([{"effect": "emit", "kind": "daemon_tick_skipped", "payload": {"reason": "paused"}, "severity": "info"}]);
    check(
        &s,
        "2026-04-19T07:00:03Z",
        &["event", "tick", "--store-empty"],
        0,
        reply("WAKE", json!([]), skipped),
    );
    check(&s, "2026-04-19T07:00:04Z", &["event", "resume"], 0, quiet());
    check(&s, "2026-04-19T07:00:05Z", &["event", "force-wake"], 0, quiet());
    check(&s, "2026-04-19T07:00:06Z", &["event", "force-rem"], 0, quiet());
    check(
        &s,
        "2026-04-19T07:00:07Z",
        &["event", "tick"],
        0,
        reply(
            "TRANSITIONING",
            json!([transition(
                "WAKE",
                "TRANSITIONING",
                "force_rem_request",
                "2026-04-19T07:00:07+00:00"
            )]),
            json!([{"effect": "acquire_lock"}]),
        ),
    );
    check(
        &s,
        "2026-04-19T07:00:08Z",
        &["event", "shutdown"],
        0,
        reply(
            "WAKE",
            json!([transition("TRANSITIONING", "WAKE", "shutdown", "2026-04-19T07:00:08+00:00")]),
            json!([{"effect": "release_lock"}]),
        ),
    );
    check(
        &s,
        "2026-04-19T07:00:09Z",
        &["event", "rem-cycle-finished"],
        1,
        rejected("WAKE", "rem_cycle_finished is not accepted in WAKE: no row for it in this state"),
    );
    let doc = s.doc();
    assert_eq!(doc["fsm_state"], "WAKE");
    assert_eq!(doc["scheduler_paused"], false);
    assert_eq!(doc["force_rem_request"]["pending"], true, "the lock never came: still pending");
}

#[test]
fn sessions_and_digest() {
    let s = Sandbox::with(json!({
        "fsm_state": "WAKE",
        "pending_digest": {"rem_cycles_completed": 4, "episodes_processed": 9, "schemas_induced_tier0": 0,
                           "claude_call_used": false, "main_insight_text": null, "timed_out_cycles": 0},
        "custom": [1, 2.5, "kept"],
    }));
    let rows: &[(&str, &[&str], Value)] = &[
        ("2026-04-19T06:00:00Z", &["sessions", "open", "a"], json!({"ok": true})),
        ("2026-04-19T06:30:00Z", &["sessions", "open", "b"], json!({"ok": true})),
        (
            "2026-04-19T06:40:00Z",
            &["sessions", "consume", "b"],
            json!({"ok": true, "first_turn": true}),
        ),
        (
            "2026-04-19T06:41:00Z",
            &["sessions", "consume", "b"],
            json!({"ok": true, "first_turn": false}),
        ),
        ("2026-04-19T06:42:00Z", &["sessions", "open", "c"], json!({"ok": true})),
        ("2026-04-19T07:00:00Z", &["sessions", "prune"], json!({"ok": true, "dropped": []})),
        ("2026-04-19T07:00:01Z", &["sessions", "prune"], json!({"ok": true, "dropped": ["a"]})),
        (
            "2026-04-19T07:00:02Z",
            &["sessions", "prune", "--ttl-secs", "60"],
            json!({"ok": true, "dropped": ["c"]}),
        ),
        (
            "2026-04-19T07:00:03Z",
            &["digest", "take"],
            json!({"ok": true, "digest": {
            "rem_cycles_completed": 4, "episodes_processed": 9, "schemas_induced_tier0": 0,
            "claude_call_used": false, "main_insight_text": null, "timed_out_cycles": 0}}),
        ),
        ("2026-04-19T07:00:04Z", &["digest", "take"], json!({"ok": true, "digest": null})),
    ];
    for (now, args, expected) in rows {
        check(&s, now, args, 0, expected.clone());
    }
    let doc = s.doc();
    assert_eq!(doc["first_turn_pending"], json!({}));
    assert_eq!(doc["last_digest_shown_at"], "2026-04-19T07:00:03+00:00");
    assert_eq!(doc["custom"], json!([1, 2.5, "kept"]), "unknown keys are kept verbatim");
    assert!(doc.get("pending_digest").is_none());
}

#[test]
fn status_and_the_time_zone() {
    let s = Sandbox::with(json!({}));
    let before = s.bytes();
    let run1 = run(&s, "2026-04-19T07:00:00Z", &["status"], true);
    assert_eq!(run1.code, 0, "{}", run1.stderr);
    let status: Value = serde_json::from_str(&run1.stdout).expect("json");
    assert_eq!(
        (status["state"].clone(), status["timezone"].clone()),
        (json!("WAKE"), json!("UTC"))
    );
    assert_eq!(s.bytes(), before, "status alone writes nothing");

    // --tz (or DAEMON_STATE_TZ) is the zone of this one command; it is not stored.
    let run2 = run(&s, "2026-04-19T07:00:00Z", &["--tz", "Europe/Paris", "status"], true);
    let status: Value = serde_json::from_str(&run2.stdout).expect("json");
    assert_eq!(status["timezone"], "Europe/Paris");
    assert_eq!(s.bytes(), before, "status with --tz writes nothing");
    let mut same = command();
    same.env("DAEMON_STATE_FILE", &s.file).env("DAEMON_STATE_TZ", "Asia/Tokyo");
    let out = same.args(["--json", "--now", "2026-04-19T08:00:00Z", "status"]).assert().success();
    let status: Value = serde_json::from_slice(&out.get_output().stdout).expect("json");
    assert_eq!(status["timezone"], "Asia/Tokyo");

    let human = run(&s, "2026-04-19T07:00:00Z", &["status"], false);
    let lines: Vec<&str> = human.stdout.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with("state ") && l.ends_with("  WAKE")), "{lines:?}");
    // Values start in one column: after the first run of two spaces.
    let column = |line: &str| {
        line.find("  ").map(|at| at + line[at..].len() - line[at..].trim_start().len())
    };
    assert!(lines.windows(2).all(|w| column(w[0]) == column(w[1])), "aligned: {lines:?}");
}

#[test]
fn bad_usage_exits_2_with_one_line_naming_the_argument() {
    let s = Sandbox::new();
    let rows: &[(&[&str], &str)] = &[
        (&["--now", "garbage", "status"], "--now"),
        (&["--tz", "Mars/Base", "status"], "--tz"),
        (&["--bogus", "status"], "--bogus"),
        (&["event", "nap"], "nap"),
        (&["event"], "event"),
        (&[], "subcommand"),
        (&["event", "session-started"], "<ID>"),
        (&["sessions", "prune", "--ttl-secs", "soon"], "--ttl-secs"),
        (&["event", "rem-cycle-finished", "--summaries", "many"], "--summaries"),
        (&["diagram", "--format", "png"], "png"),
    ];
    for (args, named) in rows {
        let output = command().arg("--state-file").arg(&s.file).args(*args).output().expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("daemon-state: ") && stderr.contains(named),
            "{args:?}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{args:?}");
        assert!(s.bytes().is_none(), "{args:?} wrote the state file");
    }
}

#[test]
fn help_and_version_succeed() {
    let rows: &[(&[&str], &str)] = &[
        (&["--help"], "Usage: daemon-state"),
        (&["event", "--help"], "Usage: daemon-state event"),
        (&["--version"], env!("CARGO_PKG_VERSION")),
    ];
    for (args, shown) in rows {
        let output = command().args(*args).output().expect("run");
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stdout).contains(shown), "{args:?}");
    }
}

#[test]
fn diagram_writes_what_the_table_draws() {
    let out = tempfile::tempdir().expect("temp dir");
    let dir = out.path().join("drawn");
    let path = |name: &str| dir.join(name).display().to_string();
    let arg = dir.to_str().expect("utf-8 temp path");
    let printed =
        command().args(["diagram", "--format", "dot", "--out", arg]).output().expect("run");
    assert_eq!(String::from_utf8_lossy(&printed.stdout), format!("{}\n", path("lifecycle.dot")));
    assert_eq!(
        fs::read_to_string(path("lifecycle.dot")).expect("dot"),
        daemon_state::diagram::to_dot()
    );
    let printed = command()
        .args(["--json", "diagram", "--format", "mermaid", "--out", arg])
        .output()
        .expect("run");
    let listed: Value = serde_json::from_slice(&printed.stdout).expect("json");
    assert_eq!(listed, json!({"ok": true, "files": [path("lifecycle.mmd")]}));
    assert_eq!(
        fs::read_to_string(path("lifecycle.mmd")).expect("mmd"),
        daemon_state::diagram::to_mermaid()
    );
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let s = Sandbox::with(json!({}));
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let output = std::process::Command::new(BIN)
        .arg("--state-file")
        .arg(&s.file)
        .arg("status")
        .stdout(writer)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn human_output_of_an_event() {
    let s = Sandbox::new();
    run(&s, "2026-04-18T23:00:00Z", &["event", "user-sleep", "bed"], false);
    let tick = run(&s, "2026-04-18T23:00:30Z", &["event", "tick"], false);
    assert_eq!(
        tick.stdout,
        "state       TRANSITIONING\n\
         transition  WAKE -> TRANSITIONING  user_sleep_request  2026-04-18T23:00:30+00:00\n\
         effect      acquire_lock\n"
    );
    let refused = run(&s, "2026-04-18T23:00:31Z", &["event", "user-sleep"], false);
    assert_eq!(refused.code, 1);
    assert!(refused.stdout.contains("rejected"), "{}", refused.stdout);
    assert_eq!(
        refused.stderr,
        "daemon-state: user_sleep_requested is not accepted in TRANSITIONING: already sleeping\n"
    );
}

#[test]
fn simulate_runs_a_day_and_leaves_a_state_file_status_can_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plot = dir.path().join("night.svg");
    let output = command()
        .args(["--json", "simulate", "--days", "1", "--seed", "3", "--dir"])
        .arg(dir.path().join("sim"))
        .arg("--plot")
        .arg(&plot)
        .output()
        .expect("run daemon-state");
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let summary: Value = serde_json::from_slice(&output.stdout).expect("one JSON document");
    assert_eq!(summary["final_state"], "WAKE", "{summary}");
    assert!(fs::read_to_string(&plot).expect("the plot").starts_with("<svg"));
    let state_file = dir.path().join("sim").join(".daemon-state.json");
    let status = command()
        .arg("--state-file")
        .arg(&state_file)
        .args(["--json", "status"])
        .output()
        .expect("run daemon-state");
    assert_eq!(status.status.code(), Some(0));
    let status: Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(status["state"], "WAKE");
}

#[test]
fn serve_answers_each_line_on_stdio() {
    let s = Sandbox::new();
    let input = concat!(
        "{\"type\":\"session_open\",\"session_id\":\"s1\",\"ts\":\"2026-04-19T12:00:00Z\"}\n",
        "not json\n",
        "{\"type\":\"tick\",\"ts\":\"2026-04-19T12:00:30Z\"}\n",
    );
    let output = command()
        .arg("--state-file")
        .arg(&s.file)
        .args(["--now", "2026-04-19T12:00:00Z", "serve"])
        .write_stdin(input)
        .output()
        .expect("run daemon-state");
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let replies: Vec<Value> = String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(replies.len(), 3);
    assert_eq!(replies[0], json!({"ok": true, "reason": "session_open_queued"}));
    assert_eq!(replies[1]["ok"], false);
    assert_eq!(replies[2]["ok"], true);
    assert!(s.doc()["first_turn_pending"]["s1"].is_string());
}

#[test]
fn human_output_escapes_control_characters_in_session_ids() {
    let s = Sandbox::new();
    let id = "evil\u{1b}[2J\u{1b}]0;owned\u{7}\nforged line\r\u{9b}31m";
    let escaped = "evil\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\nforged line\\r\\u{9b}31m";
    let rows: &[(&[&str], &str)] = &[
        (&["sessions", "open", id], "first turn marked for "),
        (&["--json", "status"], ""),
        (&["status"], "pending sessions"),
        (&["sessions", "consume", id], "first turn of "),
        (&["sessions", "consume", id], "not a first turn: "),
        (&["sessions", "open", id], "first turn marked for "),
        (&["sessions", "prune", "--ttl-secs", "60"], "dropped 1: "),
    ];
    for (args, said) in rows {
        let now =
            if args.contains(&"prune") { "2026-04-18T12:05:00Z" } else { "2026-04-18T12:00:00Z" };
        let out = run(&s, now, args, false);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        if args[0] == "--json" {
            let doc: Value = serde_json::from_str(&out.stdout).expect("json");
            assert_eq!(doc["pending_sessions"]["ids"], json!([id]), "JSON keeps the id as it is");
            continue;
        }
        assert!(
            !out.stdout.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?}: {:?}",
            out.stdout
        );
        let line = out.stdout.lines().find(|line| line.contains(said)).unwrap_or_default();
        assert!(line.contains(escaped), "{args:?}: {:?}", out.stdout);
    }
}

#[test]
fn simulate_keeps_the_faults_it_stages_off_stderr() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = command()
        .args(["simulate", "--days", "7", "--seed", "1", "--dir"])
        .arg(dir.path().join("sim"))
        .output()
        .expect("run daemon-state");
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("crashes / restarts    3 / 3"), "the week stages faults: {stdout}");
    assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
}
