//! The 2 h idle rule counts from the later of the last session and the daemon's boot (issue 11,
//! **fix**: the seed counted a state file with no session as idle at any hour, so a fresh daemon
//! slept on its first tick). `next_deadline` names the moment the rule starts to hold.

use chrono::{DateTime, Duration, TimeZone, Utc};
use daemon_state::engine::Engine;
use daemon_state::event::{Event, EventKind};
use daemon_state::table::StateName;
use daemon_state::timestamp::format;
use serde_json::{Value, json};

fn boot_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 18, 11, 0, 0).unwrap()
}

/// An engine over a fresh state file holding `state`; the directory lives as long as the engine.
fn open(state: Value) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".daemon-state.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (engine, report) = Engine::open(&path).unwrap();
    assert!(report.recovery.is_none() && report.warnings.is_empty(), "{report:?}");
    (dir, engine)
}

fn send(engine: &mut Engine, at: DateTime<Utc>, kind: EventKind) {
    let _ = engine.handle(Event::new(at, kind)).unwrap();
}

/// The reason of the night a tick at `at` starts, or `None` when it starts none.
fn tick(engine: &mut Engine, at: DateTime<Utc>) -> Option<String> {
    let outcome = engine.handle(Event::new(at, EventKind::Tick { store_empty: false })).unwrap();
    let started = outcome.transitions.iter().find(|t| t.to == StateName::Transitioning);
    started.map(|t| t.reason.to_string())
}

/// Boots (after `before_boot` ran), ticks at once and just short of `idle_from + 2 h`: no night,
/// and the next deadline is `idle_from + 2 h`; a tick then starts a night for idleness.
fn sleeps_two_hours_after(
    state: Value,
    before_boot: impl FnOnce(&mut Engine),
    after_boot: impl FnOnce(&mut Engine),
    idle_from: DateTime<Utc>,
) {
    let (_dir, mut engine) = open(state);
    before_boot(&mut engine);
    send(&mut engine, boot_at(), EventKind::Boot);
    after_boot(&mut engine);
    let due = idle_from + Duration::hours(2);
    let first = boot_at().max(idle_from);
    assert_eq!(tick(&mut engine, first), None, "no night on the first tick");
    assert_eq!(engine.state(), StateName::Wake);
    assert_eq!(engine.next_deadline(first), Some(due));
    assert_eq!(engine.status(first).next_deadline, Some(due));
    assert_eq!(tick(&mut engine, due - Duration::seconds(1)), None, "no night before 2 h");
    assert_eq!(engine.next_deadline(due - Duration::seconds(1)), Some(due));
    assert_eq!(tick(&mut engine, due).as_deref(), Some("idle"), "a night at 2 h");
    assert_eq!(engine.state(), StateName::Transitioning);
}

#[test]
fn a_fresh_daemon_sleeps_two_hours_after_boot_not_on_its_first_tick() {
    sleeps_two_hours_after(json!({"fsm_state": "WAKE"}), |_| {}, |_| {}, boot_at());
}

#[test]
fn a_session_before_the_boot_counts_from_the_boot() {
    let session = boot_at() - Duration::minutes(90);
    sleeps_two_hours_after(
        json!({"fsm_state": "WAKE"}),
        |engine| send(engine, session, EventKind::SessionStarted { session_id: Some("s".into()) }),
        |_| {},
        boot_at(),
    );
}

#[test]
fn a_session_after_the_boot_counts_from_the_session() {
    let session = boot_at() + Duration::minutes(40);
    sleeps_two_hours_after(
        json!({"fsm_state": "WAKE"}),
        |_| {},
        // No id: no first-turn mark, whose 1 h expiry would be the nearer deadline.
        |engine| send(engine, session, EventKind::SessionStarted { session_id: None }),
        session,
    );
}

// A state file from a boot long ago whose session is older still: the rule holds at once, as it
// did before the fix (the later of the two is more than 2 h back).
#[test]
fn an_old_boot_and_older_session_sleep_at_once() {
    let (_dir, mut engine) = open(json!({"fsm_state": "WAKE",
        "daemon_started_at": format(boot_at() - Duration::hours(3)),
        "last_session_ts": format(boot_at() - Duration::hours(5))}));
    assert_eq!(engine.next_deadline(boot_at()), Some(boot_at()));
    assert_eq!(tick(&mut engine, boot_at()).as_deref(), Some("idle"));
}
