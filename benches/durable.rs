//! Durable snapshots: `Store::save` against the raw floor on disk, and against the seed's
//! `save_state` (run by `python3`) on tmpfs. Each pair runs interleaved in one process.
//!
//! It must not tune either arm to flatter the other: both write the same document to the same
//! directory, and every arm pays for what its protocol does.

mod common;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{BenchError, Python, Target, arm_line, interleave, ns_since, ratio_line, rounds};
use daemon_state::record::Record;
use daemon_state::store::Store;

/// The state file name the seed uses.
const NAME: &str = ".daemon-state.json";

/// The seed's save protocol as its module describes it, written here for the comparison: parent
/// directory created if missing, `mkstemp` beside the target, `json.dump(indent=2)`, flush, fsync,
/// chmod 0600, `os.replace`, the temp file removed on failure. The process reads the document once,
/// then saves it once per `save` line and answers with the nanoseconds the call took.
const SEED_SAVE: &str = r#"
import json, os, sys, tempfile, time
from pathlib import Path

def save_state(target, state):
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".daemon-state.", suffix=".tmp", dir=str(target.parent))
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(state, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise

target = Path(sys.argv[1])
state = json.loads(sys.stdin.readline())
for line in sys.stdin:
    if line.strip() != "save":
        break
    began = time.perf_counter_ns()
    save_state(target, state)
    took = time.perf_counter_ns() - began
    sys.stdout.write(f"{took}\n")
    sys.stdout.flush()
"#;

fn main() -> Result<(), BenchError> {
    let base = std::env::var_os("BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    common::print_machine(&base);
    let record = common::realistic_record();
    println!("document: a realistic week's state, {} bytes", record.to_vec().len());
    snapshot_vs_raw_floor(&base, &record)?;
    common::settle();
    let shm = Path::new("/dev/shm");
    let n = rounds(2000, 20);
    snapshot_vs_seed_on_tmpfs(shm, &record, "the realistic document", n, Target::AtLeast(2.5))?;
    // For information: how the ratio grows with the document, on the largest one the engine keeps.
    let maximal = common::maximal_record(common::utc(2026, 4, 18, 12, 0));
    let n = rounds(300, 5);
    snapshot_vs_seed_on_tmpfs(shm, &maximal, "the maximal document", n, Target::None)?;
    Ok(())
}

/// The raw floor: the same bytes written to a fresh temp file, fsynced, renamed over the target,
/// and the directory fsynced. Nothing else.
fn raw_save(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = dir.join("raw.json.tmp");
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, dir.join("raw.json"))?;
    File::open(dir)?.sync_all()
}

/// Pair 1: `Store::save` (serialize, lock, temp file, fsync, keep `.prev`, rename, directory
/// fsync) against the raw floor, on a real file in a temp directory on disk.
fn snapshot_vs_raw_floor(base: &Path, record: &Record) -> Result<(), BenchError> {
    let dir = tempfile::Builder::new().prefix("daemon-state-bench").tempdir_in(base)?;
    let mut store = Store::open(dir.path().join(NAME))?;
    let mut ours = record.clone();
    store.save(&mut ours)?;
    let bytes = ours.to_vec();
    let n = rounds(1000, 10);
    println!(
        "\npair 1: durable snapshot vs raw floor, {} on {}, {} bytes, {n} rounds",
        dir.path().display(),
        common::fs_type(dir.path()),
        bytes.len()
    );
    let mut snapshot = || -> Result<f64, BenchError> {
        let start = Instant::now();
        store.save(&mut ours)?;
        Ok(ns_since(start))
    };
    let mut floor = || -> Result<f64, BenchError> {
        let start = Instant::now();
        raw_save(dir.path(), &bytes)?;
        Ok(ns_since(start))
    };
    interleave(n / 10, &mut [&mut snapshot, &mut floor])?;
    let [snapshot, floor] = interleave(n, &mut [&mut snapshot, &mut floor])?;
    arm_line("Store::save", &snapshot);
    arm_line("raw write+fsync+rename+dir fsync", &floor);
    ratio_line("snapshot/raw", &snapshot, &floor, Target::AtMost(1.10));
    Ok(())
}

/// Pair 2: `Store::save` against the seed's `save_state` on tmpfs, where the disk costs nothing
/// and what remains is the work each protocol does. Python times only its save calls.
fn snapshot_vs_seed_on_tmpfs(
    shm: &Path,
    record: &Record,
    label: &str,
    n: usize,
    target: Target,
) -> Result<(), BenchError> {
    if !shm.is_dir() {
        println!("\npair 2: skipped, {} is not there", shm.display());
        return Ok(());
    }
    let dir = tempfile::Builder::new().prefix("daemon-state-bench").tempdir_in(shm)?;
    let Some(mut seed) = Python::start(SEED_SAVE, &dir.path().join("seed").join(NAME))? else {
        println!("\npair 2: skipped, python3 is not on PATH");
        return Ok(());
    };
    let mut store = Store::open(dir.path().join("ours").join(NAME))?;
    let mut ours = record.clone();
    store.save(&mut ours)?;
    println!(
        "\npair 2: durable snapshot vs the seed's save_state, {label} ({} bytes), {} on {}, {n} rounds",
        ours.to_vec().len(),
        dir.path().display(),
        common::fs_type(dir.path())
    );
    let mut snapshot = || -> Result<f64, BenchError> {
        let start = Instant::now();
        store.save(&mut ours)?;
        Ok(ns_since(start))
    };
    seed.tell(&serde_json::to_string(&record.to_map())?)?;
    let mut python = || seed.ask("save");
    interleave(n / 10, &mut [&mut snapshot, &mut python])?;
    let [snapshot, python] = interleave(n, &mut [&mut snapshot, &mut python])?;
    arm_line("Store::save", &snapshot);
    arm_line("seed save_state (python3)", &python);
    ratio_line("seed/ours", &python, &snapshot, target);
    Ok(())
}
