//! What the table's words mean: when each guard holds (and when it will), what each reason says,
//! what each action does.
//!
//! Owns one `holds`, one `due`, one `resolve` and one `apply`, each a single match over its enum,
//! written over `Data`'s predicates and edits. It must not choose rows: `Ctx::run` does, in table
//! order.

use super::Ctx;
use crate::data::{Data, RequestKind};
use crate::effects::{Audit, Effect, ReapPhase};
use crate::event::{EventKind, Input};
use crate::quiet_window;
use crate::sessions;
use crate::reason::Reason;
use crate::table::{Action, Because, Guard, StateName};
use crate::timestamp::{self, Timestamp};

impl Guard {
    /// Whether the guard holds at `at` for `input`; `winding_down` says that a boot recovery or a
    /// shutdown in this call is walking the night back. A fallback guard always holds: the rows
    /// before it decide.
    pub fn holds(self, data: &Data, at: Timestamp, input: &Input<'_>, winding_down: bool) -> bool {
        let view = data.view();
        match self {
            Self::Always | Self::OutsideWindow | Self::LockWaitPending | Self::CyclesDone => true,
            Self::Paused => view.paused,
            Self::StoreEmpty => matches!(input.kind(), Some(EventKind::Tick { store_empty: true })),
            Self::FirstTurnsExpired => view.first_turn_expiry.is_some_and(|due| due <= at),
            Self::RelearnDue => data.relearn_due(at),
            Self::SleepDue => data.sleep_due(at).is_some(),
            Self::BackingOff => data.backing_off(at),
            Self::LockWaitExpired => data.lock_wait_expired(at),
            Self::WindingDown => winding_down,
            Self::ForceWake | Self::LockLost | Self::RecentActivity => {
                data.yield_reason(at).is_some_and(|(guard, _)| guard == self)
            }
            Self::CyclesLeft => data.cycles_left(),
        }
    }

    /// When, at `now` or later, the guard will hold with nothing but time passing: `now` for the
    /// night's boundary guards that hold now, the moment for the ones time makes hold (a first
    /// turn's expiry, the relearn, sleep becoming due, the lock-wait bound), `None` for the guards
    /// that wait on something else or only say why nothing happens.
    pub fn due(self, data: &Data, now: Timestamp) -> Option<Timestamp> {
        let view = data.view();
        match self {
            Self::Always
            | Self::Paused
            | Self::StoreEmpty
            | Self::BackingOff
            | Self::OutsideWindow
            | Self::LockWaitPending
            | Self::WindingDown => None,
            Self::FirstTurnsExpired => view.first_turn_expiry,
            Self::RelearnDue => Some(match view.learned_at {
                Some(learned) if !data.relearn_due(now) => learned + quiet_window::RELEARN_AFTER,
                _ => now,
            }),
            Self::SleepDue => sleep_due_at(data, now),
            Self::LockWaitExpired => Some(match view.transition_at {
                Some(since) if !data.lock_wait_expired(now) => {
                    since + crate::data::LOCK_WAIT_TIMEOUT
                }
                _ => now,
            }),
            Self::ForceWake
            | Self::LockLost
            | Self::RecentActivity
            | Self::CyclesLeft
            | Self::CyclesDone => self.holds(data, now, &Input::Continue, false).then_some(now),
        }
    }

    /// Whether the guard holds now and time alone will not change that (a pause does): the rows
    /// after one that ends the event under it cannot be reached by waiting.
    pub fn holds_until_told(self, data: &Data) -> bool {
        match self {
            Self::Always => true,
            Self::Paused => data.view().paused,
            _ => false,
        }
    }
}

/// The first moment at or after `now` when sleep becomes due by time alone: a pending request at
/// once, the quiet window's next start (after this occurrence when it already started a night),
/// the 2 h idle mark counted from the later of the last session and the boot (once per idle
/// stretch); none before a refused lock's back-off ends.
fn sleep_due_at(data: &Data, now: Timestamp) -> Option<Timestamp> {
    let view = data.view();
    let mut due = Vec::new();
    if view.user_sleep_pending || view.force_rem_pending {
        due.push(Some(now));
    }
    if let Some(window) = view.window {
        let after = data.slept_this_window(now).unwrap_or(now);
        due.push(quiet_window::next_window_start(window, after, view.tz));
    }
    if !data.night_since_last_session() {
        due.push(Some(data.idle_since().map_or(now, |at| at + quiet_window::BOOTSTRAP_IDLE)));
    }
    let not_before = view.night.retry_after.filter(|_| data.backing_off(now)).unwrap_or(now);
    due.into_iter().flatten().min().map(|at| at.max(not_before))
}

impl Because {
    /// The row's reason at `at`, read before the row's actions apply (`None` for a row that
    /// records none).
    pub(crate) fn resolve(self, data: &Data, at: Timestamp) -> Option<Reason> {
        match self {
            Self::None => None,
            Self::Is(reason) => Some(reason),
            Self::SleepDue => data.sleep_due(at),
        }
    }
}

