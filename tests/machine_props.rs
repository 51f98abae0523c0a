//! Property tests of the core: random host event sequences from every state.

use chrono::{DateTime, Duration, TimeZone, Utc};
use daemon_state::digest::RemResult;
use daemon_state::event::{Event, EventKind, Settings};
use std::path::Path;

use daemon_state::engine::Engine;
use daemon_state::kernel::Core;
use daemon_state::record::Record;
use daemon_state::store::{SimFs, Store};
use daemon_state::table::{StateName, check_edge};
use proptest::prelude::*;
use serde_json::json;

const PATH: &str = "/state/.daemon-state.json";

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 18, 22, 0, 0).unwrap()
}

fn arb_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        Just(EventKind::Boot),
        any::<bool>().prop_map(|store_empty| EventKind::Tick { store_empty }),
        any::<bool>().prop_map(|store_empty| EventKind::Tick { store_empty }),
        proptest::option::of("[a-c]{0,2}")
            .prop_map(|session_id| EventKind::SessionStarted { session_id }),
        proptest::option::of("[a-c]{0,2}").prop_map(|session_id| EventKind::Recall { session_id }),
        Just(EventKind::LockAcquired),
        Just(EventKind::LockAcquired),
        Just(EventKind::LockDenied),
        Just(EventKind::LockLost),
        Just(EventKind::McpActivity),
        (0u64..5, any::<bool>(), any::<bool>()).prop_map(|(n, claude, timed_out)| {
            EventKind::RemCycleFinished {
                result: RemResult {
                    summaries_created: n,
                    schema_candidates: n / 2,
                    claude_call_used: claude,
                    main_insight_text: claude.then(|| "insight".into()),
                    timed_out,
                },
            }
        }),
        (0u64..5).prop_map(|_| EventKind::RemCycleFinished { result: RemResult::default() }),
        Just(EventKind::UserSleepRequested { reason: "bed".into(), ts: None }),
        Just(EventKind::ForceRemRequested { ts: None }),
        Just(EventKind::ForceWakeRequested { ts: None }),
        Just(EventKind::Pause),
        Just(EventKind::Resume),
        (1u32..6).prop_map(|n| EventKind::Configure(Settings {
            rem_cycle_count: Some(n),
            timezone: None
        })),
        Just(EventKind::Shutdown),
    ]
}

