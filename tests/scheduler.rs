//! The scheduler's decisions against the seed project's cases (acceptance 12.6, 12.9, 12.10), with
//! an injected clock and a small host that grants the lock and runs REM cycles.
// Many steps send an event only to move the host along; their outcome is not read.
#![allow(unused_must_use)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use daemon_state::digest::RemResult;
use daemon_state::effects::Effect;
use daemon_state::engine::Engine;
use daemon_state::event::{Event, EventKind};
use daemon_state::kernel::Outcome;
use daemon_state::quiet_window;
use daemon_state::table::{StateName, check_edge};
use daemon_state::timestamp::{format, parse};
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 18, 23, 10, 0).unwrap()
}

/// `[(current local bucket - 2) mod 48, 8]`, as the seed's tests build it.
fn window_covering(at: DateTime<Utc>) -> Value {
    let bucket = quiet_window::bucket_of(at, chrono_tz::UTC);
    json!([(bucket + 46) % 48, 8])
}

struct Host {
    dir: tempfile::TempDir,
    engine: Engine,
    cycles: Vec<u32>,
    effects: Vec<Effect>,
    at: DateTime<Utc>,
}

impl Host {
    fn new(state: Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".daemon-state.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
        // Private, as the store and the seed write it (a wider mode is repaired with a warning).
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let (engine, report) = Engine::open(&path).unwrap();
        assert!(report.recovery.is_none() && report.warnings.is_empty(), "{report:?}");
        Self { dir, engine, cycles: Vec::new(), effects: Vec::new(), at: now() }
    }

    fn send(&mut self, kind: EventKind) -> Outcome {
        let before = self.engine.state();
        let outcome = self.engine.handle(Event::new(self.at, kind)).unwrap();
        let mut current = before;
        for t in &outcome.transitions {
            assert_eq!(t.from, current);
            check_edge(t.from, t.to).unwrap();
            current = t.to;
        }
        self.effects.extend(outcome.effects.iter().cloned());
        outcome
    }

    /// One tick, then a host that grants the lock and runs every cycle asked for. `during` runs
    /// while a cycle is in progress and may send events of its own.
    fn tick_through_night(&mut self, summaries: u64, mut during: impl FnMut(&mut Host, u32)) {
        let mut pending = self.send(EventKind::Tick { store_empty: false }).effects;
        while let Some(effect) = pending.first().cloned() {
            pending.remove(0);
            let next = match effect {
                Effect::AcquireLock => self.send(EventKind::LockAcquired).effects,
                Effect::RunRemCycle { cycle, .. } => {
                    self.cycles.push(cycle);
                    during(self, cycle);
                    let result = RemResult { summaries_created: summaries, ..RemResult::default() };
                    self.send(EventKind::RemCycleFinished { result }).effects
                }
                _ => Vec::new(),
            };
            pending.extend(next);
        }
    }

    fn disk(&self) -> Value {
        let bytes = std::fs::read(self.dir.path().join(".daemon-state.json")).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn emitted(&self, kind: &str) -> Vec<Value> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Emit(audit) if audit.kind() == kind => Some(
                    serde_json::to_value(Effect::Emit(audit.clone())).unwrap()["payload"].clone(),
                ),
                _ => None,
            })
            .collect()
    }
}

// acceptance 12.9.1 and 12.9.6: a paused scheduler skips, says so once, and persists it.
#[test]
fn paused_tick_skips_once_and_persists() {
    let mut host = Host::new(
        json!({"fsm_state": "WAKE", "scheduler_paused": true, "quiet_window": window_covering(now())}),
    );
    host.tick_through_night(0, |_, _| panic!("no REM cycle may run while paused"));
    assert_eq!(host.engine.state(), StateName::Wake);
    assert_eq!(host.emitted("daemon_tick_skipped"), [json!({"reason": "paused"})]);
    let disk = host.disk();
    assert_eq!(disk["last_tick_skipped_reason"], "paused");
    assert_eq!(disk["scheduler_paused"], true);
    assert!(parse(disk["last_tick_at"].as_str().unwrap()).is_some());
    // fix: the seed emitted the skip on every tick; a pause is reported once.
    host.at += Duration::seconds(30);
    host.tick_through_night(0, |_, _| panic!("still paused"));
    assert_eq!(host.emitted("daemon_tick_skipped").len(), 1);
}

