//! The state file on disk: the one write path, loading with recovery, and the lock between processes.
//!
//! Owns every byte that reaches the state file and every file beside it (`NAME.prev`,
//! `NAME.<pid>-<n>.tmp`, `NAME.corrupt.<time>`), and the lock on their directory. It must not give
//! the bytes meaning (that is `record`) nor decide when to save (that is the engine's).
//!
//! A save is durable when [`Store::save`] returns: the bytes are written to a fresh temp file that is
//! `fsync`ed, the current file is kept as `NAME.prev` (a hard link renamed into place), the temp file
//! is renamed over the state file, and the directory is `fsync`ed. A crash at any point leaves the
//! state file holding one whole generation: the last acknowledged one, or the one being saved.

mod fs;
mod journal;
mod load;
mod save;
// The simulated file system serves `simulate`; the rest of it serves the crate's own tests.
#[cfg_attr(not(any(test, feature = "testing")), allow(dead_code))]
mod sim;

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[cfg(any(feature = "cli", feature = "testing"))]
pub use fs::Interposed;
pub use fs::{DirHandle, FileKind, Fs, FsFile, Meta, RealFs};
#[cfg(any(test, feature = "testing"))]
pub use journal::JOURNAL_MAX_BYTES;
pub use load::{Loaded, Peeked, Recovery};
pub use sim::{Call, SimFs};

/// How many quarantined copies of corrupt state files are kept.
pub const QUARANTINE_KEEP: usize = 5;

/// How long [`Store::lock`] waits before it tells [`LockWait::on_wait`] that it is waiting.
pub const LOCK_NOTICE_AFTER: Duration = Duration::from_secs(1);

/// The longest pause between two tries of a busy lock.
const LOCK_POLL_MAX: Duration = Duration::from_millis(20);

/// Why the store could not do what it was asked; every message names the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The state file path does not end in a file name.
    #[error("state file path {} has no file name", .path.display())]
    NoFileName {
        /// The path given.
        path: PathBuf,
    },
    /// The state file or `NAME.prev` is a symbolic link, which the store never
    /// follows.
    #[error("refusing {}: it is a symbolic link, which the store never follows", .path.display())]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// The state file or its directory is not the kind of file it must be.
    #[error("refusing {}: it is not a {expected}", .path.display())]
    WrongKind {
        /// The path.
        path: PathBuf,
        /// `"regular file"` or `"directory"`.
        expected: &'static str,
    },
    /// The state directory lets its group or others write to it.
    #[error("refusing state directory {}: mode {mode:o} lets group or others write to it", .path.display())]
    InsecureDirectory {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The state directory, the state file or `NAME.prev` belongs to another user (the directory
    /// may also belong to root), as OpenSSH's `StrictModes` refuses.
    #[error("refusing {}: it is owned by uid {uid}, not by this user (uid {euid})", .path.display())]
    ForeignOwner {
        /// The directory or file.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// This process's effective user id.
        euid: u32,
    },
    /// A read-only open found no state file; nothing was created.
    #[error("no state file at {}", .path.display())]
    Missing {
        /// The state file.
        path: PathBuf,
    },
    /// A read-only open found a corrupt state file; it was left as it is.
    #[error("state file {} is corrupt ({problem}); nothing was changed: run `daemon-state check`", .path.display())]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// Why it cannot be read.
        problem: crate::record::RecordError,
    },
    /// The store was opened read-only (`Store::open_read_only`): it never locks nor writes.
    #[error("state file {} was opened read-only", .path.display())]
    ReadOnly {
        /// The state file.
        path: PathBuf,
    },
    /// This store already holds the lock; a second one would wait for itself.
    #[error("state file {} is already locked by this store", .path.display())]
    AlreadyLocked {
        /// The state file.
        path: PathBuf,
    },
    /// Another holder kept the lock for longer than `LockWait::timeout`.
    #[error(
        "gave up after {} s: the lock on directory {} (state file {}) is held by another process",
        .timeout.as_secs_f64(), .dir.display(), .path.display()
    )]
    LockTimeout {
        /// The directory whose lock was busy.
        dir: PathBuf,
        /// The state file.
        path: PathBuf,
        /// How long it waited.
        timeout: Duration,
    },
    /// A file-system call failed.
    #[error("{action} {}: {source}", .path.display())]
    Io {
        /// What the store was doing, e.g. `"cannot rename temp file over"`.
        action: &'static str,
        /// The file it was doing it to.
        path: PathBuf,
        /// The error the file system gave.
        #[source]
        source: io::Error,
    },
}

