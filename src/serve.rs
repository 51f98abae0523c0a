//! The `serve` protocol: newline-delimited JSON requests in, one reply line out per request.
//!
//! Owns reading lines (from stdin/stdout or a Unix socket), the seed project's control messages
//! and one message per engine event, and their reply documents, the cap on socket connections,
//! and stopping cleanly on SIGTERM, SIGINT or SIGHUP. It must not reach past the engine: every
//! change goes through `Engine`.
//!
//! Every message happens at its `ts` when that is an RFC 3339 moment, and at the server's clock
//! when it has none. A control message's `ts` is also the request's own label, stored as sent and
//! not required to be a moment, as the seed has it (one that is no moment means the server's
//! clock); an engine message's must be a moment. Engine replies and `status` tell when to tick
//! next (`next_deadline`). PROTOCOL.md is the reference, checked against this code by a test.

mod connections;
mod lines;
mod socket;
pub(crate) mod stop;

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::Duration;

use chrono_tz::Tz;

use crate::clock::{Clock, SystemClock};
use crate::doc::Doc;
use crate::protocol;
use crate::engine::{Engine, EngineError};
use crate::event::{Event, EventKind, Settings};
use crate::store::{LockWait, Store};
use crate::timestamp::Timestamp;

pub use lines::MAX_LINE_BYTES;
pub use crate::protocol::{Refusal, Request};
pub(crate) use crate::protocol::{next_deadline, outcome_reply, rejection_reply};
pub use socket::{SocketError, SocketListener};

use stop::{BlockedSignals, InFlight};

/// How many socket connections are served at once unless `--max-connections` says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// How long a stop waits for the requests in flight to be answered (their replies written) before
/// it goes on. A save in progress is always waited for.
pub const STOP_GRACE: Duration = Duration::from_secs(10);


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
    /// How long a request waits for the state file's lock (`--lock-timeout`) before it fails
    /// with `state_write_failed`, and whom to tell that it waits.
    pub lock_wait: LockWait,
    /// How many socket connections are served at once; more are answered with one
    /// `too_many_connections` reply and closed.
    pub max_connections: usize,
}

/// Why `serve` stopped with an error. Every variant but [`ServeError::Stream`] is a refusal to
/// start, reported before anything was written.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// `--tz` names no IANA time zone.
    #[error("unknown time zone {0:?}: expected an IANA name such as Europe/Paris")]
    UnknownTimeZone(String),
    /// The state file could not be opened, or the zone not stored in it.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The socket could not be claimed.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// The stop signals could not be blocked, or a thread not started.
    #[error("cannot {action}: {source}")]
    Setup {
        /// What was being done.
        action: &'static str,
        /// The error the system gave.
        #[source]
        source: io::Error,
    },
    /// Reading the requests or writing the replies on standard input/output failed.
    #[error("cannot {action} {stream}: {source}")]
    Stream {
        /// `"read"` or `"write"`.
        action: &'static str,
        /// `"standard input"` or `"standard output"`.
        stream: &'static str,
        /// The error the system gave.
        #[source]
        source: io::Error,
    },
}

impl ServeError {
    /// Whether `serve` refused to start (nothing was served, nothing written), as opposed to
    /// failing while it served.
    pub fn refused_to_start(&self) -> bool {
        !matches!(self, Self::Stream { .. })
    }
}

