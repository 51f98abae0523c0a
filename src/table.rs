//! The transition table: every (state, event, guard) the engine accepts, its target, its actions
//! and its reason.
//!
//! This is what the statig handlers run (each looks up its rows here and applies the first whose
//! guard holds) and what the diagrams are drawn from. It owns the four state names, the seed's raw
//! edge check, the vocabulary of guards, actions and reasons, and the invariants of the table that
//! the compiler checks. It must not run anything: `machine` gives guards and actions their meaning.

use std::fmt;

pub use crate::event::Trigger;
pub use crate::reason::Reason;

/// The four states, spelled on disk (and on the wire) exactly as the seed spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[serde(rename_all = "UPPERCASE")]
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
    pub const fn allowed_targets(self) -> &'static [StateName] {
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
/// a row whose guard holds is taken (see [`Target`] for what happens next).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Guard {
    /// Always applies.
    Always,
    /// The scheduler is paused (`scheduler_paused` is the boolean `true`).
    Paused,
    /// The tick says the memory store is empty.
    StoreEmpty,
    /// A first-turn mark is older than 1 h.
    FirstTurnsExpired,
    /// The quiet window was learned 24 h ago or more (or never, or in the future).
    RelearnDue,
    /// A request is pending, or the quiet window holds now, or 2 h have passed since the later of
    /// the last session and the boot (at most one night per idle stretch), and no refused lock in
    /// the last 5 minutes.
    SleepDue,
    /// A refused or timed-out lock holds the next attempt off.
    BackingOff,
    /// None of the above: nothing to do outside the quiet window.
    OutsideWindow,
    /// The lock has not come within the wait bound.
    LockWaitExpired,
    /// Otherwise: still within the lock wait bound.
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
    /// Otherwise: the night has run all its cycles.
    CyclesDone,
}

impl Guard {
    /// The guard's label in diagrams (empty for `Always`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Always => "",
            Self::Paused => "paused",
            Self::StoreEmpty => "store empty",
            Self::FirstTurnsExpired => "first turn older than 1 h",
            Self::RelearnDue => "window learned 24 h ago",
            Self::SleepDue => "request or quiet window or idle 2 h, not backing off",
            Self::BackingOff => "backing off",
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

    /// Whether the guard holds whenever the rows before it in its group did not: the last row of
    /// every group has one, so an accepted event always finds a row.
    pub const fn is_fallback(self) -> bool {
        matches!(
            self,
            Self::Always | Self::OutsideWindow | Self::LockWaitPending | Self::CyclesDone
        )
    }
}

