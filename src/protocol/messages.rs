//! The protocol's requests: validating one JSON message into a typed request, before anything runs.
//!
//! Owns the seed project's validation rules and clips for its control messages, the fields of the
//! engine messages (each message takes only its own fields), when a message happens (its `ts`),
//! and the refusal replies (`invalid_message`, `unknown_message_type`). It must not touch the
//! engine or read the clock: a message either becomes a [`Request`] or is refused here.

use serde_json::Value;

use super::fields::Fields;
use crate::digest::RemResult;
use crate::doc::Doc;
use crate::event::EventKind;
use crate::sessions::clip_session_id;
use crate::timestamp::{self, Timestamp};

/// One validated request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `status`: the seed's status view.
    Status {
        /// The message's `ts`, when it is a moment.
        at: Option<Timestamp>,
    },
    /// `why`: the state, the rows a tick would try and when each holds, in words too.
    Why {
        /// The message's `ts`, when it is a moment: the moment to explain.
        at: Option<Timestamp>,
    },
    /// `user_initiated_sleep`: the user asked to sleep now.
    UserSleep {
        /// Why, as sent (the engine stores the first 500 characters).
        reason: String,
        /// The request's own timestamp, stored as sent; also when it happens, when it is a
        /// moment ([`Request::at`]).
        ts: String,
    },
    /// `force_wake`: end the running or next night at its next cycle boundary.
    ForceWake {
        /// The request's own timestamp, stored as sent; also when it happens, when it is a
        /// moment ([`Request::at`]).
        ts: String,
    },
    /// `force_rem`: run one REM cycle now.
    ForceRem {
        /// The request's own timestamp, stored as sent; also when it happens, when it is a
        /// moment ([`Request::at`]).
        ts: String,
    },
    /// `pause` or `resume`; the seed's `seconds` is checked and ignored.
    Pause {
        /// `true` for `pause`, `false` for `resume`.
        paused: bool,
        /// The message's `ts`, when it is a moment.
        at: Option<Timestamp>,
    },
    /// `session_open`: a client session started.
    SessionOpen {
        /// The session id clipped to 128 characters; `None` when the message had none.
        session_id: Option<String>,
        /// The message's `ts` as sent; `None` when it had none. Also when the session opened,
        /// when it is a moment ([`Request::at`]).
        ts: Option<String>,
    },
    /// One of the engine messages, ready to be handled.
    Engine {
        /// The event.
        kind: EventKind,
        /// The message's `ts`; the server's clock when absent.
        at: Option<Timestamp>,
    },
}

/// Why a message was refused before it reached the engine; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The line or one of its fields is not what the protocol allows (the error names the field).
    Invalid(String),
    /// The `type` names no message.
    UnknownType(String),
}

impl Refusal {
    /// The reply: `{"ok": false, "reason": "invalid_message", "error"}` or
    /// `{"ok": false, "reason": "unknown_message_type", "type"}`.
    pub(crate) fn to_reply(&self) -> Doc {
        match self {
            Self::Invalid(error) => {
                Doc::ok(false).with("reason", "invalid_message").with("error", error)
            }
            Self::UnknownType(kind) => {
                Doc::ok(false).with("reason", "unknown_message_type").with("type", kind)
            }
        }
    }
}

impl Request {
    /// When the request happens: its `ts` when that is an RFC 3339 moment in the range a state
    /// file can hold; `None` (the server's clock) otherwise. A control message's `ts` is also a
    /// label stored as sent, so one that is no moment is not refused; an engine message's is
    /// refused when it is no moment.
    pub fn at(&self) -> Option<Timestamp> {
        let label = |ts: &str| timestamp::parse_moment(ts).ok();
        match self {
            Self::Status { at }
            | Self::Why { at }
            | Self::Pause { at, .. }
            | Self::Engine { at, .. } => *at,
            Self::UserSleep { ts, .. } | Self::ForceWake { ts } | Self::ForceRem { ts } => {
                label(ts)
            }
            Self::SessionOpen { ts, .. } => ts.as_deref().and_then(label),
        }
    }

    #[cfg(any(test, feature = "testing"))]
    /// Validates one message.
    pub fn parse(message: &Value) -> Result<Request, Refusal> {
        Self::parse_spelled(message, None)
    }

