//! First-turn and digest cases through the engine and its store (acceptance 12.1, 12.3, 12.8), and
//! what a failed save does to them.

use std::path::Path;

use chrono::{DateTime, Duration, TimeZone, Utc};
use daemon_state::effects::{Audit, Effect};
use daemon_state::engine::{Engine, EngineError};
use daemon_state::event::{Event, EventKind};
use daemon_state::store::{Call, SimFs, Store};
use daemon_state::timestamp::format;
use serde_json::{Value, json};

const PATH: &str = "/state/.daemon-state.json";

/// An audit's payload as the wire spells it.
fn effect_payload(audit: &Audit) -> Value {
    serde_json::to_value(Effect::Emit(audit.clone())).unwrap()["payload"].clone()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 27, 12, 0, 0).unwrap()
}

fn engine_on(fs: &SimFs, state: Value) -> Engine {
    let store = Store::with_fs(PATH, Box::new(fs.clone())).unwrap();
    fs.replace_durably(Path::new(PATH), &serde_json::to_vec_pretty(&state).unwrap());
    Engine::with_store(store).unwrap().0
}

fn on_disk(fs: &SimFs) -> Value {
    serde_json::from_slice(&fs.contents(Path::new(PATH)).unwrap()).unwrap()
}

/// Five stale sessions (2 h old) and five fresh ones (30 s old).
fn five_stale_five_fresh() -> Value {
    let mut pending = serde_json::Map::new();
    for i in 0..5 {
        pending.insert(format!("sess-stale-{i}"), json!(format(now() - Duration::hours(2))));
        pending.insert(format!("sess-fresh-{i}"), json!(format(now() - Duration::seconds(30))));
    }
    json!({"fsm_state": "WAKE", "scheduler_paused": true, "first_turn_pending": pending})
}

fn expired_events(effects: &[Effect]) -> Vec<Value> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Emit(audit @ Audit::FirstTurnPendingExpired { .. }) => {
                Some(effect_payload(audit))
            }
            _ => None,
        })
        .collect()
}

