//! Reading the state file back: a missing file, a corrupt one, and the previous generation.
//!
//! Owns what `load` does when the state file cannot be used as it is: quarantine, `NAME.prev`, a
//! fresh record, and the report of it. It must not write the state file: only `save` does.

use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{
    Broken, FileKind, Meta, QUARANTINE_KEEP, Seen, Store, StoreError, io_error, wrong_kind,
};
use crate::record::{Record, RecordError};

/// What [`Store::load`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The document; empty when starting fresh.
    pub record: Record,
    /// What was done because the state file could not be used as it was, for the caller to report.
    pub recovery: Option<Recovery>,
}

/// What [`Store::load`] did about a state file that could not be used.
#[derive(Debug, Clone, PartialEq)]
pub enum Recovery {
    /// The state file was corrupt: it was moved aside and the previous generation was loaded.
    RestoredPrevious {
        /// Why the state file could not be read.
        problem: RecordError,
        /// Where the corrupt file now is.
        quarantined_to: PathBuf,
        /// The previous generation's file.
        previous: PathBuf,
        /// The generation that was loaded from it.
        generation: u64,
    },
    /// The state file was corrupt and no usable previous generation exists: starting fresh.
    StartedFresh {
        /// Why the state file could not be read.
        problem: RecordError,
        /// Where the corrupt file now is.
        quarantined_to: PathBuf,
    },
    /// The state file was missing (its quarantine was interrupted) while its previous generation
    /// was there, and that was loaded.
    MissingRestoredPrevious {
        /// The previous generation's file.
        previous: PathBuf,
        /// The generation that was loaded from it.
        generation: u64,
    },
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recovery::RestoredPrevious { problem, quarantined_to, previous, generation } => write!(
                f,
                "the state file was corrupt ({problem}): moved to {}; loaded generation {generation} from {}",
                quarantined_to.display(),
                previous.display()
            ),
            Recovery::StartedFresh { problem, quarantined_to } => write!(
                f,
                "the state file was corrupt ({problem}): moved to {}; no usable previous generation, starting fresh",
                quarantined_to.display()
            ),
            Recovery::MissingRestoredPrevious { previous, generation } => write!(
                f,
                "the state file was missing: loaded generation {generation} from {}",
                previous.display()
            ),
        }
    }
}

impl Store {
    /// Reads the state file. A missing file gives an empty record. A corrupt one (not UTF-8, not
    /// JSON, empty, zero-filled, not an object) is moved aside to `NAME.corrupt.<UTC time>` (the
    /// newest few are kept) and `NAME.prev` is loaded if it parses, else an empty record; the
    /// result says so in [`Loaded::recovery`]. An I/O error is an error, never an empty record.
    pub fn load(&mut self) -> Result<Loaded, StoreError> {
        match self.read(&self.path)? {
            None => self.load_missing(),
            Some((bytes, meta)) => match Record::from_slice(&bytes) {
                Ok(record) => Ok(self.loaded(record, Seen::File(meta), None)),
                Err(_) if self.broken == Some(Broken::CorruptReadsAsEmpty) => {
                    Ok(self.loaded(Record::new(), Seen::File(meta), None))
                }
                Err(_) => self.recover(),
            },
        }
    }

    fn loaded(&mut self, record: Record, seen: Seen, recovery: Option<Recovery>) -> Loaded {
        self.highest_generation = self.highest_generation.max(record.generation());
        self.seen = seen;
        Loaded { record, recovery }
    }

    fn load_missing(&mut self) -> Result<Loaded, StoreError> {
        // A missing file is a fresh state (a user may delete it to start over), unless a quarantined
        // copy shows that a recovery was interrupted between moving the corrupt file aside and
        // saving again: then the previous generation is what the file would have held.
        if !self.quarantined_copy_exists() {
            return Ok(self.loaded(Record::new(), Seen::Missing, None));
        }
        match self.read_previous()? {
            Some(record) => {
                let recovery = Recovery::MissingRestoredPrevious {
                    previous: self.prev.clone(),
                    generation: record.generation(),
                };
                tracing::warn!(path = %self.path.display(), "{recovery}");
                Ok(self.loaded(record, Seen::Missing, Some(recovery)))
            }
            None => Ok(self.loaded(Record::new(), Seen::Missing, None)),
        }
    }

    /// Under the lock (a concurrent save may have replaced the file since it was read), reads the
    /// file again and, when it is still corrupt, quarantines it and falls back on `NAME.prev`.
    fn recover(&mut self) -> Result<Loaded, StoreError> {
        let _lock = self.lock_unless_held()?;
        let (bytes, meta) = match self.read(&self.path)? {
            None => return self.load_missing(),
            Some(read) => read,
        };
        let problem = match Record::from_slice(&bytes) {
            Ok(record) => return Ok(self.loaded(record, Seen::File(meta), None)),
            Err(problem) => problem,
        };
        let quarantined_to = self.quarantine()?;
        let recovery = match self.read_previous()? {
            Some(record) => {
                let recovery = Recovery::RestoredPrevious {
                    problem,
                    quarantined_to,
                    previous: self.prev.clone(),
                    generation: record.generation(),
                };
                tracing::warn!(path = %self.path.display(), "{recovery}");
                return Ok(self.loaded(record, Seen::Missing, Some(recovery)));
            }
            None => Recovery::StartedFresh { problem, quarantined_to },
        };
        tracing::warn!(path = %self.path.display(), "{recovery}");
        Ok(self.loaded(Record::new(), Seen::Missing, Some(recovery)))
    }

    /// `NAME.prev` when it is there and parses.
    fn read_previous(&self) -> Result<Option<Record>, StoreError> {
        let Some((bytes, _)) = self.read(&self.prev)? else {
            return Ok(None);
        };
        match Record::from_slice(&bytes) {
            Ok(record) => Ok(Some(record)),
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

    /// Whether any `NAME.corrupt.*` copy is in the directory.
    fn quarantined_copy_exists(&self) -> bool {
        let mut prefix = self.name.clone();
        prefix.push(".corrupt.");
        self.fs.list_dir(&self.dir).is_ok_and(|names| {
            names.iter().any(|name| name.as_bytes().starts_with(prefix.as_bytes()))
        })
    }

    /// Moves the state file to `NAME.corrupt.<UTC time>` and removes all but the newest copies.
    fn quarantine(&self) -> Result<PathBuf, StoreError> {
        let mut base = self.name.clone();
        base.push(".corrupt.");
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ").to_string();
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
        self.fs
            .rename(&self.path, &target)
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
