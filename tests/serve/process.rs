//! The `serve` command as a process: what it says on stderr, how it refuses to start, how it stops
//! on a signal, and how many clients it takes at once.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_daemon-state");

/// The binary with a clean environment.
fn daemon_state() -> Command {
    let mut command = Command::new(BIN);
    command.env_remove("DAEMON_STATE_FILE").env_remove("DAEMON_STATE_TZ").env_remove("RUST_LOG");
    command
}

/// A temp directory with a state file path in it.
struct Sandbox {
    dir: tempfile::TempDir,
    state: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        Self { dir, state }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The names in the directory, sorted.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// `serve --socket SOCKET ARGS...` on this state file, started.
    fn spawn_socket(&self, socket: &Path, args: &[&str]) -> Child {
        daemon_state()
            .arg("--state-file")
            .arg(&self.state)
            .arg("serve")
            .arg("--socket")
            .arg(socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `serve` on stdio with `input`, to its end.
    fn serve_stdio(&self, input: &str, args: &[&str]) -> Output {
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

/// Waits for `child` to exit on its own; kills it and fails after `limit` (a bound on a broken
/// test only: a server that should refuse to start exits at once).
#[track_caller]
fn exit_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!("{what}: still running after {limit:?}; stderr {}", text(&output.stderr));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
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

#[test]
fn serve_refuses_the_state_file_or_a_file_beside_it_as_its_socket() {
    let names = [
        "state.json",
        "state.json.prev",
        "state.json.lock",
        "state.json.corrupt.20260418T120000.000000Z",
        "state.json.123-4.tmp",
    ];
    for exists in [false, true] {
        let s = Sandbox::new();
        if exists {
            std::fs::write(&s.state, "{}\n").unwrap();
        }
        let link = s.path("link");
        std::os::unix::fs::symlink(s.dir.path(), &link).unwrap();
        let before = s.names();
        let mut sockets: Vec<PathBuf> = names.iter().map(|name| s.path(name)).collect();
        sockets.extend(names.iter().map(|name| link.join(".").join(name)));
        sockets.push(s.dir.path().to_owned());
        for socket in sockets {
            let child = s.spawn_socket(&socket, &[]);
            let output = exit_within(child, Duration::from_secs(10), &socket.to_string_lossy());
            let stderr = text(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{socket:?}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{socket:?}: {stderr}");
            assert!(contains_path(&stderr, &socket), "names the socket: {stderr}");
            assert!(stderr.contains("state file"), "{stderr}");
            assert_eq!(s.names(), before, "{socket:?}: touched nothing");
        }
    }
}

#[test]
fn serve_refuses_a_socket_whose_lock_file_would_be_the_state_file() {
    let s = Sandbox::new();
    let state = s.path("daemon.lock");
    let child = daemon_state()
        .arg("--state-file")
        .arg(&state)
        .args(["serve", "--socket"])
        .arg(s.path("daemon"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = exit_within(child, Duration::from_secs(10), "serve --socket daemon");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(s.names().is_empty(), "touched nothing: {:?}", s.names());
}

#[test]
fn a_socket_beside_the_state_file_with_another_name_is_fine() {
    let s = Sandbox::new();
    let socket = s.path("state.json.sock");
    let mut child = s.spawn_socket(&socket, &[]);
    let start = Instant::now();
    while UnixStream::connect(&socket).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "serve stopped");
        assert!(start.elapsed() < Duration::from_secs(10), "serve never listened");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn of_servers_started_at_once_on_one_socket_exactly_one_stays() {
    const SERVERS: usize = 8;
    for round in 0..20 {
        let s = Sandbox::new();
        let socket = s.path("daemon.sock");
        let mut children: Vec<Option<Child>> =
            (0..SERVERS).map(|_| Some(s.spawn_socket(&socket, &[]))).collect();
        let mut refused = Vec::new();
        let start = Instant::now();
        while refused.len() < SERVERS - 1 {
            for slot in &mut children {
                if slot.as_mut().is_some_and(|child| child.try_wait().unwrap().is_some()) {
                    refused.push(slot.take().unwrap().wait_with_output().unwrap());
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "round {round}: {} of {SERVERS} servers still running",
                SERVERS - refused.len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        for output in &refused {
            let stderr = text(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "round {round}: {stderr}");
            assert!(stderr.contains("in use"), "round {round}: {stderr}");
            assert!(contains_path(&stderr, &socket), "round {round}: names the socket: {stderr}");
        }
        let mut winner = children.into_iter().flatten().next().expect("one server left");
        let mut client = UnixStream::connect(&socket).expect("the winner listens");
        client.write_all(b"{\"type\":\"status\"}\n").unwrap();
        let mut reply = String::new();
        BufReader::new(&client).read_line(&mut reply).unwrap();
        assert!(reply.contains("\"ok\":true"), "round {round}: {reply}");
        assert!(winner.try_wait().unwrap().is_none(), "round {round}: the winner stays");
        winner.kill().unwrap();
        winner.wait().unwrap();
    }
}