/// Why [`Server::serve_stream`] stopped: which side of the stream failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// A request could not be read.
    #[error("cannot read a request: {0}")]
    Read(#[source] io::Error),
    /// A reply could not be written.
    #[error("cannot write a reply: {0}")]
    Write(#[source] io::Error),
}

/// Why the serving threads handed control back to [`run`].
enum Stop {
    /// A stop signal arrived (its name).
    Signal(&'static str),
    /// Standard input ended, or its stream failed.
    Ended(Result<(), StreamError>),
}

/// Runs the protocol until end of input (stdio) or until SIGTERM, SIGINT or SIGHUP. Everything
/// that can refuse to start (the state file, the zone, the socket) is checked before anything is
/// written.
///
/// A stop signal stops it cleanly: no new request is begun, the requests in flight are answered
/// (their saves always finish; their replies are waited for up to [`STOP_GRACE`]), the socket file
/// and its lock file are removed, and `run` returns `Ok`. The stop signals stay blocked in the
/// calling thread afterwards, and the engine stays locked: the server is done.
pub fn run(options: &ServeOptions) -> Result<(), ServeError> {
    let zone = match &options.tz {
        Some(tz) => Some(tz.parse().map_err(|_| ServeError::UnknownTimeZone(tz.clone()))?),
        None => None,
    };
    if let Some(socket) = &options.socket {
        socket::refuse_state_file(socket, &options.state_file)?;
    }
    // Opening already logged what its report says (a quarantined file, unusable keys).
    let mut store = Store::open(&options.state_file).map_err(EngineError::from)?;
    store.set_lock_wait(options.lock_wait.clone());
    let (mut engine, _report) = Engine::with_store(store)?;
    // Only now, and before any client can connect: until here a stop signal (say while opening
    // waits for another process's lock) kills at once, and there is nothing to finish.
    let signals = BlockedSignals::block()
        .map_err(|source| ServeError::Setup { action: "block the stop signals", source })?;
    let socket = options.socket.clone().map(SocketListener::bind).transpose()?.map(Arc::new);
    let fixed = options.now;
    let clock = move || fixed.unwrap_or_else(|| SystemClock.now());
    if let Some(zone) = zone {
        configure_timezone(&mut engine, zone, clock())?;
    }
    let server = Arc::new(Server::new(engine, clock).with_max_connections(options.max_connections));
    let (done, stopped) = mpsc::channel();
    let waiter = signals.waiter();
    let signalled = done.clone();
    spawn("serve-signals", move || {
        let _ = signalled.send(Stop::Signal(waiter.wait()));
    })?;
    let serving = Arc::clone(&server);
    match &socket {
        None => spawn("serve-stdio", move || {
            // Standard output is locked for each reply only: the caller flushes it when `run`
            // returns, while this thread may still be waiting for input.
            let result = serving.serve_stream(io::stdin().lock(), io::stdout());
            let _ = done.send(Stop::Ended(result));
        })?,
        Some(socket) => {
            tracing::info!(path = %socket.path().display(), "serving on a Unix socket");
            let socket = Arc::clone(socket);
            spawn("serve-accept", move || serving.serve_socket(&socket))?;
        }
    }
    match stopped.recv() {
        Ok(Stop::Signal(signal)) => {
            tracing::info!(signal, "stopping: answering the requests in flight");
            server.stop();
            if let Some(socket) = &socket {
                socket.remove();
            }
            signals.keep();
            tracing::info!(signal, "stopped");
            Ok(())
        }
        Ok(Stop::Ended(result)) => match result {
            Ok(()) => Ok(()),
            Err(StreamError::Read(source)) => {
                Err(ServeError::Stream { action: "read", stream: "standard input", source })
            }
            Err(StreamError::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            Err(StreamError::Write(source)) => {
                Err(ServeError::Stream { action: "write", stream: "standard output", source })
            }
        },
        // Every sender is gone: the serving thread ended without a word, which it never does.
        Err(mpsc::RecvError) => Ok(()),
    }
}

/// Starts a named thread.
fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> Result<(), ServeError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(work)
        .map(drop)
        .map_err(|source| ServeError::Setup { action: "start a thread", source })
}

/// Stores `zone` as the quiet window's zone, unless it already is.
pub(crate) fn configure_timezone(engine: &mut Engine, zone: Tz, at: Timestamp) -> Result<(), EngineError> {
    if engine.data().view().tz != zone {
        let settings = Settings { timezone: Some(zone.name().into()), ..Settings::default() };
        let _configured = engine.handle(Event::new(at, EventKind::Configure(settings)))?;
    }
    Ok(())
}

/// One engine shared by every connection, answering one request at a time.
pub struct Server {
    engine: Mutex<Engine>,
    clock: Box<dyn Fn() -> Timestamp + Send + Sync>,
    flights: InFlight,
    connections: Arc<AtomicUsize>,
    max_connections: usize,
    /// Whether the cap's warning was logged since a connection was last let in: a burst of
    /// clients turned away is reported once.
    full_reported: AtomicBool,
}

impl Server {
    /// A server over `engine`, reading the time from `clock` for requests without a `ts`, taking
    /// [`DEFAULT_MAX_CONNECTIONS`] socket connections at once.
    pub fn new(engine: Engine, clock: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        Self {
            engine: Mutex::new(engine),
            clock: Box::new(clock),
            flights: InFlight::default(),
            connections: Arc::new(AtomicUsize::new(0)),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            full_reported: AtomicBool::new(false),
        }
    }

    /// The same server, taking at most `max` socket connections at once (at least one).
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// The engine, locked: no request is answered while the guard lives.
    pub fn engine(&self) -> MutexGuard<'_, Engine> {
        // A request that panicked is a bug, but the other connections are still answered: the
        // state file only ever holds whole snapshots, whatever that request left in memory.
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops answering: no new request is begun, the requests in flight are answered (their
    /// replies waited for up to [`STOP_GRACE`]), and the engine is left locked so that no save
    /// begins or is left half-done afterwards.
    pub fn stop(&self) {
        let unanswered = self.flights.stop(STOP_GRACE);
        if unanswered > 0 {
            tracing::warn!(unanswered, "stopping without waiting longer for replies to be written");
        }
        std::mem::forget(self.engine());
    }

    #[cfg(any(test, feature = "testing"))]
    /// Answers one message.
    pub fn reply(&self, message: &serde_json::Value) -> serde_json::Value {
        self.answer_request(Request::parse(message)).to_value()
    }

    fn answer_request(&self, request: Result<Request, Refusal>) -> Doc {
        match request {
            Err(refusal) => refusal.to_reply(),
            Ok(request) => {
                let mut engine = self.engine();
                let now = request.at().unwrap_or_else(|| (self.clock)());
                protocol::answer(&mut engine, request, now)
            }
        }
    }

    #[cfg(any(test, feature = "testing"))]
    /// Answers one line (without its newline). A blank line is no request and gets no reply.
    pub fn reply_to_line(&self, line: &[u8]) -> Option<serde_json::Value> {
        self.answer_line(line).map(|doc| doc.to_value())
    }

    /// [`Server::reply_to_line`]'s reply as it is written, members in order.
    fn answer_line(&self, line: &[u8]) -> Option<Doc> {
        protocol::parse_line(line).map(|request| self.answer_request(request))
    }

    /// Answers every line of `reader` on `writer`, in order, until the input ends or the server
    /// stops. A last line without a newline is answered too. Returns the first read or write
    /// error.
    pub fn serve_stream(
        &self,
        mut reader: impl BufRead,
        mut writer: impl Write,
    ) -> Result<(), StreamError> {
        let mut line = Vec::new();
        loop {
            let frame = lines::read_line(&mut reader, &mut line, MAX_LINE_BYTES)
                .map_err(StreamError::Read)?;
            if frame == lines::Frame::End {
                return Ok(());
            }
            // From here until its reply is written, the request is in flight: a stop waits for it.
            let Some(_turn) = self.flights.begin() else {
                return Ok(());
            };
            let reply = match frame {
                lines::Frame::TooLong => {
                    let error = format!("line is longer than {MAX_LINE_BYTES} bytes");
                    Refusal::Invalid(error).to_reply()
                }
                lines::Frame::Line | lines::Frame::End => match self.answer_line(&line) {
                    Some(reply) => reply,
                    None => continue,
                },
            };
            let mut bytes = serde_json::to_vec(&reply).map_err(|e| StreamError::Write(e.into()))?;
            bytes.push(b'\n');
            writer.write_all(&bytes).and_then(|()| writer.flush()).map_err(StreamError::Write)?;
        }
    }
}