// acceptance 12.3.4: the reaper runs at startup and on every tick, with an explicit moment, and
// says which sessions it dropped with the phase it ran in.
#[test]
fn reaper_at_startup_and_per_tick_reports_the_dropped_sessions() {
    let stale: Vec<String> = (0..5).map(|i| format!("sess-stale-{i}")).collect();
    for (phase, kind) in
        [("startup", EventKind::Boot), ("tick", EventKind::Tick { store_empty: false })]
    {
        let fs = SimFs::new();
        let mut engine = engine_on(&fs, five_stale_five_fresh());
        let outcome = engine.handle(Event::new(now(), kind)).unwrap();
        let events = expired_events(&outcome.effects);
        assert_eq!(
            events,
            [json!({"dropped_count": 5, "session_ids": stale, "ttl_sec": 3600.0, "phase": phase})],
            "{phase}"
        );
        let kept: Vec<String> =
            on_disk(&fs)["first_turn_pending"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(kept.len(), 5, "{phase}");
        assert!(kept.iter().all(|k| k.starts_with("sess-fresh-")), "{phase}: {kept:?}");
    }
}

// acceptance 12.3.2: nothing stale, nothing reported, nothing written.
#[test]
fn reaper_with_only_fresh_sessions_drops_nothing() {
    let fs = SimFs::new();
    let mut state = five_stale_five_fresh();
    state["first_turn_pending"].as_object_mut().unwrap().retain(|k, _| k.starts_with("sess-fresh"));
    state["last_tick_skipped_reason"] = json!("paused");
    let mut engine = engine_on(&fs, state);
    let writes = engine.store().durable_writes();
    let outcome = engine.handle(Event::new(now(), EventKind::Tick { store_empty: false })).unwrap();
    assert!(expired_events(&outcome.effects).is_empty());
    assert_eq!(
        engine.store().durable_writes(),
        writes,
        "a tick that changes nothing durable writes nothing"
    );
}

fn full_digest() -> Value {
    json!({"rem_cycles_completed": 4, "episodes_processed": 10, "schemas_induced_tier0": 3,
           "claude_call_used": true, "quota_used_pct": 0.003, "main_insight_text": "today's unifying insight",
           "sigma_observed": 1.2, "s5_drift_alerts": [], "daemon_uptime_hours": 8, "timed_out_cycles": 0})
}

// acceptance 12.8.1 and 12.8.4 (and 12.1.3): last shown 20 h ago, a recall delivers every field,
// and on disk the digest is gone and the moment it was shown is recorded.
#[test]
fn recall_delivers_the_digest_after_18_hours_and_the_disk_agrees() {
    let fs = SimFs::new();
    let mut engine = engine_on(
        &fs,
        json!({"pending_digest": full_digest(), "last_digest_shown_at": format(now() - Duration::hours(20))}),
    );
    let outcome = engine
        .handle(Event::new(now(), EventKind::Recall { session_id: Some("s".into()) }))
        .unwrap();
    assert_eq!(outcome.digest.map(|d| d.to_value()), Some(full_digest()));
    let disk = on_disk(&fs);
    assert!(disk.get("pending_digest").is_none());
    assert_eq!(disk["last_digest_shown_at"], format(now()));
}

// acceptance 12.8.2 (and 12.1.4): last shown 4 h ago, withheld, nothing changes on disk.
#[test]
fn recall_withholds_the_digest_before_18_hours() {
    let fs = SimFs::new();
    let last = format(now() - Duration::hours(4));
    let mut engine =
        engine_on(&fs, json!({"pending_digest": full_digest(), "last_digest_shown_at": last}));
    let writes = engine.store().durable_writes();
    let outcome = engine
        .handle(Event::new(now(), EventKind::Recall { session_id: Some("s".into()) }))
        .unwrap();
    assert_eq!(outcome.digest, None);
    assert_eq!(engine.store().durable_writes(), writes);
    assert_eq!(on_disk(&fs)["pending_digest"], full_digest());
}

// acceptance 12.8.3 (and 12.1.5): no digest, nothing delivered.
#[test]
fn recall_without_a_digest_gives_nothing() {
    let fs = SimFs::new();
    let mut engine = engine_on(&fs, json!({}));
    let outcome = engine
        .handle(Event::new(now(), EventKind::Recall { session_id: Some("s".into()) }))
        .unwrap();
    assert_eq!(outcome.digest, None);
    assert_eq!(outcome.first_turn, Some(false));
}

// fix: the digest leaves memory only once its removal is durable. A save that fails keeps it, on
// disk and in the engine, and the next recall delivers it.
#[test]
fn a_failed_save_does_not_lose_the_digest() {
    let fs = SimFs::new();
    let mut engine = engine_on(&fs, json!({"pending_digest": full_digest()}));
    fs.fail_at(Call::Sync, 0, libc::ENOSPC);
    let err = engine
        .handle(Event::new(now(), EventKind::Recall { session_id: Some("s".into()) }))
        .unwrap_err();
    assert!(matches!(err, EngineError::Store(_)), "{err}");
    assert_eq!(engine.record().get("pending_digest"), Some(&full_digest()));
    assert_eq!(on_disk(&fs)["pending_digest"], full_digest());
    let outcome = engine
        .handle(Event::new(now(), EventKind::Recall { session_id: Some("s".into()) }))
        .unwrap();
    assert_eq!(outcome.digest.map(|d| d.to_value()), Some(full_digest()));
    assert!(on_disk(&fs).get("pending_digest").is_none());
}

// A failed save mid-night leaves the engine at the last durable state, which is what the file says.
#[test]
fn a_failed_save_rolls_back_to_the_durable_state() {
    let fs = SimFs::new();
    let mut engine = engine_on(&fs, json!({"fsm_state": "WAKE"}));
    fs.fail_at(Call::Rename, 0, libc::EIO);
    assert!(engine.handle(Event::new(now(), EventKind::Tick { store_empty: false })).is_err());
    assert_eq!(engine.state().as_str(), on_disk(&fs)["fsm_state"].as_str().unwrap());
    let outcome = engine.handle(Event::new(now(), EventKind::Tick { store_empty: false })).unwrap();
    assert_eq!(outcome.transitions.len(), 1, "the next tick retries the transition");
    assert_eq!(on_disk(&fs)["fsm_state"], "TRANSITIONING");
}

// A change another process made between two events is read before the next one and kept.
#[test]
fn another_writers_change_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".daemon-state.json");
    let (mut daemon, _) = Engine::open(&path).unwrap();
    let _ = daemon
        .handle(Event::new(now(), EventKind::SessionStarted { session_id: Some("a".into()) }))
        .unwrap();
    {
        let (mut cli, _) = Engine::open(&path).unwrap();
        let _ = cli.handle(Event::new(now(), EventKind::Pause)).unwrap();
    }
    let _ = daemon
        .handle(Event::new(now(), EventKind::SessionStarted { session_id: Some("b".into()) }))
        .unwrap();
    let disk: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(disk["scheduler_paused"], true, "the other process's pause survives");
    assert!(
        disk["first_turn_pending"]["a"].is_string() && disk["first_turn_pending"]["b"].is_string()
    );
}

