//! A simulated file system that keeps what is durable apart from what is only visible.
//!
//! Owns the crash model: which disk images a power cut may leave, and injected errors. It serves as
//! the in-memory store and as the ground the crash tests stand on. It must not touch the real file
//! system or the clock.
//!
//! The model. A file's data is durable once the file is `fsync`ed; before that a crash may drop it,
//! keep it, or keep any prefix of it (a torn write). Directory operations (create, rename, link,
//! unlink) are durable once their directory is `fsync`ed; before that a crash keeps any prefix of
//! them in the order they were made. Directories themselves are always durable. A failed `fsync`
//! leaves the data not durable, and a later `fsync` of that file reports success without making it
//! durable (as Linux does after writeback errors). There are no symbolic links. A directory held
//! open carries an exclusive lock, as `flock(2)` on it does: one holder among all handles, released
//! by unlocking or by closing the handle; a power cut leaves no lock held. Renaming a name over
//! another link to the same file does nothing, as `rename(2)` says.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::fs::{DirHandle, FileKind, Fs, FsFile, Meta};

/// A kind of file-system call, for injecting errors at the N-th call of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Call {
    /// [`Fs::create_dir`].
    CreateDir,
    /// [`Fs::stat`].
    Stat,
    /// [`Fs::read`].
    Read,
    /// [`Fs::create_new`] and [`Fs::overwrite`].
    Create,
    /// [`FsFile::write_all`].
    Write,
    /// [`FsFile::sync`].
    Sync,
    /// [`Fs::rename`].
    Rename,
    /// [`Fs::hard_link`].
    Link,
    /// [`Fs::remove`].
    Remove,
    /// [`Fs::sync_dir`].
    SyncDir,
    /// [`Fs::list_dir`].
    ListDir,
    /// [`DirHandle::lock`] and [`DirHandle::try_lock`].
    Lock,
    /// [`Fs::set_mode`].
    SetMode,
}

impl Call {
    #[cfg(any(test, feature = "testing"))]
    /// Every kind of call.
    pub const ALL: [Call; 13] = [
        Call::CreateDir,
        Call::Stat,
        Call::Read,
        Call::Create,
        Call::Write,
        Call::Sync,
        Call::Rename,
        Call::Link,
        Call::Remove,
        Call::SyncDir,
        Call::ListDir,
        Call::Lock,
        Call::SetMode,
    ];
}

/// A simulated file system; clones share the same disk.
#[derive(Clone)]
pub struct SimFs {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    unlocked: Condvar,
}

mod disk;

use disk::{Dir, DirOp, Injection, Inode, State, advance};

impl Default for SimFs {
    fn default() -> Self {
        Self::new()
    }
}

impl SimFs {
    /// An empty disk holding only the root directory `/`.
    pub fn new() -> Self {
        let mut state = State::default();
        state.dirs.insert(PathBuf::from("/"), Dir::default());
        Self::from_state(state)
    }

    fn from_state(state: State) -> Self {
        Self { shared: Arc::new(Shared { state: Mutex::new(state), unlocked: Condvar::new() }) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Cuts the power just before the `nth` call from now (of any kind; 0 is the next one): that
    /// call and every later one fails with EIO and changes nothing.
    pub fn cut_power_at(&self, nth: u64) {
        let mut state = self.state();
        state.power_cut_at = Some(state.calls + nth);
    }

    /// Whether the power was cut.
    pub fn power_was_cut(&self) -> bool {
        self.state().power_cut
    }

    /// Makes the `nth` call (from 0) of kind `call`, counted from now, fail with the OS error
    /// `errno` (for example `libc::EIO`, `libc::ENOSPC`, `libc::EDQUOT`, `libc::EACCES`). Several
    /// errors may be armed at once.
    pub fn fail_at(&self, call: Call, nth: u64, errno: i32) {
        let mut state = self.state();
        let already = state.calls_by_kind.get(&call).copied().unwrap_or(0);
        state.inject.push(Injection { call, nth: already + nth, errno });
    }

    /// Whether an error armed by [`SimFs::fail_at`] was returned since the last call; disarms
    /// them all.
    pub fn take_injected(&self) -> bool {
        let mut state = self.state();
        state.inject.clear();
        std::mem::take(&mut state.injected)
    }

    /// The content of a file as it is visible now, `None` when nothing is there.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state();
        let ino = state.lookup(path)?;
        state.inodes.get(&ino).map(|inode| inode.current.clone())
    }

    /// The names in a directory as they are visible now.
    pub fn names(&self, dir: &Path) -> Vec<OsString> {
        let state = self.state();
        state.dirs.get(dir).map(|d| d.current.keys().cloned().collect()).unwrap_or_default()
    }

    /// Makes `uid` the owner of the file or directory at `path`, as `chown` would.
    pub fn set_owner(&self, path: &Path, uid: u32) {
        let mut state = self.state();
        if state.dirs.contains_key(path) {
            state.dir_owners.insert(path.to_owned(), uid);
        } else if let Some(ino) = state.lookup(path)
            && let Some(inode) = state.inodes.get_mut(&ino)
        {
            inode.uid = uid;
        }
    }

    /// Replaces a file durably with new content, as another writer's completed rename would.
    pub fn replace_durably(&self, path: &Path, contents: &[u8]) {
        let mut state = self.state();
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return;
        };
        let ino = state.new_inode(contents.to_vec());
        if let Some(inode) = state.inodes.get_mut(&ino) {
            inode.durable = contents.to_vec();
        }
        if let Some(dir) = state.dirs.get_mut(dir) {
            dir.durable.insert(name.to_owned(), ino);
            dir.current.insert(name.to_owned(), ino);
        }
    }

