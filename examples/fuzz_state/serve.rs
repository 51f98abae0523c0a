//! The `serve` target: hostile request streams for the line protocol, and what must hold for each.
//!
//! Owns making a stream (a few lines: well-formed messages with hostile fields, hostile JSON,
//! invalid UTF-8, blank and over-long lines) and the oracle: no panic, the stream is served to its
//! end, one reply per request line and none per blank line, each reply an object with a boolean
//! `ok`, and the state file left parses with its unknown keys kept. The engine's starting document
//! and the server's clock are derived from the stream's bytes, so a saved stream replays exactly.

use std::io::Cursor;
use std::path::Path;

use chrono::{DateTime, TimeDelta};
use daemon_state::engine::Engine;
use daemon_state::record::Record;
use daemon_state::serve::{MAX_LINE_BYTES, Server};
use daemon_state::store::{SimFs, Store};
use serde_json::Value;

use super::generate;
use super::harness::{KNOWN_KEYS, Rng, STATE_FILE};

const TYPES: [&str; 20] = [
    "status",
    "user_initiated_sleep",
    "force_wake",
    "force_rem",
    "pause",
    "resume",
    "session_open",
    "boot",
    "shutdown",
    "lock_acquired",
    "lock_denied",
    "lock_lost",
    "mcp_activity",
    "tick",
    "recall",
    "rem_cycle_finished",
    "nuke_from_orbit",
    "",
    "STATUS",
    "tick ",
];

const FIELDS: [&str; 12] = [
    "ts",
    "session_id",
    "reason",
    "seconds",
    "store_empty",
    "result",
    "jsonrpc",
    "type",
    "id",
    "summaries_created",
    "main_insight_text",
    "timed_out",
];

/// A field value: a timestamp in many spellings, or anything hostile.
fn value(rng: &mut Rng) -> String {
    const TIMES: [&str; 14] = [
        "\"2026-04-18T23:00:00+00:00\"",
        "\"2026-04-18T23:00:00Z\"",
        "\"2026-04-18T23:00:00\"",
        "\"0000-01-01T00:00:00Z\"",
        "\"9999-12-31T23:59:59.999999-23:59\"",
        "\"0001-01-01T00:00:00Z\"",
        "\"0001-01-01T00:00:00+00:01\"",
        "\"9999-12-31T23:59:59.999999Z\"",
        "\"9999-12-31T23:55:00Z\"",
        "\"9999-12-31T00:00:00-23:59\"",
        "\"whatever\"",
        "\"\"",
        "\"2026-02-30T25:61:61Z\"",
        "\"2026-04-18 23:00\"",
    ];
    match rng.below(8) {
        0..=3 => rng.pick::<&str>(&TIMES).to_string(),
        4 => generate::hostile(rng, 3),
        5 => {
            let result: Vec<String> = (0..rng.below(6))
                .map(|_| {
                    format!("\"{}\": {}", rng.pick::<&str>(&FIELDS), generate::hostile(rng, 1))
                })
                .collect();
            format!("{{{}}}", result.join(", "))
        }
        6 => serde_json::Value::String(generate::session_id(rng)).to_string(),
        _ => rng
            .pick::<&str>(&["true", "false", "42", "-1", "1e400", "null", "\"5000\""])
            .to_string(),
    }
}

/// One request line (without its newline).
fn line(rng: &mut Rng) -> Vec<u8> {
    match rng.below(20) {
        0 => (0..rng.below(200)).map(|_| rng.next_u64() as u8).filter(|b| *b != b'\n').collect(),
        1 => b"  \t \r".to_vec(),
        2 => {
            let depth = *rng.pick(&[10, 127, 128, 129, 10_000]);
            format!("{{\"type\": \"tick\", \"ts\": {}1{}}}", "[".repeat(depth), "]".repeat(depth))
                .into_bytes()
        }
        3 => {
            let mut bytes = br#"{"type": "session_open", "session_id": "sess-"#.to_vec();
            bytes.extend_from_slice(rng.pick::<&[u8]>(&[b"\xff", b"\xed\xa0\x80", b"\xc0\xaf"]));
            bytes.extend_from_slice(b"\"}");
            bytes
        }
        4 => rng
            .pick::<&str>(&["[]", "42", "\"status\"", "null", "{}", "{\"type\": 42}"])
            .as_bytes()
            .to_vec(),
        5 if rng.one_in(40) => {
            format!("{{\"type\": \"status\", \"pad\": \"{}\"}}", "x".repeat(MAX_LINE_BYTES))
                .into_bytes()
        }
        _ => {
            let kind = serde_json::Value::String(rng.pick::<&str>(&TYPES).to_string()).to_string();
            let mut fields = vec![format!("\"type\": {kind}")];
            for _ in 0..rng.below(5) {
                fields.push(format!("\"{}\": {}", rng.pick::<&str>(&FIELDS), value(rng)));
            }
            if rng.one_in(10) {
                let at = rng.below(fields.len() + 1);
                fields.insert(at, format!("\"type\": {}", value(rng)));
            }
            format!("{{{}}}", fields.join(", ")).into_bytes()
        }
    }
}

