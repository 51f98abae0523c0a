//! The transition table: every (state, event, guard) the engine accepts, its target and its actions.
//!
//! This is the single source of truth that the tests hold the statig handlers to and that the
//! diagrams are drawn from. It owns the four state names and the seed's raw edge check too. It must
//! not run anything: `machine` executes, this module only describes.

use std::fmt;

use crate::event::Trigger;

/// The four states, spelled on disk exactly as the seed spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StateName {
    /// Awake: clients use the memory store; the scheduler ticks.
    Wake,
    /// Falling asleep: waiting for the exclusive lock.
    Transitioning,
    /// Asleep between REM cycles; holds the lock. It decides at once what comes next, and rests here
    /// only when a save failed between two steps (a tick then takes the same decision).
    Sleep,
    /// Running a REM cycle; holds the lock.
    Dreaming,
}

impl StateName {
    /// All four, in lifecycle order.
    pub const ALL: [StateName; 4] = [Self::Wake, Self::Transitioning, Self::Sleep, Self::Dreaming];

    /// The on-disk spelling (`"WAKE"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wake => "WAKE",
            Self::Transitioning => "TRANSITIONING",
            Self::Sleep => "SLEEP",
            Self::Dreaming => "DREAMING",
        }
    }

    /// Reads the on-disk spelling; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The states this one may move to, as the seed allows them.
    pub fn allowed_targets(self) -> &'static [StateName] {
        match self {
            Self::Wake => &[Self::Transitioning],
            Self::Transitioning => &[Self::Sleep, Self::Wake],
            Self::Sleep => &[Self::Dreaming, Self::Wake],
            Self::Dreaming => &[Self::Sleep],
        }
    }
}

impl fmt::Display for StateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A move the seed's edge list does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Illegal transition {from} -> {to}; allowed: [{}]", quoted(from.allowed_targets()))]
pub struct IllegalTransition {
    /// Where the machine was.
    pub from: StateName,
    /// Where it was asked to go.
    pub to: StateName,
}

fn quoted(states: &[StateName]) -> String {
    states.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
}

/// The seed's raw edge check (`transition(from, to)`): `Ok` for the six legal edges, a typed error
/// whose message matches the seed's for every other pair, self-loops included.
pub fn check_edge(from: StateName, to: StateName) -> Result<(), IllegalTransition> {
    if from.allowed_targets().contains(&to) { Ok(()) } else { Err(IllegalTransition { from, to }) }
}

/// The condition under which a row applies. Rows for one (state, event) are tried in table order;
/// the first whose guard holds is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Guard {
    /// Always applies.
    Always,
    /// The scheduler is paused (`scheduler_paused` is the boolean `true`).
    Paused,
    /// The tick says the memory store is empty.
    StoreEmpty,
    /// A request is pending, or the quiet window holds now, or the user has been idle for 2 h
    /// (at most one night per idle stretch), and no refused lock in the last 5 minutes.
    SleepDue,
    /// None of the above: nothing to do outside the quiet window.
    OutsideWindow,
    /// The lock has not come within the wait bound.
    LockWaitExpired,
    /// Still within the lock wait bound.
    LockWaitPending,
    /// The night is being walked back to WAKE (boot recovery or shutdown).
    WindingDown,
    /// A force-wake request is pending (checked after a cycle, with cycles left).
    ForceWake,
    /// The host lost the lock mid-night.
    LockLost,
    /// A client was active within 30 s of the boundary.
    RecentActivity,
    /// The night has cycles left to run.
    CyclesLeft,
    /// The night has run all its cycles.
    CyclesDone,
}

impl Guard {
    /// The guard's label in diagrams (empty for `Always`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Always => "",
            Self::Paused => "paused",
            Self::StoreEmpty => "store empty",
            Self::SleepDue => "request or quiet window or idle 2 h, not backing off",
            Self::OutsideWindow => "otherwise",
            Self::LockWaitExpired => "lock wait expired",
            Self::LockWaitPending => "lock wait pending",
            Self::WindingDown => "winding down",
            Self::ForceWake => "force-wake requested",
            Self::LockLost => "lock lost",
            Self::RecentActivity => "client active within 30 s",
            Self::CyclesLeft => "cycles left",
            Self::CyclesDone => "cycles done",
        }
    }
}

