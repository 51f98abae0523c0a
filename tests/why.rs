//! `why`: in each state, at each time guard's boundary (one second before and one after), the
//! exact words, whether the row holds and from when; `next_action_at` is the engine's next
//! deadline. Then the command line's `why --json` and the protocol's `{"type": "why"}`.

use std::process::Command;

use chrono::{DateTime, Duration, Utc};
use daemon_state::engine::Engine;
use daemon_state::event::{Event, EventKind};
use daemon_state::timestamp::{self, Timestamp};
use daemon_state::why::{Why, WhyRow};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_daemon-state");

const IDLE: &str = "tick: request or quiet window or idle 2 h, not backing off -> TRANSITIONING";
const FIRST_TURN: &str = "tick: first turn older than 1 h -> on";
const RELEARN: &str = "tick: window learned 24 h ago -> on";
const BACKING_OFF: &str = "tick: backing off -> stay";
const LOCK_WAIT: &str = "tick: lock wait expired -> WAKE";
const LOCK_PENDING: &str = "tick: lock wait pending -> stay";
const ACTIVITY: &str = "continue: client active within 30 s -> WAKE";
const CYCLES_LEFT: &str = "continue: cycles left -> DREAMING";

fn t(text: &str) -> Timestamp {
    timestamp::parse_moment(text).unwrap()
}

/// An engine over a state file holding `state`; the directory lives as long as the engine.
fn open(state: Value) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".daemon-state.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (engine, report) = Engine::open(&path).unwrap();
    assert!(report.recovery.is_none() && report.warnings.is_empty(), "{report:?}");
    (dir, engine)
}

/// `why` at `at`, whose next action is always the engine's next deadline.
fn why(engine: &Engine, at: DateTime<Utc>) -> Why {
    let why = daemon_state::why::why(engine.state(), engine.data(), at);
    assert_eq!(why.next_action_at, engine.next_deadline(at), "at {at}");
    assert_eq!(why.state, engine.state());
    why
}

fn row<'a>(why: &'a Why, name: &str) -> &'a WhyRow {
    why.rows.iter().find(|r| r.row == name).unwrap_or_else(|| panic!("no row {name}: {why:?}"))
}

/// Asserts the words and one row at `at`: whether it holds and from when.
fn check(engine: &Engine, at: &str, name: &str, holds: bool, from: Option<&str>, text: &str) {
    let why = why(engine, t(at));
    assert_eq!(why.text, text, "at {at}");
    let row = row(&why, name);
    assert_eq!((row.holds, row.from), (holds, from.map(t)), "{name} at {at}");
}

fn second(at: &str, by: i64) -> String {
    timestamp::format(t(at) + Duration::seconds(by))
}

#[test]
fn wake_idle_rule_boundary() {
    let (_dir, engine) = open(json!({
        "fsm_state": "WAKE",
        "daemon_started_at": "2026-04-18T09:00:00+00:00",
        "last_session_ts": "2026-04-18T09:12:00+00:00",
        "quiet_window": [46, 16],
        "quiet_window_learned_at": "2026-04-18T08:00:00+00:00",
    }));
    let due = "2026-04-18T11:12:00Z";
    check(
        &engine,
        &second(due, -1),
        IDLE,
        false,
        Some(due),
        "WAKE: no night yet. Last session 09:12, so the idle rule holds from 11:12 (in 1 s). \
         Quiet window 23:00-07:00 UTC opens at 23:00 (in 11 h 48 min 1 s). \
         Window relearn due at 08:00 (in 20 h 48 min 1 s). No request pending. \
         Next tick that can act: 11:12.",
    );
    check(
        &engine,
        &second(due, 1),
        IDLE,
        true,
        Some(due),
        "WAKE: no night yet. Last session 09:12, so the idle rule holds since 11:12. \
         Quiet window 23:00-07:00 UTC opens at 23:00 (in 11 h 47 min 59 s). \
         Window relearn due at 08:00 (in 20 h 47 min 59 s). No request pending. \
         Next tick that can act: now.",
    );
}

