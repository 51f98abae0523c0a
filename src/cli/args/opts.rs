//! The options a command may take (`--state-file`, `--now`, `--tz`, `--json`, `--lock-timeout`),
//! one clap struct each, and what a command was given of them.
//!
//! Owns each option's name, help and value parser. It must not decide which command takes which:
//! the subcommands in `args` flatten the ones they use.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{parse_lock_timeout, parse_now, parse_tz};
use crate::timestamp::Timestamp;

/// The options as given, one place or the other.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// `--state-file`.
    pub state_file: Option<PathBuf>,
    /// `--now`.
    pub now: Option<Timestamp>,
    /// `--tz`.
    pub tz: Option<String>,
    /// `--json`.
    pub json: bool,
    /// `--lock-timeout`.
    pub lock_timeout: Option<Duration>,
}

impl Options {
    /// The flags set here, as written on the command line.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut flags = Vec::new();
        if self.state_file.is_some() {
            flags.push("--state-file");
        }
        if self.now.is_some() {
            flags.push("--now");
        }
        if self.tz.is_some() {
            flags.push("--tz");
        }
        if self.json {
            flags.push("--json");
        }
        if self.lock_timeout.is_some() {
            flags.push("--lock-timeout");
        }
        flags
    }

    /// These options, each filled from `other` where it is unset here.
    pub fn or(self, other: Options) -> Options {
        Options {
            state_file: self.state_file.or(other.state_file),
            now: self.now.or(other.now),
            tz: self.tz.or(other.tz),
            json: self.json || other.json,
            lock_timeout: self.lock_timeout.or(other.lock_timeout),
        }
    }
}

/// `--state-file`.
#[derive(Debug, Args)]
pub struct FileOpt {
    /// The state file [env: DAEMON_STATE_FILE, unless empty] [default:
    /// ~/.iai-mcp/.daemon-state.json].
    #[arg(long, global = true, value_name = "PATH")]
    pub state_file: Option<PathBuf>,
}

/// `--now`.
#[derive(Debug, Args)]
pub struct NowOpt {
    /// Take this moment as now instead of reading the system clock.
    #[arg(long, global = true, value_name = "RFC3339", value_parser = parse_now)]
    pub now: Option<Timestamp>,
}

/// `--tz`.
#[derive(Debug, Args)]
pub struct TzOpt {
    /// The IANA time zone the quiet window is learned and checked in, for this one command
    /// without storing it (`serve` stores it in the state file) [env: DAEMON_STATE_TZ, unless
    /// empty] [default: the state file's `timezone`, else UTC].
    #[arg(long, global = true, value_name = "IANA", value_parser = parse_tz)]
    pub tz: Option<String>,
}

/// `--json`.
#[derive(Debug, Args)]
pub struct JsonOpt {
    /// Print one JSON object, always with `ok`, instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `--lock-timeout`.
#[derive(Debug, Args)]
pub struct LockOpt {
    /// How long to wait for the state file's lock while another process holds it, then give up
    /// with exit 2 (`serve`: fail that request). After one second of waiting a line on stderr
    /// says so. Fractions allowed; 0 tries once [default: 30].
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        allow_hyphen_values = true,
        value_parser = parse_lock_timeout
    )]
    pub lock_timeout: Option<Duration>,
}

/// One option: how it fills [`Options`].
pub trait Opt {
    /// Sets this option's field of `options` when it was given.
    fn merge(&self, options: &mut Options);
}

impl Opt for FileOpt {
    fn merge(&self, options: &mut Options) {
        options.state_file.clone_from(&self.state_file);
    }
}

impl Opt for NowOpt {
    fn merge(&self, options: &mut Options) {
        options.now = self.now;
    }
}

impl Opt for TzOpt {
    fn merge(&self, options: &mut Options) {
        options.tz.clone_from(&self.tz);
    }
}

impl Opt for JsonOpt {
    fn merge(&self, options: &mut Options) {
        options.json = self.json;
    }
}

impl Opt for LockOpt {
    fn merge(&self, options: &mut Options) {
        options.lock_timeout = self.lock_timeout;
    }
}

/// The options of a command that reads and writes the state file.
#[derive(Debug, Args)]
pub struct StoreOpts {
    #[command(flatten)]
    file: FileOpt,
    #[command(flatten)]
    now: NowOpt,
    #[command(flatten)]
    json: JsonOpt,
    #[command(flatten)]
    lock: LockOpt,
}

impl Opt for StoreOpts {
    fn merge(&self, options: &mut Options) {
        self.file.merge(options);
        self.now.merge(options);
        self.json.merge(options);
        self.lock.merge(options);
    }
}
