//! The host's side of a night: how it answers the lock, how long REM cycles take and what they
//! report, and which mishap strikes when.
//!
//! Owns the night-time dice (its own random stream) and the deck of mishaps. It must not talk to
//! the engine: it returns plans, and the host schedules them.

use std::collections::VecDeque;

use chrono::Duration;

use crate::digest::RemResult;
use crate::timestamp::Timestamp;

use super::pattern::{self, Mishap, Request, Session, Stage};
use super::queue::{Job, OnFault};
use super::rng::{Deck, Rng};

/// How likely the host denies the lock while a client session is open.
const DENY_WHEN_BUSY: f64 = 0.5;

/// What a cycle that called the model might have found.
const INSIGHTS: [&str; 5] = [
    "the week's sessions keep returning to the release checklist",
    "two projects share one deployment pattern",
    "questions about the parser cluster on Monday mornings",
    "most recalls this week were about the migration",
    "the same three notes answer half of the evening questions",
];

/// Something the host is to do about the night.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Schedule a job.
    Job(Timestamp, Job),
    /// A client opens a session in the middle of the night.
    Session(Session),
    /// Something went wrong that only shows on the hypnogram (no answer ever comes).
    Fault(&'static str),
}

/// The night-time decisions.
#[derive(Debug, Clone)]
pub struct Nights {
    rng: Rng,
    due: VecDeque<(Timestamp, Mishap)>,
    mishap: Option<Mishap>,
    late_sessions: u32,
}

impl Nights {
    /// Decisions drawn from `rng` for a run of `days` days from `start`. Each week brings every
    /// mishap once, in a shuffled order, spread over the week: each one strikes the first night
    /// after its moment that gives it the stage it needs.
    pub fn new(mut rng: Rng, start: Timestamp, days: u32) -> Self {
        let mut deck = Deck::new(&Mishap::ALL, &mut rng);
        let count = Mishap::ALL.len() as i64;
        // Over the first six days, so that the last one still finds a night before the week ends.
        let spacing = Duration::days(6).num_seconds() / count;
        let mut due = VecDeque::new();
        for week in 0..i64::from(days.div_ceil(7)) {
            for k in 0..count {
                let offset = week * 7 * 86_400 + k * spacing + rng.between(0, spacing / 2);
                if let Some(mishap) = deck.deal(&mut rng) {
                    due.push_back((start + Duration::seconds(offset), mishap));
                }
            }
        }
        Self { rng, due, mishap: None, late_sessions: 0 }
    }

    /// How long the host process stays down after a crash or before a restart completes.
    pub fn downtime(&mut self) -> Duration {
        Duration::seconds(self.rng.between(60, 240))
    }

    /// Takes tonight's mishap if it strikes at a stage `fits` accepts.
    fn take_mishap(&mut self, fits: impl Fn(Stage) -> bool) -> Option<Mishap> {
        let mishap = self.mishap.filter(|m| fits(m.stage()))?;
        self.mishap = None;
        Some(mishap)
    }

    /// The engine asks for the lock at `now`: the host answers a few seconds later (denying it,
    /// now and then, while `busy` says a client is in a session), unless a mishap says otherwise.
    pub fn lock(&mut self, now: Timestamp, epoch: u64, busy: impl Fn(Timestamp) -> bool) -> Plan {
        if self.mishap.is_none() && self.due.front().is_some_and(|&(at, _)| at <= now) {
            self.mishap = self.due.pop_front().map(|(_, mishap)| mishap);
        }
        let at = now + Duration::seconds(self.rng.between(3, 25));
        let answer =
            |granted, on_fault| Plan::Job(at, Job::LockAnswer { epoch, granted, on_fault });
        match self.take_mishap(|stage| stage == Stage::Lock) {
            None => {
                let denied = busy(at) && self.rng.chance(DENY_WHEN_BUSY);
                answer(!denied, None)
            }
            Some(Mishap::LockDenied) => answer(false, None),
            Some(Mishap::KilledMidSave) => answer(true, Some(OnFault::Die)),
            Some(Mishap::DiskError) => answer(true, Some(OnFault::ShutDown)),
            Some(Mishap::DiskFull) => answer(true, Some(OnFault::CarryOn)),
            Some(Mishap::CrashWhileWaiting) => Plan::Job(at, Job::Stop { epoch, restart: false }),
            Some(Mishap::RestartWhileWaiting) => Plan::Job(at, Job::Stop { epoch, restart: true }),
            Some(mishap) => Plan::Fault(mishap.label()),
        }
    }

    /// The engine asks for a REM cycle at `now`: it takes 10 to 40 minutes and reports plausible
    /// figures, now and then timing out; tonight's mishap may strike while it runs.
    pub fn cycle(&mut self, now: Timestamp, epoch: u64, is_last: bool) -> Vec<Plan> {
        let timed_out = self.rng.chance(0.04);
        let minutes = if timed_out { 40 } else { self.rng.between(10, 40) };
        let length = Duration::minutes(minutes) + Duration::seconds(self.rng.between(0, 59));
        let claude_call_used = self.rng.chance(0.3);
        let insight = self.rng.between(0, INSIGHTS.len() as i64 - 1) as usize;
        let result = RemResult {
            summaries_created: self.rng.between(0, 12) as u64,
            schema_candidates: self.rng.between(0, 3) as u64,
            claude_call_used,
            main_insight_text: claude_call_used.then(|| INSIGHTS[insight].to_owned()),
            timed_out,
        };
        let done = now + length;
        let mut plans = vec![Plan::Job(done, Job::RemDone { epoch, result })];
        let fits = |stage| match stage {
            Stage::Lock => false,
            Stage::AnyCycle => true,
            Stage::CycleWithMoreToCome => !is_last,
        };
        let Some(mishap) = self.take_mishap(fits) else {
            return plans;
        };
        let at = now + Duration::seconds(self.rng.between(120, length.num_seconds() - 120));
        let plan = match mishap {
            Mishap::CrashWhileDreaming => Plan::Job(at, Job::Stop { epoch, restart: false }),
            Mishap::RestartWhileDreaming => Plan::Job(at, Job::Stop { epoch, restart: true }),
            Mishap::ForceWake => Plan::Job(at, Job::Request(Request::ForceWake)),
            Mishap::LockLost => Plan::Job(at, Job::LockLost { epoch }),
            Mishap::ClientWakes => {
                self.late_sessions += 1;
                let id = format!("sim-night-{}", self.late_sessions);
                // The client stays past the cycle's end, talking every 10 to 25 s.
                let length = (done - at) + Duration::minutes(self.rng.between(5, 30));
                Plan::Session(pattern::session(&mut self.rng, id, at, length, (10, 25)))
            }
            Mishap::LockHangs
            | Mishap::LockDenied
            | Mishap::CrashWhileWaiting
            | Mishap::RestartWhileWaiting
            | Mishap::KilledMidSave
            | Mishap::DiskError
            | Mishap::DiskFull => return plans,
        };
        plans.push(plan);
        plans
    }
}
