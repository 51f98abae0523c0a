//! The doctor: a read-only inspection of a state file and the files beside it.
//!
//! Owns what `daemon-state check` reports: whether the file parses and is an object, whether its
//! known keys hold the types the seed writes, its permissions, owners and its directory's, symbolic
//! links, temp files left by interrupted saves, quarantined copies, the previous generation and a
//! lock file left by earlier versions; and, for a corrupt file, what the next command that writes will do with it (the
//! words must match what `store` does). Anything every command refuses is an error. It must not
//! change anything: no quarantine, no sweep, no lock, no directory created.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::doc::{Doc, ordered};
use crate::quiet_window::QuietWindow;
use crate::record::{Record, keys, kind_of};
use crate::table::StateName;
use crate::timestamp;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// A check that passed.
    Ok,
    /// Worth knowing; nothing to do.
    Info,
    /// The engine copes, but something should be looked at.
    Warning,
    /// The engine refuses the file or would lose data: `check` fails.
    Error,
}

impl Level {
    /// The level's name in the output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing `check` found about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How serious it is.
    pub level: Level,
    /// The file or directory it is about.
    pub path: PathBuf,
    /// What was found, in a short lowercase sentence.
    pub message: String,
}

impl Finding {
    /// The finding as a JSON object `{level, path, message}`.
    pub(crate) fn to_json(&self) -> Doc {
        ordered! {"level": self.level.as_str(), "path": self.path.display().to_string(), "message": &self.message}
    }
}

/// Everything `check` found, in the order it looked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The findings.
    pub findings: Vec<Finding>,
}

impl Report {
    /// How many findings are errors.
    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.level == Level::Error).count()
    }

    /// How many findings are warnings.
    pub fn warnings(&self) -> usize {
        self.findings.iter().filter(|f| f.level == Level::Warning).count()
    }

    fn add(&mut self, level: Level, path: &Path, message: impl Into<String>) {
        self.findings.push(Finding { level, path: path.to_owned(), message: message.into() });
    }
}

/// Inspects the state file at `path` and the files beside it, changing nothing.
pub fn check(path: &Path) -> Report {
    let mut report = Report::default();
    let Some(name) = path.file_name().map(|n| n.to_owned()) else {
        report.add(Level::Error, path, "the path does not end in a file name");
        return report;
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    if !check_dir(&mut report, &dir) {
        return report;
    }
    let sibling = |suffix: &str| {
        let mut sibling = name.clone();
        sibling.push(suffix);
        dir.join(sibling)
    };
    let (prev, lock) = (sibling(".prev"), sibling(".lock"));
    let previous = read_previous(&prev);
    check_state_file(&mut report, path, &previous);
    check_siblings(&mut report, &dir, &name);
    check_previous(&mut report, &prev, &previous);
    check_lock(&mut report, &lock);
    report
}

/// What `NAME.prev` is, read once: the state file's finding depends on it.
enum Previous {
    /// No `NAME.prev`.
    Missing,
    /// A regular file that parses, with its generation.
    Usable(u64),
    /// A regular file that does not parse.
    Corrupt(String),
    /// A symbolic link or not a regular file: every command refuses it.
    Refused(&'static str),
    /// It could not be inspected or read.
    Unreadable(String),
}

fn read_previous(prev: &Path) -> Previous {
    let meta = match fs::symlink_metadata(prev) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Previous::Missing,
        Err(e) => return Previous::Unreadable(format!("cannot inspect: {e}")),
    };
    if !meta.file_type().is_file() {
        return Previous::Refused(kind_name(&meta.file_type()));
    }
    match fs::read(prev).map(|bytes| Record::from_slice(&bytes)) {
        Ok(Ok(record)) => Previous::Usable(record.generation()),
        Ok(Err(problem)) => Previous::Corrupt(problem.to_string()),
        Err(e) => Previous::Unreadable(format!("cannot read: {e}")),
    }
}

/// What a file type is, for a finding about something that is not a regular file.
fn kind_name(file_type: &fs::FileType) -> &'static str {
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a named pipe"
    } else {
        "not a regular file"
    }
}

