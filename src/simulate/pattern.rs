//! The simulated people and operator: who opens sessions when, what they recall, and which
//! requests and mishaps a day brings.
//!
//! Owns the shape of a day (mornings and evenings, busier days, quiet weekends, the odd late-night
//! session) and the list of mishaps the host plays out at night. It must not talk to the engine:
//! the host turns these plans into events.

use chrono::{Datelike, Duration, Weekday};

use crate::timestamp::Timestamp;

use super::rng::Rng;

/// One client session as planned: when it opens, when it ends, and what happens in between.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The session id the client sends.
    pub id: String,
    /// When it opens.
    pub start: Timestamp,
    /// When the client goes quiet.
    pub end: Timestamp,
    /// When it recalls memory (the first one soon after opening).
    pub recalls: Vec<Timestamp>,
    /// When the client talks to the host between recalls.
    pub pings: Vec<Timestamp>,
}

/// A daytime request from the operator or the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Run one REM cycle now.
    ForceRem,
    /// The user goes to bed and asks the daemon to sleep.
    UserSleep,
    /// Pause the scheduler, then resume it at the given moment.
    Pause {
        /// When the operator resumes.
        until: Timestamp,
    },
    /// A force-wake sent while nothing runs (it must not cut the next night short).
    ForceWake,
}

/// The kinds of daytime request, dealt one a day from a deck.
pub const REQUEST_KINDS: [RequestKind; 4] =
    [RequestKind::ForceRem, RequestKind::UserSleep, RequestKind::Pause, RequestKind::ForceWake];

/// A daytime request without its moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// [`Request::ForceRem`].
    ForceRem,
    /// [`Request::UserSleep`].
    UserSleep,
    /// [`Request::Pause`].
    Pause,
    /// [`Request::ForceWake`].
    ForceWake,
}

/// What one day brings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayPlan {
    /// The sessions opened that day (a late one may run past midnight).
    pub sessions: Vec<Session>,
    /// The daytime requests, with their moments.
    pub requests: Vec<(Timestamp, Request)>,
}

/// Plans day `day` (from 0) starting at `midnight`, with an optional daytime request.
pub fn plan_day(
    rng: &mut Rng,
    midnight: Timestamp,
    day: u32,
    request: Option<RequestKind>,
) -> DayPlan {
    let weekend = matches!(midnight.weekday(), Weekday::Sat | Weekday::Sun);
    let busy = !weekend && rng.chance(0.3);
    let extra = i64::from(busy);
    // (earliest start, latest start) in minutes after midnight, and how many sessions.
    let blocks: [(i64, i64, i64); 3] = if weekend {
        [
            (9 * 60, 12 * 60, rng.between(0, 1)),
            (13 * 60, 18 * 60, rng.between(0, 1)),
            (19 * 60, 22 * 60 + 30, rng.between(1, 2)),
        ]
    } else {
        [
            (7 * 60 + 30, 11 * 60 + 30, rng.between(1, 3) + extra),
            (13 * 60, 17 * 60 + 30, rng.between(0, 1) + extra),
            (19 * 60, 22 * 60 + 30, rng.between(1, 2)),
        ]
    };
    let mut starts: Vec<(i64, i64)> = Vec::new();
    for (earliest, latest, count) in blocks {
        for _ in 0..count {
            starts.push((rng.between(earliest, latest), session_minutes(rng)));
        }
    }
    if rng.chance(0.2) {
        // A late-night session, sometimes past midnight.
        starts.push((rng.between(23 * 60 + 15, 25 * 60 + 30), rng.between(15, 60)));
    }
    starts.sort_unstable();
    let sessions = starts
        .into_iter()
        .enumerate()
        .map(|(n, (start, minutes))| {
            let id = format!("sim-d{}-s{}", day + 1, n + 1);
            let start = midnight + Duration::minutes(start) + Duration::seconds(rng.between(0, 59));
            session(rng, id, start, Duration::minutes(minutes), (20, 120))
        })
        .collect();
    let requests = request.map(|kind| plan_request(rng, midnight, kind)).into_iter().collect();
    DayPlan { sessions, requests }
}

/// How long a session lasts: mostly under an hour and a half, now and then a long working stretch.
fn session_minutes(rng: &mut Rng) -> i64 {
    if rng.chance(0.2) { rng.between(90, 180) } else { rng.between(15, 90) }
}

