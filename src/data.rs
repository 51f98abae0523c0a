//! The engine's working data: the state document, a typed view of it for the guards, and the few
//! facts kept only in memory between snapshots.
//!
//! Owns every write of the document's known keys on behalf of the machine (the reading lives in
//! `view`), and the rule that a key holding a wrong-typed value stays on disk as it was until there
//! is a reason to rewrite it. It must not do I/O, read the clock, or decide transitions: `machine` decides, this module
//! keeps the books.

use chrono::Duration;
use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::digest::{self, Digest, RemResult};
use crate::event::Settings;
use crate::quiet_window::{self, SessionStarts};
use crate::reason::Reason;
use crate::record::{Object, Record, keys};
use crate::sessions;
use crate::table::{Guard, StateName};
use crate::timestamp::{self, Timestamp};
pub use crate::view::{Night, View};

/// How long TRANSITIONING waits for the lock before giving up with `lock_timeout`.
pub const LOCK_WAIT_TIMEOUT: Duration = Duration::minutes(5);
/// Client activity this recent at a cycle boundary makes the night yield.
pub const RECENT_ACTIVITY: Duration = Duration::seconds(30);
/// After the lock was refused or never came, how long before the next attempt.
pub const LOCK_RETRY_AFTER: Duration = Duration::minutes(5);
/// Client activity during a night is written at most this often (it is exact in memory).
pub const ACTIVITY_WRITE_EVERY: Duration = Duration::seconds(10);
/// REM cycles a night plans when `rem_cycle_count` is missing or unusable.
pub const DEFAULT_REM_CYCLES: u32 = 4;
/// The most REM cycles one night may plan, whatever the file says.
pub const MAX_REM_CYCLES: u32 = 96;
/// The longest user-sleep reason stored, in characters (the seed's clip).
pub const MAX_REASON_CHARS: usize = 500;
/// The longest request or session-open `ts` label stored, in characters (**fix**: the seed stored
/// it as sent, so a 1 MiB label made every later save of the file slow).
pub const MAX_TS_CHARS: usize = 64;

/// A `ts` label as stored: its first [`MAX_TS_CHARS`] characters.
pub fn clip_ts(ts: &str) -> &str {
    match ts.char_indices().nth(MAX_TS_CHARS) {
        Some((end, _)) => &ts[..end],
        None => ts,
    }
}

#[cfg_attr(not(feature = "cli"), allow(dead_code))] // Used by the command line.
/// The seed's bookkeeping for a `session_open` message beyond the engine's session start: the last
/// opening and the cascade request, with an empty id and ts when the message had none (the ts
/// clipped as a request's is).
pub fn note_session_open(record: &mut Record, session_id: Option<&str>, ts: Option<&str>) {
    let (session_id, ts) = (session_id.unwrap_or_default(), clip_ts(ts.unwrap_or_default()));
    let field = |name: &str, value: Value| (name.to_owned(), value);
    let open = [field("session_id", json!(session_id)), field("ts", json!(ts))];
    record.set_object(keys::LAST_SESSION_OPEN, Object::from_iter(open.clone()));
    let cascade = open.into_iter().chain([field("pending", json!(true))]);
    record.set_object(keys::HIPPEA_CASCADE_REQUEST, Object::from_iter(cascade));
}

/// Writes the persisted state and when it was entered: [`Data::set_fsm`]'s write, and the seed's
/// raw `transition(to)` (which moves the state without the machine).
pub fn write_state(record: &mut Record, state: StateName, at: Timestamp) {
    record.set(keys::FSM_STATE, json!(state.as_str()));
    record.set(keys::FSM_TRANSITION_AT, json!(timestamp::format(at)));
}

/// Which operator request a [`Data::queue_request`] call stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// `user_sleep_request`.
    UserSleep,
    /// `force_rem_request`.
    ForceRem,
    /// `force_wake_request`.
    ForceWake,
}

impl RequestKind {
    fn key(self) -> &'static str {
        match self {
            Self::UserSleep => keys::USER_SLEEP_REQUEST,
            Self::ForceRem => keys::FORCE_REM_REQUEST,
            Self::ForceWake => keys::FORCE_WAKE_REQUEST,
        }
    }
}

/// The working data: the document, its view, and what is kept only in memory.
#[derive(Debug, Clone)]
pub struct Data {
    record: Record,
    view: View,
    starts: SessionStarts,
    starts_changed: bool,
    last_tick_at: Option<Timestamp>,
    last_activity_at: Option<Timestamp>,
    zone_override: Option<Tz>,
    changed: bool,
}

