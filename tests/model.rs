//! A model check of the lifecycle with `stateright`: every sequence of host events, up to a depth,
//! from a fresh document, explored breadth first, each state checked against the protocol's
//! safety properties, with a bounded way back to WAKE from every state, and every row of the
//! transition table reached.
//!
//! `cargo test --test model` explores the three alphabets below to small depths; CI runs
//! `MODEL_FULL_DEPTH=7 MODEL_EVENTS_DEPTH=9 MODEL_NIGHT_DEPTH=12 cargo test --release --test model
//! -- --nocapture exhaustive`, and `MODEL_SEARCH=dfs` walks depth first for runs deeper than a
//! breadth-first queue fits in memory (BENCHMARKS.md has the figures of both).
//!
//! # Depth
//!
//! **Depth** here counts actions: depth 9 is every sequence of 9 actions from the initial state,
//! and every state on them, the last included, is checked. Stateright counts the initial state as
//! depth 1, so this is its depth 10 (where its own `target_max_depth(10)` would check one action
//! fewer: it neither checks nor expands a state at the target depth).
//!
//! The depth is part of a state. With two threads, stateright's breadth-first search is only
//! roughly level by level, and a state first reached by a longer path would be recorded at that
//! depth and cut short, missing what the shorter path leads to within the bound. With the depth in
//! the state, the same document reached at two depths is two states, each explored for the actions
//! it has left, whatever order the threads take them in
//! (`depth_first_and_breadth_first_reach_the_same_states`). Two reductions keep that affordable,
//! neither losing a path:
//!
//! - A step that changes nothing (a refused event, or one with nothing left to do) is not a new
//!   state: every path on from it is a path on from the state before, which has one more action
//!   to go. The refusal itself is still checked to change nothing.
//! - A state at the bound is checked when it is generated (its step, then its way back to WAKE,
//!   once for each distinct state), and every one that passes is replaced by a single stand-in, so
//!   that the largest level is counted but never queued.
//!
//! # Three alphabets
//!
//! With every action offered from every state, the states grow about ninefold a level, so the
//! exploration is run three times and the rows taken are gathered over all three:
//!
//! - **Full**: every action below, waits of every length (to depth 7 in CI; every row of the table
//!   is taken by depth 5).
//! - **Events**: every action below, with waits of 31 s and 5 min only, the activity bound, the
//!   lock wait and the back-off (to depth 9 in CI). Every event of the protocol, both session ids,
//!   every answer of the host, the failed saves and the crash, in every order.
//! - **Night**: what a night turns on, with the same two waits (to depth 12 in CI): a tick, client
//!   activity, a user-sleep and a force-wake request, shutdown, a crash, the lock's answers, a
//!   cycle finishing (not timed out). It leaves out sessions, recalls, pause, resume, the setting,
//!   the failed saves, `Boot` without a crash and `store_empty`.
//! - Two waits in a row are never offered: their sum is one wait, and every threshold is
//!   straddled from the moment of the event before the wait. A refused event between them changes
//!   nothing, so it leaves the next wait unoffered too.
//! - The key leaves out what no guard reads and no property checks: `last_tick_at` (in memory and
//!   in the document), `last_tick_skipped_reason`, and the requests' `ts` and `discarded_at`
//!   labels.
//!
//! # What a state is
//!
//! - **The core**: the working data `Core` holds (`Data`: the document, in memory, and the two
//!   facts kept only in memory, the last tick and the last client activity). `next_state` rebuilds
//!   a `Core` from it (`Core::replace_data`), so the machine runs exactly as the engine runs it.
//! - **The last durable document**: the bytes the engine would have saved last (the outcome's last
//!   snapshot). A crash restarts from it.
//! - **The model's clock** (`now`), moved by `Wait` actions.
//! - **The host's ledger**: the lock (free, requested, held), the REM cycle running if any,
//!   whether a digest was folded since the last delivery and when the last one was delivered,
//!   and the sessions whose first-turn mark the host was told about and not yet reported.
//! - **A violation**, once a property failed (kept, so that the `always` property names it).
//! - **The depth** (see "Depth").
//!
//! A state is compared and hashed by its depth and a 128-bit hash of its description (the key
//! below); among the 10^8 states of the deepest run, the odds that two different ones share a
//! hash are below 10^-22.
//!
//! # Abstractions
//!
//! - **Time is relative.** Two states are the same when they differ only by a shift of the clock:
//!   the key a state is hashed and compared by writes every stored moment (any string the
//!   document's lenient parser reads as a moment, the session history's starts, the in-memory
//!   facts, the host's last delivery) as its distance from `now`. That is a bijection for a given
//!   `now`, so nothing is lost but the absolute clock. The one use of the absolute clock is the
//!   quiet window's local time of day, which needs a learned window; learning needs session starts
//!   on 7 distinct dates (7 openings and 6 waits of a day or more: 13 actions, more than any run
//!   here holds), so the time of day joins the key only when the document holds a window.
//! - **The two session ids are alike.** The engine gives an id no meaning but itself, so a state
//!   and its mirror image (`a` and `b` exchanged everywhere, in the document, the durable copy and
//!   the host's ledger) behave alike; the key is the smaller of the hashes of the two
//!   descriptions, and they are one state. The description writes maps in key order: the engine
//!   reads marks by id, never by where they stand.
//! - **Time passes only by `Wait(d)`**, d from [`WAITS`]: 1 s, 29 s, 31 s, 5 min, 1 h, 2 h, 18 h,
//!   24 h and 8 days, one on each side of the 30 s activity bound and at or past every other
//!   threshold (10 s activity writes, 5 min lock wait and back-off, 1 h first-turn reaper, 2 h
//!   idle rule, 18 h digest gate, 24 h relearn and first-turn prune, 7 and 8 days of session
//!   history). Events happen at `now`; an event "31 s later" is `Wait(31 s)` then the event.
//! - **The host follows the protocol when it answers**: `LockAcquired` and `LockDenied` only while
//!   the lock was asked for and not answered, `LockLost` only while it is held,
//!   `RemCycleFinished` (timed out or not, three episodes each) only while a cycle runs. Unasked
//!   answers are refused by the table anyway except in the states that await them.
//! - **Events everywhere**: a tick (with `store_empty` both ways in WAKE, where it matters, and
//!   `false` elsewhere), a session opening and a recall for each of two session ids, client
//!   activity, the three requests (with no label: the label is the event's moment), pause,
//!   resume, a setting (`rem_cycle_count` 1), shutdown and boot, in every state; refused ones
//!   are checked to change nothing, and are no new state.
//! - **Crash**: the process dies and restarts from the last durable document with nothing in
//!   memory; the host's lock goes with its process and the cycle stops; then `Boot`.
//! - **A failed save**: `LockAcquired` and `RemCycleFinished` may also be answered by an engine
//!   whose last save of the outcome fails: as `Engine::persist` does, the core returns to the last
//!   durable document (the outcome's previous snapshot), keeping what is in memory, and the host
//!   performs none of the outcome's effects. This is the only way SLEEP rests, and its tick row
//!   is reached.
//! - **The document starts small**: `fsm_state` WAKE and `rem_cycle_count` 2 (a night of two
//!   cycles; the setting lowers it to one), so that a night and its end fit the depth.
//!
//! # The properties
//!
//! Safety, checked after every step (a failure is recorded in the state and reported by the
//! `always` property "no violation" with its counterexample): only legal edges, each transition
//! leaving the state the previous one entered; the durable document names the machine's state;
//! `run_rem_cycle` only while the host holds the lock and the machine is in DREAMING; the lock
//! never asked for while held; WAKE after an event with the lock held; cycles completed never
//! above cycles planned; a digest delivered at most once per fold and never within 18 h of the
//! previous delivery; a first turn reported at most once per mark; a refused event changes
//! nothing; nothing panics (`next_state` runs under `catch_unwind`).
//!
//! Liveness, as safety: "way back to WAKE" holds in a state when a short deterministic host
//! script reaches WAKE from it (TRANSITIONING: the lock is granted; DREAMING: the cycle
//! finishes; SLEEP: a tick; at most 12 steps, one second apart). Reachability of the table: the
//! rows every outcome took are gathered over the whole exploration, and a row never taken fails
//! the test, named.
//!
//! # Negative controls
//!
//! [`Variant`] breaks the engine as the host sees it, in this model only: a yield that forgets
//! `ReleaseLock`, a recall that reports a first turn without clearing it, a recall that
//! delivers the digest without recording it, a boot recovery that jumps DREAMING -> WAKE. Each
//! must be caught, and its counterexample is printed as a numbered list of events.
//!
//! # From a counterexample to a regression test
//!
//! A counterexample is printed twice: as a numbered list, and as a Rust array of [`Act`]. Paste
//! the array into a test that calls [`replay`] (see `replayed_counterexample_is_caught`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{Duration, TimeZone, Timelike, Utc};
use daemon_state::data::Data;
use daemon_state::digest::RemResult;
use daemon_state::effects::Effect;
use daemon_state::event::{Event, EventKind, Settings};
use daemon_state::kernel::Core;
use daemon_state::quiet_window::SessionStarts;
use daemon_state::reason::Reason;
use daemon_state::record::{Record, keys};
use daemon_state::table::{Action, StateName, TABLE, check_edge};
use daemon_state::timestamp::{self, Timestamp};
use serde_json::{Value, json};
use stateright::{Checker, Model, Property};

