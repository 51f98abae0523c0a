//! The quiet window against the seed project's acceptance cases (acceptance 12.5), the
//! in-window rule and the next window start across zone changes, and the session-start history.

use chrono::{NaiveDate, NaiveDateTime, TimeDelta, TimeZone};
use chrono_tz::Tz;
use daemon_state::engine::Engine;
use daemon_state::event::{Event, EventKind, Settings};
use daemon_state::quiet_window::{
    self, MAX_SESSION_STARTS, QuietWindow, SessionStarts, bucket_of, contains, idle_long_enough,
    learn, next_window_start, should_relearn,
};
use daemon_state::record::{Record, keys};
use daemon_state::timestamp::{self, Timestamp};
use proptest::prelude::*;
use serde_json::{Value, json};

fn zone(name: &str) -> Tz {
    name.parse().unwrap_or_else(|_| panic!("unknown zone {name}"))
}

fn at(text: &str) -> Timestamp {
    timestamp::parse(text).expect("a test timestamp")
}

/// `day_start + days + hours + minutes` as a local wall clock in `tz`, converted to UTC. The
/// arithmetic is on the wall clock, so hours past 24 roll over into the next local day.
fn local(tz: Tz, day_start: NaiveDate, days: i64, hours: i64, minutes: i64) -> Timestamp {
    let wall: NaiveDateTime = day_start.and_hms_opt(0, 0, 0).expect("midnight")
        + TimeDelta::days(days)
        + TimeDelta::hours(hours)
        + TimeDelta::minutes(minutes);
    tz.from_local_datetime(&wall)
        .earliest()
        .unwrap_or_else(|| panic!("{wall} does not exist in {tz}"))
        .to_utc()
}

/// The fixture events of 12.5: on each of `days`, at each of `hours`, `per_hour` starts five
/// minutes apart from the full hour.
fn events(
    tz: Tz,
    day_start: NaiveDate,
    days: &[i64],
    hours: &[i64],
    per_hour: i64,
) -> Vec<Timestamp> {
    let mut out = Vec::new();
    for &d in days {
        for &h in hours {
            for s in 0..per_hour {
                out.push(local(tz, day_start, d, h, 5 * s));
            }
        }
    }
    out
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a date")
}

fn range(from: i64, to_inclusive: i64) -> Vec<i64> {
    (from..=to_inclusive).collect()
}

/// Checks the pure function, then the engine: the same starts sent as `SessionStarted` events with
/// an injected clock, in the configured zone, and one tick at `now` that relearns.
#[track_caller]
fn check_learn(starts: &[Timestamp], now: Timestamp, tz: Tz, expected: Option<(u8, u8)>) {
    let learned = learn(starts, now, tz).map(<(u8, u8)>::from);
    assert_eq!(learned, expected);

    let mut engine = Engine::in_memory();
    let mut sorted = starts.to_vec();
    sorted.sort();
    let settings = Settings { rem_cycle_count: None, timezone: Some(tz.name().to_owned()) };
    let _ = engine.handle(Event::new(sorted[0], EventKind::Configure(settings))).unwrap();
    for &start in &sorted {
        let _ = engine
            .handle(Event::new(start, EventKind::SessionStarted { session_id: None }))
            .unwrap();
    }
    let _ = engine.handle(Event::new(now, EventKind::Tick { store_empty: false })).unwrap();
    let view = engine.data().view();
    assert_eq!(view.window.map(<(u8, u8)>::from), expected, "through the engine");
    assert_eq!(view.learned_at, Some(now));
}

#[test]
fn learning() {
    let april = date(2026, 4, 1);
    let week = range(0, 6);

    // acceptance 12.5.1: western 9-5 gives 17:30 to 01:30.
    let ny = zone("America/New_York");
    let starts = events(ny, april, &week, &range(9, 17), 3);
    assert_eq!(starts.len(), 189);
    let now = local(ny, april, 7, 8, 0);
    assert_eq!(now, at("2026-04-08T12:00:00Z"));
    check_learn(&starts, now, ny, Some((35, 16)));

    // acceptance 12.5.2: nocturnal, 22:00 to 04:10 in Moscow, gives 04:30 to 12:30.
    let moscow = zone("Europe/Moscow");
    let starts = events(moscow, april, &week, &range(22, 28), 3);
    assert_eq!(starts.len(), 147);
    check_learn(&starts, local(moscow, april, 7, 12, 0), moscow, Some((9, 16)));

    // acceptance 12.5.3: a shift worker; two quiet runs of 9 tie and the earlier one wins.
    let utc = zone("UTC");
    let mut starts = events(utc, april, &[0, 1, 4, 5], &range(8, 15), 2);
    starts.extend(events(utc, april, &[2, 3, 6], &range(20, 27), 2));
    check_learn(&starts, local(utc, april, 7, 0, 0), utc, Some((7, 9)));

    // acceptance 12.5.4: a new user with two days of data gets nothing.
    let starts = events(utc, april, &[0, 1], &range(9, 13), 3);
    check_learn(&starts, local(utc, april, 2, 14, 0), utc, None);

    // acceptance 12.5.5: around the clock. Only the :00 buckets hold starts, so every quiet run is
    // a single :30 bucket, shorter than 6.
    let starts = events(utc, april, &week, &range(0, 23), 3);
    check_learn(&starts, local(utc, april, 7, 0, 0), utc, None);

    // acceptance 12.5.6: the week spans the change to daylight saving time on 2026-03-08.
    let march = date(2026, 3, 5);
    let starts = events(ny, march, &week, &[9, 10, 12, 14, 17, 20], 2);
    check_learn(&starts, local(ny, march, 7, 0, 0), ny, Some((41, 16)));
}

