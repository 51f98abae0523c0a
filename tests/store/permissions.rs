//! Permissions, refusals, quarantine and read errors, on the real file system where the kernel
//! decides, and on the simulated one where an error must be injected.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use daemon_state::engine::Engine;
use daemon_state::record::Record;
use daemon_state::store::{Call, Recovery, SimFs, Store, StoreError};
use serde_json::json;

use super::{NAME, state_dir};

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn saved(store: &mut Store, n: u64) -> Record {
    let mut record = Record::from_map(json!({"n": n}).as_object().unwrap().clone());
    store.save(&mut record).unwrap();
    record
}

fn quarantined(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".daemon-state.json.corrupt."))
        .collect();
    names.sort();
    names
}

// Permissions: the state file and its previous generation are 0600, whatever the umask lets
// through. (The lock is on the directory: the store makes no `NAME.lock`.)
#[test]
fn every_file_the_store_makes_is_private() {
    let (dir, path) = state_dir();
    let mut store = Store::open(&path).unwrap();
    saved(&mut store, 1);
    saved(&mut store, 2);
    for name in [NAME, ".daemon-state.json.prev"] {
        assert_eq!(mode(&dir.path().join(name)), 0o600, "{name}");
    }
    assert!(!dir.path().join(".daemon-state.json.lock").exists());
}

// Permissions: a missing directory is created, with its missing parents, mode 0700.
#[test]
fn a_missing_directory_is_created_private() {
    let (dir, _) = state_dir();
    let path = dir.path().join("a/b").join(NAME);
    let mut store = Store::open(&path).unwrap();
    saved(&mut store, 1);
    assert_eq!(mode(&dir.path().join("a")), 0o700);
    assert_eq!(mode(&dir.path().join("a/b")), 0o700);
}

// Permissions: a state file that is a symbolic link is refused, at open and at load.
#[test]
fn a_symlinked_state_file_is_refused() {
    let (dir, path) = state_dir();
    let target = dir.path().join("elsewhere.json");
    std::fs::write(&target, b"{}").unwrap();
    symlink(&target, &path).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Symlink { .. }), "{err:?}");
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");

    std::fs::remove_file(&path).unwrap();
    let mut store = Store::open(&path).unwrap();
    symlink(&target, &path).unwrap();
    let err = store.load().unwrap_err();
    assert!(matches!(err, StoreError::Symlink { .. }), "{err:?}");
    assert_eq!(std::fs::read(&target).unwrap(), b"{}");
}

// Refusals come at open, before anything moves: a symbolic link or a directory at `NAME.prev` or
// `NAME.lock`, with a corrupt state file, refuses the open and leaves the corrupt file in place.
#[test]
fn a_symlinked_prev_refuses_before_quarantining() {
    type Setup = fn(&Path, &Path);
    // (`NAME.lock` is no longer the store's: the lock is the directory's, and `check` explains a
    // `NAME.lock` left by earlier versions.)
    let rows: [(&str, Setup); 2] = [
        (".prev", |target, sibling| symlink(target, sibling).unwrap()),
        (".prev", |_, sibling| std::fs::create_dir(sibling).unwrap()),
    ];
    for (suffix, setup) in rows {
        let (dir, path) = state_dir();
        let mut store = Store::open(&path).unwrap();
        saved(&mut store, 1);
        saved(&mut store, 2);
        drop(store);
        let sibling = dir.path().join(format!("{NAME}{suffix}"));
        let _ = std::fs::remove_file(&sibling);
        let target = dir.path().join("elsewhere.json");
        std::fs::write(&target, b"{}").unwrap();
        setup(&target, &sibling);
        std::fs::write(&path, b"{\"torn").unwrap();

        let err = Store::open(&path).and_then(|mut store| store.load()).unwrap_err();
        assert!(
            matches!(err, StoreError::Symlink { .. } | StoreError::WrongKind { .. }),
            "{suffix}: {err:?}"
        );
        assert!(err.to_string().contains(&*sibling.to_string_lossy()), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"torn", "{suffix}: the file was moved");
        assert_eq!(quarantined(dir.path()), Vec::<String>::new(), "{suffix}");
        assert_eq!(std::fs::read(&target).unwrap(), b"{}");
    }
}

