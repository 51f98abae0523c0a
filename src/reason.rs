//! Why the machine moved, why a tick did nothing, why a night yielded: one word each.
//!
//! Owns the vocabulary of reasons and their wire spelling (`lock_denied`), which is also what the
//! state file stores in `last_tick_skipped_reason`. It must not decide which reason applies: the
//! table names a row's reason and `data` finds why sleep is due.

use std::fmt;

/// Why something happened, spelled on the wire and in the state file in `snake_case`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[derive(serde::Serialize)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// The user asked to sleep now.
    UserSleepRequest,
    /// The operator asked for a REM cycle now.
    ForceRemRequest,
    /// The learned quiet window started.
    QuietWindow,
    /// Two hours passed without a session (or since the daemon booted).
    Idle,
    /// The host took the lock.
    LockAcquired,
    /// The host could not take the lock.
    LockDenied,
    /// A client held the lock when a night tried to start (a yield's reason).
    McpActive,
    /// The lock never came within the wait.
    LockTimeout,
    /// A refused lock is still being backed off from.
    LockBusy,
    /// Not in the quiet window and not idle long enough.
    OutsideWindow,
    /// The scheduler is paused.
    Paused,
    /// The host's memory store has nothing to consolidate.
    EmptyStore,
    /// A REM cycle finished.
    RemCycleFinished,
    /// Another cycle of the night starts.
    NextCycle,
    /// The night's planned cycles are done.
    CyclesDone,
    /// The operator asked the night to end.
    ForceWakeRequested,
    /// A client took the lock back during the night.
    McpReacquiredMidNight,
    /// A client was active moments ago at a cycle boundary.
    McpRecentActivity,
    /// The daemon booted into a night the last process left and walked it back.
    Recovered,
    /// The daemon is stopping.
    Shutdown,
    /// A night walked back by a boot recovery or a shutdown reached WAKE.
    WoundDown,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 21] = [
        Self::UserSleepRequest,
        Self::ForceRemRequest,
        Self::QuietWindow,
        Self::Idle,
        Self::LockAcquired,
        Self::LockDenied,
        Self::McpActive,
        Self::LockTimeout,
        Self::LockBusy,
        Self::OutsideWindow,
        Self::Paused,
        Self::EmptyStore,
        Self::RemCycleFinished,
        Self::NextCycle,
        Self::CyclesDone,
        Self::ForceWakeRequested,
        Self::McpReacquiredMidNight,
        Self::McpRecentActivity,
        Self::Recovered,
        Self::Shutdown,
        Self::WoundDown,
    ];

    /// The wire and file spelling (`"lock_denied"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UserSleepRequest => "user_sleep_request",
            Self::ForceRemRequest => "force_rem_request",
            Self::QuietWindow => "quiet_window",
            Self::Idle => "idle",
            Self::LockAcquired => "lock_acquired",
            Self::LockDenied => "lock_denied",
            Self::McpActive => "mcp_active",
            Self::LockTimeout => "lock_timeout",
            Self::LockBusy => "lock_busy",
            Self::OutsideWindow => "outside_window",
            Self::Paused => "paused",
            Self::EmptyStore => "empty_store",
            Self::RemCycleFinished => "rem_cycle_finished",
            Self::NextCycle => "next_cycle",
            Self::CyclesDone => "cycles_done",
            Self::ForceWakeRequested => "force_wake_requested",
            Self::McpReacquiredMidNight => "mcp_reacquired_mid_night",
            Self::McpRecentActivity => "mcp_recent_activity",
            Self::Recovered => "recovered",
            Self::Shutdown => "shutdown",
            Self::WoundDown => "wound_down",
        }
    }

    /// Reads the wire spelling; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == text)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_reads_back_from_its_spelling() {
        for reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(Reason::parse("LockDenied"), None);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn the_derive_spells_each_reason_as_the_wire_does() {
        for reason in Reason::ALL {
            let json = serde_json::to_value(reason).unwrap();
            assert_eq!(json, serde_json::Value::from(reason.as_str()));
        }
    }
}
