//! The hostile-input generators and the oracle shared by the fuzz loop (`examples/fuzz_state`) and
//! its regression tests (`tests/fuzz_regressions.rs`).
//!
//! Owns what an input is (bytes for a state file; the events run after opening it are derived from
//! those bytes, so a saved input replays exactly) and what must hold for every input: no panic, the
//! engine opens, a corrupt file is quarantined byte for byte and never silently emptied, a file that
//! parses is not rewritten by opening it, the file left after a few events parses, and unknown keys
//! survive. It must not catch panics: the caller decides what a panic means.

#![allow(dead_code)] // The loop and the tests each use part of it.

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use daemon_state::digest::RemResult;
use daemon_state::engine::{Engine, EngineError};
use daemon_state::event::{Event, EventKind, Settings};
use daemon_state::record::{Record, keys};
use daemon_state::store::{Broken, Recovery, SimFs, Store};
use daemon_state::timestamp;
use serde_json::{Map, Value};

use super::generate;

/// Where the simulated disk keeps the state file.
pub const STATE_FILE: &str = "/state/.daemon-state.json";

/// Every key the engine knows; any other top-level key must survive the engine untouched.
pub const KNOWN_KEYS: [&str; 23] = keys::ALL;

/// A small, fast, reproducible random source (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A source started from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A source whose sequence depends on every byte of `bytes` (FNV-1a).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        Self(hash)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// One of the items.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// What running one input showed, for the loop's tallies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The bytes parsed; the engine ran on them.
    Parsed,
    /// The bytes were corrupt; they were quarantined and the engine started fresh.
    Quarantined,
}

/// A moment for the events: mostly around 2026, sometimes at or near the ends of the range a
/// state file can hold (the moments `--now` and serve's `ts` accept).
fn moment(rng: &mut Rng) -> DateTime<Utc> {
    let base = DateTime::from_timestamp(1_776_513_600, 0).unwrap_or(DateTime::UNIX_EPOCH);
    let (earliest, latest) = (timestamp::earliest(), timestamp::latest());
    let near = TimeDelta::seconds(rng.below(3 * 86_400) as i64);
    match rng.below(20) {
        0 => *rng.pick(&[earliest, latest, DateTime::UNIX_EPOCH]),
        1 => base + TimeDelta::seconds(rng.next_u64() as i64 % (400 * 366 * 86_400)),
        2 => latest - near,
        3 => earliest + near,
        _ => base + TimeDelta::seconds(rng.below(30 * 86_400) as i64 - 15 * 86_400),
    }
}

/// The events run after opening: derived from the input, each at a moment from [`moment`].
pub fn events_for(bytes: &[u8]) -> Vec<Event> {
    let mut rng = Rng::from_bytes(bytes);
    let known: Vec<String> = Record::from_slice(bytes)
        .ok()
        .and_then(|r| r.get(keys::FIRST_TURN_PENDING).and_then(Value::as_object).cloned())
        .map(|pending| pending.keys().take(4).cloned().collect())
        .unwrap_or_default();
    let id = |rng: &mut Rng| -> String {
        if !known.is_empty() && rng.one_in(2) {
            return rng.pick(&known).clone();
        }
        generate::session_id(rng)
    };
    let mut at = moment(&mut rng);
    let mut events = vec![Event::new(at, EventKind::Boot)];
    for _ in 0..4 {
        // Moments past the range are refused at input, so the host never sends one.
        at = if rng.one_in(8) {
            moment(&mut rng)
        } else {
            (at + TimeDelta::minutes(rng.below(180) as i64)).min(timestamp::latest())
        };
        let kind = match rng.below(12) {
            0..=2 => EventKind::Tick { store_empty: rng.one_in(6) },
            3 | 4 => EventKind::SessionStarted {
                session_id: Some(id(&mut rng)).filter(|_| !rng.one_in(8)),
            },
            5 | 6 => EventKind::Recall { session_id: Some(id(&mut rng)) },
            7 => EventKind::LockAcquired,
            8 => EventKind::RemCycleFinished {
                result: RemResult {
                    summaries_created: rng.next_u64(),
                    schema_candidates: rng.next_u64() >> rng.below(64),
                    claude_call_used: rng.one_in(2),
                    main_insight_text: rng.one_in(2).then(|| generate::session_id(&mut rng)),
                    timed_out: rng.one_in(4),
                },
            },
            9 => EventKind::UserSleepRequested { reason: generate::session_id(&mut rng), ts: None },
            10 => EventKind::Configure(Settings {
                rem_cycle_count: Some(rng.next_u64() as u32),
                timezone: Some(rng.pick(&["UTC", "Europe/Moscow", "Nowhere/City", ""]).to_string()),
            }),
            _ => EventKind::ForceWakeRequested { ts: Some(id(&mut rng)) },
        };
        events.push(Event::new(at, kind));
    }
    events.push(Event::new(at, EventKind::Shutdown));
    events
}

