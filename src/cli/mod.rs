//! The `daemon-state` command line: parsing, running one command, and what it prints.
//!
//! Owns turning a command into engine calls (each one a locked read-modify-write of the state
//! file), the output on stdout, the warnings on stderr and the error that decides the exit code.
//! It must not decide lifecycle behaviour nor build the reply documents: the engine does both.

pub mod args;
mod draw;
mod log;
mod render;

pub use render::printable;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::FromArgMatches;
use clap::error::ErrorKind;

use crate::check;
use crate::clock::{Clock, SystemClock};
use crate::digest::{self, RemResult};
use crate::doc::{Doc, ordered};
use crate::engine::{Engine, EngineError, OpenReport};
use crate::event::{Event, EventKind};
use crate::history;
use crate::replay;
use crate::run::{self as host, RunError, RunOptions};
use crate::serve::{self, ServeError, ServeOptions};
use crate::sessions;
use crate::simulate::{self, SimulateError, SimulateOptions};
use crate::store::{LockWait, OnWait, Peeked, Store, StoreError, Waiting};
use crate::timestamp::Timestamp;

pub use args::Cli;
use args::{Command, DigestCommand, EventCommand, HistoryArgs, SessionsCommand};

/// How long a command waits for the state file's lock unless `--lock-timeout` says otherwise.
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// The exit code of a command that ran but whose answer is a failure.
pub const EXIT_FAILURE: u8 = 1;
/// The exit code of bad usage or an unreadable input.
pub const EXIT_USAGE: u8 = 2;

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The arguments are wrong; the message is one line naming the argument.
    #[error("{0}")]
    Usage(String),
    /// The engine refused the event or could not read or write the state file.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// `check` found at least one error.
    #[error("check found {errors} error(s) in {}", .path.display())]
    CheckFailed {
        /// The state file checked.
        path: PathBuf,
        /// How many errors.
        errors: usize,
    },
    /// The state file named by an environment variable was refused.
    #[error("{source} (the path is {var}'s value)")]
    FromEnv {
        /// The variable.
        var: &'static str,
        /// The error.
        source: Box<CliError>,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// Graphviz's `dot` could not render the SVG.
    #[error("cannot render {} with Graphviz `dot`: {reason}", .path.display())]
    Graphviz {
        /// The SVG file that was to be written.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// `serve` refused to start or stopped with an error.
    #[error("serve: {0}")]
    Serve(#[from] ServeError),
    /// `run` refused to start.
    #[error("run: {0}")]
    Run(#[from] RunError),
    /// `simulate` refused to start or stopped with an error.
    #[error("simulate: {0}")]
    Simulate(#[from] SimulateError),
    /// Standard output could not be written.
    #[error("cannot write to standard output: {0}")]
    Stdout(#[source] io::Error),
    /// A file given as input could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// `replay` found a divergence, or could not replay the journal.
    #[error("replay: {0}")]
    Replay(#[from] replay::ReplayError),
}

impl CliError {
    /// The process exit code: 1 when the command ran and the answer is a failure, 2 for bad usage,
    /// an input that cannot be read, or any other refusal to start (the same refusal exits 2 from
    /// every command).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Write { .. } | Self::Graphviz { .. } | Self::Read { .. } => {
                EXIT_USAGE
            }
            Self::Replay(replay::ReplayError::BadStart(_)) => EXIT_USAGE,
            Self::Replay(_) => EXIT_FAILURE,
            Self::Engine(EngineError::Store(
                StoreError::Missing { .. } | StoreError::Corrupt { .. },
            )) => EXIT_FAILURE,
            Self::Engine(EngineError::Store(_)) => EXIT_USAGE,
            Self::Engine(EngineError::Rejected(_) | EngineError::Illegal(_)) => EXIT_FAILURE,
            Self::FromEnv { source, .. } => source.exit_code(),
            Self::Serve(error) if error.refused_to_start() => EXIT_USAGE,
            Self::Run(_) => EXIT_USAGE,
            Self::Simulate(error) if error.refused() => EXIT_USAGE,
            Self::CheckFailed { .. } | Self::Serve(_) | Self::Simulate(_) | Self::Stdout(_) => {
                EXIT_FAILURE
            }
        }
    }

    /// Whether this is only a reader of standard output that went away, which is not an error.
    pub fn is_broken_pipe(&self) -> bool {
        let broken = |e: &io::Error| e.kind() == io::ErrorKind::BrokenPipe;
        match self {
            Self::Stdout(e) | Self::Simulate(SimulateError::Output(e)) => broken(e),
            Self::Serve(ServeError::Stream { source, .. }) => broken(source),
            _ => false,
        }
    }
}

/// Parses the process's arguments and runs the command, writing its output to `out`. Help and
/// version requests are written to `out` too. Warnings and errors go to stderr, a line each
/// (`RUST_LOG` refines which).
pub fn run_from_env(out: &mut dyn Write) -> Result<(), CliError> {
    log::init();
    let parsed =
        Cli::grammar().try_get_matches().and_then(|matches| Cli::from_arg_matches(&matches));
    match parsed {
        Ok(cli) => run(cli, out),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            write!(out, "{}", e.render()).and_then(|()| out.flush()).map_err(CliError::Stdout)
        }
        Err(e) => Err(CliError::Usage(one_line(&e))),
    }
}

/// A clap error as one line: its first paragraph without the `error:` prefix and its `tip:` lines
/// (clap's "a similar argument exists" suggestions), or, when a subcommand is missing, the command
/// that needs one.
fn one_line(error: &clap::Error) -> String {
    let text = error.render().to_string();
    if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let usage = text.lines().find_map(|line| line.trim().strip_prefix("Usage: "));
        let command: Vec<&str> = usage
            .unwrap_or("daemon-state")
            .split_whitespace()
            .take_while(|word| !word.starts_with(['[', '<']))
            .collect();
        let command = command.join(" ");
        return match command.strip_prefix("daemon-state ") {
            Some(sub) => format!("`{sub}` needs a subcommand (see {command} --help)"),
            None => format!("a subcommand is required (see {command} --help)"),
        };
    }
    let first: Vec<&str> =
        text.lines().map(str::trim).take_while(|line| !line.is_empty()).collect();
    let line = first.join(" ");
    let line = line.strip_prefix("error: ").unwrap_or(&line);
    let tips: Vec<&str> =
        text.lines().map(str::trim).filter(|line| line.starts_with("tip: ")).collect();
    if tips.is_empty() {
        format!("{line} (see --help)")
    } else {
        format!("{line}; {} (see --help)", tips.join("; "))
    }
}

/// The environment variable that names the state file when `--state-file` does not.
pub const STATE_FILE_ENV: &str = "DAEMON_STATE_FILE";
/// The environment variable that names the zone when `--tz` does not.
pub const TZ_ENV: &str = "DAEMON_STATE_TZ";

/// What every command shares: the options it uses, resolved.
struct Context {
    state_file: Option<PathBuf>,
    now: Timestamp,
    /// Whether the command uses a zone: only then is `DAEMON_STATE_TZ` read.
    zoned: bool,
    tz: Option<String>,
    json: bool,
    lock_timeout: Duration,
}

/// An environment variable's value, `None` when it is unset or empty.
fn env_value(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|value| !value.is_empty())
}