/// A deliberately broken variant of the protocol. These exist only to prove that the crash tests
/// fail when a step is left out; nothing else may use them.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// Never `fsync` the temp file.
    NoFileFsync,
    /// Never `fsync` the directory.
    NoDirFsync,
    /// Truncate and rewrite the state file itself instead of renaming a temp file over it.
    WriteInPlace,
    /// Read a corrupt state file as an empty record, without quarantine or `NAME.prev`.
    CorruptReadsAsEmpty,
}

impl Broken {
    /// Every broken variant.
    pub const ALL: [Broken; 4] = [
        Broken::NoFileFsync,
        Broken::NoDirFsync,
        Broken::WriteInPlace,
        Broken::CorruptReadsAsEmpty,
    ];
}

/// The exclusive advisory lock on the state file's directory; dropping it releases the lock.
#[must_use = "the lock is released when this guard is dropped"]
pub struct StoreLock {
    held: Arc<AtomicBool>,
    dir: Arc<dyn DirHandle>,
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        self.dir.unlock();
        self.held.store(false, Ordering::Release);
    }
}

/// Told once per wait that [`Store::lock`] is waiting, and for what.
pub type OnWait = Arc<dyn Fn(&Waiting) + Send + Sync>;

/// How [`Store::lock`] waits while another holder has the lock. The default waits for ever and
/// tells no one.
#[derive(Clone, Default)]
pub struct LockWait {
    /// Give up after this long with [`StoreError::LockTimeout`]; `None` waits for ever. Zero tries
    /// once.
    pub timeout: Option<Duration>,
    /// Called once per wait, after [`LOCK_NOTICE_AFTER`] of waiting, with what is waited for (the
    /// library itself prints nothing).
    pub on_wait: Option<OnWait>,
}

impl std::fmt::Debug for LockWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockWait")
            .field("timeout", &self.timeout)
            .field("on_wait", &self.on_wait.as_ref().map(|_| "Fn"))
            .finish()
    }
}

/// What a [`Store::lock`] that has waited [`LOCK_NOTICE_AFTER`] is waiting for; its `Display` is
/// one line naming both paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The directory whose lock is busy.
    pub dir: PathBuf,
    /// The state file in it.
    pub path: PathBuf,
    /// When it gives up, if ever.
    pub timeout: Option<Duration>,
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "waiting for the lock on directory {} (state file {}), held by another process",
            self.dir.display(),
            self.path.display()
        )?;
        match self.timeout {
            Some(timeout) => write!(f, "; giving up after {} s", timeout.as_secs_f64()),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLock").finish_non_exhaustive()
    }
}

/// What this store last saw at the state file's path, to tell when another process changed it.
#[derive(Debug, Clone, Copy)]
enum Seen {
    Nothing,
    Missing,
    File(Meta),
}