#[test]
fn wake_idle_rule_counts_from_a_later_boot() {
    let (_dir, engine) = open(json!({
        "fsm_state": "WAKE",
        "daemon_started_at": "2026-04-18T10:00:00+00:00",
        "last_session_ts": "2026-04-17T21:00:00+00:00",
        "quiet_window_learned_at": "2026-04-18T08:00:00+00:00",
    }));
    let due = "2026-04-18T12:00:00Z";
    check(
        &engine,
        &second(due, -1),
        IDLE,
        false,
        Some(due),
        "WAKE: no night yet. Booted 10:00, so the idle rule holds from 12:00 (in 1 s). \
         No quiet window learned. Window relearn due at 08:00 (in 20 h 1 s). \
         No request pending. Next tick that can act: 12:00.",
    );
    check(
        &engine,
        &second(due, 1),
        IDLE,
        true,
        Some(due),
        "WAKE: no night yet. Booted 10:00, so the idle rule holds since 12:00. \
         No quiet window learned. Window relearn due at 08:00 (in 19 h 59 min 59 s). \
         No request pending. Next tick that can act: now.",
    );
}

/// 23:00-07:00 in Paris (UTC+2 in April) opens at 21:00 UTC.
fn paris(night: Value) -> Value {
    json!({
        "fsm_state": "WAKE",
        "timezone": "Europe/Paris",
        "last_session_ts": "2026-04-18T20:30:00+00:00",
        "quiet_window": [46, 16],
        "quiet_window_learned_at": "2026-04-18T08:00:00+00:00",
        "night": night,
    })
}

#[test]
fn wake_quiet_window_start_boundary() {
    let (_dir, engine) = open(paris(Value::Null));
    let due = "2026-04-18T21:00:00Z";
    check(
        &engine,
        &second(due, -1),
        IDLE,
        false,
        Some(due),
        "WAKE: no night yet. Last session 22:30, so the idle rule holds from 00:30 (in 1 h 30 min 1 s). \
         Quiet window 23:00-07:00 Europe/Paris opens at 23:00 (in 1 s). \
         Window relearn due at 10:00 (in 11 h 1 s). No request pending. \
         Next tick that can act: 23:00.",
    );
    check(
        &engine,
        &second(due, 1),
        IDLE,
        true,
        Some(due),
        "WAKE: no night yet. Last session 22:30, so the idle rule holds from 00:30 (in 1 h 29 min 59 s). \
         Quiet window 23:00-07:00 Europe/Paris is open until 07:00. \
         Window relearn due at 10:00 (in 10 h 59 min 59 s). No request pending. \
         Next tick that can act: now.",
    );
}

#[test]
fn wake_quiet_window_that_already_started_a_night() {
    let night = json!({"started_at": "2026-04-18T21:10:00+00:00", "planned": 4, "completed": 4,
        "lock_lost": false, "activity_at": null, "retry_after": null});
    let (_dir, engine) = open(paris(night));
    check(
        &engine,
        "2026-04-18T23:00:00Z",
        IDLE,
        false,
        Some("2026-04-19T21:00:00Z"),
        "WAKE: last night started 23:10 on 2026-04-18. \
         Last session 22:30 on 2026-04-18; a night started since, so the idle rule waits for a session. \
         Quiet window 23:00-07:00 Europe/Paris already started a night this time. \
         Window relearn due at 10:00 (in 9 h). No request pending. \
         Next tick that can act: 10:00.",
    );
}

#[test]
fn wake_relearn_boundary() {
    let (_dir, engine) = open(json!({
        "fsm_state": "WAKE",
        "last_session_ts": "2026-04-18T11:00:00+00:00",
        "quiet_window_learned_at": "2026-04-17T12:00:00+00:00",
    }));
    let due = "2026-04-18T12:00:00Z";
    check(
        &engine,
        &second(due, -1),
        RELEARN,
        false,
        Some(due),
        "WAKE: no night yet. Last session 11:00, so the idle rule holds from 13:00 (in 1 h 1 s). \
         No quiet window learned. Window relearn due at 12:00 (in 1 s). No request pending. \
         Next tick that can act: 12:00.",
    );
    check(
        &engine,
        &second(due, 1),
        RELEARN,
        true,
        Some(due),
        "WAKE: no night yet. Last session 11:00, so the idle rule holds from 13:00 (in 59 min 59 s). \
         No quiet window learned. Window relearn due since 12:00. No request pending. \
         Next tick that can act: now.",
    );
}

