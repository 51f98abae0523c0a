//! The simulated host's file system: the real one, plus a fault the host can arm to make one
//! coming save fail, as a process killed mid-night or a disk error would.
//!
//! Owns the fault switch and nothing else: every call goes to the real file system unchanged
//! unless the fault is armed. It must not touch the state file itself: the store does.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::store::{Fs, FsFile, FsLock, Meta, RealFs};

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
#[derive(Debug, Clone)]
pub struct FaultyFs {
    fault: Fault,
}

impl FaultyFs {
    /// The real file system behind `fault`.
    pub fn new(fault: Fault) -> Self {
        Self { fault }
    }
}

impl Fs for FaultyFs {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        RealFs.create_dir(dir)
    }

    fn stat(&self, path: &Path) -> io::Result<Option<Meta>> {
        RealFs.stat(path)
    }

    fn read(&self, path: &Path) -> io::Result<Option<(Vec<u8>, Meta)>> {
        RealFs.read(path)
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        if self.fault.fires() {
            return Err(io::Error::other("simulated fault: the save never happened"));
        }
        RealFs.create_new(path)
    }

    fn overwrite(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        RealFs.overwrite(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealFs.rename(from, to)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealFs.hard_link(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        RealFs.remove(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        RealFs.sync_dir(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        RealFs.list_dir(dir)
    }

    fn lock(&self, path: &Path, wait: bool) -> io::Result<Option<FsLock>> {
        RealFs.lock(path, wait)
    }
}
