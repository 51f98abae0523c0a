//! The nights read back from the journal: when each began and ended, its cycles, what started it
//! and what ended it, the digest it led to, sessions and nights per day, and where the journal is
//! incomplete; and the same run as a hypnogram's [`Trace`].
//!
//! Owns the reading of journal lines (`journal.rs` says what they hold) as nights. A night attempt
//! starts at WAKE -> TRANSITIONING (its reason: `quiet_window`, `idle`, `user_sleep_request`,
//! `force_rem_request`), begins at TRANSITIONING -> SLEEP, counts a cycle at each DREAMING ->
//! SLEEP (`rem_cycle_finished`), plans as many as its `run_rem_cycle` effects' `of`, and ends when
//! the machine is back in WAKE (the transition's reason; `daemon_yielded` says which yield). These
//! are the notions `simulate` counts (attempts, nights begun, cycles finished, yields by reason,
//! digests delivered), so both tell the same week the same way.
//!
//! A journal is incomplete where a line's `before` generation is past the previous line's `after`
//! (lines of every engine, in file order), or where its last `after` is behind the state file's
//! `generation`: each such gap is reported, never smoothed over. It must not write anything.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::doc::{Doc, ordered};
use crate::simulate::trace::{self, MarkKind, RecallMark, Span, Trace};
use crate::table::StateName;
use crate::timestamp::{self, Timestamp};

/// One journal line, as far as the history reads it: every member optional.
#[derive(Debug, Default, Deserialize)]
struct Line {
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    opened: Option<u64>,
    #[serde(default)]
    before: Option<u64>,
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    event: Option<LineEvent>,
    #[serde(default)]
    transitions: Vec<LineTransition>,
    #[serde(default)]
    effects: Vec<LineEffect>,
    /// Present on a recall; `null` when no digest came with it.
    #[serde(default)]
    digest: Option<IgnoredAny>,
    #[serde(default)]
    rejected: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
struct LineEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    session_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LineTransition {
    from: String,
    to: String,
    reason: String,
    at: String,
}

#[derive(Debug, Deserialize)]
struct LineEffect {
    effect: String,
    #[serde(default)]
    of: Option<u64>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    payload: Option<Payload>,
}

#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(default)]
    reason: Option<String>,
}

/// One night, or an attempt at one that yielded before it began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Night {
    /// WAKE -> TRANSITIONING; `None` when the journal lost it.
    pub started_at: Option<Timestamp>,
    /// What started it: the transition's reason.
    pub started_by: Option<String>,
    /// TRANSITIONING -> SLEEP (the lock came): `None` for an attempt that never began.
    pub slept_at: Option<Timestamp>,
    /// Back in WAKE; `None` while it runs or when the journal lost it.
    pub ended_at: Option<Timestamp>,
    /// What ended it: the transition's reason (`cycles_done`, `lock_denied`, ...).
    pub ended_by: Option<String>,
    /// The reason of the `daemon_yielded` it emitted, if it yielded.
    pub yielded: Option<String>,
    /// The most cycles its `run_rem_cycle` effects planned.
    pub cycles_planned: u64,
    /// Its DREAMING -> SLEEP transitions.
    pub cycles_completed: u64,
    /// The first recall after it that delivered the digest.
    pub digest_delivered_at: Option<Timestamp>,
}

impl Night {
    fn new(started_at: Option<Timestamp>, started_by: Option<String>) -> Self {
        Self {
            started_at,
            started_by,
            slept_at: None,
            ended_at: None,
            ended_by: None,
            yielded: None,
            cycles_planned: 0,
            cycles_completed: 0,
            digest_delivered_at: None,
        }
    }

    /// The moment it is filed under: its start, else its first known moment.
    pub fn moment(&self) -> Option<Timestamp> {
        self.started_at.or(self.slept_at).or(self.ended_at)
    }

    fn to_doc(&self) -> Doc {
        let at = |moment: Option<Timestamp>| moment.map(timestamp::format);
        ordered! {
            "started_at": at(self.started_at),
            "ended_at": at(self.ended_at),
            "cycles_planned": self.cycles_planned,
            "cycles_completed": self.cycles_completed,
            "started_by": self.started_by,
            "ended_by": self.ended_by,
            "digest_delivered_at": at(self.digest_delivered_at),
            "slept_at": at(self.slept_at),
            "yielded": self.yielded,
        }
    }
}

/// Where the journal is incomplete: the generations between `from` and `to` left no line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The last generation the journal tells.
    pub from: u64,
    /// The next generation it tells (the state file's, for a lost tail).
    pub to: u64,
    /// About when: the moment of the line after the gap (of the last line, for a lost tail).
    pub around: Option<Timestamp>,
}

