//! Why the engine is where it is: for the rows a tick would try now, whether each guard holds and
//! when it will, and the same in words.
//!
//! Owns `why`'s answer (the typed [`Why`]) and its sentences. It walks the rows `status` derives
//! the next deadline from ([`status::tick_rows`]) and asks the guards themselves (`Guard::holds`,
//! `Guard::due`); it must not decide anything the table and the guards do not already say, nor
//! change the data.

// Without `serde` nothing answers `why` (the protocol and the command line need it).
#![cfg_attr(not(feature = "serde"), allow(dead_code))]

use chrono::{Duration, Timelike};
use chrono_tz::Tz;

use crate::data::{Data, LOCK_RETRY_AFTER, LOCK_WAIT_TIMEOUT, RECENT_ACTIVITY};
use crate::event::{Event, EventKind, Input, Trigger};
use crate::quiet_window;
use crate::reason::Reason;
use crate::status;
use crate::table::{Guard, Row, StateName, Target};
use crate::timestamp::Timestamp;

/// Why the engine is in its state at a moment, and what a tick could do.
#[derive(Debug, Clone, PartialEq)]
pub struct Why {
    /// The current state.
    pub state: StateName,
    /// The rows a tick would try, in table order, but those that always apply.
    pub rows: Vec<WhyRow>,
    /// When the next tick can act: the engine's next deadline.
    pub next_action_at: Option<Timestamp>,
    /// The same in words, one sentence per fact, times in the state's zone.
    pub text: String,
}

/// One row a tick would try.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct WhyRow {
    /// The row, named `EVENT: GUARD -> TARGET`: the event it handles (`tick`, or `continue`, the
    /// engine's own step in SLEEP), its guard as the diagrams label it, and where it leads (a
    /// state, `stay`: the event ends there, or `on`: the following rows are tried too).
    pub row: String,
    /// Whether the guard holds now (for a fallback row: whether no row before it ends the event).
    pub holds: bool,
    /// For a guard that holds, since when (now when that is not known); for one that does not,
    /// when time alone will make it hold; `None` when time will not.
    #[cfg_attr(feature = "serde", serde(with = "crate::timestamp::wire::option"))]
    pub from: Option<Timestamp>,
}

/// Explains `state` over `data` at `now`.
pub fn why(state: StateName, data: &Data, now: Timestamp) -> Why {
    let tick = Event::new(now, EventKind::Tick { store_empty: false });
    let mut rows = Vec::new();
    // The event whose rows are being read, and whether one of them already ends it.
    let (mut group, mut ended) = (Trigger::Tick, false);
    for row in status::tick_rows(state, data) {
        if row.trigger != group {
            (group, ended) = (row.trigger, false);
        }
        if row.guard == Guard::Always {
            continue;
        }
        let input = match row.trigger {
            Trigger::Continue => Input::Continue,
            _ => Input::Host(&tick),
        };
        let holds = if row.guard.is_fallback() {
            !ended
        } else {
            row.guard.holds(data, now, &input, false)
        };
        let from = if holds { Some(since(row.guard, data, now).unwrap_or(now)) } else { due(row, data, now) };
        ended |= holds && matches!(row.to, Target::Stay | Target::Go(_));
        rows.push(WhyRow { row: name(row), holds, from });
    }
    let next_action_at = status::next_deadline(state, data, now);
    let text = Words { data, now, tz: data.view().tz }.say(state, next_action_at);
    Why { state, rows, next_action_at, text }
}

#[cfg(feature = "serde")]
impl Why {
    /// The answer as a document: `{"ok": true, "state", "rows": [{"row", "holds", "from"}, ...],
    /// "next_action_at", "text"}`, moments as the state file writes them, `null` when none.
    pub(crate) fn to_doc(&self) -> crate::doc::Doc {
        crate::doc::Doc::ok(true)
            .with("state", self.state)
            .with("rows", &self.rows)
            .with("next_action_at", self.next_action_at.map(crate::timestamp::format))
            .with("text", &self.text)
    }
}

