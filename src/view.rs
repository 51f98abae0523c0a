//! The typed reading of the state document that the guards consult: the state, the flags, the
//! window, the night.
//!
//! Owns the lenient reading of every known key (a wrong-typed value reads as the rule for that key
//! says, with a warning) and the `night` object's shape. It must not change the document: `data`
//! writes, this module only reads.

use chrono_tz::Tz;
use serde_json::Value;

use crate::data::{DEFAULT_REM_CYCLES, MAX_REM_CYCLES};
use crate::quiet_window::QuietWindow;
use crate::record::{Object, Record, is_truthy, keys, kind_of};
use crate::sessions;
use crate::table::StateName;
use crate::timestamp::{self, Timestamp};

/// The night that is running, or the last one that ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Night {
    /// When the lock came and the night was planned.
    pub started_at: Option<Timestamp>,
    /// Cycles planned.
    pub planned: u32,
    /// Cycles completed so far.
    pub completed: u32,
    /// The host lost the lock mid-night.
    pub lock_lost: bool,
    /// The latest client activity seen during the night.
    pub activity_at: Option<Timestamp>,
    /// After a refused or timed-out lock: no new night before this moment.
    pub retry_after: Option<Timestamp>,
}

impl Night {
    fn read(value: &Value) -> Option<Self> {
        let obj = value.as_object()?;
        let time = |k: &str| obj.get(k).and_then(Value::as_str).and_then(timestamp::parse);
        let count = |k: &str| {
            obj.get(k).and_then(Value::as_u64).map(|n| n.min(u64::from(MAX_REM_CYCLES)) as u32)
        };
        Some(Self {
            started_at: time("started_at"),
            planned: count("planned")?,
            completed: count("completed")?,
            lock_lost: obj.get("lock_lost").is_some_and(is_truthy),
            activity_at: time("activity_at"),
            retry_after: time("retry_after"),
        })
    }

    /// The `night` object as the state file holds it.
    pub fn to_object(&self) -> Object {
        let stamp = |at: Option<Timestamp>| Value::from(at.map(timestamp::format));
        Object::from_iter([
            ("started_at".to_owned(), stamp(self.started_at)),
            ("planned".to_owned(), Value::from(self.planned)),
            ("completed".to_owned(), Value::from(self.completed)),
            ("lock_lost".to_owned(), Value::from(self.lock_lost)),
            ("activity_at".to_owned(), stamp(self.activity_at)),
            ("retry_after".to_owned(), stamp(self.retry_after)),
        ])
    }
}

/// The typed reading of the document that the guards consult; rebuilt after every change.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// The persisted state.
    pub fsm: StateName,
    /// `scheduler_paused` is true as Python tests it (`true`, a non-empty string, a non-zero number...).
    pub paused: bool,
    /// The zone the quiet window is learned and checked in.
    pub tz: Tz,
    /// The learned quiet window.
    pub window: Option<QuietWindow>,
    /// When the window was last learned.
    pub learned_at: Option<Timestamp>,
    /// When the last session started.
    pub last_session: Option<Timestamp>,
    /// When the state last changed.
    pub transition_at: Option<Timestamp>,
    /// A user-sleep request is pending: its `pending` is true as Python tests it (so for the other
    /// two requests, and the night's `lock_lost`).
    pub user_sleep_pending: bool,
    /// A force-REM request is pending.
    pub force_rem_pending: bool,
    /// A force-wake request is pending.
    pub force_wake_pending: bool,
    /// Cycles a night plans.
    pub rem_cycle_count: u32,
    /// The running or last night.
    pub night: Night,
    /// The earliest moment the 1 h first-turn reaper has something to drop.
    pub first_turn_expiry: Option<Timestamp>,
    /// Why the last tick did not start a night.
    pub skip_reason: Option<String>,
}

impl View {
    /// Reads the document leniently, listing every known key whose value could not be used.
    pub fn read(record: &Record) -> (Self, Vec<String>) {
        Self::read_keeping(record, None)
    }

    /// Reads the document again after an edit whose first-turn expiry is known (the map was left
    /// as it was, or the mark's prune read it), instead of reading every mark again.
    pub(crate) fn reread_with_first_turn_expiry(
        record: &Record,
        expiry: Option<Timestamp>,
    ) -> Self {
        Self::read_keeping(record, Some(expiry)).0
    }

    fn read_keeping(record: &Record, expiry: Option<Option<Timestamp>>) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let mut warn = |key: &str, value: &Value, meaning: &str| {
            let held = spelled(record, key).unwrap_or_else(|| kind_of_or_text(value));
            warnings.push(format!("{key} holds {held}; read as {meaning}"));
        };
        let present = |key: &str| record.get(key).filter(|v| !v.is_null());

