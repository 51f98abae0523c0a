//! The quiet window: when, in local time, the user's sessions rarely start, learned from a week of
//! session starts, and the idle rule used until there is a week to learn from.
//!
//! Owns the 30-minute local buckets, learning, the in-window check, the relearn and idle rules, the
//! next window start, and the bounded history of session starts kept in the state file. It must not
//! read the clock, the disk or the environment: the caller passes `now` and the time zone.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDateTime, Offset, TimeDelta, TimeZone, Timelike};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::record::{Record, keys};
use crate::timestamp::{Timestamp, truncate_to_micros};

/// Buckets in a day: one per 30 minutes of local time.
pub const BUCKETS: u8 = 48;
/// How far back learning looks.
pub const LEARN_SPAN: TimeDelta = TimeDelta::days(7);
/// How many distinct local dates learning needs; fewer gives no window.
pub const MIN_DISTINCT_DATES: usize = 7;
/// The shortest window learning accepts, in buckets (3 h).
pub const MIN_WINDOW_BUCKETS: u8 = 6;
/// The longest window, in buckets (8 h): a longer quiet run is cut to this from its start.
pub const MAX_WINDOW_BUCKETS: u8 = 16;
/// How long a learned window stays fresh (relearning is due at exactly this age).
pub const RELEARN_AFTER: TimeDelta = TimeDelta::hours(24);
/// How long without a session starts a night when there is no window (due at exactly this long).
pub const BOOTSTRAP_IDLE: TimeDelta = TimeDelta::hours(2);
/// How long [`SessionStarts`] keeps a start.
pub const SESSION_HISTORY: TimeDelta = TimeDelta::days(8);
/// The most starts [`SessionStarts`] keeps; the oldest go first.
pub const MAX_SESSION_STARTS: usize = 4096;

/// A stored window that does not describe buckets of a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("quiet window [{start}, {duration}] needs a start below 48 and a duration of 1 to 48")]
pub struct InvalidQuietWindow {
    /// The stored start bucket.
    pub start: u8,
    /// The stored duration.
    pub duration: u8,
}

/// A run of local 30-minute buckets: `duration` buckets from bucket `start`, wrapping past
/// midnight. Stored as `[start, duration]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "(u8, u8)", into = "(u8, u8)")]
pub struct QuietWindow {
    /// The first bucket, 0 (00:00) to 47 (23:30).
    pub start: u8,
    /// How many buckets, 1 to 48.
    pub duration: u8,
}

impl TryFrom<(u8, u8)> for QuietWindow {
    type Error = InvalidQuietWindow;

    fn try_from((start, duration): (u8, u8)) -> Result<Self, Self::Error> {
        if start < BUCKETS && (1..=BUCKETS).contains(&duration) {
            Ok(Self { start, duration })
        } else {
            Err(InvalidQuietWindow { start, duration })
        }
    }
}

impl From<QuietWindow> for (u8, u8) {
    fn from(window: QuietWindow) -> Self {
        (window.start, window.duration)
    }
}

impl QuietWindow {
    /// Reads a stored `quiet_window`: `None` for `null` and for anything malformed (not a pair of
    /// whole numbers, a start past 47, a duration outside 1 to 48).
    pub fn from_value(value: &Value) -> Option<Self> {
        let [start, duration] = value.as_array()?.as_slice() else {
            return None;
        };
        let bucket = |value: &Value| value.as_u64().and_then(|n| u8::try_from(n).ok());
        Self::try_from((bucket(start)?, bucket(duration)?)).ok()
    }

    /// The stored form, `[start, duration]`.
    pub fn to_value(self) -> Value {
        json!([self.start, self.duration])
    }
}

/// The local 30-minute bucket of a local time: `2 * hour`, plus one from minute 30.
fn bucket_of_local<T: Timelike>(local: &T) -> u8 {
    // hour < 24 and minute < 60, so the result is below 48.
    (local.hour() * 2 + local.minute() / 30) as u8
}

/// The local 30-minute bucket of a moment in a time zone, 0 (00:00-00:30) to 47 (23:30-24:00).
pub fn bucket_of(at: Timestamp, tz: Tz) -> u8 {
    bucket_of_local(&at.with_timezone(&tz))
}

