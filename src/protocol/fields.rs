//! Reading one JSON object's fields as the seed reads them: `null` counts as absent, an int is
//! any JSON integer (never a bool or a float), a `ts` is a moment in the range a state file holds.
//!
//! Owns the field readers and the errors that name a field. It must not know which message takes
//! which field: `messages` decides that.

use serde_json::{Map, Number, Value};

use super::messages::Refusal;
use crate::timestamp::{self, Timestamp};

/// A message's fields, read as the seed reads them: `null` counts as absent. Errors name a field
/// as `prefix` + its key.
pub(super) struct Fields<'a> {
    /// The object.
    pub(super) map: &'a Map<String, Value>,
    /// What its errors put before a key (`result.`).
    pub(super) prefix: &'static str,
    /// The object's text, when it was parsed from one.
    pub(super) text: Option<&'a str>,
}

impl<'a> Fields<'a> {
    pub(super) fn present(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    /// How the message spelled a field's value, when it was parsed from text.
    pub(super) fn spelling(&self, key: &str) -> Option<&'a str> {
        self.text.and_then(|text| crate::record::member_text(text, key))
    }

    pub(super) fn wrong(&self, key: &str, what: &str) -> Refusal {
        Refusal::Invalid(format!("{}{key} must be {what}", self.prefix))
    }

    /// Refuses the first field that is not `type` nor one of `allowed`, naming it.
    pub(super) fn only(&self, kind: &str, allowed: &[&str]) -> Result<(), Refusal> {
        let top = self.prefix.is_empty();
        let known = |key: &str| allowed.contains(&key) || (top && key == "type");
        match self.map.keys().find(|key| !known(key)) {
            None => Ok(()),
            Some(key) => Err(Refusal::Invalid(format!(
                "{}{key} is not a field of {kind}{}: expected {}",
                self.prefix,
                if top { "" } else { "'s result" },
                allowed.join(", ")
            ))),
        }
    }

    /// A control message's `ts` as a moment, when it is one (it is a label otherwise).
    pub(super) fn label_moment(&self) -> Option<Timestamp> {
        match self.present("ts") {
            Some(Value::String(ts)) => timestamp::parse_moment(ts).ok(),
            _ => None,
        }
    }

    pub(super) fn optional_string(&self, key: &str) -> Result<Option<String>, Refusal> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(self.wrong(key, "a string")),
        }
    }

    pub(super) fn required_string(&self, key: &str) -> Result<String, Refusal> {
        self.optional_string(key)?.ok_or_else(|| self.wrong(key, "a string"))
    }

    /// An int as Python has them: a JSON integer of any size, never a bool or a float.
    pub(super) fn optional_int(&self, key: &str) -> Result<Option<&Number>, Refusal> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Number(n)) if is_int(n, self.spelling(key)) => Ok(Some(n)),
            Some(_) => Err(self.wrong(key, "an int")),
        }
    }

    /// A count: an int from 0 to 2^64 - 1; 0 when absent.
    pub(super) fn count(&self, key: &str) -> Result<u64, Refusal> {
        match self.optional_int(key)? {
            None => Ok(0),
            Some(n) => n.as_u64().ok_or_else(|| self.wrong(key, "an int from 0 to 2^64 - 1")),
        }
    }

    /// A bool; false when absent.
    pub(super) fn flag(&self, key: &str) -> Result<bool, Refusal> {
        match self.present(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.wrong(key, "a bool")),
        }
    }

    /// The engine message's moment: its `ts`, which must be an RFC 3339 timestamp in the range a
    /// state file can hold when present.
    pub(super) fn moment(&self) -> Result<Option<Timestamp>, Refusal> {
        match self.optional_string("ts")? {
            None => Ok(None),
            Some(ts) => match timestamp::parse_moment(&ts) {
                Ok(at) => Ok(Some(at)),
                Err(timestamp::MomentError::NotATime) => {
                    Err(self.wrong("ts", "an RFC 3339 timestamp"))
                }
                Err(timestamp::MomentError::OutOfRange) => Err(self.wrong(
                    "ts",
                    "a moment from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z in UTC",
                )),
            },
        }
    }
}

/// Whether a JSON number is written as an integer (`12`, `-3`, any size), as Python's `int` is.
/// One past 64 bits parses as a float: its `spelling` in the message, when known, tells.
fn is_int(n: &Number, spelling: Option<&str>) -> bool {
    if n.is_u64() || n.is_i64() {
        return true;
    }
    spelling.is_some_and(|text| {
        let digits = text.strip_prefix('-').unwrap_or(text);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    })
}
