//! First-turn tracking: which sessions still owe their first recall, kept in `first_turn_pending`.
//!
//! Owns marking, consuming and the two prunes of the session id -> timestamp object (the 24 h and
//! 100-entry bound applied on every mark, and the 1 h reaper run at boot and on every tick). It must
//! not read the clock or touch the disk: every function takes the moment it works at, and the caller
//! decides whether to persist.

use chrono::{DateTime, TimeDelta};
use serde_json::Value;

use crate::record::{Object, Record, is_truthy, keys};
use crate::timestamp::{self, Timestamp};

/// How long a mark may wait for its first recall before the prune on session open drops it.
pub const FIRST_TURN_TTL: TimeDelta = TimeDelta::hours(24);

/// How many marks the prune on session open keeps, newest first.
pub const MAX_FIRST_TURN_ENTRIES: usize = 100;

/// The reaper's default time to live, in seconds (the seed's `FIRST_TURN_PENDING_TTL_SEC_DEFAULT`).
pub const REAPER_TTL_SECS: f64 = 3600.0;

/// Session ids are clipped to this many characters (Unicode scalar values, as Python counts them).
pub const MAX_SESSION_ID_CHARS: usize = 128;

/// The first [`MAX_SESSION_ID_CHARS`] characters of a session id.
pub fn clip_session_id(id: &str) -> &str {
    match id.char_indices().nth(MAX_SESSION_ID_CHARS) {
        Some((end, _)) => &id[..end],
        None => id,
    }
}

/// `now - ttl`, saturating at the ends of the representable range instead of overflowing.
fn cutoff(now: Timestamp, ttl: TimeDelta) -> Timestamp {
    now.checked_sub_signed(ttl).unwrap_or(if ttl > TimeDelta::zero() {
        DateTime::<chrono::Utc>::MIN_UTC
    } else {
        DateTime::<chrono::Utc>::MAX_UTC
    })
}

/// A TTL in seconds as Python's `timedelta(seconds=...)` reads it: rounded to the microsecond.
/// `None` when nothing can be old enough (an infinite or not-a-number TTL).
fn reaper_ttl(ttl_secs: f64) -> Option<TimeDelta> {
    let micros = (ttl_secs * 1e6).round_ties_even();
    if micros.is_nan() || micros >= i64::MAX as f64 {
        None
    } else if micros <= i64::MIN as f64 {
        Some(TimeDelta::microseconds(i64::MIN + 1))
    } else {
        // In range and integral: the cast is exact.
        Some(TimeDelta::microseconds(micros as i64))
    }
}

#[cfg_attr(not(feature = "cli"), allow(dead_code))] // Used by the command line.
/// What one pass of [`prune_stale`] did.
struct Pruned {
    removed: usize,
    rewritten: bool,
    /// The oldest moment among the marks left, as a stored moment reads (`None` when none is
    /// left or one of them is a string that is no moment).
    oldest: Option<Timestamp>,
    /// A mark left is a string that is no moment.
    unreadable: bool,
}