impl Data {
    /// Takes a loaded document, with the warnings for keys that could not be used.
    pub fn from_record(record: Record) -> (Self, Vec<String>) {
        let (view, warnings) = View::read(&record);
        let starts =
            record.get(keys::SESSION_STARTS).map(SessionStarts::from_value).unwrap_or_default();
        let data = Self {
            record,
            view,
            starts,
            starts_changed: false,
            last_tick_at: None,
            last_activity_at: None,
            zone_override: None,
            changed: false,
        };
        (data, warnings)
    }

    /// The document as it stands in memory.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The typed view.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// The session starts the quiet window is learned from.
    pub fn session_starts(&self) -> &SessionStarts {
        &self.starts
    }

    /// Whether something durable changed since the last snapshot.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// The last tick's moment, kept in memory and written with the next snapshot.
    pub fn last_tick_at(&self) -> Option<Timestamp> {
        self.last_tick_at
    }

    /// The latest client activity known, in memory or from the running night.
    pub fn last_activity_at(&self) -> Option<Timestamp> {
        self.last_activity_at.max(self.view.night.activity_at)
    }

    /// Keeps the in-memory facts of `older` (another copy of this data) that this copy lacks.
    pub fn carry_volatile_from(&mut self, older: &Data) {
        if let Some(zone) = older.zone_override {
            self.override_zone(zone);
        }
        self.last_tick_at = self.last_tick_at.max(older.last_tick_at);
        self.last_activity_at = self.last_activity_at.max(older.last_activity_at);
    }

    /// Uses `zone` for the quiet window from now on without storing it (a `--tz` given to one
    /// command); the stored `timezone` stays as it is.
    pub fn override_zone(&mut self, zone: Tz) {
        self.zone_override = Some(zone);
        self.view.tz = zone;
    }

    /// Writes what is only in memory into the document and hands out a copy to persist.
    pub fn snapshot(&mut self) -> Record {
        if let Some(at) = self.last_tick_at {
            self.record.set(keys::LAST_TICK_AT, json!(timestamp::format(at)));
        }
        if self.starts_changed {
            self.starts.write(&mut self.record);
            self.starts_changed = false;
        }
        self.changed = false;
        self.record.clone()
    }

    /// Records the generation a save of this document was written as, so that the document in
    /// memory says what the file says; it is no change to persist.
    pub fn note_generation(&mut self, generation: u64) {
        self.record.set(keys::GENERATION, Value::from(generation));
    }

    /// Marks the document as it stands, to tell what a change made next (see `Record::mark`).
    pub(crate) fn mark_record(&mut self) -> crate::record::Mark {
        self.record.mark()
    }

    /// Applies a change made outside the machine (the seed's own bookkeeping keys) and refreshes
    /// the view.
    pub fn edit_record(&mut self, change: impl FnOnce(&mut Record)) {
        self.edit(change);
    }

    fn edit(&mut self, change: impl FnOnce(&mut Record)) {
        // Holding the first-turn map while the change runs makes any write to it a new value, so
        // an unchanged map is told by identity and its marks are not read again.
        let first_turns = self.record.shared(keys::FIRST_TURN_PENDING);
        change(&mut self.record);
        let kept = self.record.still_shares(keys::FIRST_TURN_PENDING, first_turns.as_ref());
        drop(first_turns);
        self.after_edit(kept.then_some(self.view.first_turn_expiry));
    }

    /// An edit meant to change the first-turn map: it is edited in place, not copied first.
    fn edit_first_turns(&mut self, change: impl FnOnce(&mut Record)) {
        change(&mut self.record);
        self.after_edit(None);
    }

    /// Refreshes the view after an edit; `first_turn_expiry` is the expiry when it is known
    /// without reading the marks.
    fn after_edit(&mut self, first_turn_expiry: Option<Option<Timestamp>>) {
        self.changed = true;
        self.view = match first_turn_expiry {
            Some(expiry) => View::reread_with_first_turn_expiry(&self.record, expiry),
            None => View::read(&self.record).0,
        };
        if let Some(zone) = self.zone_override {
            self.view.tz = zone;
        }
    }

    /// Records the new state and when it was entered.
    pub fn set_fsm(&mut self, state: StateName, at: Timestamp) {
        self.edit(|r| write_state(r, state, at));
    }

