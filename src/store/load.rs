//! Reading the state file back: a missing file, a corrupt one, and the previous generation.
//!
//! Owns what `load` does when the state file cannot be used as it is: quarantine, `NAME.prev`, a
//! fresh record, and the report of it; and the read that changes nothing (`peek`). It writes the
//! state file only to put the previous generation's bytes back in a corrupt file's place; every
//! other write is `save`'s.

use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::save::Previous;
use super::{
    Broken, FileKind, Meta, QUARANTINE_KEEP, Seen, Store, StoreError, io_error, wrong_kind,
};
use serde_json::Value;

use crate::clock::{Clock, SystemClock};
use crate::record::{Record, RecordError, keys};

/// What [`Store::load`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The document; empty when starting fresh.
    pub record: Record,
    /// What was done because the state file could not be used as it was, for the caller to report.
    pub recovery: Option<Recovery>,
}

/// What [`Store::peek`] found, read without creating, locking or moving anything.
#[derive(Debug, Clone, PartialEq)]
pub enum Peeked {
    /// Nothing at the state file's path (nor, perhaps, its directory).
    Missing,
    /// The document.
    Parsed(Record),
    /// The state file is corrupt; it was left where it is.
    Corrupt(RecordError),
}

/// What `Store::load` did about a state file that could not be used.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Recovery {
    /// The state file was corrupt: a copy was kept aside and the previous generation's bytes were
    /// put back in its place.
    RestoredPrevious {
        /// Why the state file could not be read.
        problem: RecordError,
        /// Where the corrupt file's copy now is.
        quarantined_to: PathBuf,
        /// The previous generation's file.
        previous: PathBuf,
        /// The generation that was loaded from it.
        generation: u64,
    },
    /// The state file was corrupt under a process that holds a document at least as new as the
    /// previous generation (`Store::reload`): a copy was kept aside and the held document was
    /// written in its place with a new generation.
    RewroteHeld {
        /// Why the state file could not be read.
        problem: RecordError,
        /// Where the corrupt file's copy now is.
        quarantined_to: PathBuf,
        /// The generation the held document was written as.
        generation: u64,
    },
    /// The state file was corrupt and no usable previous generation exists: it was moved aside and
    /// the state starts fresh.
    StartedFresh {
        /// Why the state file could not be read.
        problem: RecordError,
        /// Where the corrupt file now is.
        quarantined_to: PathBuf,
    },
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recovery::RestoredPrevious { problem, quarantined_to, previous, generation } => write!(
                f,
                "the state file was corrupt ({problem}): kept a copy at {}; restored generation {generation} from {}",
                quarantined_to.display(),
                previous.display()
            ),
            Recovery::RewroteHeld { problem, quarantined_to, generation } => write!(
                f,
                "the state file was corrupt ({problem}): kept a copy at {}; rewrote the document this process holds as generation {generation}",
                quarantined_to.display()
            ),
            Recovery::StartedFresh { problem, quarantined_to } => write!(
                f,
                "the state file was corrupt ({problem}): moved to {}; no usable previous generation, starting fresh",
                quarantined_to.display()
            ),
        }
    }
}

/// How the corrupt state file is kept aside.
#[derive(Debug, Clone, Copy)]
enum Quarantine {
    /// Renamed: the state file's path is left empty.
    Move,
    /// Hard-linked: the state file stays until something is renamed over it.
    Link,
}

impl Store {
    /// Reads the state file. A missing file gives an empty record: nothing else ever leaves the
    /// path empty, so a missing file is one a user removed to start over. A corrupt one (not UTF-8,
    /// not JSON, empty, zero-filled, not an object) is kept aside as `NAME.corrupt.<UTC time>` (the
    /// newest few are kept) and, when `NAME.prev` parses, its bytes are put back in the state
    /// file's place in one rename, else the corrupt file is moved aside and the record is empty;
    /// the result says so in [`Loaded::recovery`]. An I/O error is an error, never an empty record.
    pub fn load(&mut self) -> Result<Loaded, StoreError> {
        match self.read(&self.path)? {
            None => Ok(self.loaded(Record::new(), Seen::Missing, None)),
            Some((bytes, meta)) => match Record::from_slice(&bytes) {
                Ok(record) => Ok(self.loaded(record, Seen::File(meta), None)),
                Err(_) if self.broken == Some(Broken::CorruptReadsAsEmpty) => {
                    Ok(self.loaded(Record::new(), Seen::File(meta), None))
                }
                Err(_) => self.recover(None),
            },
        }
    }