/// `EVENT: GUARD -> TARGET`.
fn name(row: &Row) -> String {
    let to = match row.to {
        Target::Go(state) => state.as_str(),
        Target::Stay => "stay",
        Target::Next | Target::As(_) => "on",
    };
    format!("{}: {} -> {to}", row.trigger, row.guard.label())
}

/// When a guard that does not hold will, by time alone (a moment after now).
fn due(row: &Row, data: &Data, now: Timestamp) -> Option<Timestamp> {
    row.guard.due(data, now).filter(|at| *at > now)
}

/// Since when a guard that holds has held, when that is known.
fn since(guard: Guard, data: &Data, now: Timestamp) -> Option<Timestamp> {
    let view = data.view();
    let known = |at: Timestamp| Some(at).filter(|at| *at <= now);
    match guard {
        Guard::FirstTurnsExpired => view.first_turn_expiry.and_then(known),
        Guard::RelearnDue => {
            view.learned_at.and_then(|at| known(at + quiet_window::RELEARN_AFTER))
        }
        Guard::SleepDue => {
            let since = match data.sleep_due(now)? {
                Reason::QuietWindow => quiet_window::occurrence_start(view.window?, now, view.tz),
                Reason::Idle => data.idle_since().map(|at| at + quiet_window::BOOTSTRAP_IDLE),
                _ => None,
            }?;
            // A refusal's back-off that ended later held it off until then.
            let resumed = view.night.retry_after.and_then(known);
            known(since.max(resumed.unwrap_or(since)))
        }
        Guard::BackingOff => view.night.retry_after.map(|until| until - LOCK_RETRY_AFTER),
        Guard::LockWaitExpired => view.transition_at.and_then(|at| known(at + LOCK_WAIT_TIMEOUT)),
        Guard::RecentActivity => data.last_activity_at().and_then(known),
        _ => None,
    }
}

/// The sentences, over one state's data at one moment.
struct Words<'a> {
    data: &'a Data,
    now: Timestamp,
    tz: Tz,
}

