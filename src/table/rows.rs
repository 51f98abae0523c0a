//! The rows themselves: the ones every state shares, written once, then each state's own.
//!
//! Owns the content of `TABLE` and its assembly. It must not give rows meaning: `machine` applies
//! them, `checks` holds them to the table's invariants at compile time.

use super::{Action as A, Because, Guard as G, Row, StateName, Target};
use crate::event::Trigger as T;
use crate::reason::Reason as R;
use Because::Is;
use StateName::{Dreaming, Sleep, Transitioning, Wake};
use Target::{As, Go, Next, Stay};

/// A row of one state.
const fn row(
    from: StateName,
    trigger: T,
    guard: G,
    to: Target,
    actions: &'static [A],
    reason: Because,
) -> Row {
    Row { from, trigger, guard, to, actions, reason }
}

/// A row every state has (its `from` is set when the table is assembled).
const fn every(trigger: T, guard: G, to: Target, actions: &'static [A]) -> Row {
    row(Wake, trigger, guard, to, actions, Because::None)
}

/// The rows every state shares: the work every tick does first, then bookkeeping that does not
/// move the machine.
pub(super) const SHARED: &[Row] = &[
    every(T::Tick, G::Always, Next, &[A::NoteTick]),
    every(T::Tick, G::FirstTurnsExpired, Next, &[A::ReapFirstTurns]),
    every(T::SessionStarted, G::Always, Stay, &[A::OpenSession]),
    every(T::Recall, G::Always, Stay, &[A::Recall]),
    every(T::McpActivity, G::Always, Stay, &[A::RecordActivity]),
    every(T::ForceRemRequested, G::Always, Stay, &[A::QueueRequest]),
    every(T::ForceWakeRequested, G::Always, Stay, &[A::QueueRequest]),
    every(T::Pause, G::Always, Stay, &[A::SetPause]),
    every(T::Resume, G::Always, Stay, &[A::SetPause]),
    every(T::Configure, G::Always, Stay, &[A::Configure]),
];

const WAKE: &[Row] = &[
    row(Wake, T::Boot, G::Always, Stay, &[A::StampBoot], Because::None),
    row(Wake, T::Tick, G::Paused, Stay, &[A::SkipTick], Is(R::Paused)),
    row(Wake, T::Tick, G::StoreEmpty, Stay, &[A::SkipTick], Is(R::EmptyStore)),
    row(Wake, T::Tick, G::RelearnDue, Next, &[A::RelearnQuietWindow], Because::None),
    row(
        Wake,
        T::Tick,
        G::SleepDue,
        Go(Transitioning),
        &[A::DiscardStaleForceWake, A::ClearSkipReason, A::AcquireLock],
        Because::SleepDue,
    ),
    row(Wake, T::Tick, G::BackingOff, Stay, &[A::SkipTick], Is(R::LockBusy)),
    row(Wake, T::Tick, G::OutsideWindow, Stay, &[A::SkipTick], Is(R::OutsideWindow)),
    row(Wake, T::UserSleepRequested, G::Always, Stay, &[A::QueueRequest], Because::None),
    row(Wake, T::Shutdown, G::Always, Stay, &[A::Flush], Because::None),
];

const TRANSITIONING: &[Row] = &[
    row(
        Transitioning,
        T::Boot,
        G::Always,
        Go(Wake),
        &[A::StampBoot, A::EmitRecovered, A::ReleaseLock],
        Is(R::Recovered),
    ),
    row(
        Transitioning,
        T::Tick,
        G::LockWaitExpired,
        Go(Wake),
        &[A::EmitYielded(R::LockTimeout), A::BackOff, A::ReleaseLock],
        Is(R::LockTimeout),
    ),
    row(Transitioning, T::Tick, G::LockWaitPending, Stay, &[], Because::None),
    row(Transitioning, T::LockAcquired, G::Always, Go(Sleep), &[A::PlanNight], Is(R::LockAcquired)),
    row(
        Transitioning,
        T::LockDenied,
        G::Always,
        Go(Wake),
        &[A::EmitYielded(R::McpActive), A::BackOff, A::ReleaseLock],
        Is(R::LockDenied),
    ),
    row(Transitioning, T::Shutdown, G::Always, Go(Wake), &[A::ReleaseLock], Is(R::Shutdown)),
];