    /// Calls `each` with every disk image a power cut right now may leave, each as a fresh simulated
    /// file system whose content is all durable, until `each` breaks. Returns how many were visited.
    pub fn for_each_crash_image(
        &self,
        mut each: impl FnMut(SimFs) -> ControlFlow<()>,
    ) -> ControlFlow<(), u64> {
        let state = self.state().clone();
        let dirs: Vec<(&PathBuf, &Dir)> = state.dirs.iter().collect();
        let mut count = 0;
        let mut prefixes = vec![0usize; dirs.len()];
        loop {
            let image_dirs: Vec<BTreeMap<OsString, u64>> =
                dirs.iter().zip(&prefixes).map(|((_, dir), &k)| dir.replay(k)).collect();
            let reachable: BTreeSet<u64> =
                image_dirs.iter().flat_map(|entries| entries.values().copied()).collect();
            let choices: Vec<(u64, Vec<Vec<u8>>)> = reachable
                .iter()
                .filter_map(|ino| state.inodes.get(ino).map(|inode| (*ino, inode.crash_choices())))
                .collect();
            let mut picks = vec![0usize; choices.len()];
            loop {
                let mut image = State { next_ino: state.next_ino, ..State::default() };
                for ((path, _), entries) in dirs.iter().zip(&image_dirs) {
                    image.dirs.insert(
                        (*path).clone(),
                        Dir { durable: entries.clone(), current: entries.clone(), log: Vec::new() },
                    );
                }
                for ((ino, options), &pick) in choices.iter().zip(&picks) {
                    let data = options[pick].clone();
                    let (mode, uid) = state.inodes.get(ino).map_or((0o600, 0), |i| (i.mode, i.uid));
                    image.inodes.insert(
                        *ino,
                        Inode {
                            durable: data.clone(),
                            current: data,
                            sync_failed: false,
                            mtime_ns: 0,
                            mode,
                            uid,
                        },
                    );
                }
                count += 1;
                if each(Self::from_state(image)).is_break() {
                    return ControlFlow::Break(());
                }
                if !advance(&mut picks, |i| choices[i].1.len()) {
                    break;
                }
            }
            if !advance(&mut prefixes, |i| dirs[i].1.log.len() + 1) {
                return ControlFlow::Continue(count);
            }
        }
    }

    /// Counts the call, and answers whether it may go ahead: an error when the power is cut or an
    /// error is injected here.
    fn enter(&self, call: Call) -> io::Result<MutexGuard<'_, State>> {
        let mut state = self.state();
        let index = state.calls;
        state.calls += 1;
        let nth = state.calls_by_kind.entry(call).or_insert(0);
        let this = *nth;
        *nth += 1;
        if state.power_cut || state.power_cut_at == Some(index) {
            state.power_cut = true;
            return Err(io::Error::other("simulated power cut"));
        }
        if let Some(inject) =
            state.inject.iter().find(|inject| inject.call == call && inject.nth == this).copied()
        {
            state.injected = true;
            return Err(io::Error::from_raw_os_error(inject.errno));
        }
        Ok(state)
    }
}

struct SimFile {
    fs: SimFs,
    ino: u64,
}

/// A directory held open: each `sync` is a [`Fs::sync_dir`] of it, and it carries the directory's
/// lock as the handle `id`.
struct SimDir {
    fs: SimFs,
    dir: PathBuf,
    id: u64,
}

impl SimDir {
    /// Takes the lock when no other handle holds it.
    fn take(&self, state: &mut State) -> bool {
        match state.locks.get(&self.dir) {
            Some(&holder) => holder == self.id,
            None => {
                state.locks.insert(self.dir.clone(), self.id);
                true
            }
        }
    }
}

impl DirHandle for SimDir {
    fn sync(&self) -> io::Result<()> {
        self.fs.sync_dir(&self.dir)
    }

