//! What the host tells the engine: events, each carrying the moment it happened.
//!
//! Owns the vocabulary of inputs and their fieldless names used by the transition table. It must not
//! decide anything: the machine and the table give events their meaning.

use std::fmt;

use crate::digest::RemResult;
use crate::timestamp::Timestamp;

/// One input to the engine: what happened, and when.
///
/// With the `serde` feature an event is the protocol's message for it: `{"type": "tick", "ts":
/// "2026-04-18T23:00:30+00:00", "store_empty": false}`, the kind's fields beside `type` and `ts`.
#[derive(Debug, Clone, PartialEq)]
#[derive(serde::Serialize)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
pub struct Event {
    /// When it happened (UTC; the engine keeps microseconds). The engine never reads a clock of
    /// its own.
    #[serde(rename = "ts", with = "crate::timestamp::wire")]
    pub at: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// An event that happened at `at`.
    pub fn new(at: Timestamp, kind: EventKind) -> Self {
        Self { at, kind }
    }

    /// The event's fieldless name, as the transition table spells it.
    pub fn trigger(&self) -> Trigger {
        self.kind.trigger()
    }
}

/// What the machine handles: an event a host sent, or the engine's own step at a cycle boundary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Input<'a> {
    /// A host's event, details and moment included.
    Host(&'a Event),
    /// The engine's own [`Trigger::Continue`]: entering SLEEP decides what comes next within the
    /// same `handle` call.
    Continue,
}

impl Input<'_> {
    /// The input's fieldless name, as the transition table spells it.
    pub fn trigger(&self) -> Trigger {
        match self {
            Self::Host(event) => event.trigger(),
            Self::Continue => Trigger::Continue,
        }
    }

    /// The host event's details (`None` for `Continue`).
    pub fn kind(&self) -> Option<&EventKind> {
        match self {
            Self::Host(event) => Some(&event.kind),
            Self::Continue => None,
        }
    }
}

/// What happened, with its details.
///
/// With the `serde` feature the kind is tagged by `type`, spelled as the protocol's message
/// (`session_open`, `user_initiated_sleep`, `force_rem`, `force_wake`; the others as
/// [`Trigger::as_str`]); a request's stored label is its `label` field.
#[derive(Debug, Clone, PartialEq)]
#[derive(serde::Serialize)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The daemon process started; a persisted mid-night state is recovered to WAKE.
    Boot,
    /// The scheduler's periodic tick; `store_empty` says the memory store has nothing to consolidate.
    Tick {
        /// The host's memory store holds no records.
        #[serde(default)]
        store_empty: bool,
    },
    /// A client session opened. An empty or missing id still counts as a session start.
    #[serde(rename = "session_open")]
    SessionStarted {
        /// The session's id, clipped to 128 characters when stored.
        #[serde(default)]
        session_id: Option<String>,
    },
    /// A client recalled memory in a session: consumes the session's first turn when it has one
    /// pending, and may take the digest. A missing id has no first turn.
    Recall {
        /// The session that recalled.
        #[serde(default)]
        session_id: Option<String>,
    },
    /// The host took the exclusive lock the engine asked for.
    LockAcquired,
    /// The host could not take the lock (a client holds it).
    LockDenied,
    /// The host lost the lock mid-night (a client took it back).
    LockLost,
    /// A client talked to the host.
    McpActivity,
    /// The REM cycle the engine asked for finished.
    RemCycleFinished {
        /// What the cycle produced.
        #[serde(default)]
        result: RemResult,
    },
    /// The user asked the daemon to go to sleep now.
    #[serde(rename = "user_initiated_sleep")]
    UserSleepRequested {
        /// Why, as the user said it (clipped to 500 characters when stored).
        reason: String,
        /// The request's own timestamp as sent (clipped to 64 characters when stored); the event's
        /// moment when absent.
        #[serde(rename = "label", default, skip_serializing_if = "Option::is_none")]
        ts: Option<String>,
    },
    /// The operator asked for one REM cycle now.
    #[serde(rename = "force_rem")]
    ForceRemRequested {
        /// The request's own timestamp as sent (clipped to 64 characters when stored); the event's
        /// moment when absent.
        #[serde(rename = "label", default, skip_serializing_if = "Option::is_none")]
        ts: Option<String>,
    },
    /// The operator asked the running night to end at the next cycle boundary.
    #[serde(rename = "force_wake")]
    ForceWakeRequested {
        /// The request's own timestamp as sent (clipped to 64 characters when stored); the event's
        /// moment when absent.
        #[serde(rename = "label", default, skip_serializing_if = "Option::is_none")]
        ts: Option<String>,
    },
    /// The operator paused the scheduler.
    Pause,
    /// The operator resumed the scheduler.
    Resume,
    /// The operator changed a setting.
    Configure(Settings),
    /// The daemon is stopping; a running night is walked back to WAKE first.
    Shutdown,
}

