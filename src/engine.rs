//! The shell around the core: one engine over one state file.
//!
//! Owns the read-modify-write cycle: take the file's lock, re-read the file if another process
//! changed it, run the event through the core, persist every snapshot in order, and roll the core
//! back to the last durable document when a save fails. It must not decide anything the table
//! does not say, and it never reads the clock: callers pass the moment.

use std::path::Path;

use crate::data::{Data, View};
use crate::event::Event;
use crate::journal::{Edits, Failure, Journal};
use crate::kernel::{Core, Outcome};
use crate::machine::Rejection;
use crate::record::Record;
use crate::store::{Loaded, Peeked, Recovery, Store, StoreError};
use crate::status::Status;
use crate::table::{IllegalTransition, StateName, check_edge};
use crate::timestamp::{self, Timestamp};

/// Why an engine call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The event has no row in the current state; nothing changed.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// A raw transition along an edge the seed does not allow; nothing changed.
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    /// The state file could not be read or written; the engine is back at the last durable state.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What opening an engine found worth telling.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OpenReport {
    /// The file was corrupt and was moved aside; what was used instead.
    pub recovery: Option<Recovery>,
    /// Known keys whose values could not be used, and how they were read.
    pub warnings: Vec<String>,
}

/// The lifecycle engine over its state file.
///
/// One engine owns one state file; other processes may share the file (every call takes the
/// file's lock and re-reads it when another process wrote it). An engine is `Send` and `Sync`:
/// a threaded host keeps it behind a `Mutex`, since [`Engine::handle`] takes `&mut self`.
///
/// [`Engine::handle`] blocks: it takes the file's lock (waiting for another process that holds
/// it) and `fsync`s each snapshot before it returns, typically tens of microseconds on tmpfs and
/// a few milliseconds on a disk.
#[derive(Debug)]
pub struct Engine {
    core: Core,
    store: Store,
    /// The last durable document as the file holds it: what a failed save returns to. Kept as
    /// bytes, so the document in memory shares none of its values and is edited in place.
    durable: Vec<u8>,
    /// What this engine writes to the journal beside the state file (none when read-only).
    journal: Option<Journal>,
}

impl Engine {
    /// Opens the engine on a state file (created on the first save), reading it under its lock.
    pub fn open(path: impl AsRef<Path>) -> Result<(Self, OpenReport), EngineError> {
        Self::with_store(Store::open(path.as_ref().to_path_buf())?)
    }

