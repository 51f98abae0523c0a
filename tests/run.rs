//! `run` end to end: the built binary on a temporary state file, socket, lock file and events
//! file, with small shell scripts as the REM command.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_daemon-state");

/// A REM command that notes its cycle in `marker` and prints a result.
const WRITES_A_RESULT: &str = r#"#!/bin/sh
echo "$DAEMON_STATE_CYCLE $DAEMON_STATE_CYCLES $DAEMON_STATE_IS_LAST" >> "$MARKER"
echo '{"summaries_created": 3, "schema_candidates": 2, "claude_call_used": true, "main_insight_text": "links"}'
"#;

/// A REM command that notes its pid in `marker` and then sleeps far longer than any test.
const SLEEPS: &str = r#"#!/bin/sh
echo $$ > "$MARKER"
exec sleep 600
"#;

/// A `run` in a private temporary directory; killed when dropped, if still running.
struct Daemon {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Daemon {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `run` with `script` as the REM command and `extra` arguments; waits for its socket.
    fn start(script: &str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
        let rem = dir.path().join("rem.sh");
        fs::write(&rem, script).expect("write the REM command");
        fs::set_permissions(&rem, fs::Permissions::from_mode(0o700)).expect("chmod");
        let mut daemon = Self { dir, child: None };
        let mut command = daemon.command("sock", extra);
        command.stderr(File::create(daemon.path("stderr")).expect("stderr file"));
        let child = command.spawn().expect("start run");
        daemon.child = Some(child);
        daemon.wait_for_socket();
        daemon
    }

