//! The lifecycle as a statig state machine: four typed states, their handlers and entry actions.
//!
//! Owns the decisions: which events each state accepts, under which guard, and where they lead.
//! It must agree with `table::TABLE` row for row (a test walks every state, event and guard to hold
//! it to that). It must not do I/O or read the clock: time arrives on the context, effects leave as
//! data, and the books are kept by `data`.
#![allow(missing_docs)] // statig generates the `State` enum and its constructors.

use serde_json::{Value, json};
use statig::prelude::*;

use crate::data::{Data, RequestKind};
use crate::effects::Effect;
use crate::event::{EventKind, Trigger};
use crate::sessions;
use crate::table::{Action, Guard, StateName, Taken};
use crate::timestamp::{self, Timestamp};

/// One transition the machine took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The state left.
    pub from: StateName,
    /// The state entered.
    pub to: StateName,
    /// The event that caused it.
    pub trigger: Trigger,
    /// Why, in a word (`quiet_window`, `lock_denied`, `cycles_done`, ...).
    pub reason: &'static str,
    /// When.
    pub at: Timestamp,
}

/// Why an event was refused: it has no row in the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    /// The table actions performed, in order (what the table tests compare).
    pub actions: Vec<Action>,
    /// The rows taken, in order, named by state, event and guard.
    pub rows: Vec<Taken>,
    /// Transitions taken, in order.
    pub transitions: Vec<Transition>,
    /// A snapshot of the document after each step that must be persisted, in order.
    pub snapshots: Vec<crate::record::Record>,
    /// Set when the event was refused.
    pub rejection: Option<Rejection>,
    /// The answer to a `Recall`: whether this was the first turn, and the digest if delivered.
    pub recall: Option<(bool, Option<Value>)>,
    /// Entering SLEEP asks for one more step within the same `handle` call.
    pub continue_pending: bool,
    /// Boot recovery or shutdown is walking the night back to WAKE.
    pub winding_down: bool,
    /// The reason recorded with the next transition.
    pub reason: &'static str,
    /// Snapshots are taken after each transition (off while table tests step the machine alone).
    pub snapshot_transitions: bool,
}

/// What the handlers see: the working data, the event, its moment, and the output.
pub struct Ctx<'a> {
    /// The working data.
    pub data: &'a mut Data,
    /// The event's details (`None` for the engine's own `Continue`).
    pub event: Option<&'a EventKind>,
    /// When it happened.
    pub at: Timestamp,
    /// Where results go.
    pub out: &'a mut Output,
}

