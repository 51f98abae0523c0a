//! Which rows of the transition table a run took, found by matching what each event did against
//! `table::TABLE`.
//!
//! Owns the matching and the tally per row. It must not change the table or ask the engine for
//! more than its public outcome: a row is recognised from the state before, the event, the
//! transitions taken and their reasons.

use crate::event::Trigger;
use crate::kernel::Outcome;
use crate::table::{Guard, Row, StateName, TABLE, Target};

/// How often each row of the table was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    taken: Vec<u64>,
    unmatched: Vec<String>,
}

impl Default for Coverage {
    fn default() -> Self {
        Self { taken: vec![0; TABLE.len()], unmatched: Vec::new() }
    }
}

impl Coverage {
    /// Notes what one accepted event did: the state it arrived in, its trigger, the outcome, and
    /// the skip reason the engine recorded afterwards (which tells apart WAKE's staying ticks).
    pub fn observe(
        &mut self,
        before: StateName,
        trigger: Trigger,
        outcome: &Outcome,
        skip_reason: Option<&str>,
    ) {
        if outcome.transitions.is_empty() {
            let guard = (before == StateName::Wake && trigger == Trigger::Tick)
                .then(|| skip_reason.and_then(staying_tick_guard))
                .flatten();
            self.count(before, trigger, Target::Stay, guard, "stayed");
        }
        for t in &outcome.transitions {
            let guard = (t.from == StateName::Sleep && t.trigger == Trigger::Continue)
                .then(|| waking_guard(t.reason))
                .flatten();
            self.count(t.from, t.trigger, Target::Go(t.to), guard, t.reason);
        }
    }

    fn count(
        &mut self,
        from: StateName,
        trigger: Trigger,
        to: Target,
        guard: Option<Guard>,
        reason: &str,
    ) {
        let found: Vec<usize> = TABLE
            .iter()
            .enumerate()
            .filter(|(_, r)| r.from == from && r.trigger == trigger && r.to == to)
            .filter(|(_, r)| guard.is_none_or(|g| r.guard == g))
            .map(|(i, _)| i)
            .collect();
        match found[..] {
            [i] => self.taken[i] += 1,
            _ => {
                let what = format!("{from} {trigger} {} ({reason})", target_text(to));
                if !self.unmatched.contains(&what) {
                    self.unmatched.push(what);
                }
            }
        }
    }

    /// The rows that move the machine, with how often each was taken, in table order.
    pub fn moving(&self) -> impl Iterator<Item = (&'static Row, u64)> + '_ {
        TABLE.iter().zip(&self.taken).filter(|(r, _)| moves(r)).map(|(r, &n)| (r, n))
    }

    /// The rows that move the machine and were never taken.
    pub fn moving_never_taken(&self) -> Vec<&'static Row> {
        self.moving().filter(|&(_, n)| n == 0).map(|(r, _)| r).collect()
    }

    /// The rows that keep the machine where it is and were never taken.
    pub fn staying_never_taken(&self) -> Vec<&'static Row> {
        TABLE
            .iter()
            .zip(&self.taken)
            .filter(|&(r, &n)| !moves(r) && n == 0)
            .map(|(r, _)| r)
            .collect()
    }

    /// How many rows of the whole table were taken at least once.
    pub fn rows_taken(&self) -> usize {
        self.taken.iter().filter(|&&n| n > 0).count()
    }

    /// What an event did that no single row describes (each once); empty when the table accounts
    /// for everything.
    pub fn unmatched(&self) -> &[String] {
        &self.unmatched
    }
}

/// Whether a row leads to another state.
pub fn moves(row: &Row) -> bool {
    matches!(row.to, Target::Go(_))
}

/// A row in one line: `SLEEP continue [cycles done] -> WAKE`.
pub fn describe(row: &Row) -> String {
    let guard = match row.guard.label() {
        "" => String::new(),
        label => format!(" [{label}]"),
    };
    format!("{} {}{guard} {}", row.from, row.trigger, target_text(row.to))
}

