//! The `serve` command as a process: what it says on stderr, how it refuses to start, how it stops
//! on a signal, and how many clients it takes at once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_daemon-state");

/// The binary with a clean environment.
fn daemon_state() -> Command {
    let mut command = Command::new(BIN);
    command.env_remove("DAEMON_STATE_FILE").env_remove("DAEMON_STATE_TZ").env_remove("RUST_LOG");
    command
}

/// A temp directory with a state file path in it.
struct Sandbox {
    _dir: tempfile::TempDir,
    state: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        Self { _dir: dir, state }
    }

    /// `serve` on stdio with `input`, to its end.
    fn serve_stdio(&self, input: &str, args: &[&str]) -> Output {
        use std::io::Write;
        let mut child = daemon_state()
            .arg("--state-file")
            .arg(&self.state)
            .arg("serve")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn contains_path(text: &str, path: &Path) -> bool {
    text.contains(&*path.to_string_lossy())
}

#[test]
fn serve_says_so_when_it_quarantines_a_corrupt_file() {
    let s = Sandbox::new();
    std::fs::write(&s.state, b"{\"fsm_state\": \"SLEEP\", \"trunc").unwrap();
    let output = s.serve_stdio("{\"type\":\"status\"}\n", &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(text(&output.stdout).contains("\"ok\":true"), "still serves");
    assert!(!stderr.is_empty(), "the quarantine is reported");
    assert!(stderr.starts_with("daemon-state: warning: "), "{stderr}");
    assert!(contains_path(&stderr, &s.state), "names the state file: {stderr}");
    assert!(stderr.contains("corrupt"), "{stderr}");
}

#[test]
fn rust_log_refines_what_is_printed() {
    let s = Sandbox::new();
    std::fs::write(&s.state, b"not json").unwrap();
    let mut child = daemon_state()
        .env("RUST_LOG", "off")
        .arg("--state-file")
        .arg(&s.state)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(child.status.code(), Some(0));
    assert!(child.stderr.is_empty(), "RUST_LOG=off silences warnings: {}", text(&child.stderr));
    child = daemon_state().arg("--state-file").arg(&s.state).arg("status").output().unwrap();
    assert!(child.stderr.is_empty(), "the file was quarantined once: {}", text(&child.stderr));
}
