//! The cost of a session open early in a daemon's life and after a million of them, and the size of
//! the state file at both points.
//!
//! Cadence: one session every 2 minutes, day and night (720 a day, a busy host shared by several
//! agents). It fills the 8-day session history to its cap of 4,096 starts, so the late state is the
//! largest this cadence can make. The state as it stands after 999,000 opens is built by driving
//! an in-memory core through every one of them; then opens 1 to 1,000 (from an empty state) and
//! opens 999,001 to 1,000,000 (from that state) run interleaved, once on the in-memory core and
//! once durably through an `Engine` on a real file.
//!
//! It must not shortcut the history: every open the late state reflects went through the core.

mod common;

use std::path::Path;
use std::time::Instant;

use chrono::TimeDelta;
use daemon_state::engine::Engine;
use daemon_state::event::{Event, EventKind};
use daemon_state::kernel::Core;
use daemon_state::quiet_window::SessionStarts;
use daemon_state::record::{Record, keys};
use daemon_state::store::Store;
use daemon_state::timestamp::Timestamp;

use common::{BenchError, Target, arm_line, interleave, ns_since, ratio_line, rounds, utc};

/// The state file name the seed uses.
const NAME: &str = ".daemon-state.json";
/// Opens timed at each end.
const TIMED: u64 = 1_000;
/// Opens per in-memory sample.
const BATCH: u64 = 10;

/// The `n`-th session open (from 1) of the cadence.
fn open(start: Timestamp, n: u64) -> Event {
    let at = start + TimeDelta::minutes(2 * i64::try_from(n).unwrap_or(i64::MAX));
    Event::new(at, EventKind::SessionStarted { session_id: Some(format!("sess-{n:07}")) })
}

fn main() -> Result<(), BenchError> {
    let base = std::env::var_os("BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    common::print_machine(&base);
    let start = utc(2026, 1, 1, 0, 0);
    let total = if common::full_run() { 1_000_000 } else { 20_000 };
    let late_from = total - TIMED;

    let began = Instant::now();
    let (mut core, _) = Core::restore(Record::new());
    for n in 1..=late_from {
        let _ = core.handle(&open(start, n)).map_err(|e| e.to_string())?;
    }
    let late = core.data().record().clone();
    let built = began.elapsed();
    println!(
        "\npair 4: session opens every 2 minutes; opens 1-{TIMED} against opens {}-{total}",
        late_from + 1
    );
    println!(
        "  built the state after {late_from} opens in {:.1} s ({} per open on average)",
        built.as_secs_f64(),
        common::human(built.as_nanos() as f64 / late_from as f64)
    );

    in_memory(start, &late, late_from)?;
    common::settle();
    durable(&base, start, &late, late_from, total)
}

/// Times the next [`BATCH`] opens on a core; `n` is the last open it has seen.
fn time_batch(core: &mut Core, start: Timestamp, n: &mut u64) -> Result<f64, BenchError> {
    let events: Vec<Event> = (1..=BATCH).map(|i| open(start, *n + i)).collect();
    *n += BATCH;
    let began = Instant::now();
    for event in &events {
        let _ = std::hint::black_box(core.handle(event).map_err(|e| e.to_string())?);
    }
    Ok(ns_since(began) / BATCH as f64)
}

/// Opens on the in-memory core, early and late, interleaved in batches.
fn in_memory(start: Timestamp, late: &Record, late_from: u64) -> Result<(), BenchError> {
    let (mut early_core, _) = Core::restore(Record::new());
    let (mut late_core, _) = Core::restore(late.clone());
    let (mut early_n, mut late_n) = (0, late_from);
    let mut early = || time_batch(&mut early_core, start, &mut early_n);
    let mut later = || time_batch(&mut late_core, start, &mut late_n);
    let [early, later] = interleave((TIMED / BATCH) as usize, &mut [&mut early, &mut later])?;
    println!("  in memory (Core::handle, the snapshot document included; no disk):");
    arm_line(&format!("opens 1-{TIMED}"), &early);
    arm_line(&format!("opens {}-{}", late_from + 1, late_from + TIMED), &later);
    ratio_line("late/early in memory", &later, &early, Target::AtMost(1.2));
    Ok(())
}

/// Opens through an engine on a real file, early and late, interleaved one by one.
fn durable(
    base: &Path,
    start: Timestamp,
    late: &Record,
    late_from: u64,
    total: u64,
) -> Result<(), BenchError> {
    let early_dir = tempfile::Builder::new().prefix("daemon-state-bench").tempdir_in(base)?;
    let late_dir = tempfile::Builder::new().prefix("daemon-state-bench").tempdir_in(base)?;
    let early_path = early_dir.path().join(NAME);
    let late_path = late_dir.path().join(NAME);
    Store::open(&late_path)?.save(&mut late.clone())?;
    let (mut early_engine, _) = Engine::open(&early_path)?;
    let (mut late_engine, _) = Engine::open(&late_path)?;
    let (mut early_n, mut late_n) = (0, late_from);
    let mut early = || -> Result<f64, BenchError> {
        early_n += 1;
        let event = open(start, early_n);
        let began = Instant::now();
        let _ = early_engine.handle(event)?;
        Ok(ns_since(began))
    };
    let mut later = || -> Result<f64, BenchError> {
        late_n += 1;
        let event = open(start, late_n);
        let began = Instant::now();
        let _ = late_engine.handle(event)?;
        Ok(ns_since(began))
    };
    let n = rounds(TIMED as usize, 50);
    let [early, later] = interleave(n, &mut [&mut early, &mut later])?;
    println!(
        "  durable (Engine::handle on {}, one snapshot per open):",
        common::fs_type(early_dir.path())
    );
    arm_line(&format!("opens 1-{n}"), &early);
    arm_line(&format!("opens {}-{}", late_from + 1, late_from + n as u64), &later);
    ratio_line("late/early durable", &later, &early, Target::AtMost(1.2));
    for (label, engine, path) in [
        (format!("after {n} opens"), &early_engine, &early_path),
        (format!("after {} opens", late_from + n as u64), &late_engine, &late_path),
    ] {
        let record = engine.record();
        let pending = record.get(keys::FIRST_TURN_PENDING).and_then(|v| v.as_object());
        println!(
            "  state file {label}: {} bytes; first_turn_pending {} entries; session history {} starts",
            std::fs::metadata(path)?.len(),
            pending.map_or(0, |map| map.len()),
            SessionStarts::read(record).len()
        );
    }
    if late_from + n as u64 != total {
        println!("  (smoke run: the late state stands after {late_from} opens, not 999,000)");
    }
    Ok(())
}
