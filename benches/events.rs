//! Event handling that changes nothing durable: a WAKE tick outside the quiet window with nothing
//! due, through `Core::handle`, through an `Engine` on an in-memory store, and through a
//! hand-written `match` making the same decision. The three arms run interleaved in one process.
//!
//! It must not let an arm skip work the others do: the premise (no transition, no snapshot, no
//! durable write) is checked on every event of the engine arms.

mod common;

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use chrono::TimeDelta;
use chrono_tz::Tz;
use daemon_state::engine::Engine;
use daemon_state::event::{Event, EventKind};
use daemon_state::kernel::Core;
use daemon_state::quiet_window::{self, QuietWindow};
use daemon_state::record::Record;
use daemon_state::store::{SimFs, Store};
use daemon_state::timestamp::{self, Timestamp};
use serde_json::json;

use common::{BenchError, Target, arm_line, interleave, ns_since, ratio_line, rounds, utc};

/// Events per timed batch.
const BATCH: u32 = 10_000;

fn main() -> Result<(), BenchError> {
    common::print_machine(&std::env::temp_dir());
    let now = utc(2026, 4, 18, 12, 0);
    let record = idle_wake_record(now);
    let (mut core, _) = Core::restore(record.clone());
    let mut engine = in_memory_engine(&record)?;
    let mut plain = Plain::from_record(&record);
    // One tick settles what a first tick writes (its skip reason), so that none of the timed ones
    // has anything durable to do.
    let settle = Event::new(now, EventKind::Tick { store_empty: false });
    let _ = core.handle(&settle).map_err(|e| e.to_string())?;
    let _ = engine.handle(settle)?;
    let writes_before = engine.store().durable_writes();

    let n = rounds(60, 3);
    println!(
        "\npair 3: a WAKE tick outside the window with nothing due, {BATCH} events per sample, {n} rounds"
    );
    let (mut at_core, mut at_engine, mut at_plain) = (now, now, now);
    let step = TimeDelta::milliseconds(1);
    let mut kernel = || -> Result<f64, BenchError> {
        let start = Instant::now();
        for _ in 0..BATCH {
            at_core += step;
            let event = Event::new(at_core, EventKind::Tick { store_empty: false });
            let outcome = core.handle(black_box(&event)).map_err(|e| e.to_string())?;
            if !outcome.snapshots().is_empty() || !outcome.transitions.is_empty() {
                return Err(format!("the core did something durable at {at_core}").into());
            }
            let _ = black_box(outcome);
        }
        Ok(ns_since(start) / f64::from(BATCH))
    };
    let mut shell = || -> Result<f64, BenchError> {
        let start = Instant::now();
        for _ in 0..BATCH {
            at_engine += step;
            let event = Event::new(at_engine, EventKind::Tick { store_empty: false });
            let outcome = engine.handle(black_box(event))?;
            if !outcome.transitions.is_empty() {
                return Err(format!("the engine moved at {at_engine}").into());
            }
            let _ = black_box(outcome);
        }
        Ok(ns_since(start) / f64::from(BATCH))
    };
    let mut by_hand = || -> Result<f64, BenchError> {
        let start = Instant::now();
        for _ in 0..BATCH {
            at_plain += step;
            let decision = plain.tick(black_box(at_plain), black_box(false));
            if decision != Decision::Skip("outside_window", false) {
                return Err(format!("the hand-written match decided {decision:?}").into());
            }
            black_box(decision);
        }
        Ok(ns_since(start) / f64::from(BATCH))
    };
    interleave(2, &mut [&mut kernel, &mut shell, &mut by_hand])?;
    let [kernel, shell, by_hand] = interleave(n, &mut [&mut kernel, &mut shell, &mut by_hand])?;
    if engine.store().durable_writes() != writes_before {
        return Err("the engine wrote during the timed ticks".into());
    }
    arm_line("Core::handle", &kernel);
    arm_line("Engine::handle (in-memory store)", &shell);
    arm_line("hand-written match", &by_hand);
    let verdict = |samples: &common::Samples| {
        if samples.median() < 1000.0 { "met" } else { "MISSED" }
    };
    println!(
        "  per event: core {} ({} the 1 µs target), engine {} ({} the 1 µs target)",
        common::human(kernel.median()),
        verdict(&kernel),
        common::human(shell.median()),
        verdict(&shell)
    );
    ratio_line("core/hand-written", &kernel, &by_hand, Target::None);
    ratio_line("engine/hand-written", &shell, &by_hand, Target::None);
    Ok(())
}

/// A daemon awake at `now` (12:00 UTC): quiet window 02:00-08:00 learned an hour ago, last session
/// 20 minutes ago, a night already run, first turns marked 10 minutes ago, nothing requested.
fn idle_wake_record(now: Timestamp) -> Record {
    let at = |minutes_ago: i64| timestamp::format(now - TimeDelta::minutes(minutes_ago));
    let mut pending = serde_json::Map::new();
    for i in 0..5 {
        pending.insert(format!("sess-{i:03}-5d41402a"), json!(at(10 + i)));
    }
    let doc = json!({
        "fsm_state": "WAKE",
        "fsm_transition_at": at(5 * 60),
        "daemon_started_at": at(2 * 24 * 60),
        "first_turn_pending": pending,
        "quiet_window": [4, 12],
        "quiet_window_learned_at": at(60),
        "last_session_ts": at(20),
        "last_tick_skipped_reason": "outside_window",
        "scheduler_paused": false,
        "rem_cycle_count": 4,
        "night": {"started_at": at(9 * 60), "planned": 4, "completed": 4, "lock_lost": false, "activity_at": null},
        "last_completed_cycles": 4,
    });
    match doc {
        serde_json::Value::Object(map) => Record::from_map(map),
        _ => Record::new(),
    }
}