/// What a row does besides moving: bookkeeping in the state file and effects for the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Note the tick's moment (kept in memory, written with the next snapshot).
    NoteTick,
    /// Drop first-turn marks older than 1 h and report them (phase `tick`).
    ReapFirstTurns,
    /// Learn the quiet window again from the session history.
    RelearnQuietWindow,
    /// Record the boot moment and reap first turns older than 1 h (phase `startup`).
    StampBoot,
    /// Record the row's reason as why the tick did nothing (emit `daemon_tick_skipped` when a
    /// pause is new).
    SkipTick,
    /// Forget why the last tick did nothing: a night begins.
    ClearSkipReason,
    /// Drop a force-wake that was pending before the night began, so it cannot cut it short.
    DiscardStaleForceWake,
    /// Effect: take the exclusive lock (entering TRANSITIONING).
    AcquireLock,
    /// Effect: give the lock back (entering WAKE).
    ReleaseLock,
    /// Plan the night (1 cycle for force-REM, else `rem_cycle_count`) and mark requests honoured.
    PlanNight,
    /// Effect: run the next REM cycle (entering DREAMING).
    RunRemCycle,
    /// Fold the finished cycle's result into the pending digest.
    FoldDigest,
    /// Record how many cycles the night completed.
    FinishNight,
    /// Emit `daemon_yielded` with this reason and the cycles the night completed.
    EmitYielded(Reason),
    /// Hold off the next attempt for 5 minutes after a refused or timed-out lock.
    BackOff,
    /// Emit `fsm_recovered` with the state found at boot.
    EmitRecovered,
    /// Walk the night back: the next `Continue` in SLEEP goes to WAKE.
    WindDown,
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
    /// The action's label in diagrams (without an emitted reason; see the `Display` form).
    pub fn label(self) -> &'static str {
        match self {
            Self::NoteTick => "note tick",
            Self::ReapFirstTurns => "reap first turns",
            Self::RelearnQuietWindow => "relearn quiet window",
            Self::StampBoot => "stamp boot",
            Self::SkipTick => "skip tick",
            Self::ClearSkipReason => "clear skip reason",
            Self::DiscardStaleForceWake => "discard stale force-wake",
            Self::AcquireLock => "acquire lock",
            Self::ReleaseLock => "release lock",
            Self::PlanNight => "plan night",
            Self::RunRemCycle => "run REM cycle",
            Self::FoldDigest => "fold digest",
            Self::FinishNight => "finish night",
            Self::EmitYielded(_) => "emit daemon_yielded",
            Self::BackOff => "back off",
            Self::EmitRecovered => "emit fsm_recovered",
            Self::WindDown => "wind down",
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

    /// The action a state's entry performs, which every row entering it lists last.
    pub const fn entering(state: StateName) -> Option<Action> {
        match state {
            StateName::Wake => Some(Self::ReleaseLock),
            StateName::Transitioning => Some(Self::AcquireLock),
            StateName::Sleep => None,
            StateName::Dreaming => Some(Self::RunRemCycle),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmitYielded(reason) => write!(f, "{} ({reason})", self.label()),
            _ => f.write_str(self.label()),
        }
    }
}

/// Why a row moved the machine or skipped a tick, as the table's reason column says it: the
/// [`Reason`] recorded with the transition (`lock_acquired`, `next_cycle`, ...) or as the tick's
/// skip reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Because {
    /// The row records no reason.
    None,
    /// This reason.
    Is(Reason),
    /// Why sleep is due, as the guard found it: `user_sleep_request`, `force_rem_request`,
    /// `quiet_window` or `idle`.
    SleepDue,
}

impl Because {
    /// The reason's text in diagrams (empty for `None`).
    pub fn label(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Is(reason) => reason.as_str(),
            Self::SleepDue => "why sleep is due",
        }
    }
}

/// Where a row leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// The event is handled without leaving the state.
    Stay,
    /// The machine moves to this state (the state's entry action is the row's last action).
    Go(StateName),
    /// The row's work is done and the following rows of the group are tried.
    Next,
    /// The event is decided as this trigger is in the same state, from its first row.
    As(Trigger),
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
    /// What it does, in order, the target's entry action last.
    pub actions: &'static [Action],
    /// The reason recorded with the transition or the skipped tick.
    pub reason: Because,
}

impl Row {
    /// Whether the row leads to another state.
    pub fn moves(&self) -> bool {
        matches!(self.to, Target::Go(_))
    }
}

mod checks;
mod rows;

pub use rows::TABLE;

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
    use StateName::{Dreaming, Sleep, Transitioning, Wake};
    use Target::Go;
    use Trigger as T;

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
    fn no_two_rows_that_end_an_event_share_state_event_and_guard() {
        let ends = |row: &Row| !matches!(row.to, Target::Next | Target::As(_));
        for (i, a) in TABLE.iter().enumerate().filter(|(_, r)| ends(r)) {
            for b in TABLE[i + 1..].iter().filter(|r| ends(r)) {
                assert!(
                    (a.from, a.trigger, a.guard) != (b.from, b.trigger, b.guard),
                    "duplicate row {a:?}"
                );
            }
        }
    }

    #[test]
    fn every_state_shares_the_tick_work_and_the_bookkeeping() {
        for state in StateName::ALL {
            let tick: Vec<&[Action]> = rows_for(state, Trigger::Tick).map(|r| r.actions).collect();
            assert_eq!(tick[..2], [&[Action::NoteTick][..], &[Action::ReapFirstTurns][..]]);
            assert!(accepts(state, Trigger::SessionStarted), "{state}");
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
