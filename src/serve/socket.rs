//! The Unix socket `serve --socket PATH` listens on: claiming the path, and giving it back.
//!
//! Owns refusing a path that a live server or a non-socket holds, the lock `PATH.lock` that makes
//! exactly one of several servers started at once win the path, replacing a stale socket file,
//! creating the socket with mode 0600 before anyone can connect, and removing it (and the lock
//! file) when the listener goes. It must not read or answer requests: `Server` does.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The socket path is the state file, its directory, or one of the files the store keeps
    /// beside it.
    #[error(
        "refusing socket {}: it is the state file {} or one of the files beside it",
        .path.display(), .state_file.display()
    )]
    StateFile {
        /// The socket path.
        path: PathBuf,
        /// The state file.
        state_file: PathBuf,
    },
    /// Another server answers on the socket.
    #[error("socket {} is in use by another server", .path.display())]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// The lock file beside the socket could not be opened or locked.
    #[error("cannot lock {} for socket {}: {source}", .lock.display(), .path.display())]
    Lock {
        /// The socket path.
        path: PathBuf,
        /// The lock file, `PATH.lock`.
        lock: PathBuf,
        /// The error the system gave.
        #[source]
        source: io::Error,
    },
    /// Something other than a socket is at the path; it is never removed.
    #[error("refusing socket path {}: it exists and is not a socket", .path.display())]
    NotASocket {
        /// The socket path.
        path: PathBuf,
    },
    /// A file-system or socket call failed.
    #[error("cannot {action} socket {}: {source}", .path.display())]
    Io {
        /// What was being done, e.g. `"bind"`.
        action: &'static str,
        /// The socket path.
        path: PathBuf,
        /// The error the system gave.
        #[source]
        source: io::Error,
    },
}

/// A listening Unix socket that removes its file when dropped (unless another server has replaced
/// it since). It holds the lock `PATH.lock` for as long as it lives.
#[derive(Debug)]
pub struct SocketListener {
    listener: UnixListener,
    path: PathBuf,
    identity: (u64, u64),
    lock: SocketLock,
}

impl SocketListener {
    /// Listens on `path` with mode 0600. First takes the exclusive lock `PATH.lock` without
    /// waiting (held: another server has the path); then a socket file that nobody answers on is
    /// stale and is replaced; a live one, or anything that is not a socket, is refused.
    pub fn bind(path: impl Into<PathBuf>) -> Result<Self, SocketError> {
        let path = path.into();
        let lock = SocketLock::acquire(&path)?;
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("inspect", &path)(e)),
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(SocketError::NotASocket { path });
            }
            Ok(_) => match UnixStream::connect(&path) {
                Ok(_) => return Err(SocketError::InUse { path }),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    tracing::info!(path = %path.display(), "replacing a stale socket file");
                    fs::remove_file(&path).map_err(io_error("remove stale", &path))?;
                }
                Err(e) => return Err(io_error("probe", &path)(e)),
            },
        }
        let listener = bind_private(&path).map_err(io_error("bind", &path))?;
        let meta = fs::symlink_metadata(&path).map_err(io_error("inspect", &path))?;
        Ok(Self { listener, identity: (meta.dev(), meta.ino()), path, lock })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The listening socket.
    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }

    /// Removes the socket file (unless another server has replaced it) and then the lock file, so
    /// that nothing is left at the path; new clients can no longer connect. Dropping the listener
    /// does the same.
    pub fn remove(&self) {
        let ours = fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == self.identity);
        if ours && let Err(error) = fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "cannot remove the socket file");
        }
        self.lock.remove();
    }
}

impl Drop for SocketListener {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The exclusive `flock(2)` on `PATH.lock` a server holds for its whole life. The lock file is
/// removed, while still locked, when the server stops; a server that opened it just before checks,
/// once it holds the lock, that the file it locked is still the one at the path, and tries again
/// otherwise.
#[derive(Debug)]
struct SocketLock {
    file: File,
    path: PathBuf,
}

impl SocketLock {
    /// How many times a lock file removed under us is tried again before giving up.
    const ATTEMPTS: usize = 16;

