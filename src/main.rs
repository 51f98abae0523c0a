//! The `daemon-state` binary: runs the command line and maps its errors to exit codes.
//!
//! Owns nothing but the mapping: 0 success, 1 the command ran but the answer is a failure, 2 bad
//! usage, an unreadable input or any other refusal to start. A reader of stdout that went away is
//! not an error.

#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::process::ExitCode;

use daemon_state::cli;

fn main() -> ExitCode {
    // Not locked for the whole run: `serve` answers on standard output from a thread of its own.
    match cli::run_from_env(&mut io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is_broken_pipe() => ExitCode::SUCCESS,
        Err(error) => {
            let message = error.to_string();
            let _ = writeln!(io::stderr().lock(), "daemon-state: {}", cli::printable(&message));
            ExitCode::from(error.exit_code())
        }
    }
}
