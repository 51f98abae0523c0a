//! The `serve` protocol: newline-delimited JSON requests in, one reply line out per request.
//!
//! Owns reading lines (from stdin/stdout or a Unix socket), the seed project's control messages
//! and one message per engine event, and their reply documents. It must not reach past the engine:
//! every change goes through `Engine`.

use std::path::PathBuf;

use crate::timestamp::Timestamp;

/// How `serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The state file.
    pub state_file: PathBuf,
    /// Listen on this Unix socket instead of stdin/stdout.
    pub socket: Option<PathBuf>,
    /// A fixed clock (`--now`), for tests and reproducible runs; the system clock otherwise.
    pub now: Option<Timestamp>,
    /// The IANA zone to configure before serving (`--tz`), if given.
    pub tz: Option<String>,
}

/// Runs the protocol until end of input (stdio) or until the process is stopped (socket).
pub fn run(options: &ServeOptions) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Err(format!("serve is not built yet (state file {})", options.state_file.display()).into())
}
