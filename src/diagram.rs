//! Drawings of the lifecycle, made from the transition table and nothing else.
//!
//! Owns the Graphviz DOT and Mermaid texts of `table::TABLE`: states as nodes (WAKE marked as the
//! initial state), every row that moves as a labelled edge `event [guard] / actions (reason)`, and
//! the rows that stay put listed inside their state in table order (or once, in a note, when every
//! state has them). In DOT the night's main path (WAKE -> TRANSITIONING -> SLEEP <-> DREAMING ->
//! WAKE) is drawn bold and in line; the rare rows (recovery at boot, yields, shutdown) are drawn
//! thin and grey, the ones of a kind between the same two states merged into one edge with a
//! label line each. The output is a pure function of the table. It must not touch the disk or run Graphviz: the command
//! line writes the files and renders the SVG.

use std::fmt::Write as _;

use crate::event::Trigger;
use crate::table::{Row, StateName, TABLE, Target};

/// The state a fresh state file starts in.
const INITIAL: StateName = StateName::Wake;

/// The rows of a night that runs its course, as (from, event, to, reason): drawn prominently.
const NIGHT_PATH: [(StateName, Trigger, StateName, &str); 5] = [
    (StateName::Wake, Trigger::Tick, StateName::Transitioning, "why sleep is due"),
    (StateName::Transitioning, Trigger::LockAcquired, StateName::Sleep, "lock_acquired"),
    (StateName::Sleep, Trigger::Continue, StateName::Dreaming, "next_cycle"),
    (StateName::Dreaming, Trigger::RemCycleFinished, StateName::Sleep, "rem_cycle_finished"),
    (StateName::Sleep, Trigger::Continue, StateName::Wake, "cycles_done"),
];

/// Whether a moving row is on the night's main path.
fn on_night_path(row: &Row, to: StateName) -> bool {
    NIGHT_PATH.iter().any(|&(from, trigger, target, reason)| {
        row.from == from && row.trigger == trigger && to == target && row.reason.label() == reason
    })
}

/// How an edge is drawn, which is also what keeps rare rows apart when they are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A row of the night's main path: one bold edge each.
    Night,
    /// A host event off the main path (a yield, shutdown): thin and grey.
    Host,
    /// The engine's own step at a cycle boundary off the main path: thin, grey and dashed.
    Engine,
    /// Crash recovery at boot: thin, light grey and dotted.
    Recovery,
}

impl Kind {
    fn of(row: &Row, to: StateName) -> Self {
        if on_night_path(row, to) {
            Self::Night
        } else {
            match row.trigger {
                Trigger::Boot => Self::Recovery,
                Trigger::Continue => Self::Engine,
                _ => Self::Host,
            }
        }
    }

    /// The DOT attributes after the label.
    fn style(self) -> &'static str {
        match self {
            Self::Night => {
                ", penwidth=2.6, weight=8, color=\"#1f3a6e\", fontcolor=\"#1f3a6e\", fontsize=11"
            }
            Self::Host => ", penwidth=0.8, color=\"#9aa3b5\", fontcolor=\"#7a8294\", fontsize=8",
            Self::Engine => {
                ", style=dashed, penwidth=0.8, color=\"#9aa3b5\", fontcolor=\"#7a8294\", fontsize=8"
            }
            Self::Recovery => {
                ", style=dotted, penwidth=0.8, color=\"#b8bcc6\", fontcolor=\"#9a9ea8\", fontsize=8"
            }
        }
    }
}

/// One drawn DOT edge: the moving rows it labels, in table order.
struct Edge {
    from: StateName,
    to: StateName,
    kind: Kind,
    rows: Vec<&'static Row>,
}

/// The DOT edges: one per main-path row, one per (from, to, kind) for the others, in table order.
fn dot_edges() -> Vec<Edge> {
    let mut edges: Vec<Edge> = Vec::new();
    for (row, to) in moves() {
        let kind = Kind::of(row, to);
        let merged = edges
            .iter_mut()
            .find(|e| kind != Kind::Night && (e.from, e.to, e.kind) == (row.from, to, kind));
        match merged {
            Some(edge) => edge.rows.push(row),
            None => edges.push(Edge { from: row.from, to, kind, rows: vec![row] }),
        }
    }
    edges
}

#[cfg(any(test, feature = "testing"))]
/// How many edges the DOT graph draws between states (the entry arrow left out).
pub fn dot_edge_count() -> usize {
    dot_edges().len()
}