// acceptance 12.9.2: a user-sleep request starts a night outside any window.
#[test]
fn user_sleep_bypasses_the_window() {
    let mut host = Host::new(json!({
        "fsm_state": "WAKE", "quiet_window": null,
        "user_sleep_request": {"reason": "I am going to bed now", "ts": "2026-04-18T23:00:00+00:00", "pending": true},
        "last_session_ts": format(now()),
    }));
    host.tick_through_night(1, |_, _| {});
    assert_eq!(host.cycles, [1, 2, 3, 4]);
    assert_eq!(host.engine.state(), StateName::Wake);
    let disk = host.disk();
    assert_eq!(disk["user_sleep_request"]["pending"], false);
    assert!(disk["user_sleep_request"]["honored_at"].is_string());
    assert_eq!(disk["last_completed_cycles"], 4);
    assert_eq!(
        disk["pending_digest"],
        json!({"rem_cycles_completed": 4, "episodes_processed": 4, "schemas_induced_tier0": 0,
               "claude_call_used": false, "main_insight_text": null, "timed_out_cycles": 0})
    );
}

// acceptance 12.9.3: force-REM runs exactly one cycle.
#[test]
fn force_rem_runs_one_cycle() {
    let mut host = Host::new(json!({
        "fsm_state": "WAKE", "quiet_window": null, "rem_cycle_count": 4,
        "force_rem_request": {"ts": "2026-04-18T10:00:00+00:00", "pending": true},
        "last_session_ts": format(now()),
    }));
    host.tick_through_night(0, |_, _| {});
    assert_eq!(host.cycles, [1]);
    assert_eq!(host.disk()["force_rem_request"]["pending"], false);
    assert_eq!(host.engine.state(), StateName::Wake);
}

// acceptance 12.9.4: a force-wake sent during cycle 2 ends the night after cycle 2.
#[test]
fn force_wake_mid_run_yields_at_the_boundary() {
    let mut host = Host::new(
        json!({"fsm_state": "WAKE", "quiet_window": window_covering(now()), "rem_cycle_count": 5}),
    );
    host.tick_through_night(0, |host, cycle| {
        if cycle == 2 {
            host.send(EventKind::ForceWakeRequested { ts: Some(format(host.at)) });
        }
    });
    assert_eq!(host.cycles, [1, 2]);
    let disk = host.disk();
    assert_eq!(disk["force_wake_request"]["pending"], false);
    assert!(disk["force_wake_request"]["honored_at"].is_string());
    assert_eq!(
        host.emitted("daemon_yielded"),
        [json!({"reason": "force_wake_requested", "completed_cycles": 2})]
    );
    assert_eq!(host.engine.state(), StateName::Wake);
}

// acceptance 12.9.4 (fix): a force-wake sent while no night runs does not cut the next
// night short; the seed stopped that night after its first cycle.
#[test]
fn stale_force_wake_does_not_cut_the_next_night() {
    let mut host = Host::new(
        json!({"fsm_state": "WAKE", "quiet_window": window_covering(now()), "rem_cycle_count": 3}),
    );
    host.at -= Duration::hours(1);
    host.send(EventKind::ForceWakeRequested { ts: None });
    host.at = now();
    host.tick_through_night(0, |_, _| {});
    assert_eq!(host.cycles, [1, 2, 3]);
    assert!(host.emitted("daemon_yielded").is_empty());
    assert_eq!(host.disk()["force_wake_request"]["pending"], false);
}