/// An engine over a simulated disk that already holds the document.
fn in_memory_engine(record: &Record) -> Result<Engine, BenchError> {
    let sim = SimFs::new();
    let path = Path::new("/state/.daemon-state.json");
    let store = Store::with_fs(path, Box::new(sim.clone()))?;
    sim.replace_durably(path, &record.to_vec());
    let (engine, _) = Engine::with_store(store)?;
    Ok(engine)
}

/// The four states, for the hand-written arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Wake,
    Transitioning,
    Sleep,
    Dreaming,
}

/// What a tick decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Nothing happens; the reason, and whether it is new (and so must be written).
    Skip(&'static str, bool),
    /// The first-turn reaper has something to drop.
    Reap,
    /// The quiet window is due to be learned again.
    Relearn,
    /// A night starts.
    Transition(State),
    /// The state does nothing on a tick.
    Stay,
}

/// The facts a tick decides on, read once from the document.
struct Plain {
    state: State,
    paused: bool,
    tz: Tz,
    window: Option<QuietWindow>,
    learned_at: Option<Timestamp>,
    last_session: Option<Timestamp>,
    transition_at: Option<Timestamp>,
    night_started: Option<Timestamp>,
    user_sleep: bool,
    force_rem: bool,
    first_turn_expiry: Option<Timestamp>,
    skip_reason: Option<&'static str>,
    last_tick: Option<Timestamp>,
}

impl Plain {
    fn from_record(record: &Record) -> Self {
        let time = |key: &str| record.timestamp(key);
        let state = match record.get("fsm_state").and_then(|v| v.as_str()) {
            Some("TRANSITIONING") => State::Transitioning,
            Some("SLEEP") => State::Sleep,
            Some("DREAMING") => State::Dreaming,
            _ => State::Wake,
        };
        let pending = |key: &str| {
            record.get(key).and_then(|r| r.get("pending")).and_then(|p| p.as_bool()) == Some(true)
        };
        let first_turn_expiry =
            record.get("first_turn_pending").and_then(|v| v.as_object()).and_then(|map| {
                map.values()
                    .filter_map(|v| v.as_str().and_then(timestamp::parse))
                    .min()
                    .map(|oldest| oldest + TimeDelta::hours(1) + TimeDelta::microseconds(1))
            });
        Self {
            state,
            paused: record.is_true("scheduler_paused"),
            tz: Tz::UTC,
            window: record.get("quiet_window").and_then(QuietWindow::from_value),
            learned_at: time("quiet_window_learned_at"),
            last_session: time("last_session_ts"),
            transition_at: time("fsm_transition_at"),
            night_started: record
                .get("night")
                .and_then(|n| n.get("started_at"))
                .and_then(|s| s.as_str())
                .and_then(timestamp::parse),
            user_sleep: pending("user_sleep_request"),
            force_rem: pending("force_rem_request"),
            first_turn_expiry,
            skip_reason: match record.get("last_tick_skipped_reason").and_then(|v| v.as_str()) {
                Some("outside_window") => Some("outside_window"),
                _ => None,
            },
            last_tick: None,
        }
    }

    fn skip(&mut self, reason: &'static str) -> Decision {
        let new = self.skip_reason != Some(reason);
        self.skip_reason = Some(reason);
        Decision::Skip(reason, new)
    }

    /// The decision the table makes for a tick, written as one `match`.
    fn tick(&mut self, at: Timestamp, store_empty: bool) -> Decision {
        self.last_tick = Some(at);
        if self.first_turn_expiry.is_some_and(|due| due <= at) {
            return Decision::Reap;
        }
        match self.state {
            State::Wake => {
                if self.paused {
                    return self.skip("paused");
                }
                if store_empty {
                    return self.skip("empty_store");
                }
                if quiet_window::should_relearn(self.learned_at.filter(|l| *l <= at), at) {
                    return Decision::Relearn;
                }
                let in_window = self.window.is_some_and(|window| {
                    let span = TimeDelta::minutes(30 * i64::from(window.duration));
                    let slept = self.night_started.is_some_and(|s| s <= at && at - s < span);
                    quiet_window::contains(window, quiet_window::bucket_of(at, self.tz)) && !slept
                });
                let night_since = match (self.night_started, self.last_session) {
                    (Some(night), Some(session)) => night >= session,
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                let idle = quiet_window::idle_long_enough(self.last_session, at) && !night_since;
                if self.user_sleep || self.force_rem || in_window || idle {
                    Decision::Transition(State::Transitioning)
                } else {
                    self.skip("outside_window")
                }
            }
            State::Transitioning => {
                let expired = self
                    .transition_at
                    .is_none_or(|since| (at - since).abs() >= TimeDelta::minutes(5));
                if expired { Decision::Transition(State::Wake) } else { Decision::Stay }
            }
            State::Sleep | State::Dreaming => Decision::Stay,
        }
    }
}