/// Whether a row that stays put appears, with the same event, guard, actions and target, in
/// every state.
fn in_every_state(row: &Row) -> bool {
    !row.moves()
        && StateName::ALL.iter().all(|&state| {
            TABLE.iter().any(|other| other.from == state && Row { from: state, ..*row } == *other)
        })
}

/// The rows every state shares, once each, in table order.
fn shared_rows() -> Vec<&'static Row> {
    TABLE.iter().filter(|row| row.from == INITIAL && in_every_state(row)).collect()
}

/// The rows of `state` that stay put and are not shared by every state.
fn own_stay_rows(state: StateName) -> Vec<&'static Row> {
    TABLE.iter().filter(|row| row.from == state && !row.moves() && !in_every_state(row)).collect()
}

/// The rows that move the machine, in table order, with their target.
fn moves() -> impl Iterator<Item = (&'static Row, StateName)> {
    TABLE.iter().filter_map(|row| match row.to {
        Target::Go(to) => Some((row, to)),
        Target::Stay | Target::Next | Target::As(_) => None,
    })
}

/// `event [guard]`, the guard left out when the row always applies.
fn trigger_text(row: &Row) -> String {
    match row.guard.label() {
        "" => row.trigger.as_str().to_owned(),
        guard => format!("{} [{guard}]", row.trigger.as_str()),
    }
}

/// The actions joined by commas, then the reason in parentheses and, for a row that does not end
/// the event, what follows; empty when the row does nothing but move.
fn actions_text(row: &Row) -> String {
    let mut text = row.actions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let mut add = |part: String| {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&part);
    };
    match row.reason.label() {
        "" => {}
        reason => add(format!("({reason})")),
    }
    match row.to {
        Target::Next => add("(then on)".to_owned()),
        Target::As(trigger) => add(format!("(then as {trigger})")),
        Target::Stay | Target::Go(_) => {}
    }
    text
}

/// `event [guard] / actions` on one line.
fn row_text(row: &Row) -> String {
    match actions_text(row).as_str() {
        "" => trigger_text(row),
        actions => format!("{} / {actions}", trigger_text(row)),
    }
}

/// Escapes text for a Graphviz HTML-like label.
fn html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A Graphviz HTML-like table: a bold title over left-aligned lines of rows, one tag a line.
fn dot_table(title: &str, rows: &[&Row]) -> String {
    let mut label =
        String::from("<\n        <TABLE BORDER=\"0\" CELLBORDER=\"0\" CELLSPACING=\"0\">");
    let _ = write!(label, "\n        <TR><TD><B>{}</B></TD></TR>", html(title));
    for row in rows {
        let _ = write!(
            label,
            "\n        <TR><TD ALIGN=\"LEFT\"><FONT POINT-SIZE=\"10\">{}</FONT></TD></TR>",
            html(&row_text(row))
        );
    }
    label.push_str("\n        </TABLE>>");
    label
}

/// An edge label: a main-path row's event and guard in bold over its actions; for a merged
/// edge, one line per row, left-aligned.
fn dot_edge_label(edge: &Edge) -> String {
    if let (Kind::Night, [row]) = (edge.kind, edge.rows.as_slice()) {
        let mut label = format!("<B>{}</B>", html(&trigger_text(row)));
        let actions = actions_text(row);
        if !actions.is_empty() {
            let _ = write!(label, "<BR/>/ {}", html(&actions));
        }
        return format!("<{label}>");
    }
    let lines: Vec<String> = edge.rows.iter().map(|row| html(&row_text(row))).collect();
    format!("<{}<BR ALIGN=\"LEFT\"/>>", lines.join("<BR ALIGN=\"LEFT\"/>"))
}