    /// Validates one message parsed from `text`: an integer too large for 64 bits, which parses
    /// as a float, is told from a float by its spelling there.
    pub fn parse_text(text: &str, message: &Value) -> Result<Request, Refusal> {
        Self::parse_spelled(message, Some(text))
    }

    fn parse_spelled(message: &Value, text: Option<&str>) -> Result<Request, Refusal> {
        let Value::Object(fields) = message else {
            return Err(invalid("message must be an object"));
        };
        let Some(Value::String(kind)) = fields.get("type") else {
            return Err(invalid("type must be a string"));
        };
        let fields = Fields { map: fields, prefix: "", text };
        if let Some(allowed) = engine_fields(kind) {
            fields.only(kind, allowed)?;
        }
        let engine = |kind: EventKind| -> Result<Request, Refusal> {
            Ok(Request::Engine { kind, at: fields.moment()? })
        };
        match kind.as_str() {
            "status" => Ok(Request::Status { at: fields.label_moment() }),
            "why" => Ok(Request::Why { at: fields.label_moment() }),
            "user_initiated_sleep" => Ok(Request::UserSleep {
                reason: fields.required_string("reason")?,
                ts: fields.required_string("ts")?,
            }),
            "force_wake" => Ok(Request::ForceWake { ts: fields.required_string("ts")? }),
            "force_rem" => Ok(Request::ForceRem { ts: fields.required_string("ts")? }),
            "pause" | "resume" => {
                fields.optional_int("seconds")?;
                Ok(Request::Pause { paused: kind == "pause", at: fields.label_moment() })
            }
            "session_open" => Ok(Request::SessionOpen {
                session_id: fields
                    .optional_string("session_id")?
                    .map(|id| clip_session_id(&id).into()),
                ts: fields.optional_string("ts")?,
            }),
            "boot" => engine(EventKind::Boot),
            "shutdown" => engine(EventKind::Shutdown),
            "lock_acquired" => engine(EventKind::LockAcquired),
            "lock_denied" => engine(EventKind::LockDenied),
            "lock_lost" => engine(EventKind::LockLost),
            "mcp_activity" => engine(EventKind::McpActivity),
            "tick" => engine(EventKind::Tick { store_empty: fields.flag("store_empty")? }),
            "recall" => {
                let session_id = clip_session_id(&fields.required_string("session_id")?).to_owned();
                engine(EventKind::Recall { session_id: Some(session_id) })
            }
            "rem_cycle_finished" => {
                let result = match fields.present("result") {
                    None => RemResult::default(),
                    Some(Value::Object(result)) => {
                        let text = fields.spelling("result");
                        let result = Fields { map: result, prefix: "result.", text };
                        result.only(kind, RESULT_FIELDS)?;
                        rem_result(&result)?
                    }
                    Some(_) => return Err(invalid("result must be an object")),
                };
                engine(EventKind::RemCycleFinished { result })
            }
            _ => Err(Refusal::UnknownType(kind.clone())),
        }
    }
}

/// The fields an engine message may carry besides `type`; `None` for the seed's control messages,
/// which ignore any other field as the seed does (and for an unknown type).
fn engine_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "boot" | "shutdown" | "lock_acquired" | "lock_denied" | "lock_lost" | "mcp_activity" => {
            &["ts"]
        }
        "tick" => &["ts", "store_empty"],
        "recall" => &["ts", "session_id"],
        "rem_cycle_finished" => &["ts", "result"],
        _ => return None,
    })
}

/// The fields of `rem_cycle_finished`'s `result`; `cycle`, the host's count, is read and ignored.
const RESULT_FIELDS: &[&str] = &[
    "cycle",
    "summaries_created",
    "schema_candidates",
    "claude_call_used",
    "main_insight_text",
    "timed_out",
];

/// The fields of a finished cycle; each may be missing or `null`.
fn rem_result(fields: &Fields<'_>) -> Result<RemResult, Refusal> {
    Ok(RemResult {
        summaries_created: fields.count("summaries_created")?,
        schema_candidates: fields.count("schema_candidates")?,
        claude_call_used: fields.flag("claude_call_used")?,
        main_insight_text: fields.optional_string("main_insight_text")?,
        timed_out: fields.flag("timed_out")?,
    })
}