impl Context {
    /// The state file: `--state-file`, `DAEMON_STATE_FILE`, else the seed's default under `$HOME`.
    fn state_file(&self) -> Result<PathBuf, CliError> {
        self.located().map(|(path, _)| path)
    }

    /// The state file, and the environment variable it came from, if it did.
    fn located(&self) -> Result<(PathBuf, Option<&'static str>), CliError> {
        if let Some(path) = &self.state_file {
            return Ok((path.clone(), None));
        }
        if let Some(path) = env_value(STATE_FILE_ENV) {
            return Ok((PathBuf::from(path), Some(STATE_FILE_ENV)));
        }
        match std::env::var_os("HOME").filter(|home| !home.is_empty()) {
            Some(home) => Ok((Path::new(&home).join(".iai-mcp").join(".daemon-state.json"), None)),
            None => Err(CliError::Usage(
                "no HOME to find the default state file in; pass --state-file".to_owned(),
            )),
        }
    }

    /// The zone for this command: `--tz` (already checked), else `DAEMON_STATE_TZ` unless it is
    /// empty. Read only by the commands that use a zone, so that a bad value breaks no other.
    fn tz(&self) -> Result<Option<String>, CliError> {
        if !self.zoned {
            return Ok(None);
        }
        if let Some(tz) = &self.tz {
            return Ok(Some(tz.clone()));
        }
        let Some(value) = env_value(TZ_ENV) else {
            return Ok(None);
        };
        let text = value.to_string_lossy();
        args::parse_tz(&text).map(Some).map_err(|_| {
            CliError::Usage(format!(
                "{TZ_ENV}: unknown time zone {text:?}: expected an IANA name such as Europe/Paris"
            ))
        })
    }

