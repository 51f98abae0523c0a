//! The simulated file system's crash model itself: what a power cut may leave, failed syncs,
//! injected errors, directory locks and the rename of two links to one file.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::ops::ControlFlow;
use std::path::Path;

use daemon_state::store::{Call, Fs, SimFs};

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
    let want: BTreeSet<_> =
        [&b""[..], b"a", b"ab", b"abc"].iter().map(|b| Some(b.to_vec())).collect();
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
    assert_eq!(seen, BTreeSet::from([(None, None), (x.clone(), None), (None, x)]));
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
    fs.cut_power_at(0);
    assert!(fs.create_new(Path::new("/d/f")).is_err());
    assert!(fs.power_was_cut());
    assert_eq!(fs.names(Path::new("/d")), Vec::<OsString>::new());
}

// The directory lock, as flock(2) on an open directory: one holder among all handles; another
// handle is refused without waiting; unlocking or closing the holder frees it.
#[test]
fn a_held_lock_is_refused_without_waiting_and_freed_on_unlock_or_close() {
    let fs = SimFs::new();
    let dir = Path::new("/d");
    fs.create_dir(dir).unwrap();
    let (ours, theirs) = (fs.open_dir(dir).unwrap(), fs.open_dir(dir).unwrap());
    ours.lock().unwrap();
    assert!(ours.try_lock().unwrap(), "the holder's own handle takes it again");
    assert!(!theirs.try_lock().unwrap());
    ours.unlock();
    assert!(theirs.try_lock().unwrap());
    assert!(!ours.try_lock().unwrap());
    drop(theirs);
    assert!(ours.try_lock().unwrap(), "closing the holder released it");
    assert_eq!(
        fs.open_dir(Path::new("/missing")).err().and_then(|e| e.raw_os_error()),
        Some(libc::ENOENT)
    );
}

// rename(2) of a name over another link to the same file succeeds and changes nothing; a link
// over a directory fails with EEXIST.
#[test]
fn renaming_over_a_link_to_the_same_file_leaves_both_names() {
    let fs = SimFs::new();
    fs.create_dir(Path::new("/d")).unwrap();
    let (a, b) = (Path::new("/d/a"), Path::new("/d/b"));
    fs.create_new(a).unwrap().write_all(b"x").unwrap();
    fs.hard_link(a, b).unwrap();
    fs.rename(a, b).unwrap();
    assert_eq!(fs.contents(a), Some(b"x".to_vec()));
    assert_eq!(fs.contents(b), Some(b"x".to_vec()));
    fs.create_dir(Path::new("/d/sub")).unwrap();
    let err = fs.hard_link(a, Path::new("/d/sub")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
}