#[test]
fn learning_counts_only_the_last_week_inclusive() {
    let utc = zone("UTC");
    let april = date(2026, 4, 1);
    let now = local(utc, april, 7, 0, 0);
    let mut starts = events(utc, april, &range(0, 6), &range(9, 17), 3);
    let expected = learn(&starts, now, utc);
    assert!(expected.is_some());
    // Starts after now or before the week do not count, whatever their bucket.
    starts.extend(events(utc, april, &[7, -1, -2], &range(0, 23), 3));
    assert_eq!(learn(&starts, now, utc), expected);
    // Exactly seven days ago counts: it is the first of the seven dates here.
    let edge = [now - TimeDelta::days(7)];
    let dates: Vec<Timestamp> = (1..7).map(|d| now - TimeDelta::days(d)).chain(edge).collect();
    assert!(learn(&dates, now, utc).is_some());
    assert!(learn(&dates[..6], now, utc).is_none());
}

#[track_caller]
fn check_edge(rule: fn(Option<Timestamp>, Timestamp) -> bool, ago: Option<i64>, expected: bool) {
    let now = at("2026-04-18T12:00:00Z");
    assert_eq!(
        rule(ago.map(|hours| now - TimeDelta::hours(hours)), now),
        expected,
        "{ago:?} h ago"
    );
}

#[test]
fn relearn_and_bootstrap_rules() {
    // acceptance 12.5.7
    check_edge(should_relearn, None, true);
    check_edge(should_relearn, Some(25), true);
    check_edge(should_relearn, Some(24), true);
    check_edge(should_relearn, Some(12), false);
    // acceptance 12.5.8
    check_edge(idle_long_enough, None, true);
    check_edge(idle_long_enough, Some(3), true);
    check_edge(idle_long_enough, Some(2), true);
    check_edge(idle_long_enough, Some(1), false);
}

fn window(start: u8, duration: u8) -> QuietWindow {
    QuietWindow::try_from((start, duration)).expect("a valid window")
}

#[test]
fn windows_contain_their_buckets() {
    let inside = |w: QuietWindow| (0..48).filter(|&b| contains(w, b)).collect::<Vec<u8>>();
    assert_eq!(inside(window(10, 3)), [10, 11, 12]);
    assert_eq!(inside(window(46, 4)), [0, 1, 46, 47]);
    assert_eq!(inside(window(32, 16)), (32..48).collect::<Vec<_>>(), "ends at midnight");
    assert_eq!(inside(window(5, 48)).len(), 48, "the whole day");
    let utc = zone("UTC");
    assert_eq!(bucket_of(at("2026-04-18T00:00:00Z"), utc), 0);
    assert_eq!(bucket_of(at("2026-04-18T17:29:59.999999Z"), utc), 34);
    assert_eq!(bucket_of(at("2026-04-18T17:30:00Z"), utc), 35);
    assert_eq!(bucket_of(at("2026-04-18T23:59:59Z"), utc), 47);
    assert_eq!(bucket_of(at("2026-04-18T12:00:00Z"), zone("Asia/Kathmandu")), 35, "17:45 local");
}

#[test]
fn windows_are_stored_as_pairs() {
    let w = window(44, 16);
    assert_eq!(w.to_value(), json!([44, 16]));
    assert_eq!(serde_json::to_value(w).expect("serializable"), json!([44, 16]));
    assert_eq!(serde_json::from_value::<QuietWindow>(json!([44, 16])).expect("valid"), w);
    assert!(serde_json::from_value::<QuietWindow>(json!([48, 16])).is_err());
    assert_eq!(QuietWindow::from_value(&json!([44, 16])), Some(w));
    let malformed = [
        json!(null),
        json!([44]),
        json!([44, 16, 1]),
        json!([44.0, 16]),
        json!(["44", 16]),
        json!([48, 1]),
        json!([0, 0]),
        json!([0, 49]),
        json!([-1, 6]),
        json!([300, 6]),
        json!({"start": 44, "duration": 16}),
    ];
    for value in malformed {
        assert_eq!(QuietWindow::from_value(&value), None, "{value}");
    }
}