// acceptance 12.9.5: both requests pending: one cycle, both honoured.
#[test]
fn both_requests_run_one_cycle_and_are_both_honoured() {
    let mut host = Host::new(json!({
        "fsm_state": "WAKE", "rem_cycle_count": 4, "last_session_ts": format(now()),
        "user_sleep_request": {"reason": "bedtime", "ts": "2026-04-18T23:00:00+00:00", "pending": true},
        "force_rem_request": {"ts": "2026-04-18T23:00:01+00:00", "pending": true},
    }));
    host.tick_through_night(0, |_, _| {});
    assert_eq!(host.cycles, [1]);
    let disk = host.disk();
    assert_eq!(disk["user_sleep_request"]["pending"], false);
    assert_eq!(disk["force_rem_request"]["pending"], false);
}

// acceptance 12.6.3: an empty store skips the tick and runs no cycle.
#[test]
fn empty_store_skips() {
    let mut host = Host::new(json!({"fsm_state": "WAKE"}));
    let outcome = host.send(EventKind::Tick { store_empty: true });
    assert!(outcome.transitions.is_empty());
    assert!(!outcome.effects.iter().any(|e| matches!(e, Effect::RunRemCycle { .. })));
    assert_eq!(host.disk()["last_tick_skipped_reason"], "empty_store");
}

// acceptance 12.10.1: client activity 5 s before the boundary ends the night after cycle 1.
#[test]
fn recent_activity_yields_after_the_first_cycle() {
    let mut host = Host::new(
        json!({"fsm_state": "WAKE", "quiet_window": window_covering(now()), "rem_cycle_count": 5}),
    );
    host.at -= Duration::seconds(5);
    host.send(EventKind::McpActivity);
    host.at = now();
    host.tick_through_night(0, |_, _| {});
    assert_eq!(host.cycles, [1]);
    assert_eq!(
        host.emitted("daemon_yielded"),
        [json!({"reason": "mcp_recent_activity", "completed_cycles": 1})]
    );
    assert_eq!(host.engine.state(), StateName::Wake);
}

// acceptance 12.10.2: activity 600 s old does not stop the night.
#[test]
fn old_activity_does_not_yield() {
    let mut host = Host::new(
        json!({"fsm_state": "WAKE", "quiet_window": window_covering(now()), "rem_cycle_count": 3}),
    );
    host.at -= Duration::seconds(600);
    host.send(EventKind::McpActivity);
    host.at = now();
    host.tick_through_night(0, |_, _| {});
    assert_eq!(host.cycles, [1, 2, 3]);
    assert!(host.emitted("daemon_yielded").is_empty());
    assert_eq!(host.engine.state(), StateName::Wake);
}

// The lock lost mid-night ends it at the next boundary with the seed's reason.
#[test]
fn lock_lost_yields_at_the_boundary() {
    let mut host = Host::new(
        json!({"fsm_state": "WAKE", "quiet_window": window_covering(now()), "rem_cycle_count": 4}),
    );
    host.tick_through_night(0, |host, cycle| {
        if cycle == 1 {
            host.send(EventKind::LockLost);
        }
    });
    assert_eq!(host.cycles, [1]);
    assert_eq!(
        host.emitted("daemon_yielded"),
        [json!({"reason": "mcp_reacquired_mid_night", "completed_cycles": 1})]
    );
}

// A denied lock yields with `mcp_active`; a lock that never comes times out.
#[test]
fn lock_denied_and_lock_timeout() {
    let mut host = Host::new(json!({"fsm_state": "WAKE", "quiet_window": window_covering(now())}));
    host.send(EventKind::Tick { store_empty: false });
    assert_eq!(host.engine.state(), StateName::Transitioning);
    host.send(EventKind::LockDenied);
    assert_eq!(host.engine.state(), StateName::Wake);
    assert_eq!(
        host.emitted("daemon_yielded"),
        [json!({"reason": "mcp_active", "completed_cycles": 0})]
    );

    let mut host = Host::new(json!({"fsm_state": "WAKE", "quiet_window": window_covering(now())}));
    host.send(EventKind::Tick { store_empty: false });
    host.at += Duration::minutes(1);
    host.send(EventKind::Tick { store_empty: false });
    assert_eq!(host.engine.state(), StateName::Transitioning);
    host.at += Duration::minutes(5);
    host.send(EventKind::Tick { store_empty: false });
    assert_eq!(host.engine.state(), StateName::Wake);
    assert_eq!(host.emitted("daemon_yielded")[0]["reason"], "lock_timeout");
}

