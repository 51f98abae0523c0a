//! The journal replays: random streams of every event kind, with clock jumps, crashes and reboots
//! between events, changes made outside the machine and a host's bookkeeping, are replayed from an
//! empty document to the very bytes of the state file, every recorded outcome agreeing; and a
//! build whose idle guard waits longer is caught diverging.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use chrono::{Duration, TimeZone, Utc};
use daemon_state::data::note_session_open;
use daemon_state::digest::{self, RemResult};
use daemon_state::engine::Engine;
use daemon_state::event::{Event, EventKind, Settings};
use daemon_state::quiet_window::IDLE_THRESHOLD_OVERRIDE_MINUTES;
use daemon_state::replay::{ReplayError, replay};
use daemon_state::sessions;
use daemon_state::store::{Call, SimFs, Store};
use daemon_state::table::StateName;
use daemon_state::timestamp::Timestamp;
use proptest::prelude::*;

const PATH: &str = "/state/daemon.json";
const JOURNAL: &str = "/state/daemon.json.journal";

/// The override of the idle threshold is global: the tests take turns.
static TURNS: Mutex<()> = Mutex::new(());

/// One step of a host's life.
#[derive(Debug, Clone)]
enum Step {
    /// The clock moves (forward, far forward, or back) before the next step.
    Clock(i64),
    /// An event.
    Event(EventKind),
    /// `serve`'s `session_open`: the session start and the seed's bookkeeping.
    SessionOpen(Option<String>),
    /// The `sessions` and `digest` commands: changes made outside the machine.
    MarkOutside(String),
    ConsumeOutside(String),
    TakeDigest,
    /// The seed's raw transition to the state the machine would go to next, if legal.
    RawTransition(StateName),
    /// The process dies (nothing held in memory survives) and boots again.
    Crash,
    /// One of the next file-system calls of a kind fails (an I/O error in a save).
    Fail(Call, u64),
}

fn id() -> impl Strategy<Value = String> {
    "s[0-3]"
}

fn event() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        6 => any::<bool>().prop_map(|store_empty| EventKind::Tick { store_empty }),
        1 => Just(EventKind::Boot),
        2 => proptest::option::of(id()).prop_map(|session_id| EventKind::SessionStarted { session_id }),
        2 => proptest::option::of(id()).prop_map(|session_id| EventKind::Recall { session_id }),
        3 => Just(EventKind::LockAcquired),
        1 => Just(EventKind::LockDenied),
        1 => Just(EventKind::LockLost),
        2 => Just(EventKind::McpActivity),
        4 => (0u64..20, any::<bool>(), any::<bool>()).prop_map(|(n, model, timed_out)| {
            EventKind::RemCycleFinished {
                result: RemResult {
                    summaries_created: n,
                    schema_candidates: n / 2,
                    claude_call_used: model,
                    main_insight_text: model.then(|| format!("insight {n}")),
                    timed_out,
                },
            }
        }),
        1 => proptest::option::of("[a-z]{0,8}")
            .prop_map(|ts| EventKind::UserSleepRequested { reason: "bed".into(), ts }),
        1 => Just(EventKind::ForceRemRequested { ts: None }),
        1 => Just(EventKind::ForceWakeRequested { ts: None }),
        1 => Just(EventKind::Pause),
        1 => Just(EventKind::Resume),
        1 => (1u32..6).prop_map(|n| EventKind::Configure(Settings {
            rem_cycle_count: Some(n),
            timezone: None
        })),
        1 => Just(EventKind::Shutdown),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        20 => event().prop_map(Step::Event),
        8 => prop_oneof![0i64..120, 0i64..600, Just(3 * 24 * 3600), -3600i64..0]
            .prop_map(Step::Clock),
        2 => proptest::option::of(id()).prop_map(Step::SessionOpen),
        1 => id().prop_map(Step::MarkOutside),
        1 => id().prop_map(Step::ConsumeOutside),
        1 => Just(Step::TakeDigest),
        1 => prop_oneof![
            Just(StateName::Wake),
            Just(StateName::Transitioning),
            Just(StateName::Sleep),
            Just(StateName::Dreaming)
        ]
        .prop_map(Step::RawTransition),
        1 => Just(Step::Crash),
        // Calls of a save that the journal's append never makes (it opens and writes, unsynced):
        // a failed append loses its line, which is the incomplete journal of another test.
        1 => (prop_oneof![Just(Call::Sync), Just(Call::Rename), Just(Call::Link), Just(Call::SyncDir)], 0u64..3)
            .prop_map(|(call, nth)| Step::Fail(call, nth)),
    ]
}

