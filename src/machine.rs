//! The lifecycle as a statig state machine run by the transition table.
//!
//! Owns running the table: each state's handler looks up its rows for the input and applies the
//! first whose guard holds (its actions, its reason, its target), and the meaning of guards,
//! reasons and actions (`rules`). It must not decide anything the table does not say, do I/O or
//! read the clock: time arrives on the context, effects leave as data, and the books are kept by
//! `data`.
#![allow(missing_docs)] // statig generates the `State` enum and its constructors.

use statig::prelude::*;

use crate::data::Data;
use crate::digest::Digest;
use crate::effects::Effect;
use crate::event::{Input, Trigger};
use crate::reason::Reason;
use crate::table::{self, Action, Row, StateName, Target};
use crate::timestamp::Timestamp;

mod rules;

/// One transition the machine took.
///
/// With the `serde` feature, as the protocol's replies spell it: `{"from": "WAKE", "to":
/// "TRANSITIONING", "reason": "idle", "at": "2026-04-18T11:00:00+00:00"}` (the trigger stays out
/// of the wire, and reads back as `continue`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[derive(serde::Serialize)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[non_exhaustive]
pub struct Transition {
    /// The state left.
    pub from: StateName,
    /// The state entered.
    pub to: StateName,
    /// The event that caused it (`continue` for the engine's own step at a cycle boundary).
    #[serde(skip_serializing, default = "off_the_wire")]
    pub trigger: Trigger,
    /// Why (`quiet_window`, `lock_denied`, `cycles_done`, ...): the row's reason.
    pub reason: Reason,
    /// When, to the microsecond.
    #[serde(with = "crate::timestamp::wire")]
    pub at: Timestamp,
}

/// The trigger of a transition read from the wire, which does not carry it.
#[cfg(feature = "serde")]
fn off_the_wire() -> Trigger {
    Trigger::Continue
}

/// Why an event was refused: it has no row in the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("{trigger} is not accepted in {state}: {why}")]
pub struct Rejection {
    /// The state the machine is in (and stays in).
    pub state: StateName,
    /// The refused event.
    pub trigger: Trigger,
    /// A short explanation.
    pub why: &'static str,
}

/// What one machine step produced, gathered on the context.
#[derive(Debug, Default)]
pub struct Output {
    /// Effects for the host, in order.
    pub effects: Vec<Effect>,
    /// The table actions performed, in order.
    pub actions: Vec<Action>,
    /// The rows taken, in order.
    pub rows: Vec<&'static Row>,
    /// Transitions taken, in order.
    pub transitions: Vec<Transition>,
    /// A snapshot of the document after each step that must be persisted, in order.
    pub snapshots: Vec<crate::record::Record>,
    /// Set when the event was refused.
    pub rejection: Option<Rejection>,
    /// The answer to a `Recall`: whether this was the first turn, and the digest if delivered.
    pub recall: Option<(bool, Option<Digest>)>,
    /// Entering SLEEP asks for one more step within the same `handle` call.
    pub continue_pending: bool,
    /// Boot recovery or shutdown is walking the night back to WAKE.
    pub winding_down: bool,
    /// The trigger and reason of the transition a row just asked for.
    pub moving: Option<(Trigger, Reason)>,
    /// Snapshots are taken after each transition (off while table tests step the machine alone).
    pub snapshot_transitions: bool,
}

/// What the handlers see: the working data, the moment being handled, and the output.
pub struct Ctx<'a> {
    /// The working data.
    pub data: &'a mut Data,
    /// When the input happened.
    pub at: Timestamp,
    /// Where results go.
    pub out: &'a mut Output,
}