    /// Opens the engine for a read-modify-write, waiting for the lock as `--lock-timeout` says.
    fn engine(&self) -> Result<Engine, CliError> {
        self.engine_with(|path| {
            let mut store = Store::open(path)?;
            store.set_lock_wait(self.lock_wait());
            Engine::with_store(store)
        })
    }

    /// Opens the engine with `open` (read-only for `status`), which reports a recovered corrupt
    /// file and odd values on stderr through the log, and uses the zone for this command without
    /// storing it.
    fn engine_with(
        &self,
        open: impl FnOnce(&Path) -> Result<(Engine, OpenReport), EngineError>,
    ) -> Result<Engine, CliError> {
        let (path, from) = self.located()?;
        let zone = match self.tz()? {
            Some(tz) => Some(
                tz.parse()
                    .map_err(|_| CliError::Usage(format!("--tz: unknown time zone {tz:?}")))?,
            ),
            None => None,
        };
        let (mut engine, _report) = open(&path).map_err(|error| from_env(from, error.into()))?;
        if let Some(zone) = zone {
            engine.override_zone(zone);
        }
        Ok(engine)
    }

    /// Waits for the lock up to `--lock-timeout`, saying so on stderr after a second.
    fn lock_wait(&self) -> LockWait {
        let on_wait: OnWait = Arc::new(|waiting: &Waiting| {
            let _ = writeln!(io::stderr().lock(), "daemon-state: {waiting}");
        });
        LockWait { timeout: Some(self.lock_timeout), on_wait: Some(on_wait) }
    }

    /// Prints a JSON document, or the human text made from it.
    fn print(
        &self,
        out: &mut dyn Write,
        doc: &Doc,
        human: impl FnOnce(&Doc) -> String,
    ) -> Result<(), CliError> {
        let text = if self.json { format!("{doc}\n") } else { human(doc) };
        out.write_all(text.as_bytes()).map_err(CliError::Stdout)
    }
}

/// `error`, naming the environment variable the state file's path came from, if it did.
fn from_env(var: Option<&'static str>, error: CliError) -> CliError {
    match var {
        Some(var) => CliError::FromEnv { var, source: Box::new(error) },
        None => error,
    }
}

/// One warning line on stderr (a failure to write it is ignored: there is nowhere else to say it).
fn warn(message: &str) {
    let _ = writeln!(io::stderr().lock(), "daemon-state: warning: {}", printable(message));
}

/// The options given before the command and after it, merged; a usage error names the first
/// option given before the command that the command does not use.
fn options(cli: &Cli) -> Result<(args::Options, bool), CliError> {
    let leading = cli.leading();
    let (given, uses) = cli.command.options();
    if let Some(flag) = leading.flags().into_iter().find(|flag| !uses.contains(flag)) {
        let name = cli.command.name();
        return Err(CliError::Usage(format!(
            "{flag} is not used by `{name}` (see daemon-state {name} --help)"
        )));
    }
    Ok((given.or(leading), uses.contains(&"--tz")))
}

