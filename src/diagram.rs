//! Drawings of the lifecycle, made from the transition table and nothing else.
//!
//! Owns the Graphviz DOT and Mermaid texts of `table::TABLE`: states as nodes (WAKE marked as the
//! initial state), every row that moves as a labelled edge `event [guard] / actions (reason)`, and
//! the rows that stay put listed inside their state in table order (or once, in a note, when every
//! state has them). The
//! output is a pure function of the table. It must not touch the disk or run Graphviz: the command
//! line writes the files and renders the SVG.

use std::fmt::Write as _;

use crate::event::Trigger;
use crate::table::{Row, StateName, TABLE, Target};

/// The state a fresh state file starts in.
const INITIAL: StateName = StateName::Wake;

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

/// An edge label: the event and guard, then the actions on a line of their own.
fn dot_edge_label(row: &Row) -> String {
    let mut label = html(&trigger_text(row));
    let actions = actions_text(row);
    if !actions.is_empty() {
        let _ = write!(label, "<BR/>/ {}", html(&actions));
    }
    format!("<{label}>")
}

/// How an edge is drawn: the engine's own step dashed, crash recovery at boot in grey.
fn dot_edge_style(row: &Row) -> &'static str {
    match row.trigger {
        Trigger::Continue => ", style=dashed",
        Trigger::Boot => ", color=\"#9a9a9a\", fontcolor=\"#6a6a6a\"",
        _ => "",
    }
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
    dot.push_str("        labelloc=b, label=\"event [guard] / actions (reason); (then on): the next rows are tried too. Dashed: the engine's own step at a cycle boundary. Grey: crash recovery at boot.\"];\n");
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
    for (row, to) in moves() {
        let _ = writeln!(
            dot,
            "    {} -> {} [label={}{}];",
            row.from.as_str(),
            to.as_str(),
            dot_edge_label(row),
            dot_edge_style(row)
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
    fn every_moving_row_is_one_dot_edge() {
        let dot = to_dot();
        let edges = dot.lines().filter(|line| line.contains(" -> ") && !line.contains("start ->"));
        assert_eq!(edges.count(), moves().count());
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
