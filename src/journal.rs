//! The journal of decisions: one JSON line per event that changed anything the engine keeps.
//!
//! Owns what a line says and when one is written. A line is appended under the state file's lock
//! right after the state file's durable save (the store appends it, without an fsync), so the
//! journal never runs ahead of the file; a journal whose last generation is behind the file's lost
//! its tail and says so. It must not decide anything: it records what `Engine` did.
//!
//! The lines, each one JSON object (moments in the state file's format, generations as numbers):
//!
//! - `{"at", "by", "opened": G}`: engine `by` (one per process and engine) read the file at
//!   generation `G`; written before that engine's first line, with `tz` when it was told a time
//!   zone it does not store (`--tz`). What it holds only in memory starts empty here.
//! - `{"at", "by", "event", "before", "after", "state", "transitions", "effects"}`, with
//!   `first_turn` and `digest` for a recall, and `set`/`removed` for the keys a host's bookkeeping
//!   changed along with the event (`serve`'s `session_open`): an accepted event, in the protocol's
//!   shape, with the generations before and after it and what it did.
//! - `{"at", "by", "event", "before", "after", "state", "rejected"}`: a refused event.
//! - `{"at", "by", "ticks": N, "since", "event", "before", "after", "state"}`: N ticks from
//!   `since` to `at` that changed nothing but the moment of the last tick, summed up in one line
//!   (the last one's event), written before the next line, if any: an idle day writes none.
//! - `{"at", "by", "edit", "before", "after", "state", "set", "removed"}`: a change made outside
//!   the machine (`sessions`, `digest take`, a raw transition), as the members it set (in their
//!   order, each as JSON) and the keys it removed.
//! - The same with `"edit": "partly saved"`, `failed` (the error) and `used` (the highest
//!   generation the failure used up): a save that failed; the members the event's earlier saves
//!   changed, when some landed, so that the journal goes on from the generation the file holds.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::value::RawValue;

use crate::digest::Digest;
use crate::effects::Effect;
use crate::event::{Event, EventKind};
use crate::kernel::Outcome;
use crate::machine::{Rejection, Transition};
use crate::record::{Record, keys};
use crate::table::StateName;
use crate::timestamp::{self, Timestamp};

/// The members a change outside the machine set, in the document's order, and the keys it
/// removed.
#[derive(Debug, Clone, Default)]
pub struct Edits {
    /// Each member set, as JSON text (an object's keys in their order).
    pub set: Vec<(String, Box<RawValue>)>,
    /// The keys removed.
    pub removed: Vec<String>,
}

impl PartialEq for Edits {
    fn eq(&self, other: &Self) -> bool {
        self.removed == other.removed
            && self.set.len() == other.set.len()
            && self.set.iter().zip(&other.set).all(|((k, a), (l, b))| k == l && a.get() == b.get())
    }
}

impl Edits {
    /// What turned `before` into `after`.
    pub fn between(before: &Record, after: &Record) -> Self {
        // The store keeps `generation` itself: a save sets it.
        let set = after
            .keys()
            .filter(|key| *key != keys::GENERATION && !after.same_member(before, key))
            .map(|key| (key.to_owned(), member_json(after, key)))
            .collect();
        let removed =
            before.keys().filter(|key| !after.contains(key)).map(str::to_owned).collect();
        Self { set, removed }
    }

    /// What `record` changed since `mark` (see `Record::changed_since`).
    pub(crate) fn since(record: &Record, mark: &crate::record::Mark) -> Self {
        let (keys, removed) = record.changed_since(mark);
        let set = keys
            .into_iter()
            .filter(|key| *key != keys::GENERATION)
            .map(|key| (key.to_owned(), member_json(record, key)))
            .collect();
        Self { set, removed }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.removed.is_empty()
    }

    /// Makes the same change to `record`.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))] // Used by `replay`.
    pub fn apply(&self, record: &mut Record) {
        for (key, raw) in &self.set {
            match serde_json::from_str::<crate::record::Object>(raw.get()) {
                Ok(object) if !object.is_empty() => record.set_object(key, object),
                _ => record.set(key, serde_json::from_str(raw.get()).unwrap_or_default()),
            }
        }
        for key in &self.removed {
            record.remove(key);
        }
    }