    /// Reads the state file again, as [`Store::load`] does, for a process that holds `held`, the
    /// document it last loaded or saved: when the file turns out corrupt and `held` is at least as
    /// new as `NAME.prev` (by generation), the corrupt file is kept aside and `held` is written in
    /// its place with a new generation, rather than falling back on an older `NAME.prev`.
    pub fn reload(&mut self, held: &Record) -> Result<Loaded, StoreError> {
        match self.read(&self.path)? {
            None => Ok(self.loaded(Record::new(), Seen::Missing, None)),
            Some((bytes, meta)) => match Record::from_slice(&bytes) {
                Ok(record) => Ok(self.loaded(record, Seen::File(meta), None)),
                Err(_) => self.recover(Some(held)),
            },
        }
    }

    /// Reads the state file and changes nothing: no lock (an atomically replaced file is read
    /// whole without one), no quarantine, no fallback. For read-only commands (`status`) and for
    /// a look at the file between locked writes.
    pub fn peek(&mut self) -> Result<Peeked, StoreError> {
        match self.read(&self.path)? {
            None => {
                self.seen = Seen::Missing;
                self.prev_apart = false;
                Ok(Peeked::Missing)
            }
            Some((bytes, meta)) => match Record::from_slice(&bytes) {
                Ok(record) => {
                    let loaded = self.loaded(record, Seen::File(meta), None);
                    Ok(Peeked::Parsed(loaded.record))
                }
                // Not marked as seen: the next locked read deals with it.
                Err(problem) => Ok(Peeked::Corrupt(problem)),
            },
        }
    }

    /// The document the state file holds now, when it parses; nothing about the store changes
    /// (what it has seen, the generations).
    pub(crate) fn look(&self) -> Option<Record> {
        let (bytes, _) = self.read(&self.path).ok()??;
        Record::from_slice(&bytes).ok()
    }

    fn loaded(&mut self, record: Record, seen: Seen, recovery: Option<Recovery>) -> Loaded {
        self.highest_generation = self.highest_generation.max(record.generation());
        self.seen = seen;
        self.prev_apart = false;
        Loaded { record, recovery }
    }

    /// Under the lock (a concurrent save may have replaced the file since it was read), reads the
    /// file again and, when it is still corrupt, recovers. The state file is never left missing
    /// while a usable previous generation exists: the corrupt file is hard-linked aside, then the
    /// previous generation's bytes go to a synced temp file renamed over it (one atomic step), so a
    /// crash at any point leaves the corrupt file (recovered again next time) or the previous
    /// generation. Only without a usable `NAME.prev` is the corrupt file renamed away, and then a
    /// missing file is the fresh state it stands for.
    ///
    /// With `held` (see [`Store::reload`]) at least as new as `NAME.prev`, that is what is put back.
    fn recover(&mut self, held: Option<&Record>) -> Result<Loaded, StoreError> {
        let _lock = self.lock_unless_held()?;
        let (bytes, meta) = match self.read(&self.path)? {
            None => return Ok(self.loaded(Record::new(), Seen::Missing, None)),
            Some(read) => read,
        };
        let problem = match Record::from_slice(&bytes) {
            Ok(record) => return Ok(self.loaded(record, Seen::File(meta), None)),
            Err(problem) => problem,
        };
        // Everything that may refuse is read before anything moves.
        let previous = self.read_previous()?;
        let newest = previous.as_ref().map_or(0, |(_, record)| record.generation());
        if let Some(held) = held.filter(|held| held.generation() > 0 && held.generation() >= newest)
        {
            return self.rewrite(held.clone(), problem);
        }
        let Some((previous_bytes, record)) = previous else {
            let quarantined_to = self.quarantine(Quarantine::Move)?;
            let recovery = Recovery::StartedFresh { problem, quarantined_to };
            tracing::warn!(path = %self.path.display(), "{recovery}");
            return Ok(self.loaded(Record::new(), Seen::Missing, Some(recovery)));
        };
        let quarantined_to = self.quarantine(Quarantine::Link)?;
        self.write_durably(&previous_bytes, Previous::Leave)?;
        let recovery = Recovery::RestoredPrevious {
            problem,
            quarantined_to,
            previous: self.prev.clone(),
            generation: record.generation(),
        };
        tracing::warn!(path = %self.path.display(), "{recovery}");
        let seen = match self.fs.stat(&self.path) {
            Ok(Some(meta)) => Seen::File(meta),
            _ => Seen::Nothing,
        };
        Ok(self.loaded(record, seen, Some(recovery)))
    }