impl Gap {
    /// The gap in words.
    pub fn text(&self) -> String {
        let around = self.around.map_or_else(String::new, |at| format!(" (around {})", short(at)));
        format!("journal incomplete between GEN {} and {}{around}", self.from, self.to)
    }
}

/// What one UTC day saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Day {
    /// Client sessions opened.
    pub sessions: u64,
    /// Nights begun (TRANSITIONING -> SLEEP).
    pub nights: u64,
    /// REM cycles finished.
    pub cycles: u64,
}

/// The run's counts, in `simulate`'s terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// WAKE -> TRANSITIONING.
    pub attempts: u64,
    /// TRANSITIONING -> SLEEP.
    pub nights: u64,
    /// DREAMING -> SLEEP.
    pub cycles: u64,
    /// `daemon_yielded`, by reason.
    pub yields: BTreeMap<String, u64>,
    /// Recalls that delivered the digest.
    pub digests: u64,
    /// Client sessions opened.
    pub sessions: u64,
}

/// The journal read as nights.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// The nights and attempts, oldest first.
    pub nights: Vec<Night>,
    /// Per UTC day, in order.
    pub days: BTreeMap<NaiveDate, Day>,
    /// Where the journal is incomplete, in order.
    pub gaps: Vec<Gap>,
    /// The counts.
    pub totals: Totals,
    /// Lines that were not JSON objects the history could read (skipped).
    pub unreadable: u64,
    /// Lines read.
    pub lines: u64,
    /// The first and the last moment of the journal.
    pub first_at: Option<Timestamp>,
    /// The last moment.
    pub last_at: Option<Timestamp>,
    /// The last `after` generation.
    pub last_generation: Option<u64>,
}

impl Line {
    /// The state the engine was in when this line's event came: its first transition's, else
    /// the state it stayed in.
    fn started_from(&self) -> Option<StateName> {
        self.transitions
            .first()
            .and_then(|t| StateName::parse(&t.from))
            .or_else(|| self.state.as_deref().and_then(StateName::parse))
    }
}

fn short(at: Timestamp) -> String {
    at.format("%Y-%m-%d %H:%M").to_string()
}

fn moment(text: &Option<String>) -> Option<Timestamp> {
    text.as_deref().and_then(timestamp::parse)
}

/// Every line that parses, in order, and how many did not.
fn lines(bytes: &[u8]) -> (Vec<Line>, u64) {
    let mut read = Vec::new();
    let mut unreadable = 0;
    for text in bytes.split(|&b| b == b'\n') {
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Line>(text) {
            Ok(line) => read.push(line),
            Err(_) => unreadable += 1,
        }
    }
    (read, unreadable)
}

/// Reads the journal's bytes (`Store::read_journal`), with the state file's generation when known.
pub fn read(bytes: &[u8], file_generation: Option<u64>) -> History {
    let (lines, unreadable) = lines(bytes);
    let mut history = History { unreadable, lines: lines.len() as u64, ..History::default() };
    let mut open: Option<usize> = None;
    let mut state = StateName::Wake;
    for line in &lines {
        history.line(line, &mut open, &mut state);
    }
    if let (Some(file), Some(last)) = (file_generation, history.last_generation)
        && file > last
    {
        history.gaps.push(Gap { from: last, to: file, around: history.last_at });
    }
    history
}

impl History {
    fn day(&mut self, at: Option<Timestamp>) -> Option<&mut Day> {
        at.map(|at| self.days.entry(at.date_naive()).or_default())
    }

