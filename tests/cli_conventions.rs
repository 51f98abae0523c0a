//! The command line's conventions, end to end through the real binary: one JSON object with `ok`
//! per `--json` command, usage errors that keep clap's suggestions, each command taking only the
//! options it uses, a closed standard output as a quiet success, completions and a manual page,
//! and `diagram --out -`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_daemon-state");
const NOW: &str = "2026-04-19T12:00:00Z";

/// The binary with a clean environment and no input.
fn command() -> Command {
    let mut command = Command::new(BIN);
    command
        .env_remove("DAEMON_STATE_FILE")
        .env_remove("DAEMON_STATE_TZ")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    command
}

fn run(args: &[&str]) -> Output {
    command().args(args).output().expect("run daemon-state")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

#[test]
fn every_json_output_is_one_object_with_ok() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("state.json");
    let file = arg(&file);
    let drawn = dir.path().join("drawn");
    let sim = dir.path().join("sim");
    let rows: &[(&[&str], i32, bool)] = &[
        (&["--state-file", file, "--now", NOW, "event", "boot"], 0, true),
        (&["--state-file", file, "--now", NOW, "event", "lock-acquired"], 1, false),
        (&["--state-file", file, "--now", NOW, "status"], 0, true),
        (&["--state-file", file, "--now", NOW, "sessions", "open", "s1"], 0, true),
        (&["--state-file", file, "--now", NOW, "sessions", "consume", "s1"], 0, true),
        (&["--state-file", file, "--now", NOW, "sessions", "prune"], 0, true),
        (&["--state-file", file, "--now", NOW, "digest", "take"], 0, true),
        (&["--state-file", file, "check"], 0, true),
        (&["diagram", "--format", "dot", "--out", arg(&drawn)], 0, true),
        (&["simulate", "--days", "1", "--dir", arg(&sim)], 0, true),
    ];
    for (args, code, ok) in rows {
        let output = run(&[&["--json"], *args].concat());
        let at = format!("{args:?}: {}", text(&output.stderr));
        assert_eq!(output.status.code(), Some(*code), "{at}");
        let stdout = text(&output.stdout);
        assert_eq!(stdout.lines().count(), 1, "{at}: one line: {stdout}");
        let doc: Value = serde_json::from_str(&stdout).expect("one JSON document");
        assert!(doc.is_object(), "{at}: {doc}");
        assert_eq!(doc["ok"], Value::Bool(*ok), "{at}: {doc}");
    }
    let status = run(&["status", "--json", "--state-file", file, "--now", NOW]);
    let status: Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(status["file"], file, "{status}");
}

#[test]
fn human_status_names_the_file_it_read_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("state.json");
    let boot = run(&["--state-file", arg(&file), "--now", NOW, "event", "boot"]);
    assert_eq!(boot.status.code(), Some(0), "{}", text(&boot.stderr));
    let output = run(&["status", "--state-file", arg(&file), "--now", NOW]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let first = stdout.lines().next().unwrap_or_default();
    assert_eq!(first.split_whitespace().collect::<Vec<_>>(), ["file", arg(&file)], "{stdout}");
    assert!(stdout.lines().nth(1).is_some_and(|line| line.starts_with("state ")), "{stdout}");
    assert!(!stdout.contains("ok "), "no `ok` line: {stdout}");
}

