//! The state file without the engine: for a program that keeps the document itself.
//!
//! Owns the public face of the store for callers that read and write the whole document as JSON
//! text, as the original module's `load_state` and `save_state` do, but through the durable write
//! path (lock, temp file, fsync, `NAME.prev`, rename, directory fsync, mode 0600) and the recovery
//! of a corrupt file. It must not give the document a meaning: that is the engine's.

use std::path::Path;

use crate::store::{Loaded, Recovery, Store, StoreError, StoreLock};

/// A state file read and written as a whole JSON document.
///
/// Every [`StateFile::load`] and [`StateFile::save`] takes the file's lock for its own duration;
/// a read-modify-write that must not lose another process's update holds it across both with
/// [`StateFile::lock`] and the `_locked` methods.
#[derive(Debug)]
pub struct StateFile {
    store: Store,
}

/// The lock of a [`StateFile`]: held until dropped.
#[must_use = "the lock is released when this guard is dropped"]
pub struct FileLock {
    _lock: StoreLock,
}

impl std::fmt::Debug for FileLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileLock")
    }
}

/// What a load found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Contents {
    /// The document as JSON text, two-space indented as the file holds it (`{}` for a missing
    /// file). It carries the store's own `generation` key once the file has been saved by it.
    pub json: String,
    /// Set when the file was corrupt: it was kept aside and `NAME.prev`, or nothing, used instead.
    pub recovery: Option<Recovery>,
}

/// Why a document could not be saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    /// The text is not a JSON object (nothing was written).
    #[error("not a state document: {0}")]
    NotADocument(String),
    /// The file could not be read or written (the old file is intact).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl StateFile {
    /// Opens the state file at `path` (created, with its directory, on the first save). The path
    /// is checked as the engine checks it: not a symbolic link, in a directory only its owner may
    /// write.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Ok(Self { store: Store::open(path.as_ref().to_path_buf())? })
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// Takes the file's lock, waiting for another holder (another process's engine or save).
    pub fn lock(&self) -> Result<FileLock, StoreError> {
        Ok(FileLock { _lock: self.store.lock()? })
    }

    /// Reads the document under the lock. A corrupt file is kept aside and `NAME.prev` used in
    /// its place (see [`Contents::recovery`]); a missing file reads as `{}`.
    pub fn load(&mut self) -> Result<Contents, StoreError> {
        let lock = self.lock()?;
        self.load_locked(&lock)
    }

    /// [`StateFile::load`] while the caller holds the lock.
    pub fn load_locked(&mut self, _lock: &FileLock) -> Result<Contents, StoreError> {
        let Loaded { record, recovery } = self.store.load()?;
        let json = String::from_utf8(record.to_vec()).unwrap_or_else(|_| "{}".to_owned());
        Ok(Contents { json, recovery })
    }

    /// Saves `json`, a JSON object, durably under the lock, with a `generation` one above the
    /// file's own; returns that generation. The text is written as it is but for that member (its
    /// value replaced, or the member appended), so text in the seed's layout (`json.dump(state, f,
    /// indent=2)`) makes a file the engine would write the same way. A corrupt file found in the
    /// way is kept aside first.
    pub fn save(&mut self, json: &str) -> Result<u64, SaveError> {
        let lock = self.lock()?;
        // Read again only when another writer changed the file since this one last read or wrote
        // it: the generation then goes on from the file's, and a corrupt file is kept aside.
        if self.store.changed_on_disk()? {
            self.store.load()?;
        }
        self.save_locked(&lock, json)
    }

    /// [`StateFile::save`] while the caller holds the lock (and has loaded the file under it, so
    /// that the generation goes on from the file's).
    pub fn save_locked(&mut self, _lock: &FileLock, json: &str) -> Result<u64, SaveError> {
        self.store.save_text(json)?.map_err(|e| SaveError::NotADocument(e.to_string()))
    }
}