/// Whether a bucket lies inside a window: with `end = (start + duration) % 48`, inside means
/// `start <= b < end` when `start < end`, else `b >= start || b < end` (the window wraps
/// midnight, or covers the whole day).
pub fn contains(window: QuietWindow, bucket: u8) -> bool {
    let end = ((u16::from(window.start) + u16::from(window.duration)) % u16::from(BUCKETS)) as u8;
    if window.start < end {
        window.start <= bucket && bucket < end
    } else {
        bucket >= window.start || bucket < end
    }
}

/// Learns the quiet window from session starts, as a pure function.
///
/// Counts the starts within `[now - 7 d, now]` into 48 local buckets of `tz`. Needs starts on at
/// least 7 distinct local dates. A bucket is quiet when its count is strictly below
/// `max(1, floor(0.2 * peak))`. The window is the longest run of quiet buckets, wrapping past
/// midnight, the one starting at the smallest bucket on a tie; it must be at least 6 buckets long
/// and is cut to 16 from its start. `None` when there is not enough data or no long enough run.
pub fn learn(starts: &[Timestamp], now: Timestamp, tz: Tz) -> Option<QuietWindow> {
    let since = now.checked_sub_signed(LEARN_SPAN).unwrap_or(DateTime::<chrono::Utc>::MIN_UTC);
    let mut counts = [0usize; BUCKETS as usize];
    let mut dates = HashSet::new();
    for &at in starts.iter().filter(|&&at| since <= at && at <= now) {
        let local = at.with_timezone(&tz);
        counts[usize::from(bucket_of_local(&local))] += 1;
        dates.insert(local.date_naive());
    }
    if dates.len() < MIN_DISTINCT_DATES {
        return None;
    }
    let peak = counts.iter().copied().max().unwrap_or(0);
    // floor(0.2 * peak) in integers: 0.2 is stored a hair above 1/5, so the float product never
    // falls below a whole number the exact one reaches.
    let threshold = (peak / 5).max(1);
    let quiet: Vec<bool> = counts.iter().map(|&count| count < threshold).collect();
    let (start, length) = longest_circular_run(&quiet)?;
    if length < usize::from(MIN_WINDOW_BUCKETS) {
        return None;
    }
    let duration = length.min(usize::from(MAX_WINDOW_BUCKETS));
    QuietWindow::try_from((u8::try_from(start).ok()?, u8::try_from(duration).ok()?)).ok()
}

/// The longest run of `true` around a circle, as `(start, length)`; the smallest start wins a tie.
fn longest_circular_run(flags: &[bool]) -> Option<(usize, usize)> {
    let n = flags.len();
    if n > 0 && flags.iter().all(|&flag| flag) {
        return Some((0, n));
    }
    let mut best: Option<(usize, usize)> = None;
    for start in (0..n).filter(|&i| flags[i] && !flags[(i + n - 1) % n]) {
        let length = (0..n).take_while(|&k| flags[(start + k) % n]).count();
        if best.is_none_or(|(_, longest)| length > longest) {
            best = Some((start, length));
        }
    }
    best
}

/// Whether the learned window is stale: never learned, or learned 24 h or more ago.
pub fn should_relearn(learned_at: Option<Timestamp>, now: Timestamp) -> bool {
    learned_at.is_none_or(|learned| now.signed_duration_since(learned) >= RELEARN_AFTER)
}

/// Where the occurrence of `window` that holds `at` began; `None` when `at` is outside it. Local
/// buckets are 30 minutes and every zone's offset is a multiple of 15 minutes, so stepping back by
/// quarter hours finds it.
pub fn occurrence_start(window: QuietWindow, at: Timestamp, tz: Tz) -> Option<Timestamp> {
    let inside = |t: Timestamp| contains(window, bucket_of(t, tz));
    if !inside(at) {
        return None;
    }
    let step = TimeDelta::minutes(15);
    let mut begin = at
        - TimeDelta::seconds(at.timestamp().rem_euclid(900))
        - TimeDelta::nanoseconds(i64::from(at.timestamp_subsec_nanos()));
    for _ in 0..usize::from(BUCKETS) * 2 {
        if !inside(begin - step) {
            break;
        }
        begin -= step;
    }
    Some(begin)
}