#[track_caller]
fn check_next(w: QuietWindow, now: &str, tz: &str, expected: &str) {
    assert_eq!(
        next_window_start(w, at(now), zone(tz)),
        Some(at(expected)),
        "{w:?} from {now} in {tz}"
    );
}

#[test]
fn next_window_start_across_zone_changes() {
    // Inside already: now itself.
    check_next(window(35, 16), "2026-04-18T22:10:00.5Z", "UTC", "2026-04-18T22:10:00.5Z");
    // Later today, and past midnight.
    check_next(window(35, 16), "2026-04-18T09:10:00Z", "UTC", "2026-04-18T17:30:00Z");
    check_next(window(2, 4), "2026-04-18T09:10:00Z", "UTC", "2026-04-19T01:00:00Z");
    // New York springs forward at 02:00 EST to 03:00 EDT: 02:30 does not exist that night, so a
    // window from 02:30 opens at 03:00 EDT.
    check_next(window(5, 4), "2026-03-08T06:45:00Z", "America/New_York", "2026-03-08T07:00:00Z");
    // The next night it opens at 02:30 EDT.
    check_next(window(5, 4), "2026-03-08T12:00:00Z", "America/New_York", "2026-03-09T06:30:00Z");
    // A window from 01:00 on the night New York falls back opens at the first 01:00 (EDT).
    check_next(window(2, 1), "2026-11-01T04:50:00Z", "America/New_York", "2026-11-01T05:00:00Z");
    // Inside the first 01:00-01:30 already; from 01:45 EDT the repeated 01:00 EST is next.
    check_next(window(2, 1), "2026-11-01T05:20:00Z", "America/New_York", "2026-11-01T05:20:00Z");
    check_next(window(2, 1), "2026-11-01T05:45:00Z", "America/New_York", "2026-11-01T06:00:00Z");
    // Offsets of 45 minutes: buckets start at :15 and :45 UTC.
    check_next(window(44, 8), "2026-04-18T12:00:00Z", "Asia/Kathmandu", "2026-04-18T16:15:00Z");
    check_next(window(44, 8), "2026-04-18T12:00:00Z", "Australia/Eucla", "2026-04-18T13:15:00Z");
    // Chatham (+12:45 / +13:45) and Lord Howe, whose daylight saving shifts by 30 minutes: on
    // 2026-10-04 02:00 becomes 02:30 there.
    check_next(window(10, 6), "2026-04-18T00:00:00Z", "Pacific/Chatham", "2026-04-18T16:15:00Z");
    check_next(window(4, 2), "2026-10-03T15:20:00Z", "Australia/Lord_Howe", "2026-10-03T15:30:00Z");
    // 02:00-02:30 does not exist that night; the next one is at +11:00.
    check_next(window(4, 1), "2026-10-03T15:20:00Z", "Australia/Lord_Howe", "2026-10-04T15:00:00Z");
}

/// The first whole UTC minute at or after `now` (or `now` itself) whose bucket is in the window,
/// found by brute force. Exact for today's zones, whose offsets and changes fall on whole minutes.
fn next_by_minutes(w: QuietWindow, now: Timestamp, tz: Tz) -> Option<Timestamp> {
    if contains(w, bucket_of(now, tz)) {
        return Some(now);
    }
    let whole = now.timestamp().div_euclid(60) * 60;
    let first = Timestamp::from_timestamp(whole, 0)? + TimeDelta::minutes(1);
    (0..4 * 24 * 60).map(|m| first + TimeDelta::minutes(m)).find(|&t| contains(w, bucket_of(t, tz)))
}

const ZONES: [&str; 9] = [
    "UTC",
    "America/New_York",
    "Europe/Moscow",
    "Asia/Kathmandu",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/St_Johns",
    "Europe/London",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn next_window_start_matches_brute_force(
        seconds in 1_767_225_600i64..1_830_297_600,
        nanos in 0u32..1_000_000_000,
        start in 0u8..48,
        duration in 1u8..=16,
        zone_index in 0usize..ZONES.len(),
    ) {
        let now = Timestamp::from_timestamp(seconds, nanos).expect("in range");
        let tz = zone(ZONES[zone_index]);
        let w = window(start, duration);
        prop_assert_eq!(next_window_start(w, now, tz), next_by_minutes(w, now, tz));
    }

    #[test]
    fn session_starts_round_trip(offsets in proptest::collection::vec(-10_000_000_000_000i64..10_000_000_000_000, 0..64)) {
        let base = at("2026-04-18T12:00:00Z");
        let mut history = SessionStarts::new();
        for offset in &offsets {
            history.push(base + TimeDelta::microseconds(*offset));
        }
        prop_assert!(history.as_slice().is_sorted());
        prop_assert_eq!(SessionStarts::decode(&history.encode()), history);
    }
}

