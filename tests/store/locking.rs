//! The lock between processes, through the real binary: `serve` and CLI writers racing while an
//! operator deletes files beside the state file, and a lock held by another process.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::state_dir;

const BIN: &str = env!("CARGO_BIN_EXE_daemon-state");
/// Every process runs at this moment, so no first-turn mark ever ages out.
const NOW: &str = "2026-04-18T12:00:00Z";

/// Runs one CLI command on the state file at the fixed moment.
fn cli(path: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--state-file")
        .arg(path)
        .args(["--now", NOW, "--json"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run daemon-state")
}

/// `sessions consume ID`: whether the CLI answered that this was the session's first turn.
fn consume(path: &Path, id: &str) -> bool {
    let output = cli(path, &["sessions", "consume", id]);
    assert!(output.status.success(), "consume {id}: {}", String::from_utf8_lossy(&output.stderr));
    let answer: Value = serde_json::from_slice(&output.stdout).expect("a JSON answer");
    answer == json!({"ok": true, "first_turn": true})
}

/// A `serve --socket` process, stopped when dropped.
struct Server {
    child: Child,
    socket: PathBuf,
}

impl Server {
    fn start(path: &Path, socket: &Path) -> Self {
        let child = Command::new(BIN)
            .arg("--state-file")
            .arg(path)
            .args(["--now", NOW, "serve", "--socket"])
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start serve");
        let server = Self { child, socket: socket.to_owned() };
        let started = Instant::now();
        while UnixStream::connect(socket).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "serve never listened");
            std::thread::sleep(Duration::from_millis(5));
        }
        server
    }

    fn connect(&self) -> (BufReader<UnixStream>, UnixStream) {
        let stream = UnixStream::connect(&self.socket).expect("connect");
        (BufReader::new(stream.try_clone().expect("clone")), stream)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one request line and reads its one reply.
fn ask(reader: &mut BufReader<UnixStream>, writer: &mut UnixStream, request: &Value) -> Value {
    writer.write_all(format!("{request}\n").as_bytes()).expect("send");
    let mut line = String::new();
    reader.read_line(&mut line).expect("reply");
    serde_json::from_str(&line).expect("a JSON reply")
}

// Defect: deleting `NAME.lock` while `serve` ran made the server and the CLI lock different files,
// so each wrote back a stale copy over the other's acknowledged change. Here `serve` and several
// CLI writers race while another thread deletes `NAME.lock` over and over. Every update is a
// first-turn mark followed by its consumption, each acknowledged by a different process: a lost
// mark makes the consumption answer false, and a lost consumption leaves the mark pending at the
// end. Marks pending at any moment stay far below the 100-entry cap, so the cap hides nothing.
#[test]
fn deleting_the_lock_file_loses_no_update() {
    const WRITERS: usize = 3;
    const ROUNDS: usize = 12;
    const SERVED: usize = 24;
    let (dir, path) = state_dir();
    let server = Server::start(&path, &dir.path().join("serve.sock"));
    let lock_file = dir.path().join(".daemon-state.json.lock");
    let stop = Arc::new(AtomicBool::new(false));
    let deleter = {
        let (stop, lock_file) = (Arc::clone(&stop), lock_file.clone());
        std::thread::spawn(move || {
            let mut deleted = 0;
            while !stop.load(Ordering::Relaxed) {
                if std::fs::remove_file(&lock_file).is_ok() {
                    deleted += 1;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            deleted
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut lost = Vec::new();
                for i in 0..ROUNDS {
                    let id = format!("w{w}-{i}");
                    let output = cli(&path, &["sessions", "open", &id]);
                    assert!(
                        output.status.success(),
                        "open {id}: {}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                    if !consume(&path, &id) {
                        lost.push(id);
                    }
                }
                lost
            })
        })
        .collect();
    let (mut reader, mut writer) = server.connect();
    let mut lost = Vec::new();
    for i in 0..SERVED {
        let id = format!("s-{i}");
        let request = json!({"type": "session_open", "session_id": id, "ts": NOW});
        let reply = ask(&mut reader, &mut writer, &request);
        assert_eq!(reply["ok"], json!(true), "{reply}");
        if !consume(&path, &id) {
            lost.push(id);
        }
    }
    for handle in writers {
        lost.extend(handle.join().expect("writer"));
    }
    stop.store(true, Ordering::Relaxed);
    let deleted = deleter.join().expect("deleter");
    // The server's last word: its status re-reads the file under the lock.
    let status = ask(&mut reader, &mut writer, &json!({"type": "status"}));
    assert_eq!(status["ok"], json!(true), "{status}");
    drop(server);

    let disk: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let pending: Vec<&String> =
        disk["first_turn_pending"].as_object().map(|m| m.keys().collect()).unwrap_or_default();
    eprintln!("lock file deleted {deleted} times; generation {}", disk["generation"]);
    assert_eq!(lost, Vec::<String>::new(), "acknowledged marks lost");
    assert_eq!(pending, Vec::<&String>::new(), "acknowledged consumptions lost");
}

/// The lines of a process's stderr that say it is waiting for the lock.
fn waiting_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|line| line.contains("waiting for the lock")).collect()
}

// Defect: a lock held by another process made commands wait for ever, silently. After a second of
// waiting the CLI says, in one line, which lock it waits for and for which state file; after
// `--lock-timeout` it gives up with exit 2 and a one-line error.
#[test]
fn a_held_lock_is_reported_after_a_second_and_times_out() {
    let (dir, path) = state_dir();
    let holder = daemon_state::store::Store::open(&path).unwrap();
    let lock = holder.lock().unwrap();
    let output = cli(&path, &["--lock-timeout", "2", "sessions", "open", "s1"]);
    drop(lock);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let waiting = waiting_lines(&stderr);
    assert_eq!(waiting.len(), 1, "exactly one waiting line: {stderr}");
    let (dir_text, path_text) = (dir.path().to_string_lossy(), path.to_string_lossy());
    assert!(waiting[0].contains(&*dir_text) && waiting[0].contains(&*path_text), "{stderr}");
    let errors: Vec<&str> =
        stderr.lines().filter(|line| !line.contains("waiting for the lock")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert!(errors[0].contains("gave up after 2 s") && errors[0].contains(&*path_text), "{stderr}");
    assert!(!path.exists(), "nothing written");

    // Once the lock is free the same command goes through without a word.
    let output = cli(&path, &["--lock-timeout", "2", "sessions", "open", "s1"]);
    assert!(output.status.success() && output.stderr.is_empty(), "{output:?}");
}

// `--lock-timeout` takes seconds, fractions allowed; anything else is a usage error naming it.
#[test]
fn a_bad_lock_timeout_is_a_usage_error() {
    let (_dir, path) = state_dir();
    for bad in ["-1", "soon", "NaN", "inf", "1e30"] {
        let output = cli(&path, &["--lock-timeout", bad, "sessions", "open", "s1"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("--lock-timeout"), "{bad}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{bad}: {stderr}");
    }
    let output = cli(&path, &["--lock-timeout", "0.5", "sessions", "open", "s1"]);
    assert!(output.status.success(), "{output:?}");
}

// `serve` requests wait for the lock no longer than `--lock-timeout` either: a request that cannot
// get it is answered with the seed's store-failure reply, and the next one, once the lock is free,
// goes through.
#[test]
fn a_serve_request_on_a_held_lock_fails_after_the_timeout() {
    let (_dir, path) = state_dir();
    let mut child = Command::new(BIN)
        .arg("--state-file")
        .arg(&path)
        .args(["--now", NOW, "--lock-timeout", "1.5", "serve"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start serve");
    let mut input = child.stdin.take().unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    let mut request = |message: Value| -> Value {
        input.write_all(format!("{message}\n").as_bytes()).unwrap();
        let mut line = String::new();
        output.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    };
    assert_eq!(request(json!({"type": "status"}))["ok"], json!(true), "serve is up");
    let holder = daemon_state::store::Store::open(&path).unwrap();
    let lock = holder.lock().unwrap();
    let reply = request(json!({"type": "pause"}));
    drop(lock);
    assert_eq!(reply["ok"], json!(false), "{reply}");
    assert_eq!(reply["reason"], json!("state_write_failed"), "{reply}");
    assert!(reply["error"].as_str().unwrap_or("").contains("gave up after 1.5 s"), "{reply}");
    assert_eq!(request(json!({"type": "pause"})), json!({"ok": true, "paused": true}));
    drop(input);
    let done = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
    assert_eq!(waiting_lines(&stderr).len(), 1, "{stderr}");
}