/// Runs one parsed command, writing its output to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let (options, zoned) = options(&cli)?;
    let ctx = Context {
        state_file: options.state_file,
        now: options.now.unwrap_or_else(|| SystemClock.now()),
        zoned,
        tz: options.tz,
        json: options.json,
        lock_timeout: options.lock_timeout.unwrap_or(DEFAULT_LOCK_TIMEOUT),
    };
    match cli.command {
        Command::Status { .. } => {
            let (path, _) = ctx.located()?;
            let engine = ctx.engine_with(|path| Engine::open_read_only(path))?;
            let doc = Doc::ok(true)
                .with("file", path.display().to_string())
                .extend(engine.status(ctx.now));
            ctx.print(out, &doc, render::status)?;
        }
        Command::Why { at, .. } => {
            let engine = ctx.engine_with(|path| Engine::open_read_only(path))?;
            let why = crate::why::why(engine.state(), engine.data(), at.unwrap_or(ctx.now));
            ctx.print(out, &why.to_doc(), |_| format!("{}\n", why.text))?;
        }
        Command::Event { event, .. } => run_event(&ctx, event, out)?,
        Command::Sessions { action, .. } => run_sessions(&ctx, action, out)?,
        Command::Digest { action: DigestCommand::Take, .. } => {
            let mut engine = ctx.engine()?;
            let taken = engine.update("digest take", ctx.now, |record| {
                let taken = digest::take(record, ctx.now);
                let changed = taken.is_some();
                (taken, changed)
            })?;
            ctx.print(out, &Doc::ok(true).with("digest", taken), |doc| {
                render::digest(&doc.get("digest"))
            })?;
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::grammar(), "daemon-state", &mut script);
            out.write_all(&script).map_err(CliError::Stdout)?;
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::grammar())
                .render(&mut page)
                .map_err(|source| CliError::Write { path: PathBuf::from("-"), source })?;
            out.write_all(&page).map_err(CliError::Stdout)?;
        }
        Command::Diagram(args) => draw::run(&ctx, &args, out)?,
        Command::Simulate(args) => {
            let options = SimulateOptions {
                days: args.days,
                seed: args.seed,
                dir: args.dir,
                plot: args.plot,
                json: ctx.json,
            };
            simulate::run(&options, out)?;
        }
        Command::History(args) => run_history(&ctx, &args, out)?,
        Command::Serve { socket, max_connections, .. } => {
            let (state_file, from) = ctx.located()?;
            let options = ServeOptions {
                state_file,
                socket,
                now: options.now,
                tz: ctx.tz()?,
                lock_wait: ctx.lock_wait(),
                max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
            };
            serve::run(&options).map_err(|error| match error {
                ServeError::Engine(_) => from_env(from, error.into()),
                error => error.into(),
            })?;
        }
        Command::Run(args) => {
            let (state_file, from) = ctx.located()?;
            let lock_file = match args.lock_file {
                Some(path) => path,
                None => match std::env::var_os("HOME").filter(|home| !home.is_empty()) {
                    Some(home) => Path::new(&home).join(".iai-mcp").join(".lock"),
                    None => {
                        return Err(CliError::Usage(
                            "no HOME to find the default lock file in; pass --lock-file".into(),
                        ));
                    }
                },
            };
            let options = RunOptions {
                state_file,
                socket: args.socket,
                rem_command: args.rem_command,
                lock_file,
                cycle_timeout: args.cycle_timeout,
                events: args.events,
                tz: ctx.tz()?,
                lock_wait: ctx.lock_wait(),
            };
            host::run(&options).map_err(|error| match error {
                RunError::Engine(_) => from_env(from, error.into()),
                error => error.into(),
            })?;
        }
        Command::Replay { journal, from, out: target, .. } => {
            run_replay(&ctx, &journal, from.as_deref(), target.as_deref(), out)?;
        }
        Command::Check { .. } => {
            let path = ctx.state_file()?;
            let report = check::check(&path);
            let doc = ordered! {
                "path": path.display().to_string(),
                "ok": report.errors() == 0,
                "errors": report.errors(),
                "warnings": report.warnings(),
                "findings": report.findings.iter().map(check::Finding::to_json).collect::<Vec<_>>(),
            };
            ctx.print(out, &doc, |_| render::findings(&report))?;
            if report.errors() > 0 {
                out.flush().map_err(CliError::Stdout)?;
                return Err(CliError::CheckFailed { path, errors: report.errors() });
            }
        }
    }
    out.flush().map_err(CliError::Stdout)
}