    /// Records the boot moment.
    pub fn stamp_boot(&mut self, at: Timestamp) {
        self.edit(|r| r.set(keys::DAEMON_STARTED_AT, json!(timestamp::format(at))));
    }

    /// The 1 h first-turn reaper: the ids dropped, in order (nothing is written when none is).
    pub fn reap_first_turns(&mut self, at: Timestamp) -> Vec<String> {
        if self.view.first_turn_expiry.is_none_or(|due| due > at) {
            return Vec::new();
        }
        let mut dropped = Vec::new();
        self.edit_first_turns(|r| {
            dropped = sessions::reap_in(r, at, sessions::REAPER_TTL_SECS);
        });
        dropped
    }

    /// Notes a tick's moment in memory.
    pub fn note_tick(&mut self, at: Timestamp) {
        self.last_tick_at = Some(at);
    }

    /// Records why a tick did nothing; returns whether the reason is new (and so was written).
    pub fn set_skip_reason(&mut self, reason: Option<Reason>) -> bool {
        let reason = reason.map(Reason::as_str);
        if self.view.skip_reason.as_deref() == reason {
            return false;
        }
        self.edit(|r| r.set(keys::LAST_TICK_SKIPPED_REASON, json!(reason)));
        true
    }

    /// Whether the quiet window is due to be relearned: 24 h after the last learn, or at once when
    /// the last learn lies in the future (the clock went back).
    pub fn relearn_due(&self, at: Timestamp) -> bool {
        quiet_window::should_relearn(self.view.learned_at.filter(|learned| *learned <= at), at)
    }

    /// Relearns the quiet window; a failed or empty relearn keeps the previous window.
    pub fn relearn(&mut self, at: Timestamp) {
        let learned = quiet_window::learn(self.starts.as_slice(), at, self.view.tz);
        self.edit(|r| {
            if let Some(window) = learned {
                r.set(keys::QUIET_WINDOW, window.to_value());
            } else if r.get(keys::QUIET_WINDOW).is_none() {
                r.set(keys::QUIET_WINDOW, Value::Null);
            }
            r.set(keys::QUIET_WINDOW_LEARNED_AT, json!(timestamp::format(at)));
        });
    }

    /// Why a night should start now, if it should: a pending request, the quiet window, or 2 h of
    /// idleness (see [`Data::idle_since`]) with no night since the last session.
    pub fn sleep_due(&self, at: Timestamp) -> Option<Reason> {
        let v = &self.view;
        if self.backing_off(at) {
            return None;
        }
        if v.user_sleep_pending {
            return Some(Reason::UserSleepRequest);
        }
        if v.force_rem_pending {
            return Some(Reason::ForceRemRequest);
        }
        if let Some(window) = v.window
            && quiet_window::contains(window, quiet_window::bucket_of(at, v.tz))
            && self.slept_this_window(at).is_none()
        {
            return Some(Reason::QuietWindow);
        }
        let idle = quiet_window::idle_long_enough(self.idle_since(), at);
        if idle && !self.night_since_last_session() {
            return Some(Reason::Idle);
        }
        None
    }

    /// When `at` lies in the quiet window and a night already started in this occurrence of it:
    /// the moment the occurrence ends (the window starts at most one night per occurrence).
    pub fn slept_this_window(&self, at: Timestamp) -> Option<Timestamp> {
        let (window, tz) = (self.view.window?, self.view.tz);
        let started = self.view.night.started_at?;
        let begin = quiet_window::occurrence_start(window, at, tz)?;
        let end = begin + Duration::minutes(30 * i64::from(window.duration));
        (started >= begin && started <= at).then_some(end)
    }

    /// Where the 2 h idle rule counts from: the later of the last session and the daemon's boot
    /// (**fix**: the seed counted from the last session alone, so a fresh daemon slept on its
    /// first tick); `None` when neither is known.
    pub fn idle_since(&self) -> Option<Timestamp> {
        let booted = self.record.timestamp(keys::DAEMON_STARTED_AT);
        self.view.last_session.max(booted)
    }

