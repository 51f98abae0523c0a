//! Loading a maximal state file: `Engine::open` and `Store::open` + `load` against the floor of
//! reading the bytes and parsing them into a JSON value, interleaved in one process.
//!
//! The file is `common::maximal_record`. It must not be one the engine warns about or recovers:
//! the bench stops when it is.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Instant;

use daemon_state::engine::Engine;
use daemon_state::store::Store;
use serde_json::Value;

use common::{BenchError, Target, arm_line, interleave, ns_since, ratio_line, rounds, utc};

/// The state file name the seed uses.
const NAME: &str = ".daemon-state.json";

fn main() -> Result<(), BenchError> {
    let base = std::env::var_os("BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    common::print_machine(&base);
    let dir = tempfile::Builder::new().prefix("daemon-state-bench").tempdir_in(&base)?;
    let path = dir.path().join(NAME);
    let bytes = common::maximal_record(utc(2026, 4, 18, 12, 0)).to_vec();
    std::fs::write(&path, &bytes)?;
    // As the store writes it: readable by its owner only (else opening it warns and fixes it).
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let (_, report) = Engine::open(&path)?;
    if report.recovery.is_some() || !report.warnings.is_empty() {
        return Err(format!("the maximal file is not clean: {report:?}").into());
    }
    let n = rounds(300, 5);
    println!(
        "\npair 5: loading a maximal state file of {} bytes on {}, {n} rounds",
        bytes.len(),
        common::fs_type(dir.path())
    );
    let mut floor = || -> Result<f64, BenchError> {
        let began = Instant::now();
        let value: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        std::hint::black_box(value);
        Ok(ns_since(began))
    };
    let mut store = || -> Result<f64, BenchError> {
        let began = Instant::now();
        let loaded = Store::open(&path)?.load()?;
        std::hint::black_box(loaded);
        Ok(ns_since(began))
    };
    let mut engine = || -> Result<f64, BenchError> {
        let began = Instant::now();
        let opened = Engine::open(&path)?;
        std::hint::black_box(opened);
        Ok(ns_since(began))
    };
    interleave(n / 10, &mut [&mut floor, &mut store, &mut engine])?;
    let [floor, store, engine] = interleave(n, &mut [&mut floor, &mut store, &mut engine])?;
    arm_line("read + serde_json::from_slice", &floor);
    arm_line("Store::open + load", &store);
    arm_line("Engine::open", &engine);
    ratio_line("store/floor", &store, &floor, Target::None);
    ratio_line("engine/floor", &engine, &floor, Target::None);
    Ok(())
}
