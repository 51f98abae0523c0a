//! The statig handlers against the transition table: every state x every event x every guard
//! outcome must give the table's target, the table's actions, or the table's rejection.

use chrono::{DateTime, Duration, TimeZone, Utc};
use daemon_state::digest::RemResult;
use daemon_state::event::{Event, EventKind, Settings, Trigger};
use daemon_state::kernel::Core;
use daemon_state::record::Record;
use daemon_state::table::{Guard, Row, StateName, TABLE, Taken, Target, rows_for};
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 18, 12, 0, 0).unwrap()
}

fn iso(at: DateTime<Utc>) -> String {
    daemon_state::timestamp::format(at)
}

/// The event a host would send for a trigger (`None` for the engine's own `Continue`).
fn event_for(trigger: Trigger, store_empty: bool) -> Option<Event> {
    let kind = match trigger {
        Trigger::Boot => EventKind::Boot,
        Trigger::Tick => EventKind::Tick { store_empty },
        Trigger::SessionStarted => EventKind::SessionStarted { session_id: Some("s1".into()) },
        Trigger::Recall => EventKind::Recall { session_id: "s1".into() },
        Trigger::LockAcquired => EventKind::LockAcquired,
        Trigger::LockDenied => EventKind::LockDenied,
        Trigger::LockLost => EventKind::LockLost,
        Trigger::McpActivity => EventKind::McpActivity,
        Trigger::RemCycleFinished => EventKind::RemCycleFinished { result: RemResult::default() },
        Trigger::UserSleepRequested => {
            EventKind::UserSleepRequested { reason: "bed".into(), ts: None }
        }
        Trigger::ForceRemRequested => EventKind::ForceRemRequested { ts: None },
        Trigger::ForceWakeRequested => EventKind::ForceWakeRequested { ts: None },
        Trigger::Pause => EventKind::Pause,
        Trigger::Resume => EventKind::Resume,
        Trigger::Configure => {
            EventKind::Configure(Settings { rem_cycle_count: Some(3), timezone: None })
        }
        Trigger::Shutdown => EventKind::Shutdown,
        Trigger::Continue => return None,
    };
    Some(Event::new(now(), kind))
}

/// Everything a guard reads, arranged so that `guard` holds (and, for guards tried in order,
/// the earlier ones do not).
struct Fixture {
    record: Value,
    store_empty: bool,
    winding_down: bool,
}

const ALL_GUARDS: [Guard; 13] = [
    Guard::Always,
    Guard::Paused,
    Guard::StoreEmpty,
    Guard::SleepDue,
    Guard::OutsideWindow,
    Guard::LockWaitExpired,
    Guard::LockWaitPending,
    Guard::WindingDown,
    Guard::ForceWake,
    Guard::LockLost,
    Guard::RecentActivity,
    Guard::CyclesLeft,
    Guard::CyclesDone,
];

fn fixture(state: StateName, guard: Guard) -> Fixture {
    let at = now();
    let night = |completed: u32, extra: Value| {
        let mut n = json!({"started_at": iso(at - Duration::hours(1)), "planned": 4, "completed": completed,
            "lock_lost": false, "activity_at": null});
        for (k, v) in extra.as_object().unwrap() {
            n[k] = v.clone();
        }
        n
    };
    let mut record = json!({
        "fsm_state": state.as_str(),
        "fsm_transition_at": iso(at - Duration::minutes(1)),
        "last_session_ts": iso(at - Duration::minutes(10)),
        "first_turn_pending": {"s1": iso(at - Duration::minutes(5))},
        "pending_digest": {"rem_cycles_completed": 1},
        "night": night(1, json!({})),
    });
    let (mut store_empty, mut winding_down) = (false, false);
    match guard {
        Guard::Always | Guard::OutsideWindow | Guard::LockWaitPending | Guard::CyclesLeft => {}
        Guard::Paused => record["scheduler_paused"] = json!(true),
        Guard::StoreEmpty => store_empty = true,
        Guard::SleepDue => {
            record["user_sleep_request"] = json!({"reason": "bed", "ts": iso(at), "pending": true});
        }
        Guard::LockWaitExpired => {
            record["fsm_transition_at"] = json!(iso(at - Duration::minutes(10)))
        }
        Guard::WindingDown => winding_down = true,
        Guard::ForceWake => record["force_wake_request"] = json!({"ts": iso(at), "pending": true}),
        Guard::LockLost => record["night"] = night(1, json!({"lock_lost": true})),
        Guard::RecentActivity => {
            record["night"] = night(1, json!({"activity_at": iso(at - Duration::seconds(5))}))
        }
        Guard::CyclesDone => record["night"] = night(4, json!({})),
    }
    Fixture { record, store_empty, winding_down }
}

