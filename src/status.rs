//! Read-only views of the engine: the status document and the next deadline.
//!
//! Owns what `status` shows and when the host must tick next. It must not change anything.

use serde_json::{Value, json};

use crate::data::{Data, LOCK_WAIT_TIMEOUT};
use crate::digest;
use crate::quiet_window;
use crate::record::keys;
use crate::table::StateName;
use crate::timestamp::{self, Timestamp};

/// The status document: the state, its timestamps, pending sessions, the digest summary, the pause
/// flag, the quiet window and the next deadline.
pub fn status(state: StateName, data: &Data, now: Timestamp) -> Value {
    let record = data.record();
    let view = data.view();
    let raw = |key: &str| record.get(key).cloned().unwrap_or(Value::Null);
    let pending: Vec<&String> = record
        .get(keys::FIRST_TURN_PENDING)
        .and_then(Value::as_object)
        .map(|m| m.keys().collect())
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

/// The earliest moment at or after `now` when a tick would do something: a pending request, the
/// quiet window's start, the relearn, the 2 h idle mark, a first-turn expiry, the lock-wait bound.
/// `None` when nothing is scheduled.
pub fn next_deadline(state: StateName, data: &Data, now: Timestamp) -> Option<Timestamp> {
    let view = data.view();
    let mut candidates = vec![view.first_turn_expiry];
    match state {
        StateName::Wake if !view.paused => {
            let relearn = match view.learned_at {
                Some(learned) if !data.relearn_due(now) => learned + quiet_window::RELEARN_AFTER,
                _ => now,
            };
            candidates.push(Some(relearn));
            let mut sleep = Vec::new();
            if view.user_sleep_pending || view.force_rem_pending {
                sleep.push(Some(now));
            }
            if let Some(window) = view.window {
                let after = data.slept_this_window(now).unwrap_or(now);
                sleep.push(quiet_window::next_window_start(window, after, view.tz));
            }
            if !data.night_since_last_session() {
                sleep.push(Some(
                    view.last_session.map_or(now, |at| at + quiet_window::BOOTSTRAP_IDLE),
                ));
            }
            // After a refused lock, nothing starts a night before the back-off ends.
            let not_before =
                view.night.retry_after.filter(|_| data.backing_off(now)).unwrap_or(now);
            candidates.extend(sleep.into_iter().flatten().map(|at| Some(at.max(not_before))));
        }
        StateName::Wake | StateName::Dreaming => {}
        StateName::Transitioning => {
            candidates.push(Some(view.transition_at.map_or(now, |at| at + LOCK_WAIT_TIMEOUT)));
        }
        StateName::Sleep => candidates.push(Some(now)),
    }
    candidates.into_iter().flatten().min().map(|at| at.max(now))
}
