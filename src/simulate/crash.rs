//! The simulated host's file system: the real one, plus a fault the host can arm to make one
//! coming save fail, as a process killed mid-night or a disk error would.
//!
//! Owns the fault switch and nothing else: every call goes to the real file system unchanged
//! unless the fault is armed. It must not touch the state file itself: the store does.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::store::{Call, Interposed};

/// A switch shared between the host and its file system: arm it to make the `n`th save from now
/// fail before its temp file exists.
#[derive(Debug, Clone, Default)]
pub struct Fault {
    countdown: Arc<AtomicU32>,
}

impl Fault {
    /// Makes the `nth` save from now fail (1 is the next one).
    pub fn arm(&self, nth: u32) {
        self.countdown.store(nth, Ordering::SeqCst);
    }

    /// Disarms the switch; returns whether it was still armed (the fault did not fire).
    pub fn disarm(&self) -> bool {
        self.countdown.swap(0, Ordering::SeqCst) != 0
    }

    /// Counts one save down; true when this is the one that must fail.
    fn fires(&self) -> bool {
        let left = self.countdown.load(Ordering::SeqCst);
        if left == 0 {
            return false;
        }
        self.countdown.store(left - 1, Ordering::SeqCst);
        left == 1
    }
}

/// The real file system with a [`Fault`] in front of the creation of temp files (the first step
/// of every save).
pub fn faulty_fs(fault: Fault) -> Interposed<impl Fn(Call, &Path) -> Option<io::Error> + Send + Sync> {
    Interposed::new(move |call, _: &Path| {
        (call == Call::Create && fault.fires())
            .then(|| io::Error::other("simulated fault: the save never happened"))
    })
}
