//! Saving: the one write path through which every byte reaches the state file.
//!
//! Owns the order of the steps that make a save durable and the cleanup when one fails. It must not
//! read the state file nor give the bytes meaning.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};

use serde_json::Value;

use super::{Broken, FsFile, Meta, Seen, Store, StoreError, io_error};
use crate::record::{self, Record, RecordError, keys};

/// Whether a write keeps the file it replaces as `NAME.prev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Previous {
    /// A save: the replaced generation becomes `NAME.prev`.
    Keep,
    /// A recovery: the replaced file is corrupt (and already kept aside); `NAME.prev` stays.
    Leave,
}

/// Tells apart the temp files of one process's saves.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Saves the record durably. Sets its `generation` key to one more than the highest
    /// generation this store has loaded or tried to save, and returns that number. On an error the
    /// old state file is left as it was (an error from the final directory `fsync` may leave the new
    /// one in place but not yet durable), no temp file is left behind, and the generation number is
    /// not used again. The counter saturates: it never goes backwards, and from `u64::MAX` on every
    /// save writes `u64::MAX` again.
    pub fn save(&mut self, record: &mut Record) -> Result<u64, StoreError> {
        self.save_giving_bytes(record).map(|(generation, _)| generation)
    }

    /// [`Store::save`], also giving the bytes written.
    pub fn save_giving_bytes(&mut self, record: &mut Record) -> Result<(u64, Vec<u8>), StoreError> {
        let generation = self.highest_generation.saturating_add(1);
        self.highest_generation = generation;
        record.set(keys::GENERATION, Value::from(generation));
        let bytes = record.to_vec();
        self.write_generation(&bytes, generation)?;
        Ok((generation, bytes))
    }

    /// Saves `text`, a JSON object, durably as [`Store::save`] saves a record, setting its
    /// `generation` member in the text itself (see `record::with_generation`): a document already
    /// in the seed's layout is written as the record's encoder would write it, without being
    /// parsed into a record. Text that is not a JSON object is refused before anything is written.
    pub fn save_text(&mut self, text: &str) -> Result<Result<u64, RecordError>, StoreError> {
        let generation = self.highest_generation.saturating_add(1);
        let bytes = match record::with_generation(text, generation) {
            Ok(bytes) => bytes,
            Err(e) => return Ok(Err(e)),
        };
        self.highest_generation = generation;
        self.write_generation(&bytes, generation)?;
        Ok(Ok(generation))
    }

    /// Writes the bytes of `generation` through the one write path, keeping `NAME.prev`, and
    /// remembers the file as written.
    fn write_generation(&mut self, bytes: &[u8], generation: u64) -> Result<(), StoreError> {
        let _lock = self.lock_unless_held()?;
        self.prev_apart = false;
        let written = self.write_durably(bytes, Previous::Keep)?;
        self.durable_writes += 1;
        self.note_written(written);
        self.prev_apart = self.broken.is_none();
        tracing::debug!(path = %self.path.display(), generation, "state saved");
        Ok(())
    }

    /// The highest generation this store has loaded or tried to save: the next save writes one
    /// more. A failed save uses its number up.
    pub(crate) fn highest_generation(&self) -> u64 {
        self.highest_generation
    }

    /// Uses up the generations up to `highest`, as failed saves did (`replay` follows a journal
    /// whose saves failed).
    #[cfg_attr(not(feature = "cli"), allow(dead_code))] // Used by `replay`.
    pub(crate) fn use_generations_up_to(&mut self, highest: u64) {
        self.highest_generation = self.highest_generation.max(highest);
    }

    /// Remembers the state file as this store last wrote it: the new file's metadata taken from
    /// the file itself before its rename (a rename keeps the inode, size and modification time),
    /// else asked by path.
    fn note_written(&mut self, written: Option<Meta>) {
        self.seen = match written {
            Some(meta) => Seen::File(meta),
            None => match self.fs.stat(&self.path) {
                Ok(Some(meta)) => Seen::File(meta),
                _ => Seen::Nothing,
            },
        };
    }

    /// The one write path: every byte that reaches the state file goes through here. With
    /// [`Previous::Leave`] (a recovery putting a good generation back over a corrupt file), the
    /// current file is not kept as `NAME.prev`.
    pub(super) fn write_durably(
        &self,
        bytes: &[u8],
        previous: Previous,
    ) -> Result<Option<Meta>, StoreError> {
        if self.broken == Some(Broken::WriteInPlace) {
            return self.write_in_place(bytes).map(|()| None);
        }
        let (temp, file) = self.create_temp()?;
        let mut leftovers = vec![temp.clone()];
        let result = self.replace_with(&temp, file, bytes, previous, &mut leftovers);
        if result.is_err() {
            for path in leftovers {
                match self.fs.remove(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!(
                        path = %path.display(), error = %e, "cannot remove temp file after a failed save"
                    ),
                }
            }
        }
        result
    }

    /// Writes and syncs the temp file, keeps the current file as `NAME.prev`, renames the temp file
    /// over the state file and syncs the directory. `leftovers` holds what to remove on an error.
    fn replace_with(
        &self,
        temp: &Path,
        mut file: Box<dyn FsFile>,
        bytes: &[u8],
        previous: Previous,
        leftovers: &mut Vec<PathBuf>,
    ) -> Result<Option<Meta>, StoreError> {
        file.write_all(bytes).map_err(|e| io_error("cannot write temp file for", &self.path, e))?;
        if self.broken != Some(Broken::NoFileFsync) {
            file.sync().map_err(|e| io_error("cannot sync temp file for", &self.path, e))?;
        }
        let written = file.meta().and_then(Result::ok);
        drop(file);
        if previous == Previous::Keep {
            self.keep_previous(leftovers)?;
        }
        self.fs
            .rename(temp, &self.path)
            .map_err(|e| io_error("cannot rename temp file over", &self.path, e))?;
        leftovers.clear();
        self.sync_dir().map(|()| written)
    }

    /// Keeps the current state file as `NAME.prev`: a hard link under a temp name, renamed over
    /// `NAME.prev`, so that `NAME.prev` is always one whole generation. Nothing to do on a first save,
    /// nor when `NAME.prev` already is the current file (a save stopped between its two renames):
    /// renaming another link to that file over it would do nothing and leave the link behind.
    fn keep_previous(&self, leftovers: &mut Vec<PathBuf>) -> Result<(), StoreError> {
        if !self.prev_apart && self.prev_is_current()? {
            return Ok(());
        }
        let mut attempts = 0;
        let link = loop {
            let link = self.temp_path();
            match self.fs.hard_link(&self.path, &link) {
                Ok(()) => break link,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                // Something (an orphan, a directory) holds the name: take a fresh one.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 8 => {
                    attempts += 1;
                }
                Err(e) => {
                    return Err(io_error("cannot keep previous generation of", &self.path, e));
                }
            }
        };
        leftovers.push(link.clone());
        self.fs
            .rename(&link, &self.prev)
            .map_err(|e| io_error("cannot keep previous generation as", &self.prev, e))?;
        leftovers.pop();
        Ok(())
    }

    /// Whether `NAME.prev` and the state file are links to one file.
    fn prev_is_current(&self) -> Result<bool, StoreError> {
        let stat =
            |path: &Path| self.fs.stat(path).map_err(|e| io_error("cannot inspect", path, e));
        let Some(prev) = stat(&self.prev)? else {
            return Ok(false);
        };
        Ok(stat(&self.path)?
            .is_some_and(|current| (current.dev, current.ino) == (prev.dev, prev.ino)))
    }

    fn write_in_place(&self, bytes: &[u8]) -> Result<(), StoreError> {
        self.keep_previous(&mut Vec::new())?;
        let mut file =
            self.fs.overwrite(&self.path).map_err(|e| io_error("cannot open", &self.path, e))?;
        file.write_all(bytes).map_err(|e| io_error("cannot write", &self.path, e))?;
        file.sync().map_err(|e| io_error("cannot sync", &self.path, e))?;
        drop(file);
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), StoreError> {
        if self.broken == Some(Broken::NoDirFsync) {
            return Ok(());
        }
        let dir = self.directory()?;
        let synced = dir.sync();
        if synced.is_err() {
            // Never trust a handle whose sync failed: the next save opens the directory afresh.
            // A lock held on this one stays held until its guard lets it go.
            let mut held = self.dir_handle.lock().unwrap_or_else(PoisonError::into_inner);
            if held.as_ref().is_some_and(|held| Arc::ptr_eq(held, &dir)) {
                *held = None;
            }
        }
        synced.map_err(|e| io_error("cannot sync directory", &self.dir, e))
    }

    /// Creates a new temp file, mode 0600, that no other save uses.
    pub(super) fn create_temp(&self) -> Result<(PathBuf, Box<dyn FsFile>), StoreError> {
        let mut attempts = 0;
        loop {
            let temp = self.temp_path();
            match self.fs.create_new(&temp) {
                Ok(file) => return Ok((temp, file)),
                // Only an orphan of an earlier process with the same id can hold the name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 8 => attempts += 1,
                Err(e) => return Err(io_error("cannot create temp file for", &self.path, e)),
            }
        }
    }

    /// `NAME.<pid>-<counter>.tmp`, which the seed's glob `.daemon-state.*.tmp` also matches.
    fn temp_path(&self) -> PathBuf {
        let count = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut name = self.name.clone();
        name.push(format!(".{}-{count}.tmp", self.pid));
        self.dir.join(name)
    }
}