fn prune(pending: &mut Object, now: Timestamp, ttl: TimeDelta, max: usize) -> Pruned {
    /// Up to this many marks over the cap are removed one by one; more, in one pass.
    const FEW: usize = 8;
    let before = pending.len();
    let cutoff = cutoff(now, ttl);
    // Each mark is read once: its age decides the 24 h prune and, for the survivors, its rank.
    let read: Vec<(Option<Timestamp>, bool)> = pending
        .values()
        .map(|value| (value.as_str().and_then(timestamp::parse), value.is_string()))
        .collect();
    // The moment each mark stands for when it is aged: a parsed timestamp, else the epoch (the
    // seed's reading of legacy booleans and corrupt strings, so that they go first).
    let ages: Vec<Timestamp> =
        read.iter().map(|(at, _)| at.unwrap_or(DateTime::UNIX_EPOCH)).collect();
    if ages.iter().any(|age| *age < cutoff) {
        let mut position = 0;
        pending.retain(|_, _| {
            position += 1;
            ages[position - 1] >= cutoff
        });
    }
    // A non-string that survived (only possible within a day of the epoch) is stamped with the
    // moment it stands for, as the seed does, so every value is a timestamp string afterwards.
    let mut rewritten = false;
    for value in pending.values_mut().filter(|value| !value.is_string()) {
        *value = Value::String(timestamp::format(DateTime::UNIX_EPOCH));
        rewritten = true;
    }
    // The marks left, by their place before the prune.
    let mut left: Vec<usize> = (0..ages.len()).filter(|&i| ages[i] >= cutoff).collect();
    if pending.len() > max {
        // Newest first; on equal timestamps the later position, i.e. the more recent opening, first.
        // A mark dated after `now` (made while the clock ran ahead) ranks as `now`.
        let mut ranked: Vec<(Timestamp, usize)> = ages
            .iter()
            .filter(|age| **age >= cutoff)
            .enumerate()
            .map(|(position, age)| ((*age).min(now), position))
            .collect();
        ranked.sort_unstable_by(|a, b| b.cmp(a));
        let mut keep = vec![true; ranked.len()];
        for &(_, position) in ranked.iter().skip(max) {
            keep[position] = false;
        }
        let mut position = 0;
        left.retain(|_| {
            position += 1;
            keep[position - 1]
        });
        if ranked.len() - max <= FEW {
            // Usually one mark goes (the one a new mark pushed past the cap): removing it by key
            // keeps the map's index, where `retain` would hash every id again.
            let dropped: Vec<String> = pending
                .keys()
                .zip(&keep)
                .filter(|(_, kept)| !**kept)
                .map(|(key, _)| key.clone())
                .collect();
            for key in dropped {
                pending.shift_remove(&key);
            }
        } else {
            let mut position = 0;
            pending.retain(|_, _| {
                position += 1;
                keep[position - 1]
            });
        }
    }
    // A non-string left was stamped with the epoch above, which reads as the epoch.
    let unreadable = left.iter().any(|&i| read[i].0.is_none() && read[i].1);
    let oldest = left.iter().map(|&i| ages[i]).min().filter(|_| !unreadable);
    Pruned { removed: before - pending.len(), rewritten, oldest, unreadable }
}

#[cfg(any(test, feature = "testing"))]
/// The seed's `prune_stale_first_turn`: drops every entry whose timestamp is strictly older than
/// `now - ttl` (legacy booleans, other non-strings and unparseable strings count as the epoch), then
/// keeps the `max_entries` newest by timestamp. Returns how many entries it removed.
///
/// **fix**: on equal timestamps the cap keeps the most recently opened session (the later one in
/// map order, which [`mark`] keeps in opening order), where the seed evicted the one it had just
/// opened. Survivors keep their order.
///
/// **fix**: for the cap, a timestamp after `now` ranks as `now`, so marks made while the clock ran
/// ahead do not evict every new mark until that future arrives (as `last_digest_shown_at` in the
/// future does not block the digest).
pub fn prune_stale(
    pending: &mut Object,
    now: Timestamp,
    ttl: TimeDelta,
    max_entries: usize,
) -> usize {
    prune(pending, now, ttl, max_entries).removed
}

#[cfg(any(test, feature = "testing"))]
/// Marks a session as owing its first recall: stores `at` under the clipped id, moves the id to
/// the end of the map, then prunes with [`FIRST_TURN_TTL`] and [`MAX_FIRST_TURN_ENTRIES`]. Returns
/// how many entries the prune removed.
///
/// **fix**: an empty id marks nothing (the seed's control plane stored `""`).
pub fn mark(pending: &mut Object, id: &str, at: Timestamp) -> usize {
    let id = clip_session_id(id);
    if id.is_empty() {
        return 0;
    }
    pending.shift_remove(id);
    pending.insert(id.to_owned(), Value::String(timestamp::format(at)));
    prune_stale(pending, at, FIRST_TURN_TTL, MAX_FIRST_TURN_ENTRIES)
}