/// One session from `start` for `length`: a recall within the first minutes, then about one every
/// twelve minutes, and the client talking to the host every `ping_secs` (a range) in between.
pub fn session(
    rng: &mut Rng,
    id: String,
    start: Timestamp,
    length: Duration,
    ping_secs: (i64, i64),
) -> Session {
    let end = start + length;
    let secs = length.num_seconds().max(60);
    let mut recalls = vec![start + Duration::seconds(rng.between(20, 240.min(secs)))];
    for _ in 0..(secs / 720) {
        recalls.push(start + Duration::seconds(rng.between(60, secs)));
    }
    recalls.sort_unstable();
    let mut pings = Vec::new();
    let mut at = start + Duration::seconds(rng.between(ping_secs.0, ping_secs.1));
    while at < end {
        pings.push(at);
        at += Duration::seconds(rng.between(ping_secs.0, ping_secs.1));
    }
    Session { id, start, end, recalls, pings }
}

fn plan_request(rng: &mut Rng, midnight: Timestamp, kind: RequestKind) -> (Timestamp, Request) {
    let at = |rng: &mut Rng, from_h: i64, to_h: i64| {
        midnight + Duration::seconds(rng.between(from_h * 3600, to_h * 3600))
    };
    match kind {
        RequestKind::ForceRem => (at(rng, 12, 17), Request::ForceRem),
        RequestKind::UserSleep => (at(rng, 22, 24), Request::UserSleep),
        RequestKind::Pause => {
            let from = at(rng, 12, 16);
            let until = from + Duration::minutes(rng.between(60, 240));
            (from, Request::Pause { until })
        }
        RequestKind::ForceWake => (at(rng, 10, 18), Request::ForceWake),
    }
}

/// A mishap the host plays out on one night, dealt from a deck so that each comes up in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mishap {
    /// The lock is never answered: the engine gives up waiting.
    LockHangs,
    /// A client holds the lock: the host denies it.
    LockDenied,
    /// The host process dies while the engine waits for the lock.
    CrashWhileWaiting,
    /// The host restarts (shutdown, then boot) while the engine waits for the lock.
    RestartWhileWaiting,
    /// The host process is killed between the two saves of a night's start.
    KilledMidSave,
    /// A save fails at a night's start; the host shuts down cleanly and starts again.
    DiskError,
    /// A save fails at a night's start (the disk was full for a moment); the host carries on, and
    /// its next tick finds the engine resting in SLEEP.
    DiskFull,
    /// The host process dies during a REM cycle.
    CrashWhileDreaming,
    /// The host restarts during a REM cycle.
    RestartWhileDreaming,
    /// The operator sends a force-wake during a cycle with cycles left.
    ForceWake,
    /// A client takes the lock back during a cycle with cycles left.
    LockLost,
    /// A client opens a session during a cycle with cycles left and keeps talking.
    ClientWakes,
}

/// Where in a night a mishap happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// When the engine asks for the lock.
    Lock,
    /// During any REM cycle.
    AnyCycle,
    /// During a REM cycle that is not the night's last.
    CycleWithMoreToCome,
}

impl Mishap {
    /// Every mishap, once.
    pub const ALL: [Mishap; 12] = [
        Self::LockHangs,
        Self::LockDenied,
        Self::CrashWhileWaiting,
        Self::RestartWhileWaiting,
        Self::KilledMidSave,
        Self::DiskError,
        Self::DiskFull,
        Self::CrashWhileDreaming,
        Self::RestartWhileDreaming,
        Self::ForceWake,
        Self::LockLost,
        Self::ClientWakes,
    ];

    /// Where in a night it happens.
    pub fn stage(self) -> Stage {
        match self {
            Self::LockHangs
            | Self::LockDenied
            | Self::CrashWhileWaiting
            | Self::RestartWhileWaiting
            | Self::KilledMidSave
            | Self::DiskError
            | Self::DiskFull => Stage::Lock,
            Self::CrashWhileDreaming | Self::RestartWhileDreaming => Stage::AnyCycle,
            Self::ForceWake | Self::LockLost | Self::ClientWakes => Stage::CycleWithMoreToCome,
        }
    }

    /// A short name for progress lines and the hypnogram.
    pub fn label(self) -> &'static str {
        match self {
            Self::LockHangs => "lock hangs",
            Self::LockDenied => "lock held",
            Self::CrashWhileWaiting | Self::CrashWhileDreaming => "crash",
            Self::RestartWhileWaiting | Self::RestartWhileDreaming => "restart",
            Self::KilledMidSave => "killed mid-save",
            Self::DiskError => "disk error",
            Self::DiskFull => "disk full",
            Self::ForceWake => "force-wake",
            Self::LockLost => "lock taken back",
            Self::ClientWakes => "late session",
        }
    }
}
