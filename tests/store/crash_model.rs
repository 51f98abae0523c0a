//! The save protocol against the simulated file system's crash model: every power cut, every
//! injected error, every corrupt file; and the same checker run against each deliberately broken
//! variant of the protocol, which it must catch.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::ops::ControlFlow;
use std::path::Path;

use daemon_state::record::Record;
use daemon_state::store::{Broken, Call, Recovery, SimFs, Store, StoreError};
use serde_json::json;

use super::is_seed_temp;

const DIR: &str = "/state";
const PATH: &str = "/state/.daemon-state.json";
/// A state file cut short by a writer that did not follow the protocol.
const TORN: &[u8] = b"{\"fsm_state\": \"SLE";
const ERRNOS: [(i32, &str); 4] = [
    (libc::EIO, "EIO"),
    (libc::ENOSPC, "ENOSPC"),
    (libc::EDQUOT, "EDQUOT"),
    (libc::EACCES, "EACCES"),
];

/// The document the `i`-th save of a history writes; sizes differ so torn writes differ.
fn document(i: u64) -> Record {
    let states = ["WAKE", "TRANSITIONING", "SLEEP", "DREAMING"];
    let value = json!({
        "fsm_state": states[(i % 4) as usize],
        "save": i,
        "note": "x".repeat(5 * i as usize),
    });
    Record::from_map(value.as_object().expect("an object").clone())
}

/// What a history got acknowledged, and what each generation must read back as.
struct Outcome {
    acknowledged: u64,
    in_flight: Option<u64>,
    documents: BTreeMap<u64, Record>,
}

/// Runs the checks and counts what they looked at; the first violation ends a run.
struct Checker {
    broken: Option<Broken>,
    runs: u64,
    images: u64,
}

type Verdict = Result<(), String>;

impl Checker {
    fn new(broken: Option<Broken>) -> Self {
        Self { broken, runs: 0, images: 0 }
    }

    fn open(&self, fs: &SimFs) -> Result<Store, StoreError> {
        let mut store = Store::with_fs(PATH, Box::new(fs.clone()))?;
        if let Some(broken) = self.broken {
            store.break_protocol(broken);
        }
        Ok(store)
    }

    /// Saves `saves` documents on a fresh disk.
    fn history(&self, fs: &SimFs, saves: u64) -> Result<Outcome, String> {
        let mut outcome = Outcome {
            acknowledged: 0,
            in_flight: None,
            documents: BTreeMap::from([(0, Record::new())]),
        };
        self.extend(fs, &mut outcome, saves)?;
        Ok(outcome)
    }

    /// Opens a store, loads, and saves `saves` more documents, stopping at the first error.
    fn extend(&self, fs: &SimFs, outcome: &mut Outcome, saves: u64) -> Verdict {
        let Ok(mut store) = self.open(fs) else {
            return Ok(());
        };
        if store.load().is_err() {
            return Ok(());
        }
        for _ in 0..saves {
            let mut record = document(outcome.documents.len() as u64);
            let result = store.save(&mut record);
            let generation = outcome.acknowledged + 1;
            outcome.documents.insert(generation, record);
            match result {
                Ok(g) if g == generation => outcome.acknowledged = g,
                Ok(g) => return Err(format!("a save returned generation {g}, not {generation}")),
                Err(_) => {
                    outcome.in_flight = Some(generation);
                    break;
                }
            }
        }
        Ok(())
    }