/// Whether a row's guard holds for this core and fixture: the table's own reading of its guards.
fn holds(guard: Guard, core: &Core, fixture: &Fixture) -> bool {
    let data = core.data();
    let at = now();
    match guard {
        Guard::Always | Guard::OutsideWindow | Guard::CyclesDone => true,
        Guard::Paused => data.view().paused,
        Guard::StoreEmpty => fixture.store_empty,
        Guard::SleepDue => data.sleep_due(at).is_some(),
        Guard::LockWaitExpired => data.lock_wait_expired(at),
        Guard::LockWaitPending => !data.lock_wait_expired(at),
        Guard::WindingDown => fixture.winding_down,
        Guard::ForceWake | Guard::LockLost | Guard::RecentActivity => {
            data.yield_reason(at).map(|(g, _)| g) == Some(guard)
        }
        Guard::CyclesLeft => data.cycles_left(),
    }
}

/// Only the engine's own `Continue` follows a boot recovery or a shutdown within one call.
fn winding_down(fixture: &Fixture, trigger: Trigger) -> bool {
    fixture.winding_down && trigger == Trigger::Continue
}

/// What one step visibly did, in one line: the rejection, or the state reached, the transitions
/// with their reasons, the effects, the recall's answer, and every key of the document it changed.
fn behaviour(state: StateName, trigger: Trigger, guard: Guard) -> String {
    let fixture = fixture(state, guard);
    let before = fixture.record.as_object().unwrap().clone();
    let (mut core, _) = Core::restore(Record::from_map(before.clone()));
    let event = event_for(trigger, fixture.store_empty);
    let step = core.step(event.as_ref(), trigger, now(), winding_down(&fixture, trigger));
    let case = format!("{state} x {trigger} x {guard:?}");
    if let Some(rejection) = step.rejection {
        return format!("{case}: rejected: {rejection}");
    }
    let mut line = format!("{case}: {}", step.state);
    for t in &step.transitions {
        line.push_str(&format!("; {} -> {} ({})", t.from, t.to, t.reason));
    }
    for effect in &step.effects {
        line.push_str(&format!("; effect {}", effect.to_json()));
    }
    if let Some(recall) = &step.recall {
        line.push_str(&format!("; recall {recall:?}"));
    }
    if let Some(at) = core.data().last_tick_at() {
        line.push_str(&format!("; last tick {}", iso(at)));
    }
    let after: serde_json::Map<String, Value> =
        serde_json::from_slice(&core.data().record().to_vec()).unwrap();
    for (key, value) in before.iter() {
        match after.get(key) {
            Some(new) if new == value => {}
            Some(new) => line.push_str(&format!("; {key} = {new}")),
            None => line.push_str(&format!("; {key} removed")),
        }
    }
    for (key, value) in after.iter().filter(|(k, _)| !before.contains_key(*k)) {
        line.push_str(&format!("; {key} = {value}"));
    }
    line
}

