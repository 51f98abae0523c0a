//! Replaying a journal: the engine's decisions computed again from the events it recorded.
//!
//! Owns applying a journal's lines, in order, to a document at some generation (by default an
//! empty one), with one engine per engine the journal names (each one's memory starts empty at
//! its `opened` line, as the real one's did), on a simulated disk; comparing every recomputed
//! outcome with the recorded one; and giving the resulting document. It must not change the
//! journal or the state file: `replay` reads one and writes only where it is told.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::engine::{Engine, EngineError};
use crate::event::Event;
use crate::journal::Edits;
use crate::kernel::Outcome;
use crate::record::Record;
use crate::store::{Fs, SimFs, Store, StoreError};
use crate::table::StateName;

/// Where the replayed document lives on the simulated disk.
const PATH: &str = "/replay/state.json";

/// One journal line, every kind's fields optional.
#[derive(Debug, Deserialize)]
struct Line {
    at: Option<String>,
    by: Option<String>,
    opened: Option<u64>,
    tz: Option<String>,
    event: Option<Event>,
    before: Option<u64>,
    after: Option<u64>,
    state: Option<StateName>,
    transitions: Option<Value>,
    effects: Option<Value>,
    first_turn: Option<bool>,
    digest: Option<Value>,
    rejected: Option<String>,
    ticks: Option<u64>,
    edit: Option<String>,
    #[serde(default)]
    set: Option<indexmap::IndexMap<String, Box<RawValue>>>,
    #[serde(default)]
    removed: Vec<String>,
    failed: Option<String>,
    used: Option<u64>,
}

/// What a replay came to when every outcome agreed.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// The resulting document, as the state file would hold it.
    pub document: Vec<u8>,
    /// The lines read.
    pub lines: usize,
    /// The lines applied (those after the starting generation).
    pub applied: usize,
    /// The resulting document's generation.
    pub generation: u64,
}

/// The first line whose recomputed outcome differs from the recorded one.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    /// The line's number, from 1.
    pub line: usize,
    /// The line's event (or edit), as the journal has it.
    pub event: String,
    /// What differs, in a few words.
    pub what: String,
    /// The recorded value.
    pub recorded: Value,
    /// The recomputed value.
    pub recomputed: Value,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} ({}): {}: recorded {}, recomputed {}",
            self.line, self.event, self.what, self.recorded, self.recomputed
        )
    }
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A recomputed outcome differs from the recorded one.
    #[error("{0}")]
    Diverged(Box<Divergence>),
    /// A line is not a journal line.
    #[error("line {line}: not a journal line: {problem}")]
    BadLine {
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// The starting document is not a state document.
    #[error("the starting document is not a state document: {0}")]
    BadStart(String),
    /// The journal skips generations: lines are missing from it.
    #[error("line {line}: the journal is incomplete: it goes from generation {from} to {to}")]
    Incomplete {
        /// The line's number, from 1.
        line: usize,
        /// The generation the replay is at.
        from: u64,
        /// The generation the line starts from.
        to: u64,
    },
    /// The simulated disk refused something (it never should).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Replays `journal` (its bytes, oldest line first) on `start` (a state file's bytes; an empty
/// document when `None`): the lines whose generations lie after the starting one are applied.
pub fn replay(journal: &[u8], start: Option<&[u8]>) -> Result<Replayed, ReplayError> {
    let fs = SimFs::new();
    let path = Path::new(PATH);
    if let Some(dir) = path.parent() {
        fs.create_dir(dir).map_err(|e| ReplayError::BadStart(e.to_string()))?;
    }
    let start_generation = match start {
        Some(bytes) => {
            let record =
                Record::from_slice(bytes).map_err(|e| ReplayError::BadStart(e.to_string()))?;
            fs.replace_durably(path, bytes);
            record.generation()
        }
        None => {
            fs.replace_durably(path, b"{}");
            0
        }
    };
    let mut engines: HashMap<String, Engine> = HashMap::new();
    let mut zones: HashMap<String, chrono_tz::Tz> = HashMap::new();
    let mut generation = start_generation;
    let (mut lines, mut applied) = (0, 0);
    for (index, text) in journal.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        lines += 1;
        let line: Line = serde_json::from_slice(text)
            .map_err(|e| ReplayError::BadLine { line: number, problem: e.to_string() })?;
        let by = line.by.clone().unwrap_or_default();
        if line.opened.is_some() {
            // What this engine held only in memory starts empty from here.
            engines.remove(&by);
            match line.tz.as_deref().map(str::parse::<chrono_tz::Tz>) {
                Some(Ok(zone)) => zones.insert(by, zone),
                _ => zones.remove(&by),
            };
            continue;
        }
        let (Some(before), Some(after)) = (line.before, line.after) else {
            return Err(ReplayError::BadLine { line: number, problem: "no generations".into() });
        };
        if after < start_generation || (after == start_generation && before < after) {
            continue;
        }
        if before != generation {
            return Err(ReplayError::Incomplete { line: number, from: generation, to: before });
        }
        let engine = match engines.entry(by.clone()) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let store = Store::with_fs(path, Box::new(fs.clone()))?;
                let (mut engine, _) = Engine::with_store(store).map_err(|e| match e {
                    EngineError::Store(e) => ReplayError::Store(e),
                    other => ReplayError::BadStart(other.to_string()),
                })?;
                if let Some(zone) = zones.get(&by) {
                    engine.override_zone(*zone);
                }
                entry.insert(engine)
            }
        };
        apply(engine, &line, number)?;
        generation = after;
        applied += 1;
    }
    let document = fs.contents(path).unwrap_or_default();
    let generation = Record::from_slice(&document).map(|r| r.generation()).unwrap_or(generation);
    Ok(Replayed { document, lines, applied, generation })
}

