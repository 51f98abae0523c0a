//! The machine the table runs: every state x every event x every guard fixture must take rows of
//! the table (the actions, target and reason of the rows it reports, effects that match those
//! actions) or the table's rejection (which changes nothing), and must behave as recorded in
//! `tests/expect/table_machine.txt`, so that changing a row's target, actions or reason fails here.

use chrono::{DateTime, Duration, TimeZone, Utc};
use daemon_state::digest::RemResult;
use daemon_state::effects::{Audit, Effect};
use daemon_state::event::{Event, EventKind, Input, Settings, Trigger};
use daemon_state::kernel::{Core, Step};
use daemon_state::reason::Reason;
use daemon_state::record::Record;
use daemon_state::table::{Action, Because, Guard, Row, StateName, TABLE, Target, rows_for};
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
        Trigger::Recall => EventKind::Recall { session_id: Some("s1".into()) },
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
        // `Continue`, the engine's own.
        _ => return None,
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

const ALL_GUARDS: [Guard; 16] = [
    Guard::Always,
    Guard::Paused,
    Guard::StoreEmpty,
    Guard::FirstTurnsExpired,
    Guard::RelearnDue,
    Guard::SleepDue,
    Guard::BackingOff,
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
        // No quiet window was ever learned, so a relearn is due in every fixture.
        Guard::Always
        | Guard::RelearnDue
        | Guard::OutsideWindow
        | Guard::LockWaitPending
        | Guard::CyclesLeft => {}
        Guard::Paused => record["scheduler_paused"] = json!(true),
        Guard::StoreEmpty => store_empty = true,
        Guard::FirstTurnsExpired => {
            record["first_turn_pending"] = json!({"s1": iso(at - Duration::hours(2))});
        }
        Guard::BackingOff => {
            record["user_sleep_request"] = json!({"reason": "bed", "ts": iso(at), "pending": true});
            record["night"] = night(1, json!({"retry_after": iso(at + Duration::minutes(3))}));
        }
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

/// One machine step for `trigger` on the fixture's core.
fn step(core: &mut Core, fixture: &Fixture, trigger: Trigger) -> Step {
    let event = event_for(trigger, fixture.store_empty);
    let input = event.as_ref().map_or(Input::Continue, Input::Host);
    core.step(input, now(), winding_down(fixture, trigger))
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
    let step = step(&mut core, &fixture, trigger);
    let case = format!("{state} x {trigger} x {guard:?}");
    if let Some(rejection) = step.rejection {
        return format!("{case}: rejected: {rejection}");
    }
    let mut line = format!("{case}: {}", step.state);
    for t in &step.transitions {
        line.push_str(&format!("; {} -> {} ({})", t.from, t.to, t.reason));
    }
    for effect in &step.effects {
        line.push_str(&format!("; effect {}", serde_json::to_string(effect).unwrap()));
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
        Target::Stay => "(stays)".to_owned(),
        Target::Next => "(then on)".to_owned(),
        Target::As(trigger) => format!("(as {trigger})"),
        Target::Go(s) => s.as_str().to_owned(),
    };
    let actions: Vec<String> = row.actions.iter().map(ToString::to_string).collect();
    format!(
        "{} --{} [{}] / {}--> {}",
        row.from,
        row.trigger,
        row.guard.label(),
        actions.join(", "),
        to
    )
}

/// How often `effect` answers to an action of the table.
fn count_effects(effects: &[Effect], wanted: impl Fn(&Effect) -> bool) -> usize {
    effects.iter().filter(|e| wanted(e)).count()
}

/// Runs one machine step on the fixture and checks it against the table: a rejection where the
/// table has no row, else rows of the table in order, their actions, their target, their reason
/// and the effects their actions stand for. Returns the rows taken.
#[track_caller]
fn check(state: StateName, trigger: Trigger, guard: Guard) -> Vec<&'static Row> {
    let fixture = fixture(state, guard);
    let record = Record::from_map(fixture.record.as_object().unwrap().clone());
    let (mut core, warnings) = Core::restore(record.clone());
    assert!(warnings.is_empty(), "{warnings:?}");
    let step = step(&mut core, &fixture, trigger);
    let case = format!("{state} x {trigger} x fixture {guard:?}");
    if rows_for(state, trigger).next().is_none() {
        assert!(step.rejection.is_some(), "{case}: the table has no row, the machine accepted");
        assert_eq!(step.state, state, "{case}: a rejection must not move");
        assert!(step.actions.is_empty(), "{case}: a rejection must do nothing: {:?}", step.actions);
        assert!(step.effects.is_empty(), "{case}: a rejection has no effect");
        assert_eq!(core.data().record(), &record, "{case}: a rejection must change nothing");
        assert!(step.rows.is_empty(), "{case}: a rejection takes no row");
        return Vec::new();
    }
    assert_eq!(step.rejection, None, "{case}: the table has rows, the machine rejected");
    // The rows taken: the group's, in table order, every one but the last passing the event on.
    let mut group: Vec<&Row> = rows_for(state, trigger).collect();
    let mut position = 0;
    let (last, passing) = step.rows.split_last().expect("an accepted event takes a row");
    for row in passing {
        let at = group[position..].iter().position(|r| std::ptr::eq(*r, *row));
        let at = at.unwrap_or_else(|| panic!("{case}: {} is not next in its group", row_name(row)));
        match row.to {
            Target::Next => position += at + 1,
            Target::As(other) => {
                group = rows_for(state, other).collect();
                position = 0;
            }
            _ => panic!("{case}: {} ends the event, yet rows follow", row_name(row)),
        }
    }
    assert!(
        group[position..].iter().any(|r| std::ptr::eq(*r, *last)),
        "{case}: {} is not in its group",
        row_name(last)
    );
    let name = row_name(last);
    let target = match last.to {
        Target::Stay => state,
        Target::Go(s) => s,
        Target::Next | Target::As(_) => panic!("{case}: the last row {name} does not end it"),
    };
    assert_eq!(step.state, target, "{case}: row {name}");
    let actions: Vec<Action> = step.rows.iter().flat_map(|r| r.actions.iter().copied()).collect();
    assert_eq!(step.actions, actions, "{case}: the rows' actions, in order");
    match (last.to, last.reason) {
        (Target::Go(_), Because::Is(reason)) => {
            assert_eq!(step.transitions.len(), 1, "{case}");
            assert_eq!(step.transitions[0].reason, reason, "{case}: row {name}");
        }
        (Target::Go(_), Because::SleepDue) => {
            let reasons = [
                Reason::UserSleepRequest,
                Reason::ForceRemRequest,
                Reason::QuietWindow,
                Reason::Idle,
            ];
            assert!(
                reasons.contains(&step.transitions[0].reason),
                "{case}: {:?}",
                step.transitions
            );
        }
        (to, _) => {
            assert!(step.transitions.is_empty(), "{case}: row {name} goes to {to:?}");
        }
    }
    let count = |wanted: Action| actions.iter().filter(|&&a| a == wanted).count();
    let effects = &step.effects;
    assert_eq!(count(Action::AcquireLock), count_effects(effects, |e| *e == Effect::AcquireLock));
    assert_eq!(count(Action::ReleaseLock), count_effects(effects, |e| *e == Effect::ReleaseLock));
    assert_eq!(
        count(Action::RunRemCycle),
        count_effects(effects, |e| matches!(e, Effect::RunRemCycle { .. })),
        "{case}"
    );
    assert_eq!(
        count(Action::EmitRecovered),
        count_effects(effects, |e| matches!(e, Effect::Emit(Audit::FsmRecovered { .. }))),
        "{case}"
    );
    let yielded: Vec<Reason> = actions
        .iter()
        .filter_map(|a| match a {
            Action::EmitYielded(why) => Some(*why),
            _ => None,
        })
        .collect();
    let emitted: Vec<Reason> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Emit(Audit::DaemonYielded { reason, .. }) => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(yielded, emitted, "{case}: every yield is emitted with its reason");
    step.rows
}

