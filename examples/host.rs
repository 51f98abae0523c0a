//! A threaded host: one simulated night of the engine, with real effects.
//!
//! Run it with `cargo run --example host [STATE_FILE]` (default: `state.json` in a fresh temp dir).
//!
//! The engine is shared as `Arc<Mutex<Engine>>` between a ticker thread, which drives a simulated
//! clock (08:00 UTC boot, a session at 09:00, then a tick at each `next_deadline`, or every 30
//! simulated seconds), and a worker thread, which performs the effects it receives over a channel:
//! the lock is a real `<STATE_FILE>.host-lock` file, a REM cycle is a short sleep. Each transition
//! is printed as `from -> to (reason) at`. After one full night, or on SIGTERM/SIGINT, the host
//! sends `Shutdown` and exits 0 once the engine is back in WAKE.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, SystemTime};

use daemon_state::{
    Effect, Engine, EngineError, Event, EventKind, RemResult, StateName, Timestamp,
};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};

/// 2026-04-18T08:00:00Z, where the simulated clock starts.
const START_SECS: u64 = 1_776_499_200;
/// How far the clock moves when nothing is scheduled.
const IDLE_STEP: Duration = Duration::from_secs(30);

/// What the threads share: the engine, the simulated clock and the host's bookkeeping.
struct Host {
    engine: Mutex<Engine>,
    clock: Mutex<Timestamp>,
    /// Effects sent to the worker and not yet performed (the ticker waits for them).
    busy: AtomicUsize,
    /// Nights that ran REM cycles and came back to WAKE on their own.
    nights: AtomicUsize,
    /// A stop signal arrived.
    stop: AtomicBool,
    /// The lock file, and whether this host created it.
    lock_file: PathBuf,
    holding: AtomicBool,
}