/// The clock's moves, in seconds: each side of every threshold the engine has.
const WAITS: [i64; 9] = [1, 29, 31, 300, 3600, 7200, 18 * 3600, 24 * 3600, 8 * 86400];
/// The other alphabets' waits: past the activity bound, and the lock wait and back-off.
const SHORT_WAITS: [i64; 2] = [31, 300];

/// One of the two session ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sid {
    /// `"a"`.
    A,
    /// `"b"`.
    B,
}

impl Sid {
    fn id(self) -> String {
        match self {
            Sid::A => "a".to_owned(),
            Sid::B => "b".to_owned(),
        }
    }
}

/// What the host does next.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Act {
    /// The clock moves on by this many seconds.
    Wait(i64),
    /// A tick.
    Tick { store_empty: bool },
    /// A session opens.
    SessionOpen(Sid),
    /// A session recalls.
    Recall(Sid),
    /// Client activity.
    Activity,
    /// `user_initiated_sleep`.
    UserSleep,
    /// `force_rem`.
    ForceRem,
    /// `force_wake`.
    ForceWake,
    /// Pause the scheduler.
    Pause,
    /// Resume it.
    Resume,
    /// `rem_cycle_count` 1.
    Configure,
    /// The daemon stops.
    Shutdown,
    /// The daemon starts (without a crash before).
    Boot,
    /// The host took the lock.
    Grant,
    /// The host could not take it.
    Deny,
    /// The host lost it.
    Lose,
    /// The REM cycle finished.
    Finish { timed_out: bool },
    /// The host took the lock, and the outcome's last save failed.
    GrantSaveFails,
    /// The REM cycle finished, and the outcome's last save failed.
    FinishSaveFails,
    /// The process died; it restarts from the last durable document and boots.
    Crash,
}