    fn acquire(socket: &Path) -> Result<Self, SocketError> {
        let path = lock_path(socket);
        let error =
            |source| SocketError::Lock { path: socket.to_owned(), lock: path.clone(), source };
        for _ in 0..Self::ATTEMPTS {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)
                .map_err(error)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(SocketError::InUse { path: socket.to_owned() });
                }
                Err(TryLockError::Error(e)) => return Err(error(e)),
            }
            let locked = file.metadata().map_err(error)?;
            let at_path = fs::symlink_metadata(&path);
            if at_path.is_ok_and(|m| (m.dev(), m.ino()) == (locked.dev(), locked.ino())) {
                return Ok(Self { file, path });
            }
        }
        Err(SocketError::InUse { path: socket.to_owned() })
    }

    /// Removes the lock file if it is still the one locked (the lock itself goes with the file
    /// descriptor).
    fn remove(&self) {
        let ours = match (self.file.metadata(), fs::symlink_metadata(&self.path)) {
            (Ok(locked), Ok(at_path)) => {
                (locked.dev(), locked.ino()) == (at_path.dev(), at_path.ino())
            }
            _ => false,
        };
        if ours && let Err(error) = fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "cannot remove the lock file");
        }
    }
}

impl Drop for SocketLock {
    fn drop(&mut self) {
        self.remove();
    }
}

/// `PATH.lock`, the lock file of the socket at `PATH`.
fn lock_path(socket: &Path) -> PathBuf {
    let mut name = OsString::from(socket.as_os_str());
    name.push(".lock");
    PathBuf::from(name)
}

/// Refuses a socket path when it or its lock file `PATH.lock` is `state_file`, its directory,
/// `NAME.prev`, `NAME.lock`, `NAME.corrupt.*` or `NAME.*.tmp`, however either path is spelled
/// (relative, through symbolic links, not created yet): the parent directories are compared
/// resolved, then the names.
pub fn refuse_state_file(socket: &Path, state_file: &Path) -> Result<(), SocketError> {
    let state_at = resolve(state_file);
    if [socket.to_owned(), lock_path(socket)].iter().any(|path| clashes(&resolve(path), &state_at))
    {
        return Err(SocketError::StateFile {
            path: socket.to_owned(),
            state_file: state_file.to_owned(),
        });
    }
    Ok(())
}

/// Whether the resolved path `at` is the resolved state file `state_at`, its directory or one of
/// the files the store keeps beside it.
fn clashes(at: &Path, state_at: &Path) -> bool {
    if at == state_at || state_at.parent() == Some(at) || at.parent() != state_at.parent() {
        return at == state_at || state_at.parent() == Some(at);
    }
    let (Some(name), Some(other)) = (state_at.file_name(), at.file_name()) else {
        return false;
    };
    let Some(rest) = other.as_encoded_bytes().strip_prefix(name.as_encoded_bytes()) else {
        return false;
    };
    rest == b".prev"
        || rest == b".lock"
        || rest.starts_with(b".corrupt.")
        || (rest.starts_with(b".") && rest.ends_with(b".tmp"))
}

/// `path` made absolute, its deepest existing ancestor resolved (symbolic links, `.`, `..`) and the
/// rest appended as written.
fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = fs::canonicalize(existing) {
            return rest.iter().rev().fold(real, |at, name| at.join(name));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

fn io_error(action: &'static str, path: &Path) -> impl Fn(io::Error) -> SocketError {
    let path = path.to_owned();
    move |source| SocketError::Io { action, path: path.clone(), source }
}

/// Binds a socket that appears at `path` already with mode 0600: it is bound inside a fresh
/// private (0700) directory beside `path`, narrowed, then renamed into place. When that staging
/// name is too long for a socket address, it is bound in place and narrowed at once instead.
fn bind_private(path: &Path) -> io::Result<UnixListener> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let staging = tempfile::Builder::new().prefix(".sock").tempdir_in(dir).map_err(without_path)?;
    let staged = staging.path().join("s");
    let (listener, bound) = match UnixListener::bind(&staged) {
        Ok(listener) => (listener, staged.as_path()),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => (UnixListener::bind(path)?, path),
        Err(e) => return Err(e),
    };
    fs::set_permissions(bound, fs::Permissions::from_mode(0o600))?;
    if bound != path {
        fs::rename(bound, path)?;
    }
    Ok(listener)
}

/// The error without the staging path `tempfile` adds to it (`... at path "DIR/.sockXXXX"`): the
/// caller names the socket path, the only one the user knows.
fn without_path(error: io::Error) -> io::Error {
    let os_error = error
        .get_ref()
        .and_then(|inner| inner.source())
        .and_then(|source| source.downcast_ref::<io::Error>())
        .and_then(io::Error::raw_os_error)
        .or_else(|| error.raw_os_error());
    match os_error {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::from(error.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_bind_names_no_staging_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing").join("daemon.sock");
        let error = bind_private(&missing).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert!(!error.to_string().contains(".sock"), "{error}");
        let error = io_error("bind", &missing)(error).to_string();
        assert!(
            error.starts_with(&format!("cannot bind socket {}: ", missing.display())),
            "{error}"
        );
    }
}
