//! The on-disk document: the seed's JSON object, keys in their original order, unknown keys verbatim.
//!
//! Owns parsing and serializing the state file's bytes and the lenient reading of known keys. It must
//! not touch the file system: `store` moves the bytes, this module only gives them meaning.

use serde_json::{Map, Value};

use crate::timestamp::{self, Timestamp};

/// The names of the keys this product knows, spelled as the seed spells them.
pub mod keys {
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
}

/// Why a byte string is not a state document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes are not UTF-8.
    #[error("not UTF-8 at byte {0}")]
    NotUtf8(usize),
    /// The text is not JSON (this includes an empty or zero-filled file).
    #[error("not JSON: {0}")]
    NotJson(String),
    /// The JSON is valid but its top level is not an object.
    #[error("the top level is {0}, not an object")]
    NotObject(&'static str),
}

/// The state document: a JSON object whose key order is kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    doc: Map<String, Value>,
}

impl Record {
    /// An empty document, which reads as a fresh WAKE state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps an already parsed object.
    pub fn from_map(doc: Map<String, Value>) -> Self {
        Self { doc }
    }

    /// Parses the bytes of a state file.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, RecordError> {
        let text = std::str::from_utf8(bytes).map_err(|e| RecordError::NotUtf8(e.valid_up_to()))?;
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(doc)) => Ok(Self { doc }),
            Ok(other) => Err(RecordError::NotObject(kind_of(&other))),
            Err(e) => Err(RecordError::NotJson(e.to_string())),
        }
    }

    /// Serializes the document as the state file holds it: JSON indented by two spaces, as the
    /// seed's `json.dump(..., indent=2)` writes it.
    pub fn to_vec(&self) -> Vec<u8> {
        // Serializing a map of JSON values cannot fail: keys are strings and numbers are finite.
        serde_json::to_vec_pretty(&self.doc).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// The whole object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.doc
    }

    /// Consumes the record, giving the object.
    pub fn into_map(self) -> Map<String, Value> {
        self.doc
    }

    /// The raw value of a key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.doc.get(key)
    }

    /// The raw value of a key, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.doc.get_mut(key)
    }

    /// Sets a key, keeping its position when it exists and appending it otherwise.
    pub fn set(&mut self, key: &str, value: Value) {
        if let Some(slot) = self.doc.get_mut(key) {
            *slot = value;
        } else {
            self.doc.insert(key.to_owned(), value);
        }
    }

    /// Removes a key without disturbing the order of the others.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.doc.shift_remove(key)
    }

    /// A string key read as a moment; `None` when missing, not a string, or not a timestamp.
    pub fn timestamp(&self, key: &str) -> Option<Timestamp> {
        self.doc.get(key).and_then(Value::as_str).and_then(timestamp::parse)
    }

    /// A key that counts only when it holds the boolean `true`.
    pub fn is_true(&self, key: &str) -> bool {
        matches!(self.doc.get(key), Some(Value::Bool(true)))
    }

    /// The `generation` counter: 0 when missing, not a number or negative; a fraction rounds
    /// down, and a number beyond `u64::MAX` reads as `u64::MAX`, so that counting on from it never
    /// goes backwards.
    pub fn generation(&self) -> u64 {
        match self.doc.get(keys::GENERATION) {
            Some(Value::Number(n)) => n.as_u64().unwrap_or_else(|| match n.as_f64() {
                // `as` saturates: negative to 0, too large to u64::MAX.
                Some(f) => f as u64,
                // Beyond f64's range: only the sign matters.
                None if n.to_string().starts_with('-') => 0,
                None => u64::MAX,
            }),
            _ => 0,
        }
    }
}

/// Python's truth value of a JSON value, as the seed tests it with `if value:`: `null`, `false`,
/// zero, `""`, `[]` and `{}` are false, everything else is true.
pub fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        // A literal too large for `f64` (such as `1e400`) is infinite for Python, hence true.
        Value::Number(n) => n.as_f64().is_none_or(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The JSON kind of a value, for messages.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejects_every_kind_of_corruption() {
        assert!(matches!(Record::from_slice(b""), Err(RecordError::NotJson(_))));
        assert!(matches!(Record::from_slice(&[0; 64]), Err(RecordError::NotJson(_))));
        assert!(matches!(Record::from_slice(b"{\"a\": 1"), Err(RecordError::NotJson(_))));
        assert_eq!(Record::from_slice(b"{\"a\": \"\xff\"}"), Err(RecordError::NotUtf8(7)));
        assert_eq!(Record::from_slice(b"[1, 2]"), Err(RecordError::NotObject("an array")));
        assert_eq!(Record::from_slice(b"null"), Err(RecordError::NotObject("null")));
    }

    #[test]
    fn keeps_unknown_keys_order_and_huge_numbers_verbatim() {
        let text = br#"{"zeta": 1, "fsm_state": "WAKE", "alpha": {"n": 123456789012345678901234567890, "f": 1e400}}"#;
        let mut record = Record::from_slice(text).unwrap();
        record.set(keys::FSM_STATE, json!("SLEEP"));
        record.set("omega", json!(true));
        let back = String::from_utf8(record.to_vec()).unwrap();
        let order: Vec<&str> = record.as_map().keys().map(String::as_str).collect();
        assert_eq!(order, ["zeta", "fsm_state", "alpha", "omega"]);
        assert!(back.contains("123456789012345678901234567890"), "{back}");
        assert!(back.contains("1e+400"), "{back}");
        record.remove("zeta");
        let order: Vec<&str> = record.as_map().keys().map(String::as_str).collect();
        assert_eq!(order, ["fsm_state", "alpha", "omega"]);
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_like_python() {
        let record = Record::from_slice(br#"{"a": 1, "a": 2}"#).unwrap();
        assert_eq!(record.get("a"), Some(&json!(2)));
    }

    #[test]
    fn truthiness_follows_python() {
        let falsy =
            [json!(null), json!(false), json!(0), json!(-0.0), json!(""), json!([]), json!({})];
        for value in falsy {
            assert!(!is_truthy(&value), "{value}");
        }
        let huge: Value = serde_json::from_str("1e400").unwrap();
        let tiny: Value = serde_json::from_str("1e-400").unwrap();
        assert!(is_truthy(&huge));
        assert!(!is_truthy(&tiny), "underflows to 0.0 in Python too");
        let truthy =
            [json!(true), json!(1), json!(-0.5), json!("x"), json!([0]), json!({"a": null})];
        for value in truthy {
            assert!(is_truthy(&value), "{value}");
        }
    }

    #[test]
    fn lenient_reads() {
        let record = Record::from_map(
            json!({"t": "2026-04-18T20:00:00Z", "bad": 5, "p": "true", "q": true})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert!(record.timestamp("t").is_some());
        assert!(record.timestamp("bad").is_none());
        assert!(!record.is_true("p"));
        assert!(record.is_true("q"));
    }
}
