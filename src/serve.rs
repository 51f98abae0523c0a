//! The `serve` protocol: newline-delimited JSON requests in, one reply line out per request.
//!
//! Owns reading lines (from stdin/stdout or a Unix socket), the seed project's control messages
//! and one message per engine event, and their reply documents. It must not reach past the engine:
//! every change goes through `Engine`.
//!
//! Engine messages happen at their `ts` (the server's clock when absent). A control message's
//! `ts` is the request's own label, stored as sent and not required to be a timestamp, as the seed
//! has it; the engine sees the control message at the server's clock.

mod lines;
mod messages;
mod socket;

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::clock::{Clock, SystemClock};
use crate::digest;
use crate::engine::{Engine, EngineError};
use crate::event::{Event, EventKind, Settings, Trigger};
use crate::record::{Record, is_truthy, keys};
use crate::timestamp::{self, Timestamp};

pub use lines::MAX_LINE_BYTES;
pub use messages::{Refusal, Request};
pub use socket::{SocketError, SocketListener};

/// The version `status` reports: this crate's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How many characters of an error a failure reply carries (the seed's clip).
const MAX_ERROR_CHARS: usize = 200;

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

/// Runs the protocol until end of input (stdio) or until the process is stopped (socket).
/// Everything that can refuse to start (the state file, the zone, the socket) is checked before
/// anything is written.
pub fn run(options: &ServeOptions) -> Result<(), ServeError> {
    let zone = match &options.tz {
        Some(tz) => Some(tz.parse().map_err(|_| ServeError::UnknownTimeZone(tz.clone()))?),
        None => None,
    };
    if let Some(socket) = &options.socket {
        socket::refuse_state_file(socket, &options.state_file)?;
    }
    // Opening already logged what its report says (a quarantined file, unusable keys).
    let (mut engine, _report) = Engine::open(&options.state_file)?;
    let socket = options.socket.clone().map(SocketListener::bind).transpose()?;
    let fixed = options.now;
    let clock = move || fixed.unwrap_or_else(|| SystemClock.now());
    if let Some(zone) = zone {
        configure_timezone(&mut engine, zone, clock())?;
    }
    let server = Server::new(engine, clock);
    match socket {
        None => match server.serve_stream(io::stdin().lock(), io::stdout().lock()) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            Err(source) => {
                Err(ServeError::Stream { action: "serve", stream: "standard input/output", source })
            }
            Ok(()) => Ok(()),
        },
        Some(socket) => {
            tracing::info!(path = %socket.path().display(), "serving on a Unix socket");
            Arc::new(server).serve_socket(&socket)
        }
    }
}

/// Stores `zone` as the quiet window's zone, unless it already is.
fn configure_timezone(engine: &mut Engine, zone: Tz, at: Timestamp) -> Result<(), EngineError> {
    if engine.data().view().tz != zone {
        let settings = Settings { timezone: Some(zone.name().into()), ..Settings::default() };
        engine.handle(Event::new(at, EventKind::Configure(settings)))?;
    }
    Ok(())
}

/// One engine shared by every connection, answering one request at a time.
pub struct Server {
    engine: Mutex<Engine>,
    clock: Box<dyn Fn() -> Timestamp + Send + Sync>,
}

impl Server {
    /// A server over `engine`, reading the time from `clock` for requests without a `ts`.
    pub fn new(engine: Engine, clock: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        Self { engine: Mutex::new(engine), clock: Box::new(clock) }
    }

    /// The engine, locked: no request is answered while the guard lives.
    pub fn engine(&self) -> MutexGuard<'_, Engine> {
        // A request that panicked is a bug, but the other connections are still answered: the
        // state file only ever holds whole snapshots, whatever that request left in memory.
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers one message.
    pub fn reply(&self, message: &Value) -> Value {
        match Request::parse(message) {
            Err(refusal) => refusal.to_reply(),
            Ok(request) => {
                let mut engine = self.engine();
                let now = (self.clock)();
                answer(&mut engine, request, now)
            }
        }
    }

    /// Answers one line (without its newline). A blank line is no request and gets no reply.
    pub fn reply_to_line(&self, line: &[u8]) -> Option<Value> {
        let text = match std::str::from_utf8(line) {
            Ok(text) => text,
            Err(e) => {
                let error = format!("line is not UTF-8 (byte {})", e.valid_up_to());
                return Some(Refusal::Invalid(error).to_reply());
            }
        };
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        Some(match serde_json::from_str::<Value>(text) {
            Ok(message) => self.reply(&message),
            Err(e) => Refusal::Invalid(format!("line is not JSON: {e}")).to_reply(),
        })
    }

    /// Answers every line of `reader` on `writer`, in order, until the input ends. A last line
    /// without a newline is answered too. Returns the first read or write error.
    pub fn serve_stream(&self, mut reader: impl BufRead, mut writer: impl Write) -> io::Result<()> {
        let mut line = Vec::new();
        loop {
            let reply = match lines::read_line(&mut reader, &mut line, MAX_LINE_BYTES)? {
                lines::Frame::End => return Ok(()),
                lines::Frame::TooLong => {
                    let error = format!("line is longer than {MAX_LINE_BYTES} bytes");
                    Refusal::Invalid(error).to_reply()
                }
                lines::Frame::Line => match self.reply_to_line(&line) {
                    Some(reply) => reply,
                    None => continue,
                },
            };
            let mut bytes = serde_json::to_vec(&reply)?;
            bytes.push(b'\n');
            writer.write_all(&bytes)?;
            writer.flush()?;
        }
    }