#[test]
fn wake_lock_back_off_boundary() {
    let (_dir, mut engine) = open(json!({
        "fsm_state": "WAKE",
        "last_session_ts": "2026-04-18T21:00:00+00:00",
        "quiet_window_learned_at": "2026-04-18T08:00:00+00:00",
        "user_sleep_request": {"reason": "bed", "ts": "2026-04-18T22:00:00Z", "pending": true},
    }));
    let send = |engine: &mut Engine, at: &str, kind| {
        let _ = engine.handle(Event::new(t(at), kind)).unwrap();
    };
    send(&mut engine, "2026-04-18T22:00:30Z", EventKind::Tick { store_empty: false });
    send(&mut engine, "2026-04-18T22:00:31Z", EventKind::LockDenied);
    let end = "2026-04-18T22:05:31Z";
    let before = second(end, -1);
    check(
        &engine,
        &before,
        IDLE,
        false,
        Some(end),
        "WAKE: no night yet. Last session 21:00, so the idle rule holds from 23:00 (in 54 min 30 s). \
         No quiet window learned. Window relearn due at 08:00 (in 9 h 54 min 30 s). \
         A user sleep request is pending. \
         The lock was refused; no new attempt before 22:05:31 (in 1 s). \
         Next tick that can act: 22:05:31.",
    );
    let why_before = why(&engine, t(&before));
    let backing = row(&why_before, BACKING_OFF);
    assert_eq!((backing.holds, backing.from), (true, Some(t("2026-04-18T22:00:31Z"))));
    let after = second(end, 1);
    check(
        &engine,
        &after,
        IDLE,
        true,
        Some(&after),
        "WAKE: no night yet. Last session 21:00, so the idle rule holds from 23:00 (in 54 min 28 s). \
         No quiet window learned. Window relearn due at 08:00 (in 9 h 54 min 28 s). \
         A user sleep request is pending. Next tick that can act: now.",
    );
    let why_after = why(&engine, t(&after));
    let backing = row(&why_after, BACKING_OFF);
    assert_eq!((backing.holds, backing.from), (false, None));
}

#[test]
fn wake_paused_hides_the_rows_after_the_pause() {
    let (_dir, engine) = open(json!({
        "fsm_state": "WAKE",
        "scheduler_paused": true,
        "last_session_ts": "2026-04-18T09:00:00+00:00",
    }));
    let why = why(&engine, t("2026-04-18T12:00:00Z"));
    assert_eq!(
        why.text,
        "WAKE: the scheduler is paused; a tick does nothing until resumed. \
         No tick can act until an event comes."
    );
    let names: Vec<(&str, bool)> = why.rows.iter().map(|r| (r.row.as_str(), r.holds)).collect();
    assert_eq!(names, [(FIRST_TURN, false), ("tick: paused -> stay", true)]);
}

#[test]
fn transitioning_lock_wait_boundary() {
    let (_dir, engine) = open(json!({
        "fsm_state": "TRANSITIONING",
        "fsm_transition_at": "2026-04-18T23:00:30+00:00",
    }));
    let due = "2026-04-18T23:05:30Z";
    check(
        &engine,
        &second(due, -1),
        LOCK_WAIT,
        false,
        Some(due),
        "TRANSITIONING: waiting for the lock since 23:00:30. It gives up at 23:05:30 (in 1 s). \
         Next tick that can act: 23:05:30.",
    );
    let before = why(&engine, t(&second(due, -1)));
    assert!(row(&before, LOCK_PENDING).holds);
    check(
        &engine,
        &second(due, 1),
        LOCK_WAIT,
        true,
        Some(due),
        "TRANSITIONING: waiting for the lock since 23:00:30. \
         The wait ran out at 23:05:30; a tick gives up and backs off. Next tick that can act: now.",
    );
    let after = why(&engine, t(&second(due, 1)));
    assert!(!row(&after, LOCK_PENDING).holds);
}

fn night(completed: u32, activity_at: Option<&str>) -> Value {
    json!({"started_at": "2026-04-18T23:00:00+00:00", "planned": 4, "completed": completed,
        "lock_lost": false, "activity_at": activity_at, "retry_after": null})
}