/// Runs one input through the loader, the engine and a few events; `Err` names the broken rule.
pub fn check(bytes: &[u8]) -> Result<Verdict, String> {
    check_with(bytes, None)
}

/// [`check`] on a store running a deliberately broken protocol, to show the oracle can fail.
pub fn check_with(bytes: &[u8], broken: Option<Broken>) -> Result<Verdict, String> {
    let parsed = Record::from_slice(bytes);
    let sim = SimFs::new();
    let path = Path::new(STATE_FILE);
    let mut store =
        Store::with_fs(path, Box::new(sim.clone())).map_err(|e| format!("store: {e}"))?;
    if let Some(broken) = broken {
        store.break_protocol(broken);
    }
    sim.replace_durably(path, bytes);
    let (mut engine, report) = Engine::with_store(store).map_err(|e| format!("open: {e}"))?;
    let quarantined = match (&parsed, &report.recovery) {
        (Ok(record), None) => {
            if engine.record() != record {
                return Err("the engine's document differs from the file's".into());
            }
            if sim.contents(path).as_deref() != Some(bytes) {
                return Err("opening rewrote a file that parses".into());
            }
            None
        }
        (Err(_), Some(Recovery::StartedFresh { quarantined_to, .. })) => {
            if sim.contents(quarantined_to).as_deref() != Some(bytes) {
                return Err("the quarantined copy is not the corrupt file".into());
            }
            Some(quarantined_to.clone())
        }
        (Ok(_), Some(recovery)) => {
            return Err(format!("a file that parses was recovered: {recovery}"));
        }
        (Err(problem), other) => {
            return Err(format!("a corrupt file ({problem}) was not quarantined: {other:?}"));
        }
    };
    for event in events_for(bytes) {
        let at = event.at;
        match engine.handle(event) {
            Ok(_) | Err(EngineError::Rejected(_)) => {}
            Err(e) => return Err(format!("event at {at}: {e}")),
        }
        std::hint::black_box((engine.status(at), engine.next_deadline(at)));
    }
    let after = match sim.contents(path) {
        Some(after) => after,
        None if engine.store().durable_writes() == 0 => return verdict(quarantined),
        None => return Err("the state file is gone after a save".into()),
    };
    let after =
        Record::from_slice(&after).map_err(|e| format!("the file left does not parse: {e}"))?;
    if let Some(copy) = &quarantined
        && sim.contents(copy).as_deref() != Some(bytes)
    {
        return Err("the quarantined copy changed".into());
    }
    if let Ok(before) = &parsed {
        unknown_keys_kept(before, &after)?;
        if after.generation() < before.generation() {
            return Err(format!(
                "the generation went back from {} to {}",
                before.generation(),
                after.generation()
            ));
        }
    }
    moments_readable(parsed.as_ref().ok(), &after)?;
    verdict(quarantined)
}

/// Every string the engine wrote that spells a moment spells one Python reads back: no year 0,
/// no `+10000`. Strings the input already held are not the engine's, and a request's `ts` (like a
/// session id) is a label stored as the client sent it.
pub fn moments_readable(before: Option<&Record>, after: &Record) -> Result<(), String> {
    fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::String(s) => out.push(s),
            Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
            Value::Object(map) => {
                map.iter().filter(|(k, _)| *k != "ts").for_each(|(_, v)| strings(v, out))
            }
            _ => {}
        }
    }
    let mut held = Vec::new();
    if let Some(before) = before {
        before.iter().map(|(_, v)| v).for_each(|v| strings(v, &mut held));
    }
    let mut written = Vec::new();
    after.iter().map(|(_, v)| v).for_each(|v| strings(v, &mut written));
    for s in written {
        // The engine writes every moment as `timestamp::format` spells it, ending in +00:00.
        let unreadable = (s.starts_with('+') || s.starts_with("0000-")) && s.ends_with("+00:00");
        if unreadable && !held.contains(&s) {
            return Err(format!("an unreadable moment was written: {s}"));
        }
    }
    Ok(())
}

fn verdict(quarantined: Option<PathBuf>) -> Result<Verdict, String> {
    Ok(if quarantined.is_some() { Verdict::Quarantined } else { Verdict::Parsed })
}

fn unknown_keys_kept(before: &Record, after: &Record) -> Result<(), String> {
    let unknown = |map: &Map<String, Value>| -> Vec<(String, Value)> {
        map.iter()
            .filter(|(key, _)| !KNOWN_KEYS.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    };
    let (was, is) = (unknown(&before.to_map()), unknown(&after.to_map()));
    if was != is {
        let lost: Vec<&String> = was.iter().filter(|kv| !is.contains(kv)).map(|(k, _)| k).collect();
        return Err(format!("unknown keys changed or lost: {lost:?}"));
    }
    // Byte for byte, as the input spelled them.
    for (key, _) in &was {
        if before.verbatim(key) != after.verbatim(key) {
            return Err(format!("unknown key {key:?} was not written back verbatim"));
        }
    }
    Ok(())
}
