//! daemon-state: the sleep/wake lifecycle of a long-lived background daemon.
//!
//! A host feeds the [`engine::Engine`] events (ticks, sessions, recalls, lock results, finished
//! REM cycles, operator requests); it answers with transitions between four typed states and
//! effects for the host to perform, and snapshots every transition atomically to a JSON state file
//! that the original Python implementation can still read.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod check;
pub mod cli;
pub mod clock;
pub mod data;
pub mod diagram;
pub mod digest;
pub mod effects;
pub mod engine;
pub mod event;
pub mod kernel;
pub mod machine;
pub mod quiet_window;
pub mod record;
pub mod serve;
pub mod sessions;
pub mod simulate;
pub mod status;
pub mod store;
pub mod table;
pub mod timestamp;
pub mod view;
