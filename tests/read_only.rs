//! `status` and `check` only read: on a mistyped path, a read-only directory or a corrupt file they
//! create, lock and move nothing, and say what they found.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use assert_cmd::Command;
use daemon_state::engine::{Engine, EngineError};
use daemon_state::record::Record;
use daemon_state::serve::Server;
use daemon_state::store::{Call, Interposed, SimFs, Store, StoreError};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_daemon-state");
const NAME: &str = ".daemon-state.json";

fn daemon_state(file: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .env_remove("DAEMON_STATE_FILE")
        .env_remove("DAEMON_STATE_TZ")
        .env_remove("RUST_LOG")
        .arg("--state-file")
        .arg(file)
        // `check` reads no clock, and refuses `--now` as every command refuses what it ignores.
        .args(if args.contains(&"check") { &[][..] } else { &["--now", "2026-04-19T07:00:00Z"] })
        .args(args)
        .output()
        .expect("run daemon-state")
}

/// Every path under `dir` with its mode and content: what "changed nothing" compares.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u32, Vec<u8>)> {
    let mut found = Vec::new();
    let mut queue = vec![dir.to_owned()];
    while let Some(next) = queue.pop() {
        for entry in fs::read_dir(&next).expect("list") {
            let path = entry.expect("entry").path();
            let meta = fs::symlink_metadata(&path).expect("stat");
            let content = if meta.is_file() { fs::read(&path).expect("read") } else { Vec::new() };
            if meta.is_dir() {
                queue.push(path.clone());
            }
            found.push((path, meta.permissions().mode(), content));
        }
    }
    found.sort();
    found
}

/// A private temp directory holding a state file saved by the store (generation 1, SLEEP) and a
/// corrupt version of it when `corrupt`, with the previous generation beside it.
fn saved_state(corrupt: bool) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(NAME);
    let mut store = Store::open(&path).expect("open");
    for state in ["WAKE", "SLEEP"] {
        let mut record =
            Record::from_map(json!({"fsm_state": state}).as_object().expect("object").clone());
        store.save(&mut record).expect("save");
    }
    if corrupt {
        fs::write(&path, b"{\"fsm_state\": \"DREA").expect("corrupt");
    }
    (dir, path)
}

#[track_caller]
fn one_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn status_on_a_missing_path_creates_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    for path in [dir.path().join("typo/deeper").join(NAME), dir.path().join(NAME)] {
        for args in [&["status"][..], &["--json", "status"]] {
            let output = daemon_state(&path, args);
            assert_eq!(output.status.code(), Some(1), "{args:?}");
            let stderr = one_line(&output);
            assert!(stderr.contains("no state file at"), "{stderr}");
            assert!(stderr.contains(&*path.to_string_lossy()), "{stderr}");
            assert!(output.stdout.is_empty(), "a missing file shows no state");
            assert_eq!(snapshot(dir.path()), [], "status created something");
        }
    }
}