/// The host's lock, as it sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lock {
    /// Not held, not asked for.
    Free,
    /// Asked for, not answered yet.
    Requested,
    /// Held.
    Held,
}

/// What the host has been told and done.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Host {
    lock: Lock,
    /// The cycle running: (cycle, of).
    cycle: Option<(u32, u32)>,
    /// A cycle was folded into the digest since the last delivery.
    folded: bool,
    /// When the last digest was delivered.
    delivered_at: Option<Timestamp>,
    /// Sessions opened whose first turn has not been reported since.
    marks: BTreeSet<Sid>,
}

/// A model state (see the module docs).
#[derive(Clone)]
pub struct S {
    /// Actions taken since the initial state.
    depth: usize,
    /// A state at the bound whose way back to WAKE failed (see [`Lifecycle::leaf`]).
    stuck: bool,
    now: Timestamp,
    /// The last action was a wait.
    waited: bool,
    state: StateName,
    data: Data,
    durable: Arc<Vec<u8>>,
    /// The state the durable document names.
    durable_state: Option<StateName>,
    host: Host,
    violation: Option<String>,
    /// What the state holds, hashed: see [`content_of`].
    content: u128,
}

impl std::fmt::Debug for S {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at +{}s, host {:?}",
            self.state,
            (self.now - epoch()).num_seconds(),
            self.host
        )?;
        if let Some(v) = &self.violation {
            write!(f, ", VIOLATION: {v}")?;
        }
        Ok(())
    }
}

impl PartialEq for S {
    fn eq(&self, other: &Self) -> bool {
        (self.depth, self.content) == (other.depth, other.content)
    }
}
impl Eq for S {}
impl Hash for S {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.depth, self.content).hash(state);
    }
}

/// A deliberately broken engine, as the host sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The engine as it is.
    Correct,
    /// A yield back to WAKE forgets `ReleaseLock`.
    YieldKeepsLock,
    /// A recall reports a first turn without clearing the mark.
    FirstTurnKept,
    /// A recall delivers the digest without recording the delivery.
    DigestKept,
    /// A boot recovery from DREAMING reports DREAMING -> WAKE directly.
    RecoveryShortcut,
}

/// Which host actions a state offers (see "Two alphabets").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alphabet {
    /// Every action.
    Full,
    /// Every event, fewer waits.
    Events,
    /// The actions a night turns on.
    Night,
    /// The night's, and a recall.
    NightRecall,
}

/// The model: its variant, its alphabet and bound, the rows taken over the whole exploration,
/// and the states met at the bound.
pub struct Lifecycle {
    variant: Variant,
    alphabet: Alphabet,
    /// How many actions a path holds at most.
    bound: usize,
    rows: Arc<Mutex<HashSet<usize>>>,
    /// The states met at the bound, by their content: whether their way back to WAKE failed.
    leaves: Arc<Mutex<HashMap<u128, bool>>>,
}

impl Lifecycle {
    fn new(variant: Variant) -> Self {
        Self {
            variant,
            alphabet: Alphabet::Full,
            bound: usize::MAX,
            rows: Arc::default(),
            leaves: Arc::default(),
        }
    }
}

fn epoch() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 4, 18, 21, 0, 0).unwrap()
}

fn initial_document() -> Record {
    let Value::Object(map) = json!({"fsm_state": "WAKE", "rem_cycle_count": 2}) else {
        unreachable!()
    };
    Record::from_map(map)
}

/// A moment as its distance from `now`, in microseconds.
fn rel(at: Timestamp, now: Timestamp) -> i64 {
    (at - now).num_microseconds().unwrap_or(i64::MIN)
}

/// `value` with every stored moment written as its distance from `now`.
fn relative(value: &Value, now: Timestamp) -> Value {
    match value {
        Value::String(text) => match timestamp::parse(text) {
            Some(at) => json!(format!("@{}", rel(at, now))),
            None => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(|v| relative(v, now)).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), relative(v, now))).collect())
        }
        other => other.clone(),
    }
}

/// What the key leaves out of the document: what no guard reads and no property checks (the last
/// tick, written for people; why the last tick skipped; the requests' labels).
const UNREAD: [&str; 2] = [keys::LAST_TICK_AT, keys::LAST_TICK_SKIPPED_REASON];