// Crash recovery: a file left mid-night boots back to WAKE through legal edges, says what it found,
// releases the lock, and keeps the digest.
#[test]
fn boot_recovers_every_mid_night_state() {
    for found in ["TRANSITIONING", "SLEEP", "DREAMING"] {
        let digest = json!({"rem_cycles_completed": 2, "episodes_processed": 7});
        let mut host = Host::new(json!({
            "fsm_state": found, "pending_digest": digest,
            "night": {"started_at": format(now() - Duration::hours(1)), "planned": 4, "completed": 2,
                      "lock_lost": false, "activity_at": null},
        }));
        let outcome = host.send(EventKind::Boot);
        assert_eq!(host.engine.state(), StateName::Wake, "{found}");
        let path: Vec<&str> = outcome.transitions.iter().map(|t| t.to.as_str()).collect();
        let expected: &[&str] = if found == "DREAMING" { &["SLEEP", "WAKE"] } else { &["WAKE"] };
        assert_eq!(path, expected, "{found}");
        assert_eq!(host.emitted("fsm_recovered")[0]["found"], found);
        assert!(outcome.effects.contains(&Effect::ReleaseLock), "{found}");
        let disk = host.disk();
        assert_eq!(disk["fsm_state"], "WAKE");
        assert_eq!(disk["pending_digest"], digest, "{found}: the digest survives recovery");
        assert_eq!(disk["daemon_started_at"], format(now()));
    }
}

// fix: a shutdown mid-night walks back to WAKE before the process exits, so the file never says
// DREAMING after a clean stop.
#[test]
fn shutdown_mid_night_leaves_wake_on_disk() {
    let mut host = Host::new(
        json!({"fsm_state": "WAKE", "quiet_window": window_covering(now()), "rem_cycle_count": 4}),
    );
    host.send(EventKind::Tick { store_empty: false });
    host.send(EventKind::LockAcquired);
    assert_eq!(host.engine.state(), StateName::Dreaming);
    let outcome = host.send(EventKind::Shutdown);
    assert_eq!(host.engine.state(), StateName::Wake);
    assert!(outcome.effects.contains(&Effect::ReleaseLock));
    assert_eq!(host.disk()["fsm_state"], "WAKE");
}

// acceptance 12.6.1, engine form: the seed's edge walk, with the raw transition API.
#[test]
fn seed_fsm_walk_in_engine_form() {
    let mut host = Host::new(json!({}));
    let at = now();
    host.engine.transition(StateName::Transitioning, at).unwrap();
    host.engine.transition(StateName::Sleep, at).unwrap();
    host.engine.transition(StateName::Dreaming, at).unwrap();
    let err = host.engine.transition(StateName::Transitioning, at).unwrap_err();
    assert!(err.to_string().contains("Illegal transition"), "{err}");
    assert_eq!(err.to_string(), "Illegal transition DREAMING -> TRANSITIONING; allowed: ['SLEEP']");
    assert_eq!(host.engine.state(), StateName::Dreaming);
    host.engine.transition(StateName::Sleep, at).unwrap();
    host.engine.transition(StateName::Wake, at).unwrap();
    assert!(host.engine.transition(StateName::Sleep, at).is_err());
    assert_eq!(host.disk()["fsm_state"], "WAKE");
}

