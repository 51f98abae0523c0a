//! The store's smaller promises: the in-memory store, generations, `changed_on_disk`, the lock
//! guard, and temp-file names.

use std::path::Path;

use daemon_state::record::Record;
use daemon_state::store::{Call, SimFs, Store, StoreError};
use serde_json::json;

use super::is_seed_temp;

const PATH: &str = "/state/.daemon-state.json";

fn document(n: u64) -> Record {
    Record::from_map(json!({"n": n}).as_object().unwrap().clone())
}

#[test]
fn the_in_memory_store_round_trips_and_counts_durable_writes() {
    let mut store = Store::in_memory();
    assert_eq!(store.load().unwrap().record, Record::new());
    let mut record = document(1);
    assert_eq!(store.save(&mut record).unwrap(), 1);
    assert_eq!(store.save(&mut record).unwrap(), 2);
    assert_eq!(store.durable_writes(), 2);
    assert_eq!(store.load().unwrap().record, record);
    assert_eq!(record.generation(), 2);
}

// Generations: a store continues from the highest generation it loaded, and a failed save spends
// its number, so no two different documents ever share one.
#[test]
fn generations_continue_from_what_was_loaded_and_failed_saves_spend_theirs() {
    let fs = SimFs::new();
    let mut first = Store::with_fs(PATH, Box::new(fs.clone())).unwrap();
    for _ in 0..3 {
        first.save(&mut document(0)).unwrap();
    }
    let mut second = Store::with_fs(PATH, Box::new(fs.clone())).unwrap();
    assert_eq!(second.load().unwrap().record.generation(), 3);
    fs.fail_at(Call::Sync, 0, libc::EIO);
    assert!(second.save(&mut document(1)).is_err());
    assert_eq!(second.durable_writes(), 0);
    assert_eq!(second.save(&mut document(2)).unwrap(), 5);
    assert_eq!(second.durable_writes(), 1);
}

// changed_on_disk: false after this store's own load or save, true once another writer replaced
// the file, false again after reloading.
#[test]
fn changed_on_disk_sees_other_writers_only() {
    let fs = SimFs::new();
    let mut ours = Store::with_fs(PATH, Box::new(fs.clone())).unwrap();
    let mut theirs = Store::with_fs(PATH, Box::new(fs.clone())).unwrap();
    assert!(ours.changed_on_disk().unwrap(), "nothing read yet");
    ours.load().unwrap();
    assert!(!ours.changed_on_disk().unwrap(), "missing, as loaded");
    ours.save(&mut document(1)).unwrap();
    assert!(!ours.changed_on_disk().unwrap());
    theirs.load().unwrap();
    theirs.save(&mut document(2)).unwrap();
    assert!(ours.changed_on_disk().unwrap());
    assert_eq!(ours.load().unwrap().record, document(2).clone_with_generation(2));
    assert!(!ours.changed_on_disk().unwrap());
}

trait WithGeneration {
    fn clone_with_generation(&self, generation: u64) -> Record;
}

impl WithGeneration for Record {
    fn clone_with_generation(&self, generation: u64) -> Record {
        let mut record = self.clone();
        record.set("generation", json!(generation));
        record
    }
}

// The lock: one guard per store at a time (a second would wait for itself), released on drop;
// another store waits for it.
#[test]
fn the_lock_is_a_guard_released_on_drop() {
    let fs = SimFs::new();
    let mut store = Store::with_fs(PATH, Box::new(fs.clone())).unwrap();
    let guard = store.lock().unwrap();
    let err = store.lock().unwrap_err();
    assert!(matches!(err, StoreError::AlreadyLocked { .. }), "{err:?}");
    assert!(err.to_string().contains(PATH), "{err}");
    // Saving under the caller's lock does not try to take it again.
    store.save(&mut document(1)).unwrap();
    let other = Store::with_fs(PATH, Box::new(fs.clone())).unwrap();
    let waiter = std::thread::spawn(move || other.lock().map(drop).is_ok());
    drop(guard);
    assert!(waiter.join().unwrap());
    drop(store.lock().unwrap());
}

// Temp files are named `NAME.<unique>.tmp`, inside the seed's glob `.daemon-state.*.tmp`, and
// are swept by the next open.
#[test]
fn temp_files_match_the_seed_glob_and_are_swept_on_open() {
    let fs = SimFs::new();
    let mut store = Store::with_fs(PATH, Box::new(fs.clone())).unwrap();
    fs.fail_at(Call::Write, 0, libc::EIO);
    fs.fail_at(Call::Remove, 0, libc::EIO);
    assert!(store.save(&mut document(1)).is_err());
    let dir = Path::new("/state");
    let temps: Vec<_> = fs.names(dir).into_iter().filter(|n| is_seed_temp(n)).collect();
    assert_eq!(temps.len(), 1, "{:?}", fs.names(dir));
    let name = temps[0].to_string_lossy().into_owned();
    assert!(name.starts_with(".daemon-state.json."), "{name}");
    drop(Store::with_fs(PATH, Box::new(fs.clone())).unwrap());
    assert!(!fs.names(dir).iter().any(|n| is_seed_temp(n)));
}

// A deleted state file means a fresh start, even with a `.prev` beside it (and with quarantined
// copies: see `recovery::deleting_the_state_file_starts_fresh_even_with_old_quarantined_copies`).
#[test]
fn a_deleted_file_starts_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".daemon-state.json");
    let mut store = Store::open(&path).unwrap();
    store.save(&mut document(1)).unwrap();
    store.save(&mut document(2)).unwrap();
    std::fs::remove_file(&path).unwrap();
    let loaded = Store::open(&path).unwrap().load().unwrap();
    assert_eq!(loaded.record, Record::new());
    assert!(loaded.recovery.is_none());
}