// The seed's session_open bookkeeping rides with the session start: one locked cycle, one write.
#[test]
fn an_event_and_its_bookkeeping_cost_one_write() {
    let fs = SimFs::new();
    let mut engine = engine_on(&fs, json!({"fsm_state": "WAKE"}));
    let writes = engine.store().durable_writes();
    let event = Event::new(now(), EventKind::SessionStarted { session_id: Some("s".into()) });
    let _ = engine
        .handle_with(event, |record| record.set("last_session_open", json!({"session_id": "s"})))
        .unwrap();
    assert_eq!(engine.store().durable_writes(), writes + 1);
    let disk = on_disk(&fs);
    assert_eq!(disk["last_session_open"], json!({"session_id": "s"}));
    assert!(disk["first_turn_pending"]["s"].is_string());
}

// Ids are clipped to 128 characters when marked, and the same clip finds them when recalled.
#[test]
fn a_long_session_id_is_found_again_at_recall() {
    let fs = SimFs::new();
    let mut engine = engine_on(&fs, json!({}));
    let long = "a".repeat(1000);
    let _ = engine
        .handle(Event::new(now(), EventKind::SessionStarted { session_id: Some(long.clone()) }))
        .unwrap();
    assert!(on_disk(&fs)["first_turn_pending"][&"a".repeat(128)].is_string());
    let outcome =
        engine.handle(Event::new(now(), EventKind::Recall { session_id: Some(long) })).unwrap();
    assert_eq!(outcome.first_turn, Some(true));
}

// Restoring the engine from a file in any state fires no entry action: the first event after the
// restore gives no release of the lock, no REM cycle, no write of its own.
#[test]
fn restoring_fires_no_entry_effect() {
    for state in ["WAKE", "TRANSITIONING", "SLEEP", "DREAMING"] {
        let fs = SimFs::new();
        let night = json!({"started_at": format(now()), "planned": 4, "completed": 1,
            "lock_lost": false, "activity_at": null});
        let mut engine = engine_on(&fs, json!({"fsm_state": state, "night": night}));
        assert_eq!(engine.state().as_str(), state);
        assert_eq!(engine.store().durable_writes(), 0, "{state}: opening writes nothing");
        let outcome = engine.handle(Event::new(now(), EventKind::Pause)).unwrap();
        assert!(outcome.effects.is_empty(), "{state}: {:?}", outcome.effects);
        assert!(outcome.transitions.is_empty(), "{state}");
        assert_eq!(engine.state().as_str(), state);
    }
}

// A save that fails between SLEEP and DREAMING leaves the engine at rest in SLEEP, the last durable
// state; the next tick takes SLEEP's decision again, so the night goes on instead of sticking.
#[test]
fn a_night_stuck_in_sleep_by_a_failed_save_goes_on_at_the_next_tick() {
    let fs = SimFs::new();
    let mut engine = engine_on(
        &fs,
        json!({"fsm_state": "WAKE", "force_rem_request": {"ts": "t", "pending": true}}),
    );
    let _ = engine.handle(Event::new(now(), EventKind::Tick { store_empty: false })).unwrap();
    assert_eq!(engine.state().as_str(), "TRANSITIONING");
    fs.fail_at(Call::Create, 1, libc::ENOSPC);
    assert!(engine.handle(Event::new(now(), EventKind::LockAcquired)).is_err());
    assert_eq!(engine.state().as_str(), "SLEEP");
    assert_eq!(on_disk(&fs)["fsm_state"], "SLEEP");
    let outcome = engine.handle(Event::new(now(), EventKind::Tick { store_empty: false })).unwrap();
    assert_eq!(engine.state().as_str(), "DREAMING");
    assert!(outcome.effects.contains(&Effect::RunRemCycle { cycle: 1, of: 1, is_last: true }));
}

#[test]
fn status_and_the_record_tell_the_generation_the_file_holds() {
    let fs = SimFs::new();
    let mut engine = engine_on(&fs, json!({"fsm_state": "WAKE", "generation": 5}));
    for id in ["a", "b", "c"] {
        let event = EventKind::SessionStarted { session_id: Some(id.into()) };
        let _ = engine.handle(Event::new(now(), event)).unwrap();
    }
    let written = on_disk(&fs)["generation"].as_u64().unwrap();
    assert_eq!(written, 8, "three durable writes after generation 5");
    assert_eq!(engine.status(now()).generation, written);
    assert_eq!(engine.record().generation(), written);
}