// SessionStarted writes last_session_ts (fix: the seed never wrote it) and marks the first turn;
// Recall consumes it once and takes the digest through the gate.
#[test]
fn session_and_recall() {
    let mut host =
        Host::new(json!({"fsm_state": "WAKE", "pending_digest": {"rem_cycles_completed": 1}}));
    host.send(EventKind::SessionStarted { session_id: Some("s1".into()) });
    let disk = host.disk();
    assert_eq!(disk["last_session_ts"], format(now()));
    assert_eq!(disk["first_turn_pending"]["s1"], format(now()));
    let first = host.send(EventKind::Recall { session_id: Some("s1".into()) });
    assert_eq!(first.first_turn, Some(true));
    assert_eq!(first.digest.map(|d| d.to_value()), Some(json!({"rem_cycles_completed": 1})));
    let second = host.send(EventKind::Recall { session_id: Some("s1".into()) });
    assert_eq!(second.first_turn, Some(false));
    assert_eq!(second.digest, None);
    assert!(host.disk().get("pending_digest").is_none());
}

// A simulated idle day: one session, then 2,880 ticks 30 s apart with the host granting the lock
// and finishing every cycle. Exactly one night, 2 h after the session, and few durable writes
// (the seed wrote the file on every tick: 2,880 times).
#[test]
fn idle_day_runs_one_night_with_few_writes() {
    let mut host = Host::new(json!({"fsm_state": "WAKE"}));
    let writes_before = host.engine.store().durable_writes();
    let session_at = now();
    host.send(EventKind::SessionStarted { session_id: Some("morning".into()) });
    let mut night_starts = Vec::new();
    for _ in 0..2880 {
        host.at += Duration::seconds(30);
        let cycles_before = host.cycles.len();
        host.tick_through_night(1, |_, _| {});
        if host.cycles.len() > cycles_before {
            night_starts.push(host.at);
        }
    }
    assert_eq!(
        night_starts,
        [session_at + Duration::hours(2)],
        "exactly one night, 2 h after the session"
    );
    assert_eq!(host.cycles, [1, 2, 3, 4]);
    let writes = host.engine.store().durable_writes() - writes_before;
    assert!(writes <= 30, "{writes} durable writes in an idle day");
    assert_eq!(host.engine.state(), StateName::Wake);
}

// A week of sessions at 10 an hour through the day: the state file stays small, and the window the
// engine learns from its bounded history equals the pure function over every timestamp.
#[test]
fn a_week_of_sessions_keeps_the_file_small_and_learns_the_same_window() {
    let mut host = Host::new(json!({"fsm_state": "WAKE"}));
    let start = Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap();
    let mut all = Vec::new();
    for day in 0..7 {
        for hour in 8..22 {
            for i in 0..10 {
                let at = start
                    + Duration::days(day)
                    + Duration::hours(hour)
                    + Duration::minutes(6 * i + 1);
                host.at = at;
                host.send(EventKind::SessionStarted {
                    session_id: Some(format!("d{day}-h{hour}-{i}")),
                });
                all.push(at);
            }
        }
    }
    host.at = start + Duration::days(7) + Duration::hours(7);
    host.send(EventKind::Tick { store_empty: false });
    let expected = quiet_window::learn(&all, host.at, chrono_tz::UTC);
    assert!(expected.is_some(), "the fixture has a quiet night");
    let learned = quiet_window::QuietWindow::from_value(&host.disk()["quiet_window"]);
    assert_eq!(learned, expected);
    let size = std::fs::metadata(host.dir.path().join(".daemon-state.json")).unwrap().len();
    assert!(size < 64 * 1024, "state file is {size} bytes");
}

