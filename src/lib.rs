//! daemon-state: the sleep/wake lifecycle of a long-lived background daemon.
//!
//! A host feeds the [`Engine`] [`Event`]s (ticks, sessions, recalls, lock results, finished REM
//! cycles, operator requests); it answers with an [`Outcome`]: the [`Transition`]s between four
//! states ([`StateName`]) and the [`Effect`]s for the host to perform, in order. Every transition
//! is snapshotted atomically to a JSON state file that the original Python implementation can
//! still read.
//!
//! ```no_run
//! use daemon_state::{Effect, Engine, Event, EventKind, RemResult, Timestamp};
//!
//! # fn main() -> Result<(), daemon_state::EngineError> {
//! let (mut engine, _report) = Engine::open("/var/lib/mydaemon/state.json")?;
//! let now = Timestamp::from(std::time::SystemTime::now());
//! engine.handle(Event::new(now, EventKind::Boot))?;
//! let outcome = engine.handle(Event::new(now, EventKind::Tick { store_empty: false }))?;
//! for effect in &outcome.effects {
//!     match effect {
//!         Effect::AcquireLock => { /* take the lock, then send LockAcquired or LockDenied */ }
//!         Effect::RunRemCycle { .. } => {
//!             /* run the cycle, then send RemCycleFinished */
//!             let _ = RemResult::default();
//!         }
//!         Effect::ReleaseLock => { /* release it; safe when nothing is held */ }
//!         Effect::Emit(audit) => println!("{} {:?}", audit.kind(), audit),
//!         _ => {}
//!     }
//! }
//! // Tick again when it matters.
//! let _next = engine.next_deadline(now);
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `cli` (default): the `daemon-state` binary, with `serve`, `simulate`, `check` and the
//!   diagrams. A library host turns it off with `default-features = false`.
//! - `serde`: `Deserialize` for the types a host exchanges with the engine, in the shapes of the
//!   `serve` protocol (`PROTOCOL.md`); their `Serialize` is always there (the journal uses it).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Declares the crate's internal modules: private, or public but hidden under the `testing`
/// feature, which the crate's own tests and benches use to reach them. Not an API.
macro_rules! internal {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {$(
        $(#[$attr])*
        #[cfg(feature = "testing")]
        #[doc(hidden)]
        pub mod $name;
        $(#[$attr])*
        #[cfg(not(feature = "testing"))]
        mod $name;
    )*};
}

internal!(
    clock,
    data,
    digest,
    effects,
    engine,
    event,
    journal,
    kernel,
    machine,
    quiet_window,
    reason,
    record,
    sessions,
    state_file,
    status,
    store,
    timestamp,
    view,
    why,
    #[cfg(feature = "cli")]
    check,
    #[cfg(feature = "cli")]
    diagram,
    #[cfg(feature = "cli")]
    history,
    doc,
    #[cfg(feature = "cli")]
    replay,
    #[cfg(feature = "cli")]
    run,
    #[cfg(feature = "cli")]
    serve,
    #[cfg(feature = "cli")]
    simulate,
);

/// The `serve` protocol in-process: one message in, its reply out, on an engine a host holds.
#[cfg(feature = "serde")]
pub mod protocol;

/// The command line, for the `daemon-state` binary. Not an API.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;

pub mod table;

/// The README's code, compiled with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use digest::RemResult;
pub use effects::{Audit, Effect, ReapPhase, Severity};
pub use engine::{Engine, EngineError, OpenReport};
pub use event::{Event, EventKind, Settings};
pub use kernel::Outcome;
pub use machine::{Rejection, Transition};
pub use reason::Reason;
pub use state_file::{Contents, FileLock, SaveError, StateFile};
pub use status::Status;
pub use store::{Recovery, StoreError};
pub use table::StateName;
pub use timestamp::Timestamp;