/// The lifecycle as a Graphviz DOT graph.
pub fn to_dot() -> String {
    let mut dot = String::new();
    dot.push_str(
        "// The daemon-state lifecycle, drawn from the transition table by `daemon-state diagram`.\n",
    );
    dot.push_str("digraph lifecycle {\n");
    dot.push_str(
        "    graph [rankdir=LR, nodesep=0.3, ranksep=1.2, fontname=\"Helvetica\", fontsize=11,\n",
    );
    dot.push_str("        labelloc=b, label=\"event [guard] / actions (reason); (then on): the next rows are tried too. Bold: a night that runs its course. Thin grey: the rare rows (yields, shutdown); dashed: the engine's own step at a cycle boundary; dotted: crash recovery at boot.\"];\n");
    dot.push_str("    node [shape=box, style=\"rounded,filled\", fillcolor=\"#f4f6fb\", color=\"#4a5a7a\", fontname=\"Helvetica\"];\n");
    dot.push_str("    edge [fontname=\"Helvetica\", fontsize=10, color=\"#4a5a7a\"];\n\n");
    dot.push_str("    start [shape=point, width=0.15, label=\"\"];\n");
    for state in StateName::ALL {
        let label = dot_table(state.as_str(), &own_stay_rows(state));
        let _ = writeln!(dot, "    {} [label={label}];", state.as_str());
    }
    let label = dot_table("in every state (no move)", &shared_rows());
    let _ = writeln!(
        dot,
        "    every_state [shape=note, style=filled, fillcolor=\"#fffbe6\", color=\"#b8a55a\", label={label}];"
    );
    dot.push('\n');
    let _ = writeln!(dot, "    start -> {};", INITIAL.as_str());
    for edge in dot_edges() {
        let _ = writeln!(
            dot,
            "    {} -> {} [label={}{}];",
            edge.from.as_str(),
            edge.to.as_str(),
            dot_edge_label(&edge),
            edge.kind.style()
        );
    }
    dot.push_str("}\n");
    dot
}

/// The lifecycle as a Mermaid `stateDiagram-v2`.
pub fn to_mermaid() -> String {
    let mut text = String::new();
    text.push_str("stateDiagram-v2\n");
    text.push_str("    %% The daemon-state lifecycle, drawn from the transition table by `daemon-state diagram`.\n");
    let _ = writeln!(text, "    [*] --> {}", INITIAL.as_str());
    for (row, to) in moves() {
        let _ = writeln!(text, "    {} --> {} : {}", row.from.as_str(), to.as_str(), row_text(row));
    }
    for state in StateName::ALL {
        let rows = own_stay_rows(state);
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(text, "    note right of {}", state.as_str());
        for row in rows {
            let _ = writeln!(text, "        {}", row_text(row));
        }
        text.push_str("    end note\n");
    }
    let _ = writeln!(text, "    note left of {}", INITIAL.as_str());
    text.push_str("        in every state (no move):\n");
    for row in shared_rows() {
        let _ = writeln!(text, "        {}", row_text(row));
    }
    text.push_str("    end note\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_moving_row_is_on_exactly_one_dot_edge() {
        let dot = to_dot();
        let lines = dot.lines().filter(|line| line.contains(" -> ") && !line.contains("start ->"));
        assert_eq!(lines.count(), dot_edge_count());
        let edges = dot_edges();
        for (row, to) in moves() {
            let on: Vec<&Edge> = edges
                .iter()
                .filter(|edge| edge.rows.iter().any(|r| std::ptr::eq(*r, row)))
                .collect();
            assert_eq!(on.len(), 1, "{row:?}");
            let (edge, label) = (on[0], dot_edge_label(on[0]));
            assert_eq!((edge.from, edge.to), (row.from, to), "{row:?}");
            assert!(label.contains(&html(&trigger_text(row))), "{row:?}: {label}");
            assert!(label.contains(&html(&actions_text(row))), "{row:?}: {label}");
            assert!(dot.contains(&label), "{row:?}: {label}");
        }
    }

    #[test]
    fn the_night_path_is_five_rows_drawn_bold() {
        for (from, trigger, to, reason) in NIGHT_PATH {
            let rows = moves().filter(|&(row, target)| {
                row.from == from
                    && row.trigger == trigger
                    && target == to
                    && row.reason.label() == reason
            });
            assert_eq!(rows.count(), 1, "{from} {trigger:?} {to} {reason}");
        }
        let bold = to_dot().lines().filter(|line| line.contains("penwidth=2.6")).count();
        assert_eq!(bold, NIGHT_PATH.len());
    }

    #[test]
    fn every_row_is_drawn_somewhere() {
        let shared = shared_rows();
        for row in &TABLE {
            let drawn = row.moves()
                || own_stay_rows(row.from).contains(&row)
                || shared.iter().any(|s| Row { from: row.from, ..**s } == *row);
            assert!(drawn, "{row:?}");
        }
    }

    #[test]
    fn labels_read_event_guard_actions() {
        let row = TABLE
            .iter()
            .find(|row| row.to == Target::Go(StateName::Transitioning))
            .expect("WAKE falls asleep");
        assert_eq!(
            row_text(row),
            "tick [request or quiet window or idle 2 h, not backing off] / discard stale force-wake, clear skip reason, acquire lock (why sleep is due)"
        );
    }
}
