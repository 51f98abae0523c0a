//! The file-system calls the store makes, as a trait, and their real implementation.
//!
//! Owns the mapping from each call to the system calls behind it (flags, modes, `fsync`). It must not
//! decide anything about the state file: order, names and recovery belong to `store`.

use std::ffi::OsString;
use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::Call;

/// What a path names, as `lstat` sees it (a symbolic link is not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// Anything else (a socket, a pipe, a device).
    Other,
}

/// The parts of a file's metadata the store looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// What the path names.
    pub kind: FileKind,
    /// The permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// The device the file lives on.
    pub dev: u64,
    /// The inode number.
    pub ino: u64,
    /// The size in bytes.
    pub size: u64,
    /// The modification time in nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// The owner's user id.
    pub uid: u32,
}

/// A file opened for writing by [`Fs::create_new`] or [`Fs::overwrite`]; closed when dropped.
pub trait FsFile: Send {
    /// Writes all of `data` at the current position.
    fn write_all(&mut self, data: &[u8]) -> io::Result<()>;
    /// Makes the file's data durable (`fsync`).
    fn sync(&mut self) -> io::Result<()>;
    /// The open file's metadata (`fstat`), when the file system can tell it without a path;
    /// `None` when it cannot (the caller then asks by path).
    fn meta(&self) -> Option<io::Result<Meta>> {
        None
    }
}

/// The calls the store makes. Every path is absolute or relative to the working directory, and every
/// file the store writes lives in one directory, the state file's.
pub trait Fs: Send + Sync {
    /// Creates the directory and any missing parents, each with mode 0700, durably.
    fn create_dir(&self, dir: &Path) -> io::Result<()>;
    /// `lstat`: the metadata of what the path names, without following a symbolic link; `None` when
    /// nothing is there.
    fn stat(&self, path: &Path) -> io::Result<Option<Meta>>;
    /// Reads a whole file without following a symbolic link (`O_NOFOLLOW`), with the metadata of the
    /// file that was read; `None` when nothing is there. What is not a regular file reads as empty.
    fn read(&self, path: &Path) -> io::Result<Option<(Vec<u8>, Meta)>>;
    /// Creates a file that must not exist yet (`O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC`), mode 0600.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Opens a file for appending, creating it with mode 0600 when missing
    /// (`O_WRONLY|O_APPEND|O_CREAT|O_NOFOLLOW|O_CLOEXEC`): the journal's writes.
    fn append(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Opens a file for rewriting in place, truncating it (`O_CREAT|O_TRUNC`). Used only by the
    /// deliberately broken protocol that proves the crash tests can fail.
    fn overwrite(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Renames `from` over `to`, atomically replacing it.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes `to` a new hard link to the file `from` names.
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Sets the permission bits of the regular file `path` names, never through a symbolic link.
    fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// Removes a directory entry.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries durable (`fsync` on the directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Opens a directory (`O_RDONLY|O_DIRECTORY|O_CLOEXEC`) to hold it open: to sync it again and
    /// again without reopening it, and to take the store's lock on it.
    fn open_dir(&self, dir: &Path) -> io::Result<Box<dyn DirHandle>>;
    /// The names in a directory.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>>;
}

/// A directory held open. Its lock is an exclusive advisory lock (`flock(2)`) that belongs to this
/// open directory: another handle, in this process or another, waits for it; closing the handle
/// releases it. Deleting or replacing any file in the directory cannot undo it.
pub trait DirHandle: Send + Sync {
    /// Makes the directory's entries durable: [`Fs::sync_dir`] without opening it again.
    fn sync(&self) -> io::Result<()>;
    /// Takes the lock, waiting for another holder to release it (`LOCK_EX`).
    fn lock(&self) -> io::Result<()>;
    /// Takes the lock when it is free; false when another holder has it (`LOCK_EX|LOCK_NB`).
    fn try_lock(&self) -> io::Result<bool>;
    /// Releases the lock (errors are ignored: closing the directory would release it too).
    fn unlock(&self);
}

/// The real file system, through `std::fs` and POSIX semantics.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl Fs for RealFs {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.create_dir(parent)?;
        }
        match DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
            Err(e) => return Err(e),
        }
        // The umask may have taken bits away (even the owner's): 0700 whatever it is.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        self.sync_dir(parent)
    }

    fn stat(&self, path: &Path) -> io::Result<Option<Meta>> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) => Ok(Some(meta_of(&meta))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read(&self, path: &Path) -> io::Result<Option<(Vec<u8>, Meta)>> {
        let mut file = match OpenOptions::new()
            .read(true)
            // O_NONBLOCK: opening a named pipe must not hang; it changes nothing for a regular file.
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = meta_of(&file.metadata()?);
        if meta.kind != FileKind::File {
            return Ok(Some((Vec::new(), meta)));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.size).unwrap_or(0));
        file.read_to_end(&mut bytes)?;
        Ok(Some((bytes, meta)))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        // The umask can only take bits away. When the process's umask leaves 0600 alone, the file
        // already has it; otherwise this makes the mode exactly 0600.
        if umask_strips_owner_bits()
            && let Err(e) = file.set_permissions(std::fs::Permissions::from_mode(0o600))
        {
            drop(file);
            // The caller never learns the name of a file this call failed to create: remove it
            // here, and report the error that made the call fail rather than this one.
            std::fs::remove_file(path).ok();
            return Err(e);
        }
        Ok(Box::new(file))
    }

    fn append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        Ok(Box::new(file))
    }

    fn overwrite(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        Ok(Box::new(file))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to)
    }

    fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        file.set_permissions(std::fs::Permissions::from_mode(mode))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn open_dir(&self, dir: &Path) -> io::Result<Box<dyn DirHandle>> {
        // No O_NOFOLLOW: a symbolic link to the state directory is allowed.
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)?;
        Ok(Box::new(dir))
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?.map(|entry| entry.map(|e| e.file_name())).collect()
    }
}

