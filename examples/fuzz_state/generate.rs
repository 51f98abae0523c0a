//! Hostile state files: arbitrary bytes, JSON-ish token soup, byte-mutated seed documents, wrong
//! types for every known key, duplicate keys, deep nesting, huge numbers, invalid UTF-8, huge ids,
//! and what only Python's `json` writes (`NaN`, `Infinity`, lone surrogates) in unknown keys.
//!
//! Owns making inputs from a random source. It must not judge them: `harness` runs them.

use super::harness::{KNOWN_KEYS, Rng};

/// The seed-format documents mutations start from.
const CORPUS: [&[u8]; 3] = [
    include_bytes!("../../tests/fixtures/seed-legacy.json"),
    include_bytes!("../../tests/fixtures/seed-minimal.json"),
    FULL.as_bytes(),
];

/// A document with every known key holding a plausible value.
const FULL: &str = r#"{"fsm_state": "SLEEP", "fsm_transition_at": "2026-04-18T02:00:00+00:00",
"daemon_started_at": "2026-04-17T08:00:00+00:00",
"first_turn_pending": {"sess-a": "2026-04-18T01:30:00+00:00", "sess-b": "2026-04-18T01:59:00.250000+00:00"},
"pending_digest": {"rem_cycles_completed": 2, "episodes_processed": 5, "schemas_induced_tier0": 1,
"claude_call_used": true, "main_insight_text": "insight", "timed_out_cycles": 0},
"last_digest_shown_at": "2026-04-17T08:30:00+00:00", "quiet_window": [2, 12],
"quiet_window_learned_at": "2026-04-17T12:00:00+00:00", "last_session_ts": "2026-04-17T23:00:00+00:00",
"last_tick_at": "2026-04-18T02:00:00+00:00", "last_tick_skipped_reason": null, "last_completed_cycles": 4,
"scheduler_paused": false, "user_sleep_request": {"reason": "bed", "ts": "2026-04-18T01:00:00+00:00", "pending": true},
"force_rem_request": {"ts": "2026-04-18T01:00:00+00:00", "pending": false, "honored_at": "2026-04-18T01:10:00+00:00"},
"force_wake_request": {"ts": "2026-04-18T02:10:00+00:00", "pending": true}, "rem_cycle_count": 4,
"last_session_open": {"session_id": "sess-b", "ts": ""}, "hippea_cascade_request": {"session_id": "sess-b", "ts": "", "pending": true},
"timezone": "Europe/Moscow", "session_starts": "1776470400000000 1800000000 1800000000",
"night": {"started_at": "2026-04-18T02:00:00+00:00", "planned": 4, "completed": 1, "lock_lost": false, "activity_at": null},
"generation": 41, "x_foreign": {"big": 123456789012345678901234567890, "f": 1e400}}"#;

/// The families of inputs, for the loop's tallies.
pub const FAMILIES: [&str; 10] = [
    "arbitrary bytes",
    "token soup",
    "byte-mutated seed documents",
    "wrong types for known keys",
    "duplicate keys",
    "deep nesting",
    "huge numbers",
    "invalid UTF-8",
    "huge ids",
    "Python-only JSON",
];

/// One input: its family (an index into [`FAMILIES`]) and its bytes.
pub fn input(rng: &mut Rng) -> (usize, Vec<u8>) {
    let family = match rng.below(100) {
        0..=6 => 0,
        7..=13 => 1,
        14..=35 => 2,
        36..=58 => 3,
        59..=66 => 4,
        67..=73 => 5,
        74..=80 => 6,
        81..=87 => 7,
        88..=93 => 8,
        _ => 9,
    };
    let bytes = match family {
        0 => (0..rng.below(600)).map(|_| rng.next_u64() as u8).collect(),
        1 => token_soup(rng),
        2 => byte_mutation(rng),
        3 => document(rng, 0),
        4 => document(rng, 3),
        5 => deep_nesting(rng),
        6 => huge_numbers(rng),
        7 => invalid_utf8(rng),
        8 => huge_ids(rng),
        _ => python_only(rng),
    };
    (family, bytes)
}

/// Keys, spelled as Python's `json.dump` may write them, that this product does not know: lone
/// surrogates, two spellings of one key, an astral character as a pair.
const PYTHON_KEYS: [&str; 7] = [
    "\"x_ratio\"",
    "\"\\ud800\"",
    "\"\\uD800\"",
    "\"k\\udfff\\u00e9\"",
    "\"\\ud83d\\ude00\"",
    "\"x_nested\"",
    "\"\\u0000json-escaped-key:\"",
];

