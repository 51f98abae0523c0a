//! The store's smaller promises: the in-memory store, generations, `changed_on_disk`, the lock
//! guard, and temp-file names.

use std::path::Path;
use std::time::Duration;

use daemon_state::record::Record;
use daemon_state::store::{Call, Fs, LockWait, SimFs, Store, StoreError};
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

/// A process that has exited and been reaped: its id names no process.
fn a_gone_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

// The open-time sweep removes only this store's temp-file shape, `NAME.<pid>-<n>.tmp` in digits,
// never a user's file that merely matches the seed's glob `NAME.*.tmp`.
#[test]
fn sweep_keeps_a_users_backup_tmp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".daemon-state.json");
    let gone = a_gone_pid();
    let kept = [
        ".daemon-state.json.backup.tmp".to_owned(),
        // The seed's own temp names: mkstemp's random letters and digits, no dash.
        ".daemon-state.json.12345678.tmp".to_owned(),
        format!(".daemon-state.json.{gone}-x.tmp"),
        format!(".daemon-state.json.{gone}-.tmp"),
        format!(".daemon-state.json.-{gone}.tmp"),
        format!(".daemon-state.json.{gone}-0.tmp.tmp"),
        format!(".other.json.{gone}-0.tmp"),
    ];
    for name in &kept {
        std::fs::write(dir.path().join(name), b"mine").unwrap();
    }
    let orphan = dir.path().join(format!(".daemon-state.json.{gone}-0.tmp"));
    std::fs::write(&orphan, b"orphan").unwrap();
    drop(Store::open(&path).unwrap());
    for name in &kept {
        assert_eq!(std::fs::read(dir.path().join(name)).unwrap(), b"mine", "{name}");
    }
    assert!(!orphan.exists(), "the orphan of a gone process is swept");
}

// The sweep never removes the temp file of a process that is still running: it may be another
// program's save in progress that does not take this store's lock.
#[test]
fn sweep_keeps_a_live_processs_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".daemon-state.json");
    let mut live = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let temp = dir.path().join(format!(".daemon-state.json.{}-7.tmp", live.id()));
    std::fs::write(&temp, b"in progress").unwrap();
    let opened = Store::open(&path).map(drop);
    let still_there = temp.exists();
    live.kill().unwrap();
    live.wait().unwrap();
    opened.unwrap();
    assert!(still_there, "a live process's temp file was swept");
    drop(Store::open(&path).unwrap());
    assert!(!temp.exists(), "swept once its process is gone");
}

// Defect: a stored generation of u64::MAX made the release build save generation 0 (the counter
// went backwards) and the debug build panic on the overflow. The counter saturates: a save after
// the largest generation (or any larger number, which reads as it) writes u64::MAX again.
#[test]
fn generation_at_u64_max_never_goes_backwards() {
    for stored in ["18446744073709551615", "18446744073709551616", "1e400", "3.5e30"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".daemon-state.json");
        std::fs::write(&path, format!("{{\"generation\": {stored}, \"n\": 1}}")).unwrap();
        let mut store = Store::open(&path).unwrap();
        let mut record = store.load().unwrap().record;
        assert_eq!(record.generation(), u64::MAX, "{stored} reads as the largest generation");
        assert_eq!(store.save(&mut record).unwrap(), u64::MAX, "{stored}");
        assert_eq!(store.save(&mut record).unwrap(), u64::MAX, "{stored}, saved twice");
        let back = Store::open(&path).unwrap().load().unwrap().record;
        assert_eq!(back.generation(), u64::MAX, "{stored}");
        assert_eq!(back.get("generation"), Some(&json!(u64::MAX)), "{stored}");
    }
}

// The same through the command line, whose test build is a debug build: no overflow panic, and
// the generation on disk stays at u64::MAX.
#[test]
fn a_command_on_a_file_at_the_largest_generation_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".daemon-state.json");
    std::fs::write(&path, b"{\"generation\": 18446744073709551615}").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_daemon-state"))
        .arg("--state-file")
        .arg(&path)
        .args(["--now", "2026-04-18T12:00:00Z", "sessions", "open", "s1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let disk: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(disk["generation"], json!(u64::MAX));
    assert!(disk["first_turn_pending"]["s1"].is_string(), "{disk}");
}

// Defect: a save stopped between its two renames leaves `NAME.prev` and `NAME` as two links to one
// file. The next save's rename of its new `.prev` link over `NAME.prev` then did nothing (rename(2)
// of two links to one file is a no-op) and left that link behind as a stray temp file.
#[test]
fn a_save_over_a_prev_of_the_same_inode_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".daemon-state.json");
    let prev = dir.path().join(".daemon-state.json.prev");
    let mut store = Store::open(&path).unwrap();
    store.save(&mut document(1)).unwrap();
    store.save(&mut document(2)).unwrap();
    std::fs::remove_file(&prev).unwrap();
    std::fs::hard_link(&path, &prev).unwrap();
    let before = std::fs::read(&path).unwrap();
    let mut store = Store::open(&path).unwrap();
    store.load().unwrap();
    store.save(&mut document(3)).unwrap();
    assert_eq!(super::temp_files(dir.path()), Vec::<String>::new());
    assert_eq!(std::fs::read(&prev).unwrap(), before, "NAME.prev holds the previous generation");
    let now = Record::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!((now.get("n"), now.generation()), (Some(&json!(3)), 3));
}

