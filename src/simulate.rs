//! The reference host: a simulated clock driving the engine through days of sessions, recalls and
//! nights, printing progress and a summary.
//!
//! Owns the simulated day pattern, the host side of the protocol (granting the lock, running REM
//! cycles) and the hypnogram. It must not bypass the engine: it is a host like any other.

mod crash;
mod host;
mod night;
mod pattern;
pub mod plot;
mod queue;
mod rng;
mod rows;
mod summary;
pub mod trace;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{Duration, TimeZone, Utc};

use crate::doc::Doc;
use crate::engine::EngineError;
use crate::store::Store;
use crate::timestamp::Timestamp;

use host::Host;
use summary::Report;

/// The most days one simulation runs (ten years): a bound on its memory and its dates.
pub const MAX_DAYS: u32 = 3650;

/// The name of the state file inside the simulation's directory (the seed's name).
pub const STATE_FILE_NAME: &str = ".daemon-state.json";

/// How `simulate` runs.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// How many days to simulate.
    pub days: u32,
    /// The seed of the random day pattern.
    pub seed: u64,
    /// The directory for the state file; a new temporary directory when absent.
    pub dir: Option<PathBuf>,
    /// Draw a hypnogram to this SVG file.
    pub plot: Option<PathBuf>,
    /// Print the summary as one JSON document.
    pub json: bool,
}

/// Why a simulation could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// Zero days were asked for.
    #[error("days must be at least 1")]
    NoDays,
    /// More than [`MAX_DAYS`] days were asked for.
    #[error("days must be at most {MAX_DAYS}, not {0}")]
    TooManyDays(u32),
    /// The directory already holds a state file, so the run would not start fresh.
    #[error("{} already holds a state file; simulate needs a fresh directory", .0.display())]
    NotFresh(PathBuf),
    /// The temporary directory could not be made.
    #[error("cannot create a temporary directory: {0}")]
    TempDir(#[source] io::Error),
    /// The engine failed in a way the host did not arrange.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Reopening the state file found it damaged, which a crash must never cause.
    #[error("the state file was not clean after a restart: {0}")]
    Corrupt(String),
    /// The hypnogram could not be written.
    #[error("cannot write the hypnogram {}: {source}", .path.display())]
    Plot {
        /// The SVG file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The output could not be written.
    #[error("cannot write the output: {0}")]
    Output(#[from] io::Error),
}

/// Where every simulation starts: a Monday midnight, UTC.
fn start_of_run() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 4, 20, 0, 0, 0).single().unwrap_or(chrono::DateTime::UNIX_EPOCH)
}

impl SimulateError {
    /// Whether the simulation refused to start or could not use its files (bad options, a used or
    /// unusable directory, a state file the store refuses, a hypnogram it cannot write), as opposed
    /// to failing while it ran.
    pub fn refused(&self) -> bool {
        match self {
            Self::NoDays | Self::TooManyDays(_) | Self::NotFresh(_) | Self::TempDir(_) => true,
            Self::Plot { .. } => true,
            Self::Engine(EngineError::Store(_)) => true,
            Self::Engine(_) | Self::Corrupt(_) | Self::Output(_) => false,
        }
    }
}

/// Runs the simulation, writing progress and the summary to `out`.
pub fn run(options: &SimulateOptions, out: &mut dyn Write) -> Result<(), SimulateError> {
    simulate(options, out)
}

fn state_dir(options: &SimulateOptions) -> Result<PathBuf, SimulateError> {
    match &options.dir {
        Some(dir) => Ok(dir.clone()),
        None => tempfile::Builder::new()
            .prefix("daemon-state-sim-")
            .tempdir()
            .map(tempfile::TempDir::keep)
            .map_err(SimulateError::TempDir),
    }
}

fn simulate(options: &SimulateOptions, out: &mut dyn Write) -> Result<(), SimulateError> {
    if options.days == 0 {
        return Err(SimulateError::NoDays);
    }
    if options.days > MAX_DAYS {
        return Err(SimulateError::TooManyDays(options.days));
    }
    let dir = state_dir(options)?;
    let path = dir.join(STATE_FILE_NAME);
    if path.exists() {
        return Err(SimulateError::NotFresh(dir));
    }
    let start = start_of_run();
    let mut host = Host::start(path.clone(), options.seed, start, options.days)?;
    if !options.json {
        writeln!(
            out,
            "simulating {} days from {} (UTC), seed {}",
            options.days,
            start.format("%Y-%m-%d"),
            options.seed
        )?;
    }
    for day in 0..options.days {
        let end = start + Duration::days(i64::from(day) + 1);
        host.run_until(end)?;
        if !options.json {
            writeln!(out, "{}", summary::day_line(&host.tally, &host.trace, day))?;
            out.flush()?;
        }
    }
    let end = start + Duration::days(i64::from(options.days));
    let final_state = host.finish(end)?;
    let report = Report {
        days: options.days,
        seed: options.seed,
        tally: &host.tally,
        rows: &host.rows,
        trace: &host.trace,
        final_state,
    };
    if let Some(plot) = &options.plot {
        // Drawn from the journal the run left, as `history --plot` draws it.
        let title =
            format!("daemon-state hypnogram: {} days, seed {} (UTC)", options.days, options.seed);
        let journal = Store::open_read_only(path.clone())
            .and_then(|store| store.read_journal())
            .map_err(EngineError::from)?;
        let trace = crate::history::trace(&journal, start, options.days);
        write_plot(plot, &trace, &title)?;
    }
    if options.json {
        let doc = Doc::ok(true)
            .extend(summary::to_json(&report))
            .with("state_file", path.display().to_string())
            .with("plot", options.plot.as_ref().map(|p| p.display().to_string()));
        writeln!(out, "{doc}")?;
    } else {
        summary::write_text(out, &report)?;
        if let Some(plot) = &options.plot {
            writeln!(out, "hypnogram: {}", plot.display())?;
        }
        writeln!(out, "state file: {}", path.display())?;
        writeln!(out, "  (read it with: daemon-state status --state-file {})", path.display())?;
    }
    Ok(())
}

fn write_plot(path: &Path, trace: &trace::Trace, title: &str) -> Result<(), SimulateError> {
    std::fs::write(path, plot::svg(trace, title))
        .map_err(|source| SimulateError::Plot { path: path.to_owned(), source })
}
