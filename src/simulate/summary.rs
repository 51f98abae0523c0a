//! The figures a run adds up, and how they are printed: a progress line per day, then a summary
//! table, or one JSON document.
//!
//! Owns the counters and their presentation. It must not depend on anything that differs between
//! two runs of one seed (the wall clock, the directory's name, hash order): the state file's path
//! is printed apart, after the summary.

use std::collections::BTreeMap;
use std::io::{self, Write};

use chrono::{Datelike, Duration};

use crate::doc::{Doc, ordered};
use crate::table::StateName;

use super::rows::{Coverage, describe};
use super::trace::Trace;

/// What happened on one simulated day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayTally {
    /// Sessions opened.
    pub sessions: u64,
    /// Recalls made.
    pub recalls: u64,
    /// Nights begun (the lock came).
    pub nights: u64,
    /// REM cycles finished.
    pub cycles: u64,
    /// The reasons of the yields, in order.
    pub yields: Vec<String>,
    /// The host's mishaps and the requests, in order.
    pub events: Vec<String>,
}

/// The run's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Ticks delivered.
    pub ticks: u64,
    /// Sessions opened.
    pub sessions: u64,
    /// Recalls made.
    pub recalls: u64,
    /// Recalls that were their session's first turn.
    pub first_turns: u64,
    /// Recalls that delivered the morning digest.
    pub digests: u64,
    /// Times the daemon began to fall asleep (WAKE to TRANSITIONING).
    pub attempts: u64,
    /// Nights begun (TRANSITIONING to SLEEP).
    pub nights: u64,
    /// REM cycles finished.
    pub cycles: u64,
    /// REM cycles cut off by a crash or a restart.
    pub cycles_lost: u64,
    /// Yields by reason.
    pub yields: BTreeMap<String, u64>,
    /// Times the host process died.
    pub crashes: u64,
    /// Times the host shut down and started again.
    pub restarts: u64,
    /// Boots that found a night in the state file (`fsm_recovered`).
    pub recoveries: u64,
    /// Host events the engine refused, by event.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Ticks that moved the machine before the deadline the engine had given.
    pub early_ticks: u64,
    /// First turns the 1 h reaper dropped.
    pub expired_first_turns: u64,
    /// Durable writes, across every engine the run opened.
    pub durable_writes: u64,
    /// Per day.
    pub days: Vec<DayTally>,
}

impl Tally {
    /// A tally for `days` days.
    pub fn new(days: u32) -> Self {
        Self { days: vec![DayTally::default(); days as usize], ..Self::default() }
    }

    /// The day's tally, for day `day` (the last day for moments past the end).
    pub fn day(&mut self, day: Option<u32>) -> &mut DayTally {
        let last = self.days.len().saturating_sub(1);
        let index = day.map_or(last, |d| (d as usize).min(last));
        &mut self.days[index]
    }
}

/// Everything the summary shows.
pub struct Report<'a> {
    /// Days simulated.
    pub days: u32,
    /// The seed.
    pub seed: u64,
    /// The counters.
    pub tally: &'a Tally,
    /// Rows taken.
    pub rows: &'a Coverage,
    /// The record of the run.
    pub trace: &'a Trace,
    /// The state at the end.
    pub final_state: StateName,
}

fn hours(d: Duration) -> String {
    let minutes = d.num_minutes();
    format!("{}h{:02}", minutes / 60, minutes % 60)
}

/// One progress line for day `day` (from 0).
pub fn day_line(tally: &Tally, trace: &Trace, day: u32) -> String {
    let t = &tally.days[day as usize];
    let span = trace.day(day);
    let mut line = format!(
        "day {:>2}  {} {}  sessions {:>2}  recalls {:>3}  nights {}  cycles {:>2}  asleep {}",
        day + 1,
        span.from.weekday(),
        span.from.format("%Y-%m-%d"),
        t.sessions,
        t.recalls,
        t.nights,
        t.cycles,
        hours(trace.asleep(span)),
    );
    if !t.yields.is_empty() {
        line.push_str(&format!("  yields: {}", t.yields.join(", ")));
    }
    if !t.events.is_empty() {
        line.push_str(&format!("  events: {}", t.events.join(", ")));
    }
    line
}

