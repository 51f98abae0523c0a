//! `daemon-state history`: hand-written journals for each kind of night and for gaps, and a
//! simulated week read back: the same nights, cycles and yields as `simulate`'s summary, and the
//! same hypnogram.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_daemon-state");

fn command() -> Command {
    let mut command = Command::new(BIN);
    command
        .env_remove("DAEMON_STATE_FILE")
        .env_remove("DAEMON_STATE_TZ")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    command
}

fn run(args: &[&str]) -> Output {
    command().args(args).output().expect("run daemon-state")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// A journal being written by hand: each line's generations follow the last one's.
struct Journal {
    lines: Vec<String>,
    generation: u64,
}

fn at(hm: &str) -> String {
    format!("2026-04-20T{hm}:00+00:00")
}

impl Journal {
    fn new() -> Self {
        let mut journal = Self { lines: Vec::new(), generation: 0 };
        journal.raw(json!({"at": at("00:00"), "by": "1.0", "opened": 0}));
        journal
    }

    fn raw(&mut self, line: Value) -> &mut Self {
        self.lines.push(line.to_string());
        self
    }

    /// An accepted event at `hm` taking the machine through `transitions` (from, to, reason),
    /// with `effects`; `extra` members added to the line.
    fn event(
        &mut self,
        hm: &str,
        kind: &str,
        transitions: &[(&str, &str, &str)],
        effects: Value,
        extra: Value,
    ) -> &mut Self {
        let before = self.generation;
        self.generation += transitions.len().max(1) as u64;
        let state = transitions.last().map_or("WAKE", |t| t.1);
        let transitions: Vec<Value> = transitions
            .iter()
            .map(|(from, to, reason)| json!({"from": from, "to": to, "reason": reason, "at": at(hm)}))
            .collect();
        let mut line = json!({
            "at": at(hm), "by": "1.0", "before": before, "after": self.generation, "state": state,
            "event": {"ts": at(hm), "type": kind},
            "transitions": transitions, "effects": effects,
        });
        if let (Some(line), Value::Object(extra)) = (line.as_object_mut(), extra) {
            line.extend(extra);
        }
        self.raw(line)
    }

    fn start(&mut self, hm: &str, reason: &str) -> &mut Self {
        let kind = match reason {
            "user_sleep_request" => "user_initiated_sleep",
            "force_rem_request" => "force_rem",
            _ => "tick",
        };
        self.event(
            hm,
            kind,
            &[("WAKE", "TRANSITIONING", reason)],
            json!([{"effect": "acquire_lock"}]),
            json!({}),
        )
    }

    fn lock(&mut self, hm: &str, of: u64) -> &mut Self {
        self.event(
            hm,
            "lock_acquired",
            &[("TRANSITIONING", "SLEEP", "lock_acquired"), ("SLEEP", "DREAMING", "next_cycle")],
            json!([{"effect": "run_rem_cycle", "cycle": 1, "of": of, "is_last": of == 1}]),
            json!({}),
        )
    }

    fn cycle(&mut self, hm: &str, cycle: u64, of: u64) -> &mut Self {
        self.event(
            hm,
            "rem_cycle_finished",
            &[("DREAMING", "SLEEP", "rem_cycle_finished"), ("SLEEP", "DREAMING", "next_cycle")],
            json!([{"effect": "run_rem_cycle", "cycle": cycle, "of": of, "is_last": cycle == of}]),
            json!({}),
        )
    }

    /// The last cycle finishes and the night ends with `reason`, yielding `yielded` if given.
    fn end(&mut self, hm: &str, reason: &str, yielded: Option<&str>) -> &mut Self {
        let mut effects = Vec::new();
        if let Some(why) = yielded {
            effects.push(json!({"effect": "emit", "kind": "daemon_yielded", "payload": {"reason": why, "completed_cycles": 1}, "severity": "info"}));
        }
        effects.push(json!({"effect": "release_lock"}));
        self.event(
            hm,
            "rem_cycle_finished",
            &[("DREAMING", "SLEEP", "rem_cycle_finished"), ("SLEEP", "WAKE", reason)],
            Value::Array(effects),
            json!({}),
        )
    }

    fn recall(&mut self, hm: &str, digest: bool) -> &mut Self {
        let digest = if digest { json!({"cycles": 1}) } else { Value::Null };
        self.event(hm, "recall", &[], json!([]), json!({"first_turn": false, "digest": digest}))
    }

    /// Generations lost: the next line starts `n` past the last one's `after`.
    fn lose(&mut self, n: u64) -> &mut Self {
        self.generation += n;
        self
    }

    fn bytes(&self) -> String {
        self.lines.iter().map(|line| format!("{line}\n")).collect()
    }
}

/// A state file at `generation` (none when `None`) with `journal` beside it.
fn files(journal: &str, generation: Option<u64>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state.json");
    if let Some(generation) = generation {
        std::fs::write(&path, format!("{{\"fsm_state\": \"WAKE\", \"generation\": {generation}}}"))
            .unwrap();
    }
    std::fs::write(dir.path().join("state.json.journal"), journal).unwrap();
    (dir, path)
}

fn history_json(path: &Path, extra: &[&str]) -> Value {
    let output = run(&[&["history", "--state-file", arg(path), "--json"], extra].concat());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

fn history_text(path: &Path) -> String {
    let output = run(&["history", "--state-file", arg(path)]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    text(&output.stdout)
}

#[test]
fn a_night_done_with_its_digest() {
    let mut j = Journal::new();
    j.start("01:00", "quiet_window").lock("01:01", 2).cycle("01:20", 2, 2);
    j.end("01:40", "cycles_done", None).recall("08:00", false).recall("08:05", true);
    let (_dir, path) = files(&j.bytes(), Some(j.generation));
    let doc = history_json(&path, &[]);
    assert_eq!(doc["ok"], true);
    assert_eq!(
        doc["nights"],
        json!([{
            "started_at": at("01:00"), "ended_at": at("01:40"),
            "cycles_planned": 2, "cycles_completed": 2,
            "started_by": "quiet_window", "ended_by": "cycles_done",
            "digest_delivered_at": at("08:05"),
            "slept_at": at("01:01"), "yielded": null,
        }])
    );
    assert_eq!(doc["gaps"], json!([]));
    assert_eq!(doc["totals"]["nights"], 1);
    assert_eq!(doc["sessions_per_day"][0]["date"], "2026-04-20");
    assert_eq!(doc["sessions_per_day"][0]["cycles"], 2);
    let text = history_text(&path);
    assert!(
        text.contains("night   2026-04-20 01:00 -> 01:40  cycles 2/2  started by quiet_window  ended by cycles_done  digest 2026-04-20 08:05"),
        "{text}"
    );
}

#[test]
fn each_yield_ends_its_night_with_its_reason() {
    for (reason, yielded) in [
        ("force_wake_requested", "force_wake_requested"),
        ("mcp_reacquired_mid_night", "mcp_reacquired_mid_night"),
        ("mcp_recent_activity", "mcp_recent_activity"),
    ] {
        let mut j = Journal::new();
        j.start("02:00", "idle").lock("02:01", 4).end("02:30", reason, Some(yielded));
        let (_dir, path) = files(&j.bytes(), Some(j.generation));
        let doc = history_json(&path, &[]);
        let night = &doc["nights"][0];
        assert_eq!(night["ended_by"], reason);
        assert_eq!(night["yielded"], yielded);
        assert_eq!(
            (night["cycles_planned"].as_u64(), night["cycles_completed"].as_u64()),
            (Some(4), Some(1))
        );
        assert_eq!(doc["totals"]["yields"], json!({yielded: 1}));
        assert!(history_text(&path).contains(&format!("ended by {reason} (yield)")));
    }
}

#[test]
fn a_lock_denied_before_the_night_is_an_attempt() {
    let mut j = Journal::new();
    j.start("03:00", "idle");
    j.event(
        "03:00",
        "lock_denied",
        &[("TRANSITIONING", "WAKE", "lock_denied")],
        json!([{"effect": "emit", "kind": "daemon_yielded", "payload": {"reason": "mcp_active"}, "severity": "info"}, {"effect": "release_lock"}]),
        json!({}),
    );
    let (_dir, path) = files(&j.bytes(), Some(j.generation));
    let doc = history_json(&path, &[]);
    let night = &doc["nights"][0];
    assert_eq!(night["ended_by"], "lock_denied");
    assert_eq!(night["yielded"], "mcp_active");
    assert_eq!(night["slept_at"], Value::Null);
    assert_eq!(night["cycles_planned"], 0);
    assert_eq!(
        (doc["totals"]["attempts"].as_u64(), doc["totals"]["nights"].as_u64()),
        (Some(1), Some(0))
    );
    let text = history_text(&path);
    assert!(text.contains("attempt 2026-04-20 03:00 -> 03:00  cycles 0/0  started by idle  ended by lock_denied (yield mcp_active)"), "{text}");
}

#[test]
fn requests_say_which_started_the_night() {
    for reason in ["user_sleep_request", "force_rem_request"] {
        let mut j = Journal::new();
        j.start("22:00", reason).lock("22:01", 1);
        j.event(
            "22:20",
            "rem_cycle_finished",
            &[("DREAMING", "SLEEP", "rem_cycle_finished"), ("SLEEP", "WAKE", "cycles_done")],
            json!([{"effect": "release_lock"}]),
            json!({}),
        );
        let (_dir, path) = files(&j.bytes(), Some(j.generation));
        let night = &history_json(&path, &[])["nights"][0];
        assert_eq!(night["started_by"], reason);
        assert_eq!(night["cycles_completed"], 1);
        assert_eq!(night["cycles_planned"], 1);
    }
}

#[test]
fn gaps_are_reported_between_lines_and_behind_the_state_file() {
    let mut j = Journal::new();
    j.start("01:00", "idle").lose(3).lock("01:01", 2).end("01:30", "cycles_done", None);
    let last = j.generation;
    // The state file is 2 generations past the journal's last line: its tail is lost.
    let (_dir, path) = files(&j.bytes(), Some(last + 2));
    let doc = history_json(&path, &[]);
    let gaps: Vec<&str> =
        doc["gaps"].as_array().unwrap().iter().map(|g| g["text"].as_str().unwrap()).collect();
    assert_eq!(
        gaps,
        [
            "journal incomplete between GEN 1 and 4 (around 2026-04-20 01:01)".to_owned(),
            format!(
                "journal incomplete between GEN {last} and {} (around 2026-04-20 01:30)",
                last + 2
            ),
        ]
    );
    assert!(history_text(&path).contains("journal incomplete between GEN 1 and 4"));
    // Lines of another engine interleaved: compared across all lines in file order.
    let mut j = Journal::new();
    j.start("01:00", "idle");
    j.raw(json!({"at": at("01:00"), "by": "2.0", "opened": 1}));
    j.raw(json!({"at": at("01:05"), "by": "2.0", "before": 1, "after": 2, "state": "TRANSITIONING", "event": {"ts": at("01:05"), "type": "mcp_activity"}, "transitions": [], "effects": []}));
    j.generation = 2;
    j.lock("01:06", 1);
    let (_dir, path) = files(&j.bytes(), Some(j.generation));
    assert_eq!(history_json(&path, &[])["gaps"], json!([]));
}

#[test]
fn unreadable_lines_are_counted_and_a_missing_journal_is_an_empty_history() {
    let mut j = Journal::new();
    j.start("01:00", "idle");
    let bytes = format!("{}not json\n{{\"at\": \n", j.bytes());
    let (_dir, path) = files(&bytes, Some(j.generation));
    let doc = history_json(&path, &[]);
    assert_eq!(doc["unreadable_lines"], 2);
    assert_eq!(doc["nights"][0]["ended_at"], Value::Null);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let doc = history_json(&path, &[]);
    assert_eq!(doc["nights"], json!([]));
    assert!(doc["notes"].to_string().contains("no journal"), "{doc}");
    assert!(!path.exists(), "history creates nothing");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nor any file beside it");
}

/// `simulate --days 7 --seed S --plot A.svg --json`, then `history --plot B.svg --json` on the
/// state file it left.
fn simulated_week(seed: u64) -> (tempfile::TempDir, Value, Value) {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.svg"), dir.path().join("b.svg"));
    let sim = dir.path().join("sim");
    let seed = seed.to_string();
    let args = [
        "simulate",
        "--days",
        "7",
        "--seed",
        &seed,
        "--dir",
        arg(&sim),
        "--plot",
        arg(&a),
        "--json",
    ];
    let output = run(&args);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    let state_file = PathBuf::from(summary["state_file"].as_str().unwrap());
    let history = history_json(&state_file, &["--plot", arg(&b)]);
    (dir, summary, history)
}

#[test]
fn a_simulated_week_reads_back_as_simulate_counted_it_and_draws_the_same_hypnogram() {
    for seed in [1, 3] {
        let (dir, summary, history) = simulated_week(seed);
        let totals = &history["totals"];
        assert_eq!(totals["attempts"], summary["attempts"], "seed {seed}");
        assert_eq!(totals["nights"], summary["nights"], "seed {seed}");
        assert_eq!(totals["cycles"], summary["rem_cycles"], "seed {seed}");
        assert_eq!(totals["yields"], summary["yields"], "seed {seed}");
        assert_eq!(totals["digests_delivered"], summary["digests_delivered"], "seed {seed}");
        assert_eq!(totals["sessions"], summary["sessions"], "seed {seed}");
        let nights = history["nights"].as_array().unwrap();
        assert_eq!(nights.len() as u64, summary["attempts"].as_u64().unwrap());
        let cycles: u64 = nights.iter().map(|n| n["cycles_completed"].as_u64().unwrap()).sum();
        assert_eq!(Value::from(cycles), summary["rem_cycles"]);
        let yields = nights.iter().filter(|n| !n["yielded"].is_null()).count() as u64;
        let summed: u64 =
            summary["yields"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
        assert_eq!(yields, summed, "seed {seed}");
        for (day, per_day) in summary["per_day"].as_array().unwrap().iter().enumerate() {
            let ours = &history["sessions_per_day"][day];
            assert_eq!(ours["date"], per_day["date"]);
            for key in ["sessions", "nights", "cycles"] {
                assert_eq!(ours[key], per_day[key], "seed {seed}, day {}, {key}", day + 1);
            }
        }
        // The same picture, but for the title: simulate names its seed, history its first day.
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        let untitled = |svg: String| -> Vec<String> {
            svg.lines().filter(|l| !l.contains(r#"font-size="18""#)).map(str::to_owned).collect()
        };
        let (a, b) = (read("a.svg"), read("b.svg"));
        assert!(a.contains("7 days, seed") && b.contains("7 days from 2026-04-20"));
        assert_eq!(a.lines().count(), b.lines().count());
        assert!(untitled(a) == untitled(b), "seed {seed}: the hypnograms differ");
    }
}

#[test]
fn days_keeps_the_last_days_only() {
    let (_dir, summary, _) = simulated_week(1);
    let state_file = PathBuf::from(summary["state_file"].as_str().unwrap());
    let doc = history_json(&state_file, &["--days", "2"]);
    let dates: Vec<&str> = doc["sessions_per_day"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["date"].as_str().unwrap())
        .collect();
    assert_eq!(dates, ["2026-04-25", "2026-04-26"]);
    for night in doc["nights"].as_array().unwrap() {
        assert!(night["started_at"].as_str().unwrap() >= "2026-04-25", "{night}");
    }
}
