//! The `serve` command as a process: what it says on stderr, how it refuses to start, how it stops
//! on a signal, and how many clients it takes at once.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

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
        .args(["event", "tick"])
        .output()
        .unwrap();
    assert_eq!(child.status.code(), Some(0));
    assert!(child.stderr.is_empty(), "RUST_LOG=off silences warnings: {}", text(&child.stderr));
    child =
        daemon_state().arg("--state-file").arg(&s.state).args(["event", "tick"]).output().unwrap();
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

/// Sends `signal` to `child`.
fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a pid we spawned and a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {pid}");
}

/// Waits until `socket` accepts connections from `child`.
#[track_caller]
fn wait_for_socket(child: &mut Child, socket: &Path) {
    let start = Instant::now();
    while UnixStream::connect(socket).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "serve stopped");
        assert!(start.elapsed() < Duration::from_secs(10), "serve never listened");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The lines a child writes on stderr, collected as they come.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn watch(child: &mut Child) -> Self {
        let lines = Self::default();
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                sink.0.lock().unwrap().push(line.unwrap_or_default());
            }
        });
        lines
    }

    fn any(&self, what: impl Fn(&str) -> bool) -> bool {
        self.0.lock().unwrap().iter().any(|line| what(line))
    }

    /// Waits (a bound on a broken test only) until a line says `what`.
    #[track_caller]
    fn wait_for(&self, what: &str) {
        let start = Instant::now();
        while !self.any(|line| line.contains(what)) {
            assert!(start.elapsed() < Duration::from_secs(20), "no {what:?} in {:?}", self.0);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A client of the socket.
struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    fn connect(socket: &Path) -> Self {
        let stream = UnixStream::connect(socket).unwrap();
        // Only a bound on a broken test: every reply comes at once.
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Self { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream }
    }

    fn send(&mut self, request: &str) -> std::io::Result<()> {
        self.writer.write_all(format!("{request}\n").as_bytes())
    }

    /// The next reply line, or `None` once the server closed the connection.
    fn reply(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap()),
        }
    }
}

/// Holds the state file's cross-process lock from this test process: the flock on `NAME.lock`
/// and the one on the state directory, whichever the store takes.
fn hold_state_lock(s: &Sandbox) -> (File, File) {
    let name = format!("{}.lock", s.state.file_name().unwrap().to_string_lossy());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(s.path(&name))
        .unwrap();
    file.lock().unwrap();
    let dir = File::open(s.dir.path()).unwrap();
    dir.lock().unwrap();
    (file, dir)
}

/// Whether process `pid` waits for a flock (a `->` line of /proc/locks).
fn waits_for_a_lock(pid: u32) -> bool {
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    locks.lines().any(|line| {
        let mut words = line.split_whitespace().skip(1);
        words.next() == Some("->") && words.nth(3) == Some(&*pid.to_string())
    })
}