    fn members(&self) -> Vec<(&str, &RawValue)> {
        self.set.iter().map(|(key, raw)| (key.as_str(), raw.as_ref())).collect()
    }
}

/// Members written as an object, in order.
struct OrderedMembers<'a>(&'a [(&'a str, &'a RawValue)]);

impl serde::Serialize for OrderedMembers<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, raw) in self.0 {
            map.serialize_entry(key, raw)?;
        }
        map.end()
    }
}

/// A member's value as JSON text, an object's keys in their order.
fn member_json(record: &Record, key: &str) -> Box<RawValue> {
    let raw = match record.ordered(key) {
        Some(object) => serde_json::value::to_raw_value(object),
        None => serde_json::value::to_raw_value(record.get(key).unwrap_or(&serde_json::Value::Null)),
    };
    raw.unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// A failed save, as its journal line tells it.
pub struct Failure<'a> {
    /// The event whose save failed (none for a change outside the machine).
    pub event: Option<&'a Event>,
    /// The error.
    pub error: &'a str,
    /// The highest generation the failure used up.
    pub used: u64,
}

/// Tells apart the engines of one process.
static ENGINES: AtomicU64 = AtomicU64::new(0);

/// What one engine has written to the journal, and what it holds back.
#[derive(Debug)]
pub struct Journal {
    /// This engine's name in the journal: the process id and a counter.
    by: String,
    /// The generation the engine read the file at, until its `opened` line is written.
    opened: Option<u64>,
    /// Ticks that changed nothing but the tick's moment, not yet written.
    ticks: Option<Ticks>,
    /// The time zone this engine was told to use without storing it (`--tz`).
    zone: Option<String>,
    /// A failed append was reported (once).
    failed: bool,
}

#[derive(Debug)]
struct Ticks {
    count: u64,
    since: Timestamp,
    last: Event,
    generation: u64,
    state: StateName,
}

impl Journal {
    /// The journal of an engine that read the file at `generation`.
    pub fn new(generation: u64) -> Self {
        let n = ENGINES.fetch_add(1, Ordering::Relaxed);
        Self {
            by: format!("{}.{n}", std::process::id()),
            opened: Some(generation),
            ticks: None,
            zone: None,
            failed: false,
        }
    }

    /// Notes the time zone the engine uses without storing it: its `opened` line says so.
    pub fn set_zone(&mut self, zone: &str) {
        self.zone = Some(zone.to_owned());
    }

    /// Whether `outcome` of `event` changed nothing but the moment of the last tick.
    pub fn is_idle_tick(event: &Event, outcome: &Outcome) -> bool {
        matches!(event.kind, EventKind::Tick { .. })
            && outcome.transitions.is_empty()
            && outcome.effects.is_empty()
            && outcome.snapshots.is_empty()
    }

    /// Holds back an idle tick: it is written, with the others of its run, before the next line.
    pub fn hold_tick(&mut self, event: &Event, generation: u64, state: StateName) {
        match &mut self.ticks {
            Some(run) => {
                run.count += 1;
                run.last = event.clone();
                run.generation = generation;
                run.state = state;
            }
            None => {
                self.ticks = Some(Ticks {
                    count: 1,
                    since: event.at,
                    last: event.clone(),
                    generation,
                    state,
                });
            }
        }
    }

    /// The lines for an accepted event that changed something.
    pub fn accepted(
        &mut self,
        event: &Event,
        before: u64,
        after: u64,
        state: StateName,
        outcome: &Outcome,
        edits: Option<&Edits>,
    ) -> Vec<u8> {
        let edits = edits.filter(|edits| !edits.is_empty());
        let set = edits.map(Edits::members);
        let mut out = self.held(event.at);
        let line = Line {
            event: Some(event),
            transitions: Some(&outcome.transitions),
            effects: Some(&outcome.effects),
            first_turn: outcome.first_turn,
            digest: outcome.first_turn.map(|_| outcome.digest.as_ref()),
            set: set.as_deref().map(OrderedMembers),
            removed: edits.map(|edits| edits.removed.as_slice()),
            ..self.head(event.at, before, after, state)
        };
        push(&mut out, &line);
        out
    }