fn relative_document(record: &Record, now: Timestamp) -> Value {
    let mut map = serde_json::Map::new();
    for (key, value) in record.iter() {
        let value = match (key, value) {
            _ if UNREAD.contains(&key) => continue,
            (
                keys::USER_SLEEP_REQUEST | keys::FORCE_REM_REQUEST | keys::FORCE_WAKE_REQUEST,
                Value::Object(request),
            ) => Value::Object(
                request
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "ts" | "discarded_at"))
                    .map(|(k, v)| (k.clone(), relative(v, now)))
                    .collect(),
            ),
            (keys::SESSION_STARTS, history) => {
                let starts = SessionStarts::from_value(history);
                json!(starts.as_slice().iter().map(|&at| rel(at, now)).collect::<Vec<_>>())
            }
            _ => relative(value, now),
        };
        map.insert(key.to_owned(), value);
    }
    Value::Object(map)
}

/// The content of the one state that stands in for every state at the bound that passed.
const PASSED: u128 = 0;

/// `value` with the two session ids exchanged.
fn swap_sessions(value: &Value) -> Value {
    let swap = |text: &str| match text {
        "a" => "b".to_owned(),
        "b" => "a".to_owned(),
        other => other.to_owned(),
    };
    match value {
        Value::String(text) => Value::String(swap(text)),
        Value::Array(items) => Value::Array(items.iter().map(swap_sessions).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (swap(k), swap_sessions(v))).collect())
        }
        other => other.clone(),
    }
}