    /// One disk image: it loads as the acknowledged generation or the one in flight, whole; the
    /// open leaves no temp file; and the next save works, leaves no temp file, and reads back.
    fn check_image(&mut self, image: &SimFs, outcome: &Outcome) -> Verdict {
        self.images += 1;
        let mut store = self.open(image).map_err(|e| format!("open failed: {e}"))?;
        let loaded = store.load().map_err(|e| format!("load failed: {e}"))?;
        let generation = loaded.record.generation();
        if generation != outcome.acknowledged && Some(generation) != outcome.in_flight {
            return Err(format!(
                "loaded generation {generation}; acknowledged {}, in flight {:?} ({:?})",
                outcome.acknowledged, outcome.in_flight, loaded.recovery
            ));
        }
        if outcome.documents.get(&generation) != Some(&loaded.record) {
            return Err(format!("generation {generation} loaded with mixed content"));
        }
        let temps: Vec<_> =
            image.names(Path::new(DIR)).into_iter().filter(|name| is_seed_temp(name)).collect();
        if !temps.is_empty() {
            return Err(format!("temp files left after open: {temps:?}"));
        }
        let mut next = document(9);
        store.save(&mut next).map_err(|e| format!("the next save failed: {e}"))?;
        let temps: Vec<_> =
            image.names(Path::new(DIR)).into_iter().filter(|name| is_seed_temp(name)).collect();
        if !temps.is_empty() {
            return Err(format!("temp files left after the next save: {temps:?}"));
        }
        let back = self.open(image).and_then(|mut s| s.load());
        match back {
            Ok(back) if back.record == next => Ok(()),
            other => Err(format!("the next save did not read back: {other:?}")),
        }
    }

