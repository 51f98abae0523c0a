//! Where the hypnogram's mark labels go: close marks of one kind and label told once, and each
//! label on the nearest free line under its marks, never over another.
//!
//! Owns the layout arithmetic only; it must not write SVG (the plot does).

use super::{LABEL_LINES, LEFT, PLOT_WIDTH, WIDTH};
use crate::simulate::trace::MarkKind;

/// The least space between two labels on one line.
const LABEL_GAP: f64 = 6.0;
/// Marks of one kind and label closer than this (in px) share one label, `label ×N`.
const GROUP_SPAN: f64 = 18.0;

/// Close marks of one kind and label, told by one label.
pub(super) struct Group<'a> {
    pub(super) kind: MarkKind,
    label: &'a str,
    xs: Vec<f64>,
}

impl Group<'_> {
    /// The label drawn: `label`, or `label ×N` for several marks.
    pub(super) fn text(&self) -> String {
        match self.xs.len() {
            1 => self.label.to_owned(),
            n => format!("{} ×{n}", self.label),
        }
    }

    /// Where the label is centred: the middle of its marks.
    pub(super) fn centre(&self) -> f64 {
        let (first, last) = (self.xs.first().copied(), self.xs.last().copied());
        (first.unwrap_or(LEFT) + last.unwrap_or(LEFT)) / 2.0
    }
}

/// The day's marks in time order, close marks of one kind and label grouped.
pub(super) fn groups<'a>(marks: &[(f64, MarkKind, &'a str)]) -> Vec<Group<'a>> {
    let mut groups: Vec<Group<'a>> = Vec::new();
    for &(x, kind, label) in marks {
        let joins = groups.last_mut().filter(|g| {
            g.kind == kind
                && g.label == label
                && g.xs.last().is_some_and(|last| x - last < GROUP_SPAN)
        });
        match joins {
            Some(group) => group.xs.push(x),
            None => groups.push(Group { kind, label, xs: vec![x] }),
        }
    }
    groups
}

/// Where each label goes, as (line, left edge), given (centre, width) in order: the line that
/// lets it sit closest to its centre without touching the labels before it; `None` when no line
/// has room before the right edge (the label is then left out, and its mark keeps it as a
/// tooltip), so that no two labels ever overlap.
pub(super) fn place_labels(labels: &[(f64, f64)]) -> Vec<Option<(usize, f64)>> {
    let mut free_from = [f64::MIN; LABEL_LINES];
    labels
        .iter()
        .map(|&(centre, width)| {
            let wanted = (centre - width / 2.0).clamp(LEFT, LEFT + PLOT_WIDTH - width);
            let placed = place_label(&free_from, wanted, width);
            if let Some((line, left)) = placed {
                free_from[line] = left + width + LABEL_GAP;
            }
            placed
        })
        .collect()
}

/// Where a label goes: on the line that lets it sit closest to where it is wanted without
/// overlapping the labels before it; `None` when every line is full up to the right edge.
fn place_label(free_from: &[f64; LABEL_LINES], wanted: f64, width: f64) -> Option<(usize, f64)> {
    let right_edge = WIDTH - 4.0 - width;
    (0..LABEL_LINES)
        .map(|line| (line, wanted.max(free_from[line])))
        .filter(|&(_, left)| left <= right_edge)
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(free_from: [f64; LABEL_LINES], wanted: f64, width: f64, placed: Option<(usize, f64)>) {
        assert_eq!(place_label(&free_from, wanted, width), placed);
    }

    #[test]
    fn labels_take_the_nearest_free_place() {
        let none = f64::MIN;
        // A free first line takes the label where it is wanted.
        check([none; LABEL_LINES], 300.0, 50.0, Some((0, 300.0)));
        // A busy first line sends it one line down, still where it is wanted.
        check([400.0, none, none], 300.0, 50.0, Some((1, 300.0)));
        // Every line busy: the one that frees up first, the label pushed right.
        check([400.0, 350.0, 380.0], 300.0, 50.0, Some((1, 350.0)));
        // Nothing fits before the right edge: no place, rather than on top of another label.
        check([WIDTH; LABEL_LINES], 300.0, 50.0, None);
    }

    #[test]
    fn crowded_labels_never_overlap() {
        // Forty labels of varied widths, 4 px apart, then a few near the right edge.
        let mut labels: Vec<(f64, f64)> =
            (0..40).map(|i| (600.0 + 4.0 * f64::from(i), 40.0 + f64::from(i % 7) * 9.0)).collect();
        labels.extend([(WIDTH - 70.0, 60.0), (WIDTH - 66.0, 80.0), (WIDTH - 10.0, 90.0)]);
        let placed = place_labels(&labels);
        let boxes: Vec<(usize, f64, f64)> = placed
            .iter()
            .zip(&labels)
            .filter_map(|(placed, &(_, width))| placed.map(|(line, left)| (line, left, width)))
            .collect();
        assert!(boxes.len() >= 12, "most still find a place: {boxes:?}");
        for (i, &(line, left, width)) in boxes.iter().enumerate() {
            assert!(left >= LEFT && left + width <= WIDTH - 4.0, "inside the plot: {left}");
            for &(other_line, other_left, other_width) in &boxes[..i] {
                let apart = left >= other_left + other_width || other_left >= left + width;
                assert!(other_line != line || apart, "overlap on line {line} at {left}");
            }
        }
    }

    #[test]
    fn close_marks_of_a_kind_share_one_label() {
        let marks = [
            (500.0, MarkKind::Yield, "lock denied"),
            (505.0, MarkKind::Yield, "lock denied"),
            (512.0, MarkKind::Yield, "lock denied"),
            (514.0, MarkKind::Fault, "restart"),
            (520.0, MarkKind::Yield, "lock denied"),
            (900.0, MarkKind::Yield, "lock denied"),
        ];
        let texts: Vec<String> = groups(&marks).iter().map(Group::text).collect();
        assert_eq!(texts, ["lock denied ×3", "restart", "lock denied", "lock denied"]);
    }
}