/// Values only Python's `json` writes, or that serde_json cannot hold.
fn python_value(rng: &mut Rng) -> String {
    const VALUES: [&str; 9] = [
        "NaN",
        "Infinity",
        "-Infinity",
        "\"\\udc00\"",
        "\"a \\ud800 b\"",
        "[NaN, {\"\\ud800\": -Infinity}]",
        "{\"a\": [1, NaN], \"b\": \"\\udbff\"}",
        "1e400",
        "[1.5, -0.0, 1E+2]",
    ];
    if rng.one_in(5) {
        let depth = *rng.pick(&[126, 127, 128, 129, 500, 998]);
        return format!("{}NaN{}", "[".repeat(depth), "]".repeat(depth));
    }
    rng.pick(&VALUES).to_string()
}

/// A seed-format document with Python-only members added at random places: unknown keys (kept
/// byte for byte) and now and then a known key (read as wrong-typed).
fn python_only(rng: &mut Rng) -> Vec<u8> {
    let mut members: Vec<String> = match serde_json::from_slice(FULL.as_bytes()) {
        Ok(serde_json::Value::Object(map)) => {
            map.into_iter().map(|(k, v)| format!("{}: {v}", quote(&k))).collect()
        }
        _ => Vec::new(),
    };
    for _ in 0..1 + rng.below(5) {
        let key = if rng.one_in(6) {
            quote(rng.pick::<&str>(&KNOWN_KEYS))
        } else {
            rng.pick(&PYTHON_KEYS).to_string()
        };
        let at = rng.below(members.len() + 1);
        let spacing = if rng.one_in(2) { ": " } else { " :" };
        members.insert(at, format!("{key}{spacing}{}", python_value(rng)));
    }
    format!("{{{}}}", members.join(if rng.one_in(2) { ", " } else { ",\n  " })).into_bytes()
}

/// A stored generation at or near the largest the counter holds, or past it.
fn huge_generation(rng: &mut Rng) -> String {
    let near = ["18446744073709551615", "18446744073709551616", "1e400", "9223372036854775808"];
    match rng.below(3) {
        0 => rng.pick(&near).to_string(),
        _ => (u64::MAX - rng.below(8) as u64).to_string(),
    }
}

/// One of the seed-format documents mutations start from, as it is.
pub fn seed_document(rng: &mut Rng) -> Vec<u8> {
    rng.pick(&CORPUS).to_vec()
}

/// A session id as a hostile host may send it.
pub fn session_id(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => String::new(),
        1 => "é".repeat(1 + rng.below(300)),
        2 => "\u{0}\u{1f4a5}../\"\\\n".to_owned(),
        3 if rng.one_in(20) => "a".repeat(1 + rng.below(200_000)),
        3 => "b".repeat(1 + rng.below(2_000)),
        _ => format!("sess-{}", rng.below(1000)),
    }
}

const TOKENS: [&str; 24] = [
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "null",
    "true",
    "false",
    "0",
    "-0",
    "1e400",
    "-1",
    "\"fsm_state\"",
    "\"first_turn_pending\"",
    "\"quiet_window\"",
    "\"WAKE\"",
    "\"2026-04-18T20:00:00Z\"",
    "\"\\ud800\"",
    " ",
    "\"pending_digest\"",
    "\"generation\"",
    "18446744073709551616",
];

fn token_soup(rng: &mut Rng) -> Vec<u8> {
    let mut text = String::from(if rng.one_in(2) { "{" } else { "" });
    for _ in 0..rng.below(60) {
        text.push_str(rng.pick::<&str>(&TOKENS));
    }
    text.into_bytes()
}

const INTERESTING: [&[u8]; 14] = [
    b"1e400",
    b"-0",
    b"\"\\ud800\"",
    b"\xff",
    b"{",
    b"[",
    b"null",
    b"\"",
    b",",
    b"99999999999999999999999",
    b"\"2026-04-18T20:00:00\"",
    b"true",
    b"\\u0000",
    b"}",
];

