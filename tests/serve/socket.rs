//! The `serve` protocol over a real Unix socket in a temp directory: the socket file itself (mode,
//! stale and live files), several clients at once, bad lines and clients that go away mid-line.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use daemon_state::engine::Engine;
use daemon_state::serve::{self, ServeOptions, Server, SocketError, SocketListener};
use daemon_state::timestamp;
use serde_json::{Value, json};

/// A server on a socket, serving on a thread of its own for the rest of the test process.
struct Daemon {
    dir: tempfile::TempDir,
    socket: PathBuf,
    state: PathBuf,
}

impl Daemon {
    fn start(state: Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".daemon-state.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
        let socket = dir.path().join("daemon.sock");
        serve_on(&socket, &path);
        Self { dir, socket, state: path }
    }

    fn connect(&self) -> Client {
        Client::connect(&self.socket)
    }

    fn disk(&self) -> Value {
        serde_json::from_slice(&std::fs::read(&self.state).unwrap()).unwrap()
    }
}

/// Binds `socket` and serves the engine on `state` from a background thread.
fn serve_on(socket: &Path, state: &Path) {
    let listener = SocketListener::bind(socket).unwrap();
    let (engine, _) = Engine::open(state).unwrap();
    let now = timestamp::parse("2026-04-18T12:30:00Z").unwrap();
    let server = Arc::new(Server::new(engine, move || now));
    std::thread::spawn(move || server.serve_socket(&listener));
}

struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    fn connect(path: &Path) -> Self {
        let stream = UnixStream::connect(path).unwrap();
        // Only a bound on a broken test: every reply comes at once.
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Self { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    fn reply(&mut self) -> Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.ends_with('\n'), "{line:?}");
        serde_json::from_str(&line).unwrap()
    }

    fn ask(&mut self, request: &str) -> Value {
        self.send(format!("{request}\n").as_bytes());
        self.reply()
    }
}

/// Sends `request` on `client` and compares the whole reply.
#[track_caller]
fn check(client: &mut Client, request: &str, expected: Value) {
    assert_eq!(client.ask(request), expected, "request {request}");
}

