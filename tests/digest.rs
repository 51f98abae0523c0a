//! The morning digest against the seed project's acceptance cases (acceptance 12.1.3-5, 12.7,
//! 12.8 and appendix A), through `digest::take` on a state document and the recall's views.
//!
//! Out of scope here: 12.7.3 (transport parity) has no counterpart in this product; the on-disk
//! halves of 12.1.3 and 12.8.4 (the document is persisted) belong to the store's tests.

use chrono::TimeDelta;
use daemon_state::digest::{self, RemResult, SHOW_THRESHOLD};
use daemon_state::record::{Record, keys};
use daemon_state::timestamp::{self, Timestamp};
use serde_json::{Value, json};

fn now() -> Timestamp {
    timestamp::parse("2026-04-18T20:00:00Z").expect("a test timestamp")
}

fn hours_ago(hours: i64) -> String {
    timestamp::format(now() - TimeDelta::hours(hours))
}

fn record(value: Value) -> Record {
    match value {
        Value::Object(map) => Record::from_map(map),
        other => panic!("not an object: {other}"),
    }
}

fn document(record: &Record) -> Value {
    Value::Object(record.to_map())
}

/// Equal including key order: compares the serialized text.
#[track_caller]
fn assert_same(actual: &Value, expected: &Value) {
    assert_eq!(actual.to_string(), expected.to_string());
}

/// The full digest of 12.7.2 and 12.8.
/// An ordered object as a value.
fn object(object: daemon_state::record::Object) -> Value {
    Value::Object(object.into_iter().collect())
}

fn full_digest() -> Value {
    json!({
        "rem_cycles_completed": 4,
        "episodes_processed": 10,
        "schemas_induced_tier0": 3,
        "claude_call_used": true,
        "quota_used_pct": 0.003,
        "main_insight_text": "today's unifying insight",
        "sigma_observed": 1.2,
        "s5_drift_alerts": [],
        "daemon_uptime_hours": 8,
        "timed_out_cycles": 0,
    })
}

fn zeroed() -> Value {
    json!({
        "rem_cycles_completed": 0,
        "episodes_processed": 0,
        "schemas_induced_tier0": 0,
        "claude_call_used": false,
        "quota_used_pct": 0.0,
        "main_insight_text": null,
        "sigma_observed": null,
        "s5_drift_alerts": [],
        "daemon_uptime_hours": 0,
        "timed_out_cycles": 0,
    })
}

/// Runs the gate at `now`; checks what it returns and the whole document afterwards.
#[track_caller]
fn check_take(before: Value, now: Timestamp, taken: Option<Value>, after: Value) {
    let mut state = record(before);
    assert_eq!(digest::take(&mut state, now).map(|d| d.to_value()), taken);
    assert_same(&document(&state), &after);
}

