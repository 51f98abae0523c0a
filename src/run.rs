//! `run`: a long-running host over the engine. It sleeps until the engine's next deadline or a
//! client's message, performs the effects itself (the lock file, the REM command as a child
//! process, the audit events) and serves the `serve` protocol on a Unix socket meanwhile.
//!
//! Owns the host loop: when to tick (at the wall clock's `next_deadline`, re-read at least every
//! [`MAX_SLEEP`] so that a suspend and resume or a clock jump is noticed), performing effects in
//! order, and stopping cleanly on SIGTERM, SIGINT or SIGHUP. Every step of the host takes the
//! engine's mutex, the one `Server` answers each message under, so a message is handled between
//! two steps, never in the middle of one. It must not decide lifecycle behaviour (the engine does)
//! nor answer messages (`serve::Server` does).

mod clients;
mod files;
mod rem;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono_tz::Tz;

use crate::clock::{Clock, SystemClock};
use crate::effects::Effect;
use crate::engine::{Engine, EngineError};
use crate::event::{Event, EventKind};
use crate::serve::stop::BlockedSignals;
use crate::serve::{Server, SocketError, SocketListener, configure_timezone};
use crate::store::{LockWait, Store};

pub use files::instance_lock_path;
use files::{DaemonLock, EventSink, InstanceLock};
use rem::{Cycle, Ended, RemCommand, Running};

/// The longest the host sleeps without looking at the clock: after a suspend and resume (the
/// monotonic clock it sleeps on stops meanwhile) or a jump of the wall clock, a due tick comes at
/// most this late.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);
/// The least time between two of the host's own ticks, so that a deadline that does not move
/// cannot spin the loop.
const MIN_TICK_GAP: Duration = Duration::from_secs(1);
/// How long the host waits before ticking again after the state file could not be written.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// How long a stop waits for a killed REM command to be reaped.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How `run` runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The state file.
    pub state_file: PathBuf,
    /// The Unix socket clients talk to; [`default_socket`] when `None`.
    pub socket: Option<PathBuf>,
    /// The REM command: a program and its arguments, split at whitespace, run without a shell.
    pub rem_command: String,
    /// The file the daemon's lock is an exclusive `flock(2)` on.
    pub lock_file: PathBuf,
    /// How long a REM cycle may run before it is killed and reported as timed out.
    pub cycle_timeout: Duration,
    /// Append audit events here, a JSON line each; on stderr when `None`.
    pub events: Option<PathBuf>,
    /// The IANA zone to store before running (`--tz`), if given.
    pub tz: Option<String>,
    /// How long a step waits for the state file's lock.
    pub lock_wait: LockWait,
}

/// `NAME.sock` beside the state file `NAME`: the socket when `--socket` is not given.
pub fn default_socket(state_file: &Path) -> PathBuf {
    let mut name = OsString::from(state_file.as_os_str());
    name.push(".sock");
    PathBuf::from(name)
}

/// Why `run` refused to start. Once it runs, it stops only on a signal, and exits 0.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `--tz` names no IANA time zone.
    #[error("unknown time zone {0:?}: expected an IANA name such as Europe/Paris")]
    UnknownTimeZone(String),
    /// `--rem-command` has no program.
    #[error("--rem-command is empty: expected a program and its arguments")]
    EmptyCommand,
    /// The socket path is one of the files `run` uses otherwise.
    #[error("refusing socket path {}: it is the {what}", .path.display())]
    SocketClash {
        /// The socket path.
        path: PathBuf,
        /// Which file it is.
        what: &'static str,
    },
    /// Another `run` holds the state file.
    #[error("{} is in use by another run (it holds {})", .state_file.display(), .lock.display())]
    InUse {
        /// The state file.
        state_file: PathBuf,
        /// Its instance lock.
        lock: PathBuf,
    },
    /// The state file could not be opened, or the zone not stored in it.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The socket could not be claimed.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// A file could not be opened.
    #[error("cannot open {}: {source}", .path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The error the system gave.
        #[source]
        source: io::Error,
    },
    /// The stop signals could not be blocked, or a thread not started.
    #[error("cannot {action}: {source}")]
    Setup {
        /// What was being done.
        action: &'static str,
        /// The error the system gave.
        #[source]
        source: io::Error,
    },
}