    fn check_images(&mut self, fs: &SimFs, outcome: &Outcome, context: &str) -> Verdict {
        let mut verdict = Ok(());
        let _ = fs.for_each_crash_image(|image| match self.check_image(&image, outcome) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                verdict = Err(format!("{context}: {e}"));
                ControlFlow::Break(())
            }
        });
        verdict
    }

    /// A power cut before every call of a history of `saves` saves, and every image each leaves.
    fn power_cuts(&mut self, saves: u64) -> Verdict {
        for cut in 0.. {
            let fs = SimFs::new();
            fs.cut_power_at(cut);
            let outcome = self.history(&fs, saves)?;
            if !fs.power_was_cut() {
                return Ok(());
            }
            self.runs += 1;
            self.check_images(&fs, &outcome, &format!("{saves} saves, power cut at call {cut}"))?;
        }
        Ok(())
    }

    /// After a clean first save, an error at every call of every kind while a store opens, loads
    /// and saves: the old state stays loadable, nothing is left behind, power may fail right after,
    /// and the next clean save succeeds.
    fn injected_errors(&mut self) -> Verdict {
        every_injection("", |call, nth, errno, context| {
            self.injected_error(call, nth, errno, context)
        })
    }

    /// Returns whether the error was injected (false once there is no `nth` call of that kind).
    fn injected_error(
        &mut self,
        call: Call,
        nth: u64,
        errno: i32,
        context: &str,
    ) -> Result<bool, String> {
        let fs = SimFs::new();
        let mut outcome = self.history(&fs, 1)?;
        if outcome.acknowledged != 1 {
            return Err(format!("{context}: the clean first save failed"));
        }
        fs.fail_at(call, nth, errno);
        let mut store = None;
        let mut saved = Err(());
        if let Ok(mut opened) = self.open(&fs) {
            match opened.load() {
                Ok(loaded) if loaded.record != outcome.documents[&1] => {
                    return Err(format!(
                        "{context}: load gave {:?}, not generation 1",
                        loaded.record
                    ));
                }
                Ok(_) => {
                    let mut record = document(2);
                    saved = opened.save(&mut record).map_err(drop);
                    outcome.documents.insert(2, record);
                }
                Err(_) => {}
            }
            store = Some(opened);
        }
        if !fs.take_injected() {
            return Ok(false);
        }
        self.runs += 1;
        match saved {
            Ok(g) => outcome.acknowledged = g,
            Err(()) => outcome.in_flight = Some(2),
        }
        let temps: Vec<_> =
            fs.names(Path::new(DIR)).into_iter().filter(|name| is_seed_temp(name)).collect();
        if !temps.is_empty() {
            return Err(format!("{context}: temp files left behind: {temps:?}"));
        }
        self.check_images(&fs, &outcome, context)?;
        // Only a failed directory sync comes after the rename, so only then may the new file show.
        let visible =
            self.open(&fs).and_then(|mut s| s.load()).map_err(|e| format!("{context}: {e}"))?;
        let generation = visible.record.generation();
        let allowed = match saved {
            Ok(g) => generation == g,
            Err(()) => generation == 1 || (call == Call::SyncDir && generation == 2),
        };
        if !allowed || outcome.documents.get(&generation) != Some(&visible.record) {
            return Err(format!("{context}: generation {generation} is visible after {saved:?}"));
        }
        let mut store = match store {
            Some(store) => store,
            None => self.open(&fs).map_err(|e| format!("{context}: reopen: {e}"))?,
        };
        let mut next = document(3);
        store.save(&mut next).map_err(|e| format!("{context}: the next clean save failed: {e}"))?;
        match self.open(&fs).and_then(|mut s| s.load()) {
            Ok(back) if back.record == next => Ok(true),
            other => Err(format!("{context}: the next clean save did not read back: {other:?}")),
        }
    }

    /// After `saves` saves, the state file is replaced by each kind of corrupt content: the load
    /// quarantines those exact bytes and gives the previous generation (or a fresh record).
    fn corrupt_files(&mut self, saves: u64) -> Verdict {
        let whole = document(saves).to_vec();
        let corruptions: [(&str, Vec<u8>); 6] = [
            ("empty", Vec::new()),
            ("zero-filled", vec![0; 64]),
            ("torn", whole[..whole.len() / 2].to_vec()),
            ("not UTF-8", b"{\"fsm_state\": \"\xff\"}".to_vec()),
            ("not an object", b"[1, 2]".to_vec()),
            ("null", b"null".to_vec()),
        ];
        for (kind, bytes) in corruptions {
            let context = format!("{saves} saves, then a {kind} state file");
            self.runs += 1;
            let fs = SimFs::new();
            let outcome = self.history(&fs, saves)?;
            fs.replace_durably(Path::new(PATH), &bytes);
            let loaded =
                self.open(&fs).and_then(|mut s| s.load()).map_err(|e| format!("{context}: {e}"))?;
            let previous = &outcome.documents[&(saves - 1)];
            if &loaded.record != previous {
                return Err(format!(
                    "{context}: loaded generation {}, not the previous {}",
                    loaded.record.generation(),
                    saves - 1
                ));
            }
            let quarantined_to = match &loaded.recovery {
                Some(Recovery::RestoredPrevious { quarantined_to, .. })
                | Some(Recovery::StartedFresh { quarantined_to, .. }) => quarantined_to,
                other => return Err(format!("{context}: recovery reported as {other:?}")),
            };
            let name = quarantined_to.file_name().map(OsStr::to_string_lossy);
            let is_quarantine = name.is_some_and(|n| n.starts_with(".daemon-state.json.corrupt."));
            if !is_quarantine || fs.contents(quarantined_to).as_ref() != Some(&bytes) {
                return Err(format!("{context}: the corrupt bytes are not at {quarantined_to:?}"));
            }
        }
        Ok(())
    }

    /// After `saves` saves the state file turns corrupt; then a power cut before every call of the
    /// next open, load (which quarantines it) and save: every image loads the previous generation
    /// or the new one, whole.
    fn corrupt_then_power_cuts(&mut self, saves: u64) -> Verdict {
        for cut in 0.. {
            let fs = SimFs::new();
            let mut outcome = self.history(&fs, saves)?;
            fs.replace_durably(Path::new(PATH), TORN);
            // The corruption, not the store, lost the last generation.
            outcome.acknowledged = saves - 1;
            fs.cut_power_at(cut);
            self.extend(&fs, &mut outcome, 1)?;
            if !fs.power_was_cut() {
                return Ok(());
            }
            self.runs += 1;
            let context = format!("{saves} saves, then corrupt, power cut at call {cut}");
            self.check_images(&fs, &outcome, &context)?;
        }
        Ok(())
    }

    /// After two saves the state file turns corrupt; then an error at every call while a store
    /// opens and loads: the load fails or gives the previous generation, the corrupt bytes are not
    /// lost, and a clean load afterwards gives the previous generation.
    fn corrupt_then_injected_errors(&mut self) -> Verdict {
        every_injection("corrupt file, ", |call, nth, errno, context| {
            self.corrupt_injected_error(call, nth, errno, context)
        })
    }

    /// Returns whether the error was injected (false once there is no `nth` call of that kind).
    fn corrupt_injected_error(
        &mut self,
        call: Call,
        nth: u64,
        errno: i32,
        context: &str,
    ) -> Result<bool, String> {
        let fs = SimFs::new();
        let outcome = self.history(&fs, 2)?;
        let previous = &outcome.documents[&1];
        fs.replace_durably(Path::new(PATH), TORN);
        fs.fail_at(call, nth, errno);
        let loaded = self.open(&fs).and_then(|mut s| s.load());
        if !fs.take_injected() {
            return Ok(false);
        }
        self.runs += 1;
        if let Ok(loaded) = &loaded
            && &loaded.record != previous
        {
            return Err(format!("{context}: loaded {:?}", loaded.record));
        }
        let dir = Path::new(DIR);
        let kept = fs
            .names(dir)
            .into_iter()
            .any(|name| fs.contents(&dir.join(name)).as_deref() == Some(TORN));
        if !kept {
            return Err(format!("{context}: the corrupt bytes are gone"));
        }
        match self.open(&fs).and_then(|mut s| s.load()) {
            Ok(again) if &again.record == previous => Ok(true),
            other => Err(format!("{context}: then loaded {other:?}")),
        }
    }

    fn everything(&mut self) -> Verdict {
        for saves in 1..=3 {
            self.power_cuts(saves)?;
            self.corrupt_files(saves)?;
            self.corrupt_then_power_cuts(saves)?;
        }
        self.injected_errors()?;
        self.corrupt_then_injected_errors()
    }
}

