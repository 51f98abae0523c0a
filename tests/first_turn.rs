//! First-turn tracking against the seed project's acceptance cases (acceptance 12.1, 12.2, 12.3).
//!
//! Out of scope here: 12.3.4 (the startup and tick call sites) belongs to the engine's tests, and
//! 12.4 (recall against a memory store) has no counterpart in this product.

use chrono::TimeDelta;
use daemon_state::record::{Object, Record, keys};
use daemon_state::sessions::{
    self, FIRST_TURN_TTL, MAX_FIRST_TURN_ENTRIES, MAX_SESSION_ID_CHARS, REAPER_TTL_SECS,
};
use daemon_state::timestamp::{self, Timestamp};
use proptest::prelude::*;
use serde_json::{Value, json};

fn at(text: &str) -> Timestamp {
    timestamp::parse(text).expect("a test timestamp")
}

fn iso(moment: Timestamp) -> String {
    timestamp::format(moment)
}

fn object(value: Value) -> Object {
    match value {
        Value::Object(map) => map.into_iter().collect(),
        other => panic!("not an object: {other}"),
    }
}

fn record(value: Value) -> Record {
    match value {
        Value::Object(map) => Record::from_map(map),
        other => panic!("not an object: {other}"),
    }
}

/// The seed's `prune_stale_first_turn(state, ...)` over a whole state: nothing to prune unless
/// `first_turn_pending` is an object.
fn prune_state(state: &mut Record, now: Timestamp, ttl: TimeDelta, max: usize) -> usize {
    match state.object(keys::FIRST_TURN_PENDING) {
        Some(mut pending) => {
            let removed = sessions::prune_stale(&mut pending, now, ttl, max);
            state.set_object(keys::FIRST_TURN_PENDING, pending);
            removed
        }
        None => 0,
    }
}

#[track_caller]
fn check_prune(
    state: Value,
    now: Timestamp,
    ttl: TimeDelta,
    max: usize,
    removed: usize,
    after: Value,
) {
    let mut state = record(state);
    assert_eq!(prune_state(&mut state, now, ttl, max), removed);
    assert_eq!(Value::Object(state.into_map()), after);
}

#[test]
fn prune_stale_first_turn() {
    let now = at("2026-04-23T12:00:00Z");
    let ago = |minutes: i64| iso(now - TimeDelta::minutes(minutes));
    let ttl = FIRST_TURN_TTL;

    // acceptance 12.1.6: legacy booleans count as the epoch and all go.
    check_prune(
        json!({"first_turn_pending": {"sess-1": true, "sess-2": false, "sess-3": true}}),
        now,
        ttl,
        MAX_FIRST_TURN_ENTRIES,
        3,
        json!({"first_turn_pending": {}}),
    );
    // acceptance 12.1.7: the TTL keeps the entry 1 h old and drops the one 48 h old.
    check_prune(
        json!({"first_turn_pending": {"fresh": ago(60), "stale": ago(48 * 60)}}),
        now,
        ttl,
        MAX_FIRST_TURN_ENTRIES,
        1,
        json!({"first_turn_pending": {"fresh": ago(60)}}),
    );
    // acceptance 12.1.8: the cap keeps the three newest.
    let ten: serde_json::Map<String, Value> =
        (0..10).map(|i| (format!("sess-{i}"), json!(ago(i)))).collect();
    check_prune(
        json!({"first_turn_pending": ten}),
        now,
        ttl,
        3,
        7,
        json!({"first_turn_pending": {"sess-0": ago(0), "sess-1": ago(1), "sess-2": ago(2)}}),
    );
    // acceptance 12.1.9: empty or missing.
    check_prune(json!({}), now, ttl, MAX_FIRST_TURN_ENTRIES, 0, json!({}));
    let empty = json!({"first_turn_pending": {}});
    check_prune(empty.clone(), now, ttl, MAX_FIRST_TURN_ENTRIES, 0, empty);
    let null = json!({"first_turn_pending": null});
    check_prune(null.clone(), now, ttl, MAX_FIRST_TURN_ENTRIES, 0, null);
    // The TTL is strict: an entry exactly 24 h old stays.
    let edge = json!({"first_turn_pending": {"edge": ago(24 * 60)}});
    check_prune(edge.clone(), now, ttl, MAX_FIRST_TURN_ENTRIES, 0, edge);
}

