//! The signals that stop `run`: SIGTERM, SIGINT and SIGHUP, blocked in every thread and taken by
//! one of its own with `sigwait(3)`, so that a stop happens between the host's steps.
//!
//! Owns the signal mask and the waiting. It must not stop anything itself: the host does, when
//! told.

use std::io;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};

/// The signals that stop `run` cleanly.
const STOP_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// The stop signals, blocked in the calling thread and every thread it starts afterwards. They
/// stay blocked for the rest of the process: once a stop has begun, a second signal must not kill
/// it half-way. (A child process starts with an empty mask: `std::process::Command` resets it.)
pub struct Blocked {
    set: SigSet,
}

impl Blocked {
    /// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread.
    pub fn block() -> io::Result<Self> {
        let mut set = SigSet::empty();
        for signal in STOP_SIGNALS {
            set.add(signal);
        }
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        Ok(Self { set })
    }

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