fn open(fs: &SimFs) -> Engine {
    let store = Store::with_fs(PATH, Box::new(fs.clone())).expect("store");
    Engine::with_store(store).expect("engine").0
}

/// Runs `steps` against a simulated disk; returns it, with the state file and journal on it.
fn live(steps: &[Step]) -> SimFs {
    let fs = SimFs::new();
    let mut at: Timestamp = Utc.with_ymd_and_hms(2026, 4, 18, 8, 0, 0).unwrap();
    let mut engine = open(&fs);
    let _ = engine.handle(Event::new(at, EventKind::Boot));
    for step in steps {
        at += Duration::seconds(1);
        match step {
            Step::Clock(seconds) => at += Duration::seconds(*seconds),
            Step::Event(kind) => {
                let _ = engine.handle(Event::new(at, kind.clone()));
            }
            Step::SessionOpen(id) => {
                let event = Event::new(at, EventKind::SessionStarted { session_id: id.clone() });
                let ts = daemon_state::timestamp::format(at);
                let _ = engine.handle_with(event, |record| {
                    note_session_open(record, id.as_deref(), Some(&ts));
                });
            }
            Step::MarkOutside(id) => {
                let _ = engine.update("sessions open", at, |record| {
                    let opened = sessions::mark_in(record, id, at);
                    (opened.marked, opened.changed)
                });
            }
            Step::ConsumeOutside(id) => {
                let _ = engine.update("sessions consume", at, |record| {
                    let consumed = sessions::consume_in(record, id);
                    (consumed, consumed)
                });
            }
            Step::TakeDigest => {
                let _ = engine.update("digest take", at, |record| {
                    let taken = digest::take(record, at);
                    let changed = taken.is_some();
                    (taken, changed)
                });
            }
            Step::RawTransition(to) => {
                let _ = engine.transition(*to, at);
            }
            Step::Fail(call, nth) => fs.fail_at(*call, *nth, libc::EIO),
            Step::Crash => {
                drop(engine);
                engine = open(&fs);
                let _ = engine.handle(Event::new(at, EventKind::Boot));
            }
        }
    }
    fs
}

fn journal(fs: &SimFs) -> Vec<u8> {
    fs.contents(Path::new(JOURNAL)).unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn replaying_the_journal_reproduces_the_state_file_byte_for_byte(
        steps in proptest::collection::vec(step(), 1..120)
    ) {
        let _turn = TURNS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let fs = live(&steps);
        let file = fs.contents(Path::new(PATH)).expect("the state file");
        let replayed = replay(&journal(&fs), None);
        let replayed = match replayed {
            Ok(replayed) => replayed,
            Err(error) => return Err(TestCaseError::fail(error.to_string())),
        };
        prop_assert_eq!(String::from_utf8_lossy(&replayed.document), String::from_utf8_lossy(&file));
    }
}

#[test]
fn replaying_from_a_snapshot_applies_only_the_lines_after_it() {
    let _turn = TURNS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let steps: Vec<Step> = (0..40)
        .flat_map(|i| {
            [
                Step::Clock(1800),
                Step::Event(EventKind::Tick { store_empty: false }),
                Step::SessionOpen(Some(format!("s{}", i % 3))),
            ]
        })
        .collect();
    let (head, tail) = steps.split_at(60);
    let fs = live(head);
    let snapshot = fs.contents(Path::new(PATH)).unwrap();
    let fs = live(&[head, tail].concat());
    let whole = replay(&journal(&fs), None).expect("replays from empty");
    let later = replay(&journal(&fs), Some(&snapshot)).expect("replays from the snapshot");
    assert_eq!(later.document, whole.document);
    assert_eq!(later.document, fs.contents(Path::new(PATH)).unwrap());
    assert!(later.applied < whole.applied, "{} < {}", later.applied, whole.applied);
}

