//! The `serve` protocol's meaning, without a process: a message in, its reply out.
//!
//! Owns validating a message into a request (`messages`, `fields`), running it on an engine at its
//! moment, and the reply documents. It must not read lines, the clock or signals: `serve` frames
//! the lines and supplies the time; a host embedding the engine calls `reply` itself.

mod fields;
mod messages;

use serde_json::Value;

use crate::data;
use crate::digest;
use crate::doc::Doc;
use crate::engine::{Engine, EngineError};
use crate::event::{Event, EventKind, Trigger};
use crate::kernel::Outcome;
use crate::machine::Rejection;
use crate::record::{is_truthy, keys};
use crate::table::StateName;
use crate::timestamp::{self, Timestamp};

pub use messages::{Refusal, Request};

/// The version `status` reports: this crate's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How many characters of an error a failure reply carries (the seed's clip).
const MAX_ERROR_CHARS: usize = 200;

/// Answers one message of the `serve` protocol (`PROTOCOL.md`) on `engine`, as `serve` would:
/// the reply as one line of compact JSON, members in the documented order; `None` for a blank
/// text, which is no message. A message without a `ts` that is a moment happens at `now()`.
pub fn reply(engine: &mut Engine, text: &str, now: impl FnOnce() -> Timestamp) -> Option<String> {
    let reply = match parse_line(text.as_bytes())? {
        Err(refusal) => refusal.to_reply(),
        Ok(request) => {
            let at = request.at().unwrap_or_else(now);
            answer(engine, request, at)
        }
    };
    Some(reply.to_string())
}

/// Validates one line (without its newline): `None` for a blank line, else the request or why it
/// is refused.
pub(crate) fn parse_line(line: &[u8]) -> Option<Result<Request, Refusal>> {
    let text = match std::str::from_utf8(line) {
        Ok(text) => text,
        Err(e) => {
            let error = format!("line is not UTF-8 (byte {})", e.valid_up_to());
            return Some(Err(Refusal::Invalid(error)));
        }
    };
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Some(match serde_json::from_str::<Value>(text) {
        Ok(message) => Request::parse_text(text, &message),
        Err(e) => Err(Refusal::Invalid(format!("line is not JSON: {e}"))),
    })
}

/// Runs one validated request on the engine.
pub(crate) fn answer(engine: &mut Engine, request: Request, now: Timestamp) -> Doc {
    let mut run = |kind| engine.handle(Event::new(now, kind));
    match request {
        Request::Status { .. } => status(engine, now),
        Request::Why { .. } => why(engine, now),
        Request::UserSleep { reason, ts } => {
            match run(EventKind::UserSleepRequested { reason, ts: Some(ts) }) {
                Err(EngineError::Rejected(rejection))
                    if rejection.trigger == Trigger::UserSleepRequested =>
                {
                    Doc::ok(false).with("reason", "already_sleeping")
                }
                result => control(engine, result, Doc::ok(true).with("state", "TRANSITIONING")),
            }
        }
        Request::ForceWake { ts } => {
            let result = run(EventKind::ForceWakeRequested { ts: Some(ts) });
            control(engine, result, Doc::ok(true).with("reason", "wake_queued"))
        }
        Request::ForceRem { ts } => {
            let result = run(EventKind::ForceRemRequested { ts: Some(ts) });
            control(engine, result, Doc::ok(true).with("reason", "rem_queued"))
        }
        Request::Pause { paused, .. } => {
            let result = run(if paused { EventKind::Pause } else { EventKind::Resume });
            control(engine, result, Doc::ok(true).with("paused", paused))
        }
        Request::SessionOpen { session_id, ts } => {
            let event =
                Event::new(now, EventKind::SessionStarted { session_id: session_id.clone() });
            let result = engine.handle_with(event, |record| {
                data::note_session_open(record, session_id.as_deref(), ts.as_deref());
            });
            control(engine, result, Doc::ok(true).with("reason", "session_open_queued"))
        }
        Request::Engine { kind, .. } => {
            let reply = match engine.handle(Event::new(now, kind)) {
                Ok(outcome) => outcome_reply(engine.state(), &outcome),
                Err(error) => failure(engine, &error),
            };
            reply.with("next_deadline", next_deadline(engine, now))
        }
    }
}

