//! The README's exit-code contract, command by command: a refusal to start (a symlinked state file,
//! a directory others can write to, a socket in use) exits 2 from every command, with one line on
//! stderr naming what was refused, and changes nothing.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_daemon-state");

/// The binary with a clean environment and no input.
fn daemon_state(args: &[&str]) -> Output {
    Command::new(BIN)
        .env_remove("DAEMON_STATE_FILE")
        .env_remove("DAEMON_STATE_TZ")
        .env_remove("RUST_LOG")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run daemon-state")
}

#[track_caller]
fn assert_refused(output: &Output, what: &str, named: &Path) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{what}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
    assert!(stderr.starts_with("daemon-state: "), "{what}: {stderr}");
    assert!(stderr.contains(&*named.to_string_lossy()), "{what}: names {named:?}: {stderr}");
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

#[test]
fn a_symlinked_state_file_exits_2_from_status_event_and_serve() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("state.json");
    symlink(dir.path().join("elsewhere.json"), &file).expect("symlink");
    let socket = dir.path().join("daemon.sock");
    let commands: &[&[&str]] =
        &[&["status"], &["event", "tick"], &["serve"], &["serve", "--socket", arg(&socket)]];
    for args in commands {
        let output = daemon_state(&[&["--state-file", arg(&file)], *args].concat());
        assert_refused(&output, &args.join(" "), &file);
        assert!(!socket.exists(), "{args:?} left a socket behind");
    }
}

#[test]
fn an_insecure_directory_exits_2_from_status_serve_and_simulate() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let file = dir.path().join("state.json");
    for args in [&["status"][..], &["serve"]] {
        let output = daemon_state(&[&["--state-file", arg(&file)], args].concat());
        assert_refused(&output, &args.join(" "), dir.path());
    }
    let output = daemon_state(&["simulate", "--days", "1", "--dir", arg(dir.path())]);
    assert_refused(&output, "simulate", dir.path());
    assert!(!file.exists() && !dir.path().join(".daemon-state.json").exists(), "nothing written");
}

#[test]
fn a_socket_in_use_exits_2_from_serve() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("daemon.sock");
    let _live = UnixListener::bind(&socket).expect("bind");
    let file = dir.path().join("state.json");
    let output = daemon_state(&["--state-file", arg(&file), "serve", "--socket", arg(&socket)]);
    assert_refused(&output, "serve --socket", &socket);
    assert!(!file.exists(), "nothing written");
}

#[test]
fn a_simulation_directory_already_used_exits_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join(".daemon-state.json"), "{}").expect("write");
    let output = daemon_state(&["simulate", "--days", "1", "--dir", arg(dir.path())]);
    assert_refused(&output, "simulate", dir.path());
}

#[test]
fn simulate_days_beyond_the_bound_or_zero_are_a_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    for days in ["0", "3651", "20000000", "4294967295"] {
        let sim = dir.path().join(days);
        let output = daemon_state(&["simulate", "--days", days, "--dir", arg(&sim)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "--days {days}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "--days {days}: {stderr}");
        assert!(stderr.contains("--days") && stderr.contains("3650"), "--days {days}: {stderr}");
        assert!(!sim.exists(), "--days {days} started a simulation");
    }
}