    fn lock(&self) -> io::Result<()> {
        let mut state = self.fs.enter(Call::Lock)?;
        while !self.take(&mut state) {
            state = self.fs.shared.unlocked.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        Ok(())
    }

    fn try_lock(&self) -> io::Result<bool> {
        let mut state = self.fs.enter(Call::Lock)?;
        Ok(self.take(&mut state))
    }

    fn unlock(&self) {
        let mut state = self.fs.state();
        if state.locks.get(&self.dir) == Some(&self.id) {
            state.locks.remove(&self.dir);
        }
        drop(state);
        self.fs.shared.unlocked.notify_all();
    }
}

/// Closing the directory releases its lock.
impl Drop for SimDir {
    fn drop(&mut self) {
        self.unlock();
    }
}

impl FsFile for SimFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let mut state = self.fs.enter(Call::Write)?;
        state.clock += 1;
        let clock = state.clock;
        let inode = state
            .inodes
            .get_mut(&self.ino)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
        inode.current.extend_from_slice(data);
        inode.mtime_ns = clock;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let result = self.fs.enter(Call::Sync).map(|_| ());
        let mut state = self.fs.state();
        let inode = state
            .inodes
            .get_mut(&self.ino)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
        match result {
            Ok(()) if !inode.sync_failed => inode.durable = inode.current.clone(),
            Ok(()) => {}
            Err(e) => {
                inode.sync_failed = true;
                return Err(e);
            }
        }
        Ok(())
    }
}

impl Fs for SimFs {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.enter(Call::CreateDir)?;
        for ancestor in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
            state.dirs.entry(ancestor.to_owned()).or_default();
        }
        Ok(())
    }

    fn stat(&self, path: &Path) -> io::Result<Option<Meta>> {
        let state = self.enter(Call::Stat)?;
        Ok(state.meta(path))
    }

    fn read(&self, path: &Path) -> io::Result<Option<(Vec<u8>, Meta)>> {
        let state = self.enter(Call::Read)?;
        if let Some(meta) = state.meta(path).filter(|m| m.kind == FileKind::Dir) {
            return Ok(Some((Vec::new(), meta)));
        }
        let found = state.lookup(path).and_then(|ino| state.inodes.get(&ino));
        Ok(found.zip(state.meta(path)).map(|(inode, meta)| (inode.current.clone(), meta)))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let ino = self.enter(Call::Create)?.open_file(path, true)?;
        Ok(Box::new(SimFile { fs: self.clone(), ino }))
    }

    fn append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let ino = self.enter(Call::Create)?.open_to_append(path)?;
        Ok(Box::new(SimFile { fs: self.clone(), ino }))
    }

    fn overwrite(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let ino = self.enter(Call::Create)?.open_file(path, false)?;
        Ok(Box::new(SimFile { fs: self.clone(), ino }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.enter(Call::Rename)?;
        if from.parent() != to.parent() {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        let ino = state.lookup(from).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        if state.lookup(to) == Some(ino) {
            // Two links to one file: rename(2) succeeds and leaves both names in place.
            return Ok(());
        }
        let (dir, name) = state.split(from)?;
        let to_name = to.file_name().unwrap_or_default().to_owned();
        dir.apply(DirOp::Rename(name.to_owned(), to_name));
        Ok(())
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.enter(Call::Link)?;
        if from.parent() != to.parent() {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        state.lookup(from).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        if state.lookup(to).is_some() || state.dirs.contains_key(to) {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        let (dir, name) = state.split(from)?;
        let to_name = to.file_name().unwrap_or_default().to_owned();
        dir.apply(DirOp::Link(name.to_owned(), to_name));
        Ok(())
    }

    fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()> {
        let mut state = self.enter(Call::SetMode)?;
        let ino = state.lookup(path).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        let inode =
            state.inodes.get_mut(&ino).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        inode.mode = mode & 0o7777;
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.enter(Call::Remove)?;
        state.lookup(path).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        let (dir, name) = state.split(path)?;
        dir.apply(DirOp::Remove(name.to_owned()));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.enter(Call::SyncDir)?;
        let dir =
            state.dirs.get_mut(dir).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        dir.durable = dir.current.clone();
        dir.log.clear();
        Ok(())
    }

    fn open_dir(&self, dir: &Path) -> io::Result<Box<dyn DirHandle>> {
        let mut state = self.state();
        if !state.dirs.contains_key(dir) {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        state.next_handle += 1;
        let id = state.next_handle;
        Ok(Box::new(SimDir { fs: self.clone(), dir: dir.to_owned(), id }))
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let state = self.enter(Call::ListDir)?;
        let dir = state.dirs.get(dir).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        Ok(dir.current.keys().cloned().collect())
    }
}