    /// Opens the engine on a state file to read it only (`status`): nothing is created, locked or
    /// moved. A missing file is [`StoreError::Missing`] and a corrupt one [`StoreError::Corrupt`];
    /// the engine's writing calls are refused.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<(Self, OpenReport), EngineError> {
        Self::with_store(Store::open_read_only(path.as_ref().to_path_buf())?)
    }

    /// An engine whose state lives in memory only.
    pub fn in_memory() -> Self {
        let (core, _) = Core::restore(Record::new());
        let journal = Some(Journal::new(0));
        Self { core, store: Store::in_memory(), durable: Record::new().to_vec(), journal }
    }

    /// Opens the engine on a store, reading it under its lock; a store opened read-only is read
    /// without it, as [`Engine::open_read_only`] does.
    #[doc(hidden)]
    pub fn with_store(mut store: Store) -> Result<(Self, OpenReport), EngineError> {
        let loaded = if store.is_read_only() {
            let path = store.path().to_owned();
            match store.peek()? {
                Peeked::Parsed(record) => Loaded { record, recovery: None },
                Peeked::Missing => return Err(StoreError::Missing { path }.into()),
                Peeked::Corrupt(problem) => {
                    return Err(StoreError::Corrupt { path, problem }.into());
                }
            }
        } else {
            let _lock = store.lock()?;
            store.load()?
        };
        let Loaded { record, recovery } = loaded;
        let (core, restored) = Core::restore(record.clone());
        let mut warnings = store.take_notes();
        for warning in &restored {
            tracing::warn!(path = %store.path().display(), "{warning}");
        }
        warnings.extend(restored);
        let durable = record.to_vec();
        let journal = (!store.is_read_only()).then(|| Journal::new(record.generation()));
        Ok((Self { core, store, durable, journal }, OpenReport { recovery, warnings }))
    }

    /// The current state.
    pub fn state(&self) -> StateName {
        self.core.state()
    }

    /// The document as it stands in memory.
    #[doc(hidden)]
    pub fn record(&self) -> &Record {
        self.core.data().record()
    }

    /// The working data (typed view and guards).
    #[doc(hidden)]
    pub fn data(&self) -> &Data {
        self.core.data()
    }

    /// Uses `zone` for the quiet window without storing it: a per-invocation `--tz`.
    pub fn override_zone(&mut self, zone: chrono_tz::Tz) {
        self.core.override_zone(zone);
        if let Some(journal) = &mut self.journal {
            journal.set_zone(zone.name());
        }
    }

    /// Turns the journal beside the state file (`NAME.journal`) on or off; it is on for every
    /// engine that may write. Off, nothing is appended: `history` and `replay` then know nothing
    /// of what this engine does.
    pub fn set_journal(&mut self, on: bool) {
        match (on, &self.journal) {
            (true, None) if !self.store.is_read_only() => {
                self.journal = Some(Journal::new(self.generation()));
            }
            (false, _) => self.journal = None,
            _ => {}
        }
    }

    /// The store, for its path and its count of durable writes.
    #[doc(hidden)]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Handles one event to completion, persisting each snapshot before reporting it: when it
    /// returns `Ok`, every transition is durable, and the host performs the outcome's effects in
    /// order. The event's moment is kept to the microsecond. A rejected event, or a failed save,
    /// changes nothing (the engine is back at the last durable state).
    pub fn handle(&mut self, event: Event) -> Result<Outcome, EngineError> {
        self.run(event, |core, event| core.handle(event))
    }

    /// Handles one event and then applies `change` to the document, in one locked cycle and one
    /// write (the seed's `session_open` bookkeeping rides along with the session start).
    #[doc(hidden)]
    pub fn handle_with(
        &mut self,
        event: Event,
        change: impl FnOnce(&mut Record),
    ) -> Result<Outcome, EngineError> {
        self.run(event, |core, event| core.handle_with(event, change))
    }

    /// One locked cycle for an event: the file re-read if another process changed it, the event
    /// run by `handle` on the core, every snapshot persisted, the journal told.
    fn run(
        &mut self,
        mut event: Event,
        handle: impl FnOnce(&mut Core, &Event) -> Result<Outcome, Rejection>,
    ) -> Result<Outcome, EngineError> {
        event.at = timestamp::truncate_to_micros(event.at);
        let _lock = self.store.lock()?;
        self.refresh()?;
        let before = self.generation();
        let mut outcome = match handle(&mut self.core, &event) {
            Ok(outcome) => outcome,
            Err(rejection) => {
                self.journal_rejected(&event, before, &rejection);
                return Err(rejection.into());
            }
        };
        self.persist(&mut outcome.snapshots, event.at, Some(&event))?;
        self.journal_accepted(&event, before, &outcome);
        Ok(outcome)
    }

    /// The seed's raw `transition(to)`: moves the persisted state along a legal edge and nothing
    /// else (no handler, no entry action). An illegal edge changes nothing.
    pub fn transition(&mut self, to: StateName, at: Timestamp) -> Result<(), EngineError> {
        let _lock = self.store.lock()?;
        self.refresh()?;
        check_edge(self.state(), to)?;
        let mut record = self.core.data().record().clone();
        crate::data::write_state(&mut record, to, at);
        self.persist_edit("transition", at, record)?;
        Ok(())
    }

    /// A locked read-modify-write of the document outside the machine (the `sessions` and
    /// `digest` commands). `change` returns its answer and whether it changed the document; the
    /// answer is given only once the change is durable.
    #[doc(hidden)]
    pub fn update<R>(
        &mut self,
        what: &str,
        at: Timestamp,
        change: impl FnOnce(&mut Record) -> (R, bool),
    ) -> Result<R, EngineError> {
        let _lock = self.store.lock()?;
        self.refresh()?;
        let mut record = self.core.data().record().clone();
        let (answer, changed) = change(&mut record);
        if changed {
            self.persist_edit(what, at, record)?;
        }
        Ok(answer)
    }

    /// The generation of the document in memory (the file's, once saved).
    fn generation(&self) -> u64 {
        self.core.data().record().generation()
    }

    /// Saves a document changed outside the machine, makes it the engine's, and journals the
    /// change as `what` at `at`.
    fn persist_edit(&mut self, what: &str, at: Timestamp, record: Record) -> Result<(), EngineError> {
        let before_record = self.core.data().record().clone();
        let before = self.generation();
        self.persist_one(record, at)?;
        let edits = Edits::between(&before_record, self.core.data().record());
        let (after, state) = (self.generation(), self.state());
        if let Some(journal) = &mut self.journal {
            let lines = journal.edited(what, at, before, after, state, &edits);
            append(&self.store, journal, &lines);
        }
        Ok(())
    }

    fn journal_accepted(&mut self, event: &Event, before: u64, outcome: &Outcome) {
        let (after, state) = (self.generation(), self.state());
        let Some(journal) = &mut self.journal else {
            return;
        };
        if Journal::is_idle_tick(event, outcome) {
            journal.hold_tick(event, after, state);
            return;
        }
        let lines = journal.accepted(event, before, after, state, outcome, outcome.edits.as_ref());
        append(&self.store, journal, &lines);
    }

    fn journal_rejected(&mut self, event: &Event, generation: u64, rejection: &Rejection) {
        if let Some(journal) = &mut self.journal {
            let lines = journal.rejected(event, generation, rejection);
            append(&self.store, journal, &lines);
        }
    }

    /// Re-reads the file when another process changed it since this engine last read or wrote it.
    /// A file found corrupt is never replaced by a `NAME.prev` older than the document this engine
    /// holds: the held document is written again, with a new generation, and the store reports it
    /// on stderr ([`Store::reload`]).
    #[doc(hidden)]
    pub fn refresh(&mut self) -> Result<(), EngineError> {
        if self.store.changed_on_disk()? {
            let Loaded { record, .. } = self.store.reload(&self.durable_record())?;
            self.restore(record);
        }
        Ok(())
    }

    /// Re-reads the file without its lock when another process changed it, changing nothing on
    /// disk (serve's `status`): a document that parses replaces the one held, a missing file is a
    /// fresh state (as a locked read would find it), and a corrupt one leaves the held document in
    /// place for the next locked write to deal with.
    #[doc(hidden)]
    pub fn reread(&mut self) -> Result<(), EngineError> {
        if !self.store.changed_on_disk()? {
            return Ok(());
        }
        match self.store.peek()? {
            Peeked::Parsed(record) => self.restore(record),
            Peeked::Missing => self.restore(Record::new()),
            Peeked::Corrupt(problem) => tracing::warn!(
                path = %self.store.path().display(), %problem,
                "the state file is corrupt; showing the document this process holds"
            ),
        }
        Ok(())
    }

    fn restore(&mut self, record: Record) {
        let (mut data, _) = Data::from_record(record.clone());
        data.carry_volatile_from(self.core.data());
        self.core.replace_data(data);
        self.durable = record.to_vec();
    }

    /// The last durable document, read back from its bytes (which this crate's encoder wrote, or
    /// the store read and parsed, so they parse again).
    fn durable_record(&self) -> Record {
        Record::from_slice(&self.durable).unwrap_or_else(|error| {
            tracing::error!(%error, "the last durable document does not parse; keeping the one in memory");
            self.core.data().record().clone()
        })
    }

    /// Saves one document written outside the machine and makes it the engine's.
    fn persist_one(&mut self, record: Record, at: Timestamp) -> Result<(), EngineError> {
        let mut snapshots = [record];
        self.persist(&mut snapshots, at, None)?;
        let [record] = snapshots;
        self.restore(record);
        Ok(())
    }

    /// Saves the snapshots in order; on the first failure, returns to the last durable document.
    ///
    /// When a save fails after earlier ones of the same event landed, the engine stays at the last
    /// one that landed, and the journal records what they changed as an edit (`partly saved`), so
    /// that it goes on from the generation the file holds.
    fn persist(
        &mut self,
        snapshots: &mut [Record],
        at: Timestamp,
        event: Option<&Event>,
    ) -> Result<(), EngineError> {
        // The document before the first save, kept (moved, not copied) for a partial failure.
        let mut before: Option<Vec<u8>> = None;
        for snapshot in snapshots.iter_mut() {
            match self.store.save_giving_bytes(snapshot) {
                Ok((generation, bytes)) => {
                    let previous = std::mem::replace(&mut self.durable, bytes);
                    before.get_or_insert(previous);
                    self.core.note_generation(generation);
                }
                Err(error) => {
                    // The caller reports the error; the log says only what the engine did about it.
                    tracing::debug!(path = %self.store.path().display(), %error, "save failed; back to the last durable state");
                    let durable = self.durable_record();
                    self.restore(durable);
                    self.journal_failed_save(before.as_deref(), at, event, &error);
                    return Err(error.into());
                }
            }
        }
        Ok(())
    }

    /// Journals a failed save: what the saves of the same event that landed changed, from
    /// `before` (the document's bytes before them) to the document the engine holds now, and the
    /// generations the failure used up.
    fn journal_failed_save(
        &mut self,
        before: Option<&[u8]>,
        at: Timestamp,
        event: Option<&Event>,
        error: &StoreError,
    ) {
        if self.journal.is_none() {
            return;
        }
        let before = match before.map(Record::from_slice) {
            Some(Ok(before)) => before,
            _ => self.core.data().record().clone(),
        };
        // A save that failed after its rename (the directory's fsync) left its document in the
        // state file's place: the journal says what the file holds, as the next read will find.
        let on_disk = self.store.look().filter(|record| record.generation() > self.generation());
        let now = on_disk.as_ref().unwrap_or_else(|| self.core.data().record());
        let edits = Edits::between(&before, now);
        let (from, after) = (before.generation(), now.generation());
        let used = self.store.highest_generation();
        let state = on_disk.as_ref().map_or(self.state(), |record| View::read(record).0.fsm);
        if let Some(journal) = &mut self.journal {
            let failure = Failure { event, error: &error.to_string(), used };
            let lines = journal.save_failed(at, from, after, state, &edits, &failure);
            append(&self.store, journal, &lines);
        }
    }

    /// Does again what a failed save left (for `replay`): `event`, when there was one, handled
    /// in memory only; then the document the engine held before it, with `edits` (what the
    /// event's saves that landed changed) saved, when one landed (the generation reached `after`);
    /// the generations up to `used` used up.
    /// What the engine holds only in memory is kept, as the failure kept it.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))] // Used by `replay`.
    pub(crate) fn redo_failed_save(
        &mut self,
        event: Option<&Event>,
        edits: &Edits,
        after: u64,
        used: u64,
    ) -> Result<(), EngineError> {
        let _lock = self.store.lock()?;
        self.refresh()?;
        if let Some(event) = event {
            let _ = self.core.handle(event);
        }
        let mut landed = self.durable_record();
        // A save landed when the generation moved, even one that changed nothing else.
        if !edits.is_empty() || after > landed.generation() {
            // One save stands for the event's saves that landed: it writes their last generation.
            self.store.use_generations_up_to(after.saturating_sub(1));
            edits.apply(&mut landed);
            let (generation, bytes) = self.store.save_giving_bytes(&mut landed)?;
            self.durable = bytes;
            landed.set(crate::record::keys::GENERATION, serde_json::Value::from(generation));
        }
        self.restore(landed);
        self.store.use_generations_up_to(used);
        Ok(())
    }

    /// A read-only summary of the state for people and tools.
    pub fn status(&self, now: Timestamp) -> Status {
        crate::status::status(self.core.state(), self.core.data(), now)
    }

    /// The earliest moment the host must tick for something to happen (rounded up to the
    /// microsecond, and never before `now`); `None` when nothing is scheduled until another event
    /// arrives.
    pub fn next_deadline(&self, now: Timestamp) -> Option<Timestamp> {
        crate::status::next_deadline(self.core.state(), self.core.data(), now)
    }
}

/// Appends journal lines; a failure is reported once and fails nothing.
fn append(store: &Store, journal: &mut Journal, lines: &[u8]) {
    if let Err(error) = store.append_journal(lines) {
        journal.append_failed(&store.journal_path(), &error);
    }
}

/// A host may share an engine between threads and print it: checked when the crate builds.
const _: () = {
    const fn shareable<T: Send + Sync + std::fmt::Debug>() {}
    shareable::<Engine>();
};
