//! What the engine asks the host to do, as plain data.
//!
//! Owns the effect values and their JSON shape on the wire. It must not perform anything: the host
//! (or the command line acting as one) takes the lock, runs the REM cycle, writes the audit event.

use serde_json::{Value, json};

/// How loud an emitted audit event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// One thing for the host to do, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Take the exclusive lock that keeps clients out while the daemon sleeps; answer with
    /// `LockAcquired` or `LockDenied`.
    AcquireLock,
    /// Give the lock back.
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
    Emit {
        /// The event's kind (`daemon_yielded`, `fsm_recovered`, ...).
        kind: &'static str,
        /// Its payload, a JSON object.
        payload: Value,
        /// How loud it is.
        severity: Severity,
    },
}

impl Effect {
    /// An `Emit` at info level.
    pub fn emit(kind: &'static str, payload: Value) -> Self {
        Self::Emit { kind, payload, severity: Severity::Info }
    }

    /// The effect as the protocol and `--json` output spell it.
    pub fn to_json(&self) -> Value {
        match self {
            Self::AcquireLock => json!({"effect": "acquire_lock"}),
            Self::ReleaseLock => json!({"effect": "release_lock"}),
            Self::RunRemCycle { cycle, of, is_last } => {
                json!({"effect": "run_rem_cycle", "cycle": cycle, "of": of, "is_last": is_last})
            }
            Self::Emit { kind, payload, severity } => json!({
                "effect": "emit",
                "kind": kind,
                "payload": payload,
                "severity": severity.as_str(),
            }),
        }
    }
}
