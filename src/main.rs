//! The `daemon-state` command line.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("daemon-state: the command line is not built yet");
    ExitCode::from(2)
}