    /// Serves every connection to `socket` on a thread of its own, for as long as the process
    /// runs.
    pub fn serve_socket(self: &Arc<Self>, socket: &SocketListener) -> ! {
        loop {
            match socket.listener().accept() {
                Ok((stream, _)) => {
                    let server = Arc::clone(self);
                    let spawned = std::thread::Builder::new()
                        .name("serve-connection".into())
                        .spawn(move || server.serve_connection(&stream));
                    if let Err(error) = spawned {
                        tracing::error!(%error, "cannot start a connection thread; connection dropped");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    // Out of descriptors or memory: give the other connections time to finish.
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        }
    }

    fn serve_connection(&self, stream: &UnixStream) {
        if let Err(error) = self.serve_stream(BufReader::new(stream), stream) {
            tracing::debug!(%error, "connection ended");
        }
    }
}

/// Runs one validated request on the engine.
fn answer(engine: &mut Engine, request: Request, now: Timestamp) -> Value {
    let mut run = |kind| engine.handle(Event::new(now, kind));
    match request {
        Request::Status => status(engine, now),
        Request::UserSleep { reason, ts } => {
            match run(EventKind::UserSleepRequested { reason, ts: Some(ts) }) {
                Err(EngineError::Rejected(rejection))
                    if rejection.trigger == Trigger::UserSleepRequested =>
                {
                    json!({"ok": false, "reason": "already_sleeping"})
                }
                result => control(engine, result, json!({"ok": true, "state": "TRANSITIONING"})),
            }
        }
        Request::ForceWake { ts } => {
            let result = run(EventKind::ForceWakeRequested { ts: Some(ts) });
            control(engine, result, json!({"ok": true, "reason": "wake_queued"}))
        }
        Request::ForceRem { ts } => {
            let result = run(EventKind::ForceRemRequested { ts: Some(ts) });
            control(engine, result, json!({"ok": true, "reason": "rem_queued"}))
        }
        Request::Pause(paused) => {
            let result = run(if paused { EventKind::Pause } else { EventKind::Resume });
            control(engine, result, json!({"ok": true, "paused": paused}))
        }
        Request::SessionOpen { session_id, ts } => {
            let event =
                Event::new(now, EventKind::SessionStarted { session_id: session_id.clone() });
            let result = engine.handle_with(event, |record| open_session(record, session_id, ts));
            control(engine, result, json!({"ok": true, "reason": "session_open_queued"}))
        }
        Request::Engine { kind, at } => match engine.handle(Event::new(at.unwrap_or(now), kind)) {
            Ok(outcome) => outcome.to_reply(engine.state()),
            Err(error) => failure(engine, &error),
        },
    }
}

/// The seed's bookkeeping for `session_open` beyond the engine's session start: the last opening
/// and the cascade request, with an empty id and ts when the message had none.
fn open_session(record: &mut Record, session_id: Option<String>, ts: Option<String>) {
    let (session_id, ts) = (session_id.unwrap_or_default(), ts.unwrap_or_default());
    record.set(keys::LAST_SESSION_OPEN, json!({"session_id": session_id, "ts": ts}));
    record.set(
        keys::HIPPEA_CASCADE_REQUEST,
        json!({"session_id": session_id, "ts": ts, "pending": true}),
    );
}

/// A control message's reply: `done` when the engine ran it, else the failure.
fn control<T>(engine: &Engine, result: Result<T, EngineError>, done: Value) -> Value {
    match result {
        Ok(_) => done,
        Err(error) => failure(engine, &error),
    }
}

/// The reply for a failed engine call: the rejection's own reply, or the seed's
/// `state_write_failed` when the state file could not be read or written (nothing changed).
fn failure(engine: &Engine, error: &EngineError) -> Value {
    match error {
        EngineError::Rejected(rejection) => rejection.to_reply(),
        EngineError::Illegal(illegal) => json!({
            "ok": false,
            "reason": "rejected",
            "state": engine.state().as_str(),
            "error": illegal.to_string(),
        }),
        EngineError::Store(store) => {
            json!({"ok": false, "reason": "state_write_failed", "error": clip_error(store)})
        }
    }
}

/// The seed's `status` reply, from the file as it stands (re-read when another process wrote it).
fn status(engine: &mut Engine, now: Timestamp) -> Value {
    // A locked read that changes nothing.
    if let Err(error) = engine.update(|_| ((), false)) {
        return json!({"ok": false, "reason": "control_plane_error", "error": clip_error(&error)});
    }
    let record = engine.record();
    let raw = |key: &str| record.get(key).cloned().unwrap_or(Value::Null);
    let uptime_sec = record.timestamp(keys::DAEMON_STARTED_AT).map(|started| {
        let up = now - started;
        up.num_microseconds().map_or(up.num_seconds() as f64, |micros| micros as f64 / 1e6)
    });
    let last_tick_at = engine
        .data()
        .last_tick_at()
        .map_or_else(|| raw(keys::LAST_TICK_AT), |at| json!(timestamp::format(at)));
    let state = engine.state().as_str();
    json!({
        "ok": true,
        "state": state,
        "uptime_sec": uptime_sec,
        "version": VERSION,
        "fsm_state": state,
        "last_tick_at": last_tick_at,
        "quiet_window": raw(keys::QUIET_WINDOW),
        "pending_digest": digest::status_view(record.get(keys::PENDING_DIGEST)),
        "daemon_started_at": raw(keys::DAEMON_STARTED_AT),
        "scheduler_paused": record.get(keys::SCHEDULER_PAUSED).is_some_and(is_truthy),
    })
}

fn clip_error(error: &dyn std::error::Error) -> String {
    error.to_string().chars().take(MAX_ERROR_CHARS).collect()
}
