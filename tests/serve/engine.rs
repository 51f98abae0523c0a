//! The `serve` protocol's engine messages: one test per message type, each reply
//! compared whole, through the library's stream API with a fixed clock.

use serde_json::{Value, json};

use super::{Daemon, NOW};

/// The moment most messages carry in their `ts`.
const AT: &str = "2026-04-18T03:30:00+00:00";

/// Starts a daemon on `state`, sends `request` and compares the whole reply; returns the daemon
/// for a look at the disk.
#[track_caller]
fn check(state: Value, request: &str, expected: Value) -> Daemon {
    let daemon = Daemon::new(state);
    assert_eq!(daemon.ask(request), expected, "request {request}");
    daemon
}

/// An engine reply; `next` is its `next_deadline` (`None`: nothing due, the host waits for
/// something else).
fn reply(state: &str, transitions: Value, effects: Value, next: Option<&str>) -> Value {
    json!({"ok": true, "state": state, "transitions": transitions, "effects": effects,
           "next_deadline": next})
}

fn step(from: &str, to: &str, reason: &str) -> Value {
    json!({"from": from, "to": to, "reason": reason, "at": AT})
}

fn transitioning() -> Value {
    json!({"fsm_state": "TRANSITIONING", "fsm_transition_at": AT})
}

fn dreaming(planned: u32) -> Value {
    json!({
        "fsm_state": "DREAMING",
        "fsm_transition_at": "2026-04-18T03:00:00+00:00",
        "night": {"started_at": "2026-04-18T03:00:00+00:00", "planned": planned, "completed": 0,
                  "lock_lost": false, "activity_at": null},
    })
}