#[test]
fn the_gate() {
    assert_eq!(SHOW_THRESHOLD, TimeDelta::hours(18));
    let stamp = timestamp::format(now());
    assert_eq!(stamp, "2026-04-18T20:00:00+00:00");
    let after_threshold = json!({"cycles": 4, "insight": "after-threshold"});
    let too_early = json!({"cycles": 4, "insight": "too-early"});

    // acceptance 12.1.3
    check_take(
        json!({"last_digest_shown_at": hours_ago(20), "pending_digest": after_threshold.clone()}),
        now(),
        Some(after_threshold.clone()),
        json!({"last_digest_shown_at": stamp}),
    );
    // acceptance 12.1.4
    let withheld = json!({"last_digest_shown_at": hours_ago(4), "pending_digest": too_early});
    check_take(withheld.clone(), now(), None, withheld);
    // acceptance 12.1.5
    check_take(json!({}), now(), None, json!({}));

    // exactly 18 h delivers; other keys keep their order; the stamp is appended when new.
    check_take(
        json!({"a": 1, "pending_digest": {"x": 1}, "last_digest_shown_at": hours_ago(18), "z": 2}),
        now(),
        Some(json!({"x": 1})),
        json!({"a": 1, "last_digest_shown_at": stamp, "z": 2}),
    );
    let just_under = now() - SHOW_THRESHOLD + TimeDelta::microseconds(1);
    let early =
        json!({"last_digest_shown_at": timestamp::format(just_under), "pending_digest": {"x": 1}});
    check_take(early.clone(), now(), None, early);
    check_take(
        json!({"pending_digest": {"x": 1}, "q": null}),
        now(),
        Some(json!({"x": 1})),
        json!({"q": null, "last_digest_shown_at": stamp}),
    );
    // A malformed or non-string last shown counts as never shown.
    for last in
        [json!("yesterday"), json!(""), json!(42), json!(["2026-04-18T19:00:00Z"]), json!(null)]
    {
        check_take(
            json!({"last_digest_shown_at": last, "pending_digest": {"x": 1}}),
            now(),
            Some(json!({"x": 1})),
            json!({"last_digest_shown_at": stamp}),
        );
    }
    // A digest Python holds false gives nothing and writes nothing.
    for empty in [json!(null), json!({}), json!(false), json!(0), json!(""), json!([])] {
        let state = json!({"pending_digest": empty});
        check_take(state.clone(), now(), None, state);
    }
    // A truthy digest that is not an object is still delivered, as the seed delivered it.
    check_take(
        json!({"pending_digest": "corrupt"}),
        now(),
        Some(json!("corrupt")),
        json!({"last_digest_shown_at": stamp}),
    );
}

#[test]
fn a_last_shown_in_the_future_does_not_block() {
    // (fix): the seed withheld the digest until the clock caught up with a future stamp.
    let future = timestamp::format(now() + TimeDelta::hours(2));
    check_take(
        json!({"last_digest_shown_at": future, "pending_digest": {"x": 1}}),
        now(),
        Some(json!({"x": 1})),
        json!({"last_digest_shown_at": timestamp::format(now())}),
    );
}

/// What a recall shows as `overnight_digest` for a state: the gate's digest through the view.
fn overnight(state: &mut Record) -> Value {
    let taken = digest::take(state, now()).map_or(Value::Null, |d| d.to_value());
    object(digest::overnight_view(&taken))
}

#[test]
fn the_overnight_digest() {
    // acceptance 12.7.1, acceptance 12.8.3: nothing saved gives the zeroed default.
    assert_same(&object(digest::zeroed_overnight_digest()), &zeroed());
    assert_eq!(overnight(&mut Record::new()), zeroed());

    // acceptance 12.7.2, acceptance 12.8.1: every field of a delivered digest comes back.
    let mut state =
        record(json!({"pending_digest": full_digest(), "last_digest_shown_at": hours_ago(20)}));
    let shown = overnight(&mut state);
    assert_eq!(shown["rem_cycles_completed"], json!(4));
    assert_eq!(shown["claude_call_used"], json!(true));
    assert_eq!(shown["main_insight_text"], json!("today's unifying insight"));
    assert_same(&shown, &full_digest());
    let text = serde_json::to_string(&shown).expect("serializable");
    assert!(text.contains("\"quota_used_pct\":0.003") && text.contains("\"sigma_observed\":1.2"));

    // acceptance 12.8.4: the delivered digest is gone and the stamp is now.
    assert_eq!(state.get(keys::PENDING_DIGEST), None);
    assert_eq!(state.timestamp(keys::LAST_DIGEST_SHOWN_AT), Some(now()));

    // acceptance 12.8.2: withheld gives the zeroed default, and the digest stays.
    let mut state =
        record(json!({"pending_digest": full_digest(), "last_digest_shown_at": hours_ago(4)}));
    assert_eq!(overnight(&mut state), zeroed());
    assert_eq!(state.get(keys::PENDING_DIGEST), Some(&full_digest()));

    // acceptance 12.8.5: when the gate yields something unusable the view is still the zeroed
    // default and the rest of the document is kept.
    let mut state = record(json!({"existing": true, "pending_digest": "corrupt"}));
    assert_eq!(overnight(&mut state), zeroed());
    assert_eq!(state.get("existing"), Some(&json!(true)));

    // Extra keys are dropped and missing ones defaulted; a present null stays null.
    let view = object(digest::overnight_view(
        &json!({"rem_cycles_completed": 2, "extra": 1, "daemon_uptime_hours": null}),
    ));
    let mut expected = zeroed();
    expected["rem_cycles_completed"] = json!(2);
    expected["daemon_uptime_hours"] = Value::Null;
    assert_eq!(view, expected);
}

