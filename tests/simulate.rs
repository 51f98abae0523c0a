//! The `simulate` reference host, through the library: one seed gives one run, a week takes every
//! row of the table that moves the machine, the state file is left clean in WAKE, and the
//! hypnogram is well-formed SVG with a row per day, the committed one included.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use daemon_state::engine::Engine;
use daemon_state::simulate::{STATE_FILE_NAME, SimulateOptions, run};
use daemon_state::table::StateName;
use serde_json::{Value, json};
use tempfile::TempDir;

/// A finished run: its directory (kept until the tests end), its JSON summary and its hypnogram.
struct Run {
    dir: TempDir,
    summary: Value,
    svg: String,
}

fn options(days: u32, seed: u64, dir: &Path, json: bool) -> SimulateOptions {
    SimulateOptions { days, seed, dir: Some(dir.to_owned()), plot: None, json }
}

fn simulate(options: &SimulateOptions) -> String {
    let mut out = Vec::new();
    run(options, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn simulate_json(days: u32, seed: u64, plot: bool) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let svg_path = dir.path().join("hypnogram.svg");
    let mut options = options(days, seed, dir.path(), true);
    options.plot = plot.then(|| svg_path.clone());
    let summary: Value = serde_json::from_str(&simulate(&options)).unwrap();
    let svg = if plot { std::fs::read_to_string(&svg_path).unwrap() } else { String::new() };
    Run { dir, summary, svg }
}

/// The week every test below looks at: `simulate --days 7 --seed 1 --plot ... --json`.
fn week() -> &'static Run {
    static WEEK: OnceLock<Run> = OnceLock::new();
    WEEK.get_or_init(|| simulate_json(7, 1, true))
}

/// The summary without what names the run's own files.
fn figures(summary: &Value) -> Value {
    let mut figures = summary.clone();
    let object = figures.as_object_mut().unwrap();
    object.remove("state_file").unwrap();
    object.remove("plot").unwrap();
    figures
}

/// The text output without the lines that name the run's own files.
fn text_figures(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with("state file:") && !l.starts_with("  (read it")).collect()
}

#[test]
fn one_seed_gives_one_run() {
    let again = simulate_json(7, 1, false);
    assert_eq!(figures(&again.summary), figures(&week().summary));

    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let a = simulate(&options(2, 9, first.path(), false));
    let b = simulate(&options(2, 9, second.path(), false));
    assert_eq!(text_figures(&a), text_figures(&b));
    assert_ne!(a, b, "the paths differ, and only they");
    let c = simulate(&options(2, 10, tempfile::tempdir().unwrap().path(), false));
    assert_ne!(text_figures(&a), text_figures(&c), "another seed, another run");
}

#[test]
fn a_week_takes_every_row_that_moves_the_machine() {
    let rows = &week().summary["rows"];
    let moving = rows["moving"].as_array().unwrap();
    // WAKE 1, TRANSITIONING 5, SLEEP 8, DREAMING 3: the rows of the table that lead elsewhere.
    assert_eq!(moving.len(), 17);
    for row in moving {
        assert!(row["taken"].as_u64().unwrap() > 0, "{row}");
    }
    assert_eq!(rows["moving_never_taken"], json!([]));
    // A tick finds SLEEP at rest only after a save failed between two steps of one event; the
    // week stages that once, at a night's start (`disk full`), and the tick is decided as the
    // engine's own `Continue` is, so the night goes on with its cycles.
    let staying_never_taken = rows["staying_never_taken"].as_array().unwrap();
    assert!(
        !staying_never_taken.contains(&json!("SLEEP tick (as continue)")),
        "{staying_never_taken:?}"
    );
    assert_eq!(rows["unmatched"], Value::Array(Vec::new()), "every step matched one row");
}

#[test]
fn a_short_run_lists_the_rows_it_did_not_take() {
    let run = simulate_json(1, 1, false);
    let rows = &run.summary["rows"];
    let untaken: Vec<&Value> = rows["moving"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["taken"] == 0)
        .map(|r| &r["row"])
        .collect();
    let listed: Vec<&Value> = rows["moving_never_taken"].as_array().unwrap().iter().collect();
    assert_eq!(untaken, listed);
    assert!(!listed.is_empty(), "one day does not bring every mishap");
}

