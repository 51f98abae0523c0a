//! The writer and the checker of the power-loss test (`.ci/power-loss`): `write` saves generation
//! after generation through the real `Store` and prints `ack N` once `save` has returned for
//! generation N; `verify` reads the state file after the file system came back and says whether
//! it holds a whole document of at least the last acknowledged generation.
//!
//! It must not do anything to make a save durable beyond what `Store::save` does: the point is to
//! test the store's protocol, and `--broken no-dir-fsync` removes one step of it on purpose.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use daemon_state::record::Record;
use daemon_state::store::{Broken, Store};
use serde_json::{Map, Value, json};

/// The key that repeats the generation the writer meant to save, to tell a mixed document.
const WRITER_GENERATION: &str = "writer_generation";
/// The key holding filler that ties the document's blocks to its generation.
const PAYLOAD: &str = "payload";

#[derive(Parser)]
#[command(about = "Writes and checks state files for the power-loss test")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Saves generations in a loop and prints `ack N` after each save returns.
    Write {
        /// The state file.
        state_file: PathBuf,
        /// Stop after this many saves and wait to be killed; 0 saves until killed.
        #[arg(long, default_value_t = 0)]
        count: u64,
        /// Leave out a step of the protocol, to prove the test can fail.
        #[arg(long)]
        broken: Option<Step>,
    },
    /// Checks the state file against the last acknowledged generation.
    Verify {
        /// The state file.
        state_file: PathBuf,
        /// The last generation the writer acknowledged (0: none).
        #[arg(long)]
        at_least: u64,
    },
}

/// A step the writer can leave out.
#[derive(Clone, Copy, ValueEnum)]
enum Step {
    /// The directory `fsync` after the rename.
    NoDirFsync,
}

fn main() -> ExitCode {
    let result = match Args::parse().command {
        Command::Write { state_file, count, broken } => write(&state_file, count, broken),
        Command::Verify { state_file, at_least } => verify(&state_file, at_least),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("power_writer: {message}");
            ExitCode::FAILURE
        }
    }
}

/// About 12 KB, three file-system blocks, every one of them naming the generation.
fn payload(generation: u64) -> Value {
    let line = format!("generation {generation:>12} ");
    Value::String(line.repeat(12 * 1024 / line.len()))
}

/// A state document like a busy daemon's: a full first-turn map and a digest.
fn document() -> Record {
    let mut pending = Map::new();
    for i in 0..100 {
        pending.insert(
            format!("sess-{i:03}-9e107d9d372bb6826bd81d3542a419d6"),
            json!("2026-04-18T11:00:00+00:00"),
        );
    }
    let mut doc = Map::new();
    doc.insert("fsm_state".into(), json!("WAKE"));
    doc.insert("first_turn_pending".into(), Value::Object(pending));
    doc.insert(
        "pending_digest".into(),
        json!({"rem_cycles_completed": 4, "episodes_processed": 10, "main_insight_text": "kept"}),
    );
    Record::from_map(doc)
}

fn write(path: &Path, count: u64, broken: Option<Step>) -> Result<(), String> {
    let mut store = Store::open(path).map_err(|e| e.to_string())?;
    if let Some(Step::NoDirFsync) = broken {
        store.break_protocol(Broken::NoDirFsync);
    }
    let loaded = store.load().map_err(|e| e.to_string())?;
    if let Some(recovery) = &loaded.recovery {
        eprintln!("power_writer: {recovery}");
    }
    let mut record = document();
    let mut last = loaded.record.generation();
    let mut stdout = std::io::stdout().lock();
    let mut saved = 0;
    while count == 0 || saved < count {
        let expected = last + 1;
        record.set(WRITER_GENERATION, Value::from(expected));
        record.set(PAYLOAD, payload(expected));
        let generation = store.save(&mut record).map_err(|e| e.to_string())?;
        if generation != expected {
            return Err(format!("saved generation {generation}, expected {expected}"));
        }
        writeln!(stdout, "ack {generation}")
            .and_then(|()| stdout.flush())
            .map_err(|e| e.to_string())?;
        last = generation;
        saved += 1;
    }
    writeln!(stdout, "done").and_then(|()| stdout.flush()).map_err(|e| e.to_string())?;
    loop {
        std::thread::park();
    }
}

fn verify(path: &Path, at_least: u64) -> Result<(), String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && at_least == 0 => {
            println!("ok: no state file, and nothing was acknowledged");
            return Ok(());
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let record = Record::from_slice(&bytes)
        .map_err(|e| format!("{} does not parse ({} bytes): {e}", path.display(), bytes.len()))?;
    let generation = record.generation();
    let meant = record.get(WRITER_GENERATION).and_then(Value::as_u64);
    if meant != Some(generation) || record.get(PAYLOAD) != Some(&payload(generation)) {
        return Err(format!("generation {generation} holds the body of another ({meant:?})"));
    }
    if generation < at_least {
        return Err(format!(
            "holds generation {generation}, but generation {at_least} was acknowledged"
        ));
    }
    // The next open must sweep what the cut left behind.
    drop(Store::open(path).map_err(|e| e.to_string())?);
    let dir = path.parent().unwrap_or(Path::new("."));
    let leftovers: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    if !leftovers.is_empty() {
        return Err(format!("temp files left after the next open: {leftovers:?}"));
    }
    println!("ok: generation {generation} (last acknowledged {at_least})");
    Ok(())
}
