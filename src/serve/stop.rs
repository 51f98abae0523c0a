//! Stopping `serve` (and `run`) cleanly: the signals that ask for it, and the requests it lets finish first.
//!
//! Owns blocking SIGTERM, SIGINT and SIGHUP so that a thread of our own receives them with
//! `sigwait(3)` instead of the default action killing the process mid-request, and counting the
//! requests in flight so that a stop waits for them. It must not answer requests nor touch the
//! socket file: `Server` and `run` do.

use std::io;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};

/// The signals that stop `serve` cleanly.
const STOP_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// The stop signals, blocked in the calling thread (and every thread it starts afterwards) until
/// this is dropped.
pub struct BlockedSignals {
    set: SigSet,
    previous: SigSet,
}

impl BlockedSignals {
    /// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread.
    pub fn block() -> io::Result<Self> {
        let mut set = SigSet::empty();
        for signal in STOP_SIGNALS {
            set.add(signal);
        }
        let mut previous = SigSet::empty();
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut previous))?;
        Ok(Self { set, previous })
    }

    /// A waiter for the blocked signals, to be moved to a thread of its own.
    pub fn waiter(&self) -> SignalWaiter {
        SignalWaiter { set: self.set }
    }

    /// Leaves the signals blocked for the rest of the process: once a stop has begun, a second
    /// signal must not kill it half-way.
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // Nothing to do about a failure here: the mask given back is the one the system gave.
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.previous), None);
    }
}

/// Waits for one of the blocked stop signals.
pub struct SignalWaiter {
    set: SigSet,
}

impl SignalWaiter {
    /// Blocks until a stop signal arrives; returns its name.
    pub fn wait(&self) -> &'static str {
        loop {
            if let Ok(signal) = self.set.wait()
                && STOP_SIGNALS.contains(&signal)
            {
                return signal.as_str();
            }
        }
    }
}

/// The requests being answered, and whether the server is stopping.
#[derive(Debug, Default)]
pub struct InFlight {
    state: Mutex<Flights>,
    idle: Condvar,
}

#[derive(Debug, Default)]
struct Flights {
    running: usize,
    stopping: bool,
}

/// One request being answered; dropping it ends it.
pub struct Turn<'a>(&'a InFlight);

impl InFlight {
    /// Starts answering a request; `None` once the server is stopping.
    pub fn begin(&self) -> Option<Turn<'_>> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.stopping {
            return None;
        }
        state.running += 1;
        Some(Turn(self))
    }

    /// Refuses new requests, then waits up to `grace` for those in flight to be answered.
    /// Returns how many were still running when the grace ran out.
    pub fn stop(&self, grace: Duration) -> usize {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.stopping = true;
        let (state, _) = self
            .idle
            .wait_timeout_while(state, grace, |state| state.running > 0)
            .unwrap_or_else(PoisonError::into_inner);
        state.running
    }

    /// Whether a stop has begun.
    #[cfg(test)]
    pub fn stopping(&self) -> bool {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).stopping
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.running = state.running.saturating_sub(1);
        if state.running == 0 {
            self.0.idle.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_waits_for_the_turns_in_flight_and_refuses_new_ones() {
        let flights = std::sync::Arc::new(InFlight::default());
        let turn = flights.begin().expect("not stopping yet");
        let stopper = {
            let flights = std::sync::Arc::clone(&flights);
            std::thread::spawn(move || flights.stop(Duration::from_secs(60)))
        };
        while !flights.stopping() {
            std::thread::yield_now();
        }
        assert!(flights.begin().is_none(), "no new turn once stopping");
        drop(turn);
        assert_eq!(stopper.join().unwrap(), 0, "the stop saw the turn end");
    }
}
