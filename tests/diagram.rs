//! The committed drawings in `diagrams/` are what the code draws from the transition table.
//!
//! Regenerate them with `UPDATE_EXPECT=1 cargo test --test diagram` (DOT and Mermaid) and
//! `daemon-state diagram` (all three, the SVG through Graphviz).

use std::path::PathBuf;

use daemon_state::diagram;
use daemon_state::table::{StateName, TABLE};

fn committed(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("diagrams").join(name)
}

/// Compares a committed file with what the code draws, or rewrites it under `UPDATE_EXPECT=1`.
#[track_caller]
fn check(name: &str, drawn: &str) {
    let path = committed(name);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, drawn).expect("write the golden file");
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == drawn,
        "{} differs from what the code draws; regenerate with UPDATE_EXPECT=1 cargo test --test diagram",
        path.display()
    );
}

#[test]
fn dot_is_up_to_date() {
    check("lifecycle.dot", &diagram::to_dot());
}

#[test]
fn mermaid_is_up_to_date() {
    check("lifecycle.mmd", &diagram::to_mermaid());
}

/// The SVG depends on the Graphviz version, so it is not compared byte for byte; it must show
/// every state and every edge of the DOT graph (plus the entry arrow), and name every moving
/// row's event.
#[test]
fn svg_draws_every_state_and_edge() {
    let svg = std::fs::read_to_string(committed("lifecycle.svg")).expect("diagrams/lifecycle.svg");
    for state in StateName::ALL {
        assert!(svg.contains(&format!("<title>{}</title>", state.as_str())), "{state} in the SVG");
    }
    let edges = diagram::dot_edge_count();
    assert_eq!(svg.matches("class=\"edge\"").count(), edges + 1, "edges in the SVG");
    for row in TABLE.iter().filter(|row| row.moves()) {
        assert!(svg.contains(row.trigger.as_str()), "{row:?} in the SVG");
    }
}

#[test]
fn every_row_appears_in_both_drawings() {
    let (dot, mermaid) = (diagram::to_dot(), diagram::to_mermaid());
    for row in &TABLE {
        let trigger = row.trigger.as_str();
        assert!(dot.contains(trigger) && mermaid.contains(trigger), "{row:?}");
        for action in row.actions {
            assert!(dot.contains(action.label()) && mermaid.contains(action.label()), "{row:?}");
        }
        let guard = row.guard.label();
        assert!(dot.contains(guard) && mermaid.contains(guard), "{row:?}");
        let reason = row.reason.label();
        assert!(dot.contains(reason) && mermaid.contains(reason), "{row:?}");
    }
}

#[test]
fn diagram_out_replaces_a_symlink_instead_of_following_it() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let target = dir.path().join("precious.txt");
    std::fs::write(&target, "keep me").unwrap();
    symlink(&target, out.join("lifecycle.dot")).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_daemon-state"))
        .args(["diagram", "--format", "dot", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me", "the target is untouched");
    let written = out.join("lifecycle.dot");
    let meta = std::fs::symlink_metadata(&written).unwrap();
    assert!(meta.file_type().is_file(), "the link was replaced by a file");
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    assert_eq!(std::fs::read_to_string(&written).unwrap(), diagram::to_dot());
    let names: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "no temp file left: {names:?}");
}