fn invalid(error: &str) -> Refusal {
    Refusal::Invalid(error.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(message: &str, expected: Result<Request, Refusal>) {
        let value: Value = serde_json::from_str(message).unwrap();
        assert_eq!(Request::parse_text(message, &value), expected, "message {message}");
    }

    fn refused(error: &str) -> Result<Request, Refusal> {
        Err(Refusal::Invalid(error.into()))
    }

    fn engine(kind: EventKind, at: Option<&str>) -> Result<Request, Refusal> {
        Ok(Request::Engine { kind, at: at.map(|t| timestamp::parse(t).unwrap()) })
    }

    #[test]
    fn validates_as_the_seed_does() {
        let ts = || "2026-04-18T23:00:00+00:00".to_owned();
        check(r#"{"type": "status", "extra": 1}"#, Ok(Request::Status { at: None }));
        check(r#"{"type": "why", "extra": 1}"#, Ok(Request::Why { at: None }));
        check("[]", refused("message must be an object"));
        check(r#"{"type": 42}"#, refused("type must be a string"));
        check(r#"{"ts": "x"}"#, refused("type must be a string"));
        check(
            r#"{"type": "nuke_from_orbit", "ts": "whatever"}"#,
            Err(Refusal::UnknownType("nuke_from_orbit".into())),
        );
        check(
            r#"{"type": "user_initiated_sleep", "reason": "bed", "ts": "2026-04-18T23:00:00+00:00"}"#,
            Ok(Request::UserSleep { reason: "bed".into(), ts: ts() }),
        );
        check(
            r#"{"type": "user_initiated_sleep", "reason": 42, "ts": "x"}"#,
            refused("reason must be a string"),
        );
        check(r#"{"type": "user_initiated_sleep", "reason": "r"}"#, refused("ts must be a string"));
        check(r#"{"type": "force_wake"}"#, refused("ts must be a string"));
        check(r#"{"type": "force_rem", "ts": null}"#, refused("ts must be a string"));
        check(
            r#"{"type": "force_rem", "ts": "whenever"}"#,
            Ok(Request::ForceRem { ts: "whenever".into() }),
        );
        check(r#"{"type": "pause", "seconds": 30}"#, Ok(Request::Pause { paused: true, at: None }));
        check(
            r#"{"type": "pause", "seconds": 123456789012345678901234567890}"#,
            Ok(Request::Pause { paused: true, at: None }),
        );
        check(
            r#"{"type": "resume", "seconds": null}"#,
            Ok(Request::Pause { paused: false, at: None }),
        );
        check(r#"{"type": "pause", "seconds": "forever"}"#, refused("seconds must be an int"));
        check(r#"{"type": "pause", "seconds": true}"#, refused("seconds must be an int"));
        check(r#"{"type": "pause", "seconds": 1.5}"#, refused("seconds must be an int"));
        check(r#"{"type": "pause", "seconds": 1e3}"#, refused("seconds must be an int"));
        check(
            r#"{"type": "session_open"}"#,
            Ok(Request::SessionOpen { session_id: None, ts: None }),
        );
        check(
            r#"{"type": "session_open", "session_id": 123}"#,
            refused("session_id must be a string"),
        );
        check(r#"{"type": "session_open", "ts": 42}"#, refused("ts must be a string"));
    }

    #[test]
    fn clips_session_ids() {
        let long = format!(r#"{{"type": "session_open", "session_id": "{}"}}"#, "a".repeat(1000));
        check(&long, Ok(Request::SessionOpen { session_id: Some("a".repeat(128)), ts: None }));
        let recall = format!(r#"{{"type": "recall", "session_id": "{}"}}"#, "b".repeat(200));
        check(&recall, engine(EventKind::Recall { session_id: Some("b".repeat(128)) }, None));
    }

    #[test]
    fn reads_engine_messages() {
        let at = "2026-04-18T23:00:00Z";
        check(r#"{"type": "boot"}"#, engine(EventKind::Boot, None));
        check(
            r#"{"type": "shutdown", "ts": "2026-04-18T23:00:00Z"}"#,
            engine(EventKind::Shutdown, Some(at)),
        );
        check(
            r#"{"type": "tick", "ts": "2026-04-19T01:00:00+02:00"}"#,
            engine(EventKind::Tick { store_empty: false }, Some(at)),
        );
        check(
            r#"{"type": "tick", "store_empty": true}"#,
            engine(EventKind::Tick { store_empty: true }, None),
        );
        check(r#"{"type": "tick", "store_empty": "yes"}"#, refused("store_empty must be a bool"));
        check(
            r#"{"type": "boot", "ts": "yesterday"}"#,
            refused("ts must be an RFC 3339 timestamp"),
        );
        check(r#"{"type": "boot", "ts": 5}"#, refused("ts must be a string"));
        check(r#"{"type": "recall"}"#, refused("session_id must be a string"));
        check(
            r#"{"type": "rem_cycle_finished"}"#,
            engine(EventKind::RemCycleFinished { result: RemResult::default() }, None),
        );
        let full = RemResult {
            summaries_created: 3,
            schema_candidates: 2,
            claude_call_used: true,
            main_insight_text: Some("insight".into()),
            timed_out: true,
        };
        check(
            r#"{"type": "rem_cycle_finished", "result": {"cycle": 1, "summaries_created": 3, "schema_candidates": 2, "claude_call_used": true, "main_insight_text": "insight", "timed_out": true}}"#,
            engine(EventKind::RemCycleFinished { result: full }, None),
        );
        check(
            r#"{"type": "rem_cycle_finished", "result": 3}"#,
            refused("result must be an object"),
        );
        check(
            r#"{"type": "rem_cycle_finished", "result": {"summaries_created": -1}}"#,
            refused("result.summaries_created must be an int from 0 to 2^64 - 1"),
        );
        check(
            r#"{"type": "rem_cycle_finished", "result": {"schema_candidates": true}}"#,
            refused("result.schema_candidates must be an int"),
        );
        check(
            r#"{"type": "rem_cycle_finished", "result": {"timed_out": 1}}"#,
            refused("result.timed_out must be a bool"),
        );
        check(
            r#"{"type": "rem_cycle_finished", "result": {"main_insight_text": 1}}"#,
            refused("result.main_insight_text must be a string"),
        );
    }

    #[test]
    fn engine_messages_refuse_unknown_fields_and_control_messages_ignore_them() {
        check(
            r#"{"type": "rem_cycle_finished", "summaries_created": 3}"#,
            refused("summaries_created is not a field of rem_cycle_finished: expected ts, result"),
        );
        check(
            r#"{"type": "rem_cycle_finished", "result": {"summaries": 3}}"#,
            refused(
                "result.summaries is not a field of rem_cycle_finished's result: expected cycle, \
                 summaries_created, schema_candidates, claude_call_used, main_insight_text, \
                 timed_out",
            ),
        );
        check(
            r#"{"type": "tick", "ts": "2026-04-18T23:00:00Z", "store_empty": false, "at": 1}"#,
            refused("at is not a field of tick: expected ts, store_empty"),
        );
        check(
            r#"{"type": "boot", "session_id": null}"#,
            refused("session_id is not a field of boot: expected ts"),
        );
        check(
            r#"{"type": "force_wake", "ts": "x", "why": "late"}"#,
            Ok(Request::ForceWake { ts: "x".into() }),
        );
        check(
            r#"{"type": "session_open", "jsonrpc": "2.0"}"#,
            Ok(Request::SessionOpen { session_id: None, ts: None }),
        );
    }

    #[test]
    fn a_moment_in_ts_is_when_any_message_happens() {
        let at = |message: &str| {
            let value: Value = serde_json::from_str(message).unwrap();
            Request::parse(&value).unwrap().at().map(timestamp::format)
        };
        let nine = Some("2026-04-18T09:00:00+00:00".to_owned());
        assert_eq!(at(r#"{"type": "status", "ts": "2026-04-18T11:00:00+02:00"}"#), nine);
        assert_eq!(at(r#"{"type": "pause", "ts": "2026-04-18T09:00:00Z"}"#), nine);
        assert_eq!(at(r#"{"type": "force_rem", "ts": "2026-04-18T09:00:00Z"}"#), nine);
        assert_eq!(at(r#"{"type": "session_open", "ts": "2026-04-18T09:00:00Z"}"#), nine);
        assert_eq!(at(r#"{"type": "tick", "ts": "2026-04-18T09:00:00Z"}"#), nine);
        assert_eq!(at(r#"{"type": "force_wake", "ts": "whenever"}"#), None);
        assert_eq!(at(r#"{"type": "force_wake", "ts": "0000-12-31T23:00:00Z"}"#), None);
        assert_eq!(at(r#"{"type": "session_open"}"#), None);
        assert_eq!(at(r#"{"type": "status", "ts": 5}"#), None);
        assert_eq!(at(r#"{"type": "tick"}"#), None);
    }
}