/// A 128-bit hash of `bytes`.
fn hash128(bytes: &[u8]) -> u128 {
    let half = |salt: u8| {
        let mut hasher = std::hash::DefaultHasher::new();
        hasher.write_u8(salt);
        hasher.write(bytes);
        hasher.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

/// What a state holds, which it is compared and hashed by with its depth (see "What a state
/// is", "Time is relative" and "The two session ids are alike"): the smaller of the hashes of
/// its description and of the description of the same state with the session ids exchanged.
fn content_of(s: &S) -> u128 {
    let value = describe_state(s);
    let plain = serde_json::to_vec(&value).expect("a description encodes");
    if !plain.windows(3).any(|w| w == b"\"a\"" || w == b"\"b\"") {
        return hash128(&plain);
    }
    let swapped = serde_json::to_vec(&swap_sessions(&value)).expect("a description encodes");
    hash128(&plain).min(hash128(&swapped))
}

fn describe_state(s: &S) -> Value {
    let now = s.now;
    let record = s.data.record();
    let doc_bytes = record.to_vec();
    let durable = if *s.durable == doc_bytes {
        Value::Null
    } else {
        match Record::from_slice(&s.durable) {
            Ok(durable) => relative_document(&durable, now),
            Err(_) => json!("unparsable"),
        }
    };
    let time_of_day = match record.get(keys::QUIET_WINDOW) {
        Some(Value::Null) | None => None,
        Some(_) => Some(now.num_seconds_from_midnight()),
    };
    let h = &s.host;
    json!([
        s.state.as_str(),
        s.waited,
        relative_document(record, now),
        s.data.last_activity_at().map(|at| rel(at, now)),
        durable,
        time_of_day,
        format!("{:?}", h.lock),
        h.cycle,
        h.folded,
        h.delivered_at.map(|at| rel(at, now).max(-(19 * 3600 * 1_000_000))),
        h.marks.iter().map(|m| m.id()).collect::<Vec<_>>(),
        s.violation,
        s.stuck,
    ])
}

fn core_of(data: &Data) -> Core {
    let (mut core, _) = Core::restore(Record::new());
    core.replace_data(data.clone());
    core
}

/// The state a document names.
fn fsm_in(record: &Record) -> Option<StateName> {
    record.get(keys::FSM_STATE)?.as_str().and_then(StateName::parse)
}

fn result(timed_out: bool) -> RemResult {
    RemResult { summaries_created: 3, timed_out, ..RemResult::default() }
}

fn kind_of(act: &Act) -> Option<EventKind> {
    Some(match act {
        Act::Tick { store_empty } => EventKind::Tick { store_empty: *store_empty },
        Act::SessionOpen(sid) => EventKind::SessionStarted { session_id: Some(sid.id()) },
        Act::Recall(sid) => EventKind::Recall { session_id: Some(sid.id()) },
        Act::Activity => EventKind::McpActivity,
        Act::UserSleep => EventKind::UserSleepRequested { reason: "bed".to_owned(), ts: None },
        Act::ForceRem => EventKind::ForceRemRequested { ts: None },
        Act::ForceWake => EventKind::ForceWakeRequested { ts: None },
        Act::Pause => EventKind::Pause,
        Act::Resume => EventKind::Resume,
        Act::Configure => {
            EventKind::Configure(Settings { rem_cycle_count: Some(1), timezone: None })
        }
        Act::Shutdown => EventKind::Shutdown,
        Act::Boot | Act::Crash => EventKind::Boot,
        Act::Grant | Act::GrantSaveFails => EventKind::LockAcquired,
        Act::Deny => EventKind::LockDenied,
        Act::Lose => EventKind::LockLost,
        Act::Finish { timed_out } => EventKind::RemCycleFinished { result: result(*timed_out) },
        Act::FinishSaveFails => EventKind::RemCycleFinished { result: result(false) },
        Act::Wait(_) => return None,
    })
}

const YIELDS: [Reason; 5] = [
    Reason::LockTimeout,
    Reason::LockDenied,
    Reason::McpRecentActivity,
    Reason::McpReacquiredMidNight,
    Reason::ForceWakeRequested,
];

impl Lifecycle {
    fn init(&self) -> S {
        let record = initial_document();
        let durable = Arc::new(record.to_vec());
        let (data, _) = Data::from_record(record);
        let host = Host {
            lock: Lock::Free,
            cycle: None,
            folded: false,
            delivered_at: None,
            marks: BTreeSet::new(),
        };
        let mut s = S {
            depth: 0,
            stuck: false,
            now: epoch(),
            waited: false,
            state: StateName::Wake,
            data,
            durable,
            durable_state: Some(StateName::Wake),
            host,
            violation: None,
            content: 0,
        };
        s.content = content_of(&s);
        s
    }

    /// One step; `record_rows` gathers the rows taken into the exploration's set. A refused
    /// event that changed nothing leaves the state as it was.
    fn step(&self, last: &S, act: &Act, record_rows: bool) -> S {
        self.try_step(last, act, record_rows).unwrap_or_else(|| {
            let mut s = last.clone();
            s.depth += 1;
            s
        })
    }

    /// [`step`](Self::step), or `None` when the event was refused and changed nothing.
    fn try_step(&self, last: &S, act: &Act, record_rows: bool) -> Option<S> {
        if last.violation.is_some() {
            return None;
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| self.apply(last, act, record_rows)));
        let mut s = match outcome {
            Ok(s) => s?,
            Err(panic) => {
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|t| (*t).to_owned()))
                    .unwrap_or_default();
                let mut s = last.clone();
                s.violation = Some(format!("panicked: {text}"));
                s
            }
        };
        s.depth = last.depth + 1;
        s.content = content_of(&s);
        Some(s)
    }

    fn apply(&self, last: &S, act: &Act, record_rows: bool) -> Option<S> {
        if let Act::Wait(seconds) = act {
            let mut s = last.clone();
            s.waited = true;
            s.now += Duration::seconds(*seconds);
            return Some(s);
        }
        let crash = *act == Act::Crash;
        let mut core = if crash {
            let record = Record::from_slice(&last.durable).expect("the durable document parses");
            Core::restore(record).0
        } else {
            core_of(&last.data)
        };
        let before_state = core.state();
        let before = last.data.record();
        let event = Event::new(last.now, kind_of(act).expect("an event"));
        let is_recall = matches!(act, Act::Recall(_));
        let result = match self.variant {
            Variant::FirstTurnKept if is_recall => core.handle_with(&event, |r| {
                if let Some(value) = before.get(keys::FIRST_TURN_PENDING) {
                    r.set(keys::FIRST_TURN_PENDING, value.clone());
                }
            }),
            Variant::DigestKept if is_recall => core.handle_with(&event, |r| {
                for key in [keys::PENDING_DIGEST, keys::LAST_DIGEST_SHOWN_AT] {
                    match before.get(key) {
                        Some(value) => r.set(key, value.clone()),
                        None => {
                            r.remove(key);
                        }
                    }
                }
            }),
            _ => core.handle(&event),
        };
        let mut outcome = match result {
            Err(rejection) => {
                let mut s = last.clone();
                if crash {
                    s.violation = Some("boot refused after a crash".to_owned());
                } else if core.state() != before_state
                    || core.data().record().to_vec() != before.to_vec()
                {
                    s.violation =
                        Some(format!("the refused {:?} changed the core", rejection.trigger));
                } else {
                    return None;
                }
                return Some(s);
            }
            Ok(outcome) => outcome,
        };
        let mut s = S {
            depth: last.depth,
            stuck: false,
            now: last.now,
            waited: false,
            state: last.state,
            data: Data::from_record(Record::new()).0,
            durable: Arc::clone(&last.durable),
            durable_state: last.durable_state,
            host: last.host.clone(),
            violation: None,
            content: 0,
        };
        if crash {
            s.host.lock = Lock::Free;
            s.host.cycle = None;
        }
        if record_rows {
            let mut rows = self.rows.lock().unwrap();
            for row in &outcome.rows {
                if let Some(i) = TABLE.iter().position(|r| std::ptr::eq(r, *row)) {
                    rows.insert(i);
                }
            }
        }
        // The broken variants that rewrite the outcome.
        match self.variant {
            Variant::YieldKeepsLock
                if outcome.transitions.iter().any(|t| YIELDS.contains(&t.reason)) =>
            {
                outcome.effects.retain(|e| *e != Effect::ReleaseLock);
            }
            Variant::RecoveryShortcut
                if *act == Act::Boot
                    && outcome
                        .transitions
                        .first()
                        .is_some_and(|t| t.from == StateName::Dreaming)
                    && outcome.transitions.len() > 1 =>
            {
                let to = outcome.transitions.last().unwrap().to;
                outcome.transitions.truncate(1);
                outcome.transitions[0].to = to;
            }
            _ => {}
        }
        let mut problems = Vec::new();
        // Edges.
        let mut at = before_state;
        for t in &outcome.transitions {
            if t.from != at {
                problems
                    .push(format!("a transition leaves {} while the machine was in {at}", t.from));
            }
            if let Err(error) = check_edge(t.from, t.to) {
                problems.push(error.to_string());
            }
            at = t.to;
        }
        if at != core.state() {
            problems
                .push(format!("the transitions end in {at}, the machine is in {}", core.state()));
        }
        // Durability.
        let save_fails = matches!(act, Act::GrantSaveFails | Act::FinishSaveFails);
        let snapshots = outcome.snapshots();
        if save_fails {
            if let Some(previous) = snapshots.len().checked_sub(2).map(|i| &snapshots[i]) {
                s.durable = Arc::new(previous.to_vec());
                s.durable_state = fsm_in(previous);
            }
            let durable = Record::from_slice(&s.durable).expect("the durable document parses");
            let (mut data, _) = Data::from_record(durable);
            data.carry_volatile_from(core.data());
            core.replace_data(data);
        } else if let Some(last) = snapshots.last() {
            s.durable = Arc::new(last.to_vec());
            s.durable_state = fsm_in(last);
        }
        if s.durable_state != Some(core.state()) {
            problems.push(format!(
                "the durable document names {:?}, the machine is in {}",
                s.durable_state,
                core.state()
            ));
        }
        // The host's side of the event.
        let host = &mut s.host;
        match act {
            Act::Grant | Act::GrantSaveFails => host.lock = Lock::Held,
            Act::Deny | Act::Lose => host.lock = Lock::Free,
            Act::Finish { .. } | Act::FinishSaveFails => host.cycle = None,
            Act::Boot | Act::Shutdown => {
                host.cycle = None;
            }
            _ => {}
        }
        if outcome.rows.iter().any(|row| row.actions.contains(&Action::FoldDigest)) {
            host.folded = true;
        }
        if !save_fails {
            for effect in &outcome.effects {
                match effect {
                    Effect::AcquireLock => {
                        if host.lock == Lock::Held {
                            problems.push("the lock was asked for while held".to_owned());
                        }
                        host.lock = Lock::Requested;
                    }
                    Effect::ReleaseLock => host.lock = Lock::Free,
                    Effect::RunRemCycle { cycle, of, .. } => {
                        if host.lock != Lock::Held || core.state() != StateName::Dreaming {
                            problems.push(format!(
                                "run_rem_cycle {cycle} of {of} with the lock {:?} in {}",
                                host.lock,
                                core.state()
                            ));
                        }
                        host.cycle = Some((*cycle, *of));
                    }
                    _ => {}
                }
            }
        }
        if core.state() == StateName::Wake && host.lock == Lock::Held {
            problems.push("back in WAKE with the lock held".to_owned());
        }
        let night = &core.data().view().night;
        if night.completed > night.planned {
            problems
                .push(format!("{} cycles completed of {} planned", night.completed, night.planned));
        }
        // What a recall gave.
        if let Act::Recall(sid) = act {
            if outcome.first_turn == Some(true) && !host.marks.remove(sid) {
                problems.push(format!("a first turn for {sid:?} reported twice for one mark"));
            }
            if outcome.digest.is_some() {
                if !host.folded {
                    problems.push("a digest delivered twice for one fold".to_owned());
                }
                if let Some(previous) = host.delivered_at
                    && s.now - previous < Duration::hours(18)
                {
                    problems.push(format!(
                        "a digest delivered {} s after the previous one",
                        (s.now - previous).num_seconds()
                    ));
                }
                host.folded = false;
                host.delivered_at = Some(s.now);
            }
        }
        if let Act::SessionOpen(sid) = act {
            host.marks.insert(*sid);
        }
        s.state = core.state();
        s.data = core.data().clone();
        if !problems.is_empty() {
            s.violation = Some(problems.join("; "));
        }
        Some(s)
    }

    /// A state at the bound, which is checked and not expanded: its way back to WAKE is tried
    /// here, once for each distinct state, and every state that passes is replaced by one
    /// stand-in, so that the last level (the largest) is counted but never kept.
    fn leaf(&self, mut s: S) -> S {
        let hash = s.content;
        let known = self.leaves.lock().unwrap().get(&hash).copied();
        let stuck = match known {
            Some(stuck) => stuck,
            None => {
                let stuck = !self.way_back(&s);
                self.leaves.lock().unwrap().insert(hash, stuck);
                stuck
            }
        };
        if s.violation.is_some() || stuck {
            s.stuck = stuck;
            s.content = content_of(&s);
            return s;
        }
        s.content = PASSED;
        s
    }

    /// The host's script back to WAKE (see the module docs).
    fn way_back(&self, s: &S) -> bool {
        if s.violation.is_some() {
            return true;
        }
        let mut core = core_of(&s.data);
        let mut now = s.now;
        for _ in 0..12 {
            let kind = match core.state() {
                StateName::Wake => return true,
                StateName::Transitioning => EventKind::LockAcquired,
                StateName::Dreaming => EventKind::RemCycleFinished { result: result(false) },
                StateName::Sleep => EventKind::Tick { store_empty: false },
            };
            now += Duration::seconds(1);
            if core.handle(&Event::new(now, kind)).is_err() {
                return false;
            }
        }
        core.state() == StateName::Wake
    }
}