/// A journal recorded with the idle rule at 2 h, replayed by a build whose idle guard waits 3 h:
/// the tick that started the night no longer does, and replay says where.
#[test]
fn a_build_with_another_idle_threshold_diverges() {
    let _turn = TURNS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let steps = [
        Step::SessionOpen(Some("s1".into())),
        Step::Clock(2 * 3600 + 60),
        Step::Event(EventKind::Tick { store_empty: false }),
        Step::Event(EventKind::LockAcquired),
    ];
    let fs = live(&steps);
    assert!(replay(&journal(&fs), None).is_ok(), "the same build agrees");
    IDLE_THRESHOLD_OVERRIDE_MINUTES.store(180, Ordering::Relaxed);
    let replayed = replay(&journal(&fs), None);
    IDLE_THRESHOLD_OVERRIDE_MINUTES.store(0, Ordering::Relaxed);
    match replayed {
        Err(ReplayError::Diverged(divergence)) => {
            assert_eq!(divergence.what, "the transitions");
            assert!(divergence.event.contains("\"type\":\"tick\""), "{divergence}");
            assert!(
                divergence.recorded.to_string().contains("\"reason\":\"idle\""),
                "{divergence}"
            );
        }
        other => panic!("expected a divergence, got {other:?}"),
    }
}

#[test]
fn a_journal_with_a_lost_tail_is_incomplete_not_trusted() {
    let _turn = TURNS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let steps: Vec<Step> = (0..6).map(|i| Step::SessionOpen(Some(format!("s{i}")))).collect();
    let fs = live(&steps);
    let journal = journal(&fs);
    let text = String::from_utf8(journal).unwrap();
    // Remove one event's line from the middle: the generations skip.
    let mut lines: Vec<&str> = text.lines().collect();
    let middle = lines.iter().position(|l| l.contains("\"s2\"")).unwrap();
    lines.remove(middle);
    let cut = lines.join("\n");
    match replay(cut.as_bytes(), None) {
        Err(ReplayError::Incomplete { from, to, .. }) => assert_eq!(to, from + 1),
        other => panic!("expected an incomplete journal, got {other:?}"),
    }
}

/// A save that fails after earlier saves of the same event landed: the engine stays where the file
/// is, and the journal says what landed, so that it still replays to the file.
#[test]
fn a_partly_saved_event_is_journaled_as_what_landed() {
    let _turn = TURNS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let fs = SimFs::new();
    let at = Utc.with_ymd_and_hms(2026, 4, 18, 8, 0, 0).unwrap();
    let mut engine = open(&fs);
    let _ = engine.handle(Event::new(at, EventKind::Boot)).unwrap();
    let later = at + Duration::hours(3);
    let _ = engine.handle(Event::new(later, EventKind::Tick { store_empty: false })).unwrap();
    assert_eq!(engine.state(), StateName::Transitioning);
    // Granting the lock saves TRANSITIONING -> SLEEP, then SLEEP -> DREAMING: fail the second.
    fs.fail_at(Call::Rename, 3, libc::EIO);
    engine.handle(Event::new(later, EventKind::LockAcquired)).unwrap_err();
    assert_eq!(engine.state(), StateName::Sleep, "back at the save that landed");
    let journal = String::from_utf8(journal(&fs)).unwrap();
    assert!(journal.lines().last().unwrap().contains("\"edit\":\"partly saved\""), "{journal}");
    let _ = engine.handle(Event::new(later, EventKind::Tick { store_empty: false })).unwrap();
    assert_eq!(engine.state(), StateName::Dreaming);
    let replayed = replay(journal_bytes(&fs).as_slice(), None).expect("replays");
    assert_eq!(replayed.document, fs.contents(Path::new(PATH)).unwrap());
}

fn journal_bytes(fs: &SimFs) -> Vec<u8> {
    journal(fs)
}
