//! The command line on damaged and unusual state files: `check` (read-only, exit 1 on any error),
//! a corrupt file quarantined and reported by a command that writes, inputs that cannot be read.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_daemon-state");

/// A temp directory (mode 0700) holding one state file, written as the seed writes it.
fn sandbox(content: Option<&[u8]>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join(".daemon-state.json");
    if let Some(bytes) = content {
        fs::write(&file, bytes).expect("write");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    (dir, file)
}

fn daemon_state(file: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .env_remove("DAEMON_STATE_FILE")
        .env_remove("DAEMON_STATE_TZ")
        .env_remove("RUST_LOG")
        .arg("--state-file")
        .arg(file)
        .args(args)
        .output()
        .expect("run daemon-state")
}

/// Every file in the directory with its mode and content: what "changed nothing" compares.
fn snapshot(dir: &Path) -> Vec<(String, u32, Vec<u8>)> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("list")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let meta = fs::symlink_metadata(&path).expect("stat");
            let content = if meta.is_file() { fs::read(&path).expect("read") } else { Vec::new() };
            (
                path.file_name().expect("name").to_string_lossy().into_owned(),
                meta.permissions().mode(),
                content,
            )
        })
        .collect();
    files.sort();
    files
}

/// The levels `check --json` gave to findings whose message contains `about`.
fn levels(findings: &Value, about: &str) -> Vec<String> {
    findings
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["message"].as_str().is_some_and(|m| m.contains(about)))
        .map(|f| f["level"].as_str().expect("level").to_owned())
        .collect()
}

/// Runs `check --json` in a prepared directory; checks the exit code, the level of the finding
/// whose message contains `about`, and that nothing in the directory changed.
#[track_caller]
fn check(setup: impl FnOnce(&Path, &Path), code: i32, about: &str, level: &str) {
    let (dir, file) = sandbox(Some(br#"{"fsm_state": "WAKE", "generation": 3}"#));
    setup(dir.path(), &file);
    let before = snapshot(dir.path());
    let output = daemon_state(&file, &["--json", "check"]);
    let report: Value = serde_json::from_slice(&output.stdout).expect("check prints JSON");
    assert_eq!(output.status.code(), Some(code), "{report:#}");
    assert_eq!(report["ok"], code == 0, "{report:#}");
    assert_eq!(levels(&report["findings"], about), [level], "{about}: {report:#}");
    assert_eq!(snapshot(dir.path()), before, "check changed the directory");
    if code != 0 {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("daemon-state: check found"), "{stderr}");
    }
}

/// A process that has exited and been reaped: its id names no process.
fn a_gone_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

#[test]
fn check_reports_each_finding_with_its_level() {
    check(|_, _| {}, 0, "mode 0600", "ok");
    check(|_, _| {}, 0, "parses: a JSON object, WAKE, generation 3", "ok");
    let gone = a_gone_pid();
    check(
        |dir, _| {
            let name = format!(".daemon-state.json.{gone}-0.tmp");
            fs::write(dir.join(name), b"{\"half").expect("tmp")
        },
        0,
        "interrupted save; the next command that writes removes it",
        "warning",
    );
    check(
        |dir, _| {
            let name = format!(".daemon-state.json.{}-0.tmp", std::process::id());
            fs::write(dir.join(name), b"{\"half").expect("tmp")
        },
        0,
        "a save in progress",
        "warning",
    );
    check(
        |dir, _| fs::write(dir.join(".daemon-state.json.backup.tmp"), b"{}").expect("tmp"),
        0,
        "never removed automatically",
        "info",
    );
    check(
        |_, file| fs::set_permissions(file, fs::Permissions::from_mode(0o644)).expect("chmod"),
        1,
        "mode 0644",
        "error",
    );
    check(
        |dir, _| fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).expect("chmod"),
        1,
        "directory mode 0777",
        "error",
    );
    check(
        |dir, _| {
            fs::write(dir.join(".daemon-state.json.corrupt.20260419T070000.000000Z"), b"{")
                .expect("q")
        },
        0,
        "quarantined",
        "warning",
    );
    check(
        |dir, _| {
            let prev = dir.join(".daemon-state.json.prev");
            fs::write(&prev, b"[").expect("prev");
            fs::set_permissions(&prev, fs::Permissions::from_mode(0o600)).expect("chmod");
        },
        0,
        "previous generation is corrupt",
        "warning",
    );
    check(
        |_, file| fs::write(file, br#"{"scheduler_paused": "yes"}"#).expect("write"),
        0,
        "scheduler_paused",
        "warning",
    );
    check(
        |_, file| fs::write(file, b"{\"fsm_state\": \"WA").expect("write"),
        1,
        "corrupt",
        "error",
    );
    check(
        |dir, file| {
            fs::rename(file, dir.join("elsewhere.json")).expect("move");
            symlink(dir.join("elsewhere.json"), file).expect("link");
        },
        1,
        "symbolic link",
        "error",
    );
    check(|_, file| fs::remove_file(file).expect("remove"), 0, "no state file", "info");
}

#[test]
fn check_human_output_gives_a_level_per_line() {
    let (dir, file) = sandbox(Some(b"{}"));
    fs::write(dir.path().join(".daemon-state.json.1-1.tmp"), b"").expect("tmp");
    let output = daemon_state(&file, &["check"]);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8_lossy(&output.stdout);
    let levels: Vec<&str> =
        text.lines().map(|l| l.split_whitespace().next().unwrap_or("")).collect();
    assert!(
        levels.iter().all(|l| ["ok", "info", "warning", "error", "check"].contains(l)),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("warning") && l.contains(".tmp")), "{text}");
    assert!(text.ends_with("check    passed: 0 error(s), 1 warning(s)\n"), "{text}");
}