/// Runs the host until SIGTERM, SIGINT or SIGHUP, then stops cleanly: a running REM command is
/// killed and its cycle reported as timed out, `shutdown` walks the machine back to WAKE, the
/// daemon's lock is released and the socket removed. Everything that can refuse to start (the
/// zone, the state file, another `run` on it, the events file, the socket) is checked first.
pub fn run(options: &RunOptions) -> Result<(), RunError> {
    let zone: Option<Tz> = match &options.tz {
        Some(tz) => Some(tz.parse().map_err(|_| RunError::UnknownTimeZone(tz.clone()))?),
        None => None,
    };
    let rem = RemCommand::parse(&options.rem_command, options.cycle_timeout)
        .ok_or(RunError::EmptyCommand)?;
    let socket_path = options.socket.clone().unwrap_or_else(|| default_socket(&options.state_file));
    let clashes = [
        (Some(&options.state_file), "state file"),
        (Some(&options.lock_file), "lock file"),
        (options.events.as_ref(), "events file"),
    ];
    if let Some((_, what)) = clashes.iter().find(|(path, _)| *path == Some(&socket_path)) {
        return Err(RunError::SocketClash { path: socket_path, what });
    }
    // Opening already logged what its report says (a quarantined file, unusable keys).
    let mut store = Store::open(&options.state_file).map_err(EngineError::from)?;
    store.set_lock_wait(options.lock_wait.clone());
    let lock = instance_lock_path(&options.state_file);
    let _instance = InstanceLock::acquire(&options.state_file)
        .map_err(|source| RunError::Open { path: lock.clone(), source })?
        .ok_or_else(|| RunError::InUse { state_file: options.state_file.clone(), lock })?;
    let events = match &options.events {
        Some(path) => EventSink::file(path.clone())
            .map_err(|source| RunError::Open { path: path.clone(), source })?,
        None => EventSink::Stderr,
    };
    let (mut engine, _report) = Engine::with_store(store)?;
    if let Some(zone) = zone {
        configure_timezone(&mut engine, zone, SystemClock.now())?;
    }
    // Only now, before any thread starts: until here a stop signal kills at once, and there is
    // nothing to finish.
    // Blocked for the rest of the process: once a stop has begun, a second signal must not kill
    // it half-way.
    let blocked = BlockedSignals::block()
        .map_err(|source| RunError::Setup { action: "block the stop signals", source })?;
    let signals = blocked.waiter();
    blocked.keep();
    let socket = Arc::new(SocketListener::bind(&socket_path)?);
    let server = Arc::new(Server::new(engine, || SystemClock.now()));
    let inbox = Arc::new(Inbox::default());
    let signalled = Arc::clone(&inbox);
    spawn("run-signals", move || {
        let signal = signals.wait();
        signalled.post(|mail| mail.stop = Some(signal));
    })?;
    let (serving, listening, told) = (Arc::clone(&server), Arc::clone(&socket), Arc::clone(&inbox));
    spawn("run-accept", move || clients::accept(&serving, &listening, &told))?;
    say(format_args!(
        "running on {} (state file {}, lock file {})",
        socket.path().display(),
        options.state_file.display(),
        options.lock_file.display()
    ));
    let mut host = Host {
        server,
        inbox,
        lock: DaemonLock::new(options.lock_file.clone()),
        events,
        rem,
        cycle: None,
        not_before: Instant::now(),
    };
    host.feed(EventKind::Boot);
    let (signal, ended) = host.serve();
    host.stop(signal, ended);
    socket.remove();
    say(format_args!("stopped on {signal}"));
    Ok(())
}

/// Starts a named thread.
fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> Result<(), RunError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(work)
        .map(drop)
        .map_err(|source| RunError::Setup { action: "start a thread", source })
}

/// One line of the host's own log on stderr (its transitions, cycles and lock).
fn say(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "daemon-state: run: {line}");
}

/// What the other threads tell the host.
#[derive(Default)]
struct Mail {
    /// Effects carried by the replies to clients' messages, in order.
    effects: VecDeque<Effect>,
    /// A client's message was answered: the next deadline may have moved.
    answered: bool,
    /// The running REM cycle ended.
    ended: Option<Ended>,
    /// A stop signal arrived (its name).
    stop: Option<&'static str>,
}

