//! What the command line prints on stderr besides its final error: the library's warnings and
//! errors, a line each.
//!
//! Owns the default level (WARN: every warning and error is printed, `RUST_LOG` refines it) and the
//! shape of a line, `daemon-state: warning: PATH: message (field=value, ...)`, with control
//! characters escaped. It must not decide what is worth saying: the library's events do.

use std::fmt;
use std::io;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::render::printable;

/// Sends the library's events to stderr: WARN and above unless `RUST_LOG` says otherwise (an
/// invalid directive in it is ignored). Does nothing when a subscriber is already set.
pub fn init() {
    let filter =
        EnvFilter::builder().with_default_directive(LevelFilter::WARN.into()).from_env_lossy();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .event_format(OneLine)
        .try_init();
}

/// The word a level is printed as.
fn level_word(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// `daemon-state: LEVEL: [PATH: ]MESSAGE[ (k=v, ...)]`: the `path` (or `dir`) field leads, as in
/// the command line's other lines.
struct OneLine;

impl<S, N> FormatEvent<S, N> for OneLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line = format!("daemon-state: {}: ", level_word(*event.metadata().level()));
        if let Some(path) = &fields.path {
            line.push_str(path);
            line.push_str(": ");
        }
        line.push_str(&fields.message);
        if !fields.rest.is_empty() {
            line.push_str(" (");
            line.push_str(&fields.rest.join(", "));
            line.push(')');
        }
        writeln!(writer, "{}", printable(&line))
    }
}

/// An event's fields: the message, the path it concerns, the others as `name=value`.
#[derive(Default)]
struct Fields {
    message: String,
    path: Option<String>,
    rest: Vec<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }
}

impl Fields {
    fn record(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = value,
            "path" | "dir" if self.path.is_none() => self.path = Some(value),
            name => self.rest.push(format!("{name}={value}")),
        }
    }
}
