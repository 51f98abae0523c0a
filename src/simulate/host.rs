//! The reference host loop: a simulated clock ticking every 30 s, client sessions, an operator,
//! and a host process that takes the lock, runs REM cycles, and now and then crashes.
//!
//! Owns the simulated time line (a queue of timed jobs plus the tick), the host's answers to the
//! engine's effects, and what it records of them. It must not reach past the engine: every change
//! to the state file is an event handed to `Engine::handle`, and the only fault it injects is in
//! the file system under the store.

use std::path::PathBuf;

use chrono::Duration;

use crate::clock::{Clock, ManualClock};
use crate::effects::{Audit, Effect};
use crate::engine::{Engine, EngineError};
use crate::event::{Event, EventKind};
use crate::kernel::Outcome;
use crate::store::Store;
use crate::table::StateName;
use crate::timestamp::Timestamp;

use super::SimulateError;
use super::crash::{Fault, faulty_fs};
use super::night::{Nights, Plan};
use super::pattern::{self, REQUEST_KINDS, Request, Session};
use super::queue::{Job, OnFault, Queue};
use super::rng::{Deck, Rng};
use super::rows::Coverage;
use super::summary::Tally;
use super::trace::{MarkKind, RecallMark, Span, Trace, yield_label};

/// How often the host ticks.
const TICK: Duration = Duration::seconds(30);
/// How likely a daytime request is on a given day.
const REQUEST_CHANCE: f64 = 0.7;

/// The simulated host and everything it has seen.
pub struct Host {
    clock: ManualClock,
    nights: Nights,
    path: PathBuf,
    fault: Fault,
    on_fault: Option<OnFault>,
    engine: Option<Engine>,
    queue: Queue,
    epoch: u64,
    next_tick: Timestamp,
    deadline: Option<Timestamp>,
    store_has_records: bool,
    down_since: Option<Timestamp>,
    up_at: Option<Timestamp>,
    paused_since: Option<Timestamp>,
    writes_before: u64,
    /// The counters.
    pub tally: Tally,
    /// The record for the hypnogram.
    pub trace: Trace,
    /// The table rows taken.
    pub rows: Coverage,
}

impl Host {
    /// Plans `days` days from `start` with `seed`, opens the engine on `path` and boots it.
    pub fn start(
        path: PathBuf,
        seed: u64,
        start: Timestamp,
        days: u32,
    ) -> Result<Self, SimulateError> {
        let mut rng = Rng::new(seed);
        let mut people = rng.fork();
        let mut host = Self {
            clock: ManualClock::new(start),
            nights: Nights::new(rng.fork(), start, days),
            path,
            fault: Fault::default(),
            on_fault: None,
            engine: None,
            queue: Queue::default(),
            epoch: 0,
            next_tick: start,
            deadline: None,
            store_has_records: false,
            down_since: None,
            up_at: None,
            paused_since: None,
            writes_before: 0,
            tally: Tally::new(days),
            trace: Trace::new(start, days),
            rows: Coverage::default(),
        };
        let mut requests = Deck::new(&REQUEST_KINDS, &mut people);
        for day in 0..days {
            let midnight = start + Duration::days(i64::from(day));
            let request =
                if people.chance(REQUEST_CHANCE) { requests.deal(&mut people) } else { None };
            let plan = pattern::plan_day(&mut people, midnight, day, request);
            for session in plan.sessions {
                host.add_session(session);
            }
            for (at, request) in plan.requests {
                host.push(at, Job::Request(request));
                if let Request::Pause { until } = request {
                    host.push(until, Job::Resume);
                }
            }
        }
        host.boot()?;
        Ok(host)
    }