/// The seed's `should_bootstrap_trigger`: no activity ever, or none for 2 h or more. `since` is
/// the last activity (the engine passes the later of the last session and the boot).
pub fn idle_long_enough(since: Option<Timestamp>, now: Timestamp) -> bool {
    since.is_none_or(|last| now.signed_duration_since(last) >= idle_threshold())
}

/// The idle rule's threshold in the guard: [`BOOTSTRAP_IDLE`], unless a test of this crate moved
/// it (see [`IDLE_THRESHOLD_OVERRIDE_MINUTES`]).
fn idle_threshold() -> TimeDelta {
    #[cfg(feature = "testing")]
    {
        let minutes = IDLE_THRESHOLD_OVERRIDE_MINUTES.load(std::sync::atomic::Ordering::Relaxed);
        if minutes > 0 {
            return TimeDelta::minutes(minutes);
        }
    }
    BOOTSTRAP_IDLE
}

/// For the crate's own tests only: when positive, the idle guard's threshold in minutes. It lets
/// a test build change one guard's threshold to show that `replay` notices.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub static IDLE_THRESHOLD_OVERRIDE_MINUTES: std::sync::atomic::AtomicI64 =
    std::sync::atomic::AtomicI64::new(0);

/// How many bucket boundaries and offset changes [`next_window_start`] walks before it gives up:
/// three days of boundaries, more than any window needs even across a skipped hour.
const MAX_WALK: usize = 3 * BUCKETS as usize + 16;

/// The first moment at or after `now` whose local bucket lies inside the window: `now` itself when
/// it already does. Walks local bucket boundaries and the zone's offset changes, so it is exact
/// across daylight-saving changes (a skipped or repeated hour) and for offsets of 15 or 45 minutes.
/// `None` only if the window never occurs within three days.
pub fn next_window_start(window: QuietWindow, now: Timestamp, tz: Tz) -> Option<Timestamp> {
    let mut at = now;
    for _ in 0..MAX_WALK {
        let local = at.with_timezone(&tz);
        if contains(window, bucket_of_local(&local)) {
            return Some(at);
        }
        let boundary = next_local_boundary(local.naive_local())?;
        let next = at.checked_add_signed(boundary - local.naive_local())?;
        at = first_offset_change(at, next, tz).unwrap_or(next);
    }
    None
}

/// The next local :00 or :30 strictly after a local time.
fn next_local_boundary(local: NaiveDateTime) -> Option<NaiveDateTime> {
    let slot_start = local.date().and_hms_opt(local.hour(), local.minute() / 30 * 30, 0)?;
    slot_start.checked_add_signed(TimeDelta::minutes(30))
}

/// The zone's UTC offset at a moment, in seconds.
fn offset_at(at: Timestamp, tz: Tz) -> i32 {
    tz.offset_from_utc_datetime(&at.naive_utc()).fix().local_minus_utc()
}