// next_deadline: when the host must tick next for something to happen.
#[test]
fn next_deadline_names_the_earliest_thing_due() {
    let learned = format(now());
    // The 2 h idle mark after the last session, sooner than the relearn.
    let host = Host::new(json!({"fsm_state": "WAKE", "quiet_window_learned_at": learned,
        "last_session_ts": format(now() - Duration::minutes(10))}));
    assert_eq!(host.engine.next_deadline(now()), Some(now() + Duration::minutes(110)));
    // A first turn expiring (1 h reaper) comes first.
    let host = Host::new(json!({"fsm_state": "WAKE", "quiet_window_learned_at": learned,
        "last_session_ts": format(now() - Duration::minutes(10)),
        "first_turn_pending": {"s": format(now() - Duration::minutes(50))}}));
    let due = host.engine.next_deadline(now()).unwrap();
    assert!(
        due > now() + Duration::minutes(10)
            && due <= now() + Duration::minutes(10) + Duration::seconds(1)
    );
    // The quiet window's start.
    let bucket = quiet_window::bucket_of(now(), chrono_tz::UTC);
    let host = Host::new(json!({"fsm_state": "WAKE", "quiet_window_learned_at": learned,
        "last_session_ts": format(now()), "night": {"started_at": format(now()), "planned": 4,
        "completed": 4, "lock_lost": false, "activity_at": null}, "quiet_window": [(bucket + 1) % 48, 6]}));
    let start = quiet_window::next_window_start(
        quiet_window::QuietWindow::from_value(&json!([(bucket + 1) % 48, 6])).unwrap(),
        now(),
        chrono_tz::UTC,
    );
    assert_eq!(host.engine.next_deadline(now()), start);
    assert!(start.unwrap() > now() && start.unwrap() <= now() + Duration::minutes(30));
    // A pending request: now.
    let host = Host::new(
        json!({"fsm_state": "WAKE", "force_rem_request": {"ts": learned, "pending": true}}),
    );
    assert_eq!(host.engine.next_deadline(now()), Some(now()));
    // Waiting for the lock: the wait bound.
    let host = Host::new(json!({"fsm_state": "TRANSITIONING", "fsm_transition_at": learned,
        "quiet_window_learned_at": learned, "last_session_ts": learned}));
    assert_eq!(host.engine.next_deadline(now()), Some(now() + Duration::minutes(5)));
    // A pause hides everything after it but the first-turn reaper.
    let host = Host::new(json!({"fsm_state": "WAKE", "scheduler_paused": true,
        "force_rem_request": {"ts": learned, "pending": true},
        "first_turn_pending": {"s": format(now() - Duration::minutes(50))}}));
    let due = host.engine.next_deadline(now()).unwrap();
    assert!(due > now() + Duration::minutes(9) && due <= now() + Duration::minutes(11));
    // In SLEEP, at rest after a failed save, and in DREAMING (waiting for the cycle): now, none.
    let night = json!({"started_at": learned, "planned": 4, "completed": 1, "lock_lost": false,
        "activity_at": null});
    let host = Host::new(json!({"fsm_state": "SLEEP", "night": night.clone()}));
    assert_eq!(host.engine.next_deadline(now()), Some(now()));
    let host = Host::new(json!({"fsm_state": "DREAMING", "night": night}));
    assert_eq!(host.engine.next_deadline(now()), None);
}

// After the clock went back past the moment TRANSITIONING began, the lock wait has expired: the
// deadline is now, and a tick now gives up waiting.
#[test]
fn a_lock_wait_the_clock_jumped_over_is_due_at_once() {
    let mut host = Host::new(json!({"fsm_state": "TRANSITIONING",
        "fsm_transition_at": format(now() + Duration::minutes(30))}));
    assert_eq!(host.engine.next_deadline(now()), Some(now()));
    let outcome = host.send(EventKind::Tick { store_empty: false });
    assert_eq!(outcome.transitions[0].reason.as_str(), "lock_timeout");
    assert_eq!(host.engine.state(), StateName::Wake);
}

