//! The journal's file beside the state file: appended to, rotated at a size, read back whole.
//!
//! Owns the file's I/O: `NAME.journal`, mode 0600, never followed through a symbolic link, moved to
//! `NAME.journal.1` (replacing an older one) before an append would take it past
//! [`JOURNAL_MAX_BYTES`]. It must not give lines a meaning (`journal` does) nor sync them: the
//! state file is the truth, and a journal whose tail a power cut took is told by its generations.

use std::ffi::OsString;
use std::path::PathBuf;

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
    pub fn append_journal(&self, lines: &[u8]) -> Result<(), StoreError> {
        let path = self.journal_path();
        let meta = self.fs.stat(&path).map_err(|e| io_error("cannot inspect", &path, e))?;
        match meta {
            Some(meta) if meta.kind == FileKind::Symlink => {
                return Err(StoreError::Symlink { path });
            }
            Some(meta) if meta.size > 0 && meta.size + lines.len() as u64 > JOURNAL_MAX_BYTES => {
                let previous = self.previous_journal_path();
                self.fs.rename(&path, &previous).map_err(|e| io_error("cannot rotate", &path, e))?;
            }
            _ => {}
        }
        let mut file = self.fs.append(&path).map_err(|e| io_error("cannot open", &path, e))?;
        file.write_all(lines).map_err(|e| io_error("cannot append to", &path, e))
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
