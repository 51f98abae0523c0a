//! The most frequent durable event, a session opening as `serve` handles it, on tmpfs where only
//! the CPU shows: through `Engine` (`handle_with` and the seed's `session_open` bookkeeping),
//! against the full durable-replace protocol written here for the same bytes, and against the
//! Python seed's `load_state` + `mark_session_opened` + `save_state` on the same document. Also the
//! cost of building and encoding one snapshot of that document, with no I/O.
//!
//! It must not tune an arm to flatter another: all three write the same document, grown the same
//! way, in directories of the same tmpfs, and each pays for everything its protocol does.

mod common;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::TimeDelta;
use daemon_state::data::{Data, note_session_open};
use daemon_state::engine::Engine;
use daemon_state::event::{Event, EventKind};
use daemon_state::record::{Record, keys};
use daemon_state::timestamp::Timestamp;
use serde_json::json;

use common::{BenchError, Python, Target, arm_line, interleave, ns_since, ratio_line, rounds};

/// The state file name the seed uses.
const NAME: &str = ".daemon-state.json";

/// The seed's three functions as its module has them (the prune on every mark included), over a
/// `STATE_PATH` given as the first argument. One `open <id>` line per opening; the answer is the
/// nanoseconds the three calls took.
const SEED_OPEN: &str = r#"
import json, os, sys, tempfile, time
from datetime import datetime, timedelta, timezone
from pathlib import Path

STATE_PATH = Path(sys.argv[1])
FIRST_TURN_TTL_HOURS = 24
MAX_FIRST_TURN_ENTRIES = 100

def load_state():
    if not STATE_PATH.exists():
        return {}
    try:
        return json.loads(STATE_PATH.read_text())
    except (OSError, json.JSONDecodeError):
        return {}

def save_state(state):
    STATE_PATH.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".daemon-state.", suffix=".tmp", dir=str(STATE_PATH.parent))
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(state, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, STATE_PATH)
    except Exception:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise

def prune_stale_first_turn(state, now=None, ttl_hours=FIRST_TURN_TTL_HOURS, max_entries=MAX_FIRST_TURN_ENTRIES):
    pending = state.get("first_turn_pending")
    if not isinstance(pending, dict) or not pending:
        return 0
    current = now if now is not None else datetime.now(timezone.utc)
    if current.tzinfo is None:
        current = current.replace(tzinfo=timezone.utc)
    cutoff = current - timedelta(hours=ttl_hours)
    def _as_dt(value):
        if isinstance(value, str):
            try:
                dt = datetime.fromisoformat(value)
                if dt.tzinfo is None:
                    dt = dt.replace(tzinfo=timezone.utc)
                return dt
            except ValueError:
                return datetime.fromtimestamp(0, tz=timezone.utc)
        return datetime.fromtimestamp(0, tz=timezone.utc)
    removed = 0
    for sid, value in list(pending.items()):
        dt = _as_dt(value)
        if dt < cutoff:
            pending.pop(sid, None)
            removed += 1
        elif not isinstance(value, str):
            pending[sid] = dt.isoformat()
    if len(pending) > max_entries:
        ordered = sorted(pending.items(), key=lambda kv: _as_dt(kv[1]), reverse=True)
        keep = dict(ordered[:max_entries])
        removed += len(pending) - len(keep)
        state["first_turn_pending"] = keep
    return removed

def mark_session_opened(state, session_id):
    if not isinstance(session_id, str) or not session_id:
        return
    pending = state.setdefault("first_turn_pending", {})
    pending[session_id] = datetime.now(timezone.utc).isoformat()
    prune_stale_first_turn(state)

for line in sys.stdin:
    words = line.split()
    if len(words) != 2 or words[0] != "open":
        break
    began = time.perf_counter_ns()
    state = load_state()
    mark_session_opened(state, words[1])
    save_state(state)
    took = time.perf_counter_ns() - began
    sys.stdout.write(f"{took}\n")
    sys.stdout.flush()
"#;

fn main() -> Result<(), BenchError> {
    let shm = Path::new(&std::env::var_os("BENCH_DIR").unwrap_or_else(|| "/dev/shm".into()))
        .to_path_buf();
    common::print_machine(&shm);
    // The document is dated now, as the seed stamps its marks with the wall clock: its 100 marks
    // stay inside the 24 h prune while the seed arm runs.
    let now = chrono::Utc::now();
    let document = opening_record(now);
    println!(
        "document: 100 first-turn marks, a full session history, the seed's bookkeeping ({} bytes)",
        document.to_vec().len()
    );
    snapshot_alone(&document, now)?;
    common::settle();
    opening_vs_floor_and_seed(&shm, &document, now)?;
    common::settle();
    serve_over_a_pipe(&shm, &document, now)
}

