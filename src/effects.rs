//! What the engine asks the host to do, as plain data.
//!
//! Owns the effect values, the audit events the engine emits, and their shape on the wire. It must
//! not perform anything: the host (or the command line acting as one) takes the lock, runs the REM
//! cycle, writes the audit event.

use crate::reason::Reason;
use crate::table::StateName;
use crate::timestamp::Timestamp;

/// How loud an emitted audit event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[derive(serde::Serialize)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Severity {
    /// Routine.
    Info,
    /// Something went wrong and was repaired.
    Warning,
}

impl Severity {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
        }
    }
}

/// When the first-turn reaper ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[derive(serde::Serialize)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReapPhase {
    /// At boot.
    Startup,
    /// On a tick.
    Tick,
}

/// An audit event for the host to write, one variant per event the engine emits, each with its
/// fields as the wire's `payload` spells them.
#[derive(Debug, Clone, PartialEq)]
#[derive(serde::Serialize)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Audit {
    /// A tick did nothing because the scheduler is paused (emitted once, when the tick's skip
    /// reason becomes `paused`).
    DaemonTickSkipped {
        /// Why: [`Reason::Paused`].
        reason: Reason,
    },
    /// A night ended early, or never started because the lock never came.
    DaemonYielded {
        /// Why it yielded (`lock_timeout`, `mcp_active`, `force_wake_requested`, ...).
        reason: Reason,
        /// The REM cycles the night had completed.
        completed_cycles: u32,
    },
    /// A boot found the state file mid-night and walked it back to WAKE.
    FsmRecovered {
        /// The state the file was found in.
        found: StateName,
        /// When the boot recovered it.
        #[serde(with = "crate::timestamp::wire")]
        at: Timestamp,
    },
    /// First turns marked over an hour ago were dropped without being consumed.
    FirstTurnPendingExpired {
        /// How many were dropped (the length of `session_ids`).
        dropped_count: usize,
        /// The sessions dropped.
        session_ids: Vec<String>,
        /// How old a mark must be to be dropped, in seconds.
        ttl_sec: f64,
        /// When the reaper ran.
        phase: ReapPhase,
    },
}

impl Audit {
    /// The event's kind on the wire (`daemon_yielded`, `fsm_recovered`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::DaemonTickSkipped { .. } => "daemon_tick_skipped",
            Self::DaemonYielded { .. } => "daemon_yielded",
            Self::FsmRecovered { .. } => "fsm_recovered",
            Self::FirstTurnPendingExpired { .. } => "first_turn_pending_expired",
        }
    }

    /// How loud it is: a recovery is a warning, the rest is routine.
    pub fn severity(&self) -> Severity {
        match self {
            Self::FsmRecovered { .. } => Severity::Warning,
            _ => Severity::Info,
        }
    }
}

/// One thing for the host to do, in the order given.
///
/// On the wire (and with the `serde` feature) an effect is an object tagged by `effect`:
/// `{"effect": "acquire_lock"}`, `{"effect": "run_rem_cycle", "cycle": 1, "of": 4, "is_last":
/// false}`, `{"effect": "emit", "kind": "daemon_yielded", "payload": {...}, "severity": "info"}`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize), serde(from = "wire::EffectIn"))]
#[non_exhaustive]
pub enum Effect {
    /// Take the exclusive lock that keeps clients out while the daemon sleeps; answer with
    /// `LockAcquired` or `LockDenied`.
    AcquireLock,
    /// Give the lock back. Safe to perform when the lock is not held: the engine asks for it
    /// after a refused lock too, so a host releases what it holds, if anything.
    ReleaseLock,
    /// Run REM cycle `cycle` of `of`; answer with `RemCycleFinished`.
    RunRemCycle {
        /// Which cycle, from 1.
        cycle: u32,
        /// How many the night plans.
        of: u32,
        /// Whether this is the night's last planned cycle.
        is_last: bool,
    },
    /// Write an audit event.
    Emit(Audit),
}

impl serde::Serialize for Effect {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        wire::EffectOut::from(self).serialize(serializer)
    }
}

/// The effect's wire shapes: the audit's fields beside the tag, with its severity.
mod wire {
    use serde::Serialize;

    use super::{Audit, Effect, Severity};

    #[derive(Serialize)]
    #[serde(tag = "effect", rename_all = "snake_case")]
    pub(super) enum EffectOut<'a> {
        AcquireLock,
        ReleaseLock,
        RunRemCycle {
            cycle: u32,
            of: u32,
            is_last: bool,
        },
        Emit {
            #[serde(flatten)]
            audit: &'a Audit,
            severity: Severity,
        },
    }

    impl<'a> From<&'a Effect> for EffectOut<'a> {
        fn from(effect: &'a Effect) -> Self {
            match *effect {
                Effect::AcquireLock => Self::AcquireLock,
                Effect::ReleaseLock => Self::ReleaseLock,
                Effect::RunRemCycle { cycle, of, is_last } => Self::RunRemCycle { cycle, of, is_last },
                Effect::Emit(ref audit) => Self::Emit { audit, severity: audit.severity() },
            }
        }
    }

    #[cfg(feature = "serde")]
    #[derive(serde::Deserialize)]
    #[serde(tag = "effect", rename_all = "snake_case")]
    pub(super) enum EffectIn {
        AcquireLock,
        ReleaseLock,
        RunRemCycle {
            cycle: u32,
            of: u32,
            is_last: bool,
        },
        Emit {
            #[serde(flatten)]
            audit: Audit,
        },
    }

    #[cfg(feature = "serde")]
    impl From<EffectIn> for Effect {
        fn from(effect: EffectIn) -> Self {
            match effect {
                EffectIn::AcquireLock => Self::AcquireLock,
                EffectIn::ReleaseLock => Self::ReleaseLock,
                EffectIn::RunRemCycle { cycle, of, is_last } => Self::RunRemCycle { cycle, of, is_last },
                EffectIn::Emit { audit } => Self::Emit(audit),
            }
        }
    }
}