/// The state file of one daemon, and the files beside it.
///
/// Every read-modify-write holds the store's lock: an exclusive `flock(2)` on the state file's
/// directory, held open by the store (the same descriptor syncs the directory after each save).
/// Deleting or replacing a file cannot undo a lock on the directory (earlier versions locked a
/// `NAME.lock` file, which deleting it undid, and two writers then each overwrote the other's
/// change). The store neither creates nor uses `NAME.lock`. A consequence: the lock covers
/// the whole directory, so stores of different state files in one directory take turns too.
///
/// Use one `Store` per state file in a process: the lock belongs to an open directory, so a second
/// store on the same file in the same process waits for the first one's lock like another process.
pub struct Store {
    fs: Box<dyn Fs>,
    path: PathBuf,
    dir: PathBuf,
    name: OsString,
    prev: PathBuf,
    highest_generation: u64,
    seen: Seen,
    durable_writes: u64,
    locked: Arc<AtomicBool>,
    broken: Option<Broken>,
    lock_wait: LockWait,
    /// The directory, opened by the first lock and held open: each lock and each save's directory
    /// sync is one system call on it.
    dir_handle: Mutex<Option<Arc<dyn DirHandle>>>,
    /// This store's last save kept `NAME.prev` and renamed a new file over the state file, and
    /// nothing was read since: `NAME.prev` is then known not to be the state file (only a save
    /// stopped between its renames leaves them one file), so the next save need not look.
    prev_apart: bool,
    /// The journal, held open for appending, with the inode it was opened as.
    journal: Mutex<Option<(Box<dyn FsFile>, u64)>>,
    /// This process's id, for temp names (asked once: it is a system call).
    pid: u32,
    /// Opened by [`Store::open_read_only`]: never creates, locks, sweeps, moves nor writes.
    read_only: bool,
    /// Warnings from opening, for the open report.
    notes: Vec<String>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("highest_generation", &self.highest_generation)
            .field("durable_writes", &self.durable_writes)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the state file at `path` on the real file system: creates a missing directory (mode
    /// 0700), refuses a symbolic link or a directory at the state file or `NAME.prev`, a
    /// directory that others may write to, and files or a directory owned by another user (before
    /// anything is moved), sets a state file or `NAME.prev` that group or others may read back to
    /// 0600 (see [`Store::take_notes`]), and removes temp files that a crashed save left behind
    /// (`NAME.<pid>-<n>.tmp` of a process that is gone). Nothing is read yet: see [`Store::load`].
    pub fn open(path: impl Into<PathBuf>) -> Result<Store, StoreError> {
        Self::with_fs(path, Box::new(RealFs))
    }

    /// Opens the state file at `path` on the given file system, as [`Store::open`] does.
    pub fn with_fs(path: impl Into<PathBuf>, fs: Box<dyn Fs>) -> Result<Store, StoreError> {
        let mut store = Self::new(path.into(), fs)?;
        store.prepare()?;
        Ok(store)
    }

    /// Opens the state file at `path` on the real file system for reading only: the same refusals
    /// as [`Store::open`], but nothing is created, locked, swept or moved, so that it works on a
    /// mistyped path and on a read-only mount. Read it with [`Store::peek`]; `lock` and `save` are
    /// refused with [`StoreError::ReadOnly`].
    pub fn open_read_only(path: impl Into<PathBuf>) -> Result<Store, StoreError> {
        Self::with_fs_read_only(path, Box::new(RealFs))
    }

    /// Opens the state file at `path` on the given file system for reading only, as
    /// [`Store::open_read_only`] does.
    pub fn with_fs_read_only(
        path: impl Into<PathBuf>,
        fs: Box<dyn Fs>,
    ) -> Result<Store, StoreError> {
        let mut store = Self::new(path.into(), fs)?;
        store.read_only = true;
        store.inspect()?;
        Ok(store)
    }

    /// A store on a fresh simulated disk, for tests and simulations.
    pub fn in_memory() -> Store {
        let path = PathBuf::from("/.daemon-state.json");
        let name = OsString::from(".daemon-state.json");
        Self::build(path, PathBuf::from("/"), name, Box::new(SimFs::new()))
    }

    fn new(path: PathBuf, fs: Box<dyn Fs>) -> Result<Store, StoreError> {
        let Some(name) = path.file_name().map(OsStr::to_owned) else {
            return Err(StoreError::NoFileName { path });
        };
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        Ok(Self::build(path, dir, name, fs))
    }

    fn build(path: PathBuf, dir: PathBuf, name: OsString, fs: Box<dyn Fs>) -> Store {
        let sibling = |suffix: &str| {
            let mut sibling = name.clone();
            sibling.push(suffix);
            dir.join(sibling)
        };
        Store {
            prev: sibling(".prev"),
            fs,
            path,
            dir,
            name,
            highest_generation: 0,
            seen: Seen::Nothing,
            durable_writes: 0,
            locked: Arc::new(AtomicBool::new(false)),
            broken: None,
            lock_wait: LockWait::default(),
            dir_handle: Mutex::new(None),
            prev_apart: false,
            journal: Mutex::new(None),
            pid: std::process::id(),
            read_only: false,
            notes: Vec::new(),
        }
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this store was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// How many saves have become durable through this store.
    pub fn durable_writes(&self) -> u64 {
        self.durable_writes
    }

    /// Runs a deliberately broken variant of the protocol, to prove that the tests can fail.
    #[doc(hidden)]
    pub fn break_protocol(&mut self, broken: Broken) {
        self.broken = Some(broken);
    }

    /// Sets how [`Store::lock`] waits for a lock that another holder has: for how long, and whom
    /// to tell after [`LOCK_NOTICE_AFTER`].
    pub fn set_lock_wait(&mut self, wait: LockWait) {
        self.lock_wait = wait;
    }

    /// Takes the exclusive advisory lock that read-modify-writes of the state file hold: a lock
    /// on the state file's directory (see [`Store`]), never on the state file, which every save
    /// replaces. Waits for another holder as [`Store::set_lock_wait`] says: by default for ever.
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly { path: self.path.clone() });
        }
        self.take_lock(true)?.ok_or_else(|| StoreError::AlreadyLocked { path: self.path.clone() })
    }

    /// Takes the lock; without `wait`, `None` when another holder has it.
    fn take_lock(&self, wait: bool) -> Result<Option<StoreLock>, StoreError> {
        if self.locked.swap(true, Ordering::Acquire) {
            return Err(StoreError::AlreadyLocked { path: self.path.clone() });
        }
        let taken = self.directory().and_then(|dir| {
            let taken = if wait {
                self.wait_for(dir.as_ref()).map(|()| true)
            } else {
                dir.try_lock().map_err(LockError::Io)
            };
            taken.map(|taken| taken.then_some(dir)).map_err(|e| match e {
                LockError::TimedOut(timeout) => StoreError::LockTimeout {
                    dir: self.dir.clone(),
                    path: self.path.clone(),
                    timeout,
                },
                LockError::Io(e) => io_error("cannot lock state directory", &self.dir, e),
            })
        });
        match taken {
            Ok(Some(dir)) => Ok(Some(StoreLock { held: Arc::clone(&self.locked), dir })),
            other => {
                self.locked.store(false, Ordering::Release);
                other.map(|_| None)
            }
        }
    }

    /// The directory held open, opened on first use.
    fn directory(&self) -> Result<Arc<dyn DirHandle>, StoreError> {
        let mut held = self.dir_handle.lock().unwrap_or_else(PoisonError::into_inner);
        match held.as_ref() {
            Some(dir) => Ok(Arc::clone(dir)),
            None => {
                let dir = self
                    .fs
                    .open_dir(&self.dir)
                    .map_err(|e| io_error("cannot open directory", &self.dir, e))?;
                Ok(Arc::clone(held.insert(Arc::from(dir))))
            }
        }
    }

    /// Waits for the directory's lock as `lock_wait` says: a plain blocking lock when there is
    /// neither a timeout nor anyone to tell, else tries with a growing pause between tries.
    fn wait_for(&self, dir: &dyn DirHandle) -> Result<(), LockError> {
        let LockWait { timeout, on_wait } = &self.lock_wait;
        if timeout.is_none() && on_wait.is_none() {
            return Ok(dir.lock()?);
        }
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        let mut told = false;
        loop {
            if dir.try_lock()? {
                return Ok(());
            }
            let waited = started.elapsed();
            // Told before giving up, so that a wait that lasted a second is always told, however
            // late a pause made this round.
            if !told && waited >= LOCK_NOTICE_AFTER {
                told = true;
                if let Some(on_wait) = on_wait {
                    on_wait(&Waiting {
                        dir: self.dir.clone(),
                        path: self.path.clone(),
                        timeout: *timeout,
                    });
                }
            }
            if let Some(timeout) = timeout.filter(|&timeout| waited >= timeout) {
                return Err(LockError::TimedOut(timeout));
            }
            let left = timeout.map_or(pause, |timeout| timeout.saturating_sub(waited));
            std::thread::sleep(pause.min(left).max(Duration::from_micros(100)));
            pause = (pause * 2).min(LOCK_POLL_MAX);
        }
    }

    /// Whether the state file is not the one this store last read or wrote (compared by device,
    /// inode, size and modification time), so that a read-modify-write must read it again.
    pub fn changed_on_disk(&self) -> Result<bool, StoreError> {
        let now =
            self.fs.stat(&self.path).map_err(|e| io_error("cannot inspect", &self.path, e))?;
        Ok(match (self.seen, now) {
            (Seen::Missing, None) => false,
            (Seen::File(then), Some(now)) => {
                (then.dev, then.ino, then.size, then.mtime_ns)
                    != (now.dev, now.ino, now.size, now.mtime_ns)
            }
            _ => true,
        })
    }

    /// Whether a temp file with `pid` in its name is an orphan: its process is gone, or it is this
    /// process, whose saves all run under the lock that the sweep holds.
    fn is_orphan(&self, pid: libc::pid_t) -> bool {
        u32::try_from(pid).is_ok_and(|pid| pid == self.pid) || process_is_gone(pid)
    }

    /// Creates the directory, refuses what must be refused, sets the state file and `NAME.prev`
    /// back to 0600 when group or others may read or write them, and sweeps orphan temp files.
    fn prepare(&mut self) -> Result<(), StoreError> {
        self.fs
            .create_dir(&self.dir)
            .map_err(|e| io_error("cannot create directory", &self.dir, e))?;
        for (path, mode) in self.inspect()? {
            let note = match self.fs.set_mode(&path, 0o600) {
                Ok(()) => {
                    format!("mode {mode:04o} let group or others read or write it; set to 0600")
                }
                Err(e) => format!(
                    "mode {mode:04o} lets group or others read or write it; cannot set it to 0600: {e}"
                ),
            };
            self.note(&path, note);
        }
        self.sweep_temp_files()
    }

    /// Keeps a warning about `path` for the open report (see [`Store::take_notes`]) and logs it.
    fn note(&mut self, path: &Path, note: String) {
        let note = if path == self.path { note } else { format!("{}: {note}", path.display()) };
        tracing::warn!(path = %self.path.display(), "{note}");
        self.notes.push(note);
    }

    /// The warnings opening the store gave (a mode set back to 0600, or one a read-only store
    /// left as it was), each naming the file unless it is the state file; taking them empties
    /// the list.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// Refuses what must be refused, changing nothing, and returns the state file and `NAME.prev`
    /// when group or others may read or write them, with their modes (a read-only store notes them
    /// instead). A missing directory is refused only when the store is not read-only (a read-only
    /// store then reads a missing state file). Like OpenSSH's `StrictModes`, the directory must
    /// belong to this process's user or to root, and the state file and `NAME.prev` to this user.
    fn inspect(&mut self) -> Result<Vec<(PathBuf, u32)>, StoreError> {
        let euid = effective_uid();
        // `DIR/.` makes lstat look through a symbolic link to the directory, which is allowed.
        let dir = self
            .fs
            .stat(&self.dir.join("."))
            .map_err(|e| io_error("cannot inspect", &self.dir, e))?;
        match dir {
            None if self.read_only => return Ok(Vec::new()),
            Some(meta) if meta.kind == FileKind::Dir => {
                if meta.uid != euid && meta.uid != 0 {
                    return Err(StoreError::ForeignOwner {
                        path: self.dir.clone(),
                        uid: meta.uid,
                        euid,
                    });
                }
                if meta.mode & 0o022 != 0 {
                    return Err(StoreError::InsecureDirectory {
                        path: self.dir.clone(),
                        mode: meta.mode,
                    });
                }
            }
            _ => return Err(wrong_kind(&self.dir, "directory")),
        }
        // Every refusal comes here, before anything is moved: a recovery must not quarantine the
        // state file and then find that it cannot use `NAME.prev`.
        let mut exposed = Vec::new();
        for path in [&self.path, &self.prev] {
            let file = self.fs.stat(path).map_err(|e| io_error("cannot inspect", path, e))?;
            match file {
                None => {}
                Some(meta) if meta.kind == FileKind::File => {
                    if meta.uid != euid {
                        return Err(StoreError::ForeignOwner {
                            path: path.clone(),
                            uid: meta.uid,
                            euid,
                        });
                    }
                    if meta.mode & 0o077 != 0 {
                        exposed.push((path.clone(), meta.mode));
                    }
                }
                Some(meta) if meta.kind == FileKind::Symlink => {
                    return Err(StoreError::Symlink { path: path.clone() });
                }
                Some(_) => return Err(wrong_kind(path, "regular file")),
            }
        }
        if self.read_only {
            for (path, mode) in std::mem::take(&mut exposed) {
                let note = format!(
                    "mode {mode:04o} lets group or others read or write it; the next command that writes sets it to 0600"
                );
                self.note(&path, note);
            }
        }
        Ok(exposed)
    }

    /// Removes temp files left by crashed saves: only names of this store's exact temp-file shape
    /// whose process is gone (earlier versions removed all of `NAME.*.tmp`, a user's
    /// `NAME.backup.tmp` and other programs' saves in progress included), and only under the
    /// lock. When another holder has the lock, the sweep waits for a later open.
    fn sweep_temp_files(&self) -> Result<(), StoreError> {
        let Some(_lock) = self.take_lock(false)? else {
            tracing::debug!(path = %self.path.display(), "lock busy; temp files not swept");
            return Ok(());
        };
        let names = self
            .fs
            .list_dir(&self.dir)
            .map_err(|e| io_error("cannot list directory", &self.dir, e))?;
        let orphan = |name: &&OsString| {
            temp_file_pid(&self.name, name).is_some_and(|pid| self.is_orphan(pid))
        };
        for name in names.iter().filter(orphan) {
            let path = self.dir.join(name);
            match self.fs.remove(&path) {
                Ok(()) => tracing::info!(path = %path.display(), "removed an orphan temp file"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove an orphan temp file")
                }
            }
        }
        Ok(())
    }

    fn lock_unless_held(&self) -> Result<Option<StoreLock>, StoreError> {
        if self.locked.load(Ordering::Acquire) { Ok(None) } else { self.lock().map(Some) }
    }
}