#[track_caller]
fn check_figure(summary: &Value, name: &str, holds: impl Fn(&Value) -> bool) {
    assert!(holds(&summary[name]), "{name} = {}", summary[name]);
}

#[test]
fn a_week_adds_up() {
    let s = &week().summary;
    let n = |v: &Value| v.as_u64().unwrap();
    check_figure(s, "days", |v| n(v) == 7);
    check_figure(s, "final_state", |v| v == "WAKE");
    check_figure(s, "early_ticks", |v| n(v) == 0);
    check_figure(s, "per_day", |v| v.as_array().unwrap().len() == 7);
    check_figure(s, "nights", |v| n(v) > 7 && n(v) <= n(&s["attempts"]));
    check_figure(s, "rem_cycles", |v| n(v) >= n(&s["nights"]));
    check_figure(s, "digests_delivered", |v| n(v) >= 5);
    // Every session recalls within its first minutes, well inside the reaper's hour.
    check_figure(s, "first_turns_consumed", |v| v == &s["sessions"]);
    check_figure(s, "first_turns_expired", |v| n(v) == 0);
    check_figure(s, "recoveries", |v| n(v) == n(&s["crashes"]));
    check_figure(s, "durable_writes", |v| n(v) > 0);
    check_figure(s, "yields", |v| {
        let reasons: Vec<&String> = v.as_object().unwrap().keys().collect();
        reasons
            == [
                "force_wake_requested",
                "lock_timeout",
                "mcp_active",
                "mcp_reacquired_mid_night",
                "mcp_recent_activity",
            ]
    });
}

#[test]
fn the_state_file_is_left_clean_in_wake() {
    let run = week();
    let path = run.dir.path().join(STATE_FILE_NAME);
    assert_eq!(run.summary["state_file"], path.display().to_string());
    let (engine, report) = Engine::open(&path).unwrap();
    assert_eq!(engine.state(), StateName::Wake);
    assert!(report.recovery.is_none(), "{report:?}");
    assert!(report.warnings.is_empty(), "{report:?}");
    let leftovers: Vec<PathBuf> = std::fs::read_dir(run.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "tmp") || p.to_string_lossy().contains(".corrupt.")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The element names of an SVG document, checked to open and close in order.
#[track_caller]
fn check_balanced(svg: &str) -> Vec<String> {
    let mut open: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("a tag that never ends") + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop().as_deref(), Some(name.trim()), "closing {name}");
        } else {
            let name: String =
                tag.chars().take_while(|c| !c.is_whitespace() && *c != '/').collect();
            assert!(!name.is_empty(), "an empty tag");
            seen.push(name.clone());
            if !tag.ends_with('/') {
                open.push(name);
            }
        }
    }
    assert!(open.is_empty(), "never closed: {open:?}");
    seen
}

#[test]
fn the_hypnogram_is_well_formed_svg_with_a_row_per_day() {
    let svg = &week().svg;
    assert!(svg.starts_with("<svg "), "{}", &svg[..40]);
    assert!(svg.trim_end().ends_with("</svg>"));
    let names = check_balanced(svg);
    assert_eq!(names.iter().filter(|n| *n == "svg").count(), 1);
    assert_eq!(svg.matches(r#"<g class="day""#).count(), 7);
    for state in StateName::ALL {
        assert!(svg.contains(&format!(">{state}</text>")), "no legend for {state}");
    }
    for bad in ["<svg", "<svg><g></svg>", "<svg><g/></g></svg>"] {
        let result = std::panic::catch_unwind(|| check_balanced(bad));
        assert!(result.is_err(), "{bad} passed as balanced");
    }
}

#[test]
fn the_text_output_shows_progress_then_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let text = simulate(&options(2, 3, dir.path(), false));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("simulating 2 days from 2026-04-20 (UTC), seed 3"), "{text}");
    assert!(lines[1].starts_with("day  1  Mon 2026-04-20  sessions"), "{text}");
    assert!(lines[2].starts_with("day  2  Tue 2026-04-21  sessions"), "{text}");
    assert_eq!(lines[3], "summary");
    for name in [
        "nights",
        "REM cycles",
        "yields",
        "digests delivered",
        "first turns consumed",
        "durable writes",
        "final state",
        "rows taken",
    ] {
        assert!(lines.iter().any(|l| l.starts_with(&format!("  {name} "))), "no {name}: {text}");
    }
    let path = dir.path().join(STATE_FILE_NAME);
    assert!(text.contains(&format!("state file: {}\n", path.display())), "{text}");
}