impl Model for Lifecycle {
    type State = S;
    type Action = Act;

    fn init_states(&self) -> Vec<S> {
        vec![self.init()]
    }

    fn actions(&self, s: &S, actions: &mut Vec<Act>) {
        if s.violation.is_some() || s.depth >= self.bound {
            return;
        }
        if !s.waited {
            let waits: &[i64] = if self.alphabet == Alphabet::Full { &WAITS } else { &SHORT_WAITS };
            actions.extend(waits.iter().map(|&d| Act::Wait(d)));
        }
        if matches!(self.alphabet, Alphabet::Night | Alphabet::NightRecall) {
            if self.alphabet == Alphabet::NightRecall {
                actions.push(Act::Recall(Sid::A));
            }
            actions.extend([
                Act::Tick { store_empty: false },
                Act::Activity,
                Act::UserSleep,
                Act::ForceWake,
                Act::Shutdown,
                Act::Crash,
            ]);
            match s.host.lock {
                Lock::Requested => actions.extend([Act::Grant, Act::Deny]),
                Lock::Held => actions.push(Act::Lose),
                Lock::Free => {}
            }
            if s.host.cycle.is_some() {
                actions.push(Act::Finish { timed_out: false });
            }
            return;
        }
        actions.push(Act::Tick { store_empty: false });
        if s.state == StateName::Wake {
            actions.push(Act::Tick { store_empty: true });
        }
        for sid in [Sid::A, Sid::B] {
            actions.push(Act::SessionOpen(sid));
            actions.push(Act::Recall(sid));
        }
        actions.extend([
            Act::Activity,
            Act::UserSleep,
            Act::ForceRem,
            Act::ForceWake,
            Act::Pause,
            Act::Resume,
            Act::Configure,
            Act::Shutdown,
            Act::Boot,
            Act::Crash,
        ]);
        match s.host.lock {
            Lock::Requested => actions.extend([Act::Grant, Act::GrantSaveFails, Act::Deny]),
            Lock::Held => actions.push(Act::Lose),
            Lock::Free => {}
        }
        if s.host.cycle.is_some() {
            actions.extend([
                Act::Finish { timed_out: false },
                Act::Finish { timed_out: true },
                Act::FinishSaveFails,
            ]);
        }
    }

