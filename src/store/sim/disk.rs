//! The simulated disk: directories with their durable entries and unsynced operation log, and
//! inodes with their durable and visible data.
//!
//! Owns the bookkeeping of what is durable and what is only visible. It must not decide when a call
//! fails or what a crash leaves: that is `sim`'s.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};

use super::Call;
use crate::store::fs::{FileKind, Meta};

/// Everything on the simulated disk, and the bookkeeping of calls, power and injected errors.
#[derive(Clone, Default)]
pub(super) struct State {
    pub(super) dirs: BTreeMap<PathBuf, Dir>,
    pub(super) inodes: BTreeMap<u64, Inode>,
    pub(super) next_ino: u64,
    pub(super) clock: i128,
    pub(super) calls: u64,
    pub(super) calls_by_kind: BTreeMap<Call, u64>,
    pub(super) power_cut_at: Option<u64>,
    pub(super) power_cut: bool,
    pub(super) inject: Vec<Injection>,
    pub(super) injected: bool,
    /// Each locked directory and the handle that holds its lock.
    pub(super) locks: BTreeMap<PathBuf, u64>,
    pub(super) next_handle: u64,
    /// Directories' owners where a test set one; this process's user otherwise.
    pub(super) dir_owners: BTreeMap<PathBuf, u32>,
}

/// An error armed to be returned by the `nth` call of a kind.
#[derive(Clone, Copy)]
pub(super) struct Injection {
    pub(super) call: Call,
    pub(super) nth: u64,
    pub(super) errno: i32,
}

/// A directory: its durable entries, the entries visible now, and the operations in between.
#[derive(Clone, Default)]
pub(super) struct Dir {
    pub(super) durable: BTreeMap<OsString, u64>,
    pub(super) current: BTreeMap<OsString, u64>,
    pub(super) log: Vec<DirOp>,
}

/// A directory operation not yet made durable.
#[derive(Clone)]
pub(super) enum DirOp {
    Create(OsString, u64),
    Rename(OsString, OsString),
    Link(OsString, OsString),
    Remove(OsString),
}

/// A file's data: what is durable and what is visible now.
#[derive(Clone, Default)]
pub(super) struct Inode {
    pub(super) durable: Vec<u8>,
    pub(super) current: Vec<u8>,
    /// An `fsync` of this file failed: its data can no longer be made durable.
    pub(super) sync_failed: bool,
    pub(super) mtime_ns: i128,
    /// Permission bits and owner (0600 and this process's user unless a test sets them).
    pub(super) mode: u32,
    pub(super) uid: u32,
}

/// Steps a mixed-radix counter; false once it wraps around.
pub(super) fn advance(digits: &mut [usize], radix: impl Fn(usize) -> usize) -> bool {
    for (i, digit) in digits.iter_mut().enumerate() {
        *digit += 1;
        if *digit < radix(i) {
            return true;
        }
        *digit = 0;
    }
    false
}

impl Dir {
    /// The entries after the durable ones and the first `k` logged operations.
    pub(super) fn replay(&self, k: usize) -> BTreeMap<OsString, u64> {
        let mut entries = self.durable.clone();
        for op in &self.log[..k] {
            op.apply(&mut entries);
        }
        entries
    }

    pub(super) fn apply(&mut self, op: DirOp) {
        op.apply(&mut self.current);
        self.log.push(op);
    }
}

impl DirOp {
    pub(super) fn apply(&self, entries: &mut BTreeMap<OsString, u64>) {
        match self {
            DirOp::Create(name, ino) => {
                entries.insert(name.clone(), *ino);
            }
            DirOp::Rename(from, to) => {
                if let Some(ino) = entries.remove(from) {
                    entries.insert(to.clone(), ino);
                }
            }
            DirOp::Link(from, to) => {
                if let Some(&ino) = entries.get(from) {
                    entries.insert(to.clone(), ino);
                }
            }
            DirOp::Remove(name) => {
                entries.remove(name);
            }
        }
    }
}

/// The effective user id of this process, which owns what the simulated disk creates.
pub(super) fn process_uid() -> u32 {
    crate::store::effective_uid()
}

impl Inode {
    /// An empty file, mode 0600, owned by this process's user.
    pub(super) fn fresh() -> Self {
        Inode { mode: 0o600, uid: process_uid(), ..Inode::default() }
    }

    /// What a crash may leave of this file's data: the durable data, or any prefix of the current.
    pub(super) fn crash_choices(&self) -> Vec<Vec<u8>> {
        if self.durable == self.current && !self.sync_failed {
            return vec![self.current.clone()];
        }
        let mut options = vec![self.durable.clone()];
        for len in 0..=self.current.len() {
            let prefix = &self.current[..len];
            if prefix != self.durable.as_slice() {
                options.push(prefix.to_vec());
            }
        }
        options
    }
}

impl State {
    pub(super) fn lookup(&self, path: &Path) -> Option<u64> {
        let dir = self.dirs.get(path.parent()?)?;
        dir.current.get(path.file_name()?).copied()
    }

    pub(super) fn new_inode(&mut self, data: Vec<u8>) -> u64 {
        self.next_ino += 1;
        self.clock += 1;
        let inode = Inode { mtime_ns: self.clock, current: data, ..Inode::fresh() };
        self.inodes.insert(self.next_ino, inode);
        self.next_ino
    }

    pub(super) fn meta(&self, path: &Path) -> Option<Meta> {
        if self.dirs.contains_key(path) {
            return Some(Meta {
                kind: FileKind::Dir,
                mode: 0o700,
                dev: 1,
                ino: 0,
                size: 0,
                mtime_ns: 0,
                uid: self.dir_owners.get(path).copied().unwrap_or_else(process_uid),
            });
        }
        let ino = self.lookup(path)?;
        let inode = self.inodes.get(&ino)?;
        Some(Meta {
            kind: FileKind::File,
            mode: inode.mode,
            dev: 1,
            ino,
            size: inode.current.len() as u64,
            mtime_ns: inode.mtime_ns,
            uid: inode.uid,
        })
    }

    /// The directory and the name of a path whose directory exists.
    pub(super) fn split<'p>(&mut self, path: &'p Path) -> io::Result<(&mut Dir, &'p OsStr)> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        let dir =
            self.dirs.get_mut(parent).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        Ok((dir, name))
    }

    /// The file at `path` opened at its end, created empty when missing.
    pub(super) fn open_to_append(&mut self, path: &Path) -> io::Result<u64> {
        match self.lookup(path) {
            Some(ino) if !self.dirs.contains_key(path) => Ok(ino),
            _ => self.create_file(path),
        }
    }

    pub(super) fn open_file(&mut self, path: &Path, exclusive: bool) -> io::Result<u64> {
        if self.dirs.contains_key(path) {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        if let Some(ino) = self.lookup(path) {
            if exclusive {
                return Err(io::Error::from_raw_os_error(libc::EEXIST));
            }
            self.clock += 1;
            let clock = self.clock;
            if let Some(inode) = self.inodes.get_mut(&ino) {
                inode.current.clear();
                inode.mtime_ns = clock;
            }
            return Ok(ino);
        }
        self.create_file(path)
    }

    /// A new empty file at `path` (a directory there is `EISDIR`).
    fn create_file(&mut self, path: &Path) -> io::Result<u64> {
        if self.dirs.contains_key(path) {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        self.split(path)?;
        let ino = self.new_inode(Vec::new());
        let (dir, name) = self.split(path)?;
        dir.apply(DirOp::Create(name.to_owned(), ino));
        Ok(ino)
    }
}
