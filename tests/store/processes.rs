//! Real processes: a saver killed with SIGKILL at random points, and two processes doing locked
//! read-modify-writes of the same file. The children are this test binary, run again with
//! `CHILD_MODE` set so that only the selected child test does anything.

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Instant;

use daemon_state::record::Record;
use daemon_state::store::Store;
use serde_json::json;

use super::{state_dir, temp_files};

const CHILD_MODE: &str = "DAEMON_STATE_TEST_CHILD";
const CHILD_PATH: &str = "DAEMON_STATE_TEST_PATH";
const CHILD_KEY: &str = "DAEMON_STATE_TEST_KEY";
const RMW_ROUNDS: usize = 500;

/// Runs this test binary's test `name` as a child, with the given environment.
fn spawn_child(name: &str, env: &[(&str, &str)]) -> Child {
    let exe = std::env::current_exe().expect("current exe");
    let mut command = Command::new(exe);
    command
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().expect("spawn child")
}

/// The generations a child reports as acknowledged, one `ack N` line each.
fn next_ack(lines: &mut Lines<BufReader<ChildStdout>>) -> Option<u64> {
    lines.find_map(|line| line.ok()?.strip_prefix("ack ")?.parse().ok())
}

/// A small deterministic generator (xorshift64*), so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Child of the kill test: saves forever, printing each acknowledged generation.
#[test]
fn child_saver() {
    if std::env::var(CHILD_MODE).as_deref() != Ok("saver") {
        return;
    }
    let path = std::env::var(CHILD_PATH).expect("state path");
    let mut store = Store::open(&path).expect("open");
    let mut record = store.load().expect("load").record;
    for i in 0..1_000_000usize {
        record.set("fsm_state", json!(["WAKE", "SLEEP"][i % 2]));
        record.set("payload", json!("x".repeat(i * 37 % 3000)));
        let generation = store.save(&mut record).expect("save");
        println!("ack {generation}");
    }
}

// kill -9: a child saves in a loop through the real store and is killed at random points, over
// and over. After each kill the state file parses, holds at least the last acknowledged
// generation, and the next open leaves no temp file.
#[test]
fn kill_nine_mid_save_never_loses_an_acknowledged_generation() {
    const KILLS: usize = 200;
    let seed = std::env::var("KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0fda_e30a_u64);
    let mut rng = Rng(seed);
    let (dir, path) = state_dir();
    let path_text = path.to_str().expect("utf-8 path");
    let started = Instant::now();
    let mut acknowledged = 0;
    let mut killed_mid_run = 0;
    for round in 0..KILLS {
        let mut child = spawn_child(
            "processes::child_saver",
            &[(CHILD_MODE, "saver"), (CHILD_PATH, path_text)],
        );
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        // Wait for a few acknowledgements, then let the child run on for a random moment.
        for _ in 0..rng.below(4) {
            match next_ack(&mut lines) {
                Some(g) => acknowledged = acknowledged.max(g),
                None => break,
            }
        }
        let spin = rng.below(2_000_000);
        for i in 0..spin {
            std::hint::black_box(i);
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        if status.code().is_none() {
            killed_mid_run += 1;
        }
        // Lines written before the kill were acknowledged too.
        while let Some(g) = next_ack(&mut lines) {
            acknowledged = acknowledged.max(g);
        }

        let context = format!("round {round} (seed {seed:#x})");
        match std::fs::read(&path) {
            Ok(bytes) => {
                let record = Record::from_slice(&bytes)
                    .unwrap_or_else(|e| panic!("{context}: the state file does not parse: {e}"));
                assert!(
                    record.generation() >= acknowledged,
                    "{context}: generation {} on disk, {acknowledged} acknowledged",
                    record.generation()
                );
            }
            Err(e) => assert_eq!(acknowledged, 0, "{context}: state file gone: {e}"),
        }
        drop(Store::open(&path).expect("open after kill"));
        assert_eq!(temp_files(dir.path()), Vec::<String>::new(), "{context}");
    }
    eprintln!(
        "{KILLS} kills ({killed_mid_run} by the signal), {acknowledged} generations acknowledged, {:?}",
        started.elapsed()
    );
    assert!(acknowledged >= KILLS as u64, "too few saves: {acknowledged}");
    assert!(killed_mid_run >= KILLS / 2, "too few kills landed: {killed_mid_run}");
}

/// Child of the read-modify-write test: adds its own keys, each under the lock, reloading when
/// another process changed the file.
#[test]
fn child_read_modify_write() {
    if std::env::var(CHILD_MODE).as_deref() != Ok("rmw") {
        return;
    }
    let path = std::env::var(CHILD_PATH).expect("state path");
    let key = std::env::var(CHILD_KEY).expect("key prefix");
    let mut store = Store::open(&path).expect("open");
    let mut record = Record::new();
    for i in 0..RMW_ROUNDS {
        let _lock = store.lock().expect("lock");
        if store.changed_on_disk().expect("stat") {
            record = store.load().expect("load").record;
        }
        record.set(&format!("{key}-{i}"), json!(i));
        store.save(&mut record).expect("save");
    }
}

// Two processes each do 500 locked read-modify-writes adding their own keys; all 1,000 keys are
// there at the end. (Without the lock, or without reloading on `changed_on_disk`, a process would
// write back its stale copy and the other's keys would be lost.)
#[test]
fn two_processes_doing_locked_read_modify_writes_lose_nothing() {
    let (_dir, path) = state_dir();
    let path_text = path.to_str().expect("utf-8 path");
    let children: Vec<Child> = ["a", "b"]
        .iter()
        .map(|key| {
            spawn_child(
                "processes::child_read_modify_write",
                &[(CHILD_MODE, "rmw"), (CHILD_PATH, path_text), (CHILD_KEY, key)],
            )
        })
        .collect();
    for mut child in children {
        let status = child.wait().expect("wait");
        assert!(status.success(), "a read-modify-write child failed: {status}");
    }
    let record = Store::open(&path).unwrap().load().unwrap().record;
    for key in ["a", "b"] {
        for i in 0..RMW_ROUNDS {
            let name = format!("{key}-{i}");
            assert_eq!(record.get(&name), Some(&json!(i)), "{name} is missing");
        }
    }
    assert_eq!(record.generation(), 2 * RMW_ROUNDS as u64);
    assert_eq!(record.len(), 2 * RMW_ROUNDS + 1);
    assert_state_file_is_private(&path);
}

fn assert_state_file_is_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
}
