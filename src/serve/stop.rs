//! Stopping `serve` cleanly: the signals that ask for it, and the requests it lets finish first.
//!
//! Owns blocking SIGTERM, SIGINT and SIGHUP so that a thread of our own receives them with
//! `sigwait(3)` instead of the default action killing the process mid-request, and counting the
//! requests in flight so that a stop waits for them. It must not answer requests nor touch the
//! socket file: `Server` and `run` do.

use std::io;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

/// The signals that stop `serve` cleanly.
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// The stop signals, blocked in the calling thread (and every thread it starts afterwards) until
/// this is dropped.
pub struct BlockedSignals {
    set: libc::sigset_t,
    previous: libc::sigset_t,
}

impl BlockedSignals {
    /// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread.
    pub fn block() -> io::Result<Self> {
        // SAFETY: sigemptyset/sigaddset initialise and fill a sigset_t we own; pthread_sigmask
        // reads `set` and writes the old mask to `previous`, both valid for the calls.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut previous: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for signal in STOP_SIGNALS {
                libc::sigaddset(&mut set, signal);
            }
            match libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut previous) {
                0 => Ok(Self { set, previous }),
                code => Err(io::Error::from_raw_os_error(code)),
            }
        }
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
        // SAFETY: `previous` is the mask pthread_sigmask returned when blocking.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, std::ptr::null_mut());
        }
    }
}

/// Waits for one of the blocked stop signals.
pub struct SignalWaiter {
    set: libc::sigset_t,
}

impl SignalWaiter {
    /// Blocks until a stop signal arrives; returns its name.
    pub fn wait(&self) -> &'static str {
        loop {
            let mut signal: libc::c_int = 0;
            // SAFETY: `set` is an initialised sigset_t and `signal` a valid out-pointer.
            if unsafe { libc::sigwait(&self.set, &mut signal) } == 0 {
                return match signal {
                    libc::SIGTERM => "SIGTERM",
                    libc::SIGINT => "SIGINT",
                    libc::SIGHUP => "SIGHUP",
                    _ => continue,
                };
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
