//! Read-only views of the engine: the status document and the next deadline.
//!
//! Owns what `status` shows and when the host must tick next. It must not change anything.

use serde_json::Value;

use crate::data::Data;
use crate::digest;
use crate::event::Trigger;
use crate::record::{Object, keys};
use crate::table::{self, Row, StateName, Target};
use crate::timestamp::{self, Timestamp};

/// A read-only summary of the engine's state for people and tools: what `status` shows.
///
/// The moments and values the file holds are shown as the file holds them (`null` when missing),
/// so a wrong-typed value is visible as it is; the rest is what the engine makes of the document.
/// With the `serde` feature it serializes as the `status` reply of the protocol, fields in order.
#[derive(Debug, Clone, PartialEq)]
#[derive(serde::Serialize)]
#[non_exhaustive]
pub struct Status {
    /// The current state.
    pub state: StateName,
    /// `fsm_transition_at` as stored.
    pub fsm_transition_at: Value,
    /// `daemon_started_at` as stored.
    pub daemon_started_at: Value,
    /// The last tick: this process's when it ticked, else `last_tick_at` as stored.
    pub last_tick_at: Value,
    /// `last_tick_skipped_reason` as stored.
    pub last_tick_skipped_reason: Value,
    /// `last_session_ts` as stored.
    pub last_session_ts: Value,
    /// Whether the scheduler is paused.
    pub paused: bool,
    /// The IANA time zone the quiet window is learned in.
    pub timezone: String,
    /// The quiet window, `[start_bucket, duration]` in 30-minute local buckets, when learned.
    pub quiet_window: Option<[u8; 2]>,
    /// `quiet_window_learned_at` as stored.
    pub quiet_window_learned_at: Value,
    /// The sessions whose first turn is pending.
    pub pending_sessions: PendingSessions,
    /// The digest's four counters, when a digest is pending (see `digest::status_view`).
    pub pending_digest: Option<Object>,
    /// `last_digest_shown_at` as stored.
    pub last_digest_shown_at: Value,
    /// Which operator requests are pending.
    pub requests: Requests,
    /// How many REM cycles a night plans.
    pub rem_cycle_count: u32,
    /// The night that is running or last ran, when one started.
    pub night: Option<NightStatus>,
    /// `last_completed_cycles` as stored.
    pub last_completed_cycles: Value,
    /// When the host must tick next, to the microsecond; `None` when nothing is scheduled.
    #[serde(with = "crate::timestamp::wire::option")]
    pub next_deadline: Option<Timestamp>,
    /// The counter every durable snapshot raises.
    pub generation: u64,
}

/// The sessions whose first turn is pending, in the order they were marked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[derive(serde::Serialize)]
#[non_exhaustive]
pub struct PendingSessions {
    /// How many.
    pub count: usize,
    /// Their ids.
    pub ids: Vec<String>,
}

/// Which operator requests are pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[derive(serde::Serialize)]
#[non_exhaustive]
pub struct Requests {
    /// The user asked to sleep now.
    pub user_sleep: bool,
    /// The operator asked for one REM cycle now.
    pub force_rem: bool,
    /// The operator asked the night to end at the next cycle boundary.
    pub force_wake: bool,
}

/// The night that is running or last ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[derive(serde::Serialize)]
#[non_exhaustive]
pub struct NightStatus {
    /// When it started.
    #[serde(with = "crate::timestamp::wire")]
    pub started_at: Timestamp,
    /// The cycles it planned.
    pub planned: u32,
    /// The cycles it completed.
    pub completed: u32,
}

/// The status of `state` over `data` at `now`.
pub(crate) fn status(state: StateName, data: &Data, now: Timestamp) -> Status {
    let record = data.record();
    let view = data.view();
    let raw = |key: &str| record.get(key).cloned().unwrap_or(Value::Null);
    let ids: Vec<String> = record
        .object(keys::FIRST_TURN_PENDING)
        .map(|m| m.into_keys().collect())
        .unwrap_or_default();
    let night = &view.night;
    Status {
        state,
        fsm_transition_at: raw(keys::FSM_TRANSITION_AT),
        daemon_started_at: raw(keys::DAEMON_STARTED_AT),
        last_tick_at: data
            .last_tick_at()
            .map_or_else(|| raw(keys::LAST_TICK_AT), |at| Value::from(timestamp::format(at))),
        last_tick_skipped_reason: raw(keys::LAST_TICK_SKIPPED_REASON),
        last_session_ts: raw(keys::LAST_SESSION_TS),
        paused: view.paused,
        timezone: view.tz.name().to_owned(),
        quiet_window: view.window.map(|w| [w.start, w.duration]),
        quiet_window_learned_at: raw(keys::QUIET_WINDOW_LEARNED_AT),
        pending_sessions: PendingSessions { count: ids.len(), ids },
        pending_digest: digest::status_view(record.get(keys::PENDING_DIGEST)),
        last_digest_shown_at: raw(keys::LAST_DIGEST_SHOWN_AT),
        requests: Requests {
            user_sleep: view.user_sleep_pending,
            force_rem: view.force_rem_pending,
            force_wake: view.force_wake_pending,
        },
        rem_cycle_count: view.rem_cycle_count,
        night: night.started_at.map(|started_at| NightStatus {
            started_at,
            planned: night.planned,
            completed: night.completed,
        }),
        last_completed_cycles: raw(keys::LAST_COMPLETED_CYCLES),
        next_deadline: next_deadline(state, data, now),
        generation: record.generation(),
    }
}

/// The earliest moment at or after `now` when a tick would do something: derived from the guards
/// of the rows a tick would try in `state` ([`tick_rows`]: a first-turn expiry, the relearn, sleep
/// becoming due, the lock-wait bound, a night's boundary). Rows that only say why nothing happens
/// wait for nothing. `None` when nothing is scheduled.
pub(crate) fn next_deadline(state: StateName, data: &Data, now: Timestamp) -> Option<Timestamp> {
    let due = tick_rows(state, data)
        .into_iter()
        .filter(|row| row.to != Target::Stay)
        .filter_map(|row| row.guard.due(data, now))
        .min();
    due.map(|at| timestamp::ceil_to_micros(at.max(now)))
}

/// The rows a tick would try in `state`, in table order: the tick's own, and through a row that
/// decides the tick as another trigger (SLEEP's `Continue`), that trigger's. A row that ends the
/// tick under a guard time does not change (a pause) is the last: the rows after it cannot be
/// reached by waiting.
pub(crate) fn tick_rows(state: StateName, data: &Data) -> Vec<&'static Row> {
    let mut walked = Vec::new();
    let mut rows = table::rows_for(state, Trigger::Tick);
    while let Some(row) = rows.next() {
        walked.push(row);
        match row.to {
            Target::As(other) => rows = table::rows_for(state, other),
            Target::Next => {}
            Target::Stay | Target::Go(_) if row.guard.holds_until_told(data) => break,
            Target::Stay | Target::Go(_) => {}
        }
    }
    walked
}
