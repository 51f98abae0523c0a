//! The command line's grammar: global options, subcommands and their arguments, as clap derives.
//!
//! Owns names, defaults, environment variables, the parsing of option values (`--now`, `--tz`)
//! and which command takes which option. It must not run anything: `cli` turns a parsed command into engine calls.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::sessions::REAPER_TTL_SECS;
use crate::simulate::MAX_DAYS;
use crate::timestamp::{self, Timestamp};

mod opts;

pub use opts::{FileOpt, JsonOpt, LockOpt, NowOpt, Opt, Options, StoreOpts, TzOpt};

/// What `--help` says after the options.
const AFTER_HELP: &str = "\
Warnings and errors go to stderr, a line each; RUST_LOG refines which (RUST_LOG=off for none, \
RUST_LOG=debug for more). Exit codes: 0 success, 1 the command ran and the answer is a failure, \
2 bad usage or a refusal to start.";

/// Sleep/wake lifecycle of a long-lived background daemon, over its JSON state file.
///
/// The options below may come before the command or after it; each command accepts only the
/// ones it uses (see `daemon-state COMMAND --help`), and refuses the others.
#[derive(Debug, Parser)]
#[command(name = "daemon-state", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// `--state-file`, before the command.
    #[command(flatten)]
    pub file: FileOpt,
    /// `--now`, before the command.
    #[command(flatten)]
    pub now: NowOpt,
    /// `--tz`, before the command.
    #[command(flatten)]
    pub tz: TzOpt,
    /// `--json`, before the command.
    #[command(flatten)]
    pub json: JsonOpt,
    /// `--lock-timeout`, before the command.
    #[command(flatten)]
    pub lock: LockOpt,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The grammar: the options are accepted before the command (for every command, checked
    /// against what it uses when it runs) and after it (only on the commands that use them).
    pub fn grammar() -> clap::Command {
        // The option structs are global so that a command with subcommands (`event tick`) takes
        // them after its last word; before the command they must not propagate to every command.
        <Self as clap::CommandFactory>::command().mut_args(|arg| arg.global(false))
    }

    /// The options given before the command, for the check against what the command uses.
    pub fn leading(&self) -> Options {
        let mut options = Options::default();
        self.file.merge(&mut options);
        self.now.merge(&mut options);
        self.tz.merge(&mut options);
        self.json.merge(&mut options);
        self.lock.merge(&mut options);
        options
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the state file's path, the state, its timestamps, pending sessions, the digest, the
    /// quiet window and the next deadline.
    Status {
        /// Options.
        #[command(flatten)]
        file: FileOpt,
        /// Options.
        #[command(flatten)]
        now: NowOpt,
        /// Options.
        #[command(flatten)]
        tz: TzOpt,
        /// Options.
        #[command(flatten)]
        json: JsonOpt,
    },
    /// Explain the state: for each row a tick would try, whether its guard holds and when it
    /// will, and when the next tick can act; reads the state file only.
    Why {
        /// Options.
        #[command(flatten)]
        file: FileOpt,
        /// Options.
        #[command(flatten)]
        now: NowOpt,
        /// Options.
        #[command(flatten)]
        tz: TzOpt,
        /// Options.
        #[command(flatten)]
        json: JsonOpt,
        /// The moment to explain [default: now].
        #[arg(long, value_name = "RFC3339", value_parser = parse_now)]
        at: Option<Timestamp>,
    },
    /// Feed one event to the engine and show the transitions and effects.
    Event {
        /// Options.
        #[command(flatten)]
        opts: StoreOpts,
        /// Options.
        #[command(flatten)]
        tz: TzOpt,
        /// The event.
        #[command(subcommand)]
        event: EventCommand,
    },
    /// First-turn tracking of sessions.
    Sessions {
        /// Options.
        #[command(flatten)]
        opts: StoreOpts,
        /// What to do.
        #[command(subcommand)]
        action: SessionsCommand,
    },
    /// The morning digest.
    Digest {
        /// Options.
        #[command(flatten)]
        opts: StoreOpts,
        /// What to do.
        #[command(subcommand)]
        action: DigestCommand,
    },
    /// Draw the machine from its transition table.
    Diagram(DiagramArgs),
    /// Drive a simulated host through days of sessions and nights.
    Simulate(SimulateArgs),
    /// List the nights the journal beside the state file tells: start, end, cycles, what started
    /// and ended each, the digest; sessions per day; where the journal is incomplete. Reads only.
    History(HistoryArgs),
    /// Answer newline-delimited JSON requests on stdin/stdout or a Unix socket, until the input
    /// ends or SIGTERM, SIGINT or SIGHUP (which let the requests in flight finish, remove the
    /// socket and exit 0).
    Serve {
        /// Options.
        #[command(flatten)]
        file: FileOpt,
        /// Options.
        #[command(flatten)]
        now: NowOpt,
        /// Options.
        #[command(flatten)]
        tz: TzOpt,
        /// Options.
        #[command(flatten)]
        lock: LockOpt,
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
    /// Run as the daemon: tick at each deadline, take the lock, run the REM command for each
    /// cycle, write the audit events, and serve the protocol on a Unix socket meanwhile, until
    /// SIGTERM, SIGINT or SIGHUP (which kill a running cycle, walk the machine back to WAKE,
    /// release the lock, remove the socket and exit 0).
    Run(RunArgs),
    /// Inspect the state file and the files beside it, changing nothing; fails on any error.
    Check {
        /// Options.
        #[command(flatten)]
        file: FileOpt,
        /// Options.
        #[command(flatten)]
        json: JsonOpt,
    },
    /// Replay a journal: apply its events after a starting document's generation, compare every
    /// recomputed outcome with the recorded one, and write the resulting document. Exits 1 at the
    /// first divergence.
    Replay {
        /// The journal (`NAME.journal`; `NAME.journal.1` beside it is read first when present).
        journal: PathBuf,
        /// The state file to start from (default: an empty one, generation 0).
        #[arg(long, value_name = "SNAPSHOT")]
        from: Option<PathBuf>,
        /// Where to write the resulting document (`-` for standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Options.
        #[command(flatten)]
        json: JsonOpt,
    },
    /// Print a completion script for a shell.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff).
    Man,
}

impl Command {
    /// The command's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Status { .. } => "status",
            Self::Why { .. } => "why",
            Self::Event { .. } => "event",
            Self::Sessions { .. } => "sessions",
            Self::Digest { .. } => "digest",
            Self::Diagram(_) => "diagram",
            Self::Simulate(_) => "simulate",
            Self::History(_) => "history",
            Self::Serve { .. } => "serve",
            Self::Run(_) => "run",
            Self::Check { .. } => "check",
            Self::Replay { .. } => "replay",
            Self::Completions { .. } => "completions",
            Self::Man => "man",
        }
    }

    /// The options given after the command, and the flags the command uses.
    pub fn options(&self) -> (Options, &'static [&'static str]) {
        const STORE: &[&str] = &["--state-file", "--now", "--json", "--lock-timeout"];
        let mut options = Options::default();
        let uses: &'static [&'static str] = match self {
            Self::Status { file, now, tz, json } => {
                file.merge(&mut options);
                now.merge(&mut options);
                tz.merge(&mut options);
                json.merge(&mut options);
                &["--state-file", "--now", "--tz", "--json"]
            }
            Self::Why { file, now, tz, json, .. } => {
                file.merge(&mut options);
                now.merge(&mut options);
                tz.merge(&mut options);
                json.merge(&mut options);
                &["--state-file", "--now", "--tz", "--json"]
            }
            Self::Event { opts, tz, .. } => {
                opts.merge(&mut options);
                tz.merge(&mut options);
                &["--state-file", "--now", "--tz", "--json", "--lock-timeout"]
            }
            Self::Sessions { opts, .. } | Self::Digest { opts, .. } => {
                opts.merge(&mut options);
                STORE
            }
            Self::Diagram(DiagramArgs { json, .. }) | Self::Simulate(SimulateArgs { json, .. }) => {
                json.merge(&mut options);
                &["--json"]
            }
            Self::History(HistoryArgs { file, json, .. }) => {
                file.merge(&mut options);
                json.merge(&mut options);
                &["--state-file", "--json"]
            }
            Self::Serve { file, now, tz, lock, .. } => {
                file.merge(&mut options);
                now.merge(&mut options);
                tz.merge(&mut options);
                lock.merge(&mut options);
                &["--state-file", "--now", "--tz", "--lock-timeout"]
            }
            Self::Run(RunArgs { file, tz, lock, .. }) => {
                file.merge(&mut options);
                tz.merge(&mut options);
                lock.merge(&mut options);
                &["--state-file", "--tz", "--lock-timeout"]
            }
            Self::Check { file, json } => {
                file.merge(&mut options);
                json.merge(&mut options);
                &["--state-file", "--json"]
            }
            Self::Replay { json, .. } => {
                json.merge(&mut options);
                &["--json"]
            }
            Self::Completions { .. } | Self::Man => &[],
        };
        (options, uses)
    }
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
    /// Options.
    #[command(flatten)]
    pub json: JsonOpt,
    /// Draw only this format [default: every available one].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// The directory to write into; `-` writes the one format (DOT unless `--format` says
    /// otherwise) to standard output.
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

