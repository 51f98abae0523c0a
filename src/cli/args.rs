//! The command line's grammar: global options, subcommands and their arguments, as clap derives.
//!
//! Owns names, defaults, environment variables and the parsing of option values (`--now`, `--tz`).
//! It must not run anything: `cli` turns a parsed command into engine calls.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::sessions::REAPER_TTL_SECS;
use crate::simulate::MAX_DAYS;
use crate::timestamp::{self, Timestamp};

/// What `--help` says after the options.
const AFTER_HELP: &str = "\
Warnings and errors go to stderr, a line each; RUST_LOG refines which (RUST_LOG=off for none, \
RUST_LOG=debug for more). Exit codes: 0 success, 1 the command ran and the answer is a failure, \
2 bad usage or a refusal to start.";

/// Sleep/wake lifecycle of a long-lived background daemon, over its JSON state file.
#[derive(Debug, Parser)]
#[command(name = "daemon-state", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The state file [env: DAEMON_STATE_FILE, unless empty] [default:
    /// ~/.iai-mcp/.daemon-state.json].
    #[arg(long, global = true, value_name = "PATH")]
    pub state_file: Option<PathBuf>,
    /// Take this moment as now instead of reading the system clock.
    #[arg(long, global = true, value_name = "RFC3339", value_parser = parse_now)]
    pub now: Option<Timestamp>,
    /// The IANA time zone the quiet window is learned and checked in, for this one command
    /// without storing it (`serve` stores it in the state file) [env: DAEMON_STATE_TZ, unless
    /// empty] [default: the state file's `timezone`, else UTC].
    #[arg(long, global = true, value_name = "IANA", value_parser = parse_tz)]
    pub tz: Option<String>,
    /// Print one JSON document instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for the state file's lock while another process holds it, then give up
    /// with exit 2 (`serve`: fail that request). After one second of waiting a line on stderr
    /// says so. Fractions allowed; 0 tries once.
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value = "30",
        allow_hyphen_values = true,
        value_parser = parse_lock_timeout
    )]
    pub lock_timeout: Duration,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the state, its timestamps, pending sessions, the digest, the quiet window and the next
    /// deadline.
    Status,
    /// Feed one event to the engine and show the transitions and effects.
    Event {
        /// The event.
        #[command(subcommand)]
        event: EventCommand,
    },
    /// First-turn tracking of sessions.
    Sessions {
        /// What to do.
        #[command(subcommand)]
        action: SessionsCommand,
    },
    /// The morning digest.
    Digest {
        /// What to do.
        #[command(subcommand)]
        action: DigestCommand,
    },
    /// Draw the machine from its transition table.
    Diagram(DiagramArgs),
    /// Drive a simulated host through days of sessions and nights.
    Simulate(SimulateArgs),
    /// Answer newline-delimited JSON requests on stdin/stdout or a Unix socket, until the input
    /// ends or SIGTERM, SIGINT or SIGHUP (which let the requests in flight finish, remove the
    /// socket and exit 0).
    Serve {
        /// Listen on this Unix socket instead of stdin/stdout.
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Serve at most this many socket connections at once; more get one
        /// `too_many_connections` reply and are closed.
        #[arg(
            long,
            value_name = "N",
            default_value_t = 64,
            value_parser = clap::value_parser!(u32).range(1..)
        )]
        max_connections: u32,
    },
    /// Inspect the state file and the files beside it, changing nothing; fails on any error.
    Check,
}

/// The engine events, one subcommand each.
#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// The daemon started (a night left running is recovered to WAKE).
    Boot,
    /// The scheduler's periodic tick.
    Tick {
        /// The memory store holds nothing to consolidate.
        #[arg(long)]
        store_empty: bool,
    },
    /// A client session opened.
    SessionStarted {
        /// The session's id.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// A client recalled memory in a session.
    Recall {
        /// The session's id.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// The host took the exclusive lock.
    LockAcquired,
    /// The host could not take the lock.
    LockDenied,
    /// The host lost the lock mid-night.
    LockLost,
    /// A client talked to the host.
    McpActivity,
    /// The REM cycle the engine asked for finished.
    RemCycleFinished {
        /// Episodes the cycle summarised.
        #[arg(long, value_name = "N", default_value_t = 0)]
        summaries: u64,
        /// Schema candidates the cycle induced.
        #[arg(long, value_name = "N", default_value_t = 0)]
        schema_candidates: u64,
        /// The cycle called the model, which gave this insight.
        #[arg(long, value_name = "TEXT")]
        claude_insight: Option<String>,
        /// The cycle hit its time limit.
        #[arg(long)]
        timed_out: bool,
    },
    /// The user asks the daemon to sleep now (refused unless awake).
    UserSleep {
        /// Why, in the user's words.
        #[arg(default_value = "", allow_hyphen_values = true)]
        reason: String,
    },
    /// Ask for one REM cycle now.
    ForceRem,
    /// Ask a running night to end at the next cycle boundary.
    ForceWake,
    /// Pause the scheduler.
    Pause,
    /// Resume the scheduler.
    Resume,
    /// The daemon is stopping (a running night is walked back to WAKE).
    Shutdown,
}

/// First-turn tracking.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Mark a session's first turn (keeps the newest 100 marks of the last 24 h).
    Open {
        /// The session's id.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Consume a session's first turn: true exactly once per mark.
    Consume {
        /// The session's id.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Drop marks older than the time to live; prints the dropped ids.
    Prune {
        /// The time to live, in seconds.
        #[arg(long, value_name = "N", default_value_t = REAPER_TTL_SECS)]
        ttl_secs: f64,
    },
}

/// The morning digest.
#[derive(Debug, Subcommand)]
pub enum DigestCommand {
    /// Take the pending digest, unless one was shown less than 18 h ago.
    Take,
}

/// How `diagram` runs.
#[derive(Debug, Args)]
pub struct DiagramArgs {
    /// Draw only this format [default: every available one].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// The directory to write into.
    #[arg(long, value_name = "DIR", default_value = "diagrams")]
    pub out: PathBuf,
}

/// A diagram format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Graphviz DOT (`lifecycle.dot`).
    Dot,
    /// SVG rendered by Graphviz's `dot` (`lifecycle.svg`).
    Svg,
    /// A Mermaid state diagram (`lifecycle.mmd`).
    Mermaid,
}

/// How `simulate` runs.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// How many days to simulate, 1 to 3650.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 7,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DAYS))
    )]
    pub days: u32,
    /// The seed of the random day pattern.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// The directory for the state file [default: a new temporary directory].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Draw a hypnogram to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

fn parse_now(text: &str) -> Result<Timestamp, String> {
    timestamp::parse_moment(text).map_err(|e| e.to_string())
}

fn parse_lock_timeout(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|secs| secs.is_finite() && *secs >= 0.0)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| "not a number of seconds (0 or more)".to_owned())
}

/// An IANA zone name, as the zone spells it.
pub fn parse_tz(text: &str) -> Result<String, String> {
    text.parse::<chrono_tz::Tz>()
        .map(|tz| tz.name().to_owned())
        .map_err(|_| "not an IANA time zone".to_owned())
}