fn arb_start() -> impl Strategy<Value = Record> {
    (0usize..4, 1u32..6, 0u32..6).prop_map(|(state, planned, completed)| {
        let state = StateName::ALL[state];
        let at = start();
        let doc = json!({
            "fsm_state": state.as_str(),
            "fsm_transition_at": daemon_state::timestamp::format(at),
            "night": {"started_at": daemon_state::timestamp::format(at), "planned": planned,
                      "completed": completed.min(planned - 1), "lock_lost": false, "activity_at": null},
        });
        Record::from_map(doc.as_object().unwrap().clone())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Only legal edges; Shutdown always reaches WAKE; the cycle counter never passes the plan;
    /// a rejected event changes nothing.
    #[test]
    fn random_sequences_keep_the_invariants(
        record in arb_start(),
        steps in proptest::collection::vec((arb_kind(), 0i64..7200), 1..200),
    ) {
        let (mut core, _) = Core::restore(record);
        let mut at = start();
        for (kind, step_secs) in steps {
            at += Duration::seconds(step_secs);
            let before_state = core.state();
            let before_record = core.data().record().clone();
            let is_shutdown = kind == EventKind::Shutdown;
            match core.handle(&Event::new(at, kind)) {
                Ok(outcome) => {
                    let mut current = before_state;
                    for t in &outcome.transitions {
                        prop_assert_eq!(t.from, current, "transitions chain");
                        prop_assert!(check_edge(t.from, t.to).is_ok(), "illegal edge {:?}", t);
                        current = t.to;
                    }
                    prop_assert_eq!(current, core.state());
                    prop_assert_eq!(outcome.snapshots().len() >= outcome.transitions.len(), true);
                }
                Err(rejection) => {
                    prop_assert_eq!(rejection.state, before_state);
                    prop_assert_eq!(core.state(), before_state, "a rejection moved the machine");
                    prop_assert_eq!(core.data().record(), &before_record, "a rejection changed the data");
                }
            }
            let night = &core.data().view().night;
            prop_assert!(night.completed <= night.planned.max(1), "completed {} of {}", night.completed, night.planned);
            if is_shutdown {
                prop_assert_eq!(core.state(), StateName::Wake, "shutdown must reach WAKE");
            }
        }
        let _ = core.handle(&Event::new(at, EventKind::Shutdown)).unwrap();
        prop_assert_eq!(core.state(), StateName::Wake);
    }
}

/// A host that grants the lock and finishes every cycle: after any history, one night's worth of
/// its answers brings the machine back to WAKE.
fn settle(core: &mut Core, at: DateTime<Utc>) -> usize {
    let mut steps = 0;
    while core.state() != StateName::Wake {
        let kind = match core.state() {
            StateName::Transitioning => EventKind::LockAcquired,
            StateName::Dreaming => EventKind::RemCycleFinished { result: RemResult::default() },
            _ => EventKind::Boot,
        };
        let _ = core.handle(&Event::new(at, kind)).unwrap();
        steps += 1;
        assert!(steps <= 2 + daemon_state::data::MAX_REM_CYCLES as usize, "no way back to WAKE");
    }
    steps
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Through the engine and its store: clock steps backwards by up to a day and forwards by
    /// years give no panic, no illegal edge, a file that always names the engine's state, and a
    /// machine that settles back to WAKE within one night.
    #[test]
    fn wild_clocks_never_break_the_machine(
        record in arb_start(),
        steps in proptest::collection::vec(
            (arb_kind(), prop_oneof![-86_400i64..0, 0i64..7_200, 0i64..(5 * 365 * 86_400)]),
            1..200,
        ),
    ) {
        let fs = SimFs::new();
        let store = Store::with_fs(PATH, Box::new(fs.clone())).unwrap();
        fs.replace_durably(Path::new(PATH), &record.to_vec());
        let (mut engine, _) = Engine::with_store(store).unwrap();
        let mut at = start();
        for (kind, step_secs) in steps {
            at += Duration::seconds(step_secs);
            let before = engine.state();
            if let Ok(outcome) = engine.handle(Event::new(at, kind)) {
                let mut current = before;
                for t in &outcome.transitions {
                    prop_assert!(check_edge(t.from, t.to).is_ok() && t.from == current, "{:?}", t);
                    current = t.to;
                }
            }
            let on_disk = Record::from_slice(&fs.contents(Path::new(PATH)).unwrap()).unwrap();
            prop_assert_eq!(on_disk.get("fsm_state").and_then(|v| v.as_str()), Some(engine.state().as_str()));
        }
        let (mut core, _) = Core::restore(engine.record().clone());
        settle(&mut core, at);
        prop_assert_eq!(core.state(), StateName::Wake);
    }
}

/// Every string in the document that spells a moment the way the engine writes one is readable:
/// no year 0 and no `+10000`.
fn moments_readable(value: &serde_json::Value) -> Result<(), String> {
    match value {
        serde_json::Value::String(s)
            if s.ends_with("+00:00") && daemon_state::timestamp::parse(s).is_none() =>
        {
            return Err(format!("unreadable moment {s}"));
        }
        serde_json::Value::Array(items) => items.iter().try_for_each(moments_readable)?,
        serde_json::Value::Object(map) => map.values().try_for_each(moments_readable)?,
        _ => {}
    }
    Ok(())
}

/// A stored generation as the file spells it.
fn arb_generation() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..8).prop_map(|k| (u64::MAX - k).to_string()),
        Just("18446744073709551616".to_owned()),
        Just("1e400".to_owned()),
        (0u64..1000).prop_map(|n| n.to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// At both ends of the moments a state file can hold (the range `--now` and serve's `ts`
    /// accept), and from stored generations at or past `u64::MAX`: no panic, every moment written
    /// reads back, and the generation never goes back.
    #[test]
    fn the_ends_of_the_range_and_the_largest_generations_break_nothing(
        record in arb_start(),
        generation in arb_generation(),
        late in any::<bool>(),
        offset in 0i64..(3 * 86_400),
        steps in proptest::collection::vec((arb_kind(), 0i64..7_200), 1..60),
    ) {
        let (earliest, latest) = (daemon_state::timestamp::earliest(), daemon_state::timestamp::latest());
        let mut at = if late { latest - Duration::seconds(offset) } else { earliest + Duration::seconds(offset) };
        let mut record = record;
        record.set("fsm_transition_at", json!(daemon_state::timestamp::format(at)));
        // The generation goes in as text: a number past f64's range is kept as spelled.
        let mut text = record.to_vec();
        text.truncate(text.len() - 2);
        text.extend_from_slice(format!(",\n  \"generation\": {generation}\n}}").as_bytes());
        let record = Record::from_slice(&text).unwrap();
        let fs = SimFs::new();
        let store = Store::with_fs(PATH, Box::new(fs.clone())).unwrap();
        fs.replace_durably(Path::new(PATH), &record.to_vec());
        let (mut engine, _) = Engine::with_store(store).unwrap();
        let mut generation = record.generation();
        for (kind, step_secs) in steps {
            at = (at + Duration::seconds(step_secs)).min(latest);
            let _ = engine.handle(Event::new(at, kind));
            let on_disk = Record::from_slice(&fs.contents(Path::new(PATH)).unwrap()).unwrap();
            prop_assert!(on_disk.generation() >= generation, "the generation went back");
            generation = on_disk.generation();
            let doc = serde_json::Value::Object(on_disk.into_map());
            prop_assert_eq!(moments_readable(&doc), Ok(()));
            prop_assert_eq!(moments_readable(&serde_json::to_value(engine.status(at)).unwrap()), Ok(()));
        }
    }
}
