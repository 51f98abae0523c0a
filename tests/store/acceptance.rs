//! ACCEPTANCE 12.1.1 and 12.1.2 on the real file system.

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use daemon_state::record::Record;
use daemon_state::store::{Fs, FsFile, FsLock, Meta, RealFs, Store, StoreError};
use serde_json::json;

use super::{state_dir, temp_files};

fn record(value: serde_json::Value) -> Record {
    Record::from_map(value.as_object().expect("an object").clone())
}

// acceptance 12.1.1: a missing file loads as `{}`; a saved document is there with mode exactly
// 0600 and loads back equal (this product adds its `generation` key to what it saves).
#[test]
fn round_trip_and_mode() {
    let (_dir, path) = state_dir();
    let mut store = Store::open(&path).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.record, Record::new());
    assert_eq!(loaded.recovery, None);

    let mut saved = record(json!({
        "fsm_state": "WAKE",
        "daemon_started_at": "2026-04-18T00:00:00+00:00",
        "pending_digest": {"cycles": 4, "insight": "test"},
    }));
    assert_eq!(store.save(&mut saved).unwrap(), 1);
    assert_eq!(store.durable_writes(), 1);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "mode {mode:o}");

    let back = Store::open(&path).unwrap().load().unwrap();
    assert_eq!(back.record, saved);
    assert_eq!(back.record.generation(), 1);
    assert_eq!(back.recovery, None);
}

/// The real file system, except that renames onto the chosen target fail like the seed's test.
struct FailRenameOnto {
    target: Option<PathBuf>,
}

impl Fs for FailRenameOnto {
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
        RealFs.create_new(path)
    }
    fn overwrite(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        RealFs.overwrite(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if self.target.as_deref().is_none_or(|target| target == to) {
            return Err(io::Error::other("simulated swap failure"));
        }
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

// acceptance 12.1.2: a failed rename fails the save, the old content still loads, and no
// `.daemon-state.*.tmp` remains. Checked for the swap itself and for every rename of the save.
#[test]
fn atomic_failure() {
    #[track_caller]
    fn check(fail_only_the_swap: bool) {
        let (dir, path) = state_dir();
        let mut old = record(json!({"fsm_state": "WAKE", "version": 1}));
        Store::open(&path).unwrap().save(&mut old).unwrap();

        let target = fail_only_the_swap.then(|| path.clone());
        let mut store = Store::with_fs(&path, Box::new(FailRenameOnto { target })).unwrap();
        assert_eq!(store.load().unwrap().record, old);
        let mut new = record(json!({"fsm_state": "SLEEP", "version": 2}));
        let err = store.save(&mut new).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
        assert!(message.contains("simulated swap failure"), "{message}");
        assert!(message.contains(".daemon-state.json"), "{message}");
        assert_eq!(store.durable_writes(), 0);

        assert_eq!(Store::open(&path).unwrap().load().unwrap().record, old);
        assert_eq!(temp_files(dir.path()), Vec::<String>::new());
    }
    check(true);
    check(false);
}
