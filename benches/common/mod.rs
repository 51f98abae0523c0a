//! What every benchmark shares: interleaved rounds, robust summaries, the ratio report, the machine
//! description and the realistic documents the pairs are measured on.
//!
//! It must not measure anything itself: each bench file owns its pairs and says what each arm does.

#![allow(dead_code)] // Each bench binary uses its own part of this module.

use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use daemon_state::digest::RemResult;
use daemon_state::effects::Effect;
use daemon_state::event::{Event, EventKind};
use daemon_state::kernel::Core;
use daemon_state::quiet_window::{MAX_SESSION_STARTS, SessionStarts};
use daemon_state::record::Record;
use daemon_state::sessions::{MAX_FIRST_TURN_ENTRIES, MAX_SESSION_ID_CHARS};
use daemon_state::table::StateName;
use daemon_state::timestamp::{self, Timestamp};
use serde_json::{Map, Value, json};

/// Errors a bench run stops on.
pub type BenchError = Box<dyn std::error::Error>;

/// Whether `cargo bench` started this binary; otherwise (`cargo test --benches`) a short smoke run.
pub fn full_run() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// `full` rounds in a real run, `smoke` rounds in a smoke run.
pub fn rounds(full: usize, smoke: usize) -> usize {
    if full_run() { full } else { smoke }
}

/// Measured times of one arm, in nanoseconds per operation.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    ns: Vec<f64>,
}

impl Samples {
    /// Adds one measurement.
    pub fn push(&mut self, ns: f64) {
        self.ns.push(ns);
    }

    fn sorted(&self) -> Vec<f64> {
        let mut sorted = self.ns.clone();
        sorted.sort_by(f64::total_cmp);
        sorted
    }

    /// The median.
    pub fn median(&self) -> f64 {
        let sorted = self.sorted();
        match sorted.len() {
            0 => f64::NAN,
            n if !n.is_multiple_of(2) => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        }
    }

    /// The mean of the middle 80 % (10 % cut from each end).
    pub fn trimmed_mean(&self) -> f64 {
        let sorted = self.sorted();
        let cut = sorted.len() / 10;
        let middle = &sorted[cut..sorted.len() - cut];
        if middle.is_empty() {
            return f64::NAN;
        }
        middle.iter().sum::<f64>() / middle.len() as f64
    }

    /// How many measurements.
    pub fn len(&self) -> usize {
        self.ns.len()
    }
}

/// Runs the arms in rounds, one call of each per round, alternating the order (forward on even
/// rounds, backward on odd ones) so that neither arm always runs right after the other. Each call
/// returns the nanoseconds per operation it measured.
pub fn interleave<const N: usize>(
    rounds: usize,
    arms: &mut [&mut dyn FnMut() -> Result<f64, BenchError>; N],
) -> Result<[Samples; N], BenchError> {
    let mut samples: [Samples; N] = std::array::from_fn(|_| Samples::default());
    for round in 0..rounds {
        for step in 0..N {
            let arm = if round.is_multiple_of(2) { step } else { N - 1 - step };
            let ns = (arms[arm])()?;
            samples[arm].push(ns);
        }
    }
    Ok(samples)
}

/// Nanoseconds since `start`.
pub fn ns_since(start: Instant) -> f64 {
    start.elapsed().as_nanos() as f64
}

/// A duration in nanoseconds, printed in the unit that reads best.
pub fn human(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// Prints one arm's summary line.
pub fn arm_line(name: &str, samples: &Samples) {
    println!(
        "  {name:<34} median {:>12}   trimmed mean {:>12}   ({} samples)",
        human(samples.median()),
        human(samples.trimmed_mean()),
        samples.len()
    );
}

/// What a ratio is held to.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// The ratio must be at most this.
    AtMost(f64),
    /// The ratio must be at least this.
    AtLeast(f64),
    /// Shown for information only.
    None,
}

/// Prints `top / bottom` as a ratio of medians and of trimmed means, and whether the target is met
/// (judged on the ratio of medians). Returns the ratio of medians.
pub fn ratio_line(label: &str, top: &Samples, bottom: &Samples, target: Target) -> f64 {
    let by_median = top.median() / bottom.median();
    let by_mean = top.trimmed_mean() / bottom.trimmed_mean();
    let verdict = match target {
        Target::AtMost(limit) if by_median <= limit => format!("target <= {limit:.2}: met"),
        Target::AtMost(limit) => {
            format!("target <= {limit:.2}: MISSED by {:.1} %", (by_median / limit - 1.0) * 100.0)
        }
        Target::AtLeast(limit) if by_median >= limit => format!("target >= {limit:.2}: met"),
        Target::AtLeast(limit) => {
            format!("target >= {limit:.2}: MISSED by {:.1} %", (1.0 - by_median / limit) * 100.0)
        }
        Target::None => "no target".to_owned(),
    };
    println!("  ratio {label}: {by_median:.3} (medians), {by_mean:.3} (trimmed means); {verdict}");
    by_median
}