/// The reply to an accepted engine event (without its `next_deadline`): `{"ok": true, "state",
/// "transitions", "effects"}`, plus `first_turn` and `digest` (`null` when none was delivered) for
/// a recall.
pub(crate) fn outcome_reply(state: StateName, outcome: &Outcome) -> Doc {
    let reply = Doc::ok(true)
        .with("state", state)
        .with("transitions", &outcome.transitions)
        .with("effects", &outcome.effects);
    match outcome.first_turn {
        Some(first_turn) => reply.with("first_turn", first_turn).with("digest", &outcome.digest),
        None => reply,
    }
}

/// The reply to a refused event: `{"ok": false, "reason": "rejected", "state", "error"}`.
pub(crate) fn rejection_reply(rejection: &Rejection) -> Doc {
    Doc::ok(false)
        .with("reason", "rejected")
        .with("state", rejection.state)
        .with("error", rejection.to_string())
}

/// When the host must tick next for something to happen, as Python's `isoformat` writes it, or
/// `None` (`null`) when nothing is due.
pub(crate) fn next_deadline(engine: &Engine, now: Timestamp) -> Option<String> {
    engine.next_deadline(now).map(timestamp::format)
}

/// A control message's reply: `done` when the engine ran it, else the failure.
fn control<T>(engine: &Engine, result: Result<T, EngineError>, done: Doc) -> Doc {
    match result {
        Ok(_) => done,
        Err(error) => failure(engine, &error),
    }
}

/// The reply for a failed engine call: the rejection's own reply, or the seed's
/// `state_write_failed` when the state file could not be read or written (nothing changed).
fn failure(engine: &Engine, error: &EngineError) -> Doc {
    match error {
        EngineError::Rejected(rejection) => rejection_reply(rejection),
        EngineError::Illegal(illegal) => Doc::ok(false)
            .with("reason", "rejected")
            .with("state", engine.state())
            .with("error", illegal.to_string()),
        EngineError::Store(store) => {
            // The client hears of it in the reply; the operator, on stderr.
            tracing::error!(%store, "request failed; nothing changed");
            Doc::ok(false).with("reason", "state_write_failed").with("error", clip_error(store))
        }
    }
}

/// The seed's `status` reply, from the file as it stands (re-read when another process wrote it).
fn status(engine: &mut Engine, now: Timestamp) -> Doc {
    // A read without the lock that changes nothing.
    if let Err(error) = engine.reread() {
        return Doc::ok(false)
            .with("reason", "control_plane_error")
            .with("error", clip_error(&error));
    }
    let record = engine.record();
    let raw = |key: &str| record.get(key).cloned().unwrap_or(Value::Null);
    let uptime_sec = record.timestamp(keys::DAEMON_STARTED_AT).map(|started| {
        let up = now - started;
        up.num_microseconds().map_or(up.num_seconds() as f64, |micros| micros as f64 / 1e6)
    });
    let last_tick_at = engine
        .data()
        .last_tick_at()
        .map_or_else(|| raw(keys::LAST_TICK_AT), |at| Value::from(timestamp::format(at)));
    let state = engine.state();
    Doc::ok(true)
        .with("state", state)
        .with("uptime_sec", uptime_sec)
        .with("version", VERSION)
        .with("fsm_state", state)
        .with("last_tick_at", last_tick_at)
        .with("quiet_window", raw(keys::QUIET_WINDOW))
        .with("pending_digest", digest::status_view(record.get(keys::PENDING_DIGEST)))
        .with("daemon_started_at", raw(keys::DAEMON_STARTED_AT))
        .with("scheduler_paused", record.get(keys::SCHEDULER_PAUSED).is_some_and(is_truthy))
        .with("next_deadline", next_deadline(engine, now))
}

/// `why`'s reply, from the file as it stands (re-read when another process wrote it): the
/// state, the rows a tick would try and when each holds, and the same in words.
fn why(engine: &mut Engine, now: Timestamp) -> Doc {
    // A read without the lock that changes nothing.
    if let Err(error) = engine.reread() {
        return Doc::ok(false)
            .with("reason", "control_plane_error")
            .with("error", clip_error(&error));
    }
    crate::why::why(engine.state(), engine.data(), now).to_doc()
}

fn clip_error(error: &dyn std::error::Error) -> String {
    error.to_string().chars().take(MAX_ERROR_CHARS).collect()
}