/// [`mark`], giving what [`next_expiry`] with `ttl_secs` then gives, from the moments the prune
/// already read rather than reading every mark again.
pub(crate) fn mark_with_expiry(
    pending: &mut Object,
    id: &str,
    at: Timestamp,
    ttl_secs: f64,
) -> Option<Timestamp> {
    let id = clip_session_id(id);
    if !id.is_empty() {
        pending.shift_remove(id);
        pending.insert(id.to_owned(), Value::String(timestamp::format(at)));
        let pruned = prune(pending, at, FIRST_TURN_TTL, MAX_FIRST_TURN_ENTRIES);
        let ttl = reaper_ttl(ttl_secs)?;
        if pruned.unreadable {
            return Some(DateTime::<chrono::Utc>::MIN_UTC);
        }
        if ttl >= TimeDelta::zero() {
            return pruned
                .oldest?
                .checked_add_signed(ttl)?
                .checked_add_signed(TimeDelta::microseconds(1));
        }
    }
    next_expiry(pending, ttl_secs)
}

/// Takes a session's mark away. True when the mark counted: a timestamp, or a legacy value that
/// Python holds true (`true`, a non-zero number, a non-empty string, array or object). The id is
/// clipped as [`mark`] clips it, so a long id finds its own mark.
pub fn consume(pending: &mut Object, id: &str) -> bool {
    pending.shift_remove(clip_session_id(id)).is_some_and(|value| is_truthy(&value))
}

/// The seed's `prune_first_turn_pending`, the 1 h reaper: drops an entry only when its timestamp
/// is strictly older than `now - ttl_secs` (an entry exactly `ttl_secs` old stays), and drops
/// unparseable strings and non-strings. Survivors keep their exact text and their order. Returns
/// the dropped ids in map order.
///
/// An infinite or not-a-number TTL drops nothing for its age.
pub fn reap(pending: &mut Object, now: Timestamp, ttl_secs: f64) -> Vec<String> {
    let cutoff = reaper_ttl(ttl_secs).map(|ttl| cutoff(now, ttl));
    let mut dropped = Vec::new();
    pending.retain(|id, value| {
        let parsed = value.as_str().and_then(timestamp::parse);
        let keep = parsed.is_some_and(|at| cutoff.is_none_or(|cutoff| at >= cutoff));
        if !keep {
            dropped.push(id.clone());
        }
        keep
    });
    dropped
}

/// The earliest moment at which [`reap`] with this TTL would drop an entry, at the state file's
/// microsecond resolution, so that the host can schedule a tick. An entry the reaper drops at any
/// time (not a timestamp) makes it [`DateTime::MIN_UTC`], i.e. due now. `None` when nothing will
/// ever expire.
pub fn next_expiry(pending: &Object, ttl_secs: f64) -> Option<Timestamp> {
    next_expiry_of(pending.values(), ttl_secs)
}

/// [`next_expiry`] from the marks' values alone: the order of the marks does not matter to it.
pub(crate) fn next_expiry_of<'a>(
    marks: impl Iterator<Item = &'a Value> + Clone,
    ttl_secs: f64,
) -> Option<Timestamp> {
    let ttl = reaper_ttl(ttl_secs)?;
    let expiry =
        |at: Timestamp| at.checked_add_signed(ttl)?.checked_add_signed(TimeDelta::microseconds(1));
    let mut oldest: Option<Timestamp> = None;
    for value in marks.clone() {
        match value.as_str().and_then(timestamp::parse) {
            None => return Some(DateTime::<chrono::Utc>::MIN_UTC),
            Some(at) => oldest = Some(oldest.map_or(at, |oldest| oldest.min(at))),
        }
    }
    if ttl >= TimeDelta::zero() {
        // The oldest mark expires first; when its expiry is past the end of time, so is every
        // later one's.
        return expiry(oldest?);
    }
    // A negative TTL can carry the oldest marks past the start of time but not the later ones.
    marks.filter_map(|value| expiry(timestamp::parse(value.as_str()?)?)).min()
}