/// `replay JOURNAL [--from SNAPSHOT] [--out FILE]`.
fn run_replay(
    ctx: &Context,
    journal: &Path,
    from: Option<&Path>,
    target: Option<&Path>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| CliError::Read { path: path.to_owned(), source })
    };
    let mut bytes = Vec::new();
    let mut rotated = journal.as_os_str().to_owned();
    rotated.push(".1");
    let rotated = PathBuf::from(rotated);
    if rotated.is_file() {
        bytes = read(&rotated)?;
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            bytes.push(b'\n');
        }
    }
    bytes.extend(read(journal)?);
    let start = from.map(read).transpose()?;
    let replayed = match replay::replay(&bytes, start.as_deref()) {
        Ok(replayed) => replayed,
        Err(error) => {
            if ctx.json {
                let doc = Doc::ok(false).with("error", error.to_string());
                ctx.print(out, &doc, |_| String::new())?;
                out.flush().map_err(CliError::Stdout)?;
            }
            return Err(error.into());
        }
    };
    match target {
        Some(path) if path == Path::new("-") => {
            out.write_all(&replayed.document).map_err(CliError::Stdout)?;
            out.write_all(b"\n").map_err(CliError::Stdout)?;
            return out.flush().map_err(CliError::Stdout);
        }
        Some(path) => {
            std::fs::write(path, &replayed.document)
                .map_err(|source| CliError::Write { path: path.to_owned(), source })?;
        }
        None => {}
    }
    let doc = ordered! {
        "ok": true,
        "lines": replayed.lines,
        "applied": replayed.applied,
        "generation": replayed.generation,
        "out": target.map(|p| p.display().to_string()),
    };
    ctx.print(out, &doc, |_| {
        let written = target.map_or(String::new(), |p| {
            format!("; written to {}", printable(&p.display().to_string()))
        });
        format!(
            "replayed {} of {} lines: every outcome agrees; generation {}{written}\n",
            replayed.applied, replayed.lines, replayed.generation
        )
    })
}

/// `history`: the journal read as nights, without a lock and without writing.
fn run_history(ctx: &Context, args: &HistoryArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let (path, from) = ctx.located()?;
    let mut store = Store::open_read_only(path.clone())
        .map_err(|error| from_env(from, EngineError::from(error).into()))?;
    let mut notes = Vec::new();
    let generation =
        match store.peek().map_err(|error| from_env(from, EngineError::from(error).into()))? {
            Peeked::Parsed(record) => Some(record.generation()),
            Peeked::Missing => {
                notes.push(format!("no state file at {}", path.display()));
                None
            }
            Peeked::Corrupt(problem) => {
                notes.push(format!(
                    "the state file is unreadable ({problem}): its generation is unknown"
                ));
                None
            }
        };
    let journal =
        store.read_journal().map_err(|error| from_env(from, EngineError::from(error).into()))?;
    if journal.is_empty() {
        notes.push(format!(
            "no journal at {}: the history is empty",
            store.journal_path().display()
        ));
    }
    let history = history::read(&journal, generation);
    let window = history.window(args.days);
    if let Some(plot) = &args.plot {
        let (start, days) = window.unwrap_or((ctx.now, 1));
        let trace = history::trace(&journal, start, days);
        let title =
            format!("daemon-state hypnogram: {days} days from {} (UTC)", start.format("%Y-%m-%d"));
        std::fs::write(plot, simulate::plot::svg(&trace, &title))
            .map_err(|source| CliError::Write { path: plot.clone(), source })?;
    }
    let history = match window {
        Some((start, _)) => history.since(start),
        None => history,
    };
    let doc = history
        .to_doc(&notes)
        .with("journal", store.journal_path().display().to_string())
        .with("plot", args.plot.as_ref().map(|p| p.display().to_string()));
    ctx.print(out, &doc, |_| {
        let mut text = history.text(&notes);
        if let Some(plot) = &args.plot {
            text.push_str(&format!("hypnogram: {}\n", plot.display()));
        }
        text
    })
}