    fn push(&mut self, at: Timestamp, job: Job) {
        self.queue.push(at, job);
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn add_session(&mut self, session: Session) {
        self.trace.sessions.push(Span { from: session.start, to: session.end });
        self.push(session.start, Job::Open(session.id.clone()));
        for at in session.recalls {
            self.push(at, Job::Recall(session.id.clone()));
        }
        for at in session.pings {
            self.push(at, Job::Ping);
        }
    }

    /// The state the engine is in, if the host is running.
    pub fn state(&self) -> Option<StateName> {
        self.engine.as_ref().map(Engine::state)
    }

    /// Runs everything due before `until`: jobs first, then the tick, at equal moments.
    pub fn run_until(&mut self, until: Timestamp) -> Result<(), SimulateError> {
        loop {
            let job_at = self.queue.next_at();
            if job_at.is_some_and(|at| at <= self.next_tick && at < until) {
                if let Some((at, job)) = self.queue.pop() {
                    self.clock.set(at);
                    self.run_job(job)?;
                }
            } else if self.next_tick < until {
                self.clock.set(self.next_tick);
                self.next_tick += TICK;
                self.tick()?;
            } else {
                return Ok(());
            }
        }
    }

    /// Ends the run at the current moment: a host that is down starts again, then shuts down.
    pub fn finish(&mut self, at: Timestamp) -> Result<StateName, SimulateError> {
        self.clock.set(at);
        if self.engine.is_none() {
            self.boot()?;
        }
        self.send(EventKind::Shutdown)?;
        if let Some(since) = self.paused_since.take() {
            self.trace.paused.push(Span { from: since, to: at });
        }
        let state = self.state().unwrap_or(StateName::Wake);
        if let Some(engine) = self.engine.take() {
            self.writes_before += engine.store().durable_writes();
        }
        self.tally.durable_writes = self.writes_before;
        Ok(state)
    }

    fn tick(&mut self) -> Result<(), SimulateError> {
        let Some(state) = self.state() else {
            return Ok(());
        };
        let at = self.now();
        let early = self.deadline.is_none_or(|deadline| at < deadline);
        self.tally.ticks += 1;
        let store_empty = !self.store_has_records;
        if let Some(outcome) = self.send(EventKind::Tick { store_empty })?
            && early
            && !outcome.transitions.is_empty()
            && matches!(state, StateName::Wake | StateName::Transitioning)
        {
            self.tally.early_ticks += 1;
        }
        Ok(())
    }

    fn run_job(&mut self, job: Job) -> Result<(), SimulateError> {
        let current = self.epoch;
        match job {
            job if job.is_from_outside() && self.engine.is_none() => {
                // The daemon is down: the client's message waits in the socket's backlog.
                let at = self.up_at.unwrap_or_else(|| self.now());
                self.push(at, job);
            }
            Job::Open(id) => {
                self.store_has_records = true;
                self.tally.sessions += 1;
                let day = self.trace.day_of(self.now());
                self.tally.day(day).sessions += 1;
                self.send(EventKind::SessionStarted { session_id: Some(id) })?;
            }
            Job::Recall(session_id) => self.recall(session_id)?,
            Job::Ping => {
                self.send(EventKind::McpActivity)?;
            }
            Job::Request(request) => self.request(request)?,
            Job::Resume => {
                if let Some(since) = self.paused_since.take() {
                    self.trace.paused.push(Span { from: since, to: self.now() });
                }
                self.send(EventKind::Resume)?;
            }
            Job::LockAnswer { epoch, granted, on_fault } if epoch == current => {
                if on_fault.is_some() {
                    // The night's first save (SLEEP) lands; the second (DREAMING) does not.
                    self.fault.arm(2);
                    self.on_fault = on_fault;
                }
                let kind = if granted { EventKind::LockAcquired } else { EventKind::LockDenied };
                self.send(kind)?;
                self.on_fault = None;
            }
            Job::LockLost { epoch } if epoch == current => {
                self.send(EventKind::LockLost)?;
            }
            Job::RemDone { epoch, result } if epoch == current => {
                let accepted = self.send(EventKind::RemCycleFinished { result })?.is_some();
                if accepted {
                    self.tally.cycles += 1;
                    let day = self.trace.day_of(self.now());
                    self.tally.day(day).cycles += 1;
                }
            }
            Job::Stop { epoch, restart } if epoch == current => {
                let label = if restart { "restart" } else { "crash" };
                self.note(MarkKind::Fault, label);
                if self.state() == Some(StateName::Dreaming) {
                    self.tally.cycles_lost += 1;
                }
                if restart {
                    self.tally.restarts += 1;
                    self.send(EventKind::Shutdown)?;
                } else {
                    self.tally.crashes += 1;
                }
                self.go_down();
            }
            Job::Reboot => self.boot()?,
            Job::LockAnswer { .. }
            | Job::LockLost { .. }
            | Job::RemDone { .. }
            | Job::Stop { .. } => {
                // Meant for a host process that has since died.
            }
        }
        Ok(())
    }

    fn recall(&mut self, session_id: String) -> Result<(), SimulateError> {
        let at = self.now();
        self.tally.recalls += 1;
        let day = self.trace.day_of(at);
        self.tally.day(day).recalls += 1;
        let outcome = self.send(EventKind::Recall { session_id: Some(session_id) })?;
        let first_turn = outcome.as_ref().and_then(|o| o.first_turn) == Some(true);
        let digest = outcome.as_ref().is_some_and(|o| o.digest.is_some());
        self.tally.first_turns += u64::from(first_turn);
        self.tally.digests += u64::from(digest);
        self.trace.recalls.push(RecallMark { at, digest });
        Ok(())
    }

    fn request(&mut self, request: Request) -> Result<(), SimulateError> {
        let kind = match request {
            Request::ForceRem => {
                self.note(MarkKind::Request, "force-rem");
                EventKind::ForceRemRequested { ts: None }
            }
            Request::UserSleep => {
                self.note(MarkKind::Request, "bedtime");
                EventKind::UserSleepRequested { reason: "going to bed".to_owned(), ts: None }
            }
            Request::ForceWake => {
                self.note(MarkKind::Request, "force-wake");
                EventKind::ForceWakeRequested { ts: None }
            }
            Request::Pause { .. } => {
                self.note(MarkKind::Request, "pause");
                self.paused_since = Some(self.now());
                EventKind::Pause
            }
        };
        self.send(kind)?;
        Ok(())
    }

    /// Records a mark on the hypnogram and in the day's events.
    fn note(&mut self, kind: MarkKind, label: &str) {
        let at = self.now();
        self.trace.mark(at, kind, label);
        let day = self.trace.day_of(at);
        self.tally.day(day).events.push(label.to_owned());
    }

    /// The host process is gone: nothing runs until the reboot a few minutes later.
    fn go_down(&mut self) {
        let at = self.now();
        if let Some(engine) = self.engine.take() {
            self.writes_before += engine.store().durable_writes();
        }
        self.fault.disarm();
        self.on_fault = None;
        self.epoch += 1;
        self.down_since = Some(at);
        let up = at + self.nights.downtime();
        self.up_at = Some(up);
        self.push(up, Job::Reboot);
    }

    /// Opens the engine on the state file and sends `Boot`.
    fn boot(&mut self) -> Result<(), SimulateError> {
        let at = self.now();
        let store = Store::with_fs(self.path.clone(), Box::new(faulty_fs(self.fault.clone())))
            .map_err(EngineError::from)?;
        let (engine, report) = Engine::with_store(store)?;
        if let Some(recovery) = report.recovery {
            return Err(SimulateError::Corrupt(format!("{recovery:?}")));
        }
        if let Some(warning) = report.warnings.first() {
            return Err(SimulateError::Corrupt(warning.clone()));
        }
        self.trace.enter(at, engine.state());
        self.engine = Some(engine);
        if let Some(since) = self.down_since.take() {
            self.trace.down.push(Span { from: since, to: at });
        }
        self.up_at = None;
        self.send(EventKind::Boot)?;
        Ok(())
    }

    /// Hands one event to the engine and performs what comes back. `None` when the host is down,
    /// the engine refused the event, or the save the host armed to fail did fail.
    fn send(&mut self, kind: EventKind) -> Result<Option<Outcome>, SimulateError> {
        let at = self.now();
        let Some(engine) = self.engine.as_mut() else {
            return Ok(None);
        };
        let event = Event::new(at, kind);
        let result = if self.on_fault.is_some() {
            // The save this host armed to fail is staged, not news: the engine's log of it stays
            // off stderr.
            let quiet = tracing::subscriber::NoSubscriber::default();
            tracing::subscriber::with_default(quiet, || engine.handle(event))
        } else {
            engine.handle(event)
        };
        self.fault.disarm();
        match result {
            Ok(outcome) => {
                self.deadline = engine.next_deadline(at);
                self.rows.observe(&outcome);
                for t in &outcome.transitions {
                    self.trace.enter(t.at, t.to);
                    let day = self.trace.day_of(t.at);
                    match (t.from, t.to) {
                        (StateName::Wake, StateName::Transitioning) => self.tally.attempts += 1,
                        (StateName::Transitioning, StateName::Sleep) => {
                            self.tally.nights += 1;
                            self.tally.day(day).nights += 1;
                        }
                        _ => {}
                    }
                }
                self.perform(&outcome.effects);
                Ok(Some(outcome))
            }
            Err(EngineError::Rejected(rejection)) => {
                *self.tally.rejected.entry(rejection.trigger.as_str()).or_default() += 1;
                Ok(None)
            }
            Err(EngineError::Store(_)) if self.on_fault.is_some() => {
                // The engine is back at its last durable snapshot (SLEEP): what the file now says.
                let state = engine.state();
                self.trace.enter(at, state);
                match self.on_fault.take() {
                    Some(OnFault::CarryOn) => {
                        self.note(MarkKind::Fault, "disk full");
                        return Ok(None);
                    }
                    Some(OnFault::ShutDown) => {
                        self.note(MarkKind::Fault, "disk error");
                        self.tally.restarts += 1;
                        self.send(EventKind::Shutdown)?;
                    }
                    _ => {
                        self.note(MarkKind::Fault, "killed mid-save");
                        self.tally.crashes += 1;
                    }
                }
                self.go_down();
                Ok(None)
            }
            Err(error) => Err(error.into()),
        }
    }

    fn plan(&mut self, plan: Plan) {
        match plan {
            Plan::Job(at, job) => self.push(at, job),
            Plan::Session(session) => self.add_session(session),
            Plan::Fault(label) => self.note(MarkKind::Fault, label),
        }
    }

    fn perform(&mut self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::AcquireLock => {
                    let sessions = &self.trace.sessions;
                    let busy = |at| sessions.iter().any(|s: &Span| s.from <= at && at < s.to);
                    let plan = self.nights.lock(self.now(), self.epoch, busy);
                    self.plan(plan);
                }
                Effect::ReleaseLock => {}
                Effect::RunRemCycle { is_last, .. } => {
                    for plan in self.nights.cycle(self.now(), self.epoch, *is_last) {
                        self.plan(plan);
                    }
                }
                Effect::Emit(audit) => match audit {
                    Audit::DaemonYielded { reason, .. } => {
                        let reason = reason.as_str().to_owned();
                        let at = self.now();
                        self.trace.mark(at, MarkKind::Yield, yield_label(&reason));
                        let day = self.trace.day_of(at);
                        self.tally.day(day).yields.push(reason.clone());
                        *self.tally.yields.entry(reason).or_default() += 1;
                    }
                    Audit::FsmRecovered { .. } => self.tally.recoveries += 1,
                    Audit::FirstTurnPendingExpired { session_ids, .. } => {
                        self.tally.expired_first_turns += session_ids.len() as u64;
                    }
                    _ => {}
                },
            }
        }
    }
}