/// Applies one line to its engine and compares what it does with what the line recorded.
fn apply(engine: &mut Engine, line: &Line, number: usize) -> Result<(), ReplayError> {
    let label = line_label(line);
    let diverged = |what: &str, recorded: Value, recomputed: Value| {
        ReplayError::Diverged(Box::new(Divergence {
            line: number,
            event: label.clone(),
            what: what.to_owned(),
            recorded,
            recomputed,
        }))
    };
    let edits = Edits {
        set: line.set.clone().map(|set| set.into_iter().collect()).unwrap_or_default(),
        removed: line.removed.clone(),
    };
    if line.failed.is_some() {
        let used = line.used.unwrap_or_default();
        engine
            .redo_failed_save(line.event.as_ref(), &edits, line.after.unwrap_or_default(), used)
            .map_err(|e| diverged("the failed save", Value::Null, Value::String(e.to_string())))?;
    } else if let Some(what) = &line.edit {
        let at = line.at.as_deref().and_then(crate::timestamp::parse).unwrap_or_default();
        engine
            .update(what, at, |record| {
                edits.apply(record);
                ((), true)
            })
            .map_err(|e| diverged("the edit", Value::Null, Value::String(e.to_string())))?;
    } else {
        let Some(event) = line.event.clone() else {
            return Err(ReplayError::BadLine { line: number, problem: "no event".into() });
        };
        let result = if edits.is_empty() {
            engine.handle(event)
        } else {
            engine.handle_with(event, |record| edits.apply(record))
        };
        match (result, &line.rejected) {
            (Ok(outcome), None) => compare(line, &outcome, &diverged)?,
            (Err(EngineError::Rejected(rejection)), Some(recorded)) => {
                if rejection.to_string() != *recorded {
                    let recomputed = Value::String(rejection.to_string());
                    return Err(diverged("the refusal", Value::String(recorded.clone()), recomputed));
                }
            }
            (Ok(outcome), Some(recorded)) => {
                let recomputed = serde_json::to_value(&outcome).unwrap_or_default();
                return Err(diverged("acceptance", Value::String(recorded.clone()), recomputed));
            }
            (Err(error), _) => {
                let recorded = serde_json::json!({"transitions": line.transitions, "effects": line.effects});
                return Err(diverged("acceptance", recorded, Value::String(error.to_string())));
            }
        }
    }
    let state = engine.state();
    if line.state.is_some_and(|recorded| recorded != state) {
        let recorded = serde_json::to_value(line.state).unwrap_or_default();
        return Err(diverged("the state", recorded, serde_json::to_value(state).unwrap_or_default()));
    }
    let generation = engine.record().generation();
    if line.after.is_some_and(|after| after != generation) {
        return Err(diverged("the generation", line.after.into(), generation.into()));
    }
    Ok(())
}

/// Compares a recomputed outcome with the line's record of it.
fn compare(
    line: &Line,
    outcome: &Outcome,
    diverged: &impl Fn(&str, Value, Value) -> ReplayError,
) -> Result<(), ReplayError> {
    let recomputed = serde_json::to_value(outcome).unwrap_or_default();
    let field = |name: &str| recomputed.get(name).cloned().unwrap_or(Value::Null);
    if line.ticks.is_some() {
        let idle = outcome.transitions.is_empty()
            && outcome.effects.is_empty()
            && outcome.snapshots.is_empty();
        if !idle {
            return Err(diverged("an idle tick", Value::Null, recomputed));
        }
        return Ok(());
    }
    let empty = || Value::Array(Vec::new());
    let pairs = [
        ("the transitions", line.transitions.clone().unwrap_or_else(empty), field("transitions")),
        ("the effects", line.effects.clone().unwrap_or_else(empty), field("effects")),
        ("first_turn", line.first_turn.map_or(Value::Null, Value::Bool), field("first_turn")),
        ("the digest", line.digest.clone().unwrap_or(Value::Null), field("digest")),
    ];
    for (what, recorded, recomputed) in pairs {
        if recorded != recomputed {
            return Err(diverged(what, recorded, recomputed));
        }
    }
    Ok(())
}

/// The line's event, or its edit, in a few words.
fn line_label(line: &Line) -> String {
    match (&line.edit, &line.event) {
        (Some(what), _) => format!("edit {what}"),
        (None, Some(event)) => serde_json::to_string(event).unwrap_or_default(),
        (None, None) => "?".to_owned(),
    }
}