impl Words<'_> {
    fn say(&self, state: StateName, next: Option<Timestamp>) -> String {
        let view = self.data.view();
        let mut facts: Vec<String> = Vec::new();
        match state {
            StateName::Wake if view.paused => {
                facts.push("WAKE: the scheduler is paused; a tick does nothing until resumed".into());
            }
            StateName::Wake => self.wake(&mut facts),
            StateName::Transitioning => self.transitioning(&mut facts),
            StateName::Sleep => self.sleep(&mut facts),
            StateName::Dreaming => self.dreaming(&mut facts),
        }
        if let Some(expiry) = view.first_turn_expiry {
            facts.push(if expiry <= self.now {
                format!("A first-turn mark expired at {}; a tick drops it", self.time(expiry))
            } else {
                format!("A first-turn mark expires at {}", self.future(expiry))
            });
        }
        facts.push(match next {
            None => "No tick can act until an event comes".into(),
            Some(at) if at <= self.now => "Next tick that can act: now".into(),
            Some(at) => format!("Next tick that can act: {}", self.clock(at)),
        });
        let mut text = facts.join(". ");
        text.push('.');
        text
    }

    fn wake(&self, facts: &mut Vec<String>) {
        let (data, now) = (self.data, self.now);
        let view = data.view();
        let slept_since_session = data.night_since_last_session();
        facts.push(match view.night.started_at {
            None => "WAKE: no night yet".into(),
            Some(at) if slept_since_session => format!("WAKE: last night started {}", self.time(at)),
            Some(_) => "WAKE: no night since the last session".into(),
        });
        // The idle rule.
        let booted = data.record().timestamp(crate::record::keys::DAEMON_STARTED_AT);
        let subject = match (view.last_session, booted) {
            (Some(session), Some(boot)) if boot > session => {
                Some(format!("Booted {}", self.time(boot)))
            }
            (Some(session), _) => Some(format!("Last session {}", self.time(session))),
            (None, Some(boot)) => Some(format!("Booted {}", self.time(boot))),
            (None, None) => None,
        };
        facts.push(match (subject, data.idle_since()) {
            (Some(subject), _) if slept_since_session => {
                format!("{subject}; a night started since, so the idle rule waits for a session")
            }
            (Some(subject), Some(since)) => {
                let at = since + quiet_window::BOOTSTRAP_IDLE;
                if at <= now {
                    format!("{subject}, so the idle rule holds since {}", self.time(at))
                } else {
                    format!("{subject}, so the idle rule holds from {}", self.future(at))
                }
            }
            _ if slept_since_session => "No session since the last night, so the idle rule waits for one".into(),
            _ => "No session or boot recorded, so the idle rule holds".into(),
        });
        // The quiet window.
        facts.push(match view.window {
            None => "No quiet window learned".into(),
            Some(window) => {
                let label = format!(
                    "Quiet window {}-{} {}",
                    bucket_time(window.start),
                    bucket_time(window.start + window.duration),
                    self.tz.name()
                );
                if quiet_window::occurrence_start(window, now, self.tz).is_some() {
                    if data.slept_this_window(now).is_some() {
                        format!("{label} already started a night this time")
                    } else {
                        format!(
                            "{label} is open until {}",
                            bucket_time(window.start + window.duration)
                        )
                    }
                } else {
                    match quiet_window::next_window_start(window, now, self.tz) {
                        Some(at) => format!("{label} opens at {}", self.future(at)),
                        None => format!("{label} does not open within three days"),
                    }
                }
            }
        });
        // The relearn.
        facts.push(match view.learned_at.filter(|at| *at <= now) {
            None => "Window relearn due now".into(),
            Some(learned) => {
                let at = learned + quiet_window::RELEARN_AFTER;
                if at <= now {
                    format!("Window relearn due since {}", self.time(at))
                } else {
                    format!("Window relearn due at {}", self.future(at))
                }
            }
        });
        // The requests.
        facts.push(match (view.user_sleep_pending, view.force_rem_pending) {
            (false, false) => "No request pending".into(),
            (true, false) => "A user sleep request is pending".into(),
            (false, true) => "A force-REM request is pending".into(),
            (true, true) => "A user sleep request and a force-REM request are pending".into(),
        });
        if view.force_wake_pending {
            facts.push("A force-wake is pending; the next night drops it".into());
        }
        if data.backing_off(now)
            && let Some(until) = view.night.retry_after
        {
            facts.push(format!("The lock was refused; no new attempt before {}", self.future(until)));
        }
    }

    fn transitioning(&self, facts: &mut Vec<String>) {
        let view = self.data.view();
        match view.transition_at {
            Some(since) if (self.now - since).abs() < LOCK_WAIT_TIMEOUT => {
                facts.push(format!("TRANSITIONING: waiting for the lock since {}", self.time(since)));
                let until = since + LOCK_WAIT_TIMEOUT;
                facts.push(format!("It gives up at {}", self.future(until)));
            }
            Some(since) => {
                facts.push(format!("TRANSITIONING: waiting for the lock since {}", self.time(since)));
                facts.push(format!(
                    "The wait ran out at {}; a tick gives up and backs off",
                    self.time(since + LOCK_WAIT_TIMEOUT)
                ));
            }
            None => facts.push(
                "TRANSITIONING: waiting for the lock since an unknown time; a tick gives up".into(),
            ),
        }
    }

    fn sleep(&self, facts: &mut Vec<String>) {
        let (data, night) = (self.data, &self.data.view().night);
        facts.push(format!("SLEEP: {} of {} cycles done", night.completed, night.planned));
        facts.push(match data.yield_reason(self.now) {
            Some((Guard::ForceWake, _)) => {
                "A force-wake is pending, so a tick ends the night".into()
            }
            Some((Guard::LockLost, _)) => "The lock was lost, so a tick ends the night".into(),
            Some(_) => self.activity("so a tick ends the night if it comes before"),
            None if data.cycles_left() => {
                format!("A tick runs cycle {} of {}", night.completed + 1, night.planned)
            }
            None => "All cycles are done, so a tick ends the night".into(),
        });
    }

    fn dreaming(&self, facts: &mut Vec<String>) {
        let (data, night) = (self.data, &self.data.view().night);
        let cycle = night.completed + 1;
        facts.push(format!(
            "DREAMING: cycle {cycle} of {} is running; a tick does nothing until it finishes",
            night.planned
        ));
        let recent = data.last_activity_at().is_some_and(|at| self.now - at <= RECENT_ACTIVITY);
        facts.push(if cycle >= night.planned {
            "It is the last, so the night ends when it finishes".into()
        } else if data.view().force_wake_pending {
            "A force-wake is pending, so the night ends when it finishes".into()
        } else if night.lock_lost {
            "The lock was lost, so the night ends when it finishes".into()
        } else if recent {
            self.activity("so the night ends if it finishes before")
        } else {
            format!("Then cycle {} of {}", cycle + 1, night.planned)
        });
    }

    /// The client activity that makes a boundary yield, and until when it does.
    fn activity(&self, so: &str) -> String {
        match self.data.last_activity_at() {
            Some(at) => format!(
                "Client activity at {}, {so} {}",
                self.time(at),
                self.future(at + RECENT_ACTIVITY)
            ),
            None => "Client activity was recent".into(),
        }
    }

    /// A moment in the zone: `HH:MM` (with `:SS` when it has seconds), and its local date when that
    /// is not today's and the moment is past.
    fn time(&self, at: Timestamp) -> String {
        let local = at.with_timezone(&self.tz);
        let today = self.now.with_timezone(&self.tz).date_naive();
        let clock = self.clock(at);
        if local.date_naive() != today && at < self.now {
            format!("{clock} on {}", local.format("%Y-%m-%d"))
        } else {
            clock
        }
    }

    /// `HH:MM`, or `HH:MM:SS` when the moment is not on a minute (a fraction of a second is
    /// dropped: a deadline the engine rounds past a whole second reads as that second).
    fn clock(&self, at: Timestamp) -> String {
        let local = at.with_timezone(&self.tz);
        if local.second() == 0 {
            local.format("%H:%M").to_string()
        } else {
            local.format("%H:%M:%S").to_string()
        }
    }

    /// A coming moment: `HH:MM (in 1 h 20 min)`, the span between the whole seconds shown.
    fn future(&self, at: Timestamp) -> String {
        let whole = |t: Timestamp| t.timestamp();
        format!("{} (in {})", self.clock(at), span(Duration::seconds(whole(at) - whole(self.now))))
    }
}

/// The local time a bucket starts at (48 wraps to 00:00).
fn bucket_time(bucket: u8) -> String {
    let bucket = bucket % quiet_window::BUCKETS;
    format!("{:02}:{:02}", bucket / 2, bucket % 2 * 30)
}

/// A duration of whole seconds in words: `1 h 20 min`, `4 min 59 s`, `1 s`.
fn span(duration: Duration) -> String {
    let secs = duration.num_seconds().max(0);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h} h"));
    }
    if m > 0 {
        parts.push(format!("{m} min"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(format!("{s} s"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_hours_minutes_and_seconds() {
        assert_eq!(span(Duration::minutes(80)), "1 h 20 min");
        assert_eq!(span(Duration::hours(9)), "9 h");
        assert_eq!(span(Duration::seconds(299)), "4 min 59 s");
        assert_eq!(span(Duration::seconds(1)), "1 s");
        assert_eq!(span(Duration::zero()), "0 s");
    }

    #[test]
    fn buckets_read_as_local_times() {
        assert_eq!(bucket_time(46), "23:00");
        assert_eq!(bucket_time(14), "07:00");
        assert_eq!(bucket_time(48), "00:00");
        assert_eq!(bucket_time(3), "01:30");
    }
}