// Permissions: a directory that its group or others may write to is refused; a symbolic link to a
// private directory is fine.
#[test]
fn a_directory_others_may_write_is_refused() {
    #[track_caller]
    fn check(dir_mode: u32, refused: bool) {
        let (dir, path) = state_dir();
        chmod(dir.path(), dir_mode);
        match Store::open(&path) {
            Err(StoreError::InsecureDirectory { path: p, mode }) if refused => {
                assert_eq!((p.as_path(), mode), (dir.path(), dir_mode));
            }
            Ok(_) if !refused => {}
            other => panic!("mode {dir_mode:o}: {other:?}"),
        }
        let message = Store::open(&path).err().map(|e| e.to_string());
        if refused {
            assert!(message.unwrap().contains(&*dir.path().to_string_lossy()));
        }
    }
    check(0o700, false);
    check(0o755, false);
    check(0o750, false);
    check(0o770, true);
    check(0o707, true);
    check(0o777, true);
    check(0o1777, true);

    let (dir, _) = state_dir();
    let private = dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    chmod(&private, 0o700);
    symlink(&private, dir.path().join("link")).unwrap();
    Store::open(dir.path().join("link").join(NAME)).unwrap();
}

// Quarantine: each kind of corrupt file (bad JSON, bad UTF-8, empty, zero-filled, not an object) is
// moved to `NAME.corrupt.<time>` with its bytes intact, `NAME.prev` is loaded and reported, and
// only the newest five quarantined copies are kept.
#[test]
fn corrupt_files_are_quarantined_keeping_five_and_prev_is_used() {
    let corruptions: [&[u8]; 7] = [
        b"{\"fsm_state\": ",
        b"{\"fsm_state\": \"\xff\xfe\"}",
        b"",
        &[0; 4096],
        b"[\"WAKE\"]",
        b"\"WAKE\"",
        b"{\"fsm_state\": \"WAKE\"} trailing",
    ];
    let (dir, path) = state_dir();
    let mut store = Store::open(&path).unwrap();
    let mut previous = saved(&mut store, 0);
    let mut seen = Vec::new();
    for (i, bytes) in corruptions.iter().enumerate() {
        let current = saved(&mut store, i as u64 + 1);
        std::fs::write(&path, bytes).unwrap();
        let loaded = Store::open(&path).unwrap().load().unwrap();
        assert_eq!(loaded.record, previous, "corruption {i}");
        let Some(Recovery::RestoredPrevious { quarantined_to, generation, .. }) = &loaded.recovery
        else {
            panic!("corruption {i}: {:?}", loaded.recovery);
        };
        assert_eq!(*generation, previous.generation());
        assert_eq!(std::fs::read(quarantined_to).unwrap(), *bytes);
        assert!(loaded.recovery.as_ref().unwrap().to_string().contains("corrupt"));
        seen.push(quarantined_to.file_name().unwrap().to_string_lossy().into_owned());
        let kept = quarantined(dir.path());
        assert_eq!(kept, seen[seen.len().saturating_sub(5)..], "corruption {i}");
        // Put the good generation back for the next round, as a save after the recovery would.
        store = Store::open(&path).unwrap();
        store.load().unwrap();
        let mut again = current.clone();
        store.save(&mut again).unwrap();
        previous = again;
    }
}

// Quarantine: with no usable `NAME.prev`, a corrupt file gives a fresh record, reported.
#[test]
fn a_corrupt_file_without_a_previous_generation_starts_fresh() {
    let (dir, path) = state_dir();
    std::fs::write(&path, b"not json").unwrap();
    std::fs::write(dir.path().join(".daemon-state.json.prev"), b"nor this").unwrap();
    let loaded = Store::open(&path).unwrap().load().unwrap();
    assert_eq!(loaded.record, Record::new());
    assert!(matches!(loaded.recovery, Some(Recovery::StartedFresh { .. })));
    assert!(!path.exists());
    assert_eq!(quarantined(dir.path()).len(), 1);
}

// Read errors: EACCES (and EIO) while reading is an error naming the path, never an empty state.
#[test]
fn a_read_error_is_an_error_not_an_empty_state() {
    for errno in [libc::EACCES, libc::EIO] {
        let fs = SimFs::new();
        let path = "/state/.daemon-state.json";
        let mut store = Store::with_fs(path, Box::new(fs.clone())).unwrap();
        saved(&mut store, 1);
        fs.fail_at(Call::Read, 0, errno);
        let err = store.load().unwrap_err();
        let StoreError::Io { source, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(source.raw_os_error(), Some(errno));
        assert!(err.to_string().contains(path), "{err}");
    }

    // The kernel's own EACCES, where permissions bind (not for root).
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("note: running as root, so the real-file EACCES case is skipped");
        return;
    }
    let (_dir, path) = state_dir();
    let mut store = Store::open(&path).unwrap();
    saved(&mut store, 1);
    chmod(&path, 0o000);
    let err = store.load().unwrap_err();
    assert!(err.to_string().contains("ermission denied"), "{err}");
}