#[cfg_attr(not(feature = "cli"), allow(dead_code))] // Used by the command line.
/// What [`mark_in`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The document changed.
    pub changed: bool,
    /// The session's mark is in the document afterwards (false for an empty id, or a mark the
    /// prune dropped at once).
    pub marked: bool,
}

#[cfg(any(test, feature = "testing"))]
/// [`mark`] on a state document: a `first_turn_pending` that is not an object is replaced by `{}`
/// first. Returns whether the document changed (false for an empty id).
pub fn open_in(record: &mut Record, id: &str, at: Timestamp) -> bool {
    mark_in(record, id, at).changed
}

#[cfg_attr(not(feature = "cli"), allow(dead_code))] // Used by the command line.
/// [`open_in`], also saying whether the new mark survived the prune, so that a caller never
/// reports a mark that is not there.
pub fn mark_in(record: &mut Record, id: &str, at: Timestamp) -> Opened {
    let id = clip_session_id(id);
    if id.is_empty() {
        return Opened { changed: false, marked: false };
    }
    let was_object = record.object_mut(keys::FIRST_TURN_PENDING).is_some();
    if !was_object {
        record.set_object(keys::FIRST_TURN_PENDING, Object::new());
    }
    let Some(pending) = record.object_mut(keys::FIRST_TURN_PENDING) else {
        return Opened { changed: true, marked: false };
    };
    let stamp = Value::String(timestamp::format(at));
    let already_last = pending.iter().next_back() == Some((&id.to_owned(), &stamp));
    pending.shift_remove(id);
    pending.insert(id.to_owned(), stamp);
    let pruned = prune(pending, at, FIRST_TURN_TTL, MAX_FIRST_TURN_ENTRIES);
    Opened {
        changed: !(was_object && already_last && pruned.removed == 0 && !pruned.rewritten),
        marked: pending.contains_key(id),
    }
}

/// [`mark_with_expiry`] on a state document: a `first_turn_pending` that is not an object is
/// replaced by `{}` first, as [`mark_in`] does.
pub(crate) fn mark_in_with_expiry(
    record: &mut Record,
    id: &str,
    at: Timestamp,
    ttl_secs: f64,
) -> Option<Timestamp> {
    if record.object_mut(keys::FIRST_TURN_PENDING).is_none() {
        record.set_object(keys::FIRST_TURN_PENDING, Object::new());
    }
    let pending = record.object_mut(keys::FIRST_TURN_PENDING)?;
    mark_with_expiry(pending, id, at, ttl_secs)
}

#[cfg_attr(not(feature = "cli"), allow(dead_code))] // Used by the command line.
/// [`consume`] on a state document. True when the session's mark counted, and then the document
/// changed; a `first_turn_pending` that is not an object gives false and is left alone.
///
/// A legacy falsy value (`false`, `null`, `""`) is left in place for the reaper rather than taken:
/// the seed popped it in memory but never saved, so its file kept it too, and this way "true"
/// and "the document changed" are the same answer.
pub fn consume_in(record: &mut Record, id: &str) -> bool {
    let Some(pending) = record.object_mut(keys::FIRST_TURN_PENDING) else {
        return false;
    };
    let id = clip_session_id(id);
    if !pending.get(id).is_some_and(is_truthy) {
        return false;
    }
    consume(pending, id)
}