/// Whether `meta` belongs to this user (or, when `root_too`, to root); adds an error when not.
fn check_owner(report: &mut Report, path: &Path, meta: &fs::Metadata, root_too: bool) -> bool {
    let (uid, euid) = (meta.uid(), crate::store::effective_uid());
    if uid == euid || (root_too && uid == 0) {
        return true;
    }
    let allowed = if root_too { " nor root" } else { "" };
    report.add(
        Level::Error,
        path,
        format!(
            "owned by uid {uid}, not by this user (uid {euid}){allowed}; every command refuses it"
        ),
    );
    false
}

/// The directory: it must be one (a link to one is fine) and not writable by group or others.
/// Returns whether there is a directory to look into.
fn check_dir(report: &mut Report, dir: &Path) -> bool {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            check_owner(report, dir, &meta, true);
            let mode = meta.mode() & 0o7777;
            if mode & 0o022 != 0 {
                report.add(
                    Level::Error,
                    dir,
                    format!("directory mode {mode:04o} lets group or others write to it; the engine refuses it (expected 0700)"),
                );
            } else {
                report.add(Level::Ok, dir, format!("directory mode {mode:04o}"));
            }
            true
        }
        Ok(_) => {
            report.add(Level::Error, dir, "not a directory");
            false
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            report.add(
                Level::Info,
                dir,
                "no directory yet: `status` reports the state file missing; the next command that writes creates it (0700) and starts a fresh WAKE state",
            );
            false
        }
        Err(e) => {
            report.add(Level::Error, dir, format!("cannot inspect: {e}"));
            false
        }
    }
}

/// The state file: a regular file, mode 0600, whose bytes are a state document.
fn check_state_file(report: &mut Report, path: &Path, previous: &Previous) {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            report.add(
                Level::Info,
                path,
                "no state file: `status` reports it missing; the next command that writes starts a fresh WAKE state",
            );
            return;
        }
        Err(e) => {
            report.add(Level::Error, path, format!("cannot inspect: {e}"));
            return;
        }
    };
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        report.add(Level::Error, path, "a symbolic link; the engine refuses to follow it");
        return;
    }
    if !file_type.is_file() {
        report.add(Level::Error, path, format!("{}; the engine refuses it", kind_name(&file_type)));
        return;
    }
    check_owner(report, path, &meta, false);
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        report.add(Level::Error, path, exposed(mode));
    } else if mode & 0o600 != 0o600 {
        report.add(
            Level::Warning,
            path,
            format!("mode {mode:04o}: the owner cannot both read and write it (expected 0600)"),
        );
    } else {
        report.add(Level::Ok, path, format!("mode {mode:04o}"));
    }
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            report.add(Level::Error, path, format!("cannot read: {e}"));
            return;
        }
    };
    match Record::from_slice(&bytes) {
        Ok(record) => {
            let state = record.get(keys::FSM_STATE).and_then(Value::as_str).unwrap_or("WAKE");
            report.add(
                Level::Ok,
                path,
                format!("parses: a JSON object, {state}, generation {}", record.generation()),
            );
            check_keys(report, path, &record);
        }
        Err(problem) => {
            let next = match previous {
                Previous::Usable(generation) => format!(
                    "the next command that writes keeps a copy as NAME.corrupt.<time> and puts back the previous generation ({generation}, from NAME.prev), or a running `serve` writes back the newer document it holds"
                ),
                Previous::Missing | Previous::Corrupt(_) => "the next command that writes moves it to NAME.corrupt.<time> and starts fresh: there is no usable previous generation".to_owned(),
                Previous::Refused(_) | Previous::Unreadable(_) => {
                    "every command fails until NAME.prev is fixed (see its finding)".to_owned()
                }
            };
            report.add(
                Level::Error,
                path,
                format!("corrupt ({problem}); `status` refuses it; {next}"),
            );
        }
    }
}

/// The finding about a file that group or others may read or write.
fn exposed(mode: u32) -> String {
    format!(
        "mode {mode:04o} lets group or others read or write it (expected 0600); the next command that writes sets it to 0600"
    )
}

/// What a known key must hold (`null` is always accepted: the seed writes it for "unset").
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// One of the four state names.
    State,
    /// A timestamp string.
    Time,
    /// A JSON object.
    Object,
    /// `[start_bucket, duration]`.
    Window,
    /// A string.
    Text,
    /// A whole number, at least `.0`.
    Count(u64),
    /// `true` or `false`.
    Bool,
    /// An IANA time zone name.
    Zone,
}