/// Settings an operator may change with [`EventKind::Configure`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[derive(serde::Serialize)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
pub struct Settings {
    /// How many REM cycles a night plans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rem_cycle_count: Option<u32>,
    /// The IANA time zone the quiet window is learned in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

impl EventKind {
    /// The fieldless name of this event.
    pub fn trigger(&self) -> Trigger {
        match self {
            Self::Boot => Trigger::Boot,
            Self::Tick { .. } => Trigger::Tick,
            Self::SessionStarted { .. } => Trigger::SessionStarted,
            Self::Recall { .. } => Trigger::Recall,
            Self::LockAcquired => Trigger::LockAcquired,
            Self::LockDenied => Trigger::LockDenied,
            Self::LockLost => Trigger::LockLost,
            Self::McpActivity => Trigger::McpActivity,
            Self::RemCycleFinished { .. } => Trigger::RemCycleFinished,
            Self::UserSleepRequested { .. } => Trigger::UserSleepRequested,
            Self::ForceRemRequested { .. } => Trigger::ForceRemRequested,
            Self::ForceWakeRequested { .. } => Trigger::ForceWakeRequested,
            Self::Pause => Trigger::Pause,
            Self::Resume => Trigger::Resume,
            Self::Configure(_) => Trigger::Configure,
            Self::Shutdown => Trigger::Shutdown,
        }
    }
}

/// The name of an event without its details, plus the engine's own `Continue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[derive(serde::Serialize)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Trigger {
    /// [`EventKind::Boot`].
    Boot,
    /// [`EventKind::Tick`].
    Tick,
    /// [`EventKind::SessionStarted`].
    SessionStarted,
    /// [`EventKind::Recall`].
    Recall,
    /// [`EventKind::LockAcquired`].
    LockAcquired,
    /// [`EventKind::LockDenied`].
    LockDenied,
    /// [`EventKind::LockLost`].
    LockLost,
    /// [`EventKind::McpActivity`].
    McpActivity,
    /// [`EventKind::RemCycleFinished`].
    RemCycleFinished,
    /// [`EventKind::UserSleepRequested`].
    UserSleepRequested,
    /// [`EventKind::ForceRemRequested`].
    ForceRemRequested,
    /// [`EventKind::ForceWakeRequested`].
    ForceWakeRequested,
    /// [`EventKind::Pause`].
    Pause,
    /// [`EventKind::Resume`].
    Resume,
    /// [`EventKind::Configure`].
    Configure,
    /// [`EventKind::Shutdown`].
    Shutdown,
    /// The engine's own step at a cycle boundary: entering SLEEP decides what comes next within
    /// the same `handle` call. Hosts never send it.
    Continue,
}

impl Trigger {
    /// Every trigger, hosts' first, then `Continue`.
    pub const ALL: [Trigger; 17] = [
        Trigger::Boot,
        Trigger::Tick,
        Trigger::SessionStarted,
        Trigger::Recall,
        Trigger::LockAcquired,
        Trigger::LockDenied,
        Trigger::LockLost,
        Trigger::McpActivity,
        Trigger::RemCycleFinished,
        Trigger::UserSleepRequested,
        Trigger::ForceRemRequested,
        Trigger::ForceWakeRequested,
        Trigger::Pause,
        Trigger::Resume,
        Trigger::Configure,
        Trigger::Shutdown,
        Trigger::Continue,
    ];

    /// The name used on the wire, in diagrams and in messages (`lock_acquired`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Boot => "boot",
            Self::Tick => "tick",
            Self::SessionStarted => "session_started",
            Self::Recall => "recall",
            Self::LockAcquired => "lock_acquired",
            Self::LockDenied => "lock_denied",
            Self::LockLost => "lock_lost",
            Self::McpActivity => "mcp_activity",
            Self::RemCycleFinished => "rem_cycle_finished",
            Self::UserSleepRequested => "user_sleep_requested",
            Self::ForceRemRequested => "force_rem_requested",
            Self::ForceWakeRequested => "force_wake_requested",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Configure => "configure",
            Self::Shutdown => "shutdown",
            Self::Continue => "continue",
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
