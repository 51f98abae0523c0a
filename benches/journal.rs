//! What the journal costs: a durable event with and without it, on disk; the lines an idle day
//! appends against the durable writes it makes.
//!
//! The durable event is a session opening on a document of 100 first-turn marks, on the default
//! temp directory (`BENCH_DIR` moves it): two engines on two files in the same directory, one
//! journaling and one not, their calls interleaved. The idle day is a booted daemon that slept
//! its first night and then sees ticks every 30 seconds for a day without a session.

mod common;

use std::time::Instant;

use chrono::TimeDelta;
use daemon_state::engine::Engine;
use daemon_state::event::{Event, EventKind};
use daemon_state::timestamp::Timestamp;

use common::{BenchError, Target, arm_line, interleave, ns_since, ratio_line, rounds, utc};

fn opening(at: Timestamp, n: usize) -> Event {
    Event::new(at, EventKind::SessionStarted { session_id: Some(format!("sess-{:03}", n % 150)) })
}

fn main() -> Result<(), BenchError> {
    let base = std::env::var_os("BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    common::print_machine(&base);
    let dir = tempfile::Builder::new().prefix("daemon-state-bench").tempdir_in(&base)?;
    let start = utc(2026, 4, 18, 9, 0);
    let (mut journaled, _) = Engine::open(dir.path().join("journaled.json"))?;
    let (mut plain, _) = Engine::open(dir.path().join("plain.json"))?;
    plain.set_journal(false);
    for n in 0..100 {
        let at = start + TimeDelta::seconds(n as i64);
        let _ = journaled.handle(opening(at, n))?;
        let _ = plain.handle(opening(at, n))?;
    }
    let rounds = rounds(1_000, 50);
    // Each arm opens the same sessions at the same moments, one per round.
    let arm = |engine: &mut Engine, n: &mut usize| -> Result<f64, BenchError> {
        *n += 1;
        let event = opening(start + TimeDelta::seconds(*n as i64), *n);
        let began = Instant::now();
        let _ = engine.handle(event)?;
        Ok(ns_since(began))
    };
    let (mut n_journaled, mut n_plain) = (100, 100);
    let mut journaled_arm = || arm(&mut journaled, &mut n_journaled);
    let mut plain_arm = || arm(&mut plain, &mut n_plain);
    println!(
        "\njournal: a durable session opening, 100 first-turn marks, {} ({})",
        dir.path().display(),
        common::fs_type(dir.path())
    );
    let [j, p] = interleave(rounds, &mut [&mut journaled_arm, &mut plain_arm])?;
    arm_line("with the journal", &j);
    arm_line("without", &p);
    // The target is a disk's: on tmpfs, where a save costs microseconds, it is shown for
    // information only.
    let on_disk = common::fs_type(dir.path()) != "tmpfs";
    let target = if on_disk { Target::AtMost(1.05) } else { Target::None };
    ratio_line("with/without", &j, &p, target);

    println!("\njournal: an idle day after the first night, a tick every 30 s");
    let (mut engine, _) = Engine::open(dir.path().join("idle.json"))?;
    let mut at = start;
    let _ = engine.handle(Event::new(at, EventKind::Boot))?;
    // The first night: the idle rule starts it two hours after the boot.
    at += TimeDelta::hours(2);
    let _ = engine.handle(Event::new(at, EventKind::Tick { store_empty: false }))?;
    let _ = engine.handle(Event::new(at, EventKind::LockAcquired))?;
    while engine.state() == daemon_state::table::StateName::Dreaming {
        at += TimeDelta::minutes(20);
        let result = daemon_state::digest::RemResult::default();
        let _ = engine.handle(Event::new(at, EventKind::RemCycleFinished { result }))?;
    }
    let journal = engine.store().journal_path();
    let lines_before =
        std::fs::read(&journal).map(|b| b.split(|&c| c == b'\n').count()).unwrap_or(0);
    let writes_before = engine.store().durable_writes();
    let day_end = at + TimeDelta::days(1);
    while at < day_end {
        at += TimeDelta::seconds(30);
        let _ = engine.handle(Event::new(at, EventKind::Tick { store_empty: false }))?;
    }
    let lines = std::fs::read(&journal).map(|b| b.split(|&c| c == b'\n').count()).unwrap_or(0)
        - lines_before;
    let writes = engine.store().durable_writes() - writes_before;
    println!(
        "  2,880 ticks: {lines} journal lines, {writes} durable writes; target <= 30 lines: {}",
        if lines <= 30 { "met" } else { "MISSED" }
    );
    Ok(())
}
