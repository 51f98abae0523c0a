//! daemon-state: the sleep/wake lifecycle of a long-lived background daemon.
#![warn(missing_docs)]

pub mod digest;
pub mod quiet_window;
pub mod record;
pub mod sessions;
pub mod store;
pub mod timestamp;