/// Whether the process's umask (read once, from `/proc/self/status`) takes away owner read or
/// write bits, so that a file created 0600 needs its mode set again. True when it cannot be read.
fn umask_strips_owner_bits() -> bool {
    static STRIPS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *STRIPS.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let umask = status
            .lines()
            .find_map(|line| line.strip_prefix("Umask:"))
            .and_then(|value| u32::from_str_radix(value.trim(), 8).ok());
        umask.is_none_or(|umask| umask & 0o600 != 0)
    })
}

/// A directory opened by [`RealFs::open_dir`]; `File::lock` is `flock(2)` on Linux.
impl DirHandle for File {
    fn sync(&self) -> io::Result<()> {
        self.sync_all()
    }

    fn lock(&self) -> io::Result<()> {
        File::lock(self)
    }

    fn try_lock(&self) -> io::Result<bool> {
        match File::try_lock(self) {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    fn unlock(&self) {
        let _ = File::unlock(self);
    }
}

impl FsFile for File {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        Write::write_all(self, data)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_all()
    }

    fn meta(&self) -> Option<io::Result<Meta>> {
        Some(self.metadata().map(|meta| meta_of(&meta)))
    }
}

fn meta_of(meta: &std::fs::Metadata) -> Meta {
    let file_type = meta.file_type();
    let kind = if file_type.is_symlink() {
        FileKind::Symlink
    } else if file_type.is_dir() {
        FileKind::Dir
    } else if file_type.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    };
    Meta {
        kind,
        mode: meta.mode() & 0o7777,
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        uid: meta.uid(),
    }
}

#[cfg_attr(not(feature = "cli"), allow(dead_code))] // Used by the command line.
/// The real file system with a hook in front of every call on paths (not the writes, syncs and
/// locks of an open file or directory; opening a directory counts as [`Call::SyncDir`]): when
/// `fault` returns an error for a call (its kind and its target path), that error is returned
/// instead and nothing happens. For fault injection on a real disk (tests, the simulated host's
/// crashes).
pub struct Interposed<F> {
    fault: F,
}

#[cfg_attr(not(feature = "cli"), allow(dead_code))] // Used by the command line.
impl<F: Fn(Call, &Path) -> Option<io::Error> + Send + Sync> Interposed<F> {
    /// The real file system behind `fault`.
    pub fn new(fault: F) -> Self {
        Self { fault }
    }

    fn check(&self, call: Call, path: &Path) -> io::Result<()> {
        (self.fault)(call, path).map_or(Ok(()), Err)
    }
}

impl<F: Fn(Call, &Path) -> Option<io::Error> + Send + Sync> Fs for Interposed<F> {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(Call::CreateDir, dir)?;
        RealFs.create_dir(dir)
    }

    fn stat(&self, path: &Path) -> io::Result<Option<Meta>> {
        self.check(Call::Stat, path)?;
        RealFs.stat(path)
    }

    fn read(&self, path: &Path) -> io::Result<Option<(Vec<u8>, Meta)>> {
        self.check(Call::Read, path)?;
        RealFs.read(path)
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.check(Call::Create, path)?;
        RealFs.create_new(path)
    }

    fn append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.check(Call::Create, path)?;
        RealFs.append(path)
    }

    fn overwrite(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.check(Call::Create, path)?;
        RealFs.overwrite(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(Call::Rename, to)?;
        RealFs.rename(from, to)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(Call::Link, to)?;
        RealFs.hard_link(from, to)
    }

    fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.check(Call::SetMode, path)?;
        RealFs.set_mode(path, mode)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.check(Call::Remove, path)?;
        RealFs.remove(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(Call::SyncDir, dir)?;
        RealFs.sync_dir(dir)
    }

    fn open_dir(&self, dir: &Path) -> io::Result<Box<dyn DirHandle>> {
        self.check(Call::SyncDir, dir)?;
        RealFs.open_dir(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        self.check(Call::ListDir, dir)?;
        RealFs.list_dir(dir)
    }
}