    fn command(&self, socket: &str, extra: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .env_remove("DAEMON_STATE_FILE")
            .env_remove("DAEMON_STATE_TZ")
            .env_remove("RUST_LOG")
            .env("MARKER", self.path("marker"))
            .arg("run")
            .arg("--state-file")
            .arg(self.path("state.json"))
            .arg("--socket")
            .arg(self.path(socket))
            .arg("--lock-file")
            .arg(self.path("lock"))
            .arg("--events")
            .arg(self.path("events"))
            .arg("--rem-command")
            .arg(self.path("rem.sh"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        command
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn wait_for_socket(&mut self) {
        let give_up = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(self.path("sock")).is_err() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().expect("wait")) {
                panic!("run exited {status}: {}", self.stderr());
            }
            assert!(Instant::now() < give_up, "no socket: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends one message on a connection of its own and returns the reply.
    fn send(&self, message: Value) -> Value {
        let stream = UnixStream::connect(self.path("sock")).expect("connect");
        (&stream).write_all(format!("{message}\n").as_bytes()).expect("send");
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).expect("reply");
        serde_json::from_str(&line).expect("a JSON reply")
    }

    fn status(&self) -> Value {
        self.send(serde_json::json!({"type": "status"}))
    }

    /// Polls `status` until `done` holds of it (10 s at most); returns it.
    fn wait_for(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            let status = self.status();
            if done(&status) {
                return status;
            }
            assert!(Instant::now() < give_up, "{what}: {status}\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.path("stderr")).unwrap_or_default()
    }

    fn events(&self) -> Vec<Value> {
        let text = fs::read_to_string(self.path("events")).unwrap_or_default();
        text.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
    }

    fn state_file(&self) -> Value {
        serde_json::from_slice(&fs::read(self.path("state.json")).expect("state file"))
            .expect("JSON")
    }

    /// Sends SIGTERM and waits for the exit: its status and how long it took.
    fn terminate(&mut self) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("running");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        let sent = Instant::now();
        kill(pid, Signal::SIGTERM).expect("SIGTERM");
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return (status, sent.elapsed());
            }
            if sent.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("run did not stop on SIGTERM: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether another process could take the lock on `path` now.
fn lock_is_free(path: &Path) -> bool {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("open");
    file.try_lock().is_ok()
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet: it runs nothing).
fn gone(pid: &str) -> bool {
    match fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// Waits (10 s at most) for the REM command to write its marker; returns the marker's text.
fn wait_for_marker(daemon: &Daemon) -> String {
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = fs::read_to_string(daemon.path("marker"))
            && text.ends_with('\n')
        {
            return text;
        }
        assert!(Instant::now() < give_up, "no REM cycle started: {}", daemon.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn force_rem_runs_exactly_one_cycle_under_the_lock_and_folds_its_result() {
    let mut daemon = Daemon::start(WRITES_A_RESULT, &[]);
    let reply = daemon.send(serde_json::json!({"type": "force_rem", "ts": "now"}));
    assert_eq!(reply["reason"], "rem_queued", "{reply}");
    let status = daemon.wait_for("the night is over", |status| {
        status["state"] == "WAKE" && status["pending_digest"]["rem_cycles_completed"] == 1
    });
    let digest = &status["pending_digest"];
    assert_eq!(digest["episodes_processed"], 3, "{status}");
    assert_eq!(digest["schemas_induced_tier0"], 2, "{status}");
    assert_eq!(digest["claude_call_used"], true, "{status}");
    assert_eq!(fs::read_to_string(daemon.path("marker")).unwrap(), "1 1 true\n", "one cycle");
    assert!(lock_is_free(&daemon.path("lock")), "the lock is released");
    let stored = daemon.state_file();
    assert_eq!(stored["pending_digest"]["main_insight_text"], "links", "{stored}");
    let stderr = daemon.stderr();
    for line in ["(force_rem_request)", "(lock_acquired)", "(cycles_done)", "released"] {
        assert!(stderr.contains(line), "{line}: {stderr}");
    }
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn a_lock_held_elsewhere_is_denied_and_the_night_yields() {
    let mut daemon = Daemon::start(WRITES_A_RESULT, &[]);
    let holder = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(daemon.path("lock"))
        .expect("open the lock file");
    holder.try_lock().expect("hold the lock");
    daemon.send(serde_json::json!({"type": "force_rem", "ts": "now"}));
    let give_up = Instant::now() + Duration::from_secs(10);
    let yielded = loop {
        let events = daemon.events();
        if let Some(event) = events.iter().find(|event| event["kind"] == "daemon_yielded") {
            break event.clone();
        }
        assert!(Instant::now() < give_up, "no daemon_yielded: {events:?}\n{}", daemon.stderr());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(yielded["payload"]["completed_cycles"], 0, "{yielded}");
    assert_eq!(yielded["severity"], "info", "{yielded}");
    assert!(yielded["at"].as_str().is_some_and(|at| at.ends_with("+00:00")), "{yielded}");
    assert_eq!(daemon.status()["state"], "WAKE");
    assert!(daemon.stderr().contains("(lock_denied)"), "{}", daemon.stderr());
    assert!(!daemon.path("marker").exists(), "no cycle ran");
    drop(holder);
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn a_cycle_past_its_timeout_is_killed_and_finishes_timed_out() {
    let mut daemon = Daemon::start(SLEEPS, &["--cycle-timeout", "1"]);
    daemon.send(serde_json::json!({"type": "force_rem", "ts": "now"}));
    let pid = wait_for_marker(&daemon);
    daemon.wait_for("the timed-out cycle ends the night", |status| {
        status["state"] == "WAKE" && status["pending_digest"]["rem_cycles_completed"] == 1
    });
    assert!(gone(&pid), "the REM command {pid} is gone");
    assert!(lock_is_free(&daemon.path("lock")), "the lock is released");
    assert_eq!(daemon.state_file()["pending_digest"]["timed_out_cycles"], 1);
    assert!(daemon.stderr().contains("timed out"), "{}", daemon.stderr());
    let (status, _) = daemon.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn sigterm_during_a_cycle_stops_cleanly_within_two_seconds() {
    let mut daemon = Daemon::start(SLEEPS, &[]);
    daemon.send(serde_json::json!({"type": "force_rem", "ts": "now"}));
    let pid = wait_for_marker(&daemon);
    daemon.wait_for("dreaming", |status| status["state"] == "DREAMING");
    assert!(!lock_is_free(&daemon.path("lock")), "held during the cycle");
    let (status, took) = daemon.terminate();
    assert_eq!(status.code(), Some(0), "{}", daemon.stderr());
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(gone(&pid), "the REM command {pid} is gone");
    assert!(lock_is_free(&daemon.path("lock")), "the lock is released");
    let stored = daemon.state_file();
    assert_eq!(stored["fsm_state"], "WAKE", "{stored}");
    assert_eq!(stored["pending_digest"]["timed_out_cycles"], 1, "{stored}");
    assert!(!daemon.path("sock").exists(), "the socket is removed");
    assert!(!daemon.path("sock.lock").exists(), "the socket's lock file is removed");
}

#[test]
fn a_second_run_on_the_same_state_file_refuses_to_start() {
    let daemon = Daemon::start(WRITES_A_RESULT, &[]);
    // Another socket, the same state file.
    let output = daemon
        .command("other.sock", &[])
        .stderr(Stdio::piped())
        .output()
        .expect("run a second time");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    assert!(!daemon.path("other.sock").exists());
    assert_eq!(daemon.status()["ok"], true, "the first one still serves");
}

/// utime + stime of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command's closing parenthesis, from field 3 (the state).
    let rest = stat.rsplit_once(") ").expect("stat").1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields[14 - 3].parse().expect("utime");
    let stime: u64 = fields[15 - 3].parse().expect("stime");
    utime + stime
}

fn clock_ticks_per_second() -> u64 {
    let output = Command::new("getconf").arg("CLK_TCK").output();
    output
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

fn file_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Ok(mut file) = File::open(path) {
        file.read_to_end(&mut bytes).expect("read");
    }
    bytes
}

#[test]
fn an_idle_run_uses_under_10_ms_of_cpu_in_10_s_and_writes_nothing() {
    let daemon = Daemon::start(WRITES_A_RESULT, &[]);
    // Past the start (boot, the first tick, the first relearn): nothing is due for hours now.
    daemon.wait_for("booted and ticked", |status| !status["last_tick_at"].is_null());
    let next = daemon.status()["next_deadline"].as_str().expect("a deadline").to_owned();
    std::thread::sleep(Duration::from_secs(1));
    let state = file_bytes(&daemon.path("state.json"));
    let journal = file_bytes(&daemon.path("state.json.journal"));
    let before = cpu_ticks(daemon.pid());
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let used = cpu_ticks(daemon.pid()) - before;
    let elapsed = started.elapsed();
    let per_second = clock_ticks_per_second();
    let used_ms = used * 1000 / per_second;
    eprintln!(
        "idle run: {used} clock ticks ({used_ms} ms at {per_second} Hz) of CPU in {elapsed:?}; \
         next deadline {next}"
    );
    assert!(used * 1000 < 10 * per_second, "{used} ticks: {used_ms} ms");
    assert_eq!(file_bytes(&daemon.path("state.json")), state, "no write of the state file");
    assert_eq!(file_bytes(&daemon.path("state.json.journal")), journal, "no journal line");
}

#[test]
fn run_takes_only_the_options_it_uses() {
    let output = Command::new(BIN).args(["run", "--help"]).output().expect("run --help");
    let help = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{help}");
    for flag in ["--state-file", "--tz", "--lock-timeout", "--socket", "--rem-command"] {
        assert!(help.lines().any(|line| line.trim_start().starts_with(flag)), "{flag}: {help}");
    }
    for flag in ["--now", "--json"] {
        assert!(!help.lines().any(|line| line.trim_start().starts_with(flag)), "{flag}: {help}");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state.json");
    let state = state.to_str().expect("UTF-8");
    for args in [
        &["run", "--state-file", state, "--rem-command", "true", "--json"][..],
        &["--now", "2026-04-18T12:00:00Z", "run", "--state-file", state, "--rem-command", "true"],
        &["run", "--state-file", state, "--rem-command", "true", "--cycle-timeout", "0"],
        &["run", "--state-file", state],
    ] {
        let output = Command::new(BIN).args(args).stdin(Stdio::null()).output().expect("run");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
    assert!(!dir.path().join("state.json").exists(), "nothing was created");
}