#[test]
fn the_socket_file_has_mode_0600() {
    let daemon = Daemon::start(json!({"fsm_state": "WAKE"}));
    let mode = std::fs::symlink_metadata(&daemon.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let names: Vec<_> =
        std::fs::read_dir(daemon.dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(
        !names.iter().any(|n| n.to_string_lossy().starts_with(".sock")),
        "no staging left: {names:?}"
    );
}

#[test]
fn a_path_too_long_to_stage_beside_is_bound_in_place_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    // A socket address holds 107 bytes: this name fits, a staging name beside it would not.
    let room = 107 - dir.path().as_os_str().len() - "/".len() - "/s.sock".len();
    let deep = dir.path().join("d".repeat(room));
    std::fs::create_dir(&deep).unwrap();
    let socket = deep.join("s.sock");
    assert_eq!(socket.as_os_str().len(), 107);
    let listener = SocketListener::bind(&socket).unwrap();
    let mode = std::fs::symlink_metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    drop(listener);
    assert_eq!(std::fs::read_dir(&deep).unwrap().count(), 0, "nothing left beside it");
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("daemon.sock");
    drop(UnixListener::bind(&socket).unwrap());
    assert!(socket.exists(), "a stale socket file: nothing listens");
    serve_on(&socket, &dir.path().join("state.json"));
    let mut client = Client::connect(&socket);
    assert_eq!(client.ask(r#"{"type": "status"}"#)["ok"], json!(true));
}

#[test]
fn a_live_socket_or_another_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("daemon.sock");
    let _live = UnixListener::bind(&socket).unwrap();
    let error = SocketListener::bind(&socket).unwrap_err();
    assert!(matches!(error, SocketError::InUse { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("socket {} is in use by another server", socket.display())
    );
    assert!(socket.exists(), "the live socket is left alone");

    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "keep me").unwrap();
    let error = SocketListener::bind(&file).unwrap_err();
    assert!(matches!(error, SocketError::NotASocket { .. }), "{error:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

#[test]
fn run_refuses_a_live_socket_and_an_unknown_zone_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("daemon.sock");
    let _live = UnixListener::bind(&socket).unwrap();
    let state_file = dir.path().join("state.json");
    let options = |tz: &str| ServeOptions {
        state_file: state_file.clone(),
        socket: Some(socket.clone()),
        now: None,
        tz: Some(tz.into()),
        lock_wait: Default::default(),
        max_connections: serve::DEFAULT_MAX_CONNECTIONS,
    };
    let error = serve::run(&options("Europe/Paris")).unwrap_err();
    assert!(error.to_string().contains("in use by another server"), "{error}");
    let error = serve::run(&options("Mars/Olympus_Mons")).unwrap_err();
    assert!(error.to_string().contains("unknown time zone \"Mars/Olympus_Mons\""), "{error}");
    assert!(!state_file.exists(), "nothing was written");
}

#[test]
fn dropping_the_listener_removes_its_socket_file() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("daemon.sock");
    drop(SocketListener::bind(&socket).unwrap());
    assert!(!socket.exists());
}

// acceptance 12.10 dispatcher 1, 2 and 5 over the socket
#[test]
fn control_messages_over_the_socket() {
    let daemon = Daemon::start(
        json!({"fsm_state": "WAKE", "daemon_started_at": "2026-04-18T00:00:00+00:00"}),
    );
    let mut client = daemon.connect();
    let status = client.ask(r#"{"type": "status"}"#);
    assert_eq!(
        (&status["ok"], &status["state"], &status["uptime_sec"]),
        (&json!(true), &json!("WAKE"), &json!(45000.0))
    );
    check(
        &mut client,
        r#"{"type": "user_initiated_sleep", "reason": "I am going to bed", "ts": "2026-04-18T23:00:00+00:00"}"#,
        json!({"ok": true, "state": "TRANSITIONING"}),
    );
    check(&mut client, r#"{"type": "pause"}"#, json!({"ok": true, "paused": true}));
    check(&mut client, r#"{"type": "resume"}"#, json!({"ok": true, "paused": false}));
    let disk = daemon.disk();
    assert_eq!(disk["user_sleep_request"]["pending"], json!(true));
    assert_eq!((&disk["fsm_state"], &disk["scheduler_paused"]), (&json!("WAKE"), &json!(false)));
}

// acceptance 12.10 session_open 1 over the socket
#[test]
fn session_open_over_the_socket() {
    let daemon = Daemon::start(json!({"fsm_state": "WAKE"}));
    check(
        &mut daemon.connect(),
        r#"{"type": "session_open", "session_id": "sess-abc", "ts": "2026-04-19T12:00:00Z"}"#,
        json!({"ok": true, "reason": "session_open_queued"}),
    );
    let disk = daemon.disk();
    assert!(
        disk["first_turn_pending"]["sess-abc"]
            .as_str()
            .is_some_and(|t| timestamp::parse(t).is_some())
    );
    assert_eq!(disk["hippea_cascade_request"]["pending"], json!(true));
    assert_eq!(disk["last_session_open"]["session_id"], json!("sess-abc"));
}

// acceptance 12.10 dispatcher 9: two clients at once
#[test]
fn two_concurrent_clients_are_both_served() {
    let daemon = Daemon::start(json!({"fsm_state": "WAKE"}));
    let barrier = Barrier::new(2);
    let requests = [
        (
            r#"{"type": "force_rem", "ts": "2026-04-18T10:00:00+00:00"}"#,
            json!({"ok": true, "reason": "rem_queued"}),
        ),
        (r#"{"type": "pause"}"#, json!({"ok": true, "paused": true})),
    ];
    std::thread::scope(|scope| {
        for (request, expected) in &requests {
            let (daemon, barrier) = (&daemon, &barrier);
            scope.spawn(move || {
                let mut client = daemon.connect();
                barrier.wait();
                check(&mut client, request, expected.clone());
                // Each connection stays usable for more requests.
                assert_eq!(client.ask(r#"{"type": "status"}"#)["ok"], json!(true));
            });
        }
    });
    let disk = daemon.disk();
    assert_eq!(disk["force_rem_request"]["pending"], json!(true));
    assert_eq!(disk["scheduler_paused"], json!(true));
}

#[test]
fn a_bad_line_gets_an_error_and_the_connection_stays_open() {
    let daemon = Daemon::start(json!({"fsm_state": "WAKE"}));
    let mut client = daemon.connect();
    client.send(b"not json\n\xff\xfe\n");
    assert_eq!(client.reply()["reason"], json!("invalid_message"));
    assert_eq!(client.reply()["error"], json!("line is not UTF-8 (byte 0)"));
    check(
        &mut client,
        r#"{"type": "nuke_from_orbit"}"#,
        json!({"ok": false, "reason": "unknown_message_type", "type": "nuke_from_orbit"}),
    );
    let huge = format!("{{\"type\": \"pause\", \"pad\": \"{}\"}}\n", "x".repeat(2 << 20));
    client.send(huge.as_bytes());
    assert_eq!(
        client.reply()["error"],
        json!(format!("line is longer than {} bytes", serve::MAX_LINE_BYTES))
    );
    check(&mut client, r#"{"type": "resume"}"#, json!({"ok": true, "paused": false}));
}

#[test]
fn a_client_that_disconnects_mid_line_is_harmless() {
    let daemon = Daemon::start(json!({"fsm_state": "WAKE"}));
    let before = daemon.disk();
    for cut in [&b"{\"type\": \"pau"[..], &b"{\"type\": \"pause\", \"pad\": \"xx"[..]] {
        let mut client = daemon.connect();
        client.send(cut);
        drop(client);
    }
    let mut client = daemon.connect();
    client.send(&vec![b'x'; 3 << 20]);
    client.writer.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(client.reply()["reason"], json!("invalid_message"), "the over-long tail is refused");
    drop(client);
    let mut client = daemon.connect();
    assert_eq!(client.ask(r#"{"type": "status"}"#)["scheduler_paused"], json!(false));
    assert_eq!(daemon.disk(), before, "nothing was written");
}

#[test]
fn engine_messages_over_the_socket() {
    let daemon = Daemon::start(json!({"fsm_state": "WAKE"}));
    let mut client = daemon.connect();
    check(
        &mut client,
        r#"{"type": "force_rem", "ts": "2026-04-18T12:00:00Z"}"#,
        json!({"ok": true, "reason": "rem_queued"}),
    );
    let tick = client.ask(r#"{"type": "tick", "ts": "2026-04-18T12:30:00Z"}"#);
    assert_eq!(tick["state"], json!("TRANSITIONING"), "{tick}");
    assert_eq!(tick["effects"], json!([{"effect": "acquire_lock"}]));
    let acquired = client.ask(r#"{"type": "lock_acquired", "ts": "2026-04-18T12:30:01Z"}"#);
    assert_eq!(
        acquired["effects"],
        json!([{"effect": "run_rem_cycle", "cycle": 1, "of": 1, "is_last": true}])
    );
    let finished = client.ask(r#"{"type": "rem_cycle_finished", "ts": "2026-04-18T12:40:00Z", "result": {"summaries_created": 2}}"#);
    assert_eq!(
        (&finished["state"], &finished["effects"]),
        (&json!("WAKE"), &json!([{"effect": "release_lock"}]))
    );
    assert_eq!(daemon.disk()["pending_digest"]["episodes_processed"], json!(2));
}