/// [`reap`] on a state document. A missing or non-object `first_turn_pending` is left alone. The
/// document changed exactly when the returned list of dropped ids is not empty.
pub fn reap_in(record: &mut Record, now: Timestamp, ttl_secs: f64) -> Vec<String> {
    match record.object_mut(keys::FIRST_TURN_PENDING) {
        Some(pending) => reap(pending, now, ttl_secs),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> Timestamp {
        timestamp::parse(text).unwrap()
    }

    fn object(value: Value) -> Object {
        value.as_object().unwrap().clone().into_iter().collect()
    }

    #[test]
    fn clips_by_characters_not_bytes() {
        let long = "é".repeat(200);
        assert_eq!(clip_session_id(&long).chars().count(), 128);
        assert_eq!(clip_session_id(&long).len(), 256);
        assert_eq!(clip_session_id("short"), "short");
        assert_eq!(clip_session_id(""), "");
    }

    #[test]
    fn ttl_conversion_rounds_like_timedelta_and_saturates() {
        assert_eq!(reaper_ttl(3600.0), Some(TimeDelta::hours(1)));
        assert_eq!(
            reaper_ttl(0.0000005),
            Some(TimeDelta::zero()),
            "half a microsecond rounds to even"
        );
        assert_eq!(reaper_ttl(0.0000015), Some(TimeDelta::microseconds(2)));
        assert_eq!(reaper_ttl(f64::INFINITY), None);
        assert_eq!(reaper_ttl(f64::NAN), None);
        assert!(reaper_ttl(f64::NEG_INFINITY).is_some());
    }

    #[test]
    fn huge_ttls_do_not_overflow() {
        let now = at("2026-04-27T12:00:00Z");
        let mut pending = object(json!({"a": "2026-04-27T11:00:00Z", "b": true}));
        assert_eq!(reap(&mut pending, now, 1e300), ["b"]);
        assert_eq!(reap(&mut pending, now, -1e300), ["a"]);
        let mut pending = object(json!({"a": "2026-04-27T11:00:00Z"}));
        assert_eq!(prune_stale(&mut pending, now, TimeDelta::MAX, 100), 0);
        assert_eq!(prune_stale(&mut pending, now, TimeDelta::MIN, 100), 1);
    }

    #[test]
    fn a_non_string_that_survives_is_stamped_with_the_epoch() {
        let now = at("1970-01-01T06:00:00Z");
        let mut pending = object(json!({"legacy": true}));
        assert_eq!(prune_stale(&mut pending, now, FIRST_TURN_TTL, 100), 0);
        assert_eq!(pending, object(json!({"legacy": "1970-01-01T00:00:00+00:00"})));
    }

    proptest::proptest! {
        /// The expiry the mark's prune tells is the one read afresh from the marks it left.
        #[test]
        fn the_expiry_a_mark_tells_is_the_one_read_afresh(
            marks in proptest::collection::vec((0usize..4, -200i64..200), 0..130),
            near_epoch in proptest::bool::ANY,
            ttl in proptest::prop_oneof![proptest::strategy::Just(3600.0), -1e12f64..1e12],
        ) {
            let now = if near_epoch { at("1970-01-01T06:00:00Z") } else { at("2026-04-27T12:00:00Z") };
            let mut pending = Object::new();
            for (i, (kind, minutes)) in marks.iter().enumerate() {
                let value = match kind {
                    0 => json!(timestamp::format(now + TimeDelta::minutes(*minutes * 10))),
                    1 => json!(true),
                    2 => json!("not a moment"),
                    _ => json!(timestamp::format(now - TimeDelta::minutes(*minutes))),
                };
                pending.insert(format!("s{i}"), value);
            }
            let mut afresh = pending.clone();
            mark(&mut afresh, "new", now);
            let told = mark_with_expiry(&mut pending, "new", now, ttl);
            proptest::prop_assert_eq!(&pending, &afresh);
            proptest::prop_assert_eq!(told, next_expiry(&afresh, ttl));
        }
    }

    #[test]
    fn open_reports_no_change_only_for_an_identical_re_mark() {
        let now = at("2026-04-27T12:00:00Z");
        let mut record = Record::new();
        assert!(!open_in(&mut record, "", now), "an empty id marks nothing");
        assert_eq!(record, Record::new());
        assert!(open_in(&mut record, "s1", now));
        assert!(!open_in(&mut record, "s1", now));
        assert!(open_in(&mut record, "s2", now));
        assert!(open_in(&mut record, "s1", now), "s1 moves to the end");
        let order: Vec<String> =
            record.object(keys::FIRST_TURN_PENDING).unwrap().keys().cloned().collect();
        assert_eq!(order, ["s2", "s1"]);
    }
}