    /// Keeps the corrupt state file aside and writes `record` in its place with a new generation.
    fn rewrite(&mut self, mut record: Record, problem: RecordError) -> Result<Loaded, StoreError> {
        let quarantined_to = self.quarantine(Quarantine::Link)?;
        let generation = self.highest_generation.saturating_add(1);
        self.highest_generation = generation;
        record.set(keys::GENERATION, Value::from(generation));
        self.write_durably(&record.to_vec(), Previous::Leave)?;
        self.durable_writes += 1;
        let recovery = Recovery::RewroteHeld { problem, quarantined_to, generation };
        tracing::warn!(path = %self.path.display(), "{recovery}");
        let seen = match self.fs.stat(&self.path) {
            Ok(Some(meta)) => Seen::File(meta),
            _ => Seen::Nothing,
        };
        Ok(self.loaded(record, seen, Some(recovery)))
    }

    /// `NAME.prev`, its bytes and its document, when it is there and parses.
    fn read_previous(&self) -> Result<Option<(Vec<u8>, Record)>, StoreError> {
        let Some((bytes, _)) = self.read(&self.prev)? else {
            return Ok(None);
        };
        match Record::from_slice(&bytes) {
            Ok(record) => Ok(Some((bytes, record))),
            Err(problem) => {
                tracing::warn!(path = %self.prev.display(), %problem, "previous generation is unusable");
                Ok(None)
            }
        }
    }

    /// Reads a regular file; `None` when missing; a symbolic link is refused.
    fn read(&self, path: &Path) -> Result<Option<(Vec<u8>, Meta)>, StoreError> {
        match self.fs.read(path) {
            Ok(Some((_, meta))) if meta.kind != FileKind::File => {
                Err(wrong_kind(path, "regular file"))
            }
            Ok(found) => Ok(found),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                Err(StoreError::Symlink { path: path.to_owned() })
            }
            Err(e) => Err(io_error("cannot read", path, e)),
        }
    }

    /// Moves (or links) the state file to `NAME.corrupt.<UTC time>` and removes all but the newest
    /// copies.
    fn quarantine(&self, how: Quarantine) -> Result<PathBuf, StoreError> {
        let mut base = self.name.clone();
        base.push(".corrupt.");
        let stamp = SystemClock.now().format("%Y%m%dT%H%M%S%.6fZ").to_string();
        let mut target = self.dir.join({
            let mut name = base.clone();
            name.push(&stamp);
            name
        });
        let mut n = 0;
        while self.fs.stat(&target).map_err(|e| io_error("cannot inspect", &target, e))?.is_some() {
            n += 1;
            let mut name = base.clone();
            name.push(format!("{stamp}-{n}"));
            target = self.dir.join(name);
        }
        match how {
            Quarantine::Move => self.fs.rename(&self.path, &target),
            Quarantine::Link => self.fs.hard_link(&self.path, &target),
        }
        .map_err(|e| io_error("cannot quarantine corrupt state file", &self.path, e))?;
        self.prune_quarantine(base.as_bytes(), &target);
        Ok(target)
    }

    /// Keeps the newest quarantined copies; the one just made is kept whatever the clock says.
    fn prune_quarantine(&self, prefix: &[u8], keep: &Path) {
        let names = match self.fs.list_dir(&self.dir) {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot list quarantined files");
                return;
            }
        };
        let mut older: Vec<PathBuf> = names
            .into_iter()
            .filter(|name| name.as_bytes().starts_with(prefix))
            .map(|name| self.dir.join(name))
            .filter(|path| path != keep)
            .collect();
        older.sort();
        let excess = older.len().saturating_sub(QUARANTINE_KEEP - 1);
        for path in &older[..excess] {
            match self.fs.remove(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove an old quarantined file")
                }
            }
        }
    }
}