/// The known keys and what each must hold.
const EXPECTED: &[(&str, Expect)] = &[
    (keys::FSM_STATE, Expect::State),
    (keys::FSM_TRANSITION_AT, Expect::Time),
    (keys::DAEMON_STARTED_AT, Expect::Time),
    (keys::FIRST_TURN_PENDING, Expect::Object),
    (keys::PENDING_DIGEST, Expect::Object),
    (keys::LAST_DIGEST_SHOWN_AT, Expect::Time),
    (keys::QUIET_WINDOW, Expect::Window),
    (keys::QUIET_WINDOW_LEARNED_AT, Expect::Time),
    (keys::LAST_SESSION_TS, Expect::Time),
    (keys::LAST_TICK_AT, Expect::Time),
    (keys::LAST_TICK_SKIPPED_REASON, Expect::Text),
    (keys::LAST_COMPLETED_CYCLES, Expect::Count(0)),
    (keys::SCHEDULER_PAUSED, Expect::Bool),
    (keys::USER_SLEEP_REQUEST, Expect::Object),
    (keys::FORCE_REM_REQUEST, Expect::Object),
    (keys::FORCE_WAKE_REQUEST, Expect::Object),
    (keys::REM_CYCLE_COUNT, Expect::Count(1)),
    (keys::TIMEZONE, Expect::Zone),
    (keys::GENERATION, Expect::Count(0)),
];

/// Why `value` is not what `expect` asks for; `None` when it is.
fn mismatch(value: &Value, expect: Expect) -> Option<String> {
    let fits = match expect {
        Expect::State => value.as_str().and_then(StateName::parse).is_some(),
        Expect::Time => value.as_str().and_then(timestamp::parse).is_some(),
        Expect::Object => value.is_object(),
        Expect::Window => QuietWindow::from_value(value).is_some(),
        Expect::Text => value.is_string(),
        Expect::Count(least) => value.as_u64().is_some_and(|n| n >= least),
        Expect::Bool => value.is_boolean(),
        Expect::Zone => value.as_str().is_some_and(|s| s.parse::<chrono_tz::Tz>().is_ok()),
    };
    if fits {
        return None;
    }
    let wanted = match expect {
        Expect::State => "WAKE, TRANSITIONING, SLEEP or DREAMING".to_owned(),
        Expect::Time => "a timestamp".to_owned(),
        Expect::Object => "an object".to_owned(),
        Expect::Window => "[start_bucket, duration]".to_owned(),
        Expect::Text => "a string".to_owned(),
        Expect::Count(least) => format!("a whole number of at least {least}"),
        Expect::Bool => "true or false".to_owned(),
        Expect::Zone => "an IANA time zone".to_owned(),
    };
    let found = match value {
        Value::String(s) => format!("{:?}", s.chars().take(40).collect::<String>()),
        other => kind_of(other).to_owned(),
    };
    Some(format!("holds {found}, expected {wanted}"))
}

/// The known keys' types, and the first-turn marks' values.
fn check_keys(report: &mut Report, path: &Path, record: &Record) {
    let mut wrong = 0;
    for &(key, expect) in EXPECTED {
        let Some(value) = record.get(key).filter(|v| !v.is_null()) else {
            continue;
        };
        if let Some(why) = mismatch(value, expect) {
            wrong += 1;
            report.add(Level::Warning, path, format!("{key} {why}; the engine reads it leniently"));
        }
    }
    if let Some(Value::Object(pending)) = record.get(keys::FIRST_TURN_PENDING) {
        let odd =
            pending.values().filter(|v| v.as_str().and_then(timestamp::parse).is_none()).count();
        if odd > 0 {
            wrong += 1;
            report.add(
                Level::Warning,
                path,
                format!("first_turn_pending has {odd} value(s) that are not timestamps; the reaper drops them"),
            );
        }
    }
    if wrong == 0 {
        report.add(Level::Ok, path, "known keys hold the expected types");
    }
}