// The quiet window starts one night per occurrence: after the night, the rest of the window is
// quiet; the next day's window starts the next night.
#[test]
fn the_window_starts_one_night_per_occurrence() {
    let mut host = Host::new(json!({"fsm_state": "WAKE", "quiet_window": window_covering(now()),
        "rem_cycle_count": 2, "quiet_window_learned_at": format(now()), "last_session_ts": format(now())}));
    host.tick_through_night(0, |_, _| {});
    assert_eq!(host.cycles, [1, 2]);
    for _ in 0..20 {
        host.at += Duration::seconds(30);
        host.tick_through_night(0, |_, _| {});
    }
    assert_eq!(host.cycles, [1, 2], "no second night in the same window");
    host.at = now() + Duration::days(1) - Duration::hours(1);
    host.send(EventKind::SessionStarted { session_id: None });
    host.at = now() + Duration::days(1);
    host.tick_through_night(0, |_, _| {});
    assert_eq!(host.cycles, [1, 2, 1, 2], "the next day's window starts the next night");
}

// fix: a relearn that finds no window (too little history) keeps the previous one; the seed
// replaced it with nothing. Relearning is due at exactly 24 h (inclusive).
#[test]
fn an_empty_relearn_keeps_the_previous_window() {
    let mut host = Host::new(json!({"fsm_state": "WAKE", "quiet_window": [44, 16],
        "quiet_window_learned_at": format(now() - Duration::hours(24)), "last_session_ts": format(now())}));
    host.send(EventKind::Tick { store_empty: false });
    let disk = host.disk();
    assert_eq!(disk["quiet_window"], json!([44, 16]));
    assert_eq!(disk["quiet_window_learned_at"], format(now()));
}

// A denied lock after an earlier night reports no completed cycles: this attempt ran none.
#[test]
fn a_denied_lock_reports_no_cycles_of_an_earlier_night() {
    let mut host =
        Host::new(json!({"fsm_state": "WAKE", "user_sleep_request": {"reason": "bed", "ts": "t",
        "pending": true}, "night": {"started_at": format(now() - Duration::days(1)), "planned": 4,
        "completed": 3, "lock_lost": false, "activity_at": null}}));
    host.send(EventKind::Tick { store_empty: false });
    host.send(EventKind::LockDenied);
    assert_eq!(
        host.emitted("daemon_yielded"),
        [json!({"reason": "mcp_active", "completed_cycles": 0})]
    );
}

// After a refused lock the scheduler backs off for 5 minutes instead of trying every tick, says
// why it skipped, and tells the host when to try again.
#[test]
fn a_refused_lock_backs_off_for_five_minutes() {
    let mut host =
        Host::new(json!({"fsm_state": "WAKE", "quiet_window_learned_at": format(now())}));
    host.send(EventKind::Tick { store_empty: false });
    host.send(EventKind::LockDenied);
    for _ in 0..9 {
        host.at += Duration::seconds(30);
        let outcome = host.send(EventKind::Tick { store_empty: false });
        assert!(outcome.transitions.is_empty(), "no new attempt within the back-off");
    }
    assert_eq!(host.disk()["last_tick_skipped_reason"], "lock_busy");
    assert_eq!(host.engine.next_deadline(host.at), Some(now() + Duration::minutes(5)));
    host.at = now() + Duration::minutes(5);
    let outcome = host.send(EventKind::Tick { store_empty: false });
    assert_eq!(outcome.transitions.len(), 1, "the next attempt after the back-off");
}

// Client activity during a night is written at most every 10 s, yet a boundary sees it exactly.
#[test]
fn chatty_clients_cost_few_writes_during_a_night() {
    let mut host = Host::new(json!({"fsm_state": "WAKE", "quiet_window": window_covering(now()),
        "rem_cycle_count": 3, "quiet_window_learned_at": format(now()), "last_session_ts": format(now())}));
    let mut writes = 0;
    host.tick_through_night(0, |host, cycle| {
        if cycle == 1 {
            let before = host.engine.store().durable_writes();
            for _ in 0..100 {
                host.at += Duration::milliseconds(500);
                host.send(EventKind::McpActivity);
            }
            writes = host.engine.store().durable_writes() - before;
        }
    });
    assert!(writes <= 6, "{writes} writes for 50 s of activity");
    assert_eq!(host.cycles, [1], "the boundary still sees the activity and yields");
}