#[test]
fn status_on_a_corrupt_file_moves_nothing() {
    let (dir, path) = saved_state(true);
    let before = snapshot(dir.path());
    let output = daemon_state(&path, &["--json", "status"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = one_line(&output);
    assert!(stderr.contains("corrupt") && stderr.contains("daemon-state check"), "{stderr}");
    assert!(stderr.contains(&*path.to_string_lossy()), "{stderr}");
    assert!(output.stdout.is_empty());
    assert_eq!(snapshot(dir.path()), before, "status changed the directory");
}

#[test]
fn status_of_a_good_file_leaves_no_lock_file() {
    let (dir, path) = saved_state(false);
    assert!(!dir.path().join(format!("{NAME}.lock")).exists(), "the store makes no lock file");
    let before = snapshot(dir.path());
    let output = daemon_state(&path, &["--json", "status"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let status: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(status["state"], "SLEEP");
    assert_eq!(snapshot(dir.path()), before, "status changed the directory");
}

/// The real file system where every call that would change something fails with EROFS, as on a
/// read-only mount (root ignores a directory's mode, so its bits cannot show this); the calls made
/// are recorded.
fn read_only_mount(
    calls: Arc<Mutex<Vec<Call>>>,
) -> Interposed<impl Fn(Call, &Path) -> Option<io::Error> + Send + Sync> {
    Interposed::new(move |call, _: &Path| {
        calls.lock().expect("calls").push(call);
        let reads = [Call::Stat, Call::Read, Call::ListDir];
        (!reads.contains(&call)).then(|| io::Error::from_raw_os_error(libc::EROFS))
    })
}

#[test]
fn status_on_a_read_only_directory_works() {
    let (_dir, path) = saved_state(false);
    let calls = Arc::new(Mutex::new(Vec::new()));
    let store = Store::with_fs_read_only(&path, Box::new(read_only_mount(Arc::clone(&calls))))
        .expect("a read-only mount opens for reading");
    let (engine, report) = Engine::with_store(store).expect("and reads");
    assert_eq!(engine.state().as_str(), "SLEEP");
    assert!(report.recovery.is_none());
    let calls = calls.lock().expect("calls").clone();
    assert!(calls.iter().all(|c| [Call::Stat, Call::Read].contains(c)), "{calls:?}");

    // Writing through it is refused, not attempted.
    let mut engine = engine;
    let err = engine
        .update("test", chrono::Utc::now(), |record| {
            record.set("x", json!(1));
            ((), true)
        })
        .unwrap_err();
    assert!(matches!(err, EngineError::Store(StoreError::ReadOnly { .. })), "{err:?}");
}

#[test]
fn check_on_a_missing_path_creates_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    for path in [dir.path().join("typo/deeper").join(NAME), dir.path().join(NAME)] {
        let output = daemon_state(&path, &["--json", "check"]);
        assert_eq!(output.status.code(), Some(0));
        let report: Value = serde_json::from_slice(&output.stdout).expect("json");
        assert_eq!(report["errors"], 0, "{report:#}");
        assert_eq!(snapshot(dir.path()), [], "check created something");
    }
}

#[test]
fn check_on_a_corrupt_file_moves_nothing() {
    let (dir, path) = saved_state(true);
    let before = snapshot(dir.path());
    let output = daemon_state(&path, &["--json", "check"]);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    let corrupt = report["findings"].as_array().expect("findings").iter().any(|f| {
        f["level"] == "error" && f["message"].as_str().is_some_and(|m| m.contains("corrupt"))
    });
    assert!(corrupt, "{report:#}");
    assert_eq!(snapshot(dir.path()), before, "check changed the directory");
}

#[test]
fn check_on_a_read_only_directory_works() {
    let (dir, path) = saved_state(false);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).expect("chmod");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o500)).expect("chmod");
    let before = snapshot(dir.path());
    let output = daemon_state(&path, &["--json", "check"]);
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("chmod back");
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stdout));
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    let parsed =
        report["findings"].as_array().expect("findings").iter().any(|f| {
            f["level"] == "ok" && f["message"].as_str().is_some_and(|m| m.contains("SLEEP"))
        });
    assert!(parsed, "{report:#}");
    assert_eq!(snapshot(dir.path()), before, "check changed the directory");
}

const SIM_PATH: &str = "/state/.daemon-state.json";

fn document(state: &str) -> Record {
    Record::from_map(json!({"fsm_state": state}).as_object().expect("object").clone())
}

// serve's `status` reads the file as it stands without the lock: a lock that cannot be taken does
// not fail it, another process's save shows, and a corrupt file is neither moved nor shown.
#[test]
fn serve_status_takes_no_lock_and_moves_nothing() {
    let fs = SimFs::new();
    let store = Store::with_fs(SIM_PATH, Box::new(fs.clone())).expect("open");
    let (engine, _) = Engine::with_store(store).expect("engine");
    let now = daemon_state::timestamp::parse("2026-04-19T07:00:00Z").expect("time");
    let server = Server::new(engine, move || now);
    let mut other = Store::with_fs(SIM_PATH, Box::new(fs.clone())).expect("open");
    other.load().expect("load");
    other.save(&mut document("SLEEP")).expect("save");

    for errno in [libc::EIO, libc::EACCES] {
        fs.fail_at(Call::Lock, 0, errno);
        let status = server.reply(&json!({"type": "status"}));
        assert_eq!((&status["ok"], &status["state"]), (&json!(true), &json!("SLEEP")), "{status}");
        assert!(!fs.take_injected(), "status tried to lock");
    }

    fs.replace_durably(Path::new(SIM_PATH), b"{\"torn");
    let names = fs.names(Path::new("/state"));
    let status = server.reply(&json!({"type": "status"}));
    assert_eq!(status["state"], "SLEEP", "{status}");
    assert_eq!(fs.names(Path::new("/state")), names, "status moved something");
    assert_eq!(fs.contents(Path::new(SIM_PATH)).as_deref(), Some(&b"{\"torn"[..]));
}
