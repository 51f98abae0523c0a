//! What a simulated run leaves behind for people: the state over time, sessions, recalls, yields,
//! requests and faults, each at its moment.
//!
//! Owns the recording and the questions asked of it afterwards (the state segments of a day, the
//! time spent asleep). It must not drive anything: the host records here, the summary and the
//! hypnogram read.

use chrono::Duration;

use crate::table::StateName;
use crate::timestamp::Timestamp;

/// A stretch of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Its start.
    pub from: Timestamp,
    /// Its end.
    pub to: Timestamp,
}

/// What a mark on the hypnogram stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    /// The daemon yielded a night (`daemon_yielded`).
    Yield,
    /// The host failed: a crash, a restart, a failed save, a lock that never came.
    Fault,
    /// A request from the user or the operator.
    Request,
}

/// One labelled moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// When.
    pub at: Timestamp,
    /// What kind.
    pub kind: MarkKind,
    /// A short label.
    pub label: String,
}

/// One recall, and whether it delivered the morning digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecallMark {
    /// When.
    pub at: Timestamp,
    /// The digest came with it.
    pub digest: bool,
}

/// The record of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// When the run began (a midnight, UTC).
    pub start: Timestamp,
    /// How many days it ran.
    pub days: u32,
    /// The state entered at each change, in order, beginning with the state at the start.
    pub states: Vec<(Timestamp, StateName)>,
    /// When the daemon process was not running.
    pub down: Vec<Span>,
    /// When the scheduler was paused.
    pub paused: Vec<Span>,
    /// The client sessions.
    pub sessions: Vec<Span>,
    /// The recalls.
    pub recalls: Vec<RecallMark>,
    /// Yields, faults and requests.
    pub marks: Vec<Mark>,
}

impl Trace {
    /// An empty record of a run of `days` days from `start`, in WAKE.
    pub fn new(start: Timestamp, days: u32) -> Self {
        Self {
            start,
            days,
            states: vec![(start, StateName::Wake)],
            down: Vec::new(),
            paused: Vec::new(),
            sessions: Vec::new(),
            recalls: Vec::new(),
            marks: Vec::new(),
        }
    }

    /// When the run ends.
    pub fn end(&self) -> Timestamp {
        self.start + Duration::days(i64::from(self.days))
    }

    /// Day `day`'s stretch (from 0).
    pub fn day(&self, day: u32) -> Span {
        let from = self.start + Duration::days(i64::from(day));
        Span { from, to: from + Duration::days(1) }
    }

    /// Which day a moment falls on, if within the run.
    pub fn day_of(&self, at: Timestamp) -> Option<u32> {
        let secs = (at - self.start).num_seconds();
        let day = u32::try_from(secs.div_euclid(86_400)).ok()?;
        (secs >= 0 && day < self.days).then_some(day)
    }

    /// Records the state entered at `at` (nothing when it is the current one).
    pub fn enter(&mut self, at: Timestamp, state: StateName) {
        if self.states.last().is_none_or(|&(_, current)| current != state) {
            self.states.push((at, state));
        }
    }

    /// Records a labelled moment.
    pub fn mark(&mut self, at: Timestamp, kind: MarkKind, label: impl Into<String>) {
        self.marks.push(Mark { at, kind, label: label.into() });
    }

    /// The states held within `span`, as `(from, to, state)` pieces clipped to it, in order.
    /// A state entered and left at the same moment (SLEEP between two cycles) gives a piece of no
    /// length, which a drawing may still show.
    pub fn segments(&self, span: Span) -> Vec<(Timestamp, Timestamp, StateName)> {
        let mut pieces = Vec::new();
        for (i, &(from, state)) in self.states.iter().enumerate() {
            let to = self.states.get(i + 1).map_or(self.end(), |&(next, _)| next);
            if to < span.from || from > span.to || (to == span.from && from < to) {
                continue;
            }
            pieces.push((from.max(span.from), to.min(span.to), state));
        }
        pieces
    }

    /// How many nights began (TRANSITIONING to SLEEP) within `span`.
    pub fn nights(&self, span: Span) -> usize {
        self.states
            .windows(2)
            .filter(|pair| {
                let ((_, from), (at, to)) = (pair[0], pair[1]);
                from == StateName::Transitioning
                    && to == StateName::Sleep
                    && span.from <= at
                    && at < span.to
            })
            .count()
    }

    /// How long the daemon was out of WAKE within `span`.
    pub fn asleep(&self, span: Span) -> Duration {
        self.segments(span)
            .into_iter()
            .filter(|&(_, _, state)| state != StateName::Wake)
            .map(|(from, to, _)| to - from)
            .sum()
    }
}

/// A yield reason as short as the hypnogram needs it.
pub fn yield_label(reason: &str) -> &str {
    match reason {
        "mcp_active" => "lock denied",
        "lock_timeout" => "lock timeout",
        "force_wake_requested" => "force-wake",
        "mcp_reacquired_mid_night" => "lock lost",
        "mcp_recent_activity" => "client active",
        other => other,
    }
}

/// The hypnogram's label for a request, by the event's protocol type (`force_rem`, ...).
pub fn request_label(event_type: &str) -> Option<&'static str> {
    match event_type {
        "force_rem" => Some("force-rem"),
        "user_initiated_sleep" => Some("bedtime"),
        "force_wake" => Some("force-wake"),
        "pause" => Some("pause"),
        _ => None,
    }
}

/// Clips spans to `span`, dropping those outside it.
pub fn clip(spans: &[Span], span: Span) -> impl Iterator<Item = Span> + '_ {
    spans
        .iter()
        .filter(move |s| s.to > span.from && s.from < span.to)
        .map(move |s| Span { from: s.from.max(span.from), to: s.to.min(span.to) })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use StateName::{Dreaming, Sleep, Transitioning, Wake};

    fn at(day: u32, h: u32, m: u32) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 4, 20 + day, h, m, 0).unwrap()
    }

    #[track_caller]
    fn check(day: u32, segments: &[(Timestamp, Timestamp, StateName)], asleep_minutes: i64) {
        let mut trace = Trace::new(at(0, 0, 0), 2);
        // A night across midnight, its cycles split by SLEEP held for no time.
        for (moment, state) in [
            (at(0, 23, 0), Transitioning),
            (at(0, 23, 1), Sleep),
            (at(0, 23, 1), Dreaming),
            (at(1, 0, 20), Sleep),
            (at(1, 0, 20), Dreaming),
            (at(1, 0, 50), Sleep),
            (at(1, 0, 50), Wake),
        ] {
            trace.enter(moment, state);
        }
        let span = trace.day(day);
        assert_eq!(trace.segments(span), segments);
        assert_eq!(trace.asleep(span).num_minutes(), asleep_minutes);
    }

    #[test]
    fn a_night_across_midnight_is_cut_at_the_day_line() {
        check(
            0,
            &[
                (at(0, 0, 0), at(0, 23, 0), Wake),
                (at(0, 23, 0), at(0, 23, 1), Transitioning),
                (at(0, 23, 1), at(0, 23, 1), Sleep),
                (at(0, 23, 1), at(1, 0, 0), Dreaming),
            ],
            60,
        );
        check(
            1,
            &[
                (at(1, 0, 0), at(1, 0, 20), Dreaming),
                (at(1, 0, 20), at(1, 0, 20), Sleep),
                (at(1, 0, 20), at(1, 0, 50), Dreaming),
                (at(1, 0, 50), at(1, 0, 50), Sleep),
                (at(1, 0, 50), at(2, 0, 0), Wake),
            ],
            50,
        );
    }
}
