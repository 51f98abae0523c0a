//! Recovery from a corrupt state file never leaves the state file missing while a usable previous
//! generation exists, so a missing file always means a fresh state: one a user removed to start
//! over, whatever quarantined copies lie beside it.

use std::ops::ControlFlow;
use std::path::Path;

use daemon_state::engine::Engine;
use daemon_state::record::Record;
use daemon_state::store::{Recovery, SimFs, Store};
use serde_json::json;

use super::{NAME, state_dir};

const PATH: &str = "/state/.daemon-state.json";
const TORN: &[u8] = b"{\"fsm_state\": \"SLE";

fn document(n: u64) -> Record {
    Record::from_map(json!({"fsm_state": "WAKE", "n": n}).as_object().unwrap().clone())
}

#[test]
fn deleting_the_state_file_starts_fresh_even_with_old_quarantined_copies() {
    let (dir, path) = state_dir();
    let mut store = Store::open(&path).unwrap();
    store.save(&mut document(1)).unwrap();
    store.save(&mut document(2)).unwrap();
    // A copy quarantined long ago, then the user deletes the state file to start over.
    let old = dir.path().join(format!("{NAME}.corrupt.20200101T000000.000000Z"));
    std::fs::write(&old, b"{").unwrap();
    std::fs::remove_file(&path).unwrap();

    let loaded = Store::open(&path).unwrap().load().unwrap();
    assert_eq!(loaded.record, Record::new(), "the older .prev came back");
    assert_eq!(loaded.recovery, None);
}

#[test]
fn a_recovery_puts_the_previous_generation_back_without_leaving_the_file_missing() {
    let (dir, path) = state_dir();
    let mut store = Store::open(&path).unwrap();
    let mut first = document(1);
    store.save(&mut first).unwrap();
    store.save(&mut document(2)).unwrap();
    std::fs::write(&path, TORN).unwrap();

    let loaded = Store::open(&path).unwrap().load().unwrap();
    assert_eq!(loaded.record, first);
    let Some(Recovery::RestoredPrevious { quarantined_to, generation: 1, .. }) = &loaded.recovery
    else {
        panic!("{:?}", loaded.recovery);
    };
    assert_eq!(std::fs::read(quarantined_to).unwrap(), TORN, "the corrupt bytes are kept");
    assert_eq!(std::fs::read(&path).unwrap(), first.to_vec(), "the file holds generation 1 again");
    let prev = dir.path().join(format!("{NAME}.prev"));
    assert_eq!(std::fs::read(prev).unwrap(), first.to_vec(), "NAME.prev is untouched");
    // And what the recovery left is not recovered again.
    assert_eq!(Store::open(&path).unwrap().load().unwrap().recovery, None);
}

// A power cut before every call of a recovery from a corrupt file (with a usable previous
// generation), and every disk image it may leave: the state file is there in each, and loads as
// the previous generation.
#[test]
fn an_interrupted_recovery_never_leaves_the_state_file_missing() {
    let mut images = 0;
    for cut in 0.. {
        let fs = SimFs::new();
        let mut store = Store::with_fs(PATH, Box::new(fs.clone())).unwrap();
        let mut first = document(1);
        store.save(&mut first).unwrap();
        store.save(&mut document(2)).unwrap();
        drop(store);
        fs.replace_durably(Path::new(PATH), TORN);
        fs.cut_power_at(cut);
        let _ = Store::with_fs(PATH, Box::new(fs.clone())).and_then(|mut s| s.load());
        if !fs.power_was_cut() {
            assert!(cut > 3, "the recovery made too few calls: {cut}");
            break;
        }
        let _ = fs.for_each_crash_image(|image| {
            images += 1;
            assert!(
                image.contents(Path::new(PATH)).is_some(),
                "cut {cut}: the state file is missing"
            );
            let loaded = Store::with_fs(PATH, Box::new(image)).unwrap().load().unwrap();
            assert_eq!(loaded.record, first, "cut {cut}");
            ControlFlow::Continue(())
        });
    }
    assert!(images > 10, "too few images: {images}");
}

/// One locked read-modify-write that sets `key` in the engine's document.
fn set(engine: &mut Engine, key: &str) {
    engine
        .update("test", chrono::Utc::now(), |record| {
            record.set(key, json!(true));
            ((), true)
        })
        .unwrap();
}

// A running engine (a `serve`) whose file is corrupted under it writes back the document it holds,
// with a new generation, rather than the older `NAME.prev`; a copy of the corrupt bytes is kept.
#[test]
fn a_running_engine_rewrites_what_it_holds_over_a_corrupted_file() {
    let (dir, path) = state_dir();
    let (mut engine, _) = Engine::open(&path).unwrap();
    for key in ["a", "b", "c"] {
        set(&mut engine, key);
    }
    assert_eq!(engine.record().generation(), 3);
    std::fs::write(&path, TORN).unwrap();

    set(&mut engine, "d");
    let on_disk = Store::open(&path).unwrap().load().unwrap();
    assert_eq!(on_disk.recovery, None);
    for key in ["a", "b", "c", "d"] {
        assert_eq!(on_disk.record.get(key), Some(&json!(true)), "{key} lost: {:?}", on_disk.record);
    }
    assert_eq!(on_disk.record.generation(), 5, "the rewrite and the change are two generations");
    assert_eq!(engine.record(), &on_disk.record);
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".corrupt."))
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(std::fs::read(&kept[0]).unwrap(), TORN);
}

// The same engine defers to a `NAME.prev` newer than what it holds (another process saved since).
#[test]
fn a_running_engine_takes_a_newer_previous_generation_over_what_it_holds() {
    let (_dir, path) = state_dir();
    let (mut engine, _) = Engine::open(&path).unwrap();
    set(&mut engine, "a");
    let mut other = Store::open(&path).unwrap();
    let mut theirs = other.load().unwrap().record;
    theirs.set("theirs", json!(1));
    other.save(&mut theirs).unwrap();
    other.save(&mut theirs.clone()).unwrap();
    drop(other);
    std::fs::write(&path, TORN).unwrap();

    set(&mut engine, "d");
    let on_disk = Store::open(&path).unwrap().load().unwrap().record;
    assert_eq!(on_disk.get("theirs"), Some(&json!(1)), "{on_disk:?}");
    assert_eq!(on_disk.get("d"), Some(&json!(true)));
}