/// How `run` runs.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Options.
    #[command(flatten)]
    pub file: FileOpt,
    /// Options.
    #[command(flatten)]
    pub tz: TzOpt,
    /// Options.
    #[command(flatten)]
    pub lock: LockOpt,
    /// The Unix socket clients talk to, in the `serve` protocol [default: the state file's path
    /// with `.sock` appended].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The REM command, run once per cycle: a program and its arguments, split at whitespace,
    /// without a shell. Its environment has DAEMON_STATE_CYCLE, DAEMON_STATE_CYCLES and
    /// DAEMON_STATE_IS_LAST; its standard output, when one JSON object, is the cycle's result; a
    /// non-zero exit or a timeout makes the cycle a timed-out one.
    #[arg(long, value_name = "CMD")]
    pub rem_command: String,
    /// The daemon's lock: an exclusive flock on this file, taken for a night [default:
    /// ~/.iai-mcp/.lock].
    #[arg(long, value_name = "PATH")]
    pub lock_file: Option<PathBuf>,
    /// How long a REM cycle may run before it is killed and reported as timed out; fractions
    /// allowed.
    #[arg(long, value_name = "SECS", default_value = "1800", value_parser = parse_cycle_timeout)]
    pub cycle_timeout: Duration,
    /// Append each audit event to this file as a JSON line [default: a line on stderr].
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
}

/// How `simulate` runs.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Options.
    #[command(flatten)]
    pub json: JsonOpt,
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

/// How `history` reads the journal.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Options.
    #[command(flatten)]
    pub file: FileOpt,
    /// Options.
    #[command(flatten)]
    pub json: JsonOpt,
    /// Only the last N days of the journal [default: all of it].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DAYS)))]
    pub days: Option<u32>,
    /// Draw the hypnogram of those days to this SVG file, as `simulate --plot` draws it.
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

fn parse_cycle_timeout(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|secs| secs.is_finite() && *secs > 0.0)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| "not a number of seconds (more than 0)".to_owned())
}

/// An IANA zone name, as the zone spells it.
pub fn parse_tz(text: &str) -> Result<String, String> {
    text.parse::<chrono_tz::Tz>()
        .map(|tz| tz.name().to_owned())
        .map_err(|_| "not an IANA time zone".to_owned())
}