impl Action {
    /// Does what the action says, in `from` (the state the row belongs to), for `input`, with the
    /// row's `reason`.
    pub fn apply(
        self,
        ctx: &mut Ctx<'_>,
        input: &Input<'_>,
        from: StateName,
        reason: Option<Reason>,
    ) {
        let at = ctx.at;
        let night_running = from != StateName::Wake;
        match (self, input.kind()) {
            (Self::NoteTick, _) => ctx.data.note_tick(at),
            (Self::ReapFirstTurns, _) => reap_first_turns(ctx, ReapPhase::Tick),
            (Self::RelearnQuietWindow, _) => ctx.data.relearn(at),
            (Self::StampBoot, _) => {
                ctx.data.stamp_boot(at);
                reap_first_turns(ctx, ReapPhase::Startup);
            }
            (Self::SkipTick, _) => {
                if ctx.data.set_skip_reason(reason) && reason == Some(Reason::Paused) {
                    emit(ctx, Effect::Emit(Audit::DaemonTickSkipped { reason: Reason::Paused }));
                }
            }
            (Self::ClearSkipReason, _) => ctx.data.clear_skip_reason(),
            (Self::DiscardStaleForceWake, _) => ctx.data.discard_stale_force_wake(at),
            (Self::AcquireLock, _) => emit(ctx, Effect::AcquireLock),
            (Self::ReleaseLock, _) => emit(ctx, Effect::ReleaseLock),
            (Self::PlanNight, _) => ctx.data.plan_night(at),
            (Self::RunRemCycle, _) => {
                let night = &ctx.data.view().night;
                let (cycle, of) = (night.completed + 1, night.planned);
                emit(ctx, Effect::RunRemCycle { cycle, of, is_last: cycle >= of });
            }
            (Self::FoldDigest, Some(EventKind::RemCycleFinished { result })) => {
                ctx.data.finish_cycle(result);
            }
            (Self::FinishNight, _) => ctx.data.finish_night(at),
            (Self::EmitYielded(reason), _) => {
                // A lock that never came started no night: it completed no cycle.
                let completed_cycles = match from {
                    StateName::Transitioning => 0,
                    _ => ctx.data.view().night.completed,
                };
                emit(ctx, Effect::Emit(Audit::DaemonYielded { reason, completed_cycles }));
            }
            (Self::BackOff, _) => ctx.data.back_off(at),
            (Self::EmitRecovered, _) => emit(ctx, Effect::Emit(Audit::FsmRecovered { found: from, at })),
            (Self::WindDown, _) => ctx.out.winding_down = true,
            (Self::OpenSession, Some(EventKind::SessionStarted { session_id })) => {
                ctx.data.open_session(session_id.as_deref(), at);
                ctx.data.record_activity(at, night_running);
            }
            (Self::Recall, Some(EventKind::Recall { session_id })) => {
                ctx.out.recall = Some(ctx.data.recall(session_id.as_deref(), at));
            }
            (Self::RecordActivity, _) => ctx.data.record_activity(at, night_running),
            (Self::RememberLockLost, _) => ctx.data.remember_lock_lost(),
            (Self::QueueRequest, Some(kind)) => {
                let (request, ts, why) = match kind {
                    EventKind::UserSleepRequested { reason, ts } => {
                        (RequestKind::UserSleep, ts, Some(reason.as_str()))
                    }
                    EventKind::ForceRemRequested { ts } => (RequestKind::ForceRem, ts, None),
                    EventKind::ForceWakeRequested { ts } => (RequestKind::ForceWake, ts, None),
                    _ => return,
                };
                let ts = ts.clone().unwrap_or_else(|| timestamp::format(at));
                ctx.data.queue_request(request, ts, why);
            }
            (Self::SetPause, Some(EventKind::Pause)) => ctx.data.set_paused(true),
            (Self::SetPause, Some(EventKind::Resume)) => ctx.data.set_paused(false),
            (Self::Configure, Some(EventKind::Configure(settings))) => {
                ctx.data.configure(settings);
            }
            (Self::Flush, _) => ctx.data.touch(),
            // An action that reads an event's details does nothing for any other input; the
            // table gives each such action only to the event it reads.
            (
                Self::FoldDigest
                | Self::OpenSession
                | Self::Recall
                | Self::QueueRequest
                | Self::SetPause
                | Self::Configure,
                _,
            ) => {}
        }
    }
}

fn emit(ctx: &mut Ctx<'_>, effect: Effect) {
    ctx.out.effects.push(effect);
}

/// The 1 h first-turn reaper, reporting the sessions it dropped with the phase it ran in.
fn reap_first_turns(ctx: &mut Ctx<'_>, phase: ReapPhase) {
    let session_ids = ctx.data.reap_first_turns(ctx.at);
    if !session_ids.is_empty() {
        emit(
            ctx,
            Effect::Emit(Audit::FirstTurnPendingExpired {
                dropped_count: session_ids.len(),
                session_ids,
                ttl_sec: sessions::REAPER_TTL_SECS,
                phase,
            }),
        );
    }
}