/// After a clean stop: exit 0, no socket, no socket lock, no temp file.
#[track_caller]
fn assert_stopped_cleanly(
    s: &Sandbox,
    child: Child,
    socket: Option<&Path>,
    lines: &Lines,
    what: &str,
) {
    let output = exit_within(child, Duration::from_secs(20), what);
    assert_eq!(output.status.code(), Some(0), "{what}: {:?}", lines.0);
    if let Some(socket) = socket {
        assert!(!socket.exists(), "{what}: the socket is removed");
        let lock = format!("{}.lock", socket.display());
        assert!(!Path::new(&lock).exists(), "{what}: the socket's lock file is removed");
    }
    let names = s.names();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{what}: a temp file is left: {names:?}");
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_removes_the_socket() {
    let s = Sandbox::new();
    let socket = s.path("daemon.sock");
    let mut child = daemon_state()
        .env("RUST_LOG", "daemon_state=info")
        .arg("--state-file")
        .arg(&s.state)
        .args(["--now", "2026-04-18T12:00:00Z", "serve", "--socket"])
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::watch(&mut child);
    wait_for_socket(&mut child, &socket);
    let held = hold_state_lock(&s);
    let mut client = Client::connect(&socket);
    client
        .send(r#"{"type":"session_open","session_id":"s1","ts":"2026-04-18T12:00:00Z"}"#)
        .unwrap();
    let start = Instant::now();
    while !waits_for_a_lock(child.id()) && !lines.any(|line| line.contains("wait")) {
        assert!(start.elapsed() < Duration::from_secs(20), "the request never waited for the lock");
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(&child, libc::SIGTERM);
    lines.wait_for("stopping");
    drop(held);
    assert_eq!(client.reply(), Some(json!({"ok": true, "reason": "session_open_queued"})));
    assert_stopped_cleanly(&s, child, Some(&socket), &lines, "SIGTERM");
    let state: Value = serde_json::from_slice(&std::fs::read(&s.state).unwrap()).unwrap();
    assert_eq!(state["last_session_open"]["session_id"], "s1", "the request in flight was saved");
}

#[test]
fn sigint_and_sighup_stop_serve_cleanly_too_on_a_socket_and_on_stdio() {
    for (number, name) in
        [(libc::SIGINT, "SIGINT"), (libc::SIGHUP, "SIGHUP"), (libc::SIGTERM, "SIGTERM")]
    {
        let s = Sandbox::new();
        let socket = s.path("daemon.sock");
        let mut child = s.spawn_socket(&socket, &[]);
        let lines = Lines::watch(&mut child);
        wait_for_socket(&mut child, &socket);
        signal(&child, number);
        assert_stopped_cleanly(&s, child, Some(&socket), &lines, name);

        let mut child = daemon_state()
            .arg("--state-file")
            .arg(&s.state)
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Lines::watch(&mut child);
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"{\"type\":\"status\"}\n").unwrap();
        let mut reply = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut reply).unwrap();
        assert!(reply.contains("\"ok\":true"), "{reply}");
        signal(&child, number);
        assert_stopped_cleanly(&s, child, None, &lines, &format!("{name} on stdio"));
        drop(stdin);
    }
}

#[test]
fn no_temp_file_is_left_after_sigterm_under_a_stream_of_writes() {
    let s = Sandbox::new();
    let socket = s.path("daemon.sock");
    let mut child = s.spawn_socket(&socket, &[]);
    let lines = Lines::watch(&mut child);
    wait_for_socket(&mut child, &socket);
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..3)
        .map(|writer| {
            let (socket, acknowledged) = (socket.clone(), Arc::clone(&acknowledged));
            std::thread::spawn(move || {
                let mut client = Client::connect(&socket);
                let mut last = None;
                for n in 0.. {
                    let id = format!("w{writer}-{n}");
                    let request =
                        format!(r#"{{"type":"session_open","session_id":"{id}","ts":"t"}}"#);
                    if client.send(&request).is_err() || client.reply().is_none() {
                        return last;
                    }
                    acknowledged.fetch_add(1, Ordering::SeqCst);
                    last = Some(id);
                }
                last
            })
        })
        .collect();
    while acknowledged.load(Ordering::SeqCst) < 60 {
        std::thread::sleep(Duration::from_millis(1));
    }
    signal(&child, libc::SIGTERM);
    assert_stopped_cleanly(&s, child, Some(&socket), &lines, "SIGTERM under writes");
    let last: Vec<String> = writers.into_iter().filter_map(|w| w.join().unwrap()).collect();
    let state: Value = serde_json::from_slice(&std::fs::read(&s.state).unwrap()).unwrap();
    let saved = state["last_session_open"]["session_id"].as_str().unwrap().to_owned();
    assert!(last.contains(&saved), "the last save {saved} was acknowledged: {last:?}");
}

#[test]
fn connections_beyond_the_cap_get_one_error_line_and_are_closed() {
    let s = Sandbox::new();
    let socket = s.path("daemon.sock");
    let mut child = s.spawn_socket(&socket, &["--max-connections", "2"]);
    let lines = Lines::watch(&mut child);
    wait_for_socket(&mut child, &socket);
    let status = r#"{"type":"status"}"#;
    let mut served: Vec<Client> = Vec::new();
    // The probes of wait_for_socket may still hold slots for a moment: fill the cap with clients
    // that are answered.
    while served.len() < 2 {
        let mut client = Client::connect(&socket);
        let _ = client.send(status);
        match client.reply() {
            Some(reply) if reply["ok"] == json!(true) => served.push(client),
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    let mut extra = Client::connect(&socket);
    let refusal = extra.reply().expect("one reply line");
    assert_eq!(refusal["ok"], json!(false), "{refusal}");
    assert_eq!(refusal["reason"], json!("too_many_connections"), "{refusal}");
    assert_eq!(extra.reply(), None, "then the connection is closed");
    for client in &mut served {
        client.send(status).unwrap();
        assert_eq!(client.reply().unwrap()["ok"], json!(true), "the served ones still are");
    }
    drop(served.pop());
    let start = Instant::now();
    loop {
        let mut client = Client::connect(&socket);
        let _ = client.send(status);
        if client.reply().is_some_and(|reply| reply["ok"] == json!(true)) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "a freed slot is never given back");
        std::thread::sleep(Duration::from_millis(5));
    }
    lines.wait_for("too many connections");
    signal(&child, libc::SIGTERM);
    assert_stopped_cleanly(&s, child, Some(&socket), &lines, "SIGTERM");
}

#[test]
fn max_connections_must_be_a_positive_count() {
    let s = Sandbox::new();
    for value in ["0", "-1", "many"] {
        let arg = format!("--max-connections={value}");
        let child = s.spawn_socket(&s.path("daemon.sock"), &[&arg]);
        let output = exit_within(child, Duration::from_secs(10), value);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{value}: {stderr}");
        assert!(stderr.contains("--max-connections"), "{value}: {stderr}");
    }
}

#[test]
fn serve_names_the_stream_that_failed() {
    let s = Sandbox::new();
    let unreadable = daemon_state()
        .arg("--state-file")
        .arg(&s.state)
        .arg("serve")
        .stdin(File::open(s.dir.path()).unwrap())
        .output()
        .unwrap();
    let stderr = text(&unreadable.stderr);
    assert_eq!(unreadable.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("daemon-state: serve: cannot read standard input: "), "{stderr}");

    let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
    let mut child = daemon_state()
        .arg("--state-file")
        .arg(&s.state)
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"{\"type\":\"status\"}\n").unwrap();
    let unwritable = exit_within(child, Duration::from_secs(20), "stdout /dev/full");
    let stderr = text(&unwritable.stderr);
    assert_eq!(unwritable.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("daemon-state: serve: cannot write standard output: "), "{stderr}");
}