impl Mail {
    fn is_empty(&self) -> bool {
        self.effects.is_empty() && !self.answered && self.ended.is_none() && self.stop.is_none()
    }
}

/// The host's mailbox, and the bell that wakes it.
#[derive(Default)]
pub(crate) struct Inbox {
    mail: Mutex<Mail>,
    bell: Condvar,
}

impl Inbox {
    fn post(&self, write: impl FnOnce(&mut Mail)) {
        write(&mut self.mail.lock().unwrap_or_else(PoisonError::into_inner));
        self.bell.notify_all();
    }

    /// A client's message was answered with these effects.
    pub(crate) fn answered(&self, effects: Vec<Effect>) {
        self.post(|mail| {
            mail.answered = true;
            mail.effects.extend(effects);
        });
    }

    /// The mail, once there is some or `timeout` has passed.
    fn wait(&self, timeout: Duration) -> Mail {
        let mut mail = self.mail.lock().unwrap_or_else(PoisonError::into_inner);
        if mail.is_empty() && !timeout.is_zero() {
            mail = self
                .bell
                .wait_timeout_while(mail, timeout, |mail| mail.is_empty())
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        std::mem::take(&mut *mail)
    }
}

/// The host: the engine (behind the server's mutex) and what it performs.
struct Host {
    server: Arc<Server>,
    inbox: Arc<Inbox>,
    lock: DaemonLock,
    events: EventSink,
    rem: RemCommand,
    cycle: Option<Running>,
    /// The host's next own tick comes no earlier than this.
    not_before: Instant,
}

impl Host {
    /// Ticks at each deadline and performs what the engine and the clients' replies ask, until a
    /// stop signal: returns it, with the end of a cycle that came with it.
    fn serve(&mut self) -> (&'static str, Option<Ended>) {
        loop {
            let now = SystemClock.now();
            let deadline = self.server.engine().next_deadline(now);
            let due = deadline.is_some_and(|at| at <= now);
            if due && Instant::now() >= self.not_before {
                self.not_before = Instant::now() + MIN_TICK_GAP;
                self.feed(EventKind::Tick { store_empty: false });
                continue;
            }
            let wait = match deadline {
                _ if due => self.not_before.saturating_duration_since(Instant::now()),
                Some(at) => (at - now).to_std().unwrap_or(Duration::ZERO).min(MAX_SLEEP),
                None => MAX_SLEEP,
            };
            let mail = self.inbox.wait(wait);
            if let Some(signal) = mail.stop {
                return (signal, mail.ended);
            }
            if let Some(ended) = mail.ended {
                self.cycle = None;
                match &ended {
                    Ended::Done(result) => say(format_args!(
                        "REM cycle done: {} summaries, {} schema candidates",
                        result.summaries_created, result.schema_candidates
                    )),
                    Ended::Failed(why) => say(format_args!("REM cycle timed out: {why}")),
                    Ended::Stopped => say(format_args!("REM cycle stopped")),
                }
                self.feed(EventKind::RemCycleFinished { result: ended.result() });
            }
            self.perform(mail.effects);
        }
    }

    /// Handles one event at the clock's now and performs its effects, and those of every answer
    /// they bring, in order.
    fn feed(&mut self, kind: EventKind) {
        if let Some(effects) = self.handle(kind) {
            self.perform(effects.into());
        }
    }

    /// Handles one event at the clock's now; `None` when it failed (logged).
    fn handle(&mut self, kind: EventKind) -> Option<Vec<Effect>> {
        let mut engine = self.server.engine();
        let result = handle(&mut engine, kind);
        drop(engine);
        if matches!(result, Err(EngineError::Store(_))) {
            self.not_before = Instant::now() + RETRY_AFTER_FAILURE;
        }
        result.ok()
    }

