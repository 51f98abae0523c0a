//! The names of the keys this product knows, spelled as the seed spells them.
//!
//! Owns the spelling of every known key and the list of them. It must not read or write values:
//! `record` reads the document, `data` and the modules it names write it.

/// `"WAKE"`, `"TRANSITIONING"`, `"SLEEP"` or `"DREAMING"`.
pub const FSM_STATE: &str = "fsm_state";
/// When the state last changed.
pub const FSM_TRANSITION_AT: &str = "fsm_transition_at";
/// When the daemon last booted.
pub const DAEMON_STARTED_AT: &str = "daemon_started_at";
/// Session id to the moment its first turn was marked.
pub const FIRST_TURN_PENDING: &str = "first_turn_pending";
/// The morning digest that waits to be shown.
pub const PENDING_DIGEST: &str = "pending_digest";
/// When a digest was last shown.
pub const LAST_DIGEST_SHOWN_AT: &str = "last_digest_shown_at";
/// `[start_bucket, duration]` in 30-minute local buckets, or `null`.
pub const QUIET_WINDOW: &str = "quiet_window";
/// When the quiet window was last learned.
pub const QUIET_WINDOW_LEARNED_AT: &str = "quiet_window_learned_at";
/// When the last session started.
pub const LAST_SESSION_TS: &str = "last_session_ts";
/// When the scheduler last ticked.
pub const LAST_TICK_AT: &str = "last_tick_at";
/// Why the last tick did not start a night.
pub const LAST_TICK_SKIPPED_REASON: &str = "last_tick_skipped_reason";
/// How many REM cycles the last night completed.
pub const LAST_COMPLETED_CYCLES: &str = "last_completed_cycles";
/// `true` while the operator has paused the scheduler.
pub const SCHEDULER_PAUSED: &str = "scheduler_paused";
/// `{reason, ts, pending[, honored_at]}`: the user asked to sleep now.
pub const USER_SLEEP_REQUEST: &str = "user_sleep_request";
/// `{ts, pending[, honored_at]}`: run one REM cycle now.
pub const FORCE_REM_REQUEST: &str = "force_rem_request";
/// `{ts, pending[, honored_at]}`: end the night at the next cycle boundary.
pub const FORCE_WAKE_REQUEST: &str = "force_wake_request";
/// How many REM cycles a night plans (default 4).
pub const REM_CYCLE_COUNT: &str = "rem_cycle_count";
/// The seed project's record of the last `session_open` control message.
pub const LAST_SESSION_OPEN: &str = "last_session_open";
/// The seed project's cascade request raised by `session_open`.
pub const HIPPEA_CASCADE_REQUEST: &str = "hippea_cascade_request";
/// This product's: the IANA time zone the quiet window is learned in.
pub const TIMEZONE: &str = "timezone";
/// This product's: recent session starts, for learning the quiet window.
pub const SESSION_STARTS: &str = "session_starts";
/// This product's: the night that is running or last ran.
pub const NIGHT: &str = "night";
/// This product's: a counter raised by every durable snapshot.
pub const GENERATION: &str = "generation";

/// Every key above: the keys this product gives a meaning to.
pub const ALL: [&str; 23] = [
    FSM_STATE,
    FSM_TRANSITION_AT,
    DAEMON_STARTED_AT,
    FIRST_TURN_PENDING,
    PENDING_DIGEST,
    LAST_DIGEST_SHOWN_AT,
    QUIET_WINDOW,
    QUIET_WINDOW_LEARNED_AT,
    LAST_SESSION_TS,
    LAST_TICK_AT,
    LAST_TICK_SKIPPED_REASON,
    LAST_COMPLETED_CYCLES,
    SCHEDULER_PAUSED,
    USER_SLEEP_REQUEST,
    FORCE_REM_REQUEST,
    FORCE_WAKE_REQUEST,
    REM_CYCLE_COUNT,
    LAST_SESSION_OPEN,
    HIPPEA_CASCADE_REQUEST,
    TIMEZONE,
    SESSION_STARTS,
    NIGHT,
    GENERATION,
];