    /// The lines for a refused event.
    pub fn rejected(&mut self, event: &Event, generation: u64, rejection: &Rejection) -> Vec<u8> {
        let rejected = rejection.to_string();
        let mut out = self.held(event.at);
        let line = Line {
            event: Some(event),
            rejected: Some(&rejected),
            ..self.head(event.at, generation, generation, rejection.state)
        };
        push(&mut out, &line);
        out
    }

    /// The lines for a change made outside the machine.
    pub fn edited(
        &mut self,
        what: &str,
        at: Timestamp,
        before: u64,
        after: u64,
        state: StateName,
        edits: &Edits,
    ) -> Vec<u8> {
        let set = edits.members();
        let mut out = self.held(at);
        let line = Line {
            edit: Some(what),
            set: Some(OrderedMembers(&set)),
            removed: Some(&edits.removed),
            ..self.head(at, before, after, state)
        };
        push(&mut out, &line);
        out
    }

    /// The lines for a failed save: the event it was for, what the event's saves that landed
    /// changed (an edit, empty when none landed), the error, and the highest generation the
    /// failure used up.
    pub fn save_failed(
        &mut self,
        at: Timestamp,
        before: u64,
        after: u64,
        state: StateName,
        edits: &Edits,
        failure: &Failure<'_>,
    ) -> Vec<u8> {
        let set = edits.members();
        let mut out = self.held(at);
        let line = Line {
            edit: Some("partly saved"),
            event: failure.event,
            set: Some(OrderedMembers(&set)),
            removed: Some(&edits.removed),
            failed: Some(failure.error),
            used: Some(failure.used),
            ..self.head(at, before, after, state)
        };
        push(&mut out, &line);
        out
    }

    /// Reports a failed append, once per engine; the event it was for is not failed.
    pub fn append_failed(&mut self, path: &std::path::Path, error: &dyn std::fmt::Display) {
        if !self.failed {
            self.failed = true;
            tracing::warn!(path = %path.display(), %error, "cannot append to the journal; it will be incomplete");
        }
    }

    fn head(&self, at: Timestamp, before: u64, after: u64, state: StateName) -> Line<'_> {
        Line {
            at: timestamp::format(at),
            by: &self.by,
            before: Some(before),
            after: Some(after),
            state: Some(state),
            ..Line::default()
        }
    }

    /// The lines held back, to go before the next: the `opened` line and a run of idle ticks.
    fn held(&mut self, at: Timestamp) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        if let Some(generation) = self.opened.take() {
            let since = self.ticks.as_ref().map_or(at, |run| run.since);
            let opened = Line {
                at: timestamp::format(since),
                by: &self.by,
                opened: Some(generation),
                tz: self.zone.as_deref(),
                ..Line::default()
            };
            push(&mut out, &opened);
        }
        if let Some(run) = self.ticks.take() {
            let since = timestamp::format(run.since);
            let ticks = Line {
                ticks: Some(run.count),
                since: Some(&since),
                event: Some(&run.last),
                ..self.head(run.last.at, run.generation, run.generation, run.state)
            };
            push(&mut out, &ticks);
        }
        out
    }
}

/// One line as written: the fields of every kind, each written only when set, in this order.
#[derive(Default, serde::Serialize)]
struct Line<'a> {
    at: String,
    by: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    opened: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tz: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<StateName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ticks: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    edit: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a Event>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transitions: Option<&'a [Transition]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    effects: Option<&'a [Effect]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_turn: Option<bool>,
    /// For a recall: the digest delivered, `null` when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<Option<&'a Digest>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    set: Option<OrderedMembers<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    removed: Option<&'a [String]>,
    /// A failed save's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    failed: Option<&'a str>,
    /// The highest generation a failed save used up: the next save writes one more.
    #[serde(skip_serializing_if = "Option::is_none")]
    used: Option<u64>,
}

fn push(out: &mut Vec<u8>, line: &Line<'_>) {
    // A line holds only strings, numbers and the engine's own values: it always encodes.
    if serde_json::to_writer(&mut *out, line).is_ok() {
        out.push(b'\n');
    }
}