#[test]
fn every_state_event_and_guard_outcome_matches_the_table() {
    let mut taken = std::collections::HashSet::new();
    for state in StateName::ALL {
        for trigger in Trigger::ALL {
            for guard in ALL_GUARDS {
                taken.extend(check(state, trigger, guard).into_iter().map(row_name));
            }
        }
    }
    let missed: Vec<String> = TABLE.iter().map(row_name).filter(|n| !taken.contains(n)).collect();
    assert!(missed.is_empty(), "rows no fixture reached: {missed:#?}");
}

/// One named check per row of the table: each row's own fixture takes that row.
#[test]
fn each_row_is_taken_under_its_own_guard() {
    for row in &TABLE {
        // A tick in SLEEP is decided as `Continue`: the continue rows' fixtures reach them too.
        let trigger = match (row.from, row.trigger, row.guard) {
            (StateName::Sleep, Trigger::Continue, guard) if guard != Guard::WindingDown => {
                Trigger::Tick
            }
            (_, trigger, _) => trigger,
        };
        for trigger in [row.trigger, trigger] {
            let taken = check(row.from, trigger, row.guard);
            assert!(
                taken.iter().any(|r| std::ptr::eq(*r, row)),
                "row {} under {trigger}: took {:?}",
                row_name(row),
                taken.iter().map(|r| row_name(r)).collect::<Vec<_>>()
            );
        }
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