/// The file system type under `path`, from `statfs`.
pub fn fs_type(path: &Path) -> String {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return "unknown".to_owned();
    };
    // SAFETY: `statfs` fills the zeroed struct it is given and reads a valid C string.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stat) } != 0 {
        return "unknown".to_owned();
    }
    match stat.f_type as u64 {
        0xEF53 => "ext4".to_owned(),
        0x0102_1994 => "tmpfs".to_owned(),
        0x5846_5342 => "xfs".to_owned(),
        0x9123_683E => "btrfs".to_owned(),
        0x794C_7630 => "overlayfs".to_owned(),
        other => format!("type {other:#x}"),
    }
}

/// Prints the machine the figures come from.
pub fn print_machine(temp_dir: &Path) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|text| text.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "machine: {cores} cores, {cpu}, kernel {kernel}; temp dir {} on {}",
        temp_dir.display(),
        fs_type(temp_dir)
    );
    if !full_run() {
        println!("(smoke run: few rounds; `cargo bench` gives the real figures)");
    }
}

/// A moment in UTC.
pub fn utc(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, hour, minute, 0).single().unwrap_or(DateTime::UNIX_EPOCH)
}

/// Feeds one event to a core, answering the effects a host would answer (the lock is granted,
/// every REM cycle finishes ten minutes later) until the core asks for nothing more. Returns the
/// last document the core asked to persist, if any.
pub fn drive(core: &mut Core, event: Event) -> Option<Record> {
    let mut last = None;
    let mut queue = vec![event];
    while let Some(event) = queue.pop() {
        let at = event.at;
        let Ok(outcome) = core.handle(&event) else { continue };
        last = outcome.snapshots().last().cloned().or(last);
        for effect in &outcome.effects {
            match effect {
                Effect::AcquireLock => queue.push(Event::new(at, EventKind::LockAcquired)),
                Effect::RunRemCycle { cycle, .. } => queue.push(Event::new(
                    at + TimeDelta::minutes(10),
                    EventKind::RemCycleFinished {
                        result: RemResult {
                            summaries_created: 3 + u64::from(*cycle),
                            schema_candidates: 1,
                            claude_call_used: *cycle == 1,
                            main_insight_text: (*cycle == 1).then(|| {
                                "the user returns to the scheduler design every morning".to_owned()
                            }),
                            timed_out: false,
                        },
                    },
                )),
                _ => {}
            }
        }
    }
    last
}

/// The state document of a daemon after a realistic week, on the eighth day at 15:00 UTC: a tick
/// every 5 minutes, a session every 20 minutes from 09:00 to 18:00, two in three followed by a
/// recall, nights started by the 2 h idle rule and then by the learned quiet window, four REM
/// cycles a night. About 3 KB: the 1 h reaper keeps the first-turn map short.
pub fn realistic_record() -> Record {
    let (mut core, _) = Core::restore(Record::new());
    let start = utc(2026, 4, 1, 0, 0);
    let mut last = drive(&mut core, Event::new(start, EventKind::Boot));
    let mut session = 0u32;
    for step in 0..((7 * 24 + 15) * 12) {
        let at = start + TimeDelta::minutes(5 * step);
        let hour = (step / 12) % 24;
        let tick = drive(&mut core, Event::new(at, EventKind::Tick { store_empty: false }));
        last = tick.or(last);
        if (9..18).contains(&hour) && step % 4 == 0 && core.state() == StateName::Wake {
            session += 1;
            let id = format!("sess-{session:05}-7f3a9c2e");
            let opened = Event::new(at, EventKind::SessionStarted { session_id: Some(id.clone()) });
            last = drive(&mut core, opened).or(last);
            if !session.is_multiple_of(3) {
                let recall = Event::new(at, EventKind::Recall { session_id: Some(id) });
                last = drive(&mut core, recall).or(last);
            }
        }
    }
    last.unwrap_or_else(|| core.data().record().clone())
}

/// Sleeps a moment between phases so that one phase's writeback does not land in the next.
pub fn settle() {
    std::thread::sleep(Duration::from_millis(200));
}