    fn perform(&mut self, mut queue: VecDeque<Effect>) {
        while let Some(effect) = queue.pop_front() {
            let answer = match effect {
                Effect::AcquireLock => Some(self.acquire_lock()),
                Effect::ReleaseLock => {
                    self.release_lock();
                    None
                }
                Effect::RunRemCycle { cycle, of, is_last } => {
                    self.start_cycle(Cycle { cycle, of, is_last });
                    None
                }
                Effect::Emit(audit) => {
                    self.events.write(&audit, SystemClock.now());
                    None
                }
            };
            if let Some(kind) = answer {
                let acquired = matches!(kind, EventKind::LockAcquired);
                match self.handle(kind) {
                    Some(effects) => queue.extend(effects),
                    // The engine no longer waits for the lock: give it back.
                    None if acquired => self.release_lock(),
                    None => {}
                }
            }
        }
    }

    fn acquire_lock(&mut self) -> EventKind {
        match self.lock.try_acquire() {
            Ok(true) => {
                say(format_args!("lock {} taken", self.lock.path().display()));
                EventKind::LockAcquired
            }
            Ok(false) => {
                say(format_args!("lock {} held by another process: denied", self.lock.path().display()));
                EventKind::LockDenied
            }
            Err(error) => {
                tracing::warn!(path = %self.lock.path().display(), %error, "cannot take the lock");
                EventKind::LockDenied
            }
        }
    }

    fn release_lock(&mut self) {
        if self.lock.release() {
            say(format_args!("lock {} released", self.lock.path().display()));
        }
    }

    fn start_cycle(&mut self, cycle: Cycle) {
        if self.cycle.is_some() {
            tracing::warn!(cycle = cycle.cycle, "a REM cycle is already running; not starting another");
            return;
        }
        say(format_args!("REM cycle {} of {} started", cycle.cycle, cycle.of));
        let inbox = Arc::clone(&self.inbox);
        match rem::start(&self.rem, cycle, move |ended| inbox.post(|mail| mail.ended = Some(ended))) {
            Ok(running) => self.cycle = Some(running),
            Err(error) => {
                let why = format!("cannot start a thread for the REM cycle: {error}");
                self.inbox.post(|mail| mail.ended = Some(Ended::Failed(why)));
            }
        }
    }

    /// Stops: kills a running cycle and reports it as timed out, walks the machine to WAKE with
    /// `shutdown`, performs what that asks (audit events, releasing the lock; no new cycle, no
    /// new lock), releases the lock in any case, and keeps the engine locked for the rest of the
    /// process, so that no client's message is handled after the shutdown.
    fn stop(&mut self, signal: &'static str, mut ended: Option<Ended>) {
        say(format_args!("stopping on {signal}"));
        if let Some(cycle) = self.cycle.take() {
            cycle.stop();
            let give_up = Instant::now() + STOP_GRACE;
            while ended.is_none() && Instant::now() < give_up {
                ended = self.inbox.wait(give_up.saturating_duration_since(Instant::now())).ended;
            }
            ended = Some(ended.unwrap_or(Ended::Stopped));
        }
        let server = Arc::clone(&self.server);
        let mut engine = server.engine();
        let mut effects = Vec::new();
        if let Some(ended) = ended {
            let result = ended.result();
            effects.extend(handle(&mut engine, EventKind::RemCycleFinished { result }).ok().into_iter().flatten());
        }
        effects.extend(handle(&mut engine, EventKind::Shutdown).ok().into_iter().flatten());
        for effect in effects {
            match effect {
                Effect::Emit(audit) => self.events.write(&audit, SystemClock.now()),
                Effect::ReleaseLock => self.release_lock(),
                _ => {}
            }
        }
        self.release_lock();
        std::mem::forget(engine);
    }
}

/// Handles one event on `engine` at the clock's now, logging its transitions (and its failure).
fn handle(engine: &mut Engine, kind: EventKind) -> Result<Vec<Effect>, EngineError> {
    let trigger = kind.trigger();
    match engine.handle(Event::new(SystemClock.now(), kind)) {
        Ok(outcome) => {
            for t in &outcome.transitions {
                say(format_args!("{} -> {} ({})", t.from, t.to, t.reason));
            }
            Ok(outcome.effects)
        }
        Err(error) => {
            match &error {
                EngineError::Rejected(_) | EngineError::Illegal(_) => {
                    tracing::warn!(event = ?trigger, %error, "the engine refused the host's event");
                }
                EngineError::Store(_) => {
                    tracing::error!(event = ?trigger, %error, "the host's event failed; nothing changed");
                }
            }
            Err(error)
        }
    }
}
