//! The table's invariants, checked by the compiler: a table that breaks one does not build.
//!
//! Owns the `const` checks that `rows` runs on the assembled table. It must not hold rows.

use super::{Action, Because, Row, StateName, Target};
use crate::event::Trigger;

/// Checks every invariant of the assembled table and of its shared rows; panics (at compile time)
/// naming the first one broken.
pub(super) const fn check(table: &[Row], shared: &[Row]) {
    let mut i = 0;
    while i < shared.len() {
        assert!(
            matches!(shared[i].to, Target::Stay | Target::Next),
            "a row every state shares does not move"
        );
        assert!(matches!(shared[i].reason, Because::None), "a shared row records no reason");
        i += 1;
    }
    let mut i = 0;
    while i < table.len() {
        let row = &table[i];
        if let Target::Go(to) = row.to {
            assert!(allowed(row.from, to), "every row moves along one of the seed's edges");
            assert!(!matches!(row.reason, Because::None), "every row that moves has a reason");
        }
        check_actions(row);
        assert!(
            !same_trigger(row.trigger, Trigger::Continue) || same_state(row.from, StateName::Sleep),
            "only SLEEP continues"
        );
        if let Target::As(trigger) = row.to {
            assert!(!same_trigger(trigger, row.trigger), "a row is not decided as itself");
            assert!(has_rows(table, row.from, trigger), "a row is decided as a trigger with rows");
        }
        check_group_order(table, i);
        i += 1;
    }
}

/// The entry actions appear only last in a row entering their state, and every row entering a
/// state with one lists it; a reason goes with a move or a skipped tick, and every skip has one.
const fn check_actions(row: &Row) {
    let mut skips = false;
    let mut k = 0;
    while k < row.actions.len() {
        let action = row.actions[k];
        skips |= matches!(action, Action::SkipTick);
        if let Some(state) = entered_by(action) {
            assert!(
                matches!(row.to, Target::Go(to) if same_state(to, state)),
                "an entry action belongs to a row entering its state"
            );
            assert!(k + 1 == row.actions.len(), "an entry action is a row's last");
        }
        k += 1;
    }
    if let Target::Go(to) = row.to
        && Action::entering(to).is_some()
    {
        let n = row.actions.len();
        assert!(
            n > 0 && matches!(entered_by(row.actions[n - 1]), Some(s) if same_state(s, to)),
            "a row entering a state performs its entry action"
        );
    }
    if skips {
        assert!(matches!(row.reason, Because::Is(_)), "a skipped tick records why");
    } else if !matches!(row.to, Target::Go(_)) {
        assert!(matches!(row.reason, Because::None), "a reason goes with a move or a skip");
    }
}

/// Within one (state, event): the last row always finds a fallback guard and ends the event, a
/// row that ends it with a fallback guard is the last, and no two rows that end it share a guard.
const fn check_group_order(table: &[Row], i: usize) {
    let row = &table[i];
    let ends = !matches!(row.to, Target::Next);
    let mut last = true;
    let mut j = i + 1;
    while j < table.len() {
        let other = &table[j];
        if same_state(other.from, row.from) && same_trigger(other.trigger, row.trigger) {
            last = false;
            assert!(
                !(ends && row.guard.is_fallback()),
                "no row follows one that always ends the event"
            );
            assert!(
                !(ends
                    && !matches!(other.to, Target::Next)
                    && row.guard as u8 == other.guard as u8),
                "no two rows that end an event share its guard"
            );
        }
        j += 1;
    }
    if last {
        assert!(ends && row.guard.is_fallback(), "every event accepted in a state finds a row");
    }
}

/// The state whose entry `action` is, if it is one (the inverse of [`Action::entering`]).
const fn entered_by(action: Action) -> Option<StateName> {
    match action {
        Action::ReleaseLock => Some(StateName::Wake),
        Action::AcquireLock => Some(StateName::Transitioning),
        Action::RunRemCycle => Some(StateName::Dreaming),
        _ => None,
    }
}

const fn same_state(a: StateName, b: StateName) -> bool {
    a as u8 == b as u8
}

const fn same_trigger(a: Trigger, b: Trigger) -> bool {
    a as u8 == b as u8
}

const fn allowed(from: StateName, to: StateName) -> bool {
    let targets = from.allowed_targets();
    let mut k = 0;
    while k < targets.len() {
        if same_state(targets[k], to) {
            return true;
        }
        k += 1;
    }
    false
}

const fn has_rows(table: &[Row], from: StateName, trigger: Trigger) -> bool {
    let mut k = 0;
    while k < table.len() {
        if same_state(table[k].from, from) && same_trigger(table[k].trigger, trigger) {
            return true;
        }
        k += 1;
    }
    false
}
