//! The journal's file beside the state file: appended to, rotated at a size, read back whole.
//!
//! Owns the file's I/O: `NAME.journal`, mode 0600, never followed through a symbolic link, moved to
//! `NAME.journal.1` (replacing an older one) before an append would take it past
//! [`JOURNAL_MAX_BYTES`]. It must not give lines a meaning (`journal` does) nor sync them: the
//! state file is the truth, and a journal whose tail a power cut took is told by its generations.

use std::ffi::OsString;
use std::path::PathBuf;

use std::sync::PoisonError;

use super::{FileKind, Store, StoreError, io_error};

/// The size past which the journal is rotated: one previous file is kept beside it.
pub const JOURNAL_MAX_BYTES: u64 = 1 << 20;

impl Store {
    /// The journal's path: the state file's with `.journal` appended.
    pub fn journal_path(&self) -> PathBuf {
        self.sibling(".journal")
    }

    /// The rotated journal's path: `NAME.journal.1`.
    pub fn previous_journal_path(&self) -> PathBuf {
        self.sibling(".journal.1")
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = OsString::from(self.path.file_name().unwrap_or_default());
        name.push(suffix);
        self.dir.join(name)
    }

    /// Appends `lines` (whole lines, each ending in a newline) to the journal, rotating it first
    /// when they would take it past [`JOURNAL_MAX_BYTES`]. The caller holds the state file's lock.
    /// Nothing is synced.
    ///
    /// The file is held open between appends while the path still names it (same inode), so an
    /// append costs one `lstat` and one `write`; a file rotated or replaced by another process is
    /// opened again.
    pub fn append_journal(&self, lines: &[u8]) -> Result<(), StoreError> {
        let path = self.journal_path();
        let meta = self.fs.stat(&path).map_err(|e| io_error("cannot inspect", &path, e))?;
        let mut held = self.journal.lock().unwrap_or_else(PoisonError::into_inner);
        let current = match meta {
            Some(meta) if meta.kind == FileKind::Symlink => {
                *held = None;
                return Err(StoreError::Symlink { path });
            }
            Some(meta) if meta.size > 0 && meta.size + lines.len() as u64 > JOURNAL_MAX_BYTES => {
                *held = None;
                let previous = self.previous_journal_path();
                self.fs.rename(&path, &previous).map_err(|e| io_error("cannot rotate", &path, e))?;
                None
            }
            Some(meta) => Some(meta.ino),
            None => None,
        };
        match (&mut *held, current) {
            (Some((file, ino)), Some(now)) if *ino == now => {}
            _ => {
                let file = self.fs.append(&path).map_err(|e| io_error("cannot open", &path, e))?;
                let opened = self.fs.stat(&path).map_err(|e| io_error("cannot inspect", &path, e))?;
                *held = opened.map(|meta| (file, meta.ino));
            }
        }
        match &mut *held {
            Some((file, _)) => {
                let written = file.write_all(lines);
                if written.is_err() {
                    *held = None;
                }
                written.map_err(|e| io_error("cannot append to", &path, e))
            }
            None => Err(io_error("cannot open", &path, std::io::ErrorKind::NotFound.into())),
        }
    }

    /// The journal's bytes, the rotated file's first: empty when there is none. Never follows a
    /// symbolic link.
    pub fn read_journal(&self) -> Result<Vec<u8>, StoreError> {
        let mut bytes = Vec::new();
        for path in [self.previous_journal_path(), self.journal_path()] {
            match self.fs.stat(&path).map_err(|e| io_error("cannot inspect", &path, e))? {
                Some(meta) if meta.kind == FileKind::Symlink => {
                    return Err(StoreError::Symlink { path });
                }
                _ => {}
            }
            let read = self.fs.read(&path).map_err(|e| io_error("cannot read", &path, e))?;
            if let Some((mut file, _)) = read {
                if !file.is_empty() && !file.ends_with(b"\n") {
                    // A line cut short (a crash mid-append) ends where the next file starts.
                    file.push(b'\n');
                }
                bytes.append(&mut file);
            }
        }
        Ok(bytes)
    }
}
