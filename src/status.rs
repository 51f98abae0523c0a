//! Read-only views of the engine: the status document and the next deadline.
//!
//! Owns what `status` shows and when the host must tick next. It must not change anything.

use serde_json::{Value, json};

use crate::data::Data;
use crate::digest;
use crate::event::Trigger;
use crate::record::keys;
use crate::table::{self, StateName, Target};
use crate::timestamp::{self, Timestamp};

/// The status document: the state, its timestamps, pending sessions, the digest summary, the pause
/// flag, the quiet window and the next deadline.
pub fn status(state: StateName, data: &Data, now: Timestamp) -> Value {
    let record = data.record();
    let view = data.view();
    let raw = |key: &str| record.get(key).cloned().unwrap_or(Value::Null);
    let pending: Vec<String> = record
        .object(keys::FIRST_TURN_PENDING)
        .map(|m| m.into_keys().collect())
        .unwrap_or_default();
    let night = &view.night;
    json!({
        "state": state.as_str(),
        "fsm_transition_at": raw(keys::FSM_TRANSITION_AT),
        "daemon_started_at": raw(keys::DAEMON_STARTED_AT),
        "last_tick_at": data.last_tick_at().map(timestamp::format).map_or_else(|| raw(keys::LAST_TICK_AT), Value::from),
        "last_tick_skipped_reason": raw(keys::LAST_TICK_SKIPPED_REASON),
        "last_session_ts": raw(keys::LAST_SESSION_TS),
        "paused": view.paused,
        "timezone": view.tz.name(),
        "quiet_window": view.window.map(|w| w.to_value()),
        "quiet_window_learned_at": raw(keys::QUIET_WINDOW_LEARNED_AT),
        "pending_sessions": {"count": pending.len(), "ids": pending},
        "pending_digest": digest::status_view(record.get(keys::PENDING_DIGEST)),
        "last_digest_shown_at": raw(keys::LAST_DIGEST_SHOWN_AT),
        "requests": {
            "user_sleep": view.user_sleep_pending,
            "force_rem": view.force_rem_pending,
            "force_wake": view.force_wake_pending,
        },
        "rem_cycle_count": view.rem_cycle_count,
        "night": night.started_at.map(|started| json!({
            "started_at": timestamp::format(started),
            "planned": night.planned,
            "completed": night.completed,
        })),
        "last_completed_cycles": raw(keys::LAST_COMPLETED_CYCLES),
        "next_deadline": next_deadline(state, data, now).map(timestamp::format),
        "generation": record.generation(),
    })
}

/// The earliest moment at or after `now` when a tick would do something: derived from the guards
/// of the rows a tick would try in `state`, in table order (a first-turn expiry, the relearn, sleep
/// becoming due, the lock-wait bound, a night's boundary). Rows that only say why nothing happens
/// wait for nothing, and a row that ends the tick under a guard time does not change (a pause)
/// hides the rows after it. `None` when nothing is scheduled.
pub fn next_deadline(state: StateName, data: &Data, now: Timestamp) -> Option<Timestamp> {
    let mut due: Option<Timestamp> = None;
    let mut rows = table::rows_for(state, Trigger::Tick);
    while let Some(row) = rows.next() {
        if row.to != Target::Stay
            && let Some(at) = row.guard.due(data, now)
        {
            due = Some(due.map_or(at, |d| d.min(at)));
        }
        match row.to {
            Target::As(other) => rows = table::rows_for(state, other),
            Target::Next => {}
            Target::Stay | Target::Go(_) if row.guard.holds_until_told(data) => break,
            Target::Stay | Target::Go(_) => {}
        }
    }
    due.map(|at| at.max(now))
}