#[track_caller]
fn check_refused(options: SimulateOptions, message: &str) {
    let mut out = Vec::new();
    let error = run(&options, &mut out).unwrap_err();
    assert!(error.to_string().contains(message), "{error}");
}

#[test]
fn bad_options_are_refused() {
    let used = tempfile::tempdir().unwrap();
    std::fs::write(used.path().join(STATE_FILE_NAME), "{}").unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let mut no_plot_dir = options(1, 1, fresh.path(), true);
    no_plot_dir.plot = Some(fresh.path().join("missing").join("plot.svg"));
    check_refused(options(0, 1, fresh.path(), false), "days must be at least 1");
    check_refused(options(3651, 1, fresh.path(), false), "days must be at most 3650");
    check_refused(options(u32::MAX, 1, fresh.path(), false), "days must be at most 3650");
    check_refused(options(1, 1, used.path(), false), "already holds a state file");
    check_refused(no_plot_dir, "cannot write the hypnogram");
}

/// The committed hypnogram is the one `simulate --days 7 --seed 1 --plot` draws. After a
/// deliberate change, draw it again with `UPDATE_EXPECT=1 cargo test --test simulate`.
#[test]
fn the_committed_hypnogram_is_the_one_the_code_draws() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("diagrams").join("hypnogram.svg");
    let drawn = &week().svg;
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::create_dir_all(committed.parent().unwrap()).unwrap();
        std::fs::write(&committed, drawn).unwrap();
    }
    let on_disk = std::fs::read_to_string(&committed).unwrap_or_default();
    assert!(
        on_disk == *drawn,
        "diagrams/hypnogram.svg is not what the code draws; run with UPDATE_EXPECT=1 to redraw it"
    );
}

/// The label boxes of each day's row, as (day, baseline y, left, right), taken from the SVG: the
/// labels are centred on `x`, 10 px high, and about 6.4 px a character wide (the plot's estimate).
fn label_boxes(svg: &str) -> Vec<(usize, f64, f64, f64)> {
    let number = |text: &str, attr: &str| -> f64 {
        let start = text.find(&format!(" {attr}=\"")).expect(attr) + attr.len() + 3;
        text[start..].split('"').next().unwrap().parse().unwrap()
    };
    let mut boxes = Vec::new();
    for (day, row) in svg.split(r#"<g class="day""#).skip(1).enumerate() {
        for label in row.split(r#"<text class="mark-label""#).skip(1) {
            let text = label.split('>').nth(1).unwrap().split('<').next().unwrap();
            let width = text.chars().count() as f64 * 6.4 + 2.0;
            let centre = number(label, "x");
            boxes.push((day, number(label, "y"), centre - width / 2.0, centre + width / 2.0));
        }
    }
    boxes
}

#[test]
fn the_hypnogram_labels_never_overlap() {
    for seed in [1, 2] {
        let run = simulate_json(28, seed, true);
        let boxes = label_boxes(&run.svg);
        assert!(boxes.len() > 20, "seed {seed}: labels drawn: {}", boxes.len());
        for (i, a) in boxes.iter().enumerate() {
            for b in &boxes[..i] {
                let same_line = a.0 == b.0 && (a.1 - b.1).abs() < 10.0;
                let apart = a.2 >= b.3 || b.2 >= a.3;
                assert!(!same_line || apart, "seed {seed}: {a:?} overlaps {b:?}");
            }
        }
    }
    let week = label_boxes(&week().svg);
    assert!(week.iter().any(|b| b.0 == 3), "Thursday's crowded noon is labelled");
}

/// A simulated week, crashes, restarts and failed saves included, replays from its journal alone
/// to its state file byte for byte.
#[test]
fn a_simulated_week_replays_from_its_journal_to_its_state_file() {
    for seed in [1, 3] {
        let run = simulate_json(7, seed, false);
        let state = std::path::PathBuf::from(run.summary["state_file"].as_str().unwrap());
        let mut journal = state.as_os_str().to_owned();
        journal.push(".journal");
        let journal = std::fs::read(journal).expect("simulate leaves a journal");
        let replayed = daemon_state::replay::replay(&journal, None)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(replayed.document, std::fs::read(&state).unwrap(), "seed {seed}");
        drop(run);
    }
}