#[test]
fn the_status_summary() {
    // appendix B `status` (as in 12.10 dispatcher case 1): four counters, no insight text.
    let stored = json!({"rem_cycles_completed": 2, "episodes_processed": 15, "schemas_induced_tier0": 3,
        "claude_call_used": true, "main_insight_text": "long text"});
    assert_eq!(
        digest::status_view(Some(&stored)).map(object).unwrap_or_default(),
        json!({"rem_cycles_completed": 2, "episodes_processed": 15, "schemas_induced_tier0": 3,
            "claude_call_used": true})
    );
    assert_eq!(
        digest::status_view(Some(&json!({}))).map(object).unwrap_or_default(),
        json!({"rem_cycles_completed": 0, "episodes_processed": 0, "schemas_induced_tier0": 0,
            "claude_call_used": false})
    );
    for not_object in [None, Some(json!(null)), Some(json!("x")), Some(json!([1]))] {
        assert_eq!(digest::status_view(not_object.as_ref()), None);
    }
}

#[track_caller]
fn check_fold(before: Value, results: &[RemResult], after: Value) {
    let mut state = record(before);
    for result in results {
        digest::fold(&mut state, result);
    }
    assert_same(&document(&state), &after);
}

#[test]
fn folding_cycles() {
    let cycle = |summaries| RemResult { summaries_created: summaries, ..RemResult::default() };
    // Derived from 12.9.2: four plain cycles of one summary each, from nothing.
    check_fold(
        json!({"fsm_state": "SLEEP"}),
        &[cycle(1), cycle(1), cycle(1), cycle(1)],
        json!({"fsm_state": "SLEEP", "pending_digest": {"rem_cycles_completed": 4, "episodes_processed": 4,
            "schemas_induced_tier0": 0, "claude_call_used": false, "main_insight_text": null,
            "timed_out_cycles": 0}}),
    );
    // A non-object digest is replaced in place; the insight follows the last cycle that used the
    // model; timeouts count.
    let insight = RemResult {
        summaries_created: 2,
        schema_candidates: 3,
        claude_call_used: true,
        main_insight_text: Some("the insight".into()),
        timed_out: false,
    };
    let timed_out = RemResult { timed_out: true, ..RemResult::default() };
    check_fold(
        json!({"pending_digest": null, "z": 1}),
        &[insight, timed_out],
        json!({"pending_digest": {"rem_cycles_completed": 2, "episodes_processed": 2,
            "schemas_induced_tier0": 3, "claude_call_used": true, "main_insight_text": "the insight",
            "timed_out_cycles": 1}, "z": 1}),
    );
    // Counters add up across nights; a non-integer counter counts as 0; other keys stay.
    check_fold(
        json!({"pending_digest": {"rem_cycles_completed": 4, "episodes_processed": "ten", "sigma_observed": 1.2,
            "schemas_induced_tier0": 2.5}}),
        &[cycle(5)],
        json!({"pending_digest": {"rem_cycles_completed": 5, "episodes_processed": 5, "sigma_observed": 1.2,
            "schemas_induced_tier0": 0, "claude_call_used": false, "main_insight_text": null,
            "timed_out_cycles": 0}}),
    );
}

#[test]
fn rem_results_read_leniently() {
    let full: RemResult =
        serde_json::from_value(json!({"summaries_created": 3, "schema_candidates": 1,
        "claude_call_used": true, "main_insight_text": "x", "timed_out": true}))
        .expect("a full result");
    assert_eq!(full.summaries_created, 3);
    assert_eq!(full.main_insight_text.as_deref(), Some("x"));
    let empty: RemResult = serde_json::from_value(json!({})).expect("an empty result");
    assert_eq!(empty, RemResult::default());
}