#[test]
fn sleep_recent_activity_boundary() {
    let (_dir, engine) = open(json!({
        "fsm_state": "SLEEP",
        "night": night(1, Some("2026-04-18T23:20:00+00:00")),
    }));
    let ends = "2026-04-18T23:20:30Z";
    check(
        &engine,
        &second(ends, -1),
        ACTIVITY,
        true,
        Some("2026-04-18T23:20:00Z"),
        "SLEEP: 1 of 4 cycles done. \
         Client activity at 23:20, so a tick ends the night if it comes before 23:20:30 (in 1 s). \
         Next tick that can act: now.",
    );
    check(
        &engine,
        &second(ends, 1),
        ACTIVITY,
        false,
        None,
        "SLEEP: 1 of 4 cycles done. A tick runs cycle 2 of 4. Next tick that can act: now.",
    );
    let after = why(&engine, t(&second(ends, 1)));
    assert!(row(&after, CYCLES_LEFT).holds);
    assert!(!row(&after, "continue: cycles done -> WAKE").holds);
}

#[test]
fn sleep_with_every_cycle_done_or_a_force_wake() {
    let (_dir, engine) = open(json!({"fsm_state": "SLEEP", "night": night(4, None)}));
    let why = why(&engine, t("2026-04-19T01:00:00Z"));
    assert_eq!(
        why.text,
        "SLEEP: 4 of 4 cycles done. All cycles are done, so a tick ends the night. \
         Next tick that can act: now."
    );
    assert!(row(&why, "continue: cycles done -> WAKE").holds);
    let (_dir, engine) = open(json!({
        "fsm_state": "SLEEP",
        "night": night(2, None),
        "force_wake_request": {"ts": "x", "pending": true},
    }));
    let why = self::why(&engine, t("2026-04-19T01:00:00Z"));
    assert_eq!(
        why.text,
        "SLEEP: 2 of 4 cycles done. A force-wake is pending, so a tick ends the night. \
         Next tick that can act: now."
    );
    assert!(row(&why, "continue: force-wake requested -> WAKE").holds);
    // Cycles are left, but the row before ends the night: the fallback is not reached.
    assert!(row(&why, CYCLES_LEFT).holds);
    assert!(!row(&why, "continue: cycles done -> WAKE").holds);
}

#[test]
fn dreaming_recent_activity_boundary() {
    let (_dir, engine) = open(json!({
        "fsm_state": "DREAMING",
        "night": night(1, Some("2026-04-18T23:20:00+00:00")),
    }));
    let ends = "2026-04-18T23:20:30Z";
    let before = why(&engine, t(&second(ends, -1)));
    assert_eq!(
        before.text,
        "DREAMING: cycle 2 of 4 is running; a tick does nothing until it finishes. \
         Client activity at 23:20, so the night ends if it finishes before 23:20:30 (in 1 s). \
         No tick can act until an event comes."
    );
    let after = why(&engine, t(&second(ends, 1)));
    assert_eq!(
        after.text,
        "DREAMING: cycle 2 of 4 is running; a tick does nothing until it finishes. \
         Then cycle 3 of 4. No tick can act until an event comes."
    );
    assert_eq!(after.rows, [WhyRow { row: FIRST_TURN.into(), holds: false, from: None }]);
}

/// Every state has the first-turn expiry: a mark at 09:12 expires just after 10:12.
#[test]
fn first_turn_expiry_boundary_in_every_state() {
    let expiry = t("2026-04-18T10:12:00.000001Z");
    let cases = [
        (
            json!({"fsm_state": "WAKE", "scheduler_paused": true}),
            "WAKE: the scheduler is paused; a tick does nothing until resumed. ",
        ),
        (
            json!({"fsm_state": "TRANSITIONING", "fsm_transition_at": "2026-04-18T10:11:00+00:00"}),
            "TRANSITIONING: waiting for the lock since 10:11. ",
        ),
        (
            json!({"fsm_state": "SLEEP", "night": night(4, None)}),
            "SLEEP: 4 of 4 cycles done. All cycles are done, so a tick ends the night. ",
        ),
        (
            json!({"fsm_state": "DREAMING", "night": night(3, None)}),
            "DREAMING: cycle 4 of 4 is running; a tick does nothing until it finishes. \
             It is the last, so the night ends when it finishes. ",
        ),
    ];
    for (mut state, opening) in cases {
        state["first_turn_pending"] = json!({"sess-1": "2026-04-18T09:12:00+00:00"});
        let (_dir, engine) = open(state);
        let before = why(&engine, t("2026-04-18T10:11:59Z"));
        let after = why(&engine, t("2026-04-18T10:12:01Z"));
        let (b, a) = (row(&before, FIRST_TURN), row(&after, FIRST_TURN));
        assert_eq!((b.holds, b.from), (false, Some(expiry)), "{opening}");
        assert_eq!((a.holds, a.from), (true, Some(expiry)), "{opening}");
        let (before, after) = (before.text, after.text);
        assert!(before.starts_with(opening), "{before}");
        assert!(after.starts_with(opening), "{after}");
        let (before, after) = (&before[opening.len()..], &after[opening.len()..]);
        if engine.state().as_str() == "TRANSITIONING" {
            assert_eq!(
                before,
                "It gives up at 10:16 (in 4 min 1 s). A first-turn mark expires at 10:12 (in 1 s). \
                 Next tick that can act: 10:12."
            );
            assert_eq!(
                after,
                "It gives up at 10:16 (in 3 min 59 s). \
                 A first-turn mark expired at 10:12; a tick drops it. Next tick that can act: now."
            );
            continue;
        }
        let next = if engine.state().as_str() == "SLEEP" { "now" } else { "10:12" };
        assert_eq!(
            before,
            format!("A first-turn mark expires at 10:12 (in 1 s). Next tick that can act: {next}.")
        );
        assert_eq!(
            after,
            "A first-turn mark expired at 10:12; a tick drops it. Next tick that can act: now."
        );
    }
}