fn byte_mutation(rng: &mut Rng) -> Vec<u8> {
    let mut bytes = rng.pick(&CORPUS).to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(7) {
            0 if at < bytes.len() => bytes[at] ^= 1 << rng.below(8),
            1 if at < bytes.len() => bytes[at] = rng.next_u64() as u8,
            2 => {
                let end = (at + 1 + rng.below(16)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            3 => {
                let end = (at + 1 + rng.below(64)).min(bytes.len());
                let copy = bytes[at.min(end)..end].to_vec();
                let to = rng.below(bytes.len() + 1);
                bytes.splice(to..to, copy);
            }
            4 => bytes.truncate(at),
            _ => {
                let token = rng.pick(&INTERESTING);
                bytes.splice(at..at, token.iter().copied());
            }
        }
    }
    bytes
}

/// A value of any JSON type, often one a known key must not hold; `depth` bounds nesting.
pub fn hostile(rng: &mut Rng, depth: usize) -> String {
    const SCALARS: [&str; 46] = [
        "null",
        "true",
        "false",
        "0",
        "-0",
        "-0.0",
        "1",
        "-1",
        "4",
        "96",
        "97",
        "4294967296",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775809",
        "1e400",
        "-1e400",
        "1e-400",
        "1.5",
        "\"\"",
        "\"WAKE\"",
        "\"SLEEP\"",
        "\"DREAMING\"",
        "\"TRANSITIONING\"",
        "\"wake\"",
        "\"2026-04-18T20:00:00+00:00\"",
        "\"2026-04-18T20:00:00\"",
        "\"2026-04-18\"",
        "\"0000-01-01T00:00:00Z\"",
        "\"9999-12-31T23:59:59.999999-23:59\"",
        "\"2026-13-45T99:99:99Z\"",
        "\"\\u0000\"",
        "\"Europe/Moscow\"",
        "\"Nowhere/City\"",
        "\"1 2 3\"",
        "\"9223372036854775807 9223372036854775807\"",
        "\"-9223372036854775808 -1\"",
        "\"yes\"",
        "[44, 16]",
        "[47, 48]",
        "\"0001-01-01T00:00:00Z\"",
        "\"9999-12-31T23:59:59.999999Z\"",
        "\"9999-12-31T23:59:59Z\"",
        "NaN",
        "-Infinity",
        "\"\\udc00\"",
    ];
    const SHAPES: [&str; 12] = [
        "[]",
        "{}",
        "[48, 1]",
        "[0, 0]",
        "[-1, 5]",
        "[1e400, 2]",
        "[44]",
        "[44, 16, 1]",
        "[\"a\", \"b\"]",
        "[[[]]]",
        "{\"pending\": true}",
        "{\"pending\": \"yes\", \"ts\": 5}",
    ];
    const FIELDS: [&str; 20] = [
        "pending",
        "ts",
        "reason",
        "honored_at",
        "started_at",
        "planned",
        "completed",
        "lock_lost",
        "activity_at",
        "rem_cycles_completed",
        "episodes_processed",
        "schemas_induced_tier0",
        "claude_call_used",
        "main_insight_text",
        "timed_out_cycles",
        "session_id",
        "sess-a",
        "sess-b",
        "",
        "é",
    ];
    match rng.below(10) {
        0 if depth > 0 => {
            let fields: Vec<String> = (0..rng.below(8))
                .map(|_| format!("\"{}\": {}", rng.pick(&FIELDS), hostile(rng, depth - 1)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        1 if depth > 0 => {
            let items: Vec<String> = (0..rng.below(6)).map(|_| hostile(rng, depth - 1)).collect();
            format!("[{}]", items.join(", "))
        }
        2 => rng.pick(&SHAPES).to_string(),
        3 if rng.one_in(50) => format!("\"{}\"", "x".repeat(rng.below(100_000))),
        3 => "9".repeat(1 + rng.below(1_000)),
        _ => rng.pick(&SCALARS).to_string(),
    }
}

/// A seed-format document, its keys from the corpus and the known list, some values replaced by
/// hostile ones; `duplicates` more entries repeat keys already there with other values.
fn document(rng: &mut Rng, duplicates: usize) -> Vec<u8> {
    let base = if rng.one_in(2) { FULL.as_bytes() } else { *rng.pick(&CORPUS) };
    let mut entries: Vec<(String, String)> = match serde_json::from_slice(base) {
        Ok(serde_json::Value::Object(map)) => {
            map.into_iter().map(|(k, v)| (k, v.to_string())).collect()
        }
        _ => Vec::new(),
    };
    if rng.one_in(4) {
        let value = huge_generation(rng);
        match entries.iter_mut().find(|(k, _)| k == "generation") {
            Some(entry) => entry.1 = value,
            None => entries.push(("generation".to_owned(), value)),
        }
    }
    for _ in 0..1 + rng.below(4) {
        let key = rng.pick(&KNOWN_KEYS).to_string();
        let value = hostile(rng, 3);
        match entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => entries.push((key, value)),
        }
    }
    for _ in 0..duplicates {
        let key = if rng.one_in(2) || entries.is_empty() {
            rng.pick(&KNOWN_KEYS).to_string()
        } else {
            entries[rng.below(entries.len())].0.clone()
        };
        let at = rng.below(entries.len() + 1);
        entries.insert(at, (key, hostile(rng, 2)));
    }
    let body: Vec<String> = entries.iter().map(|(k, v)| format!("{}: {v}", quote(k))).collect();
    let separator = if rng.one_in(2) { ", " } else { ",\n  " };
    format!("{{{}}}", body.join(separator)).into_bytes()
}

fn quote(key: &str) -> String {
    serde_json::Value::String(key.to_owned()).to_string()
}

fn deep_nesting(rng: &mut Rng) -> Vec<u8> {
    // The object holding the key is one level: 999 here nest 1,000 deep, the most that loads.
    let depth = *rng.pick(&[
        1, 50, 100, 120, 126, 127, 128, 129, 200, 500, 998, 999, 1_000, 1_001, 5_000, 100_000,
    ]);
    let (open, close) = if rng.one_in(2) { ("[", "]") } else { ("{\"a\": ", "}") };
    let key = if rng.one_in(3) { "x_deep" } else { rng.pick(&KNOWN_KEYS) };
    let mut text = format!("{{\"fsm_state\": \"WAKE\", \"{key}\": ");
    text.push_str(&open.repeat(depth));
    text.push_str(if open == "[" { "1" } else { "null" });
    if !rng.one_in(8) {
        text.push_str(&close.repeat(depth));
    }
    text.push('}');
    text.into_bytes()
}

fn huge_numbers(rng: &mut Rng) -> Vec<u8> {
    let numbers = [
        "1e400".to_owned(),
        "-1e400".to_owned(),
        "1e-400".to_owned(),
        "9".repeat(1 + rng.below(5_000)),
        format!("-{}", "9".repeat(1 + rng.below(400))),
        format!("0.{}1", "0".repeat(rng.below(400))),
        "18446744073709551616".to_owned(),
        "1.7976931348623157e309".to_owned(),
    ];
    let mut text = String::from("{");
    for (i, key) in KNOWN_KEYS.iter().enumerate() {
        if rng.one_in(3) {
            let value = rng.pick(&numbers).clone();
            let value = match rng.below(4) {
                0 => format!("[{value}, {value}]"),
                1 => format!("{{\"pending\": true, \"planned\": {value}, \"completed\": {value}}}"),
                _ => value,
            };
            text.push_str(&format!("{}\"{key}\": {value}", if i == 0 { "" } else { ", " }));
        } else if i == 0 {
            text.push_str("\"fsm_state\": \"WAKE\"");
        }
    }
    text.push('}');
    text.into_bytes()
}

fn invalid_utf8(rng: &mut Rng) -> Vec<u8> {
    const BAD: [&[u8]; 7] = [
        b"\xff",
        b"\xc0\xaf",
        b"\xed\xa0\x80",
        b"\xe2\x82",
        b"\xf4\x90\x80\x80",
        b"\x80",
        b"\xf0\x9f\x92",
    ];
    let mut bytes = rng.pick(&CORPUS).to_vec();
    let quotes: Vec<usize> =
        bytes.iter().enumerate().filter(|(_, b)| **b == b'"').map(|(i, _)| i + 1).collect();
    let at = if rng.one_in(4) { rng.below(bytes.len() + 1) } else { *rng.pick(&quotes) };
    let bad = rng.pick(&BAD);
    bytes.splice(at..at, bad.iter().copied());
    if rng.one_in(4) {
        bytes.extend_from_slice(&bad[..1]);
    }
    bytes
}

/// One of three shapes: many ordinary ids (past the cap of 100), a few ids one of which is huge,
/// or a huge session id in the seed's `last_session_open`.
fn huge_ids(rng: &mut Rng) -> Vec<u8> {
    let shape = rng.below(3);
    let count = match shape {
        0 => {
            let limit = if rng.one_in(10) { 1_000 } else { 200 };
            1 + rng.below(limit)
        }
        _ => 1 + rng.below(5),
    };
    let huge = rng.below(count);
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let length = if shape == 1 && i == huge { rng.below(100_000) } else { rng.below(200) };
        let id = format!("{i}-{}", "é".repeat(length));
        let value = if rng.one_in(5) {
            hostile(rng, 1)
        } else {
            "\"2026-04-18T11:30:00+00:00\"".to_owned()
        };
        entries.push(format!("{}: {value}", quote(&id)));
    }
    let session = quote(&"s".repeat(if shape == 2 { rng.below(300_000) } else { 20 }));
    format!(
        "{{\"fsm_state\": \"WAKE\", \"first_turn_pending\": {{{}}}, \"last_session_open\": {{\"session_id\": {session}}}}}",
        entries.join(", ")
    )
    .into_bytes()
}