/// What a row does besides moving: bookkeeping in the state file and effects for the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Record the boot moment and reap first turns older than 1 h (phase `startup`).
    StampBoot,
    /// Record why the tick did not start a night (emit `daemon_tick_skipped` when a pause is new).
    SkipTick,
    /// Drop a force-wake that was pending before the night began, so it cannot cut it short.
    DiscardStaleForceWake,
    /// Effect: take the exclusive lock.
    AcquireLock,
    /// Effect: give the lock back.
    ReleaseLock,
    /// Plan the night (1 cycle for force-REM, else `rem_cycle_count`) and mark requests honoured.
    PlanNight,
    /// Effect: run the next REM cycle.
    RunRemCycle,
    /// Fold the finished cycle's result into the pending digest.
    FoldDigest,
    /// Record how many cycles the night completed.
    FinishNight,
    /// Emit `daemon_yielded` with the reason and the completed cycles.
    EmitYielded,
    /// Hold off the next attempt for 5 minutes after a refused or timed-out lock.
    BackOff,
    /// Emit `fsm_recovered` with the state found at boot.
    EmitRecovered,
    /// Mark the first turn, record `last_session_ts`, feed the session history.
    OpenSession,
    /// Consume the first turn and apply the digest gate.
    Recall,
    /// Remember client activity (a yield reason at the next cycle boundary).
    RecordActivity,
    /// Remember that the lock was lost (a yield reason at the next cycle boundary).
    RememberLockLost,
    /// Store a user-sleep, force-REM or force-wake request as pending.
    QueueRequest,
    /// Set or clear `scheduler_paused`.
    SetPause,
    /// Store a changed setting.
    Configure,
    /// Write what is only kept in memory (`last_tick_at`) before the process exits.
    Flush,
}

impl Action {
    /// The action's label in diagrams.
    pub fn label(self) -> &'static str {
        match self {
            Self::StampBoot => "stamp boot",
            Self::SkipTick => "skip tick",
            Self::DiscardStaleForceWake => "discard stale force-wake",
            Self::AcquireLock => "acquire lock",
            Self::ReleaseLock => "release lock",
            Self::PlanNight => "plan night",
            Self::RunRemCycle => "run REM cycle",
            Self::FoldDigest => "fold digest",
            Self::FinishNight => "finish night",
            Self::EmitYielded => "emit daemon_yielded",
            Self::BackOff => "back off",
            Self::EmitRecovered => "emit fsm_recovered",
            Self::OpenSession => "open session",
            Self::Recall => "recall",
            Self::RecordActivity => "record activity",
            Self::RememberLockLost => "remember lock lost",
            Self::QueueRequest => "queue request",
            Self::SetPause => "set pause",
            Self::Configure => "configure",
            Self::Flush => "flush",
        }
    }
}

/// Where a row leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// The event is handled without leaving the state.
    Stay,
    /// The machine moves to this state (entry actions included in the row's actions).
    Go(StateName),
}

/// A row as the machine reports taking it: the state, the event and the guard that held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Taken {
    /// The state the machine was in.
    pub from: StateName,
    /// The event (or the engine's own `Continue`).
    pub trigger: Trigger,
    /// The guard that held.
    pub guard: Guard,
}

impl Taken {
    /// The table's row for it, if the table has one.
    pub fn row(&self) -> Option<&'static Row> {
        TABLE.iter().find(|r| (r.from, r.trigger, r.guard) == (self.from, self.trigger, self.guard))
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// The state the row applies in.
    pub from: StateName,
    /// The event it handles.
    pub trigger: Trigger,
    /// When it applies.
    pub guard: Guard,
    /// Where it leads.
    pub to: Target,
    /// What it does, in order, entry actions of the target included.
    pub actions: &'static [Action],
}

use Action as A;
use Guard as G;
use StateName::{Dreaming, Sleep, Transitioning, Wake};
use Target::{Go, Stay};
use Trigger as T;

const fn row(
    from: StateName,
    trigger: Trigger,
    guard: Guard,
    to: Target,
    actions: &'static [Action],
) -> Row {
    Row { from, trigger, guard, to, actions }
}