/// A night as a host drives it, one well-formed engine message after another at advancing
/// moments, with a hostile line now and then.
fn night(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut messages = vec![
        "\"type\": \"user_initiated_sleep\", \"reason\": \"bed\"".to_owned(),
        "\"type\": \"tick\"".to_owned(),
        "\"type\": \"lock_acquired\"".to_owned(),
    ];
    for _ in 0..1 + rng.below(6) {
        messages.push(match rng.below(8) {
            0 => "\"type\": \"force_wake\"".to_owned(),
            1 => "\"type\": \"lock_lost\"".to_owned(),
            2 => "\"type\": \"mcp_activity\"".to_owned(),
            3 => format!("\"type\": \"session_open\", \"session_id\": {}", value(rng)),
            4 => format!("\"type\": \"recall\", \"session_id\": {}", value(rng)),
            _ => format!("\"type\": \"rem_cycle_finished\", \"result\": {}", value(rng)),
        });
    }
    messages.push(format!("\"type\": \"{}\"", if rng.one_in(2) { "shutdown" } else { "boot" }));
    let mut at = DateTime::from_timestamp(1_776_553_200, 0).unwrap_or(DateTime::UNIX_EPOCH);
    let mut lines = Vec::new();
    for text in messages {
        at += TimeDelta::seconds(rng.below(3_600) as i64);
        let ts = daemon_state::timestamp::format(at);
        lines.push(format!("{{{text}, \"ts\": \"{ts}\"}}").into_bytes());
        if rng.one_in(8) {
            lines.push(line(rng));
        }
    }
    lines
}

/// A stream of lines, with `\n` or `\r\n` between them and sometimes none at the end: a night
/// as a host drives it, or one to eight lines of anything.
pub fn input(rng: &mut Rng) -> Vec<u8> {
    let lines =
        if rng.one_in(3) { night(rng) } else { (0..1 + rng.below(8)).map(|_| line(rng)).collect() };
    let mut bytes = Vec::new();
    let count = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        bytes.extend(line);
        if i + 1 < count || !rng.one_in(4) {
            bytes.extend_from_slice(if rng.one_in(5) { b"\r\n" } else { b"\n" });
        }
    }
    bytes
}

/// How many replies the stream must get: one per line that is not blank (a line that is too long
/// or not UTF-8 is answered with a refusal).
fn expected_replies(bytes: &[u8]) -> usize {
    let mut segments: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    if segments.last().is_some_and(|last| last.is_empty()) {
        segments.pop();
    }
    segments
        .iter()
        .filter(|segment| {
            segment.len() > MAX_LINE_BYTES
                || std::str::from_utf8(segment).map_or(true, |text| !text.trim().is_empty())
        })
        .count()
}

/// Serves one stream to an engine on a simulated disk; `Err` names the broken rule.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    let mut rng = Rng::from_bytes(bytes);
    let sim = SimFs::new();
    let path = Path::new(STATE_FILE);
    let store = Store::with_fs(path, Box::new(sim.clone())).map_err(|e| format!("store: {e}"))?;
    let start = if rng.one_in(3) { None } else { Some(generate::seed_document(&mut rng)) };
    if let Some(start) = &start {
        sim.replace_durably(path, start);
    }
    let (engine, _) = Engine::with_store(store).map_err(|e| format!("open: {e}"))?;
    let before = engine.record().clone();
    let base = DateTime::from_timestamp(1_776_553_200, 0).unwrap_or(DateTime::UNIX_EPOCH);
    let now = base + TimeDelta::minutes(rng.below(3 * 24 * 60) as i64);
    let server = Server::new(engine, move || now);
    let mut out = Vec::new();
    server.serve_stream(Cursor::new(bytes), &mut out).map_err(|e| format!("serve: {e}"))?;
    let replies: Vec<&[u8]> = out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    if replies.len() != expected_replies(bytes) {
        return Err(format!(
            "{} replies to {} request lines",
            replies.len(),
            expected_replies(bytes)
        ));
    }
    for reply in replies {
        match serde_json::from_slice::<Value>(reply) {
            Ok(Value::Object(map)) if map.get("ok").is_some_and(Value::is_boolean) => {}
            _ => {
                return Err(format!(
                    "a reply without a boolean ok: {}",
                    String::from_utf8_lossy(reply)
                ));
            }
        }
    }
    if let Some(after) = sim.contents(path) {
        let after =
            Record::from_slice(&after).map_err(|e| format!("the file left does not parse: {e}"))?;
        for (key, value) in before.iter().filter(|(k, _)| !KNOWN_KEYS.contains(k)) {
            if after.get(key) != Some(value) || after.verbatim(key) != before.verbatim(key) {
                return Err(format!("unknown key {key} changed or lost"));
            }
        }
        super::harness::moments_readable(Some(&before), &after)?;
        if after.generation() < before.generation() {
            return Err("the generation went back".into());
        }
    }
    Ok(())
}