impl Ctx<'_> {
    fn took(&mut self, from: StateName, trigger: Trigger, guard: Guard) {
        self.out.rows.push(Taken { from, trigger, guard });
    }

    fn did(&mut self, action: Action) {
        self.out.actions.push(action);
    }

    fn effect(&mut self, effect: Effect) {
        self.out.effects.push(effect);
    }

    fn reject(&mut self, state: StateName, trigger: Trigger, why: &'static str) -> Outcome<State> {
        self.out.rejection = Some(Rejection { state, trigger, why });
        Handled
    }

    fn go(&mut self, reason: &'static str, target: State) -> Outcome<State> {
        self.out.reason = reason;
        Transition(target)
    }

    /// `daemon_yielded` with the cycles this night completed (none when the lock never came).
    fn emit_yielded(&mut self, reason: &'static str, night_started: bool) {
        self.did(Action::EmitYielded);
        let completed = if night_started { self.data.view().night.completed } else { 0 };
        self.effect(Effect::emit(
            "daemon_yielded",
            json!({"reason": reason, "completed_cycles": completed}),
        ));
    }

    /// A boot that finds a mid-night state: the boot is stamped and the recovery reported.
    fn recover_at_boot(&mut self, found: StateName) {
        self.took(found, Trigger::Boot, Guard::Always);
        self.stamp_boot();
        self.emit_recovered(found);
    }

    /// What every accepted tick does first: note its moment, reap first turns older than 1 h.
    fn note_tick(&mut self) {
        self.data.note_tick(self.at);
        self.reap_first_turns("tick");
    }

    fn stamp_boot(&mut self) {
        self.did(Action::StampBoot);
        self.data.stamp_boot(self.at);
        self.reap_first_turns("startup");
    }

    fn emit_recovered(&mut self, found: StateName) {
        self.did(Action::EmitRecovered);
        let payload = json!({"found": found.as_str(), "at": timestamp::format(self.at)});
        self.effect(Effect::Emit {
            kind: "fsm_recovered",
            payload,
            severity: crate::effects::Severity::Warning,
        });
        self.out.winding_down = true;
    }

    fn reap_first_turns(&mut self, phase: &'static str) {
        let dropped = self.data.reap_first_turns(self.at);
        if !dropped.is_empty() {
            self.effect(Effect::emit(
                "first_turn_pending_expired",
                json!({
                    "dropped_count": dropped.len(),
                    "session_ids": dropped,
                    "ttl_sec": sessions::REAPER_TTL_SECS,
                    "phase": phase,
                }),
            ));
        }
    }

    fn skip_tick(&mut self, guard: Guard, reason: &'static str) -> Outcome<State> {
        self.took(StateName::Wake, Trigger::Tick, guard);
        self.did(Action::SkipTick);
        if self.data.set_skip_reason(Some(reason)) && reason == "paused" {
            self.effect(Effect::emit("daemon_tick_skipped", json!({"reason": reason})));
        }
        Handled
    }

    fn back_off(&mut self) {
        self.did(Action::BackOff);
        self.data.back_off(self.at);
    }

    fn finish_night(&mut self) {
        self.did(Action::FinishNight);
        self.data.finish_night(self.at);
    }

    /// The rows every state shares; anything else has no row here and is rejected.
    fn anytime(&mut self, state: StateName, trigger: Trigger) -> Outcome<State> {
        let night_running = state != StateName::Wake;
        match (trigger, self.event) {
            (Trigger::SessionStarted, Some(EventKind::SessionStarted { session_id })) => {
                self.did(Action::OpenSession);
                self.data.open_session(session_id.as_deref(), self.at);
                self.data.record_activity(self.at, night_running);
            }
            (Trigger::Recall, Some(EventKind::Recall { session_id })) => {
                self.did(Action::Recall);
                self.out.recall = Some(self.data.recall(session_id, self.at));
            }
            (Trigger::McpActivity, _) => {
                self.did(Action::RecordActivity);
                self.data.record_activity(self.at, night_running);
            }
            (Trigger::ForceRemRequested, Some(EventKind::ForceRemRequested { ts })) => {
                self.queue(RequestKind::ForceRem, ts.clone(), None);
            }
            (Trigger::ForceWakeRequested, Some(EventKind::ForceWakeRequested { ts })) => {
                self.queue(RequestKind::ForceWake, ts.clone(), None);
            }
            (Trigger::Pause, _) => {
                self.did(Action::SetPause);
                self.data.set_paused(true);
            }
            (Trigger::Resume, _) => {
                self.did(Action::SetPause);
                self.data.set_paused(false);
            }
            (Trigger::Configure, Some(EventKind::Configure(settings))) => {
                self.did(Action::Configure);
                self.data.configure(settings);
            }
            (Trigger::UserSleepRequested, _) => {
                return self.reject(state, trigger, "already sleeping");
            }
            (Trigger::Continue, _) => return self.reject(state, trigger, "only SLEEP continues"),
            _ => return self.reject(state, trigger, "no row for it in this state"),
        }
        self.took(state, trigger, Guard::Always);
        Handled
    }

    fn queue(&mut self, kind: RequestKind, ts: Option<String>, reason: Option<&str>) {
        self.did(Action::QueueRequest);
        let ts = ts.unwrap_or_else(|| timestamp::format(self.at));
        self.data.queue_request(kind, ts, reason);
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
    #[state(entry_action = "enter_wake")]
    fn wake(context: &mut Ctx<'_>, event: &Trigger) -> Outcome<State> {
        const HERE: StateName = StateName::Wake;
        match *event {
            Trigger::Boot => {
                context.took(HERE, Trigger::Boot, Guard::Always);
                context.stamp_boot();
                Handled
            }
            Trigger::Tick => {
                let store_empty =
                    matches!(context.event, Some(EventKind::Tick { store_empty: true }));
                context.note_tick();
                if context.data.view().paused {
                    return context.skip_tick(Guard::Paused, "paused");
                }
                if store_empty {
                    return context.skip_tick(Guard::StoreEmpty, "empty_store");
                }
                if context.data.relearn_due(context.at) {
                    context.data.relearn(context.at);
                }
                match context.data.sleep_due(context.at) {
                    Some(reason) => {
                        context.took(HERE, Trigger::Tick, Guard::SleepDue);
                        context.did(Action::DiscardStaleForceWake);
                        context.data.discard_stale_force_wake(context.at);
                        context.data.clear_skip_reason();
                        context.go(reason, State::transitioning())
                    }
                    None => {
                        let reason = context.data.idle_reason(context.at);
                        context.skip_tick(Guard::OutsideWindow, reason)
                    }
                }
            }
            Trigger::UserSleepRequested => {
                context.took(HERE, Trigger::UserSleepRequested, Guard::Always);
                if let Some(EventKind::UserSleepRequested { reason, ts }) = context.event {
                    context.queue(RequestKind::UserSleep, ts.clone(), Some(reason));
                }
                Handled
            }
            Trigger::Shutdown => {
                context.took(HERE, Trigger::Shutdown, Guard::Always);
                context.did(Action::Flush);
                context.data.touch();
                Handled
            }
            other => context.anytime(HERE, other),
        }
    }

    #[state(entry_action = "enter_transitioning")]
    fn transitioning(context: &mut Ctx<'_>, event: &Trigger) -> Outcome<State> {
        const HERE: StateName = StateName::Transitioning;
        match *event {
            Trigger::Boot => {
                context.recover_at_boot(HERE);
                context.go("recovered", State::wake())
            }
            Trigger::Tick => {
                context.note_tick();
                if context.data.lock_wait_expired(context.at) {
                    context.took(HERE, Trigger::Tick, Guard::LockWaitExpired);
                    context.emit_yielded("lock_timeout", false);
                    context.back_off();
                    context.go("lock_timeout", State::wake())
                } else {
                    context.took(HERE, Trigger::Tick, Guard::LockWaitPending);
                    Handled
                }
            }
            Trigger::LockAcquired => {
                context.took(HERE, Trigger::LockAcquired, Guard::Always);
                context.did(Action::PlanNight);
                context.data.plan_night(context.at);
                context.go("lock_acquired", State::sleep())
            }
            Trigger::LockDenied => {
                context.took(HERE, Trigger::LockDenied, Guard::Always);
                context.emit_yielded("mcp_active", false);
                context.back_off();
                context.go("lock_denied", State::wake())
            }
            Trigger::Shutdown => {
                context.took(HERE, Trigger::Shutdown, Guard::Always);
                context.go("shutdown", State::wake())
            }
            other => context.anytime(HERE, other),
        }
    }

    #[state(entry_action = "enter_sleep")]
    fn sleep(context: &mut Ctx<'_>, event: &Trigger) -> Outcome<State> {
        const HERE: StateName = StateName::Sleep;
        match *event {
            Trigger::Boot => {
                context.recover_at_boot(HERE);
                context.finish_night();
                context.go("recovered", State::wake())
            }
            Trigger::Shutdown => {
                context.took(HERE, Trigger::Shutdown, Guard::Always);
                context.finish_night();
                context.go("shutdown", State::wake())
            }
            // SLEEP decides at once what comes next (`Continue`). It rests here only when a save
            // failed between two steps; a tick then takes the same decision, so the night goes on.
            trigger @ (Trigger::Continue | Trigger::Tick) => {
                if trigger == Trigger::Tick {
                    context.note_tick();
                }
                if trigger == Trigger::Continue && context.out.winding_down {
                    context.took(HERE, trigger, Guard::WindingDown);
                    context.finish_night();
                    return context.go("wound_down", State::wake());
                }
                if let Some((guard, reason)) = context.data.yield_reason(context.at) {
                    context.took(HERE, trigger, guard);
                    context.emit_yielded(reason, true);
                    context.finish_night();
                    return context.go(reason, State::wake());
                }
                if context.data.cycles_left() {
                    context.took(HERE, trigger, Guard::CyclesLeft);
                    context.go("next_cycle", State::dreaming())
                } else {
                    context.took(HERE, trigger, Guard::CyclesDone);
                    context.finish_night();
                    context.go("cycles_done", State::wake())
                }
            }
            other => context.anytime(HERE, other),
        }
    }

    #[state(entry_action = "enter_dreaming")]
    fn dreaming(context: &mut Ctx<'_>, event: &Trigger) -> Outcome<State> {
        const HERE: StateName = StateName::Dreaming;
        match *event {
            Trigger::Boot => {
                context.recover_at_boot(HERE);
                context.go("recovered", State::sleep())
            }
            Trigger::Tick => {
                context.took(HERE, Trigger::Tick, Guard::Always);
                context.note_tick();
                Handled
            }
            Trigger::RemCycleFinished => {
                context.took(HERE, Trigger::RemCycleFinished, Guard::Always);
                if let Some(EventKind::RemCycleFinished { result }) = context.event {
                    context.did(Action::FoldDigest);
                    context.data.finish_cycle(result);
                }
                context.go("rem_cycle_finished", State::sleep())
            }
            Trigger::LockLost => {
                context.took(HERE, Trigger::LockLost, Guard::Always);
                context.did(Action::RememberLockLost);
                context.data.remember_lock_lost();
                Handled
            }
            Trigger::Shutdown => {
                context.took(HERE, Trigger::Shutdown, Guard::Always);
                context.out.winding_down = true;
                context.go("shutdown", State::sleep())
            }
            other => context.anytime(HERE, other),
        }
    }

    #[action]
    fn enter_wake(context: &mut Ctx<'_>) {
        context.did(Action::ReleaseLock);
        context.effect(Effect::ReleaseLock);
    }

    #[action]
    fn enter_transitioning(context: &mut Ctx<'_>) {
        context.did(Action::AcquireLock);
        context.effect(Effect::AcquireLock);
    }

    #[action]
    fn enter_sleep(context: &mut Ctx<'_>) {
        context.out.continue_pending = true;
    }

    #[action]
    fn enter_dreaming(context: &mut Ctx<'_>) {
        context.did(Action::RunRemCycle);
        let night = &context.data.view().night;
        let (cycle, of) = (night.completed + 1, night.planned);
        context.effect(Effect::RunRemCycle { cycle, of, is_last: cycle >= of });
    }

    fn after_transition(&mut self, source: &State, target: &State, context: &mut Ctx<'_>) {
        let (from, to) = (name_of(source), name_of(target));
        let trigger = context.event.map_or(Trigger::Continue, EventKind::trigger);
        let reason = std::mem::take(&mut context.out.reason);
        tracing::info!(
            from = from.as_str(),
            to = to.as_str(),
            event = trigger.as_str(),
            reason,
            "transition"
        );
        context.data.set_fsm(to, context.at);
        context.out.transitions.push(Transition { from, to, trigger, reason, at: context.at });
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
