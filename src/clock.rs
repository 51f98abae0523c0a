//! Where the shell gets the time: the system clock, or one a test or `--now` sets.
//!
//! Owns the only place the product reads the wall clock. The core never uses it: events carry
//! their moment.

use std::cell::Cell;

use chrono::Utc;

use crate::timestamp::{Timestamp, truncate_to_micros};

/// A source of the current moment.
pub trait Clock {
    /// Now, in UTC, to the microsecond.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        truncate_to_micros(Utc::now())
    }
}

#[cfg_attr(not(feature = "cli"), allow(dead_code))] // Used by the command line.
/// A clock that says what it is told: for tests, `--now` and simulations.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Cell<Timestamp>,
}

#[cfg_attr(not(feature = "cli"), allow(dead_code))] // Used by the command line.
impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: Timestamp) -> Self {
        Self { now: Cell::new(truncate_to_micros(at)) }
    }

    /// Sets the time.
    pub fn set(&self, at: Timestamp) {
        self.now.set(truncate_to_micros(at));
    }

    #[cfg(any(test, feature = "testing"))]
    /// Moves the time by `by` (which may be negative).
    pub fn advance(&self, by: chrono::Duration) {
        self.now.set(self.now.get() + by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.now.get()
    }
}