/// The process id in a name of the store's temp-file shape for the state file named `state`,
/// `STATE.<pid>-<n>.tmp` with both numbers in decimal digits; `None` for any other name (a user's
/// `STATE.backup.tmp`, the seed's `STATE.<random>.tmp`).
pub(crate) fn temp_file_pid(state: &OsStr, name: &OsStr) -> Option<libc::pid_t> {
    let rest = name.as_bytes().strip_prefix(state.as_bytes())?.strip_prefix(b".")?;
    let rest = rest.strip_suffix(b".tmp")?;
    let dash = rest.iter().position(|&b| b == b'-')?;
    let (pid, count) = (&rest[..dash], &rest[dash + 1..]);
    let digits = |part: &[u8]| !part.is_empty() && part.iter().all(u8::is_ascii_digit);
    if !digits(pid) || !digits(count) {
        return None;
    }
    std::str::from_utf8(pid).ok()?.parse().ok().filter(|&pid| pid > 0)
}

/// Whether no process has the id `pid` (`kill(pid, 0)` fails with `ESRCH`).
pub(crate) fn process_is_gone(pid: libc::pid_t) -> bool {
    // No signal: kill only checks that the process exists.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) == Err(nix::errno::Errno::ESRCH)
}

/// The effective user id of this process.
pub(crate) fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Why waiting for the lock ended without it.
enum LockError {
    /// The timeout that passed.
    TimedOut(Duration),
    Io(io::Error),
}

impl From<io::Error> for LockError {
    fn from(e: io::Error) -> Self {
        LockError::Io(e)
    }
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> StoreError {
    StoreError::Io { action, path: path.to_owned(), source }
}

fn wrong_kind(path: &Path, expected: &'static str) -> StoreError {
    StoreError::WrongKind { path: path.to_owned(), expected }
}