/// The rows every state shares: bookkeeping that does not move the machine.
macro_rules! anytime_rows {
    ($state:expr) => {
        [
            row($state, T::SessionStarted, G::Always, Stay, &[A::OpenSession]),
            row($state, T::Recall, G::Always, Stay, &[A::Recall]),
            row($state, T::McpActivity, G::Always, Stay, &[A::RecordActivity]),
            row($state, T::ForceRemRequested, G::Always, Stay, &[A::QueueRequest]),
            row($state, T::ForceWakeRequested, G::Always, Stay, &[A::QueueRequest]),
            row($state, T::Pause, G::Always, Stay, &[A::SetPause]),
            row($state, T::Resume, G::Always, Stay, &[A::SetPause]),
            row($state, T::Configure, G::Always, Stay, &[A::Configure]),
        ]
    };
}

const WAKE_ROWS: [Row; 7] = [
    row(Wake, T::Boot, G::Always, Stay, &[A::StampBoot]),
    row(Wake, T::Tick, G::Paused, Stay, &[A::SkipTick]),
    row(Wake, T::Tick, G::StoreEmpty, Stay, &[A::SkipTick]),
    row(Wake, T::Tick, G::SleepDue, Go(Transitioning), &[A::DiscardStaleForceWake, A::AcquireLock]),
    row(Wake, T::Tick, G::OutsideWindow, Stay, &[A::SkipTick]),
    row(Wake, T::UserSleepRequested, G::Always, Stay, &[A::QueueRequest]),
    row(Wake, T::Shutdown, G::Always, Stay, &[A::Flush]),
];

const TRANSITIONING_ROWS: [Row; 6] = [
    row(
        Transitioning,
        T::Boot,
        G::Always,
        Go(Wake),
        &[A::StampBoot, A::EmitRecovered, A::ReleaseLock],
    ),
    row(
        Transitioning,
        T::Tick,
        G::LockWaitExpired,
        Go(Wake),
        &[A::EmitYielded, A::BackOff, A::ReleaseLock],
    ),
    row(Transitioning, T::Tick, G::LockWaitPending, Stay, &[]),
    row(Transitioning, T::LockAcquired, G::Always, Go(Sleep), &[A::PlanNight]),
    row(
        Transitioning,
        T::LockDenied,
        G::Always,
        Go(Wake),
        &[A::EmitYielded, A::BackOff, A::ReleaseLock],
    ),
    row(Transitioning, T::Shutdown, G::Always, Go(Wake), &[A::ReleaseLock]),
];

const SLEEP_ROWS: [Row; 13] = [
    row(
        Sleep,
        T::Boot,
        G::Always,
        Go(Wake),
        &[A::StampBoot, A::EmitRecovered, A::FinishNight, A::ReleaseLock],
    ),
    row(Sleep, T::Shutdown, G::Always, Go(Wake), &[A::FinishNight, A::ReleaseLock]),
    row(Sleep, T::Continue, G::WindingDown, Go(Wake), &[A::FinishNight, A::ReleaseLock]),
    row(
        Sleep,
        T::Continue,
        G::ForceWake,
        Go(Wake),
        &[A::EmitYielded, A::FinishNight, A::ReleaseLock],
    ),
    row(
        Sleep,
        T::Continue,
        G::LockLost,
        Go(Wake),
        &[A::EmitYielded, A::FinishNight, A::ReleaseLock],
    ),
    row(
        Sleep,
        T::Continue,
        G::RecentActivity,
        Go(Wake),
        &[A::EmitYielded, A::FinishNight, A::ReleaseLock],
    ),
    row(Sleep, T::Continue, G::CyclesLeft, Go(Dreaming), &[A::RunRemCycle]),
    row(Sleep, T::Continue, G::CyclesDone, Go(Wake), &[A::FinishNight, A::ReleaseLock]),
    row(Sleep, T::Tick, G::ForceWake, Go(Wake), &[A::EmitYielded, A::FinishNight, A::ReleaseLock]),
    row(Sleep, T::Tick, G::LockLost, Go(Wake), &[A::EmitYielded, A::FinishNight, A::ReleaseLock]),
    row(
        Sleep,
        T::Tick,
        G::RecentActivity,
        Go(Wake),
        &[A::EmitYielded, A::FinishNight, A::ReleaseLock],
    ),
    row(Sleep, T::Tick, G::CyclesLeft, Go(Dreaming), &[A::RunRemCycle]),
    row(Sleep, T::Tick, G::CyclesDone, Go(Wake), &[A::FinishNight, A::ReleaseLock]),
];