/// Ten starts an hour at each of `hours` local, six minutes apart at uneven microseconds, on each
/// of `days`, stored in a history pruned at `now`.
fn history_of(tz: Tz, days: i64, hours: &[i64], now: Timestamp) -> (Vec<Timestamp>, SessionStarts) {
    let april = date(2026, 4, 1);
    let mut starts = Vec::new();
    for d in 0..days {
        for &h in hours {
            for s in 0..10 {
                let jitter = TimeDelta::microseconds(d * 7919 + h * 131 + s * 104_729);
                starts.push(local(tz, april, d, h, 6 * s) + jitter);
            }
        }
    }
    let mut history = SessionStarts::new();
    for &start in &starts {
        history.push(start);
    }
    history.prune(now);
    (starts, history)
}

#[test]
fn a_week_of_starts_stays_small_and_learns_the_same() {
    let ny = zone("America/New_York");
    let april = date(2026, 4, 1);
    let now = local(ny, april, 7, 0, 0);
    // A full week at ten an hour, day and night.
    let (starts, history) = history_of(ny, 7, &range(0, 23), now);
    assert_eq!(history.len(), 7 * 24 * 10);
    let stored = history.to_value();
    let size = stored.as_str().expect("a string").len();
    assert!(size < 20 * 1024, "{size} bytes");
    let read = SessionStarts::from_value(&stored);
    assert_eq!(read, history);
    assert_eq!(learn(read.as_slice(), now, ny), learn(&starts, now, ny));
    // Eight days of a waking-hours pattern, which learns a window.
    let now = local(ny, april, 8, 0, 0);
    let (starts, history) = history_of(ny, 8, &range(8, 22), now);
    let read = SessionStarts::from_value(&history.to_value());
    let learned = learn(&starts, now, ny);
    assert_eq!(learned.map(<(u8, u8)>::from), Some((46, 16)));
    assert_eq!(learn(read.as_slice(), now, ny), learned);
}

#[test]
fn session_history_is_bounded_and_lenient() {
    let now = at("2026-04-18T12:00:00Z");
    let mut history = SessionStarts::new();
    // Out of order pushes land in time order; a nanosecond part is cut.
    history.push(now);
    history.push(now - TimeDelta::hours(1) + TimeDelta::nanoseconds(1500));
    assert_eq!(history.as_slice(), [now - TimeDelta::hours(1) + TimeDelta::microseconds(1), now]);
    // Older than eight days goes; exactly eight days stays.
    let mut history = SessionStarts::new();
    for days in [9, 8, 1] {
        history.push(now - TimeDelta::days(days));
    }
    assert_eq!(history.prune(now), 1);
    assert_eq!(history.as_slice(), [now - TimeDelta::days(8), now - TimeDelta::days(1)]);
    // The cap keeps the newest.
    let mut history = SessionStarts::new();
    for i in 0..(MAX_SESSION_STARTS as i64 + 10) {
        history.push(now + TimeDelta::seconds(i));
    }
    assert_eq!(history.len(), MAX_SESSION_STARTS);
    assert_eq!(history.as_slice()[0], now + TimeDelta::seconds(10));
    // Garbage reads as empty.
    for garbage in ["x", "1 2 y", "9223372036854775807 1", "1e5", "99999999999999999999"] {
        assert!(SessionStarts::decode(garbage).is_empty(), "{garbage}");
    }
    for value in [json!(null), json!(5), json!(["1"])] {
        assert!(SessionStarts::from_value(&value).is_empty());
    }
    assert!(SessionStarts::decode("").is_empty());
    // Kept in the state document under its key.
    let mut record = Record::new();
    assert!(SessionStarts::read(&record).is_empty());
    let mut history = SessionStarts::new();
    history.push(at("1970-01-01T00:00:01Z"));
    history.push(at("1970-01-01T00:00:03.5Z"));
    history.write(&mut record);
    assert_eq!(record.get(keys::SESSION_STARTS), Some(&Value::from("1000000 2500000")));
    assert_eq!(SessionStarts::read(&record), history);
    assert_eq!(quiet_window::BUCKETS, 48);
}
