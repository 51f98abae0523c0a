//! The environment the command line reads: `DAEMON_STATE_FILE` and `DAEMON_STATE_TZ`. A bad value
//! is named by its variable's name, an empty one counts as unset, and a bad zone breaks only the
//! commands that use a zone.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_daemon-state");

/// The binary with only `vars` set of the variables it reads, `HOME` in `home`.
fn daemon_state(home: &Path, vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .env_remove("DAEMON_STATE_FILE")
        .env_remove("DAEMON_STATE_TZ")
        .env_remove("RUST_LOG")
        .env("HOME", home)
        .args(args)
        .stdin(Stdio::null());
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().expect("run daemon-state")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_refused_naming(output: &Output, named: &str) {
    let stderr = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(named), "names {named}: {stderr}");
}

#[test]
fn a_bad_daemon_state_tz_is_named_by_its_name() {
    let home = tempfile::tempdir().expect("temp dir");
    let file = home.path().join("state.json");
    let file = file.to_str().expect("utf-8");
    for args in [&["status"][..], &["event", "tick"], &["serve"]] {
        let output = daemon_state(
            home.path(),
            &[("DAEMON_STATE_TZ", "Mars/Olympus_Mons")],
            &[&["--state-file", file], args].concat(),
        );
        assert_refused_naming(&output, "DAEMON_STATE_TZ");
        assert!(stderr(&output).contains("Mars/Olympus_Mons"), "{}", stderr(&output));
        assert!(!stderr(&output).contains("--tz"), "not the option: {}", stderr(&output));
        assert!(!Path::new(file).exists(), "{args:?} wrote the state file");
    }
    let output = daemon_state(
        home.path(),
        &[("DAEMON_STATE_TZ", "Mars/Olympus_Mons")],
        &["diagram", "--format", "dot", "--out", home.path().to_str().expect("utf-8")],
    );
    assert_eq!(output.status.code(), Some(0), "a command with no zone: {}", stderr(&output));
}

#[test]
fn an_empty_daemon_state_tz_counts_as_unset() {
    let home = tempfile::tempdir().expect("temp dir");
    let file = home.path().join("state.json");
    let file = file.to_str().expect("utf-8");
    let out = home.path().join("drawn");
    let vars = [("DAEMON_STATE_TZ", "")];
    let rows: &[&[&str]] = &[
        &["--state-file", file, "sessions", "open", "s1"],
        &["--state-file", file, "--json", "status"],
        &["--state-file", file, "check"],
        &["diagram", "--format", "dot", "--out", out.to_str().expect("utf-8")],
    ];
    for args in rows {
        let output = daemon_state(home.path(), &vars, args);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr(&output));
    }
}

#[test]
fn a_bad_daemon_state_file_is_named_by_its_name() {
    let home = tempfile::tempdir().expect("temp dir");
    let output = daemon_state(home.path(), &[("DAEMON_STATE_FILE", "/")], &["status"]);
    assert_refused_naming(&output, "DAEMON_STATE_FILE");
    let output = daemon_state(home.path(), &[("DAEMON_STATE_FILE", "/")], &["serve"]);
    assert_refused_naming(&output, "DAEMON_STATE_FILE");

    let link = home.path().join("state.json");
    symlink(home.path().join("elsewhere.json"), &link).expect("symlink");
    let link = link.to_str().expect("utf-8");
    let output = daemon_state(home.path(), &[("DAEMON_STATE_FILE", link)], &["event", "tick"]);
    assert_refused_naming(&output, "DAEMON_STATE_FILE");
    assert!(stderr(&output).contains(link), "and the path: {}", stderr(&output));

    let output = daemon_state(home.path(), &[], &["--state-file", link, "event", "tick"]);
    assert_refused_naming(&output, link);
    assert!(!stderr(&output).contains("DAEMON_STATE_FILE"), "{}", stderr(&output));
}

#[test]
fn an_empty_daemon_state_file_counts_as_unset() {
    let home = tempfile::tempdir().expect("temp dir");
    let output =
        daemon_state(home.path(), &[("DAEMON_STATE_FILE", "")], &["sessions", "open", "s1"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(home.path().join(".iai-mcp").join(".daemon-state.json").exists(), "the default file");
}

#[test]
fn the_tz_help_says_what_it_does() {
    let home = tempfile::tempdir().expect("temp dir");
    let output = daemon_state(home.path(), &[], &["--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    let tz: String = help
        .split("--tz <IANA>")
        .nth(1)
        .and_then(|rest| rest.split("--json").next())
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for said in ["quiet window", "for this one command without storing it", "DAEMON_STATE_TZ"] {
        assert!(tz.contains(said), "{said:?} in {tz:?}");
    }
}