    fn line(&mut self, line: &Line, open: &mut Option<usize>, state: &mut StateName) {
        let at = moment(&line.at);
        if at.is_some() {
            self.first_at = self.first_at.or(at);
            self.last_at = at;
        }
        let (before, after) = match line.opened {
            Some(generation) => (Some(generation), Some(generation)),
            None => (line.before, line.after),
        };
        if let (Some(last), Some(before)) = (self.last_generation, before)
            && before > last
        {
            self.gaps.push(Gap { from: last, to: before, around: at });
            // The machine may have moved unseen: follow the state this line started from.
            let seen = line.started_from();
            if let Some(seen) = seen {
                self.resync(*state, seen, open);
                *state = seen;
            }
        }
        if after.is_some() {
            self.last_generation = after.max(self.last_generation);
        }
        let Some(event) = &line.event else {
            return;
        };
        if line.rejected.is_some() {
            return;
        }
        match event.kind.as_str() {
            "session_open" => {
                self.totals.sessions += 1;
                if let Some(day) = self.day(at) {
                    day.sessions += 1;
                }
            }
            "recall" if line.digest.is_some() => {
                self.totals.digests += 1;
                let night = self.nights.iter_mut().rev().find(|n| n.cycles_completed > 0);
                if let Some(night) = night.filter(|n| n.digest_delivered_at.is_none()) {
                    night.digest_delivered_at = at;
                }
            }
            _ => {}
        }
        for t in &line.transitions {
            let (Some(from), Some(to)) = (StateName::parse(&t.from), StateName::parse(&t.to)) else {
                continue;
            };
            let when = timestamp::parse(&t.at).or(at);
            self.transition(from, to, &t.reason, when, open);
            *state = to;
        }
        for effect in &line.effects {
            match (effect.effect.as_str(), effect.kind.as_deref()) {
                ("run_rem_cycle", _) => {
                    let index = *open.get_or_insert_with(|| self.lost_start(at));
                    let night = &mut self.nights[index];
                    night.cycles_planned = night.cycles_planned.max(effect.of.unwrap_or(0));
                }
                ("emit", Some("daemon_yielded")) => {
                    let reason = effect
                        .payload
                        .as_ref()
                        .and_then(|p| p.reason.clone())
                        .unwrap_or_else(|| "unknown".to_owned());
                    *self.totals.yields.entry(reason.clone()).or_default() += 1;
                    // The attempt it ends was closed by the line's transition: the latest one.
                    if let Some(night) = self.nights.last_mut()
                        && night.yielded.is_none()
                    {
                        night.yielded = Some(reason);
                    }
                }
                _ => {}
            }
        }
        if let Some(seen) = line.state.as_deref().and_then(StateName::parse) {
            *state = seen;
        }
    }

    /// A night whose start the journal lost: opened where it first shows.
    fn lost_start(&mut self, _at: Option<Timestamp>) -> usize {
        self.nights.push(Night::new(None, None));
        self.nights.len() - 1
    }

    /// After a gap: the machine went from `was` to `now` unseen.
    fn resync(&mut self, was: StateName, now: StateName, open: &mut Option<usize>) {
        if was == now {
            return;
        }
        if now == StateName::Wake {
            // The night ended unseen.
            *open = None;
        } else if open.is_none() {
            *open = Some(self.lost_start(None));
        }
    }

    fn transition(
        &mut self,
        from: StateName,
        to: StateName,
        reason: &str,
        at: Option<Timestamp>,
        open: &mut Option<usize>,
    ) {
        use StateName::{Dreaming, Sleep, Transitioning, Wake};
        match (from, to) {
            (Wake, Transitioning) => {
                self.totals.attempts += 1;
                self.nights.push(Night::new(at, Some(reason.to_owned())));
                *open = Some(self.nights.len() - 1);
            }
            (Transitioning, Sleep) => {
                self.totals.nights += 1;
                if let Some(day) = self.day(at) {
                    day.nights += 1;
                }
                let index = *open.get_or_insert_with(|| self.lost_start(at));
                self.nights[index].slept_at = at;
            }
            (Dreaming, Sleep) if reason == "rem_cycle_finished" => {
                self.totals.cycles += 1;
                if let Some(day) = self.day(at) {
                    day.cycles += 1;
                }
                let index = *open.get_or_insert_with(|| self.lost_start(at));
                self.nights[index].cycles_completed += 1;
            }
            (_, Wake) => {
                let index = *open.get_or_insert_with(|| self.lost_start(at));
                let night = &mut self.nights[index];
                night.ended_at = at;
                night.ended_by = Some(reason.to_owned());
                *open = None;
            }
            _ => {}
        }
    }

    /// The first and the number of whole UTC days the journal covers: from the midnight of its
    /// first moment to its last moment, at least one.
    pub fn span(&self) -> Option<(Timestamp, u32)> {
        let first = self.first_at?;
        let last = self.last_at.unwrap_or(first);
        let start = midnight(first);
        let secs = (last - start).num_seconds().max(1);
        let days = u32::try_from((secs + 86_399) / 86_400).unwrap_or(u32::MAX).max(1);
        Some((start, days))
    }

    /// The last `days` days of the journal's span (all of it when `None`).
    pub fn window(&self, days: Option<u32>) -> Option<(Timestamp, u32)> {
        let (start, all) = self.span()?;
        match days {
            Some(n) if n < all => Some((start + Duration::days(i64::from(all - n)), n)),
            _ => Some((start, all)),
        }
    }

