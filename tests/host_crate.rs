//! A crate outside this one, `tests/host_crate`, depends on the library with
//! `default-features = false, features = ["serde"]` and uses only the root re-exports: its
//! dependency tree stays small, and it runs a night and round-trips an `Event` and an `Effect`
//! through serde_json.
//!
//! Both tests run Cargo on the nested crate offline, so every crate it needs must already be in
//! the local registry cache (its `Cargo.lock` pins the versions this crate's lock file has).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The most crates the host's dependency tree may hold, the host crate itself included.
const MAX_CRATES: usize = 45;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/host_crate/Cargo.toml")
}

fn cargo(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO"))
        .args(args)
        .arg("--manifest-path")
        .arg(manifest())
        // Builds are kept between runs, apart from this crate's own.
        .env(
            "CARGO_TARGET_DIR",
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/host_crate"),
        )
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo {args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The distinct crates of a `cargo tree --prefix none` listing: one per `name vX.Y.Z`, however
/// often it appears (`(*)` marks a repeat; `(proc-macro)` and paths are annotations).
fn distinct_crates(tree: &str) -> BTreeSet<(String, String)> {
    tree.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some((words.next()?.to_owned(), words.next()?.to_owned()))
        })
        .collect()
}

#[test]
fn the_host_crates_dependency_tree_is_small() {
    let output = cargo(&["tree", "--offline", "-e", "normal", "--prefix", "none"]);
    let tree = String::from_utf8(output.stdout).expect("utf-8");
    let crates = distinct_crates(&tree);
    assert!(crates.iter().any(|(name, _)| name == "host-crate"), "{tree}");
    assert!(crates.iter().any(|(name, _)| name == "daemon-state"), "{tree}");
    let names: BTreeSet<&str> = crates.iter().map(|(name, _)| name.as_str()).collect();
    println!(
        "host-crate dependency tree: {} crates (the host crate included; {} distinct names)",
        crates.len(),
        names.len()
    );
    assert!(
        crates.len() <= MAX_CRATES,
        "{} crates in the host's tree, more than {MAX_CRATES}:\n{}",
        crates.len(),
        crates.iter().map(|(name, version)| format!("{name} {version}\n")).collect::<String>()
    );
    for left_out in ["clap", "tracing-subscriber", "tempfile"] {
        assert!(!names.contains(left_out), "{left_out} is only for the command line: {tree}");
    }
}

#[test]
fn the_host_crate_runs_a_night_and_round_trips_through_serde_json() {
    let output = cargo(&["run", "--offline", "--quiet"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.lines().any(|line| line == "ok"), "stdout: {stdout}");
}