fn cli(state: Value, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let before = std::fs::read(&path).unwrap();
    let output = Command::new(BIN)
        .env_remove("DAEMON_STATE_FILE")
        .env_remove("DAEMON_STATE_TZ")
        .env_remove("RUST_LOG")
        .arg("--state-file")
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before, "why writes nothing");
    output
}

#[test]
fn cli_why_json_is_one_ordered_object() {
    let state = json!({
        "fsm_state": "TRANSITIONING",
        "fsm_transition_at": "2026-04-18T23:00:30+00:00",
    });
    let output = cli(state.clone(), &["why", "--json", "--at", "2026-04-18T23:05:29Z"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        text,
        "{\"ok\":true,\"state\":\"TRANSITIONING\",\"rows\":[\
         {\"row\":\"tick: first turn older than 1 h -> on\",\"holds\":false,\"from\":null},\
         {\"row\":\"tick: lock wait expired -> WAKE\",\"holds\":false,\
         \"from\":\"2026-04-18T23:05:30+00:00\"},\
         {\"row\":\"tick: lock wait pending -> stay\",\"holds\":true,\
         \"from\":\"2026-04-18T23:05:29+00:00\"}],\
         \"next_action_at\":\"2026-04-18T23:05:30+00:00\",\
         \"text\":\"TRANSITIONING: waiting for the lock since 23:00:30. \
         It gives up at 23:05:30 (in 1 s). Next tick that can act: 23:05:30.\"}\n"
    );
    // `--now` is the default moment; `--at` wins; text without --json.
    let output = cli(state.clone(), &["--now", "2026-04-18T23:05:31Z", "why"]);
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "TRANSITIONING: waiting for the lock since 23:00:30. \
         The wait ran out at 23:05:30; a tick gives up and backs off. Next tick that can act: now.\n"
    );
    let output = cli(state.clone(), &["why", "--lock-timeout", "1"]);
    assert_eq!(output.status.code(), Some(2));
    let output = cli(state, &["why", "--at", "soon"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn protocol_why_answers_at_its_ts() {
    let (_dir, mut engine) = open(json!({
        "fsm_state": "TRANSITIONING",
        "fsm_transition_at": "2026-04-18T23:00:30+00:00",
    }));
    let clock = || t("2026-04-18T23:05:31Z");
    let reply = daemon_state::protocol::reply(
        &mut engine,
        r#"{"type": "why", "ts": "2026-04-18T23:05:29Z", "extra": 1}"#,
        clock,
    )
    .unwrap();
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["ok"], json!(true));
    assert_eq!(reply["state"], json!("TRANSITIONING"));
    assert_eq!(reply["next_action_at"], json!("2026-04-18T23:05:30+00:00"));
    assert_eq!(
        reply["rows"][1],
        json!({"row": LOCK_WAIT, "holds": false, "from": "2026-04-18T23:05:30+00:00"})
    );
    let reply = daemon_state::protocol::reply(&mut engine, r#"{"type": "why"}"#, clock).unwrap();
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["next_action_at"], json!("2026-04-18T23:05:31+00:00"));
    assert_eq!(reply["rows"][1]["holds"], json!(true));
    let keys: Vec<&str> = reply.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 5);
}
