//! The sans-I/O core: the machine and its data, one `handle` call run to completion.
//!
//! Owns restoring a machine from a document without firing entry actions, running an event and
//! the engine's own `Continue` steps to completion, and gathering transitions, effects and the
//! snapshots to persist. It must not touch the disk or read the clock: `engine` does both.

use statig::prelude::*;

use crate::data::Data;
use crate::digest::Digest;
use crate::effects::Effect;
use crate::journal::Edits;
use crate::event::{Event, Input};
use crate::machine::{Ctx, Lifecycle, Output, Rejection, Transition, name_of, state_of};
use crate::record::Record;
use crate::table::{Row, StateName};
#[cfg(any(test, feature = "testing"))]
use crate::{table::Action, timestamp::Timestamp};

/// What one accepted event did, in the order the host must act on it.
///
/// With the `serde` feature: `{"transitions": [...], "effects": [...]}`, plus `first_turn` and
/// `digest` for a recall.
#[derive(Debug, Clone, Default, PartialEq)]
#[derive(serde::Serialize)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[must_use = "an outcome's effects are for the host to perform"]
#[non_exhaustive]
pub struct Outcome {
    /// The transitions taken, in order.
    pub transitions: Vec<Transition>,
    /// The effects for the host, in order.
    pub effects: Vec<Effect>,
    /// The rows of the table taken, in order (the event's, then each `Continue`).
    #[serde(skip)]
    pub rows: Vec<&'static Row>,
    /// For a `Recall`: whether this was the session's first turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_turn: Option<bool>,
    /// For a `Recall`: the digest, when the gate delivered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// The documents to persist, in order (one per transition, plus one for other durable
    /// changes). Empty when nothing durable changed.
    #[serde(skip)]
    pub(crate) snapshots: Vec<Record>,
    /// What a host's bookkeeping changed along with the event (`Core::handle_with`).
    #[serde(skip)]
    pub(crate) edits: Option<Edits>,
}

impl Outcome {
    /// The documents this outcome persisted, in order. For the crate's tests.
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn snapshots(&self) -> &[Record] {
        &self.snapshots
    }
}

#[cfg(any(test, feature = "testing"))]
/// One step of the machine alone, as the table tests see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The state after the step.
    pub state: StateName,
    /// The table actions performed.
    pub actions: Vec<Action>,
    /// The rows taken, in order.
    pub rows: Vec<&'static Row>,
    /// The effects for the host, in order.
    pub effects: Vec<Effect>,
    /// The transitions taken, with their reasons.
    pub transitions: Vec<Transition>,
    /// For a `Recall`: whether this was the session's first turn, and the digest if delivered.
    pub recall: Option<(bool, Option<Digest>)>,
    /// Set when the event was refused.
    pub rejection: Option<Rejection>,
}

/// The machine and its data.
pub struct Core {
    machine: InitializedStateMachine<Lifecycle>,
    data: Data,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("state", &self.state()).finish_non_exhaustive()
    }
}

impl Core {
    /// Restores a core from a document, in the state the document names, firing no entry action.
    /// Returns the warnings for keys whose values could not be used.
    pub fn restore(record: Record) -> (Self, Vec<String>) {
        let (data, warnings) = Data::from_record(record);
        let state = data.view().fsm;
        (Self { machine: restored_machine(state), data }, warnings)
    }

    /// The current state.
    pub fn state(&self) -> StateName {
        name_of(self.machine.state())
    }

    /// The working data.
    pub fn data(&self) -> &Data {
        &self.data
    }

    /// Uses `zone` for the quiet window without storing it.
    pub fn override_zone(&mut self, zone: chrono_tz::Tz) {
        self.data.override_zone(zone);
    }

    /// Records the generation the last save was written as (see [`Data::note_generation`]).
    pub fn note_generation(&mut self, generation: u64) {
        self.data.note_generation(generation);
    }

    /// Replaces the data (and the state it names), as a reload after another process wrote does.
    pub fn replace_data(&mut self, data: Data) {
        self.machine = restored_machine(data.view().fsm);
        self.data = data;
    }

    /// Handles one event to completion, then applies `change` to the document; the change joins
    /// the last snapshot, so it costs no write of its own. A rejected event applies nothing.
    pub fn handle_with(
        &mut self,
        event: &Event,
        change: impl FnOnce(&mut Record),
    ) -> Result<Outcome, Rejection> {
        let mut outcome = self.handle(event)?;
        let mark = self.data.mark_record();
        self.data.edit_record(change);
        outcome.edits = Some(Edits::since(self.data.record(), &mark));
        let snapshot = self.data.snapshot();
        match outcome.snapshots.last_mut() {
            Some(last) => *last = snapshot,
            None => outcome.snapshots.push(snapshot),
        }
        Ok(outcome)
    }

    /// Handles one event to completion: the event, then `Continue` while SLEEP asks for it.
    /// A rejected event changes nothing.
    pub fn handle(&mut self, event: &Event) -> Result<Outcome, Rejection> {
        let mut out = Output { snapshot_transitions: true, ..Output::default() };
        let mut ctx = Ctx { data: &mut self.data, at: event.at, out: &mut out };
        self.machine.handle_with_context(&Input::Host(event), &mut ctx);
        while ctx.out.continue_pending && ctx.out.rejection.is_none() {
            ctx.out.continue_pending = false;
            self.machine.handle_with_context(&Input::Continue, &mut ctx);
        }
        if let Some(rejection) = out.rejection {
            return Err(rejection);
        }
        if self.data.changed() {
            out.snapshots.push(self.data.snapshot());
        }
        for effect in &out.effects {
            tracing::debug!(?effect, "effect");
        }
        let (first_turn, digest) = match out.recall {
            Some((first_turn, digest)) => (Some(first_turn), digest),
            None => (None, None),
        };
        Ok(Outcome {
            transitions: out.transitions,
            effects: out.effects,
            rows: out.rows,
            first_turn,
            digest,
            snapshots: out.snapshots,
            edits: None,
        })
    }

    #[cfg(any(test, feature = "testing"))]
    /// Runs exactly one machine step for `input` at `at` (no `Continue` follows), with
    /// `winding_down` preset as a boot recovery or shutdown would leave it. For the table tests.
    #[doc(hidden)]
    pub fn step(&mut self, input: Input<'_>, at: Timestamp, winding_down: bool) -> Step {
        let mut out = Output { winding_down, ..Output::default() };
        let mut ctx = Ctx { data: &mut self.data, at, out: &mut out };
        self.machine.handle_with_context(&input, &mut ctx);
        Step {
            state: self.state(),
            actions: out.actions,
            rows: out.rows,
            effects: out.effects,
            transitions: out.transitions,
            recall: out.recall,
            rejection: out.rejection,
        }
    }
}

/// A machine in `state` whose entry actions have not run for this restore: the state is placed
/// before statig's initialization, which enters it on a scratch context so that nothing of its
/// entry reaches the real data or output.
fn restored_machine(state: StateName) -> InitializedStateMachine<Lifecycle> {
    let mut machine = Lifecycle.uninitialized_state_machine();
    *machine.state_mut() = state_of(state);
    let (mut scratch, _) = Data::from_record(Record::new());
    let mut out = Output::default();
    let mut ctx = Ctx { data: &mut scratch, at: chrono::DateTime::UNIX_EPOCH, out: &mut out };
    machine.init_with_context(&mut ctx)
}
