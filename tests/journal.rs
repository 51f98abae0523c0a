//! The journal beside the state file: what is written, when, and what a failure does.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chrono::{Duration, TimeZone, Utc};
use daemon_state::digest::RemResult;
use daemon_state::engine::Engine;
use daemon_state::event::{Event, EventKind};
use daemon_state::store::JOURNAL_MAX_BYTES;
use daemon_state::table::StateName;
use daemon_state::timestamp::Timestamp;
use serde_json::Value;

fn start() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 4, 18, 9, 0, 0).unwrap()
}

fn dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

fn journal_of(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

fn tick(at: Timestamp) -> Event {
    Event::new(at, EventKind::Tick { store_empty: false })
}

#[test]
fn each_event_that_changed_something_is_one_line_with_its_generations() {
    let dir = dir();
    let state = dir.path().join("s.json");
    let (mut engine, _) = Engine::open(&state).unwrap();
    let at = start();
    let _ = engine.handle(Event::new(at, EventKind::Boot)).unwrap();
    let _ = engine
        .handle(Event::new(at, EventKind::SessionStarted { session_id: Some("s1".into()) }))
        .unwrap();
    engine.handle(Event::new(at, EventKind::LockAcquired)).unwrap_err();
    let lines = lines(&journal_of(&state));
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0]["opened"], 0);
    assert_eq!(lines[1]["event"]["type"], "boot");
    assert_eq!((lines[1]["before"].clone(), lines[1]["after"].clone()), (0.into(), 1.into()));
    assert_eq!(lines[2]["event"]["type"], "session_open");
    assert_eq!(lines[2]["event"]["session_id"], "s1");
    assert_eq!((lines[2]["before"].clone(), lines[2]["after"].clone()), (1.into(), 2.into()));
    assert_eq!(lines[3]["event"]["type"], "lock_acquired");
    assert_eq!(
        lines[3]["rejected"],
        "lock_acquired is not accepted in WAKE: no row for it in this state"
    );
    assert_eq!((lines[3]["before"].clone(), lines[3]["after"].clone()), (2.into(), 2.into()));
    let by = &lines[0]["by"];
    assert!(lines.iter().all(|line| &line["by"] == by));
    let mode = std::fs::metadata(journal_of(&state)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn idle_ticks_are_summed_up_before_the_next_line_and_an_idle_day_writes_few() {
    let dir = dir();
    let state = dir.path().join("s.json");
    let (mut engine, _) = Engine::open(&state).unwrap();
    let mut at = start();
    let _ = engine.handle(Event::new(at, EventKind::Boot)).unwrap();
    let _ = engine
        .handle(Event::new(at, EventKind::SessionStarted { session_id: Some("s1".into()) }))
        .unwrap();
    for _ in 0..10 {
        at += Duration::seconds(30);
        let _ = engine.handle(tick(at)).unwrap();
    }
    let before = lines(&journal_of(&state)).len();
    let _ = engine.handle(Event::new(at, EventKind::McpActivity)).unwrap();
    let written = lines(&journal_of(&state));
    // The first tick wrote (it recorded why it did nothing); nine were idle, then the activity.
    let ticks = &written[written.len() - 2];
    assert_eq!(ticks["ticks"], 9, "{ticks}");
    assert_eq!(ticks["since"], "2026-04-18T09:01:00+00:00");
    assert_eq!(ticks["at"], "2026-04-18T09:05:00+00:00");
    assert_eq!(written.len(), before + 2);

    // A day of ticks after the first night: a few lines, not one per tick.
    let (mut engine, _) = Engine::open(dir.path().join("idle.json")).unwrap();
    let mut at = start();
    let _ = engine.handle(Event::new(at, EventKind::Boot)).unwrap();
    at += Duration::hours(2);
    let _ = engine.handle(tick(at)).unwrap();
    let _ = engine.handle(Event::new(at, EventKind::LockAcquired)).unwrap();
    while engine.state() == StateName::Dreaming {
        at += Duration::minutes(20);
        let result = RemResult::default();
        let _ = engine.handle(Event::new(at, EventKind::RemCycleFinished { result })).unwrap();
    }
    let journal = journal_of(&dir.path().join("idle.json"));
    let (lines_before, writes_before) = (lines(&journal).len(), engine.store().durable_writes());
    let end = at + Duration::days(1);
    while at < end {
        at += Duration::seconds(30);
        let _ = engine.handle(tick(at)).unwrap();
    }
    let appended = lines(&journal).len() - lines_before;
    let writes = engine.store().durable_writes() - writes_before;
    assert!(appended <= 30 && writes <= 30, "{appended} lines, {writes} writes in an idle day");
}

#[test]
fn the_journal_rotates_past_its_size_keeping_one_previous_file() {
    let dir = dir();
    let state = dir.path().join("s.json");
    let journal = journal_of(&state);
    let mut previous = journal.as_os_str().to_owned();
    previous.push(".1");
    let previous = PathBuf::from(previous);
    // A journal just under the size: the next line moves it aside.
    std::fs::write(&journal, vec![b'\n'; JOURNAL_MAX_BYTES as usize - 10]).unwrap();
    std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (mut engine, _) = Engine::open(&state).unwrap();
    let _ = engine.handle(Event::new(start(), EventKind::Boot)).unwrap();
    assert_eq!(std::fs::metadata(&previous).unwrap().len(), JOURNAL_MAX_BYTES - 10);
    assert_eq!(lines(&journal).len(), 2, "the opened line and the boot");
}

#[test]
fn a_journal_that_cannot_be_written_fails_no_event_and_a_symlink_is_refused() {
    let dir = dir();
    let state = dir.path().join("s.json");
    let journal = journal_of(&state);
    let elsewhere = dir.path().join("elsewhere");
    std::os::unix::fs::symlink(&elsewhere, &journal).unwrap();
    let (mut engine, _) = Engine::open(&state).unwrap();
    let outcome = engine.handle(Event::new(start(), EventKind::Boot));
    assert!(outcome.is_ok(), "{outcome:?}");
    let _ =
        engine.handle(Event::new(start(), EventKind::SessionStarted { session_id: None })).unwrap();
    assert!(!elsewhere.exists(), "nothing is written through the link");
    assert!(std::fs::symlink_metadata(&journal).unwrap().file_type().is_symlink());
    assert!(std::fs::read(&state).is_ok(), "the state file was saved");
}

#[test]
fn an_engine_without_a_journal_appends_nothing() {
    let dir = dir();
    let state = dir.path().join("s.json");
    let (mut engine, _) = Engine::open(&state).unwrap();
    engine.set_journal(false);
    let _ = engine.handle(Event::new(start(), EventKind::Boot)).unwrap();
    assert!(!journal_of(&state).exists());
}