const DREAMING_ROWS: [Row; 5] = [
    row(Dreaming, T::Boot, G::Always, Go(Sleep), &[A::StampBoot, A::EmitRecovered]),
    row(Dreaming, T::Tick, G::Always, Stay, &[]),
    row(Dreaming, T::RemCycleFinished, G::Always, Go(Sleep), &[A::FoldDigest]),
    row(Dreaming, T::LockLost, G::Always, Stay, &[A::RememberLockLost]),
    row(Dreaming, T::Shutdown, G::Always, Go(Sleep), &[]),
];

const fn concat<const N: usize>(parts: [&[Row]; 8]) -> [Row; N] {
    let mut out = [row(Wake, T::Boot, G::Always, Stay, &[]); N];
    let mut n = 0;
    let mut p = 0;
    while p < parts.len() {
        let mut i = 0;
        while i < parts[p].len() {
            out[n] = parts[p][i];
            n += 1;
            i += 1;
        }
        p += 1;
    }
    assert!(n == N, "the table's length is the sum of its parts");
    out
}

const ANYTIME: usize = 8;

/// The whole table, state by state, rows of one (state, event) in priority order.
pub const TABLE: [Row; 31 + 4 * ANYTIME] = concat([
    &WAKE_ROWS,
    &anytime_rows!(Wake),
    &TRANSITIONING_ROWS,
    &anytime_rows!(Transitioning),
    &SLEEP_ROWS,
    &anytime_rows!(Sleep),
    &DREAMING_ROWS,
    &anytime_rows!(Dreaming),
]);

/// The rows for one state and event, in priority order. Empty means the event is rejected there.
pub fn rows_for(from: StateName, trigger: Trigger) -> impl Iterator<Item = &'static Row> {
    TABLE.iter().filter(move |r| r.from == from && r.trigger == trigger)
}

/// Whether the table has any row for this state and event.
pub fn accepts(from: StateName, trigger: Trigger) -> bool {
    rows_for(from, trigger).next().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn illegal_edge_message_matches_the_seed() {
        let err = check_edge(Dreaming, Transitioning).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Illegal transition DREAMING -> TRANSITIONING; allowed: ['SLEEP']"
        );
        let err = check_edge(Transitioning, Transitioning).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Illegal transition TRANSITIONING -> TRANSITIONING; allowed: ['SLEEP', 'WAKE']"
        );
    }

    #[test]
    fn exactly_six_legal_edges() {
        let legal: Vec<_> = StateName::ALL
            .iter()
            .flat_map(|&f| StateName::ALL.iter().map(move |&t| (f, t)))
            .filter(|&(f, t)| check_edge(f, t).is_ok())
            .collect();
        assert_eq!(
            legal,
            [
                (Wake, Transitioning),
                (Transitioning, Wake),
                (Transitioning, Sleep),
                (Sleep, Wake),
                (Sleep, Dreaming),
                (Dreaming, Sleep),
            ]
        );
    }

    #[test]
    fn every_row_moves_along_a_legal_edge() {
        for row in &TABLE {
            if let Go(to) = row.to {
                assert!(check_edge(row.from, to).is_ok(), "{row:?}");
            }
        }
    }

    #[test]
    fn no_two_rows_share_state_event_and_guard() {
        for (i, a) in TABLE.iter().enumerate() {
            for b in &TABLE[i + 1..] {
                assert!(
                    (a.from, a.trigger, a.guard) != (b.from, b.trigger, b.guard),
                    "duplicate row {a:?}"
                );
            }
        }
    }

    #[test]
    fn continue_is_only_for_sleep() {
        for row in TABLE.iter().filter(|r| r.trigger == T::Continue) {
            assert_eq!(row.from, Sleep);
        }
        for state in StateName::ALL {
            assert_eq!(accepts(state, T::Continue), state == Sleep);
        }
    }
}