/// The first moment in `(from, to)` at which the zone's offset differs from its offset at `from`,
/// if there is one (found by bisection, to the nanosecond).
fn first_offset_change(from: Timestamp, to: Timestamp, tz: Tz) -> Option<Timestamp> {
    let before = offset_at(from, tz);
    let mut hi = to.checked_sub_signed(TimeDelta::nanoseconds(1))?;
    if hi <= from || offset_at(hi, tz) == before {
        return None;
    }
    let mut lo = from;
    while hi - lo > TimeDelta::nanoseconds(1) {
        let mid = lo + (hi - lo) / 2;
        if offset_at(mid, tz) == before {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi)
}

/// A bounded, ordered history of session-start moments, for learning the quiet window.
///
/// Kept in the state file under [`keys::SESSION_STARTS`] as one JSON string: the first start in
/// microseconds since the epoch, then each next start as its distance in microseconds from the one
/// before, separated by spaces. A week of starts at ten an hour takes about 17 KB.
#[derive(Debug, Clone, Default)]
pub struct SessionStarts {
    /// Oldest first, at microsecond resolution; the first `dropped` are gone (they are cut away
    /// once they are as many as the cap, so dropping the oldest start moves nothing).
    starts: Vec<Timestamp>,
    /// How many of `starts` are gone.
    dropped: usize,
    /// For each of `starts` after the first, a space and its distance in microseconds from the one
    /// before, kept up to date as starts come and go, so that writing the history into a snapshot
    /// costs a copy, not a re-encoding. The live starts' tokens begin at `tail_from`.
    tail: String,
    /// Where the tokens of the starts after the first live one begin in `tail`.
    tail_from: usize,
}

impl PartialEq for SessionStarts {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for SessionStarts {}

impl SessionStarts {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// A history of starts already in time order.
    fn from_sorted(starts: Vec<Timestamp>) -> Self {
        let tail = Self::encode_tail(&starts);
        Self { starts, dropped: 0, tail, tail_from: 0 }
    }

    /// Records a session start (cut to the microsecond). A start older than the newest one (the
    /// clock went back) takes its place in time order. Past [`MAX_SESSION_STARTS`] the oldest go.
    pub fn push(&mut self, at: Timestamp) {
        let at = truncate_to_micros(at);
        match self.as_slice().last() {
            Some(&last) if at < last => {
                let mut starts = self.as_slice().to_vec();
                let position = starts.partition_point(|&start| start <= at);
                starts.insert(position, at);
                *self = Self::from_sorted(starts);
            }
            Some(&last) => {
                let delta = at.timestamp_micros() - last.timestamp_micros();
                self.starts.push(at);
                self.tail.push(' ');
                self.tail.push_str(&delta.to_string());
            }
            None => *self = Self::from_sorted(vec![at]),
        }
        self.cap();
    }

    /// Drops the starts older than [`SESSION_HISTORY`] before `now`; returns how many went.
    pub fn prune(&mut self, now: Timestamp) -> usize {
        let Some(since) = now.checked_sub_signed(SESSION_HISTORY) else {
            return 0;
        };
        let old = self.as_slice().partition_point(|&start| start < since);
        self.drop_oldest(old);
        old
    }

    /// The starts, oldest first.
    pub fn as_slice(&self) -> &[Timestamp] {
        &self.starts[self.dropped..]
    }

    /// How many starts are kept.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether no start is kept.
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// The compact text the state file keeps (see the type's description).
    pub fn encode(&self) -> String {
        let Some(first) = self.as_slice().first() else {
            return String::new();
        };
        let first = first.timestamp_micros().to_string();
        let tail = &self.tail[self.tail_from..];
        let mut text = String::with_capacity(first.len() + tail.len());
        text.push_str(&first);
        text.push_str(tail);
        text
    }

    /// The tokens of every start after the first: a space and the distance from the one before.
    fn encode_tail(starts: &[Timestamp]) -> String {
        let mut text = String::with_capacity(starts.len() * 11);
        for pair in starts.windows(2) {
            text.push(' ');
            text.push_str(&(pair[1].timestamp_micros() - pair[0].timestamp_micros()).to_string());
        }
        text
    }

    /// Reads the compact text leniently: anything that does not decode in full gives an empty
    /// history (learning then waits for a new week), never an error.
    pub fn decode(text: &str) -> Self {
        Self::try_decode(text).unwrap_or_default()
    }

    fn try_decode(text: &str) -> Option<Self> {
        let mut starts = Vec::new();
        let mut micros: Option<i64> = None;
        for token in text.split_ascii_whitespace() {
            let value: i64 = token.parse().ok()?;
            let next = match micros {
                None => value,
                Some(previous) => previous.checked_add(value)?,
            };
            starts.push(DateTime::from_timestamp_micros(next)?);
            micros = Some(next);
        }
        starts.sort_unstable();
        let mut history = Self::from_sorted(starts);
        history.cap();
        Some(history)
    }

    /// The value stored under [`keys::SESSION_STARTS`]: a JSON string.
    pub fn to_value(&self) -> Value {
        Value::String(self.encode())
    }

    /// Reads a stored value leniently: anything but a decodable string is an empty history.
    pub fn from_value(value: &Value) -> Self {
        value.as_str().map(Self::decode).unwrap_or_default()
    }

    /// The history kept in a state document (empty when missing or unreadable).
    pub fn read(record: &Record) -> Self {
        record.get(keys::SESSION_STARTS).map(Self::from_value).unwrap_or_default()
    }

    /// Stores the history in a state document.
    pub fn write(&self, record: &mut Record) {
        record.set(keys::SESSION_STARTS, self.to_value());
    }

    fn cap(&mut self) {
        self.drop_oldest(self.len().saturating_sub(MAX_SESSION_STARTS));
    }

    /// Drops the `count` oldest starts: the next one's token is skipped, as it is written whole.
    fn drop_oldest(&mut self, count: usize) {
        if count == 0 {
            return;
        }
        if count >= self.len() {
            *self = Self::new();
            return;
        }
        self.dropped += count;
        // The new first start's token is the `count`-th in the live tail; the rest begin at the next.
        let live = &self.tail[self.tail_from..];
        self.tail_from += live.match_indices(' ').nth(count).map_or(live.len(), |(i, _)| i);
        if self.dropped >= MAX_SESSION_STARTS {
            self.starts.drain(..self.dropped);
            self.tail.drain(..self.tail_from);
            self.dropped = 0;
            self.tail_from = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circular_runs() {
        let flags = |text: &str| text.chars().map(|c| c == '1').collect::<Vec<_>>();
        assert_eq!(longest_circular_run(&flags("1110111")), Some((4, 6)), "wraps past the end");
        assert_eq!(
            longest_circular_run(&flags("1100110")),
            Some((0, 2)),
            "smallest start on a tie"
        );
        assert_eq!(longest_circular_run(&flags("0000")), None);
        assert_eq!(longest_circular_run(&flags("1111")), Some((0, 4)));
    }

    #[test]
    fn offset_changes_are_found_to_the_nanosecond() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let from = crate::timestamp::parse("2026-03-08T06:45:00Z").unwrap();
        let to = crate::timestamp::parse("2026-03-08T07:15:00Z").unwrap();
        let change = crate::timestamp::parse("2026-03-08T07:00:00Z").unwrap();
        assert_eq!(first_offset_change(from, to, tz), Some(change));
        assert_eq!(first_offset_change(change, to, tz), None);
    }

    #[test]
    fn past_the_cap_the_dropped_starts_are_cut_away_and_the_text_stays_fresh() {
        let mut history = SessionStarts::new();
        let start = DateTime::from_timestamp(1_776_000_000, 0).unwrap();
        for minute in 0..(3 * MAX_SESSION_STARTS as i64 + 7) {
            history.push(start + TimeDelta::minutes(minute) + TimeDelta::microseconds(minute % 13));
            assert!(history.dropped < MAX_SESSION_STARTS);
        }
        assert_eq!(history.len(), MAX_SESSION_STARTS);
        let fresh = SessionStarts::from_sorted(history.as_slice().to_vec());
        assert_eq!(history.encode(), fresh.encode());
        assert_eq!(SessionStarts::decode(&history.encode()), history);
    }

    proptest::proptest! {
        /// The text kept up to date push by push, prune by prune, is the text encoded afresh.
        #[test]
        fn the_kept_text_is_the_fresh_encoding(
            steps in proptest::collection::vec((-3_600i64..86_400, proptest::bool::weighted(0.1)), 0..300),
        ) {
            let mut history = SessionStarts::new();
            let mut at = DateTime::from_timestamp(1_776_000_000, 0).unwrap();
            for (step, prune) in steps {
                at += TimeDelta::seconds(step) + TimeDelta::microseconds(step.rem_euclid(997));
                history.push(at);
                if prune {
                    history.prune(at);
                }
                let fresh = SessionStarts::from_sorted(history.as_slice().to_vec());
                proptest::prop_assert_eq!(history.encode(), fresh.encode());
            }
            proptest::prop_assert_eq!(SessionStarts::decode(&history.encode()), history);
        }
    }
}
