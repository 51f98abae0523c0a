//! acceptance 12.1.1 and 12.1.2 on the real file system.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use daemon_state::record::Record;
use daemon_state::store::{Call, Interposed, Store, StoreError};
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

/// The real file system, except that renames onto the chosen target (any, when `None`) fail like
/// the seed's test.
fn fail_rename_onto(
    target: Option<PathBuf>,
) -> Interposed<impl Fn(Call, &Path) -> Option<io::Error> + Send + Sync> {
    Interposed::new(move |call, to: &Path| {
        (call == Call::Rename && target.as_deref().is_none_or(|target| target == to))
            .then(|| io::Error::other("simulated swap failure"))
    })
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
        let mut store = Store::with_fs(&path, Box::new(fail_rename_onto(target))).unwrap();
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