#[test]
fn the_cap_keeps_the_most_recently_opened_on_equal_timestamps() {
    // (fix): the seed's stable sort kept the earliest of equal timestamps, which evicted the
    // session it had just opened. Here the newest opening survives.
    let now = at("2026-04-23T12:00:00Z");
    let mut pending = Object::new();
    for i in 0..MAX_FIRST_TURN_ENTRIES {
        sessions::mark(&mut pending, &format!("old-{i}"), now);
    }
    assert_eq!(sessions::mark(&mut pending, "newest", now), 1);
    assert_eq!(pending.len(), MAX_FIRST_TURN_ENTRIES);
    assert!(pending.contains_key("newest"));
    assert!(!pending.contains_key("old-0"), "the earliest opening goes");
    // Re-opening moves a session to the end, so it counts as the most recent opening.
    sessions::mark(&mut pending, "old-1", now);
    sessions::mark(&mut pending, "another", now);
    assert!(pending.contains_key("old-1"));
    assert!(!pending.contains_key("old-2"));
    assert_eq!(pending.keys().next_back().map(String::as_str), Some("another"));
}

#[test]
fn marks_from_the_future_do_not_evict_new_marks() {
    // (fix): 100 marks made while the clock said 2099, then the clock corrected. The seed ranked
    // them newest, so every new mark was evicted at once until 2099.
    let future = at("2099-01-01T00:00:00Z");
    let now = at("2026-04-23T12:00:00Z");
    let mut state = record(json!({}));
    for i in 0..MAX_FIRST_TURN_ENTRIES {
        sessions::open_in(&mut state, &format!("ahead-{i}"), future + TimeDelta::seconds(i as i64));
    }
    let before = state.clone();
    let opened = sessions::mark_in(&mut state, "today", now);
    assert_eq!(opened, sessions::Opened { changed: true, marked: true });
    let pending = state.get(keys::FIRST_TURN_PENDING).and_then(Value::as_object).unwrap();
    assert!(pending.contains_key("today"));
    assert_eq!(pending.len(), MAX_FIRST_TURN_ENTRIES);
    assert!(!pending.contains_key("ahead-0"), "the earliest opening goes");
    assert!(sessions::consume_in(&mut state, "today"), "its first recall counts");

    // The command says "marked" only for a mark that is in the file afterwards.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.json");
    std::fs::write(&file, before.to_vec()).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_daemon-state"))
        .env_remove("DAEMON_STATE_FILE")
        .env_remove("DAEMON_STATE_TZ")
        .arg("--state-file")
        .arg(&file)
        .args(["--now", "2026-04-23T12:00:00Z", "sessions", "open", "today"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let said = String::from_utf8(output.stdout).unwrap();
    let on_disk = Record::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let kept = on_disk.get(keys::FIRST_TURN_PENDING).and_then(Value::as_object).unwrap();
    assert_eq!(said, "first turn marked for today\n");
    assert!(kept.contains_key("today"), "{said}");
}

#[test]
fn mark_clips_stamps_and_ignores_empty_ids() {
    let now = at("2026-04-19T12:00:00.250000Z");
    let mut state = record(json!({"first_turn_pending": "corrupt", "other": 1}));
    // (fix): the seed stored the empty id "".
    assert!(!sessions::open_in(&mut state, "", now));
    assert_eq!(state.get(keys::FIRST_TURN_PENDING), Some(&json!("corrupt")));
    let long = "a".repeat(1000);
    assert!(sessions::open_in(&mut state, &long, now));
    let clipped = "a".repeat(MAX_SESSION_ID_CHARS);
    assert_eq!(
        Value::Object(state.clone().into_map()),
        json!({"first_turn_pending": {clipped.clone(): "2026-04-19T12:00:00.250000+00:00"}, "other": 1})
    );
    assert!(sessions::consume_in(&mut state, &long), "the same long id finds its clipped mark");
    assert!(!sessions::consume_in(&mut state, &clipped));
}

#[track_caller]
fn check_consume(pending: Value, id: &str, expected: bool, left: Value) {
    let mut state = record(json!({"first_turn_pending": pending}));
    assert_eq!(sessions::consume_in(&mut state, id), expected, "consume {id}");
    assert_eq!(state.get(keys::FIRST_TURN_PENDING), Some(&left));
}

#[test]
fn consume_counts_a_mark_exactly_once() {
    check_consume(json!({"s1": "2026-04-19T12:00:00+00:00"}), "s1", true, json!({}));
    check_consume(json!({"s1": true, "s2": 1}), "s1", true, json!({"s2": 1}));
    check_consume(json!({"s1": true}), "s2", false, json!({"s1": true}));
    // Falsy legacy values do not count and stay for the reaper, as they stayed in the seed's file.
    for falsy in [json!(false), json!(null), json!(""), json!(0)] {
        check_consume(json!({"s1": falsy.clone()}), "s1", false, json!({"s1": falsy}));
    }
    let mut state = record(json!({"first_turn_pending": {"s1": true}}));
    assert!(sessions::consume_in(&mut state, "s1"));
    assert!(!sessions::consume_in(&mut state, "s1"), "exactly once");
    let mut state = record(json!({"first_turn_pending": ["s1"]}));
    assert!(!sessions::consume_in(&mut state, "s1"));
    assert_eq!(state.get(keys::FIRST_TURN_PENDING), Some(&json!(["s1"])));
    // The map-level consume pops whatever is there and reports its truth.
    let mut pending = object(json!({"s1": false}));
    assert!(!sessions::consume(&mut pending, "s1"));
    assert!(pending.is_empty());
}

#[track_caller]
fn check_reap(state: Value, now: Timestamp, ttl_secs: f64, dropped: &[&str], after: Value) {
    let mut state = record(state);
    assert_eq!(sessions::reap_in(&mut state, now, ttl_secs), dropped);
    assert_eq!(Value::Object(state.into_map()), after);
}

fn drain_now() -> Timestamp {
    at("2026-04-27T12:00:00Z")
}

fn secs_ago(secs: i64) -> String {
    iso(drain_now() - TimeDelta::seconds(secs))
}

#[test]
fn reaper() {
    let now = drain_now();
    // acceptance 12.2.1, acceptance 12.3.3: the default TTL and the helper are public.
    assert_eq!(REAPER_TTL_SECS, 3600.0);
    let _: fn(&mut Object, Timestamp, f64) -> Vec<String> = sessions::reap;

    // acceptance 12.2.2
    check_reap(
        json!({"first_turn_pending": {"sess-fresh": secs_ago(1800), "sess-stale": secs_ago(7200)}}),
        now,
        3600.0,
        &["sess-stale"],
        json!({"first_turn_pending": {"sess-fresh": secs_ago(1800)}}),
    );
    // acceptance 12.2.3
    check_reap(
        json!({"first_turn_pending": {"sess-1": true, "sess-2": false, "sess-3": null}}),
        now,
        REAPER_TTL_SECS,
        &["sess-1", "sess-2", "sess-3"],
        json!({"first_turn_pending": {}}),
    );
    // acceptance 12.2.4
    check_reap(
        json!({"first_turn_pending": {"sess-bad": "not-an-iso-string-2026-99-99", "sess-good": secs_ago(60)}}),
        now,
        REAPER_TTL_SECS,
        &["sess-bad"],
        json!({"first_turn_pending": {"sess-good": secs_ago(60)}}),
    );
    // acceptance 12.2.5: a naive timestamp is UTC.
    check_reap(
        json!({"first_turn_pending": {"sess-naive": "2026-04-27T10:00:00"}}),
        now,
        3600.0,
        &["sess-naive"],
        json!({"first_turn_pending": {}}),
    );
    // acceptance 12.2.6: empty or missing; nothing is added.
    check_reap(json!({}), now, REAPER_TTL_SECS, &[], json!({}));
    let empty = json!({"first_turn_pending": {}});
    check_reap(empty.clone(), now, REAPER_TTL_SECS, &[], empty);
    let null = json!({"first_turn_pending": null});
    check_reap(null.clone(), now, REAPER_TTL_SECS, &[], null);
    // acceptance 12.2.7: other keys are untouched.
    check_reap(
        json!({"unrelated_key": "unrelated_value", "fsm_state": "WAKE", "first_turn_pending": {"sess-stale": secs_ago(7200)}}),
        now,
        REAPER_TTL_SECS,
        &["sess-stale"],
        json!({"unrelated_key": "unrelated_value", "fsm_state": "WAKE", "first_turn_pending": {}}),
    );
    // an entry exactly one TTL old stays (the seed's code, not its docstring); survivors
    // keep their exact text, offset and all.
    let kept =
        json!({"first_turn_pending": {"edge": secs_ago(3600), "z": "2026-04-27T13:30:00+02:00"}});
    check_reap(kept.clone(), now, REAPER_TTL_SECS, &[], kept);
}

#[test]
fn reaper_wire_up_shapes() {
    let now = drain_now();
    let stale: Vec<String> = (0..5).map(|i| format!("sess-stale-{i}")).collect();
    let fresh: Vec<String> = (0..5).map(|i| format!("sess-fresh-{i}")).collect();
    let mut pending = Object::new();
    for (s, f) in stale.iter().zip(&fresh) {
        pending.insert(s.clone(), json!(secs_ago(7200)));
        pending.insert(f.clone(), json!(secs_ago(30)));
    }

    // acceptance 12.3.1
    let mut both = pending.clone();
    let mut dropped = sessions::reap(&mut both, now, REAPER_TTL_SECS);
    dropped.sort();
    assert_eq!(dropped, stale);
    assert_eq!(both.keys().cloned().collect::<Vec<_>>(), fresh);

    // acceptance 12.3.2
    let mut only_fresh = both.clone();
    assert!(sessions::reap(&mut only_fresh, now, REAPER_TTL_SECS).is_empty());
    assert_eq!(only_fresh, both);
}

#[test]
fn next_expiry_is_the_first_moment_the_reaper_drops_something() {
    let now = drain_now();
    let pending =
        object(json!({"a": secs_ago(600), "b": secs_ago(1200), "c": "2026-04-27T12:00:00Z"}));
    let due = sessions::next_expiry(&pending, REAPER_TTL_SECS).expect("something expires");
    assert_eq!(
        due,
        now - TimeDelta::seconds(1200) + TimeDelta::hours(1) + TimeDelta::microseconds(1)
    );
    for (moment, drops) in [(due - TimeDelta::microseconds(1), false), (due, true)] {
        let mut copy = pending.clone();
        assert_eq!(!sessions::reap(&mut copy, moment, REAPER_TTL_SECS).is_empty(), drops);
    }
    assert_eq!(sessions::next_expiry(&Object::new(), REAPER_TTL_SECS), None);
    assert_eq!(sessions::next_expiry(&pending, f64::INFINITY), None);
    let legacy = object(json!({"a": secs_ago(10), "b": true}));
    assert_eq!(sessions::next_expiry(&legacy, REAPER_TTL_SECS), Some(Timestamp::MIN_UTC));
}

fn stored_value() -> impl Strategy<Value = Value> {
    let seconds = -200_000i64..200_000;
    prop_oneof![
        4 => (seconds.clone(), 0u32..1_000_000).prop_map(|(s, us)| {
            json!(iso(drain_now() + TimeDelta::seconds(s) + TimeDelta::microseconds(us.into())))
        }),
        1 => seconds.prop_map(|s| json!(timestamp::format(drain_now() + TimeDelta::seconds(s)).replace("+00:00", "+05:30"))),
        1 => Just(json!(true)),
        1 => Just(json!(null)),
        1 => "[a-z0-9:-]{0,12}".prop_map(Value::String),
    ]
}

proptest! {
    #[test]
    fn reap_keeps_only_young_entries_verbatim_and_in_order(
        entries in proptest::collection::vec(stored_value(), 0..40),
        ttl_secs in 0.0f64..100_000.0,
    ) {
        let now = drain_now();
        let pending: Object =
            entries.into_iter().enumerate().map(|(i, v)| (format!("s{i}"), v)).collect();
        let mut kept = pending.clone();
        let dropped = sessions::reap(&mut kept, now, ttl_secs);
        let ttl = TimeDelta::microseconds((ttl_secs * 1e6).round_ties_even() as i64);
        for (id, value) in &kept {
            prop_assert_eq!(Some(value), pending.get(id), "kept verbatim");
            let moment = value.as_str().and_then(timestamp::parse);
            prop_assert!(moment.is_some_and(|m| m >= now - ttl), "{} is older than the TTL", id);
        }
        let mut survivors = pending.keys().filter(|id| !dropped.contains(id));
        prop_assert!(kept.keys().eq(&mut survivors), "survivors keep their order");
        prop_assert_eq!(dropped.len() + kept.len(), pending.len());
    }

    #[test]
    fn prune_stale_keeps_the_newest_within_the_cap(
        entries in proptest::collection::vec(stored_value(), 0..40),
        max in 0usize..30,
    ) {
        let now = drain_now();
        let pending: Object =
            entries.into_iter().enumerate().map(|(i, v)| (format!("s{i}"), v)).collect();
        let mut kept = pending.clone();
        let removed = sessions::prune_stale(&mut kept, now, FIRST_TURN_TTL, max);
        prop_assert_eq!(removed + kept.len(), pending.len());
        prop_assert!(kept.len() <= max);
        // (fix) A mark dated after `now` ranks as `now` for the cap.
        let age = |v: &Value| {
            v.as_str().and_then(timestamp::parse).unwrap_or(Timestamp::UNIX_EPOCH).min(now)
        };
        let oldest_kept = kept.values().map(age).min();
        for (id, value) in &pending {
            if !kept.contains_key(id) {
                let moment = age(value);
                prop_assert!(
                    moment < now - FIRST_TURN_TTL || oldest_kept.is_some_and(|o| moment <= o) || max == 0,
                    "{} was dropped although newer than a survivor", id
                );
            }
        }
    }

    #[test]
    fn timestamps_round_trip(micros in -2_000_000_000_000_000i64..4_000_000_000_000_000) {
        let moment = Timestamp::from_timestamp_micros(micros).expect("in range");
        prop_assert_eq!(timestamp::parse(&timestamp::format(moment)), Some(moment));
    }
}