fn target_text(to: Target) -> String {
    match to {
        Target::Stay => "(stays)".to_owned(),
        Target::Go(state) => format!("-> {state}"),
    }
}

/// The guard of a WAKE tick that stayed, from the skip reason it recorded.
fn staying_tick_guard(reason: &str) -> Option<Guard> {
    match reason {
        "paused" => Some(Guard::Paused),
        "empty_store" => Some(Guard::StoreEmpty),
        "outside_window" | "lock_busy" => Some(Guard::OutsideWindow),
        _ => None,
    }
}

/// The guard of SLEEP's step to WAKE, from the transition's reason.
fn waking_guard(reason: &str) -> Option<Guard> {
    match reason {
        "wound_down" => Some(Guard::WindingDown),
        "force_wake_requested" => Some(Guard::ForceWake),
        "mcp_reacquired_mid_night" => Some(Guard::LockLost),
        "mcp_recent_activity" => Some(Guard::RecentActivity),
        "cycles_done" => Some(Guard::CyclesDone),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::machine::Transition;
    use StateName::{Dreaming, Sleep, Transitioning, Wake};

    fn outcome(steps: &[(StateName, Trigger, StateName, &'static str)]) -> Outcome {
        let transitions = steps
            .iter()
            .map(|&(from, trigger, to, reason)| Transition {
                from,
                to,
                trigger,
                reason,
                at: DateTime::UNIX_EPOCH,
            })
            .collect();
        Outcome { transitions, ..Outcome::default() }
    }

    #[track_caller]
    fn check(
        before: StateName,
        trigger: Trigger,
        steps: &[(StateName, Trigger, StateName, &'static str)],
        skip_reason: Option<&str>,
        rows: &[&str],
    ) {
        let mut coverage = Coverage::default();
        coverage.observe(before, trigger, &outcome(steps), skip_reason);
        let taken: Vec<String> = TABLE
            .iter()
            .zip(&coverage.taken)
            .filter(|&(_, &n)| n > 0)
            .map(|(r, _)| describe(r))
            .collect();
        assert_eq!(taken, rows);
        assert!(coverage.unmatched().is_empty(), "{:?}", coverage.unmatched());
    }

    #[test]
    fn steps_are_matched_to_their_rows() {
        use Trigger::{Boot, Continue, RemCycleFinished, Tick};
        check(Wake, Tick, &[], Some("paused"), &["WAKE tick [paused] (stays)"]);
        check(Wake, Tick, &[], Some("outside_window"), &["WAKE tick [otherwise] (stays)"]);
        check(
            Wake,
            Tick,
            &[(Wake, Tick, Transitioning, "idle")],
            None,
            &["WAKE tick [request or quiet window or idle 2 h, not backing off] -> TRANSITIONING"],
        );
        check(
            Dreaming,
            RemCycleFinished,
            &[
                (Dreaming, RemCycleFinished, Sleep, "rem_cycle_finished"),
                (Sleep, Continue, Wake, "mcp_recent_activity"),
            ],
            None,
            &[
                "SLEEP continue [client active within 30 s] -> WAKE",
                "DREAMING rem_cycle_finished -> SLEEP",
            ],
        );
        check(
            Dreaming,
            Boot,
            &[(Dreaming, Boot, Sleep, "recovered"), (Sleep, Continue, Wake, "wound_down")],
            None,
            &["SLEEP continue [winding down] -> WAKE", "DREAMING boot -> SLEEP"],
        );
    }

    #[test]
    fn a_step_no_single_row_describes_is_reported() {
        let mut coverage = Coverage::default();
        let steps = [(Sleep, Trigger::Continue, Wake, "no_such_reason")];
        coverage.observe(Sleep, Trigger::Continue, &outcome(&steps), None);
        assert_eq!(coverage.unmatched(), ["SLEEP continue -> WAKE (no_such_reason)"]);
        assert_eq!(coverage.rows_taken(), 0);
    }
}