/// SLEEP decides at once what comes next (`Continue`). It rests here only when a save failed
/// between two steps; a tick then takes the same decision, so the night goes on.
const SLEEP: &[Row] = &[
    row(
        Sleep,
        T::Boot,
        G::Always,
        Go(Wake),
        &[A::StampBoot, A::EmitRecovered, A::FinishNight, A::ReleaseLock],
        Is(R::Recovered),
    ),
    row(
        Sleep,
        T::Shutdown,
        G::Always,
        Go(Wake),
        &[A::FinishNight, A::ReleaseLock],
        Is(R::Shutdown),
    ),
    row(Sleep, T::Tick, G::Always, As(T::Continue), &[], Because::None),
    row(
        Sleep,
        T::Continue,
        G::WindingDown,
        Go(Wake),
        &[A::FinishNight, A::ReleaseLock],
        Is(R::WoundDown),
    ),
    row(
        Sleep,
        T::Continue,
        G::ForceWake,
        Go(Wake),
        &[A::EmitYielded(R::ForceWakeRequested), A::FinishNight, A::ReleaseLock],
        Is(R::ForceWakeRequested),
    ),
    row(
        Sleep,
        T::Continue,
        G::LockLost,
        Go(Wake),
        &[A::EmitYielded(R::McpReacquiredMidNight), A::FinishNight, A::ReleaseLock],
        Is(R::McpReacquiredMidNight),
    ),
    row(
        Sleep,
        T::Continue,
        G::RecentActivity,
        Go(Wake),
        &[A::EmitYielded(R::McpRecentActivity), A::FinishNight, A::ReleaseLock],
        Is(R::McpRecentActivity),
    ),
    row(Sleep, T::Continue, G::CyclesLeft, Go(Dreaming), &[A::RunRemCycle], Is(R::NextCycle)),
    row(
        Sleep,
        T::Continue,
        G::CyclesDone,
        Go(Wake),
        &[A::FinishNight, A::ReleaseLock],
        Is(R::CyclesDone),
    ),
];

const DREAMING: &[Row] = &[
    row(
        Dreaming,
        T::Boot,
        G::Always,
        Go(Sleep),
        &[A::StampBoot, A::EmitRecovered, A::WindDown],
        Is(R::Recovered),
    ),
    row(Dreaming, T::Tick, G::Always, Stay, &[], Because::None),
    row(
        Dreaming,
        T::RemCycleFinished,
        G::Always,
        Go(Sleep),
        &[A::FoldDigest],
        Is(R::RemCycleFinished),
    ),
    row(Dreaming, T::LockLost, G::Always, Stay, &[A::RememberLockLost], Because::None),
    row(Dreaming, T::Shutdown, G::Always, Go(Sleep), &[A::WindDown], Is(R::Shutdown)),
];

/// Each state's own rows, in lifecycle order.
const OWN: [(StateName, &[Row]); 4] =
    [(Wake, WAKE), (Transitioning, TRANSITIONING), (Sleep, SLEEP), (Dreaming, DREAMING)];

const LEN: usize =
    SHARED.len() * OWN.len() + WAKE.len() + TRANSITIONING.len() + SLEEP.len() + DREAMING.len();

/// Each state's rows: the shared ones (as that state's), then its own.
const fn assemble() -> [Row; LEN] {
    let mut out = [SHARED[0]; LEN];
    let mut n = 0;
    let mut s = 0;
    while s < OWN.len() {
        let (state, own) = OWN[s];
        let mut i = 0;
        while i < SHARED.len() {
            out[n] = Row { from: state, ..SHARED[i] };
            n += 1;
            i += 1;
        }
        let mut i = 0;
        while i < own.len() {
            assert!(own[i].from as u8 == state as u8, "a state's own row names that state");
            out[n] = own[i];
            n += 1;
            i += 1;
        }
        s += 1;
    }
    out
}

/// The whole table, state by state, rows of one (state, event) in priority order.
pub static TABLE: [Row; LEN] = assemble();

const _: () = super::checks::check(&assemble(), SHARED);