impl Host {
    fn now(&self) -> Timestamp {
        *self.clock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn advance_to(&self, at: Timestamp) {
        let mut clock = self.clock.lock().unwrap_or_else(PoisonError::into_inner);
        *clock = at.max(*clock);
    }

    /// Feeds one event at the simulated now and prints its transitions; returns its effects.
    fn feed(&self, kind: EventKind) -> Result<Vec<Effect>, EngineError> {
        let stopping = matches!(kind, EventKind::Shutdown);
        let mut engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        let outcome = engine.handle(Event::new(self.now(), kind))?;
        for t in &outcome.transitions {
            println!("{} -> {} ({}) at {}", t.from, t.to, t.reason, t.at.to_rfc3339());
            let asleep = matches!(t.from, StateName::Sleep | StateName::Dreaming);
            if asleep && t.to == StateName::Wake && !stopping {
                self.nights.fetch_add(1, Ordering::SeqCst);
            }
        }
        Ok(outcome.effects)
    }

    /// Feeds an event and hands its effects to the worker (`None` tells it to stop).
    fn feed_to(&self, kind: EventKind, worker: &Sender<Option<Effect>>) -> Result<(), EngineError> {
        for effect in self.feed(kind)? {
            self.busy.fetch_add(1, Ordering::SeqCst);
            if worker.send(Some(effect)).is_err() {
                self.busy.fetch_sub(1, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    /// Performs one effect and every effect its answer brings, in order.
    fn perform(&self, first: Effect) {
        let mut queue = VecDeque::from([first]);
        while let Some(effect) = queue.pop_front() {
            let answer = match effect {
                Effect::AcquireLock => Some(self.acquire_lock()),
                Effect::ReleaseLock => {
                    // Idempotent: only a lock file this host created is removed.
                    if self.holding.swap(false, Ordering::SeqCst)
                        && let Err(e) = std::fs::remove_file(&self.lock_file)
                    {
                        eprintln!("host: cannot release the lock: {e}");
                    }
                    None
                }
                Effect::RunRemCycle { cycle, of, is_last } => {
                    println!("  rem cycle {cycle}/{of}{}", if is_last { " (last)" } else { "" });
                    thread::sleep(Duration::from_millis(20));
                    self.advance_to(self.now() + Duration::from_secs(60));
                    Some(EventKind::RemCycleFinished { result: RemResult::default() })
                }
                Effect::Emit(audit) => {
                    println!("  audit {}: {audit:?}", audit.kind());
                    None
                }
                _ => None,
            };
            if let Some(kind) = answer {
                match self.feed(kind) {
                    Ok(effects) => queue.extend(effects),
                    // A shutdown may overtake an answer: the engine refuses it, nothing changes.
                    Err(e) => eprintln!("host: {e}"),
                }
            }
        }
    }

    fn acquire_lock(&self) -> EventKind {
        let taken = std::fs::OpenOptions::new().write(true).create_new(true).open(&self.lock_file);
        match taken {
            Ok(_) => {
                self.holding.store(true, Ordering::SeqCst);
                EventKind::LockAcquired
            }
            Err(e) => {
                eprintln!("host: lock {} denied: {e}", self.lock_file.display());
                EventKind::LockDenied
            }
        }
    }
}

/// Ticks at each deadline (or every 30 simulated seconds) until a night is over or a stop arrives.
fn tick_until_done(host: &Host, worker: &Sender<Option<Effect>>) -> Result<(), EngineError> {
    host.feed_to(EventKind::Boot, worker)?;
    host.advance_to(host.now() + Duration::from_secs(3600));
    host.feed_to(EventKind::SessionStarted { session_id: Some("s-1".into()) }, worker)?;
    let give_up = host.now() + Duration::from_secs(24 * 3600);
    loop {
        thread::sleep(Duration::from_millis(2));
        if host.stop.load(Ordering::SeqCst) || host.nights.load(Ordering::SeqCst) > 0 {
            return Ok(());
        }
        if host.busy.load(Ordering::SeqCst) > 0 {
            continue; // The clock waits while the worker performs effects.
        }
        let now = host.now();
        if now > give_up {
            eprintln!("host: no night in a simulated day (is the lock file left over?)");
            return Ok(());
        }
        let next = host.engine.lock().unwrap_or_else(PoisonError::into_inner).next_deadline(now);
        host.advance_to(next.unwrap_or(now + IDLE_STEP));
        host.feed_to(EventKind::Tick { store_empty: false }, worker)?;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let state: PathBuf = match std::env::args_os().nth(1) {
        Some(path) => path.into(),
        None => temp.path().join("state.json"),
    };
    // Block the stop signals before any thread starts, so that only `sigwait` sees them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&signals), None)?;

    let (engine, report) = Engine::open(&state)?;
    for warning in &report.warnings {
        eprintln!("host: {warning}");
    }
    println!("state file {}", state.display());
    let host = Arc::new(Host {
        engine: Mutex::new(engine),
        clock: Mutex::new(Timestamp::from(
            SystemTime::UNIX_EPOCH + Duration::from_secs(START_SECS),
        )),
        busy: AtomicUsize::new(0),
        nights: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        holding: AtomicBool::new(false),
        lock_file: PathBuf::from(OsString::from_iter([state.as_os_str(), ".host-lock".as_ref()])),
    });

    let signal_host = Arc::clone(&host);
    thread::spawn(move || {
        if let Ok(signal) = signals.wait() {
            println!("host: {} received, stopping", signal.as_str());
            signal_host.stop.store(true, Ordering::SeqCst);
        }
    });
    let (jobs, inbox) = channel::<Option<Effect>>();
    let worker_host = Arc::clone(&host);
    let worker = thread::spawn(move || {
        while let Ok(Some(effect)) = inbox.recv() {
            worker_host.perform(effect);
            worker_host.busy.fetch_sub(1, Ordering::SeqCst);
        }
    });
    let ticker_host = Arc::clone(&host);
    let ticker_jobs = jobs.clone();
    let ticker = thread::spawn(move || tick_until_done(&ticker_host, &ticker_jobs));
    ticker.join().map_err(|_| "the ticker panicked")??;

    host.feed_to(EventKind::Shutdown, &jobs)?;
    jobs.send(None)?;
    worker.join().map_err(|_| "the worker panicked")?;
    // A lock taken for an answer the shutdown overtook has no `ReleaseLock` coming.
    if host.holding.swap(false, Ordering::SeqCst) {
        std::fs::remove_file(&host.lock_file)?;
    }
    let state = host.engine.lock().unwrap_or_else(PoisonError::into_inner).state();
    let nights = host.nights.load(Ordering::SeqCst);
    println!("shut down in {state} after {nights} complete night(s)");
    if state != StateName::Wake || (nights == 0 && !host.stop.load(Ordering::SeqCst)) {
        return Err(format!("no complete night, or not back in WAKE ({state})").into());
    }
    Ok(())
}