/// The maximal document without its foreign keys and with a morning's digest instead of the
/// largest one: the first-turn map and the session history at their bounds, the seed's
/// bookkeeping keys, every request.
fn opening_record(now: Timestamp) -> Record {
    let mut record = common::maximal_record(now);
    record.set(
        keys::PENDING_DIGEST,
        json!({
            "rem_cycles_completed": 4, "episodes_processed": 14, "schemas_induced_tier0": 4,
            "claude_call_used": true,
            "main_insight_text": "the user returns to the scheduler design every morning",
            "timed_out_cycles": 0,
        }),
    );
    let foreign: Vec<String> =
        record.keys().filter(|key| key.starts_with("x_")).map(str::to_owned).collect();
    for key in foreign {
        record.remove(&key);
    }
    record
}

/// Writes a state file as the store would find it: readable by its owner only.
fn write_state_file(path: &Path, document: &Record) -> std::io::Result<()> {
    std::fs::write(path, document.to_vec())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// The `n`-th opening: a new id, two minutes after the previous one.
fn opening(now: Timestamp, n: u64) -> (Event, String) {
    let id = format!("sess-open-{n:07}");
    let at = now + TimeDelta::minutes(2 * i64::try_from(n).unwrap_or(i64::MAX));
    (Event::new(at, EventKind::SessionStarted { session_id: Some(id.clone()) }), id)
}

/// Building one snapshot of the document after an opening (what is only in memory written into
/// it) and encoding it, with no I/O.
fn snapshot_alone(document: &Record, now: Timestamp) -> Result<(), BenchError> {
    let (mut data, _) = Data::from_record(document.clone());
    let (_, id) = opening(now, 1);
    data.open_session(Some(&id), now);
    let mut bytes = 0;
    let mut build = || -> Result<f64, BenchError> {
        const BATCH: u32 = 100;
        let start = Instant::now();
        for _ in 0..BATCH {
            data.touch();
            let encoded = data.snapshot().to_vec();
            bytes = std::hint::black_box(encoded).len();
        }
        Ok(ns_since(start) / f64::from(BATCH))
    };
    let n = rounds(300, 5);
    interleave(n / 10, &mut [&mut build])?;
    let [built] = interleave(n, &mut [&mut build])?;
    println!("\nsnapshot: build and encode one snapshot after an opening, no I/O, {n} rounds");
    arm_line("Data::snapshot + Record::to_vec", &built);
    println!(
        "  {} bytes; target <= 10 µs: {}",
        bytes,
        if built.median() <= 10_000.0 { "met" } else { "MISSED" }
    );
    Ok(())
}

/// The floor's arm: one timed [`floor_save`] of `bytes` (the very bytes the arm it is set against
/// left) into the directory `floor`.
fn floor_arm(
    floor: &Path,
    bytes: Vec<u8>,
) -> Result<impl FnMut() -> Result<f64, BenchError> + '_, BenchError> {
    let dir = File::open(floor)?;
    Ok(move || {
        let start = Instant::now();
        floor_save(&dir, floor, &bytes)?;
        Ok(ns_since(start))
    })
}

