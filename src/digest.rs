//! The morning digest: folding finished REM cycles into `pending_digest` and the 18 h gate on it.
//!
//! Owns the digest's shape, its arithmetic, the delivery gate and the views the seed's surfaces
//! show (the recall's `overnight_digest`, the status summary). It must not read the clock or touch
//! the disk: the caller passes `now` and persists the document when a digest is taken.

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::record::{Object, Record, is_truthy, keys};
use crate::timestamp::{self, Timestamp};

/// How long after a shown digest the next one is withheld (exactly this long delivers).
pub const SHOW_THRESHOLD: TimeDelta = TimeDelta::hours(18);

/// Completed REM cycles, across nights, until the digest is taken.
const REM_CYCLES_COMPLETED: &str = "rem_cycles_completed";
/// Episodes summarised.
const EPISODES_PROCESSED: &str = "episodes_processed";
/// Schema candidates induced.
const SCHEMAS_INDUCED_TIER0: &str = "schemas_induced_tier0";
/// Whether any cycle called the model.
const CLAUDE_CALL_USED: &str = "claude_call_used";
/// The insight text of the last cycle that called the model.
const MAIN_INSIGHT_TEXT: &str = "main_insight_text";
/// Cycles that hit their time limit.
const TIMED_OUT_CYCLES: &str = "timed_out_cycles";

/// What one finished REM cycle reports. Every field is optional on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RemResult {
    /// Episodes the cycle summarised.
    pub summaries_created: u64,
    /// Schema candidates the cycle induced.
    pub schema_candidates: u64,
    /// Whether the cycle called the model.
    pub claude_call_used: bool,
    /// The insight the model gave, when it was called.
    pub main_insight_text: Option<String>,
    /// Whether the cycle hit its time limit.
    pub timed_out: bool,
}

/// A fresh `pending_digest`: every counter zero, no model call, no insight.
fn zeroed_pending_digest() -> Object {
    Object::from_iter([
        (REM_CYCLES_COMPLETED.to_owned(), Value::from(0)),
        (EPISODES_PROCESSED.to_owned(), Value::from(0)),
        (SCHEMAS_INDUCED_TIER0.to_owned(), Value::from(0)),
        (CLAUDE_CALL_USED.to_owned(), Value::Bool(false)),
        (MAIN_INSIGHT_TEXT.to_owned(), Value::Null),
        (TIMED_OUT_CYCLES.to_owned(), Value::from(0)),
    ])
}

/// A stored counter; anything but a whole number counts as 0 (a whole number beyond 64 bits
/// saturates).
fn counter(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::Number(n)) => {
            n.as_i64().or_else(|| n.as_u64().map(|_| i64::MAX)).unwrap_or_default()
        }
        _ => 0,
    }
}

fn add(digest: &mut Object, key: &str, amount: u64) {
    let amount = i64::try_from(amount).unwrap_or(i64::MAX);
    let total = counter(digest.get(key)).saturating_add(amount);
    digest.insert(key.to_owned(), Value::from(total));
}

/// Folds one finished REM cycle into `pending_digest`, creating it with zeros when it is missing or
/// not an object: one more cycle, the episodes and schema candidates added, the model call and its
/// insight recorded when the cycle made one, one more timed-out cycle when it timed out. Counters
/// add up across nights until the digest is taken; other keys of the digest are kept.
pub fn fold(record: &mut Record, result: &RemResult) {
    let mut object = record.object(keys::PENDING_DIGEST).unwrap_or_else(zeroed_pending_digest);
    let digest = &mut object;
    add(digest, REM_CYCLES_COMPLETED, 1);
    add(digest, EPISODES_PROCESSED, result.summaries_created);
    add(digest, SCHEMAS_INDUCED_TIER0, result.schema_candidates);
    if result.claude_call_used {
        digest.insert(CLAUDE_CALL_USED.to_owned(), Value::Bool(true));
        digest.insert(MAIN_INSIGHT_TEXT.to_owned(), json!(result.main_insight_text));
    } else {
        digest.entry(CLAUDE_CALL_USED.to_owned()).or_insert(Value::Bool(false));
        digest.entry(MAIN_INSIGHT_TEXT.to_owned()).or_insert(Value::Null);
    }
    add(digest, TIMED_OUT_CYCLES, u64::from(result.timed_out));
    record.set_object(keys::PENDING_DIGEST, object);
}

