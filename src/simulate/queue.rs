//! The simulated time line: jobs waiting for their moment, taken in order of time and then of
//! arrival, so that equal moments always resolve the same way.
//!
//! Owns the jobs' vocabulary and their order. It must not run them: the host does.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::digest::RemResult;
use crate::timestamp::Timestamp;

use super::pattern::Request;

/// Something that happens at a moment: a client, the operator, or the host process acting.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// A client opens a session.
    Open(String),
    /// A client recalls memory.
    Recall(String),
    /// A client talks to the host.
    Ping,
    /// A request from the user or the operator.
    Request(Request),
    /// The operator resumes the scheduler.
    Resume,
    /// The host answers the engine's lock request.
    LockAnswer {
        /// The host process that asked (a job for a dead one is dropped).
        epoch: u64,
        /// Whether the lock came.
        granted: bool,
        /// When set, the answer's second save fails, and this is what the host does then.
        on_fault: Option<OnFault>,
    },
    /// A client takes the lock back mid-night.
    LockLost {
        /// The host process that held the lock.
        epoch: u64,
    },
    /// The REM cycle the engine asked for is done.
    RemDone {
        /// The host process running it.
        epoch: u64,
        /// What it produced.
        result: RemResult,
    },
    /// The host process stops: killed, or shut down to start again.
    Stop {
        /// The host process that stops.
        epoch: u64,
        /// Shut down cleanly (then start again) rather than die.
        restart: bool,
    },
    /// The host process starts again.
    Reboot,
}

impl Job {
    /// Whether the job comes from outside the host process (a client or the operator), and so
    /// waits for the process when it is down rather than dying with it.
    pub fn is_from_outside(&self) -> bool {
        matches!(
            self,
            Self::Open(_) | Self::Recall(_) | Self::Ping | Self::Request(_) | Self::Resume
        )
    }
}

/// What the host does when the save it armed to fail does fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFault {
    /// The process is killed there and then.
    Die,
    /// The host sees the error and shuts down cleanly.
    ShutDown,
    /// The host sees the error and keeps running; its next tick goes on from the durable state.
    CarryOn,
}

#[derive(Debug)]
struct Queued {
    at: Timestamp,
    seq: u64,
    job: Job,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The jobs waiting for their moment.
#[derive(Debug, Default)]
pub struct Queue {
    heap: BinaryHeap<Reverse<Queued>>,
    seq: u64,
}

impl Queue {
    /// Schedules `job` at `at`, after every job already scheduled for the same moment.
    pub fn push(&mut self, at: Timestamp, job: Job) {
        self.seq += 1;
        self.heap.push(Reverse(Queued { at, seq: self.seq, job }));
    }

    /// When the next job is due.
    pub fn next_at(&self) -> Option<Timestamp> {
        self.heap.peek().map(|Reverse(q)| q.at)
    }

    /// Takes the next job.
    pub fn pop(&mut self) -> Option<(Timestamp, Job)> {
        self.heap.pop().map(|Reverse(q)| (q.at, q.job))
    }
}