fn row_name(row: &Row) -> String {
    let to = match row.to {
        Target::Stay => row.from.as_str(),
        Target::Go(s) => s.as_str(),
    };
    format!("{} --{} [{}]--> {}", row.from, row.trigger, row.guard.label(), to)
}

/// Runs one machine step on the fixture and checks it against the table. Returns the row taken.
#[track_caller]
fn check(state: StateName, trigger: Trigger, guard: Guard) -> Option<&'static Row> {
    let fixture = fixture(state, guard);
    let record = Record::from_map(fixture.record.as_object().unwrap().clone());
    let (mut core, warnings) = Core::restore(record.clone());
    assert!(warnings.is_empty(), "{warnings:?}");
    let expected = rows_for(state, trigger).find(|row| holds(row.guard, &core, &fixture));
    let event = event_for(trigger, fixture.store_empty);
    let step = core.step(event.as_ref(), trigger, now(), winding_down(&fixture, trigger));
    let case = format!("{state} x {trigger} x fixture {guard:?}");
    match expected {
        None => {
            assert!(
                step.rejection.is_some(),
                "{case}: the table has no row, the machine accepted: {step:?}"
            );
            assert_eq!(step.state, state, "{case}: a rejection must not move");
            assert!(
                step.actions.is_empty(),
                "{case}: a rejection must do nothing, did {:?}",
                step.actions
            );
            assert_eq!(core.data().record(), &record, "{case}: a rejection must change nothing");
            assert!(step.rows.is_empty(), "{case}: a rejection takes no row");
        }
        Some(row) => {
            let name = row_name(row);
            assert_eq!(step.rejection, None, "{case}: row {name} exists, the machine rejected");
            let target = match row.to {
                Target::Stay => state,
                Target::Go(s) => s,
            };
            assert_eq!(step.state, target, "{case}: row {name}");
            assert_eq!(step.actions, row.actions, "{case}: row {name}");
            let reported = Taken { from: state, trigger, guard: row.guard };
            assert_eq!(step.rows, [reported], "{case}: the machine names the row it took");
        }
    }
    expected
}

#[test]
fn every_state_event_and_guard_outcome_matches_the_table() {
    let mut taken = std::collections::HashSet::new();
    for state in StateName::ALL {
        for trigger in Trigger::ALL {
            for guard in ALL_GUARDS {
                if let Some(row) = check(state, trigger, guard) {
                    taken.insert(row_name(row));
                }
            }
        }
    }
    let missed: Vec<String> = TABLE.iter().map(row_name).filter(|n| !taken.contains(n)).collect();
    assert!(missed.is_empty(), "rows no fixture reached: {missed:#?}");
}

/// One named check per row of the table: each row's own fixture takes exactly that row.
#[test]
fn each_row_is_taken_under_its_own_guard() {
    for row in &TABLE {
        let taken = check(row.from, row.trigger, row.guard);
        assert_eq!(taken.map(row_name), Some(row_name(row)), "row {}", row_name(row));
    }
}

/// The behaviour of every state x event x fixture, recorded in `tests/expect/table_machine.txt`:
/// a change of any row's target, actions or reason shows here. After a deliberate change, record
/// it again with `UPDATE_EXPECT=1 cargo test --test table_machine`.
#[test]
fn every_case_behaves_as_recorded() {
    let mut lines = Vec::new();
    for state in StateName::ALL {
        for trigger in Trigger::ALL {
            for guard in ALL_GUARDS {
                lines.push(behaviour(state, trigger, guard));
            }
        }
    }
    let drawn = lines.join("\n") + "\n";
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expect/table_machine.txt");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &drawn).unwrap();
    }
    let recorded = std::fs::read_to_string(&path).unwrap_or_default();
    let differ: Vec<(&str, &str)> =
        recorded.lines().zip(drawn.lines()).filter(|(a, b)| a != b).take(5).collect();
    assert!(
        recorded == drawn,
        "the machine's behaviour differs from {}: {differ:#?}",
        path.display()
    );
}