/// The 18 h gate (the seed's `get_pending_digest`). Withholds the digest when less than
/// [`SHOW_THRESHOLD`] has passed since `last_digest_shown_at`; a missing, malformed or non-string
/// value counts as never shown. A digest Python holds false (missing, `null`, `{}`, ...) gives
/// `None` and changes nothing. Otherwise removes `pending_digest` (the other keys keep their order),
/// sets `last_digest_shown_at` to `now` and returns the digest: the caller must persist.
///
/// **fix**: a `last_digest_shown_at` later than `now` (the clock went back) does not block delivery.
pub fn take(record: &mut Record, now: Timestamp) -> Option<Digest> {
    if let Some(last) = record.timestamp(keys::LAST_DIGEST_SHOWN_AT)
        && last <= now
        && now - last < SHOW_THRESHOLD
    {
        return None;
    }
    if !record.get(keys::PENDING_DIGEST).is_some_and(is_truthy) {
        return None;
    }
    record.set(keys::LAST_DIGEST_SHOWN_AT, Value::String(timestamp::format(now)));
    let object = record.object(keys::PENDING_DIGEST);
    let value = record.remove(keys::PENDING_DIGEST)?;
    Some(Digest(object.map_or(Held::Other(value), Held::Object)))
}

/// A morning digest as delivered: what `pending_digest` held (an object, keys in their stored
/// order: the cycles completed, the episodes processed, ...; or whatever else Python held true).
#[derive(Debug, Clone, PartialEq)]
#[derive(Serialize)]
#[cfg_attr(feature = "serde", derive(Deserialize))]
#[serde(transparent)]
pub struct Digest(Held);

#[derive(Debug, Clone, PartialEq)]
#[derive(Serialize)]
#[cfg_attr(feature = "serde", derive(Deserialize))]
#[serde(untagged)]
enum Held {
    Object(Object),
    Other(Value),
}

impl Digest {
    /// A field of the digest (`rem_cycles_completed`, `main_insight_text`, ...); `None` when it
    /// is missing or the digest is not an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match &self.0 {
            Held::Object(object) => object.get(key),
            Held::Other(_) => None,
        }
    }

    /// The digest's fields in their stored order (none when it is not an object).
    pub fn fields(&self) -> impl Iterator<Item = (&str, &Value)> {
        let object = match &self.0 {
            Held::Object(object) => Some(object),
            Held::Other(_) => None,
        };
        object.into_iter().flatten().map(|(key, value)| (key.as_str(), value))
    }

    /// The digest as a JSON value.
    pub fn to_value(&self) -> Value {
        match &self.0 {
            Held::Object(object) => Value::Object(object.clone().into_iter().collect()),
            Held::Other(value) => value.clone(),
        }
    }
}

/// The ten keys of the recall's `overnight_digest`, each with its default.
fn overnight_defaults() -> [(&'static str, Value); 10] {
    [
        (REM_CYCLES_COMPLETED, json!(0)),
        (EPISODES_PROCESSED, json!(0)),
        (SCHEMAS_INDUCED_TIER0, json!(0)),
        (CLAUDE_CALL_USED, json!(false)),
        ("quota_used_pct", json!(0.0)),
        (MAIN_INSIGHT_TEXT, Value::Null),
        ("sigma_observed", Value::Null),
        ("s5_drift_alerts", json!([])),
        ("daemon_uptime_hours", json!(0)),
        (TIMED_OUT_CYCLES, json!(0)),
    ]
}

#[cfg(any(test, feature = "testing"))]
/// The `overnight_digest` a recall shows when no digest is delivered: the ten keys, zeroed.
pub fn zeroed_overnight_digest() -> Object {
    overnight_defaults().into_iter().map(|(key, value)| (key.to_owned(), value)).collect()
}

#[cfg(any(test, feature = "testing"))]
/// The `overnight_digest` a recall shows for a delivered digest: exactly the ten keys, each taken
/// from the digest when present and defaulted otherwise; other keys are dropped. Anything but an
/// object (including `null` for "nothing delivered") gives [`zeroed_overnight_digest`].
pub fn overnight_view(digest: &Value) -> Object {
    let Value::Object(digest) = digest else {
        return zeroed_overnight_digest();
    };
    overnight_defaults()
        .into_iter()
        .map(|(key, default)| (key.to_owned(), digest.get(key).cloned().unwrap_or(default)))
        .collect()
}

/// The digest summary `status` shows: none unless the digest is an object, else its four
/// counters (`rem_cycles_completed`, `episodes_processed`, `schemas_induced_tier0`,
/// `claude_call_used`) with defaults 0, 0, 0 and false.
pub fn status_view(digest: Option<&Value>) -> Option<Object> {
    let Some(Value::Object(digest)) = digest else {
        return None;
    };
    Some(
        overnight_defaults()
            .into_iter()
            .take(4)
            .map(|(key, default)| (key.to_owned(), digest.get(key).cloned().unwrap_or(default)))
            .collect(),
    )
}
