//! A host outside the crate: one night against a temp state file, through the root re-exports
//! only, then an `Event` and an `Effect` round-tripped through serde_json. Prints `ok`.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::os::unix::fs::DirBuilderExt;
use std::time::{Duration, SystemTime};

use daemon_state::{Effect, Engine, Event, EventKind, RemResult, StateName, Timestamp, Transition};

/// 2026-04-18T00:00:00Z: the day the night is run on.
const DAY_START_SECS: u64 = 1_776_470_400;

fn main() {
    let dir = std::env::temp_dir().join(format!("host-crate-{}", std::process::id()));
    // The store refuses a directory others can write to; this one is the host's own.
    std::fs::DirBuilder::new().mode(0o700).create(&dir).expect("temp dir");
    let result = std::panic::catch_unwind(|| run(&dir.join("state.json")));
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    println!("ok");
}

/// The engine, and everything it answered so far.
struct Host {
    engine: Engine,
    transitions: Vec<Transition>,
    effects: Vec<Effect>,
}

impl Host {
    fn feed(&mut self, now: Timestamp, kind: EventKind) -> VecDeque<Effect> {
        let outcome = self.engine.handle(Event::new(now, kind)).expect("handled");
        self.transitions.extend(outcome.transitions.iter().cloned());
        self.effects.extend(outcome.effects.iter().cloned());
        VecDeque::from(outcome.effects)
    }
}

fn run(state: &std::path::Path) {
    let day = Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_secs(DAY_START_SECS));
    let (engine, report) = Engine::open(state).expect("open");
    assert!(report.recovery.is_none() && report.warnings.is_empty(), "{report:?}");
    let mut host = Host { engine, transitions: Vec::new(), effects: Vec::new() };

    host.feed(day, EventKind::Boot);
    let mut now = day + Duration::from_secs(9 * 3600);
    host.feed(now, EventKind::SessionStarted { session_id: Some("host-1".into()) });
    for _ in 0..10_000 {
        now = host.engine.next_deadline(now).unwrap_or(now + Duration::from_secs(30));
        let mut effects = host.feed(now, EventKind::Tick { store_empty: false });
        while let Some(effect) = effects.pop_front() {
            let answer = match effect {
                Effect::AcquireLock => EventKind::LockAcquired,
                Effect::RunRemCycle { .. } => {
                    now += Duration::from_secs(60);
                    EventKind::RemCycleFinished { result: RemResult::default() }
                }
                _ => continue,
            };
            effects.extend(host.feed(now, answer));
        }
        if host.transitions.last().is_some_and(|t| t.to == StateName::Wake) {
            break;
        }
    }
    let Host { mut engine, transitions, effects: seen } = host;
    assert_eq!(engine.state(), StateName::Wake);

    // Exactly one night: WAKE -> TRANSITIONING -> SLEEP, DREAMING <-> SLEEP per cycle, WAKE.
    use StateName::{Dreaming, Sleep, Transitioning, Wake};
    let path: Vec<(StateName, StateName)> = transitions.iter().map(|t| (t.from, t.to)).collect();
    let mut expected = vec![(Wake, Transitioning), (Transitioning, Sleep)];
    for _ in 0..4 {
        expected.extend([(Sleep, Dreaming), (Dreaming, Sleep)]);
    }
    expected.push((Sleep, Wake));
    assert_eq!(path, expected, "{transitions:#?}");
    let cycles = seen.iter().filter(|e| matches!(e, Effect::RunRemCycle { .. })).count();
    assert_eq!(cycles, 4, "{seen:#?}");

    // An Event and Effects through serde_json and back.
    let event = Event::new(now, EventKind::SessionStarted { session_id: Some("host-1".into()) });
    let json = serde_json::to_string(&event).expect("event to json");
    assert_eq!(serde_json::from_str::<Event>(&json).expect("event from json"), event, "{json}");
    let first = Effect::RunRemCycle { cycle: 1, of: 4, is_last: false };
    assert!(seen.contains(&first), "cycle 1 of 4 was asked for");
    let emitted = seen.iter().filter(|e| matches!(e, Effect::Emit(_)));
    for effect in std::iter::once(&first).chain(emitted) {
        let json = serde_json::to_string(effect).expect("effect to json");
        let back: Effect = serde_json::from_str(&json).expect("effect from json");
        assert_eq!(&back, effect, "{json}");
    }

    // A shutdown in WAKE changes nothing.
    let outcome = engine.handle(Event::new(now, EventKind::Shutdown)).expect("shutdown");
    assert!(outcome.transitions.is_empty(), "{:?}", outcome.transitions);
    assert_eq!(engine.state(), StateName::Wake);
}