fn counts<K: std::fmt::Display>(map: &BTreeMap<K, u64>) -> String {
    if map.is_empty() {
        return "none".to_owned();
    }
    map.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

/// The summary table.
pub fn write_text(out: &mut dyn Write, report: &Report<'_>) -> io::Result<()> {
    let t = report.tally;
    let moving: Vec<_> = report.rows.moving().collect();
    let never = report.rows.moving_never_taken();
    let total_yields: u64 = t.yields.values().sum();
    let lines: Vec<(&str, String)> = vec![
        ("days", format!("{} (seed {})", report.days, report.seed)),
        ("sessions", format!("{} ({} recalls)", t.sessions, t.recalls)),
        ("nights", format!("{} begun of {} attempts", t.nights, t.attempts)),
        ("REM cycles", format!("{} finished, {} cut off", t.cycles, t.cycles_lost)),
        ("yields", format!("{total_yields} ({})", counts(&t.yields))),
        ("digests delivered", t.digests.to_string()),
        ("first turns consumed", format!("{} ({} expired)", t.first_turns, t.expired_first_turns)),
        (
            "crashes / restarts",
            format!("{} / {} ({} recovered at boot)", t.crashes, t.restarts, t.recoveries),
        ),
        ("events refused", counts(&t.rejected)),
        ("early ticks", format!("{} (moved before the engine's next deadline)", t.early_ticks)),
        ("durable writes", t.durable_writes.to_string()),
        ("final state", report.final_state.to_string()),
        (
            "rows taken",
            format!(
                "{} of {} that move the machine; {} of {} in all",
                moving.len() - never.len(),
                moving.len(),
                report.rows.rows_taken(),
                crate::table::TABLE.len()
            ),
        ),
    ];
    writeln!(out, "summary")?;
    for (name, value) in lines {
        writeln!(out, "  {name:<22}{value}")?;
    }
    if never.is_empty() {
        writeln!(out, "  every row that moves the machine was taken")?;
    } else {
        writeln!(out, "  rows that move the machine, never taken:")?;
        for row in never {
            writeln!(out, "    {}", describe(row))?;
        }
    }
    for what in report.rows.unmatched() {
        writeln!(out, "  no single row for: {what}")?;
    }
    Ok(())
}

/// The summary as one JSON document (without the state file's path, which the caller adds).
pub fn to_json(report: &Report<'_>) -> Doc {
    let t = report.tally;
    let moving: Vec<Doc> =
        report.rows.moving().map(|(row, n)| ordered! {"row": describe(row), "taken": n}).collect();
    let never: Vec<String> = report.rows.moving_never_taken().into_iter().map(describe).collect();
    let days: Vec<Doc> = t
        .days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let span = report.trace.day(i as u32);
            ordered! {
                "day": i + 1,
                "date": span.from.format("%Y-%m-%d").to_string(),
                "sessions": d.sessions,
                "recalls": d.recalls,
                "nights": d.nights,
                "cycles": d.cycles,
                "asleep_minutes": report.trace.asleep(span).num_minutes(),
                "yields": d.yields,
                "events": d.events,
            }
        })
        .collect();
    ordered! {
        "days": report.days,
        "seed": report.seed,
        "ticks": t.ticks,
        "sessions": t.sessions,
        "recalls": t.recalls,
        "attempts": t.attempts,
        "nights": t.nights,
        "rem_cycles": t.cycles,
        "rem_cycles_cut_off": t.cycles_lost,
        "yields": t.yields,
        "digests_delivered": t.digests,
        "first_turns_consumed": t.first_turns,
        "first_turns_expired": t.expired_first_turns,
        "crashes": t.crashes,
        "restarts": t.restarts,
        "recoveries": t.recoveries,
        "events_refused": t.rejected,
        "early_ticks": t.early_ticks,
        "durable_writes": t.durable_writes,
        "final_state": report.final_state.as_str(),
        "rows": ordered! {
            "moving": moving,
            "moving_never_taken": never,
            "taken_in_all": report.rows.rows_taken(),
            "staying_never_taken": report.rows.staying_never_taken().into_iter().map(describe).collect::<Vec<_>>(),
            "in_table": crate::table::TABLE.len(),
            "unmatched": report.rows.unmatched(),
        },
        "per_day": days,
    }
}