#[test]
fn usage_errors_keep_the_suggestion_on_one_line() {
    let rows: &[(&[&str], &[&str])] = &[
        (&["statsu"], &["statsu", "tip:", "'status'"]),
        (&["status", "--state-fil", "x"], &["--state-fil", "tip:", "'--state-file'"]),
        (&["event", "tik"], &["tik", "tip:", "'tick'"]),
    ];
    for (args, said) in rows {
        let output = run(args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("daemon-state: "), "{args:?}: {stderr}");
        for word in *said {
            assert!(stderr.contains(word), "{args:?}: {word:?} in {stderr}");
        }
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn an_option_the_command_does_not_use_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("state.json");
    let sim = dir.path().join("sim");
    let drawn = dir.path().join("drawn");
    let rows: &[(&[&str], &str)] = &[
        (&["--now", NOW, "simulate", "--days", "1", "--dir", arg(&sim)], "--now"),
        (&["--tz", "Europe/Paris", "simulate", "--days", "1", "--dir", arg(&sim)], "--tz"),
        (&["--state-file", arg(&file), "simulate", "--dir", arg(&sim)], "--state-file"),
        (&["--lock-timeout", "1", "simulate", "--dir", arg(&sim)], "--lock-timeout"),
        (&["simulate", "--now", NOW, "--dir", arg(&sim)], "--now"),
        (&["--state-file", arg(&file), "diagram", "--out", arg(&drawn)], "--state-file"),
        (&["diagram", "--tz", "UTC", "--out", arg(&drawn)], "--tz"),
        (&["--now", NOW, "--state-file", arg(&file), "check"], "--now"),
        (&["--json", "--state-file", arg(&file), "serve"], "--json"),
        (&["--tz", "UTC", "--state-file", arg(&file), "sessions", "prune"], "--tz"),
        (&["--lock-timeout", "1", "--state-file", arg(&file), "status"], "--lock-timeout"),
        (&["--now", NOW, "completions", "bash"], "--now"),
        (&["man", "--json"], "--json"),
    ];
    for (args, named) in rows {
        let output = run(args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    assert!(!file.exists() && !sim.exists() && !drawn.exists(), "nothing ran");
}

#[test]
fn options_work_before_and_after_the_command_that_uses_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("state.json");
    let file = arg(&file);
    let rows: &[&[&str]] = &[
        &["--state-file", file, "--now", NOW, "event", "boot"],
        &["event", "--state-file", file, "--now", NOW, "tick"],
        &["event", "tick", "--state-file", file, "--now", NOW, "--tz", "UTC", "--json"],
        &["--state-file", file, "status", "--now", NOW, "--tz", "Europe/Paris"],
        &["sessions", "open", "s1", "--state-file", file, "--lock-timeout", "0.5"],
        &["--json", "sessions", "--state-file", file, "consume", "s1"],
        &["digest", "take", "--state-file", file],
        &["check", "--state-file", file, "--json"],
    ];
    for args in rows {
        let output = run(args);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", text(&output.stderr));
    }
}

#[test]
fn each_command_help_shows_only_the_options_it_uses() {
    let all = ["--state-file", "--now", "--tz", "--json", "--lock-timeout"];
    let rows: &[(&[&str], &[&str])] = &[
        (&["status"], &["--state-file", "--now", "--tz", "--json"]),
        (&["event", "tick"], &all),
        (&["sessions", "open"], &["--state-file", "--now", "--json", "--lock-timeout"]),
        (&["digest", "take"], &["--state-file", "--now", "--json", "--lock-timeout"]),
        (&["diagram"], &["--json"]),
        (&["simulate"], &["--json"]),
        (&["serve"], &["--state-file", "--now", "--tz", "--lock-timeout"]),
        (&["check"], &["--state-file", "--json"]),
        (&["completions"], &[]),
        (&["man"], &[]),
    ];
    for (args, shown) in rows {
        let output = run(&[*args, &["--help"]].concat());
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        let help = text(&output.stdout);
        for flag in all {
            let listed = help.lines().any(|line| line.trim_start().starts_with(flag));
            assert_eq!(listed, shown.contains(&flag), "{args:?} --help and {flag}:\n{help}");
        }
    }
}

#[test]
fn completions_and_the_manual_page_print_to_stdout() {
    let bash = run(&["completions", "bash"]);
    assert_eq!(bash.status.code(), Some(0), "{}", text(&bash.stderr));
    let script = text(&bash.stdout);
    assert!(script.contains("daemon-state") && script.contains("simulate"), "{script}");
    for shell in ["zsh", "fish"] {
        let output = run(&["completions", shell]);
        assert_eq!(output.status.code(), Some(0), "{shell}");
        assert!(!output.stdout.is_empty(), "{shell}");
    }
    let man = run(&["man"]);
    assert_eq!(man.status.code(), Some(0), "{}", text(&man.stderr));
    let page = text(&man.stdout);
    assert!(page.starts_with(".ie") || page.contains(".TH"), "roff: {page}");
    assert!(page.contains("daemon") && page.contains("simulate"), "{page}");
    assert!(run(&["completions", "tcsh-ish"]).status.code() == Some(2), "an unknown shell");
}

#[test]
fn diagram_out_dash_writes_the_drawing_to_stdout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let in_dir = |args: &[&str]| command().current_dir(dir.path()).args(args).output();
    let dot = in_dir(&["diagram", "--out", "-"]).expect("run");
    assert_eq!(dot.status.code(), Some(0), "{}", text(&dot.stderr));
    assert_eq!(text(&dot.stdout), daemon_state::diagram::to_dot());
    let mmd = in_dir(&["diagram", "--format", "mermaid", "--out", "-"]).expect("run");
    assert_eq!(text(&mmd.stdout), daemon_state::diagram::to_mermaid());
    let json = in_dir(&["diagram", "--out", "-", "--json"]).expect("run");
    assert_eq!(json.status.code(), Some(2), "--json would garble it");
    assert!(!dir.path().join("-").exists(), "no directory named -");
}

/// Runs `args` with a standard output whose reader is gone before the command writes.
fn with_stdout_closed(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    command().args(args).stdout(writer).output().expect("run")
}

#[test]
fn a_closed_stdout_is_a_quiet_success_for_every_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("state.json");
    let file = arg(&file);
    let sim = dir.path().join("sim");
    let rows: &[&[&str]] = &[
        &["--state-file", file, "--now", NOW, "event", "boot"],
        &["--state-file", file, "--now", NOW, "status"],
        &["--state-file", file, "--json", "status"],
        &["--state-file", file, "sessions", "open", "s1"],
        &["--state-file", file, "digest", "take"],
        &["--state-file", file, "check"],
        &["simulate", "--days", "2", "--dir", arg(&sim)],
        &["diagram", "--out", "-"],
        &["completions", "bash"],
        &["man"],
        &["--help"],
        &["simulate", "--help"],
        &["--version"],
    ];
    for args in rows {
        let output = with_stdout_closed(args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

#[test]
fn simulate_piped_into_a_reader_of_one_line_exits_0_silently() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = command()
        .args(["simulate", "--days", "365", "--dir", arg(&dir.path().join("sim"))])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).expect("one line");
    // The reader is dropped here, as `head -1` exits, while the year is still being simulated.
    assert!(first.starts_with("simulating 365 days"), "{first}");
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
}