/// A simulated disk with two saves in `/state`.
fn two_saves() -> SimFs {
    let fs = SimFs::new();
    let mut store = Store::with_fs(SIM_PATH, Box::new(fs.clone())).unwrap();
    saved(&mut store, 1);
    saved(&mut store, 2);
    fs
}

const SIM_PATH: &str = "/state/.daemon-state.json";

// Ownership, as OpenSSH's StrictModes: a state file, `NAME.prev` or directory owned by another user
// is refused at open (read-only or not), one line naming the path and the owner's uid; a directory
// owned by root is fine.
#[test]
fn a_file_owned_by_another_user_is_refused() {
    let nobody = 65534;
    for owned in [SIM_PATH, "/state/.daemon-state.json.prev", "/state"] {
        let fs = two_saves();
        fs.set_owner(Path::new(owned), nobody);
        let opens = [
            Store::with_fs(SIM_PATH, Box::new(fs.clone())).err(),
            Store::with_fs_read_only(SIM_PATH, Box::new(fs.clone())).err(),
        ];
        for err in opens {
            let Some(err @ StoreError::ForeignOwner { .. }) = err else {
                panic!("{owned}: {err:?}");
            };
            let message = err.to_string();
            assert!(message.contains(owned) && message.contains("uid 65534"), "{message}");
            assert_eq!(message.lines().count(), 1);
        }
    }
    let fs = two_saves();
    fs.set_owner(Path::new("/state"), 0);
    let mut store = Store::with_fs(SIM_PATH, Box::new(fs)).unwrap();
    assert_eq!(store.load().unwrap().record.get("n"), Some(&json!(2)));
}

// Modes: a state file or `NAME.prev` that group or others may read is set back to 0600 when a
// writing command opens it, with a warning in the open report; a read-only open (`status`) leaves
// it and warns.
#[test]
fn a_world_readable_file_is_repaired_to_0600() {
    let (dir, path) = state_dir();
    let mut store = Store::open(&path).unwrap();
    saved(&mut store, 1);
    saved(&mut store, 2);
    drop(store);
    let prev = dir.path().join(format!("{NAME}.prev"));
    chmod(&path, 0o644);
    chmod(&prev, 0o640);

    let (_, report) = Engine::open_read_only(&path).unwrap();
    assert_eq!((mode(&path), mode(&prev)), (0o644, 0o640), "a read-only open changed modes");
    assert!(report.warnings.iter().any(|w| w.contains("0644")), "{:?}", report.warnings);

    let (mut engine, report) = Engine::open(&path).unwrap();
    assert_eq!((mode(&path), mode(&prev)), (0o600, 0o600));
    let warned = |m: &str, p: &str| {
        report.warnings.iter().any(|w| w.contains(m) && w.contains("set to 0600") && w.contains(p))
    };
    assert!(warned("mode 0644", ""), "{:?}", report.warnings);
    assert!(warned("mode 0640", &prev.to_string_lossy()), "{:?}", report.warnings);
    engine.update("test", chrono::Utc::now(), |record| ((), record.get("n").is_some())).unwrap();
    assert_eq!((mode(&path), mode(&prev)), (0o600, 0o600), "the next save keeps them private");

    let (_, report) = Engine::open(&path).unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

// Directories the store creates, and each missing parent, are 0700 whatever the umask: a zero
// umask, and umasks that take the owner's own bits away.
#[test]
fn created_directories_are_0700_under_a_zero_umask() {
    for umask in ["0", "022", "277", "777"] {
        let (dir, _) = state_dir();
        let path = dir.path().join("a/b").join(NAME);
        let output = std::process::Command::new("sh")
            .args(["-c", "umask \"$0\" && exec \"$1\" --state-file \"$2\" sessions open s1"])
            .arg(umask)
            .arg(env!("CARGO_BIN_EXE_daemon-state"))
            .arg(&path)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "umask {umask}: {stderr}");
        assert_eq!(mode(&dir.path().join("a")), 0o700, "umask {umask}");
        assert_eq!(mode(&dir.path().join("a/b")), 0o700, "umask {umask}");
        assert_eq!(mode(&path), 0o600, "umask {umask}");
    }
}
