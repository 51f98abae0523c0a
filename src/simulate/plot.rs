//! The hypnogram: a run drawn as plain SVG, one row per simulated day, the state over 24 hours as
//! stepped coloured bands, with sessions, recalls, yields, faults and requests marked on it.
//!
//! Owns the drawing and nothing else: it reads a [`Trace`] and returns the SVG text. It must not
//! run or change anything, and it needs no plotting library.

use std::fmt::Write as _;

use chrono::{Datelike, Duration};

use crate::table::StateName;
use crate::timestamp::Timestamp;

use super::trace::{MarkKind, Span, Trace, clip};

mod labels;

use labels::{Group, groups, place_labels};

const WIDTH: f64 = 1320.0;
const LEFT: f64 = 118.0;
const RIGHT: f64 = 62.0;
const PLOT_WIDTH: f64 = WIDTH - LEFT - RIGHT;
const HEADER: f64 = 104.0;
const FOOTER: f64 = 34.0;
/// The height of one day's row.
const ROW: f64 = 104.0;
/// Offsets within a row.
const SESSION_Y: f64 = 8.0;
const SESSION_H: f64 = 8.0;
const BAND_Y: f64 = 22.0;
const LANE_H: f64 = 10.0;
const MARK_Y: f64 = 66.0;
const LABEL_Y: f64 = 83.0;
const LABEL_LINE: f64 = 10.0;
const LABEL_LINES: usize = 3;
const FONT: &str = "DejaVu Sans, Helvetica, Arial, sans-serif";

/// The colour of each state's band.
pub fn colour(state: StateName) -> &'static str {
    match state {
        StateName::Wake => "#fcd34d",
        StateName::Transitioning => "#fb923c",
        StateName::Sleep => "#38bdf8",
        StateName::Dreaming => "#4f46e5",
    }
}

fn lane(state: StateName) -> f64 {
    match state {
        StateName::Wake => 0.0,
        StateName::Transitioning => 1.0,
        StateName::Sleep => 2.0,
        StateName::Dreaming => 3.0,
    }
}

const YIELD: &str = "#dc2626";
const FAULT: &str = "#111827";
const REQUEST: &str = "#0f766e";
const SESSION: &str = "#94a3b8";
const RECALL: &str = "#334155";
const DIGEST: &str = "#16a34a";

/// Escapes text for SVG content and attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The horizontal position of a moment within its day's row.
fn x_of(at: Timestamp, day: Span) -> f64 {
    let secs = (at - day.from).num_seconds() as f64;
    LEFT + PLOT_WIDTH * (secs / 86_400.0).clamp(0.0, 1.0)
}

/// How wide a label is drawn at 10 px, generously (DejaVu Sans averages under 6.2 px a character).
fn label_width(text: &str) -> f64 {
    text.chars().count() as f64 * 6.4 + 2.0
}

fn duration_text(d: Duration) -> String {
    let minutes = d.num_minutes();
    format!("{}h{:02}", minutes / 60, minutes % 60)
}

/// The hypnogram of a run as an SVG document, titled `title`.
pub fn svg(trace: &Trace, title: &str) -> String {
    let height = HEADER + ROW * f64::from(trace.days) + FOOTER;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="{FONT}">"#
    );
    defs(&mut s);
    let _ = writeln!(s, r##"<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>"##);
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="30" font-size="18" font-weight="bold" fill="#0f172a">{}</text>"##,
        escape(title)
    );
    legend(&mut s);
    axis(&mut s, HEADER - 8.0, trace.days);
    for day in 0..trace.days {
        day_row(&mut s, trace, day);
    }
    axis(&mut s, HEADER + ROW * f64::from(trace.days) + 16.0, 0);
    s.push_str("</svg>\n");
    s
}

fn defs(s: &mut String) {
    s.push_str(concat!(
        r#"<defs>"#,
        r##"<pattern id="down" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">"##,
        r##"<rect width="6" height="6" fill="#f3f4f6"/><line x1="0" y1="0" x2="0" y2="6" stroke="#6b7280" stroke-width="2"/></pattern>"##,
        r##"<pattern id="paused" width="5" height="5" patternUnits="userSpaceOnUse" patternTransform="rotate(-45)">"##,
        r##"<line x1="0" y1="0" x2="0" y2="5" stroke="#94a3b8" stroke-width="1.2"/></pattern>"##,
        "</defs>\n"
    ));
}

/// What the legend explains, one item each.
#[derive(Clone, Copy)]
enum Key {
    State(StateName),
    Session,
    Recall,
    Digest,
    Mark(MarkKind),
    Down,
    Paused,
}