// Defect: a directory (or any file) already at the name chosen for the `.prev` link failed the save
// with no retry. The link takes a fresh name, as the temp file does.
#[test]
fn a_taken_name_for_the_prev_link_is_retried_with_a_fresh_one() {
    let fs = SimFs::new();
    let mut store = Store::with_fs(PATH, Box::new(fs.clone())).unwrap();
    store.save(&mut document(1)).unwrap();
    let first = fs.contents(Path::new(PATH)).unwrap();
    fs.fail_at(Call::Link, 0, libc::EEXIST);
    assert_eq!(store.save(&mut document(2)).unwrap(), 2);
    assert!(fs.take_injected(), "the first link name was taken");
    assert_eq!(fs.contents(Path::new("/state/.daemon-state.json.prev")), Some(first));
    let dir = Path::new("/state");
    assert!(!fs.names(dir).iter().any(|n| is_seed_temp(n)), "{:?}", fs.names(dir));
}

// The lock wait's timeout: an error naming the directory and the state file, and the store can
// lock again later. Zero tries once.
#[test]
fn a_lock_timeout_gives_up_with_an_error_naming_both_paths() {
    let fs = SimFs::new();
    let holder = Store::with_fs(PATH, Box::new(fs.clone())).unwrap();
    let held = holder.lock().unwrap();
    let mut waiter = Store::with_fs(PATH, Box::new(fs.clone())).unwrap();
    waiter.set_lock_wait(LockWait { timeout: Some(Duration::ZERO), on_wait: None });
    let err = waiter.lock().unwrap_err();
    assert!(matches!(err, StoreError::LockTimeout { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("directory /state ") && text.contains(PATH), "{text}");
    drop(held);
    drop(waiter.lock().unwrap());
}

/// A stored `generation` literal: near both ends of u64, anywhere in it, or far beyond it.
fn generation_literal() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        (0..8u64).prop_map(|k| (u64::MAX - k).to_string()),
        (0..8u64).prop_map(|k| k.to_string()),
        any::<u64>().prop_map(|g| g.to_string()),
        (1..40usize, 0..10u8).prop_map(|(digits, lead)| format!(
            "{}{}",
            lead.max(1),
            "9".repeat(digits)
        )),
        (0..400u32).prop_map(|exp| format!("1.5e{exp}")),
    ]
}

proptest::proptest! {
    // Whatever generation is stored, two saves after loading it never go backwards and never
    // panic: each writes one more than the last, or u64::MAX once there.
    #[test]
    fn saves_after_any_stored_generation_never_go_backwards(literal in generation_literal()) {
        let fs = SimFs::new();
        fs.create_dir(Path::new("/state")).unwrap();
        fs.replace_durably(Path::new(PATH), format!("{{\"generation\": {literal}}}").as_bytes());
        let mut store = Store::with_fs(PATH, Box::new(fs.clone())).unwrap();
        let mut record = store.load().unwrap().record;
        let stored = record.generation();
        let expected = match literal.parse::<u64>() {
            Ok(exact) => exact,
            // A fraction rounds down; beyond u64::MAX reads as u64::MAX (`as` saturates).
            Err(_) => literal.parse::<f64>().unwrap() as u64,
        };
        proptest::prop_assert_eq!(stored, expected, "{}", literal);
        let first = store.save(&mut record).unwrap();
        let second = store.save(&mut record).unwrap();
        proptest::prop_assert_eq!(first, stored.saturating_add(1));
        proptest::prop_assert_eq!(second, first.saturating_add(1));
    }
}

// The lock is the directory's: two state files in one directory take turns, as documented, and a
// state file in another directory does not wait.
#[test]
fn state_files_in_one_directory_share_its_lock() {
    let fs = SimFs::new();
    let ours = Store::with_fs("/state/a.json", Box::new(fs.clone())).unwrap();
    let held = ours.lock().unwrap();
    let once = LockWait { timeout: Some(Duration::ZERO), on_wait: None };
    let mut neighbour = Store::with_fs("/state/b.json", Box::new(fs.clone())).unwrap();
    neighbour.set_lock_wait(once.clone());
    let err = neighbour.lock().unwrap_err();
    assert!(matches!(err, StoreError::LockTimeout { .. }), "{err:?}");
    let mut elsewhere = Store::with_fs("/other/a.json", Box::new(fs.clone())).unwrap();
    elsewhere.set_lock_wait(once);
    drop(elsewhere.lock().unwrap());
    drop(held);
    drop(neighbour.lock().unwrap());
}
