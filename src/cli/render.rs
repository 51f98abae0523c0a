//! Human-readable output: short, aligned `label  value` lines.
//!
//! Owns how the status document, event replies, digests and check findings read for people. It
//! must not build the documents it shows (the engine does) nor decide anything.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::Value;

use crate::check::Report;
use crate::doc::Doc;

/// `text` with its control characters (newlines, terminal escapes, ...) escaped as Rust writes
/// them (`\n`, `\u{1b}`), so that what a user or a file put in it cannot move the cursor, recolour
/// the terminal or forge a line.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_debug());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// Lines of `label  value`, labels padded so the values line up.
#[derive(Debug, Default)]
pub struct Lines(Vec<(String, String)>);

impl Lines {
    /// Adds one line.
    pub fn add(&mut self, label: &str, value: impl Into<String>) {
        self.0.push((label.to_owned(), value.into()));
    }

    /// The text, a line each, ending in a newline when not empty. Control characters in labels
    /// and values are escaped: a line is always one line.
    pub fn finish(self) -> String {
        let lines: Vec<(String, String)> = self
            .0
            .iter()
            .map(|(label, value)| (printable(label).into_owned(), printable(value).into_owned()))
            .collect();
        let width = lines.iter().map(|(label, _)| label.chars().count()).max().unwrap_or(0);
        let mut text = String::new();
        for (label, value) in lines {
            let _ = writeln!(text, "{label:<width$}  {value}");
        }
        text
    }
}

/// A JSON value as a short piece of text: `-` for null, strings bare, `k=v` for objects.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(value_text).collect::<Vec<_>>().join(", "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::Object(_) | Value::Array(_) => format!("{k}={v}"),
                _ => format!("{k}={}", value_text(v)),
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// `[start, duration]` in 30-minute buckets as `22:00 for 8 h`.
fn window_text(window: &Value) -> String {
    let (Some(start), Some(duration)) =
        (window.get(0).and_then(Value::as_u64), window.get(1).and_then(Value::as_u64))
    else {
        return value_text(window);
    };
    let minutes = duration * 30;
    let span =
        if minutes % 60 == 0 { format!("{} h", minutes / 60) } else { format!("{minutes} min") };
    format!("{:02}:{:02} for {span} (local)", start / 2, start % 2 * 30)
}

/// The status document, a line per field (the first names the file read), without its `ok`.
pub fn status(status: &Doc) -> String {
    let mut lines = Lines::default();
    for (key, value) in status.members().filter(|(key, _)| *key != "ok") {
        let value = &value;
        let text = match key {
            "quiet_window" if !value.is_null() => window_text(value),
            "pending_sessions" => {
                let count = value.get("count").map(value_text).unwrap_or_default();
                match value.get("ids").map(value_text) {
                    Some(ids) if !ids.is_empty() => format!("{count} ({ids})"),
                    _ => count,
                }
            }
            "requests" => {
                let pending: Vec<&str> = value
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .filter(|(_, v)| v.as_bool() == Some(true))
                            .map(|(k, _)| k.as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                if pending.is_empty() { "none pending".to_owned() } else { pending.join(", ") }
            }
            _ => value_text(value),
        };
        lines.add(&key.replace('_', " "), text);
    }
    lines.finish()
}

/// One effect as a short line: `run_rem_cycle 1 of 4 (last)`, `emit KIND PAYLOAD [severity]`.
fn effect_text(effect: &Value) -> String {
    let name = effect.get("effect").and_then(Value::as_str).unwrap_or("?");
    match name {
        "run_rem_cycle" => {
            let number = |key: &str| effect.get(key).map(value_text).unwrap_or_default();
            let last =
                if effect.get("is_last") == Some(&Value::Bool(true)) { " (last)" } else { "" };
            format!("run_rem_cycle {} of {}{last}", number("cycle"), number("of"))
        }
        "emit" => format!(
            "emit {} {} [{}]",
            effect.get("kind").map(value_text).unwrap_or_default(),
            effect.get("payload").map(Value::to_string).unwrap_or_default(),
            effect.get("severity").map(value_text).unwrap_or_default(),
        ),
        other => other.to_owned(),
    }
}

/// An event's reply document (accepted or rejected).
pub fn reply(reply: &Value) -> String {
    let mut lines = Lines::default();
    lines.add("state", reply.get("state").map(value_text).unwrap_or_default());
    if reply.get("ok") == Some(&Value::Bool(false)) {
        lines.add("rejected", reply.get("error").map(value_text).unwrap_or_default());
        return lines.finish();
    }
    for transition in reply.get("transitions").and_then(Value::as_array).into_iter().flatten() {
        let field = |key: &str| transition.get(key).map(value_text).unwrap_or_default();
        lines.add(
            "transition",
            format!("{} -> {}  {}  {}", field("from"), field("to"), field("reason"), field("at")),
        );
    }
    for effect in reply.get("effects").and_then(Value::as_array).into_iter().flatten() {
        lines.add("effect", effect_text(effect));
    }
    if let Some(first_turn) = reply.get("first_turn") {
        lines.add("first turn", value_text(first_turn));
        lines.add("digest", reply.get("digest").map(value_text).unwrap_or_default());
    }
    lines.finish()
}

/// A taken digest, a line per counter, or a word when there is none.
pub fn digest(digest: &Value) -> String {
    match digest.as_object() {
        Some(fields) => {
            let mut lines = Lines::default();
            for (key, value) in fields {
                lines.add(&key.replace('_', " "), value_text(value));
            }
            lines.finish()
        }
        None => "no digest (none pending, or one was shown less than 18 h ago)\n".to_owned(),
    }
}

/// The findings of `check`, a line each, then the tally.
pub fn findings(report: &Report) -> String {
    let mut lines = Lines::default();
    for finding in &report.findings {
        lines.add(
            finding.level.as_str(),
            format!("{}: {}", finding.path.display(), finding.message),
        );
    }
    let (errors, warnings) = (report.errors(), report.warnings());
    let verdict = if errors == 0 { "passed" } else { "failed" };
    lines.add("check", format!("{verdict}: {errors} error(s), {warnings} warning(s)"));
    lines.finish()
}
