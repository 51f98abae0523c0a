//! The state file store: acceptance cases on the real file system, the crash model on the
//! simulated one, real processes killed mid-save or racing each other, the lock through the real
//! binary, and permissions.

mod acceptance;
mod api;
mod crash_model;
mod locking;
mod permissions;
mod processes;
mod python;
mod recovery;
mod sim;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The seed's state file name.
const NAME: &str = ".daemon-state.json";

/// A fresh private directory and the state file path inside it.
fn state_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(NAME);
    (dir, path)
}

/// Whether a name matches the seed's temp-file glob `.daemon-state.*.tmp`.
fn is_seed_temp(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with(".daemon-state.") && name.ends_with(".tmp")
}

/// The temp files in a real directory.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| entry.expect("entry").file_name())
        .filter(|name| is_seed_temp(name))
        .map(|name| name.to_string_lossy().into_owned())
        .collect()
}