        let fsm = match present(keys::FSM_STATE) {
            None => StateName::Wake,
            Some(v) => v.as_str().and_then(StateName::parse).unwrap_or_else(|| {
                warn(keys::FSM_STATE, v, "WAKE");
                StateName::Wake
            }),
        };
        // Every stored flag reads as the seed's `if value:` reads it, here as in serve's status
        // (`"yes"` once paused serve's status but not the scheduler).
        let paused = match present(keys::SCHEDULER_PAUSED) {
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                let paused = is_truthy(v);
                warn(keys::SCHEDULER_PAUSED, v, if paused { "paused" } else { "not paused" });
                paused
            }
            None => false,
        };
        let tz = match present(keys::TIMEZONE) {
            None => Tz::UTC,
            Some(v) => v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
                warn(keys::TIMEZONE, v, "UTC");
                Tz::UTC
            }),
        };
        let window = present(keys::QUIET_WINDOW).and_then(|v| {
            let w = QuietWindow::from_value(v);
            if w.is_none() {
                warn(keys::QUIET_WINDOW, v, "no window");
            }
            w
        });
        let mut time = |key: &str| {
            let v = present(key)?;
            let t = v.as_str().and_then(timestamp::parse);
            if t.is_none() {
                warn(key, v, "missing");
            }
            t
        };
        let learned_at = time(keys::QUIET_WINDOW_LEARNED_AT);
        let last_session = time(keys::LAST_SESSION_TS);
        let transition_at = time(keys::FSM_TRANSITION_AT);
        let pending = |key: &str| {
            record
                .get(key)
                .and_then(Value::as_object)
                .is_some_and(|o| o.get("pending").is_some_and(is_truthy))
        };
        let rem_cycle_count = match present(keys::REM_CYCLE_COUNT) {
            None => DEFAULT_REM_CYCLES,
            Some(v) => read_cycle_count(v).unwrap_or_else(|| {
                warnings.push(format!(
                    "{} holds {}; read as {DEFAULT_REM_CYCLES}",
                    keys::REM_CYCLE_COUNT,
                    spelled(record, keys::REM_CYCLE_COUNT).unwrap_or_else(|| kind_of_or_text(v))
                ));
                DEFAULT_REM_CYCLES
            }),
        };
        let night = match present(keys::NIGHT) {
            None => Night::default(),
            Some(v) => Night::read(v).unwrap_or_else(|| {
                let held = spelled(record, keys::NIGHT).unwrap_or_else(|| kind_of(v).to_owned());
                warnings.push(format!("{} holds {held}; read as no night", keys::NIGHT));
                Night::default()
            }),
        };
        let first_turn_expiry = match (expiry, record.ordered(keys::FIRST_TURN_PENDING)) {
            (Some(known), _) => known,
            // An ordered map's marks are read where they are, without building its `Value`.
            (None, Some(marks)) => {
                sessions::next_expiry_of(marks.values(), sessions::REAPER_TTL_SECS)
            }
            (None, None) => match present(keys::FIRST_TURN_PENDING) {
                Some(Value::Object(map)) => {
                    sessions::next_expiry_of(map.values(), sessions::REAPER_TTL_SECS)
                }
                Some(v) => {
                    warnings.push(format!(
                        "{} holds {}; read as empty",
                        keys::FIRST_TURN_PENDING,
                        spelled(record, keys::FIRST_TURN_PENDING)
                            .unwrap_or_else(|| kind_of(v).to_owned())
                    ));
                    None
                }
                None => None,
            },
        };
        let skip_reason =
            record.get(keys::LAST_TICK_SKIPPED_REASON).and_then(Value::as_str).map(str::to_owned);
        let view = Self {
            fsm,
            paused,
            tz,
            window,
            learned_at,
            last_session,
            transition_at,
            user_sleep_pending: pending(keys::USER_SLEEP_REQUEST),
            force_rem_pending: pending(keys::FORCE_REM_REQUEST),
            force_wake_pending: pending(keys::FORCE_WAKE_REQUEST),
            rem_cycle_count,
            night,
            first_turn_expiry,
            skip_reason,
        };
        (view, warnings)
    }
}

/// The start of a value's text as the file spelled it, for a warning, when serde_json could not
/// hold it (`NaN`, a lone surrogate, deep nesting) and it reads as a string of its text.
fn spelled(record: &Record, key: &str) -> Option<String> {
    record.verbatim(key).map(|text| text.chars().take(40).collect())
}

fn kind_of_or_text(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{:?}", s.chars().take(40).collect::<String>()),
        other => kind_of(other).to_owned(),
    }
}

/// `rem_cycle_count` as the seed reads it (`int(value)`): a whole number, a numeric string, or a
/// float with no fraction; at least 1, at most [`MAX_REM_CYCLES`].
fn read_cycle_count(value: &Value) -> Option<u32> {
    let n = match value {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64))?,
        Value::String(s) => s.trim().parse::<u64>().ok()?,
        _ => return None,
    };
    (n >= 1).then(|| n.min(u64::from(MAX_REM_CYCLES)) as u32)
}