// The same around the clock: 10 sessions every hour of the week (1,680) keep the document small,
// and the engine agrees with the pure function (here: no quiet window at all).
#[test]
fn a_week_of_sessions_around_the_clock_keeps_the_document_small() {
    let mut engine = Engine::in_memory();
    let start = Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap();
    let mut all = Vec::new();
    for n in 0..7 * 24 * 10 {
        let at = start + Duration::minutes(6 * n) + Duration::seconds(n % 7);
        engine
            .handle(Event::new(at, EventKind::SessionStarted { session_id: Some(format!("s{n}")) }))
            .unwrap();
        all.push(at);
    }
    let at = start + Duration::days(7);
    engine.handle(Event::new(at, EventKind::Tick { store_empty: false })).unwrap();
    assert_eq!(engine.data().view().window, quiet_window::learn(&all, at, chrono_tz::UTC));
    assert_eq!(engine.data().session_starts().as_slice().len(), all.len());
    let size = engine.record().to_vec().len();
    assert!(size < 64 * 1024, "the document is {size} bytes");
}

// fix: every stored flag reads as the seed's `if value:` reads it, in the scheduler, in `status`
// and in serve's `status` alike. `"yes"` made serve's status say paused while the next tick
// started a night.
#[test]
fn a_truthy_string_pauses_the_scheduler_everywhere() {
    let cases = [
        (json!("yes"), true),
        (json!(1), true),
        (json!([0]), true),
        (json!({"a": null}), true),
        (json!(true), true),
        (json!(""), false),
        (json!(0), false),
        (json!([]), false),
        (json!({}), false),
        (json!(false), false),
    ];
    for (flag, paused) in cases {
        let doc = json!({"fsm_state": "WAKE", "scheduler_paused": flag.clone(),
                         "quiet_window": window_covering(now())});
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".daemon-state.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();

        let serve = std::process::Command::new(env!("CARGO_BIN_EXE_daemon-state"))
            .env_remove("DAEMON_STATE_FILE")
            .env_remove("DAEMON_STATE_TZ")
            .arg("--state-file")
            .arg(&path)
            .args(["--now", &format(now()), "serve"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        serve.stdin.as_ref().unwrap().write_all(b"{\"type\": \"status\"}\n").unwrap();
        let output = serve.wait_with_output().unwrap();
        let reply: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(reply["scheduler_paused"], paused, "serve, {flag}");

        let (mut engine, _) = Engine::open(&path).unwrap();
        assert_eq!(engine.status(now()).paused, paused, "status, {flag}");
        engine.handle(Event::new(now(), EventKind::Tick { store_empty: false })).unwrap();
        let expected = if paused { StateName::Wake } else { StateName::Transitioning };
        assert_eq!(engine.state(), expected, "tick, {flag}");
    }
}

// fix: the requests' `pending` (and the night's `lock_lost`) read the same way.
#[test]
fn a_truthy_pending_flag_is_a_pending_request_everywhere() {
    for (flag, pending) in
        [(json!("yes"), true), (json!(1), true), (json!(0), false), (json!(""), false)]
    {
        let mut host = Host::new(json!({
            "fsm_state": "WAKE", "quiet_window": null, "last_session_ts": format(now()),
            "user_sleep_request": {"reason": "bed", "ts": "x", "pending": flag.clone()},
        }));
        assert_eq!(host.engine.status(now()).requests.user_sleep, pending, "{flag}");
        host.send(EventKind::Tick { store_empty: false });
        let expected = if pending { StateName::Transitioning } else { StateName::Wake };
        assert_eq!(host.engine.state(), expected, "{flag}");
    }
}