impl Ctx<'_> {
    /// Runs the table for `state` and `input`: rows of the group are tried in order and a row
    /// whose guard holds is taken; its actions apply, then its target says whether the group goes
    /// on (`Next`), is decided as another trigger (`As`), or ends here (`Stay`, `Go`). An input
    /// with no row in the state is refused before anything applies.
    fn run(&mut self, state: StateName, input: &Input<'_>) -> Outcome<State> {
        let trigger = input.trigger();
        let mut rows = table::rows_for(state, trigger).peekable();
        if rows.peek().is_none() {
            self.out.rejection = Some(Rejection { state, trigger, why: why_refused(trigger) });
            return Handled;
        }
        while let Some(row) = rows.next() {
            if !row.guard.holds(self.data, self.at, input, self.out.winding_down) {
                continue;
            }
            let reason = row.reason.resolve(self.data, self.at);
            self.out.rows.push(row);
            for &action in row.actions {
                self.out.actions.push(action);
                action.apply(self, input, state, reason);
            }
            match row.to {
                Target::Next => {}
                Target::As(other) => rows = table::rows_for(state, other).peekable(),
                Target::Stay => return Handled,
                Target::Go(to) => {
                    // Every moving row has a reason: the table's checks say so at compile time.
                    self.out.moving = reason.map(|reason| (trigger, reason));
                    return Transition(state_of(to));
                }
            }
        }
        unreachable!("the table's checks end every group with a row whose guard always holds")
    }
}

/// Why a state has no row for an event.
fn why_refused(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::UserSleepRequested => "already sleeping",
        Trigger::Continue => "only SLEEP continues",
        _ => "no row for it in this state",
    }
}

/// The lifecycle machine. All its data lives on the context, so that statig's initialization
/// (which runs entry actions) can be given a scratch context when a machine is restored.
#[derive(Debug, Default, Clone, Copy)]
pub struct Lifecycle;

#[state_machine(
    initial = "State::wake()",
    state(derive(Debug, Clone, Copy, PartialEq, Eq)),
    after_transition = "Self::after_transition"
)]
impl Lifecycle {
    #[state]
    fn wake(context: &mut Ctx<'_>, event: &Input<'_>) -> Outcome<State> {
        context.run(StateName::Wake, event)
    }

    #[state]
    fn transitioning(context: &mut Ctx<'_>, event: &Input<'_>) -> Outcome<State> {
        context.run(StateName::Transitioning, event)
    }

    #[state(entry_action = "enter_sleep")]
    fn sleep(context: &mut Ctx<'_>, event: &Input<'_>) -> Outcome<State> {
        context.run(StateName::Sleep, event)
    }

    #[state]
    fn dreaming(context: &mut Ctx<'_>, event: &Input<'_>) -> Outcome<State> {
        context.run(StateName::Dreaming, event)
    }

    /// Entering SLEEP asks for the engine's own `Continue`, which decides what comes next.
    #[action]
    fn enter_sleep(context: &mut Ctx<'_>) {
        context.out.continue_pending = true;
    }

    fn after_transition(&mut self, source: &State, target: &State, context: &mut Ctx<'_>) {
        let (from, to) = (name_of(source), name_of(target));
        context.data.set_fsm(to, context.at);
        if let Some((trigger, reason)) = context.out.moving.take() {
            tracing::info!(
                from = from.as_str(),
                to = to.as_str(),
                event = trigger.as_str(),
                reason = reason.as_str(),
                "transition"
            );
            context.out.transitions.push(Transition { from, to, trigger, reason, at: context.at });
        }
        if context.out.snapshot_transitions {
            let snapshot = context.data.snapshot();
            context.out.snapshots.push(snapshot);
        }
    }
}

/// The table's name for a statig state.
pub fn name_of(state: &State) -> StateName {
    match state {
        State::Wake {} => StateName::Wake,
        State::Transitioning {} => StateName::Transitioning,
        State::Sleep {} => StateName::Sleep,
        State::Dreaming {} => StateName::Dreaming,
    }
}

/// The statig state for a table name.
pub fn state_of(name: StateName) -> State {
    match name {
        StateName::Wake => State::wake(),
        StateName::Transitioning => State::transitioning(),
        StateName::Sleep => State::sleep(),
        StateName::Dreaming => State::dreaming(),
    }
}