    fn next_state(&self, last: &S, act: Act) -> Option<S> {
        let s = self.try_step(last, &act, true)?;
        if s.content == last.content {
            // Nothing changed (a refused event, or one with nothing left to do): every path on
            // from here is a path on from `last`, which has one more action to go.
            return None;
        }
        if s.depth < self.bound { Some(s) } else { Some(self.leaf(s)) }
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("no violation", |_, s: &S| s.violation.is_none()),
            Property::always("way back to WAKE", |m: &Lifecycle, s: &S| {
                if s.depth >= m.bound { !s.stuck } else { m.way_back(s) }
            }),
        ]
    }
}

/// Describes one action as the numbered list shows it.
fn describe(act: &Act) -> String {
    match act {
        Act::Wait(d) => format!("wait {}", span(*d)),
        other => format!("{other:?}"),
    }
}

fn span(seconds: i64) -> String {
    match seconds {
        s if s % 86400 == 0 => format!("{} d", s / 86400),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// A counterexample as a numbered list of events with the state each leads to, then as a Rust
/// array for [`replay`].
fn counterexample(model: &Lifecycle, acts: &[Act]) -> String {
    let mut s = model.init();
    let mut text = String::new();
    for (i, act) in acts.iter().enumerate() {
        s = model.step(&s, act, false);
        text.push_str(&format!("  {}. {} -> {:?}\n", i + 1, describe(act), s));
    }
    text.push_str(&format!("  as a test: replay(&{acts:?})\n"));
    text
}

/// Replays `acts` from the initial state through the model (and so through `Core`): the first
/// violation, with its step number, or `None`. The way to turn a counterexample into a
/// regression test.
pub fn replay(variant: Variant, acts: &[Act]) -> Option<(usize, String)> {
    let model = Lifecycle::new(variant);
    let mut s = model.init();
    for (i, act) in acts.iter().enumerate() {
        s = model.step(&s, act, false);
        if let Some(v) = &s.violation {
            return Some((i + 1, v.clone()));
        }
        if !model.way_back(&s) {
            return Some((i + 1, "no way back to WAKE".to_owned()));
        }
    }
    None
}

struct Run {
    states: usize,
    unique: usize,
    seconds: f64,
    failures: Vec<(&'static str, Vec<Act>)>,
    rows: HashSet<usize>,
}

/// How the checker walks the states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Search {
    BreadthFirst,
    DepthFirst,
}

impl Search {
    /// `MODEL_SEARCH=dfs` for depth first; breadth first otherwise.
    fn from_env() -> Self {
        match std::env::var("MODEL_SEARCH") {
            Ok(search) if search == "dfs" => Search::DepthFirst,
            _ => Search::BreadthFirst,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Search::BreadthFirst => "breadth first",
            Search::DepthFirst => "depth first",
        }
    }
}

fn run(variant: Variant, alphabet: Alphabet, depth: usize, search: Search) -> Run {
    let mut model = Lifecycle::new(variant);
    model.alphabet = alphabet;
    model.bound = depth;
    let rows = Arc::clone(&model.rows);
    let leaves = Arc::clone(&model.leaves);
    let started = Instant::now();
    let builder = model.checker().threads(2);
    // Depth first reaches the same states (the depth is part of each) and keeps only a path's
    // worth in memory: for runs deeper than breadth first's queue fits in.
    let (failures, states, kept) = match search {
        Search::BreadthFirst => results(&builder.spawn_bfs().join()),
        Search::DepthFirst => results(&builder.spawn_dfs().join()),
    };
    let seconds = started.elapsed().as_secs_f64();
    let rows = rows.lock().unwrap().clone();
    let leaves = leaves.lock().unwrap().len();
    // The stand-in for the states at the bound is kept in their place.
    let kept = kept - usize::from(leaves > 0);
    Run { states, unique: kept + leaves, seconds, failures, rows }
}

/// A finished check's failures with their paths, the states it generated and those it kept.
fn results(checker: &impl Checker<Lifecycle>) -> (Vec<(&'static str, Vec<Act>)>, usize, usize) {
    let mut failures = Vec::new();
    for name in ["no violation", "way back to WAKE"] {
        if let Some(path) = checker.discovery(name) {
            failures.push((name, path.into_actions()));
        }
    }
    (failures, checker.state_count(), checker.unique_state_count())
}

fn env_depth(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|d| d.parse().ok()).unwrap_or(default)
}

/// The three alphabets explored exhaustively, each to the depth its variable names (`cargo test`'s
/// defaults in brackets): every action to `MODEL_FULL_DEPTH` (5), every event to
/// `MODEL_EVENTS_DEPTH` (6), the night's to `MODEL_NIGHT_DEPTH` (8). No property fails, and every
/// row of the table is taken by one of them.
#[test]
fn exhaustive() {
    let model = Lifecycle::new(Variant::Correct);
    let mut report = String::new();
    let mut rows = HashSet::new();
    for (alphabet, depth) in [
        (Alphabet::Full, env_depth("MODEL_FULL_DEPTH", 5)),
        (Alphabet::Events, env_depth("MODEL_EVENTS_DEPTH", 6)),
        (Alphabet::Night, env_depth("MODEL_NIGHT_DEPTH", 8)),
    ] {
        let search = Search::from_env();
        let run = run(Variant::Correct, alphabet, depth, search);
        println!(
            "model check, {alphabet:?} alphabet, {} to depth {depth} (every sequence of {depth} actions; depth {} as stateright counts): {} distinct states ({} generated) in {:.1} s; {} of {} rows taken",
            search.name(),
            depth + 1,
            run.unique,
            run.states,
            run.seconds,
            run.rows.len(),
            TABLE.len()
        );
        for (name, acts) in &run.failures {
            report.push_str(&format!(
                "{alphabet:?}: \"{name}\" fails:\n{}",
                counterexample(&model, acts)
            ));
        }
        rows.extend(run.rows);
    }
    let missing: Vec<String> = (0..TABLE.len())
        .filter(|i| !rows.contains(i))
        .map(|i| {
            let r = &TABLE[i];
            format!("{} {:?} [{:?}]", r.from, r.trigger, r.guard)
        })
        .collect();
    if !missing.is_empty() {
        report.push_str(&format!("rows never taken: {}\n", missing.join(", ")));
    }
    assert!(report.is_empty(), "{report}");
}

/// Each broken variant is caught within `depth`, and its counterexample printed.
fn caught(variant: Variant, alphabet: Alphabet, depth: usize) {
    let run = run(variant, alphabet, depth, Search::BreadthFirst);
    let model = Lifecycle::new(variant);
    let Some((name, acts)) = run.failures.first() else {
        panic!("{variant:?} was not caught at depth {depth} ({} states)", run.unique);
    };
    println!(
        "{variant:?}: \"{name}\" fails after {} steps ({} states, {:.1} s):\n{}",
        acts.len(),
        run.unique,
        run.seconds,
        counterexample(&model, acts)
    );
    assert!(replay(variant, acts).is_some());
    assert_eq!(replay(Variant::Correct, acts), None, "the correct engine passes the same path");
}

#[test]
fn yield_keeping_the_lock_is_caught() {
    caught(Variant::YieldKeepsLock, Alphabet::Night, 5);
}

#[test]
fn first_turn_kept_is_caught() {
    caught(Variant::FirstTurnKept, Alphabet::Full, 4);
}

#[test]
fn digest_kept_is_caught() {
    caught(Variant::DigestKept, Alphabet::NightRecall, 7);
}

#[test]
fn recovery_shortcut_is_caught() {
    caught(Variant::RecoveryShortcut, Alphabet::Full, 4);
}

/// A counterexample of `YieldKeepsLock`, pasted as printed: a force-wake makes the night yield
/// after its first cycle.
#[test]
fn replayed_counterexample_is_caught() {
    let acts = [
        Act::UserSleep,
        Act::Tick { store_empty: false },
        Act::Grant,
        Act::ForceWake,
        Act::Finish { timed_out: false },
    ];
    assert_eq!(replay(Variant::Correct, &acts), None);
    let (step, violation) = replay(Variant::YieldKeepsLock, &acts).expect("caught");
    assert_eq!((step, violation.as_str()), (5, "back in WAKE with the lock held"));
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The depth is part of a state, so the order the checker's two threads take states in changes
/// nothing: depth first and breadth first reach the same states and generate the same steps.
#[test]
fn depth_first_and_breadth_first_reach_the_same_states() {
    let breadth = run(Variant::Correct, Alphabet::Events, 4, Search::BreadthFirst);
    let depth = run(Variant::Correct, Alphabet::Events, 4, Search::DepthFirst);
    assert!(breadth.failures.is_empty() && depth.failures.is_empty());
    assert_eq!((breadth.unique, breadth.states), (depth.unique, depth.states));
}
