//! Which rows of the transition table a run took, as the machine reports them in each outcome.
//!
//! Owns the tally per row. It must not change the table.

use crate::kernel::Outcome;
use crate::table::{Row, TABLE, Target};

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
    /// Notes the rows one accepted event took, as the machine reports them.
    pub fn observe(&mut self, outcome: &Outcome) {
        for &taken in &outcome.rows {
            match TABLE.iter().position(|r| std::ptr::eq(r, taken)) {
                Some(i) => self.taken[i] += 1,
                None => {
                    let what = describe(taken);
                    if !self.unmatched.contains(&what) {
                        self.unmatched.push(what);
                    }
                }
            }
        }
    }

    /// The rows that move the machine, with how often each was taken, in table order.
    pub fn moving(&self) -> impl Iterator<Item = (&'static Row, u64)> + '_ {
        TABLE.iter().zip(&self.taken).filter(|(r, _)| r.moves()).map(|(r, &n)| (r, n))
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
            .filter(|&(r, &n)| !r.moves() && n == 0)
            .map(|(r, _)| r)
            .collect()
    }

    /// How many rows of the whole table were taken at least once.
    pub fn rows_taken(&self) -> usize {
        self.taken.iter().filter(|&&n| n > 0).count()
    }

    /// The rows reported that are not the table's own (each once); empty when the table accounts
    /// for everything.
    pub fn unmatched(&self) -> &[String] {
        &self.unmatched
    }
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
        Target::Next => "(then on)".to_owned(),
        Target::As(trigger) => format!("(as {trigger})"),
        Target::Go(state) => format!("-> {state}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Trigger;
    use crate::table::{Guard, StateName, rows_for};
    use StateName::{Dreaming, Sleep, Wake};

    /// The table's row for this state, event and guard (the one that ends the event).
    fn row(state: StateName, trigger: Trigger, guard: Guard) -> &'static Row {
        rows_for(state, trigger).filter(|r| r.guard == guard).last().expect("the table has the row")
    }

    fn outcome(rows: &[(StateName, Trigger, Guard)]) -> Outcome {
        let rows = rows.iter().map(|&(from, trigger, guard)| row(from, trigger, guard)).collect();
        Outcome { rows, ..Outcome::default() }
    }

    #[track_caller]
    fn check(rows: &[(StateName, Trigger, Guard)], expected: &[&str]) {
        let mut coverage = Coverage::default();
        coverage.observe(&outcome(rows));
        let taken: Vec<String> = TABLE
            .iter()
            .zip(&coverage.taken)
            .filter(|&(_, &n)| n > 0)
            .map(|(r, _)| describe(r))
            .collect();
        assert_eq!(taken, expected);
        assert!(coverage.unmatched().is_empty(), "{:?}", coverage.unmatched());
    }

    #[test]
    fn reported_rows_are_counted() {
        use Trigger::{Boot, Continue, RemCycleFinished, Tick};
        check(
            &[(Wake, Tick, Guard::Always), (Wake, Tick, Guard::Paused)],
            &["WAKE tick (then on)", "WAKE tick [paused] (stays)"],
        );
        check(
            &[
                (Dreaming, RemCycleFinished, Guard::Always),
                (Sleep, Continue, Guard::RecentActivity),
            ],
            &[
                "SLEEP continue [client active within 30 s] -> WAKE",
                "DREAMING rem_cycle_finished -> SLEEP",
            ],
        );
        check(
            &[(Dreaming, Boot, Guard::Always), (Sleep, Continue, Guard::WindingDown)],
            &["SLEEP continue [winding down] -> WAKE", "DREAMING boot -> SLEEP"],
        );
    }

    #[test]
    fn a_row_the_table_lacks_is_reported() {
        static STRAY: Row = Row { guard: Guard::Paused, ..TABLE[0] };
        let mut coverage = Coverage::default();
        coverage.observe(&Outcome { rows: vec![&STRAY], ..Outcome::default() });
        assert_eq!(coverage.unmatched(), [describe(&STRAY)]);
        assert_eq!(coverage.rows_taken(), 0);
    }
}
