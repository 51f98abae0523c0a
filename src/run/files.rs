//! The files `run` holds: the daemon's lock (`acquire_lock`), the lock that keeps a second `run`
//! off the same state file, and the audit events' file.
//!
//! Owns opening, locking and appending. It must not decide when to lock or what to write: the host
//! does.

use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::effects::Audit;
use crate::timestamp::{self, Timestamp};

/// Opens `path` for locking or appending: created 0600 when missing, never through a symbolic
/// link, not inherited by the REM command.
fn open(path: &Path, append: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    if append {
        options.append(true);
    } else {
        options.read(true).write(true);
    }
    options
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// The daemon's lock: an exclusive `flock(2)` on the lock file, taken without waiting.
#[derive(Debug)]
pub struct DaemonLock {
    path: PathBuf,
    held: Option<File>,
}

impl DaemonLock {
    /// The lock on `path`, not taken yet.
    pub fn new(path: PathBuf) -> Self {
        Self { path, held: None }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the lock without waiting: `Ok(true)` when taken (or already held), `Ok(false)` when
    /// another process holds it.
    pub fn try_acquire(&mut self) -> io::Result<bool> {
        if self.held.is_some() {
            return Ok(true);
        }
        let file = open(&self.path, false)?;
        match file.try_lock() {
            Ok(()) => {
                self.held = Some(file);
                Ok(true)
            }
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    /// Releases the lock; nothing happens when it is not held. Returns whether it was.
    pub fn release(&mut self) -> bool {
        match self.held.take() {
            Some(file) => {
                // Closing the descriptor releases it too; unlocking first says so explicitly.
                let _ = file.unlock();
                true
            }
            None => false,
        }
    }
}

/// `NAME.run.lock` beside the state file `NAME`: held by a running `run` for its whole life, so
/// that a second one on the same state file refuses to start. The file is left in place: a lock
/// file removed while held would let a third process lock a new file at the same path.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

/// The instance lock of `state_file`.
pub fn instance_lock_path(state_file: &Path) -> PathBuf {
    let mut name = OsString::from(state_file.as_os_str());
    name.push(".run.lock");
    PathBuf::from(name)
}

impl InstanceLock {
    /// Takes the instance lock of `state_file`: `Ok(None)` when another `run` holds it.
    pub fn acquire(state_file: &Path) -> io::Result<Option<Self>> {
        let file = open(&instance_lock_path(state_file), false)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

/// Where audit events go: appended to a file, a JSON line each, or logged on stderr.
#[derive(Debug)]
pub enum EventSink {
    /// `--events FILE`.
    File {
        /// The file.
        path: PathBuf,
        /// Open for appending.
        file: File,
        /// Whether a failed append was reported (once).
        failed: bool,
    },
    /// No `--events`: one line on stderr per event.
    Stderr,
}

impl EventSink {
    /// Appends to `path`, created 0600 when missing.
    pub fn file(path: PathBuf) -> io::Result<Self> {
        let file = open(&path, true)?;
        Ok(Self::File { path, file, failed: false })
    }

    /// Writes one audit event emitted at `at`.
    pub fn write(&mut self, audit: &Audit, at: Timestamp) {
        let line = event_line(audit, at);
        match self {
            Self::Stderr => {
                let _ = writeln!(io::stderr().lock(), "daemon-state: event {line}");
            }
            Self::File { path, file, failed } => {
                let mut bytes = line.into_bytes();
                bytes.push(b'\n');
                // One write on a file opened for appending: lines from elsewhere never interleave.
                if let Err(error) = file.write_all(&bytes)
                    && !std::mem::replace(failed, true)
                {
                    tracing::error!(path = %path.display(), %error, "cannot append an audit event");
                }
            }
        }
    }
}

/// `{"kind": KIND, "payload": {...}, "severity": "info"|"warning", "at": MOMENT}`, one line.
pub fn event_line(audit: &Audit, at: Timestamp) -> String {
    let tagged = serde_json::to_value(audit).unwrap_or_default();
    let text = |value: &serde_json::Value| serde_json::to_string(value).unwrap_or_default();
    let null = serde_json::Value::Null;
    format!(
        "{{\"kind\":{},\"payload\":{},\"severity\":{},\"at\":{}}}",
        text(&serde_json::Value::from(audit.kind())),
        text(tagged.get("payload").unwrap_or(&null)),
        text(&serde_json::Value::from(audit.severity().as_str())),
        text(&serde_json::Value::from(timestamp::format(at))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::Reason;

    #[test]
    fn an_event_line_has_its_kind_payload_severity_and_moment() {
        let audit = Audit::DaemonYielded { reason: Reason::LockDenied, completed_cycles: 0 };
        let at = timestamp::parse_moment("2026-04-18T22:00:31Z").unwrap();
        let line = event_line(&audit, at);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["kind"], "daemon_yielded");
        assert_eq!(value["payload"]["completed_cycles"], 0);
        assert_eq!(value["severity"], "info");
        assert_eq!(value["at"], "2026-04-18T22:00:31+00:00");
    }

    #[test]
    fn the_daemon_lock_is_exclusive_and_released_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let mut first = DaemonLock::new(path.clone());
        let mut second = DaemonLock::new(path);
        assert!(first.try_acquire().unwrap());
        assert!(first.try_acquire().unwrap(), "held already");
        assert!(!second.try_acquire().unwrap());
        assert!(first.release());
        assert!(!first.release(), "idempotent");
        assert!(second.try_acquire().unwrap());
    }

    #[test]
    fn a_second_instance_lock_on_one_state_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        let held = InstanceLock::acquire(&state).unwrap();
        assert!(held.is_some());
        assert!(InstanceLock::acquire(&state).unwrap().is_none());
        drop(held);
        assert!(InstanceLock::acquire(&state).unwrap().is_some());
    }
}