#[test]
fn a_corrupt_file_is_quarantined_and_reported_on_one_line() {
    let garbage = b"{\"fsm_state\": \"SLEEP\", \"trunc";
    let (dir, file) = sandbox(Some(garbage));
    // A command that writes recovers the file (`status` only reads: it would report it corrupt).
    let output = daemon_state(&file, &["--json", "sessions", "open", "s1"]);
    assert_eq!(output.status.code(), Some(0));
    let status = daemon_state(&file, &["--json", "status"]);
    let status: Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(status["state"], "WAKE", "started fresh");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("daemon-state: warning: ") && stderr.contains("corrupt"),
        "{stderr}"
    );
    let quarantined: Vec<PathBuf> = fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().contains(".daemon-state.json.corrupt."))
        .collect();
    assert_eq!(quarantined.len(), 1, "{stderr}");
    assert!(
        stderr.contains(&*quarantined[0].to_string_lossy()),
        "the line names the copy: {stderr}"
    );
    assert_eq!(fs::read(&quarantined[0]).expect("copy"), garbage, "kept byte for byte");
}

/// Prepares a sandbox (its directory, its state file) for one case.
type Setup = fn(&Path, &Path);

#[test]
fn inputs_that_cannot_be_read_exit_2_naming_the_path() {
    let rows: &[(&str, Setup)] = &[
        ("a directory", |_, file| fs::create_dir(file).expect("mkdir")),
        ("a symbolic link", |dir, file| symlink(dir.join("nowhere"), file).expect("link")),
        ("an open directory", |dir, _| {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).expect("chmod")
        }),
    ];
    for (what, setup) in rows {
        let (dir, file) = sandbox(None);
        setup(dir.path(), &file);
        for args in
            [&["status"][..], &["event", "tick"], &["sessions", "open", "x"], &["digest", "take"]]
        {
            let output = daemon_state(&file, args);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{what} {args:?}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{what} {args:?}: {stderr}");
            assert!(stderr.contains(&*dir.path().to_string_lossy()), "{what} {args:?}: {stderr}");
        }
    }
}

#[test]
fn check_fails_on_a_previous_generation_every_command_refuses() {
    let rows: &[(&str, &str, Setup)] = &[
        (".prev", "the previous generation is a symbolic link", |dir, sibling| {
            symlink(dir.join("nowhere"), sibling).expect("link")
        }),
        (".prev", "the previous generation is a directory", |_, sibling| {
            fs::create_dir(sibling).expect("mkdir")
        }),
    ];
    for (suffix, about, setup) in rows {
        check(
            |dir, file| setup(dir, &PathBuf::from(format!("{}{suffix}", file.display()))),
            1,
            about,
            "error",
        );
        // And indeed every command refuses it.
        let (dir, file) = sandbox(Some(br#"{"fsm_state": "WAKE", "generation": 3}"#));
        setup(dir.path(), &PathBuf::from(format!("{}{suffix}", file.display())));
        for args in [&["status"][..], &["event", "tick"]] {
            let output = daemon_state(&file, args);
            assert_eq!(output.status.code(), Some(2), "{about}: {args:?}");
        }
    }
}

// The lock is the directory's: a `NAME.lock` left by earlier versions, whatever it is, is
// explained and stops nothing.
#[test]
fn a_lock_file_of_earlier_versions_is_explained_and_stops_nothing() {
    let rows: &[(&str, Setup)] = &[
        ("a regular file", |_, sibling| fs::write(sibling, b"").expect("lock")),
        ("a symbolic link", |dir, sibling| symlink(dir.join("nowhere"), sibling).expect("link")),
        ("a directory", |_, sibling| fs::create_dir(sibling).expect("mkdir")),
    ];
    for (kind, setup) in rows {
        check(
            |dir, file| setup(dir, &PathBuf::from(format!("{}.lock", file.display()))),
            0,
            &format!("the lock file of earlier versions ({kind})"),
            "info",
        );
        let (dir, file) = sandbox(Some(br#"{"fsm_state": "WAKE", "generation": 3}"#));
        setup(dir.path(), &PathBuf::from(format!("{}.lock", file.display())));
        for args in [&["status"][..], &["event", "tick"]] {
            let output = daemon_state(&file, args);
            assert_eq!(output.status.code(), Some(0), "{kind}: {args:?}: {output:?}");
        }
    }
}

/// The message of the first finding of `check --json` whose message contains `about`.
fn finding(file: &Path, about: &str) -> String {
    let output = daemon_state(file, &["--json", "check"]);
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["message"].as_str())
        .find(|m| m.contains(about))
        .unwrap_or_else(|| panic!("no finding about {about}: {report:#}"))
        .to_owned()
}

// What `check` says the next command does with a corrupt file is what it does.
#[test]
fn check_says_what_the_next_command_does_with_a_corrupt_file() {
    let (_dir, file) = sandbox(None);
    for id in ["a", "b"] {
        let output = daemon_state(&file, &["sessions", "open", id]);
        assert_eq!(output.status.code(), Some(0));
    }
    fs::write(&file, b"{\"torn").expect("corrupt");
    let said = finding(&file, "corrupt");
    assert!(said.contains("puts back the previous generation (1, from NAME.prev)"), "{said}");
    let output = daemon_state(&file, &["sessions", "open", "c"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("restored generation 1 from"), "{stderr}");

    let (_dir, file) = sandbox(Some(b"{\"torn"));
    let said = finding(&file, "corrupt");
    assert!(said.contains("starts fresh: there is no usable previous generation"), "{said}");
    let output = daemon_state(&file, &["sessions", "open", "c"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("starting fresh"), "{stderr}");
}
