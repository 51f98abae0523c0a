//! The reference host: a simulated clock driving the engine through days of sessions, recalls and
//! nights, printing progress and a summary.
//!
//! Owns the simulated day pattern, the host side of the protocol (granting the lock, running REM
//! cycles) and the hypnogram. It must not bypass the engine: it is a host like any other.

use std::io::Write;
use std::path::PathBuf;

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

/// Runs the simulation, writing progress and the summary to `out`.
pub fn run(
    options: &SimulateOptions,
    out: &mut dyn Write,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    writeln!(out, "simulate is not built yet ({} days, seed {})", options.days, options.seed)?;
    Err("simulate is not built yet".into())
}