/// The engine event a subcommand names.
fn event_kind(event: EventCommand) -> EventKind {
    match event {
        EventCommand::Boot => EventKind::Boot,
        EventCommand::Tick { store_empty } => EventKind::Tick { store_empty },
        EventCommand::SessionStarted { id } => EventKind::SessionStarted { session_id: Some(id) },
        EventCommand::Recall { id } => EventKind::Recall { session_id: Some(id) },
        EventCommand::LockAcquired => EventKind::LockAcquired,
        EventCommand::LockDenied => EventKind::LockDenied,
        EventCommand::LockLost => EventKind::LockLost,
        EventCommand::McpActivity => EventKind::McpActivity,
        EventCommand::RemCycleFinished {
            summaries,
            schema_candidates,
            claude_insight,
            timed_out,
        } => EventKind::RemCycleFinished {
            result: RemResult {
                summaries_created: summaries,
                schema_candidates,
                claude_call_used: claude_insight.is_some(),
                main_insight_text: claude_insight,
                timed_out,
            },
        },
        EventCommand::UserSleep { reason } => EventKind::UserSleepRequested { reason, ts: None },
        EventCommand::ForceRem => EventKind::ForceRemRequested { ts: None },
        EventCommand::ForceWake => EventKind::ForceWakeRequested { ts: None },
        EventCommand::Pause => EventKind::Pause,
        EventCommand::Resume => EventKind::Resume,
        EventCommand::Shutdown => EventKind::Shutdown,
    }
}

/// `event NAME`: prints the reply document; a rejected event prints its reply and fails.
fn run_event(ctx: &Context, event: EventCommand, out: &mut dyn Write) -> Result<(), CliError> {
    let mut engine = ctx.engine()?;
    // The reply `serve` gives the same event, `next_deadline` included.
    let with_deadline = |engine: &Engine, reply: Doc| {
        reply.with("next_deadline", serve::next_deadline(engine, ctx.now))
    };
    match engine.handle(Event::new(ctx.now, event_kind(event))) {
        Ok(outcome) => {
            let reply = with_deadline(&engine, serve::outcome_reply(engine.state(), &outcome));
            ctx.print(out, &reply, |doc| render::reply(&doc.to_value()))
        }
        Err(EngineError::Rejected(rejection)) => {
            let reply = with_deadline(&engine, serve::rejection_reply(&rejection));
            ctx.print(out, &reply, |doc| render::reply(&doc.to_value()))?;
            out.flush().map_err(CliError::Stdout)?;
            Err(EngineError::Rejected(rejection).into())
        }
        Err(other) => Err(other.into()),
    }
}

/// `sessions open|consume|prune`: first-turn bookkeeping outside the machine.
fn run_sessions(
    ctx: &Context,
    action: SessionsCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut engine = ctx.engine()?;
    let now = ctx.now;
    match action {
        SessionsCommand::Open { id } => {
            let opened = engine.update("sessions open", ctx.now, |record| {
                let opened = sessions::mark_in(record, &id, now);
                (opened, opened.changed)
            })?;
            ctx.print(out, &Doc::ok(true), |_| {
                if opened.marked {
                    format!("first turn marked for {}\n", printable(sessions::clip_session_id(&id)))
                } else if sessions::clip_session_id(&id).is_empty() {
                    "nothing marked: the session id is empty\n".to_owned()
                } else {
                    "nothing marked: the mark was pruned at once\n".to_owned()
                }
            })
        }
        SessionsCommand::Consume { id } => {
            let first = engine.update("sessions consume", ctx.now, |record| {
                let first = sessions::consume_in(record, &id);
                (first, first)
            })?;
            ctx.print(out, &Doc::ok(true).with("first_turn", first), |_| {
                let id = printable(&id);
                if first {
                    format!("first turn of {id}\n")
                } else {
                    format!("not a first turn: {id} has no pending mark\n")
                }
            })
        }
        SessionsCommand::Prune { ttl_secs } => {
            let dropped = engine.update("sessions prune", ctx.now, |record| {
                let dropped = sessions::reap_in(record, now, ttl_secs);
                let changed = !dropped.is_empty();
                (dropped, changed)
            })?;
            ctx.print(out, &Doc::ok(true).with("dropped", &dropped), |_| match dropped.len() {
                0 => "dropped none\n".to_owned(),
                n => format!("dropped {n}: {}\n", printable(&dropped.join(", "))),
            })
        }
    }
}