    /// The history limited to nights and days from `from` on, its totals counted again from
    /// them (digests as the nights that led to one); the gaps are all kept.
    pub fn since(mut self, from: Timestamp) -> Self {
        if self.first_at.is_some_and(|first| first >= from) {
            return self;
        }
        self.nights.retain(|n| n.moment().is_none_or(|at| at >= from));
        let first = from.date_naive();
        self.days.retain(|date, _| *date >= first);
        let mut totals = Totals {
            attempts: self.nights.iter().filter(|n| n.started_at.is_some()).count() as u64,
            nights: self.days.values().map(|d| d.nights).sum(),
            cycles: self.days.values().map(|d| d.cycles).sum(),
            sessions: self.days.values().map(|d| d.sessions).sum(),
            digests: self.nights.iter().filter(|n| n.digest_delivered_at.is_some()).count() as u64,
            yields: BTreeMap::new(),
        };
        for reason in self.nights.iter().filter_map(|n| n.yielded.clone()) {
            *totals.yields.entry(reason).or_default() += 1;
        }
        self.totals = totals;
        self
    }

    /// The `--json` document.
    pub(crate) fn to_doc(&self, notes: &[String]) -> Doc {
        let nights: Vec<Doc> = self.nights.iter().map(Night::to_doc).collect();
        let days: Vec<Doc> = self
            .days
            .iter()
            .map(|(date, d)| {
                ordered! {
                    "date": date.format("%Y-%m-%d").to_string(),
                    "sessions": d.sessions,
                    "nights": d.nights,
                    "cycles": d.cycles,
                }
            })
            .collect();
        let gaps: Vec<Doc> = self
            .gaps
            .iter()
            .map(|g| {
                ordered! {
                    "from_generation": g.from,
                    "to_generation": g.to,
                    "around": g.around.map(timestamp::format),
                    "text": g.text(),
                }
            })
            .collect();
        let t = &self.totals;
        Doc::ok(true)
            .with("nights", nights)
            .with("sessions_per_day", days)
            .with("gaps", gaps)
            .with(
                "totals",
                ordered! {
                    "attempts": t.attempts,
                    "nights": t.nights,
                    "cycles": t.cycles,
                    "yields": t.yields,
                    "digests_delivered": t.digests,
                    "sessions": t.sessions,
                },
            )
            .with("lines", self.lines)
            .with("unreadable_lines", self.unreadable)
            .with("notes", notes)
    }

    /// The human text: a line per night, the days, the gaps.
    pub fn text(&self, notes: &[String]) -> String {
        let mut out = String::new();
        for note in notes {
            out.push_str(&format!("note: {note}\n"));
        }
        for night in &self.nights {
            out.push_str(&night_line(night));
            out.push('\n');
        }
        if !self.days.is_empty() {
            out.push_str("per day (UTC)\n");
            for (date, d) in &self.days {
                out.push_str(&format!(
                    "  {} {}  sessions {:>2}  nights {}  cycles {:>2}\n",
                    date.format("%a"),
                    date,
                    d.sessions,
                    d.nights,
                    d.cycles
                ));
            }
        }
        for gap in &self.gaps {
            out.push_str(&format!("{}\n", gap.text()));
        }
        let t = &self.totals;
        let yields: u64 = t.yields.values().sum();
        out.push_str(&format!(
            "{} nights begun of {} attempts, {} cycles, {} yields, {} digests delivered\n",
            t.nights, t.attempts, t.cycles, yields, t.digests
        ));
        if self.unreadable > 0 {
            out.push_str(&format!("{} unreadable lines skipped\n", self.unreadable));
        }
        out
    }
}

/// One night in words.
fn night_line(night: &Night) -> String {
    let start = night.started_at.map_or_else(|| "?".to_owned(), short);
    let end = match (night.started_at, night.ended_at) {
        (Some(from), Some(to)) if from.date_naive() == to.date_naive() => {
            to.format("%H:%M").to_string()
        }
        (_, Some(to)) => short(to),
        (_, None) => "...".to_owned(),
    };
    let started_by = night.started_by.as_deref().unwrap_or("unknown (journal incomplete)");
    let ended = match (&night.ended_by, &night.yielded) {
        (Some(by), Some(y)) if by != y => format!("{by} (yield {y})"),
        (Some(by), Some(_)) => format!("{by} (yield)"),
        (Some(by), None) => by.clone(),
        (None, _) if night.ended_at.is_none() && night.started_at.is_some() => "running".to_owned(),
        (None, _) => "unknown (journal incomplete)".to_owned(),
    };
    let began = night.slept_at.is_some() || night.cycles_planned > 0;
    let kind = if began { "night  " } else { "attempt" };
    let mut line = format!(
        "{kind} {start} -> {end}  cycles {}/{}  started by {started_by}  ended by {ended}",
        night.cycles_completed, night.cycles_planned
    );
    if let Some(at) = night.digest_delivered_at {
        line.push_str(&format!("  digest {}", short(at)));
    }
    if night.slept_at.is_none() && night.cycles_planned > 0 {
        line.push_str("  (it began in a journal gap)");
    }
    line
}