/// The files beside the state file: temp files, quarantined copies, the previous generation.
fn check_siblings(report: &mut Report, dir: &Path, name: &OsString) {
    let names = match fs::read_dir(dir) {
        Ok(entries) => {
            let mut names: Vec<OsString> =
                entries.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
            names.sort();
            names
        }
        Err(e) => {
            report.add(Level::Error, dir, format!("cannot list: {e}"));
            return;
        }
    };
    let ours = name.as_bytes();
    let mut quarantine_prefix = ours.to_vec();
    quarantine_prefix.extend_from_slice(b".corrupt.");
    for sibling in &names {
        let bytes = sibling.as_bytes();
        let path = dir.join(sibling);
        if bytes.starts_with(&quarantine_prefix) {
            report.add(
                Level::Warning,
                &path,
                "a quarantined corrupt state file, which nothing reads again; inspect it, then remove it",
            );
        } else if let Some(pid) = crate::store::temp_file_pid(name, sibling) {
            let message = if crate::store::process_is_gone(pid) {
                "a temp file left by an interrupted save; the next command that writes removes it"
            } else {
                "a temp file of a save in progress (its process is running)"
            };
            report.add(Level::Warning, &path, message);
        } else if bytes.starts_with(ours) && bytes.ends_with(b".tmp") && bytes.len() > ours.len() {
            report.add(
                Level::Info,
                &path,
                "not a temp file of this program's (perhaps the original module's or a copy); never removed automatically",
            );
        }
    }
}

/// `NAME.prev`, when there is one, must be a regular file of this user's, 0600, that parses.
fn check_previous(report: &mut Report, prev: &Path, previous: &Previous) {
    match previous {
        Previous::Missing => {}
        Previous::Refused(kind) => report.add(
            Level::Error,
            prev,
            format!("the previous generation is {kind}; every command refuses it"),
        ),
        Previous::Unreadable(why) => {
            report.add(Level::Error, prev, format!("the previous generation: {why}"))
        }
        Previous::Usable(_) | Previous::Corrupt(_) => {
            if let Ok(meta) = fs::symlink_metadata(prev) {
                check_owner(report, prev, &meta, false);
                let mode = meta.mode() & 0o7777;
                if mode & 0o077 != 0 {
                    report.add(Level::Error, prev, exposed(mode));
                }
            }
            if let Previous::Usable(generation) = previous {
                report.add(
                    Level::Ok,
                    prev,
                    format!("previous generation parses (generation {generation})"),
                );
            }
            if let Previous::Corrupt(problem) = previous {
                report.add(
                    Level::Warning,
                    prev,
                    format!("the previous generation is corrupt ({problem}); a recovery would start fresh"),
                );
            }
        }
    }
}

/// `NAME.lock` was the lock file of earlier versions; nothing uses it now (the lock is the
/// directory's), whatever it is.
fn check_lock(report: &mut Report, lock: &Path) {
    match fs::symlink_metadata(lock) {
        Ok(meta) => report.add(
            Level::Info,
            lock,
            format!(
                "the lock file of earlier versions ({}); nothing uses it now (the lock is on the directory), so it can be removed",
                if meta.is_file() { "a regular file" } else { kind_name(&meta.file_type()) }
            ),
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => report.add(Level::Warning, lock, format!("cannot inspect: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check_type(value: Value, expect: Expect, fits: bool) {
        assert_eq!(mismatch(&value, expect).is_none(), fits, "{value} as {expect:?}");
    }

    #[test]
    fn known_key_types() {
        let rows = [
            (json!("DREAMING"), Expect::State, true),
            (json!("DROWSY"), Expect::State, false),
            (json!("2026-04-18T20:00:00+00:00"), Expect::Time, true),
            (json!("yesterday"), Expect::Time, false),
            (json!(1_776_000_000), Expect::Time, false),
            (json!({}), Expect::Object, true),
            (json!([]), Expect::Object, false),
            (json!([44, 16]), Expect::Window, true),
            (json!([44]), Expect::Window, false),
            (json!("paused"), Expect::Text, true),
            (json!(0), Expect::Count(0), true),
            (json!(0), Expect::Count(1), false),
            (json!(-1), Expect::Count(0), false),
            (json!("4"), Expect::Count(1), false),
            (json!(false), Expect::Bool, true),
            (json!("true"), Expect::Bool, false),
            (json!("Europe/Paris"), Expect::Zone, true),
            (json!("Mars/Base"), Expect::Zone, false),
        ];
        for (value, expect, fits) in rows {
            check_type(value, expect, fits);
        }
    }

    #[test]
    fn a_missing_directory_is_a_fresh_state_and_stays_missing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("absent").join(".daemon-state.json");
        let report = check(&path);
        assert_eq!(report.findings.len(), 1, "{report:?}");
        assert_eq!(report.findings[0].level, Level::Info);
        assert!(!dir.path().join("absent").exists(), "check created the directory");
    }
}