#[test]
fn boot() {
    let daemon = check(
        json!({"fsm_state": "WAKE"}),
        r#"{"type": "boot"}"#,
        reply("WAKE", json!([]), json!([]), Some(NOW)),
    );
    assert_eq!(daemon.disk()["daemon_started_at"], json!(NOW), "no ts: the server's clock");

    let recovered = json!({"effect": "emit", "kind": "fsm_recovered", "severity": "warning",
                           "payload": {"found": "DREAMING", "at": AT}});
    let daemon = check(
        dreaming(4),
        &format!(r#"{{"type": "boot", "ts": "{AT}"}}"#),
        reply(
            "WAKE",
            json!([step("DREAMING", "SLEEP", "recovered"), step("SLEEP", "WAKE", "wound_down")]),
            json!([recovered, {"effect": "release_lock"}]),
            Some(AT),
        ),
    );
    assert_eq!(daemon.disk()["fsm_state"], json!("WAKE"));
}

#[test]
fn shutdown() {
    check(
        transitioning(),
        &format!(r#"{{"type": "shutdown", "ts": "{AT}"}}"#),
        reply(
            "WAKE",
            json!([step("TRANSITIONING", "WAKE", "shutdown")]),
            json!([{"effect": "release_lock"}]),
            Some(AT),
        ),
    );
}

#[test]
fn lock_acquired() {
    check(
        transitioning(),
        &format!(r#"{{"type": "lock_acquired", "ts": "{AT}"}}"#),
        reply(
            "DREAMING",
            json!([
                step("TRANSITIONING", "SLEEP", "lock_acquired"),
                step("SLEEP", "DREAMING", "next_cycle")
            ]),
            json!([{"effect": "run_rem_cycle", "cycle": 1, "of": 4, "is_last": false}]),
            None,
        ),
    );
    // A rejected event: no row in WAKE, nothing written.
    let daemon = check(
        json!({"fsm_state": "WAKE"}),
        r#"{"type": "lock_acquired"}"#,
        json!({"ok": false, "reason": "rejected", "state": "WAKE",
               "error": "lock_acquired is not accepted in WAKE: no row for it in this state",
               "next_deadline": NOW}),
    );
    assert_eq!(daemon.disk(), json!({"fsm_state": "WAKE"}));
}

#[test]
fn lock_denied() {
    let yielded = json!({"effect": "emit", "kind": "daemon_yielded", "severity": "info",
                         "payload": {"reason": "mcp_active", "completed_cycles": 0}});
    check(
        transitioning(),
        &format!(r#"{{"type": "lock_denied", "ts": "{AT}"}}"#),
        reply(
            "WAKE",
            json!([step("TRANSITIONING", "WAKE", "lock_denied")]),
            json!([yielded, {"effect": "release_lock"}]),
            Some(AT),
        ),
    );
}

#[test]
fn lock_lost() {
    let daemon = check(
        dreaming(4),
        r#"{"type": "lock_lost"}"#,
        reply("DREAMING", json!([]), json!([]), None),
    );
    assert_eq!(daemon.disk()["night"]["lock_lost"], json!(true));
}

#[test]
fn mcp_activity() {
    let daemon = check(
        dreaming(4),
        &format!(r#"{{"type": "mcp_activity", "ts": "{AT}"}}"#),
        reply("DREAMING", json!([]), json!([]), None),
    );
    assert_eq!(daemon.disk()["night"]["activity_at"], json!(AT));
}

#[test]
fn tick() {
    let daemon = check(
        json!({"fsm_state": "WAKE"}),
        &format!(r#"{{"type": "tick", "ts": "{AT}", "store_empty": true}}"#),
        reply("WAKE", json!([]), json!([]), Some(AT)),
    );
    assert_eq!(daemon.disk()["last_tick_skipped_reason"], json!("empty_store"));
    assert_eq!(daemon.disk()["last_tick_at"], json!(AT));

    let request = json!({"reason": "bed", "ts": AT, "pending": true});
    check(
        json!({"fsm_state": "WAKE", "user_sleep_request": request}),
        &format!(r#"{{"type": "tick", "ts": "{AT}"}}"#),
        reply(
            "TRANSITIONING",
            json!([step("WAKE", "TRANSITIONING", "user_sleep_request")]),
            json!([{"effect": "acquire_lock"}]),
            Some("2026-04-18T03:35:00+00:00"), // the lock wait's end
        ),
    );
}

#[test]
fn recall() {
    let digest = json!({"rem_cycles_completed": 1, "episodes_processed": 2, "schemas_induced_tier0": 0,
                        "claude_call_used": false, "main_insight_text": null, "timed_out_cycles": 0});
    let state = json!({"fsm_state": "WAKE", "first_turn_pending": {"s1": "2026-04-18T12:00:00+00:00"},
                       "pending_digest": digest});
    let mut expected = reply("WAKE", json!([]), json!([]), Some(NOW));
    expected["first_turn"] = json!(true);
    expected["digest"] = digest;
    let daemon = check(state, r#"{"type": "recall", "session_id": "s1"}"#, expected);
    let disk = daemon.disk();
    assert_eq!(disk["first_turn_pending"], json!({}));
    assert_eq!(disk.get("pending_digest"), None);
    assert_eq!(disk["last_digest_shown_at"], json!(NOW));

    let mut expected = reply("WAKE", json!([]), json!([]), Some(NOW));
    expected["first_turn"] = json!(false);
    expected["digest"] = Value::Null;
    assert_eq!(daemon.ask(r#"{"type": "recall", "session_id": "s1"}"#), expected, "only once");
}

#[test]
fn rem_cycle_finished() {
    let daemon = check(
        dreaming(1),
        &format!(
            r#"{{"type": "rem_cycle_finished", "ts": "{AT}", "result": {{"summaries_created": 2, "schema_candidates": 1, "claude_call_used": true, "main_insight_text": "links", "timed_out": false}}}}"#
        ),
        reply(
            "WAKE",
            json!([
                step("DREAMING", "SLEEP", "rem_cycle_finished"),
                step("SLEEP", "WAKE", "cycles_done")
            ]),
            json!([{"effect": "release_lock"}]),
            Some(AT),
        ),
    );
    let digest = json!({"rem_cycles_completed": 1, "episodes_processed": 2, "schemas_induced_tier0": 1,
                        "claude_call_used": true, "main_insight_text": "links", "timed_out_cycles": 0});
    assert_eq!(daemon.disk()["pending_digest"], digest);
    assert_eq!(daemon.disk()["last_completed_cycles"], json!(1));
}