/// The full durable-replace protocol for `bytes`, written here: the directory's lock, a fresh
/// temp file, fsync, the current file kept as `NAME.prev` (hard link, rename), the rename over
/// the target, the directory's fsync, the lock's release.
fn floor_save(dir: &File, dir_path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    lock(dir, libc::LOCK_EX)?;
    let temp = dir_path.join(".floor.tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    let target = dir_path.join(NAME);
    let link = dir_path.join(".floor.prev.tmp");
    std::fs::hard_link(&target, &link)?;
    std::fs::rename(&link, dir_path.join(format!("{NAME}.prev")))?;
    std::fs::rename(&temp, &target)?;
    dir.sync_all()?;
    lock(dir, libc::LOCK_UN)
}

fn lock(dir: &File, operation: libc::c_int) -> std::io::Result<()> {
    // SAFETY: `flock` on a descriptor this process holds open; it touches no memory.
    if unsafe { libc::flock(dir.as_raw_fd(), operation) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The three arms, interleaved.
fn opening_vs_floor_and_seed(
    shm: &Path,
    document: &Record,
    now: Timestamp,
) -> Result<(), BenchError> {
    if !shm.is_dir() {
        println!("\nopening: skipped, {} is not there", shm.display());
        return Ok(());
    }
    let top = tempfile::Builder::new().prefix("daemon-state-bench").tempdir_in(shm)?;
    let [ours, floor, seed] = ["ours", "floor", "seed"].map(|name| top.path().join(name));
    for dir in [&ours, &floor, &seed] {
        std::fs::create_dir(dir)?;
        write_state_file(&dir.join(NAME), document)?;
    }
    let (mut engine, _) = Engine::open(ours.join(NAME))?;
    // `BENCH_NO_JOURNAL=1` measures the engine without its journal (which the floor does not write).
    engine.set_journal(std::env::var_os("BENCH_NO_JOURNAL").is_none());
    let mut n = 0u64;
    let mut open_ours = || -> Result<f64, BenchError> {
        n += 1;
        let (event, id) = opening(now, n);
        let ts = format!("2026-04-18T12:00:{:02}+00:00", n % 60);
        let start = Instant::now();
        let _ =
            engine.handle_with(event, |record| note_session_open(record, Some(&id), Some(&ts)))?;
        Ok(ns_since(start))
    };
    // Warm the engine up, then give the floor the very bytes it writes.
    for _ in 0..10 {
        open_ours()?;
    }
    let bytes = std::fs::read(ours.join(NAME))?;
    let size = bytes.len();
    let mut open_floor = floor_arm(&floor, bytes)?;
    let n = rounds(2000, 20);
    println!(
        "\nopening: a durable session opening, {} on {}, {} bytes, {n} rounds",
        top.path().display(),
        common::fs_type(top.path()),
        size
    );
    match Python::start(SEED_OPEN, &seed.join(NAME))? {
        None => {
            println!("  note: python3 is not on PATH; the seed's arm is skipped");
            interleave(n / 10, &mut [&mut open_ours, &mut open_floor])?;
            let [ours, floor] = interleave(n, &mut [&mut open_ours, &mut open_floor])?;
            arm_line("Engine::handle_with (session_open)", &ours);
            arm_line("full protocol floor, same bytes", &floor);
            ratio_line("ours/floor", &ours, &floor, Target::AtMost(2.0));
        }
        Some(mut python) => {
            let mut m = 0u64;
            let mut open_seed = || -> Result<f64, BenchError> {
                m += 1;
                python.ask(&format!("open sess-seed-{m:07}"))
            };
            let mut arms: [&mut dyn FnMut() -> Result<f64, BenchError>; 3] =
                [&mut open_ours, &mut open_floor, &mut open_seed];
            interleave(n / 10, &mut arms)?;
            let [ours, floor, seed] = interleave(n, &mut arms)?;
            arm_line("Engine::handle_with (session_open)", &ours);
            arm_line("full protocol floor, same bytes", &floor);
            arm_line("seed load+mark+save (python3)", &seed);
            ratio_line("ours/floor", &ours, &floor, Target::AtMost(2.0));
            ratio_line("seed/ours", &seed, &ours, Target::AtLeast(3.0));
        }
    }
    Ok(())
}

/// The same opening sent to `daemon-state serve` over its stdin and answered on its stdout: the
/// round trip of one `session_open` line (each two minutes after the last, by its `ts`), against the
/// floor for the bytes it leaves. No target.
fn serve_over_a_pipe(shm: &Path, document: &Record, now: Timestamp) -> Result<(), BenchError> {
    if !shm.is_dir() {
        return Ok(());
    }
    let top = tempfile::Builder::new().prefix("daemon-state-bench").tempdir_in(shm)?;
    let [served, floor] = ["served", "floor"].map(|name| top.path().join(name));
    for dir in [&served, &floor] {
        std::fs::create_dir(dir)?;
        write_state_file(&dir.join(NAME), document)?;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_daemon-state"))
        .arg("--state-file")
        .arg(served.join(NAME))
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let (Some(mut input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("serve started without pipes".into());
    };
    let mut output = BufReader::new(output);
    let mut line = String::new();
    let mut n = 0u64;
    let mut open_served = || -> Result<f64, BenchError> {
        n += 1;
        // Each opening two minutes after the last, as in the engine's arm: a `ts` that is a moment
        // is when the message happens.
        let (event, id) = opening(now, n);
        let ts = daemon_state::timestamp::format(event.at);
        let request =
            format!("{{\"type\": \"session_open\", \"session_id\": \"{id}\", \"ts\": \"{ts}\"}}\n");
        line.clear();
        let start = Instant::now();
        input.write_all(request.as_bytes())?;
        input.flush()?;
        output.read_line(&mut line)?;
        let took = ns_since(start);
        if !line.contains("session_open_queued") {
            return Err(format!("serve answered {line:?}").into());
        }
        Ok(took)
    };
    for _ in 0..10 {
        open_served()?;
    }
    let mut open_floor = floor_arm(&floor, std::fs::read(served.join(NAME))?)?;
    let n = rounds(2000, 20);
    println!("\nserve: the same opening through `daemon-state serve` over a pipe, {n} rounds");
    interleave(n / 10, &mut [&mut open_served, &mut open_floor])?;
    let [served, floor] = interleave(n, &mut [&mut open_served, &mut open_floor])?;
    arm_line("serve round trip (session_open)", &served);
    arm_line("full protocol floor, same bytes", &floor);
    ratio_line("serve/floor", &served, &floor, Target::None);
    drop(input);
    child.wait()?;
    Ok(())
}