/// Runs `one` for every errno at every call of every kind, counting `nth` up until `one` reports
/// that no such call happened.
fn every_injection(
    prefix: &str,
    mut one: impl FnMut(Call, u64, i32, &str) -> Result<bool, String>,
) -> Verdict {
    for call in Call::ALL {
        for (errno, errno_name) in ERRNOS {
            for nth in 0.. {
                let context = format!("{prefix}{errno_name} at {call:?} #{nth}");
                if !one(call, nth, errno, &context)? {
                    break;
                }
            }
        }
    }
    Ok(())
}

// Crash model: histories of 1 to 3 saves, a power cut before every file-system call, and every disk
// image the model allows: each loads as exactly the acknowledged generation or the one in flight.
#[test]
fn every_power_cut_leaves_a_whole_acknowledged_or_later_generation() {
    let mut checker = Checker::new(None);
    for saves in 1..=3 {
        checker.power_cuts(saves).unwrap();
    }
    eprintln!("power cuts: {} runs, {} disk images", checker.runs, checker.images);
    assert!(checker.images > 100, "too few images: {}", checker.images);
}

// Injected errors: EIO, ENOSPC, EDQUOT and EACCES at every call leave the old state loadable
// and the next clean save succeeding.
#[test]
fn every_injected_error_leaves_the_old_state_and_the_next_save_works() {
    let mut checker = Checker::new(None);
    checker.injected_errors().unwrap();
    eprintln!("injected errors: {} runs, {} disk images", checker.runs, checker.images);
    assert!(checker.runs >= 60, "too few runs: {}", checker.runs);
}

// Corrupt files (empty, zero-filled, torn, bad UTF-8, not an object) are quarantined and
// `NAME.prev` is loaded.
#[test]
fn corrupt_files_are_quarantined_and_the_previous_generation_loads() {
    let mut checker = Checker::new(None);
    for saves in 1..=3 {
        checker.corrupt_files(saves).unwrap();
    }
}

// Corrupt files, continued: a power cut at every point of the recovery and the save after it, and
// an error at every call of the recovery, never lose the previous generation or the corrupt bytes.
#[test]
fn a_corrupt_file_survives_power_cuts_and_errors_during_its_recovery() {
    let mut checker = Checker::new(None);
    for saves in 1..=3 {
        checker.corrupt_then_power_cuts(saves).unwrap();
    }
    checker.corrupt_then_injected_errors().unwrap();
    eprintln!("recovery: {} runs, {} disk images", checker.runs, checker.images);
}

// Negative controls: each deliberately broken variant (no file fsync, no directory fsync, write in
// place, corrupt read as empty) goes through the same checker, which must report a violation.
#[test]
fn the_checker_catches_every_broken_variant() {
    for broken in Broken::ALL {
        let mut checker = Checker::new(Some(broken));
        match checker.everything() {
            Ok(()) => panic!("{broken:?} passed the crash suite"),
            Err(violation) => eprintln!("{broken:?} caught: {violation}"),
        }
    }
}