fn midnight(at: Timestamp) -> Timestamp {
    let date = at.date_naive();
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// The hypnogram's record of `days` days from `start`, read from the journal's bytes: the states
/// from the transitions, sessions (opened to their last recall), recalls and the digest, yields,
/// requests, pauses, and where the daemon was down (a shutdown until the next engine opened the
/// file) or restarted after a crash, and the gaps of the journal.
pub fn trace(bytes: &[u8], start: Timestamp, days: u32) -> Trace {
    let (lines, _) = lines(bytes);
    let mut t = Trace::new(start, days);
    let mut states: Vec<(Timestamp, StateName)> = Vec::new();
    let mut sessions: Vec<(String, Span)> = Vec::new();
    let mut paused_since: Option<Timestamp> = None;
    let mut shutdown_at: Option<(String, Timestamp)> = None;
    let mut last_by: Option<String> = None;
    let mut last_generation: Option<u64> = None;
    for line in &lines {
        let Some(at) = moment(&line.at) else {
            continue;
        };
        if let Some(generation) = line.opened {
            if let Some(by) = &last_by
                && line.by.as_ref() != Some(by)
            {
                match shutdown_at.take() {
                    Some((_, down)) => {
                        t.down.push(Span { from: down, to: at });
                        t.mark(down, MarkKind::Fault, "restart");
                    }
                    None => t.mark(at, MarkKind::Fault, "crash"),
                }
            }
            if last_generation.is_some_and(|last| generation > last) {
                t.mark(at, MarkKind::Fault, "journal gap");
            }
            last_generation = Some(generation).max(last_generation);
            continue;
        }
        if let (Some(last), Some(before)) = (last_generation, line.before)
            && before > last
        {
            t.mark(at, MarkKind::Fault, "journal gap");
            let seen = line.started_from();
            if let Some(seen) = seen {
                states.push((at, seen));
            }
        }
        if line.after.is_some() {
            last_generation = line.after.max(last_generation);
        }
        last_by.clone_from(&line.by);
        let Some(event) = &line.event else {
            continue;
        };
        if let Some(label) = trace::request_label(&event.kind) {
            t.mark(at, MarkKind::Request, label);
        }
        if line.rejected.is_some() {
            continue;
        }
        match event.kind.as_str() {
            "session_open" => {
                let id = event.session_id.clone().unwrap_or_default();
                sessions.push((id, Span { from: at, to: at }));
            }
            "recall" => {
                t.recalls.push(RecallMark { at, digest: line.digest.is_some() });
                let id = event.session_id.as_deref().unwrap_or_default();
                if let Some((_, span)) = sessions.iter_mut().rev().find(|(s, _)| s == id) {
                    span.to = span.to.max(at);
                }
            }
            "pause" => {
                paused_since = paused_since.or(Some(at));
            }
            "resume" => {
                if let Some(since) = paused_since.take() {
                    t.paused.push(Span { from: since, to: at });
                }
            }
            "shutdown" => shutdown_at = line.by.clone().map(|by| (by, at)),
            _ => {}
        }
        for tr in &line.transitions {
            if let Some(to) = StateName::parse(&tr.to) {
                states.push((timestamp::parse(&tr.at).unwrap_or(at), to));
            }
        }
        for effect in &line.effects {
            if effect.effect == "emit" && effect.kind.as_deref() == Some("daemon_yielded") {
                let reason = effect.payload.as_ref().and_then(|p| p.reason.as_deref());
                t.mark(at, MarkKind::Yield, trace::yield_label(reason.unwrap_or("unknown")));
            }
        }
    }
    if let Some(since) = paused_since {
        t.paused.push(Span { from: since, to: t.end() });
    }
    t.sessions = sessions.into_iter().map(|(_, span)| span).collect();
    // The state at the start of the window, then each change within it.
    let mut current = StateName::Wake;
    let mut changes = Vec::new();
    for (at, state) in states {
        if at <= start {
            current = state;
        } else {
            changes.push((at, state));
        }
    }
    t.states = vec![(start, current)];
    for (at, state) in changes {
        t.enter(at, state);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_lines_are_counted_and_skipped() {
        let history = read(b"not json\n{\"at\":\"2026-04-20T00:00:00+00:00\",\"opened\":0}\n[1]\n", None);
        assert_eq!((history.lines, history.unreadable), (1, 2));
    }
}