    /// Whether a night has started since the last session: the 2 h idle rule starts at most one
    /// night per idle stretch.
    pub fn night_since_last_session(&self) -> bool {
        match (self.view.night.started_at, self.view.last_session) {
            (Some(night), Some(session)) => night >= session,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// A force-wake still pending when a night is about to begin was sent while none ran: it is
    /// dropped, so it cannot cut the coming night short.
    pub fn discard_stale_force_wake(&mut self, at: Timestamp) {
        if self.view.force_wake_pending {
            self.edit(|r| {
                set_in(r, keys::FORCE_WAKE_REQUEST, "pending", json!(false));
                set_in(r, keys::FORCE_WAKE_REQUEST, "discarded_at", json!(timestamp::format(at)));
            });
        }
    }

    /// Clears the skip reason when a night begins.
    pub fn clear_skip_reason(&mut self) {
        if self.view.skip_reason.is_some() {
            self.edit(|r| r.set(keys::LAST_TICK_SKIPPED_REASON, Value::Null));
        }
    }

    /// The lock was refused or never came: no new attempt for [`LOCK_RETRY_AFTER`].
    pub fn back_off(&mut self, at: Timestamp) {
        let mut night = self.view.night.clone();
        night.retry_after = Some(at + LOCK_RETRY_AFTER);
        self.edit(|r| r.set_object(keys::NIGHT, night.to_object()));
    }

    /// Whether an attempt to sleep is held back after a refused lock (or the clock went back
    /// past the refusal).
    pub fn backing_off(&self, at: Timestamp) -> bool {
        self.view
            .night
            .retry_after
            .is_some_and(|until| at < until && until - at <= LOCK_RETRY_AFTER)
    }

    /// Why a tick that starts no night did nothing.
    pub fn idle_reason(&self, at: Timestamp) -> Reason {
        if self.backing_off(at) { Reason::LockBusy } else { Reason::OutsideWindow }
    }

    /// Whether TRANSITIONING has waited too long for the lock (or the clock jumped).
    pub fn lock_wait_expired(&self, at: Timestamp) -> bool {
        self.view.transition_at.is_none_or(|since| (at - since).abs() >= LOCK_WAIT_TIMEOUT)
    }

    /// Plans the night: 1 cycle for a force-REM request, else `rem_cycle_count`; marks the pending
    /// requests honoured.
    pub fn plan_night(&mut self, at: Timestamp) {
        let planned = if self.view.force_rem_pending { 1 } else { self.view.rem_cycle_count };
        let honoured: Vec<&str> = [
            (self.view.user_sleep_pending, keys::USER_SLEEP_REQUEST),
            (self.view.force_rem_pending, keys::FORCE_REM_REQUEST),
        ]
        .into_iter()
        .filter_map(|(pending, key)| pending.then_some(key))
        .collect();
        let night = Night {
            started_at: Some(at),
            planned,
            completed: 0,
            lock_lost: false,
            activity_at: None,
            retry_after: None,
        };
        self.edit(|r| {
            for key in honoured {
                honour(r, key, at);
            }
            r.set_object(keys::NIGHT, night.to_object());
        });
    }

    /// Why the night should yield at this boundary, in the seed's order, if it should. Only after
    /// a completed cycle with cycles left.
    pub fn yield_reason(&self, at: Timestamp) -> Option<(Guard, Reason)> {
        let night = &self.view.night;
        if night.completed == 0 || night.completed >= night.planned {
            return None;
        }
        if self.view.force_wake_pending {
            return Some((Guard::ForceWake, Reason::ForceWakeRequested));
        }
        if night.lock_lost {
            return Some((Guard::LockLost, Reason::McpReacquiredMidNight));
        }
        if self.last_activity_at().is_some_and(|seen| at - seen <= RECENT_ACTIVITY) {
            return Some((Guard::RecentActivity, Reason::McpRecentActivity));
        }
        None
    }

    /// Whether the night has cycles left.
    pub fn cycles_left(&self) -> bool {
        self.view.night.completed < self.view.night.planned
    }

    /// Folds a finished cycle into the digest and counts it.
    pub fn finish_cycle(&mut self, result: &RemResult) {
        let mut night = self.view.night.clone();
        night.completed = (night.completed + 1).min(night.planned.max(1));
        self.edit(|r| {
            digest::fold(r, result);
            r.set_object(keys::NIGHT, night.to_object());
        });
    }

    /// Ends the night: records the completed cycles and settles a pending force-wake.
    pub fn finish_night(&mut self, at: Timestamp) {
        let completed = self.view.night.completed;
        let force_wake = self.view.force_wake_pending;
        self.edit(|r| {
            r.set(keys::LAST_COMPLETED_CYCLES, json!(completed));
            if force_wake {
                honour(r, keys::FORCE_WAKE_REQUEST, at);
            }
        });
    }

    /// Remembers that the lock was lost mid-night.
    pub fn remember_lock_lost(&mut self) {
        let mut night = self.view.night.clone();
        night.lock_lost = true;
        self.edit(|r| r.set_object(keys::NIGHT, night.to_object()));
    }

    /// Remembers client activity: in memory always, durably while a night runs.
    pub fn record_activity(&mut self, at: Timestamp, night_running: bool) {
        self.last_activity_at = self.last_activity_at.max(Some(at));
        // Durably too while a night runs, for a boundary handled by another process; at most every
        // ACTIVITY_WRITE_EVERY, so a chatty client does not cost an fsync per message.
        let stale = self
            .view
            .night
            .activity_at
            .is_none_or(|seen| at < seen || at - seen >= ACTIVITY_WRITE_EVERY);
        if night_running && stale {
            let mut night = self.view.night.clone();
            night.activity_at = night.activity_at.max(Some(at));
            self.edit(|r| r.set_object(keys::NIGHT, night.to_object()));
        }
    }

    /// A session opened: first-turn mark with the 24 h / 100 prune, `last_session_ts`, history.
    pub fn open_session(&mut self, session_id: Option<&str>, at: Timestamp) {
        self.starts.push(at);
        self.starts.prune(at);
        self.starts_changed = true;
        // The mark's prune reads every mark, so it also tells the view the new first-turn expiry.
        let mut expiry = self.view.first_turn_expiry;
        if let Some(id) = session_id.filter(|id| !id.is_empty()) {
            let ttl = sessions::REAPER_TTL_SECS;
            expiry = sessions::mark_in_with_expiry(&mut self.record, id, at, ttl);
        }
        self.record.set(keys::LAST_SESSION_TS, json!(timestamp::format(at)));
        self.after_edit(Some(expiry));
    }

    /// A recall: consumes the first turn and applies the digest gate. Writes only what changed.
    pub fn recall(&mut self, session_id: Option<&str>, at: Timestamp) -> (bool, Option<Digest>) {
        let mut scratch = self.record.clone();
        let id = session_id.map(sessions::clip_session_id);
        let first_turn = match (scratch.object_mut(keys::FIRST_TURN_PENDING), id) {
            (Some(map), Some(id)) if map.contains_key(id) => sessions::consume(map, id),
            _ => false,
        };
        let consumed = !scratch.same_member(&self.record, keys::FIRST_TURN_PENDING);
        let digest = digest::take(&mut scratch, at);
        if consumed || digest.is_some() {
            self.edit(|r| *r = scratch);
        }
        (first_turn, digest)
    }

    /// Stores an operator request as pending, replacing an earlier one; `ts` is clipped to
    /// [`MAX_TS_CHARS`] characters and the reason to [`MAX_REASON_CHARS`].
    pub fn queue_request(&mut self, kind: RequestKind, ts: String, reason: Option<&str>) {
        let mut request = Object::new();
        if let Some(reason) = reason {
            let clipped: String = reason.chars().take(MAX_REASON_CHARS).collect();
            request.insert("reason".into(), json!(clipped));
        }
        request.insert("ts".into(), json!(clip_ts(&ts)));
        request.insert("pending".into(), json!(true));
        self.edit(|r| r.set_object(kind.key(), request));
    }

    /// Sets or clears the pause flag.
    pub fn set_paused(&mut self, paused: bool) {
        self.edit(|r| r.set(keys::SCHEDULER_PAUSED, json!(paused)));
    }

    /// Stores changed settings.
    pub fn configure(&mut self, settings: &Settings) {
        self.edit(|r| {
            if let Some(count) = settings.rem_cycle_count {
                r.set(keys::REM_CYCLE_COUNT, json!(count.clamp(1, MAX_REM_CYCLES)));
            }
            if let Some(tz) = &settings.timezone {
                r.set(keys::TIMEZONE, json!(tz));
            }
        });
    }

    /// Marks the document changed so the next snapshot writes what is only in memory.
    pub fn touch(&mut self) {
        self.changed = true;
    }
}

/// Sets `field` inside the object at `key` (in its place, or after the others when new),
/// replacing a non-object with a new one.
fn set_in(record: &mut Record, key: &str, field: &str, value: Value) {
    let mut object = record.object(key).unwrap_or_default();
    object.insert(field.to_owned(), value);
    record.set_object(key, object);
}

/// Marks a request honoured: `pending: false`, `honored_at`.
fn honour(record: &mut Record, key: &str, at: Timestamp) {
    set_in(record, key, "pending", json!(false));
    set_in(record, key, "honored_at", json!(timestamp::format(at)));
}
