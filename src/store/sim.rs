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
//! durable (as Linux does after writeback errors). There are no symbolic links.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::fs::{FileKind, Fs, FsFile, FsLock, Meta};

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
    /// [`Fs::lock`].
    Lock,
}

impl Call {
    /// Every kind of call.
    pub const ALL: [Call; 12] = [
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

#[derive(Clone, Default)]
struct State {
    dirs: BTreeMap<PathBuf, Dir>,
    inodes: BTreeMap<u64, Inode>,
    next_ino: u64,
    clock: i128,
    calls: u64,
    calls_by_kind: BTreeMap<Call, u64>,
    power_cut_at: Option<u64>,
    power_cut: bool,
    inject: Option<Injection>,
    injected: bool,
    locks: BTreeSet<PathBuf>,
}

#[derive(Clone, Copy)]
struct Injection {
    call: Call,
    nth: u64,
    errno: i32,
}

#[derive(Clone, Default)]
struct Dir {
    durable: BTreeMap<OsString, u64>,
    current: BTreeMap<OsString, u64>,
    log: Vec<DirOp>,
}

#[derive(Clone)]
enum DirOp {
    Create(OsString, u64),
    Rename(OsString, OsString),
    Link(OsString, OsString),
    Remove(OsString),
}

#[derive(Clone, Default)]
struct Inode {
    durable: Vec<u8>,
    current: Vec<u8>,
    /// An `fsync` of this file failed: its data can no longer be made durable.
    sync_failed: bool,
    mtime_ns: i128,
}

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
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                unlocked: Condvar::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Cuts the power just before the call numbered `call` (counting every call from 0): that call
    /// and every later one fails with EIO and changes nothing.
    pub fn cut_power_at(&self, call: u64) {
        self.state().power_cut_at = Some(call);
    }

    /// Whether the power was cut.
    pub fn power_was_cut(&self) -> bool {
        self.state().power_cut
    }

    /// Makes the `nth` call (from 0) of kind `call`, counted from now, fail with the OS error
    /// `errno` (for example `libc::EIO`, `libc::ENOSPC`, `libc::EDQUOT`, `libc::EACCES`).
    pub fn fail_at(&self, call: Call, nth: u64, errno: i32) {
        let mut state = self.state();
        let already = state.calls_by_kind.get(&call).copied().unwrap_or(0);
        state.inject = Some(Injection {
            call,
            nth: already + nth,
            errno,
        });
        state.injected = false;
    }

    /// Whether the error armed by [`SimFs::fail_at`] was returned; disarms it.
    pub fn take_injected(&self) -> bool {
        let mut state = self.state();
        state.inject = None;
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
        state
            .dirs
            .get(dir)
            .map(|d| d.current.keys().cloned().collect())
            .unwrap_or_default()
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
            let image_dirs: Vec<BTreeMap<OsString, u64>> = dirs
                .iter()
                .zip(&prefixes)
                .map(|((_, dir), &k)| dir.replay(k))
                .collect();
            let reachable: BTreeSet<u64> = image_dirs
                .iter()
                .flat_map(|entries| entries.values().copied())
                .collect();
            let choices: Vec<(u64, Vec<Vec<u8>>)> = reachable
                .iter()
                .filter_map(|ino| {
                    state
                        .inodes
                        .get(ino)
                        .map(|inode| (*ino, inode.crash_choices()))
                })
                .collect();
            let mut picks = vec![0usize; choices.len()];
            loop {
                let mut image = State {
                    next_ino: state.next_ino,
                    ..State::default()
                };
                for ((path, _), entries) in dirs.iter().zip(&image_dirs) {
                    image.dirs.insert(
                        (*path).clone(),
                        Dir {
                            durable: entries.clone(),
                            current: entries.clone(),
                            log: Vec::new(),
                        },
                    );
                }
                for ((ino, options), &pick) in choices.iter().zip(&picks) {
                    let data = options[pick].clone();
                    image.inodes.insert(
                        *ino,
                        Inode {
                            durable: data.clone(),
                            current: data,
                            sync_failed: false,
                            mtime_ns: 0,
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
        if let Some(inject) = state.inject
            && inject.call == call
            && inject.nth == this
        {
            state.injected = true;
            return Err(io::Error::from_raw_os_error(inject.errno));
        }
        Ok(state)
    }
}

/// Steps a mixed-radix counter; false once it wraps around.
fn advance(digits: &mut [usize], radix: impl Fn(usize) -> usize) -> bool {
    for (i, digit) in digits.iter_mut().enumerate() {
        *digit += 1;
        if *digit < radix(i) {
            return true;
        }
        *digit = 0;
    }
    false
}

impl Dir {
    /// The entries after the durable ones and the first `k` logged operations.
    fn replay(&self, k: usize) -> BTreeMap<OsString, u64> {
        let mut entries = self.durable.clone();
        for op in &self.log[..k] {
            op.apply(&mut entries);
        }
        entries
    }

    fn apply(&mut self, op: DirOp) {
        op.apply(&mut self.current);
        self.log.push(op);
    }
}

impl DirOp {
    fn apply(&self, entries: &mut BTreeMap<OsString, u64>) {
        match self {
            DirOp::Create(name, ino) => {
                entries.insert(name.clone(), *ino);
            }
            DirOp::Rename(from, to) => {
                if let Some(ino) = entries.remove(from) {
                    entries.insert(to.clone(), ino);
                }
            }
            DirOp::Link(from, to) => {
                if let Some(&ino) = entries.get(from) {
                    entries.insert(to.clone(), ino);
                }
            }
            DirOp::Remove(name) => {
                entries.remove(name);
            }
        }
    }
}

impl Inode {
    /// What a crash may leave of this file's data: the durable data, or any prefix of the current.
    fn crash_choices(&self) -> Vec<Vec<u8>> {
        if self.durable == self.current && !self.sync_failed {
            return vec![self.current.clone()];
        }
        let mut options = vec![self.durable.clone()];
        for len in 0..=self.current.len() {
            let prefix = &self.current[..len];
            if prefix != self.durable.as_slice() {
                options.push(prefix.to_vec());
            }
        }
        options
    }
}

impl State {
    fn lookup(&self, path: &Path) -> Option<u64> {
        let dir = self.dirs.get(path.parent()?)?;
        dir.current.get(path.file_name()?).copied()
    }

    fn new_inode(&mut self, data: Vec<u8>) -> u64 {
        self.next_ino += 1;
        self.clock += 1;
        let inode = Inode {
            durable: Vec::new(),
            current: data,
            sync_failed: false,
            mtime_ns: self.clock,
        };
        self.inodes.insert(self.next_ino, inode);
        self.next_ino
    }

    fn meta(&self, path: &Path) -> Option<Meta> {
        if self.dirs.contains_key(path) {
            return Some(Meta {
                kind: FileKind::Dir,
                mode: 0o700,
                dev: 1,
                ino: 0,
                size: 0,
                mtime_ns: 0,
            });
        }
        let ino = self.lookup(path)?;
        let inode = self.inodes.get(&ino)?;
        Some(Meta {
            kind: FileKind::File,
            mode: 0o600,
            dev: 1,
            ino,
            size: inode.current.len() as u64,
            mtime_ns: inode.mtime_ns,
        })
    }

    /// The directory and the name of a path whose directory exists.
    fn split<'p>(&mut self, path: &'p Path) -> io::Result<(&mut Dir, &'p std::ffi::OsStr)> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        let dir = self
            .dirs
            .get_mut(parent)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        Ok((dir, name))
    }

    fn open_file(&mut self, path: &Path, exclusive: bool) -> io::Result<u64> {
        if self.dirs.contains_key(path) {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        if let Some(ino) = self.lookup(path) {
            if exclusive {
                return Err(io::Error::from_raw_os_error(libc::EEXIST));
            }
            self.clock += 1;
            let clock = self.clock;
            if let Some(inode) = self.inodes.get_mut(&ino) {
                inode.current.clear();
                inode.mtime_ns = clock;
            }
            return Ok(ino);
        }
        self.split(path)?;
        let ino = self.new_inode(Vec::new());
        let (dir, name) = self.split(path)?;
        dir.apply(DirOp::Create(name.to_owned(), ino));
        Ok(ino)
    }
}

struct SimFile {
    fs: SimFs,
    ino: u64,
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

struct SimLock {
    fs: SimFs,
    path: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.fs.state().locks.remove(&self.path);
        self.fs.shared.unlocked.notify_all();
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
        if state.dirs.contains_key(path) {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        let found = state.lookup(path).and_then(|ino| state.inodes.get(&ino));
        Ok(found
            .zip(state.meta(path))
            .map(|(inode, meta)| (inode.current.clone(), meta)))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let ino = self.enter(Call::Create)?.open_file(path, true)?;
        Ok(Box::new(SimFile {
            fs: self.clone(),
            ino,
        }))
    }

    fn overwrite(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let ino = self.enter(Call::Create)?.open_file(path, false)?;
        Ok(Box::new(SimFile {
            fs: self.clone(),
            ino,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.enter(Call::Rename)?;
        if from.parent() != to.parent() {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        state
            .lookup(from)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
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
        state
            .lookup(from)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        if state.lookup(to).is_some() {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        let (dir, name) = state.split(from)?;
        let to_name = to.file_name().unwrap_or_default().to_owned();
        dir.apply(DirOp::Link(name.to_owned(), to_name));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.enter(Call::Remove)?;
        state
            .lookup(path)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        let (dir, name) = state.split(path)?;
        dir.apply(DirOp::Remove(name.to_owned()));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.enter(Call::SyncDir)?;
        let dir = state
            .dirs
            .get_mut(dir)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        dir.durable = dir.current.clone();
        dir.log.clear();
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let state = self.enter(Call::ListDir)?;
        let dir = state
            .dirs
            .get(dir)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        Ok(dir.current.keys().cloned().collect())
    }

    fn lock(&self, path: &Path, wait: bool) -> io::Result<Option<FsLock>> {
        let mut state = self.enter(Call::Lock)?;
        while state.locks.contains(path) {
            if !wait {
                return Ok(None);
            }
            state = self
                .shared
                .unlocked
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.locks.insert(path.to_owned());
        Ok(Some(Box::new(SimLock {
            fs: self.clone(),
            path: path.to_owned(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_images(fs: &SimFs) -> u64 {
        match fs.for_each_crash_image(|_| ControlFlow::Continue(())) {
            ControlFlow::Continue(n) => n,
            ControlFlow::Break(()) => unreachable!(),
        }
    }

    fn images(fs: &SimFs, path: &Path) -> BTreeSet<Option<Vec<u8>>> {
        let mut seen = BTreeSet::new();
        let _ = fs.for_each_crash_image(|image| {
            seen.insert(image.contents(path));
            ControlFlow::Continue(())
        });
        seen
    }

    #[test]
    fn unsynced_data_may_be_dropped_kept_or_torn_and_fsync_makes_it_durable() {
        let fs = SimFs::new();
        fs.create_dir(Path::new("/d")).unwrap();
        let path = Path::new("/d/f");
        let mut file = fs.create_new(path).unwrap();
        file.write_all(b"abc").unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        let want: BTreeSet<_> = [&b""[..], b"a", b"ab", b"abc"]
            .iter()
            .map(|b| Some(b.to_vec()))
            .collect();
        assert_eq!(images(&fs, path), want);
        file.sync().unwrap();
        assert_eq!(images(&fs, path), BTreeSet::from([Some(b"abc".to_vec())]));
    }

    #[test]
    fn unsynced_directory_operations_survive_as_a_prefix_of_their_order() {
        let fs = SimFs::new();
        fs.create_dir(Path::new("/d")).unwrap();
        let (a, b) = (Path::new("/d/a"), Path::new("/d/b"));
        let mut file = fs.create_new(a).unwrap();
        file.write_all(b"x").unwrap();
        file.sync().unwrap();
        fs.rename(a, b).unwrap();
        // Three prefixes: nothing, the create, the create and the rename.
        assert_eq!(count_images(&fs), 3);
        let mut seen = BTreeSet::new();
        let _ = fs.for_each_crash_image(|image| {
            seen.insert((image.contents(a), image.contents(b)));
            ControlFlow::Continue(())
        });
        let x = Some(b"x".to_vec());
        assert_eq!(
            seen,
            BTreeSet::from([(None, None), (x.clone(), None), (None, x)])
        );
        fs.sync_dir(Path::new("/d")).unwrap();
        assert_eq!(count_images(&fs), 1);
    }

    #[test]
    fn a_failed_fsync_is_never_made_good_by_a_second_one() {
        let fs = SimFs::new();
        fs.create_dir(Path::new("/d")).unwrap();
        let path = Path::new("/d/f");
        let mut file = fs.create_new(path).unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        file.write_all(b"ab").unwrap();
        fs.fail_at(Call::Sync, 0, libc::EIO);
        assert_eq!(file.sync().unwrap_err().raw_os_error(), Some(libc::EIO));
        assert!(fs.take_injected());
        file.sync().unwrap();
        assert!(images(&fs, path).contains(&Some(Vec::new())));
    }

    #[test]
    fn errors_are_injected_at_the_nth_call_of_a_kind_and_power_cuts_freeze_the_disk() {
        let fs = SimFs::new();
        fs.create_dir(Path::new("/d")).unwrap();
        fs.fail_at(Call::Stat, 1, libc::ENOSPC);
        assert!(fs.stat(Path::new("/d")).is_ok());
        let err = fs.stat(Path::new("/d")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert!(fs.stat(Path::new("/d")).is_ok());
        assert!(fs.take_injected());
        fs.cut_power_at(4);
        assert!(fs.create_new(Path::new("/d/f")).is_err());
        assert!(fs.power_was_cut());
        assert_eq!(fs.names(Path::new("/d")), Vec::<OsString>::new());
    }

    #[test]
    fn a_held_lock_is_refused_without_waiting_and_freed_on_drop() {
        let fs = SimFs::new();
        let path = Path::new("/d.lock");
        let held = fs.lock(path, true).unwrap();
        assert!(held.is_some());
        assert!(fs.lock(path, false).unwrap().is_none());
        drop(held);
        assert!(fs.lock(path, false).unwrap().is_some());
    }
}