fn key_symbol(key: Key, x: f64, y: f64) -> String {
    match key {
        Key::State(state) => format!(
            r##"<rect x="{x}" y="{}" width="12" height="12" rx="2" fill="{}"/>"##,
            y - 6.0,
            colour(state)
        ),
        Key::Session => {
            format!(
                r##"<rect x="{x}" y="{}" width="12" height="6" rx="2" fill="{SESSION}"/>"##,
                y - 3.0
            )
        }
        Key::Recall => format!(
            r##"<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="{RECALL}" stroke-width="1.5"/>"##,
            x + 6.0,
            y - 6.0,
            y + 6.0
        ),
        Key::Digest => format!(r##"<circle cx="{}" cy="{y}" r="3.5" fill="{DIGEST}"/>"##, x + 6.0),
        Key::Mark(kind) => marker(kind, x + 6.0, y - 4.0),
        Key::Down => {
            format!(r##"<rect x="{x}" y="{}" width="12" height="12" fill="url(#down)"/>"##, y - 6.0)
        }
        Key::Paused => format!(
            r##"<rect x="{x}" y="{}" width="12" height="12" fill="url(#paused)" stroke="#94a3b8" stroke-width="0.8"/>"##,
            y - 6.0
        ),
    }
}

fn legend(s: &mut String) {
    let y = 56.0;
    let keys = [
        (Key::State(StateName::Wake), "WAKE"),
        (Key::State(StateName::Transitioning), "TRANSITIONING"),
        (Key::State(StateName::Sleep), "SLEEP"),
        (Key::State(StateName::Dreaming), "DREAMING"),
        (Key::Session, "session"),
        (Key::Recall, "recall"),
        (Key::Digest, "digest delivered"),
        (Key::Mark(MarkKind::Yield), "yield (why it woke)"),
        (Key::Mark(MarkKind::Fault), "host fault"),
        (Key::Mark(MarkKind::Request), "request"),
        (Key::Down, "daemon down"),
        (Key::Paused, "paused"),
    ];
    let mut x = LEFT;
    for (key, text) in keys {
        let _ = writeln!(
            s,
            r##"<g class="legend">{}<text x="{}" y="{}" font-size="11" fill="#334155">{}</text></g>"##,
            key_symbol(key, x, y),
            x + 16.0,
            y + 4.0,
            escape(text)
        );
        x += 16.0 + label_width(text) * 1.08 + 14.0;
    }
}

/// A mark's symbol, its top at `top`, centred on `x`.
fn marker(kind: MarkKind, x: f64, top: f64) -> String {
    match kind {
        MarkKind::Yield => format!(r##"<path d="M{x} {top} l4.5 8 h-9 z" fill="{YIELD}"/>"##),
        MarkKind::Fault => format!(
            r##"<path d="M{} {top} l7 8 M{} {top} l-7 8" stroke="{FAULT}" stroke-width="2" stroke-linecap="round"/>"##,
            x - 3.5,
            x + 3.5
        ),
        MarkKind::Request => {
            format!(r##"<path d="M{x} {top} l4 4 l-4 4 l-4 -4 z" fill="{REQUEST}"/>"##)
        }
    }
}

fn axis(s: &mut String, y: f64, days: u32) {
    for hour in (0..=24).step_by(3) {
        let x = LEFT + PLOT_WIDTH * f64::from(hour) / 24.0;
        let _ = writeln!(
            s,
            r##"<text x="{x:.1}" y="{y}" font-size="11" text-anchor="middle" fill="#64748b">{hour:02}:00</text>"##
        );
        if days > 0 {
            let (top, bottom) = (HEADER, HEADER + ROW * f64::from(days));
            let stroke = if hour % 6 == 0 { "#cbd5e1" } else { "#e2e8f0" };
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="{stroke}" stroke-width="1"/>"##
            );
        }
    }
}

fn day_row(s: &mut String, trace: &Trace, day: u32) {
    let span = trace.day(day);
    let y0 = HEADER + ROW * f64::from(day);
    let band_h = LANE_H * 4.0;
    let _ = writeln!(s, r#"<g class="day" data-day="{}">"#, day + 1);
    if day % 2 == 1 {
        let _ = writeln!(
            s,
            r##"<rect x="0" y="{y0}" width="{WIDTH}" height="{ROW}" fill="#f8fafc" fill-opacity="0.7"/>"##
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="12" y="{}" font-size="13" font-weight="bold" fill="#0f172a">{} {}</text>"##,
        y0 + BAND_Y + 14.0,
        span.from.weekday(),
        span.from.format("%-d %b")
    );
    let nights = trace.nights(span);
    let _ = writeln!(
        s,
        r##"<text x="12" y="{}" font-size="11" fill="#64748b">{nights} night{}</text>"##,
        y0 + BAND_Y + 30.0,
        if nights == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        s,
        r##"<text x="12" y="{}" font-size="11" fill="#64748b">asleep {}</text>"##,
        y0 + BAND_Y + 44.0,
        duration_text(trace.asleep(span))
    );
    // The band's lanes, faint, with their names at the left edge of the plot.
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{}" width="{PLOT_WIDTH}" height="{band_h}" fill="#ffffff" stroke="#cbd5e1" stroke-width="0.8"/>"##,
        y0 + BAND_Y
    );
    for state in StateName::ALL {
        let y = y0 + BAND_Y + lane(state) * LANE_H;
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{y}" width="{PLOT_WIDTH}" height="{LANE_H}" fill="{}" fill-opacity="0.10"/>"##,
            colour(state)
        );
    }
    sessions(s, trace, span, y0);
    states(s, trace, span, y0);
    for stretch in clip(&trace.paused, span) {
        let (x1, x2) = (x_of(stretch.from, span), x_of(stretch.to, span));
        let _ = writeln!(
            s,
            r##"<rect x="{x1:.2}" y="{}" width="{:.2}" height="{band_h}" fill="url(#paused)" stroke="#94a3b8" stroke-width="0.8"/>"##,
            y0 + BAND_Y,
            (x2 - x1).max(1.0)
        );
    }
    for stretch in clip(&trace.down, span) {
        let (x1, x2) = (x_of(stretch.from, span), x_of(stretch.to, span));
        let _ = writeln!(
            s,
            r##"<rect x="{x1:.2}" y="{}" width="{:.2}" height="{band_h}" fill="url(#down)"/>"##,
            y0 + BAND_Y,
            (x2 - x1).max(2.0)
        );
    }
    marks(s, trace, span, y0);
    s.push_str("</g>\n");
}

fn sessions(s: &mut String, trace: &Trace, span: Span, y0: f64) {
    for session in clip(&trace.sessions, span) {
        let (x1, x2) = (x_of(session.from, span), x_of(session.to, span));
        let _ = writeln!(
            s,
            r##"<rect x="{x1:.2}" y="{}" width="{:.2}" height="{SESSION_H}" rx="3" fill="{SESSION}" fill-opacity="0.75"/>"##,
            y0 + SESSION_Y,
            (x2 - x1).max(2.0)
        );
    }
    for recall in trace.recalls.iter().filter(|r| span.from <= r.at && r.at < span.to) {
        let x = x_of(recall.at, span);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.2}" y1="{}" x2="{x:.2}" y2="{}" stroke="{RECALL}" stroke-width="1.2"/>"##,
            y0 + SESSION_Y - 3.0,
            y0 + SESSION_Y + SESSION_H + 3.0
        );
        if recall.digest {
            let _ = writeln!(
                s,
                r##"<circle cx="{x:.2}" cy="{}" r="3.5" fill="{DIGEST}" stroke="#ffffff" stroke-width="0.8"/>"##,
                y0 + SESSION_Y - 3.0
            );
        }
    }
}

fn states(s: &mut String, trace: &Trace, span: Span, y0: f64) {
    let pieces = trace.segments(span);
    let mut line = String::new();
    for &(from, to, state) in &pieces {
        let (x1, x2) = (x_of(from, span), x_of(to, span));
        let y = y0 + BAND_Y + lane(state) * LANE_H;
        // A state held for no time (SLEEP between two cycles) still shows as a thin sliver.
        let (x, w) = if x2 - x1 < 2.0 { ((x1 + x2) / 2.0 - 1.0, 2.0) } else { (x1, x2 - x1) };
        let _ = writeln!(
            s,
            r##"<rect x="{x:.2}" y="{y}" width="{w:.2}" height="{LANE_H}" fill="{}"><title>{} {}-{}</title></rect>"##,
            colour(state),
            state,
            from.format("%H:%M"),
            to.format("%H:%M")
        );
        let mid = y + LANE_H / 2.0;
        let _ = write!(line, "{x1:.2},{mid} {x2:.2},{mid} ");
    }
    let _ = writeln!(
        s,
        r##"<polyline points="{}" fill="none" stroke="#1e293b" stroke-width="1" stroke-linejoin="round"/>"##,
        line.trim_end()
    );
}

fn marks(s: &mut String, trace: &Trace, span: Span, y0: f64) {
    let mut marks: Vec<_> =
        trace.marks.iter().filter(|m| span.from <= m.at && m.at < span.to).collect();
    marks.sort_by_key(|m| m.at);
    for mark in &marks {
        let _ = writeln!(
            s,
            "<g><title>{}</title>{}</g>",
            escape(&mark.label),
            marker(mark.kind, x_of(mark.at, span), y0 + MARK_Y)
        );
    }
    let at: Vec<(f64, MarkKind, &str)> =
        marks.iter().map(|m| (x_of(m.at, span), m.kind, m.label.as_str())).collect();
    let groups = groups(&at);
    let texts: Vec<String> = groups.iter().map(Group::text).collect();
    let sizes: Vec<(f64, f64)> =
        groups.iter().zip(&texts).map(|(g, text)| (g.centre(), label_width(text))).collect();
    for ((group, text), placed) in groups.iter().zip(&texts).zip(place_labels(&sizes)) {
        let Some((line, left)) = placed else {
            continue;
        };
        let fill = match group.kind {
            MarkKind::Yield => YIELD,
            MarkKind::Fault => FAULT,
            MarkKind::Request => REQUEST,
        };
        let _ = writeln!(
            s,
            r##"<text class="mark-label" x="{:.2}" y="{}" font-size="10" text-anchor="middle" fill="{fill}">{}</text>"##,
            left + label_width(text) / 2.0,
            y0 + LABEL_Y + LABEL_LINE * line as f64,
            escape(text)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape(r#"a < b & "c" > d"#), "a &lt; b &amp; &quot;c&quot; &gt; d");
    }
}