/// The largest document the engine keeps, every bounded part at its bound, plus big foreign data:
/// the first-turn map at its cap of 100 with 128-character ids, a full session history (4,096
/// starts), a big digest (16 KiB insight, 256 drift alerts), every request with a 500-character
/// reason, and 16 unknown keys holding nested data and huge numbers. Every known key holds a value
/// of the right type.
pub fn maximal_record(now: Timestamp) -> Record {
    let stamp = |at: Timestamp| Value::String(timestamp::format(at));
    let mut pending = Map::new();
    for i in 0..MAX_FIRST_TURN_ENTRIES {
        let prefix = format!("sess-{i:03}-");
        let id: String = prefix
            .chars()
            .chain("0123456789abcdef".chars().cycle())
            .take(MAX_SESSION_ID_CHARS)
            .collect();
        let at = now - TimeDelta::minutes(i as i64) - TimeDelta::microseconds(123_457);
        pending.insert(id, stamp(at));
    }
    let mut starts = SessionStarts::new();
    for i in 0..MAX_SESSION_STARTS {
        starts.push(now - TimeDelta::minutes(2 * i as i64) + TimeDelta::microseconds(271_828));
    }
    let insight: String =
        "consolidated: the user revisits the scheduler design each morning; ünïcødé ✓ "
            .chars()
            .cycle()
            .take(16 * 1024)
            .collect();
    let alerts: Vec<Value> = (0..256)
        .map(|i| json!({"metric": format!("drift-{i}"), "sigma": 2.5 + f64::from(i) / 100.0, "at": stamp(now - TimeDelta::hours(i64::from(i)))}))
        .collect();
    let reason: String = "going to bed now ".chars().cycle().take(500).collect();
    let at = |hours: i64| stamp(now - TimeDelta::hours(hours));
    let mut doc = json!({
        "fsm_state": "WAKE",
        "fsm_transition_at": at(3),
        "daemon_started_at": at(72),
        "first_turn_pending": pending,
        "pending_digest": {
            "rem_cycles_completed": 96, "episodes_processed": 123456, "schemas_induced_tier0": 4321,
            "claude_call_used": true, "quota_used_pct": 0.003, "main_insight_text": insight,
            "sigma_observed": 1.2, "s5_drift_alerts": alerts, "daemon_uptime_hours": 72,
            "timed_out_cycles": 3,
        },
        "last_digest_shown_at": at(20),
        "quiet_window": [44, 16],
        "quiet_window_learned_at": at(2),
        "last_session_ts": at(1),
        "last_tick_at": at(0),
        "last_tick_skipped_reason": "outside_window",
        "last_completed_cycles": 4,
        "scheduler_paused": false,
        "user_sleep_request": {"reason": reason, "ts": at(9), "pending": false, "honored_at": at(9)},
        "force_rem_request": {"ts": at(30), "pending": false, "honored_at": at(30)},
        "force_wake_request": {"ts": at(8), "pending": false, "honored_at": at(8)},
        "rem_cycle_count": 4,
        "last_session_open": {"session_id": "sess-000", "ts": at(1)},
        "hippea_cascade_request": {"session_id": "sess-000", "ts": at(1), "pending": true},
        "timezone": "Europe/Berlin",
        "session_starts": starts.to_value(),
        "night": {"started_at": at(10), "planned": 4, "completed": 4, "lock_lost": false, "activity_at": null},
        "generation": 987654,
    });
    if let Value::Object(map) = &mut doc {
        for i in 0..16 {
            let big: Value = serde_json::from_str(
                "123456789012345678901234567890123456789012345678901234567890",
            )
            .unwrap_or(Value::Null);
            let nested =
                json!({"level": {"deeper": {"deepest": [1, 2.5, "three", null, true, {"k": i}]}}});
            let text: String = "foreign tool data ".chars().cycle().take(1024).collect();
            map.insert(
                format!("x_foreign_tool_{i:02}"),
                json!({"big": big, "nested": nested, "text": text}),
            );
        }
    }
    match doc {
        Value::Object(map) => Record::from_map(map),
        _ => Record::new(),
    }
}

/// A long-lived `python3 -c SCRIPT TARGET` that answers each request line with one line holding a
/// number (the time its own call took), so that only the seed's calls are timed, not a start.
pub struct Python {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    line: String,
}

impl Python {
    /// Starts the script on `target`; `None` when `python3` is not installed.
    pub fn start(script: &str, target: &Path) -> Result<Option<Self>, BenchError> {
        let spawned = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(target)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("python3 started without pipes".into());
        };
        Ok(Some(Self { child, input, output: BufReader::new(output), line: String::new() }))
    }

    /// Writes one line that the script reads without answering (a document to start from).
    pub fn tell(&mut self, line: &str) -> Result<(), BenchError> {
        writeln!(self.input, "{line}")?;
        Ok(())
    }

    /// Sends one request line and reads the number the script answers.
    pub fn ask(&mut self, request: &str) -> Result<f64, BenchError> {
        writeln!(self.input, "{request}")?;
        self.input.flush()?;
        self.line.clear();
        if self.output.read_line(&mut self.line)? == 0 {
            return Err("python3 stopped answering".into());
        }
        Ok(self.line.trim().parse()?)
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        writeln!(self.input, "stop").ok();
        self.child.wait().ok();
    }
}
