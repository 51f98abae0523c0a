//! REM cycles as child processes: `--rem-command` started with the cycle in its environment, its
//! standard output read as the cycle's result, killed (with everything it started) when it runs
//! out of time or the host stops.
//!
//! Owns the child, its process group, its time limit and reading its result. It must not feed the
//! engine: the result goes back to the host through the callback it gives.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;

use crate::digest::RemResult;

/// How often a running cycle checks whether its child exited.
const POLL: Duration = Duration::from_millis(20);
/// How long the result is waited for once the child exited (a process it left behind may hold
/// its standard output open).
const OUTPUT_GRACE: Duration = Duration::from_secs(1);
/// The most of the child's standard output that is read as its result.
const MAX_OUTPUT: u64 = 1 << 20;

/// The REM command: a program and its arguments, run without a shell.
#[derive(Debug, Clone)]
pub struct RemCommand {
    /// The program, found on `PATH` when it has no slash.
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// How long a cycle may run before it is killed and reported as timed out.
    pub timeout: Duration,
}

impl RemCommand {
    /// `command` split at whitespace into the program and its arguments (no quoting, no shell);
    /// `None` when it has no word.
    pub fn parse(command: &str, timeout: Duration) -> Option<Self> {
        let mut words = command.split_whitespace().map(OsString::from);
        let program = words.next()?;
        Some(Self { program, args: words.collect(), timeout })
    }
}

/// Which cycle to run.
#[derive(Debug, Clone, Copy)]
pub struct Cycle {
    /// From 1.
    pub cycle: u32,
    /// How many the night plans.
    pub of: u32,
    /// Whether it is the night's last.
    pub is_last: bool,
}

/// How a cycle ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// The child exited 0: its result (the defaults when it printed none).
    Done(RemResult),
    /// It exited otherwise, could not start, or ran out of time: a timed-out cycle.
    Failed(String),
    /// The host stopped it: a timed-out cycle.
    Stopped,
}

impl Ended {
    /// The result to report to the engine.
    pub fn result(&self) -> RemResult {
        match self {
            Self::Done(result) => result.clone(),
            Self::Failed(_) | Self::Stopped => RemResult { timed_out: true, ..RemResult::default() },
        }
    }
}

/// A running cycle. Dropping it (or [`Running::stop`]) kills the child.
#[derive(Debug)]
pub struct Running {
    stop: mpsc::Sender<()>,
}

impl Running {
    /// Kills the child and everything it started; the callback still reports the end.
    pub fn stop(&self) {
        let _ = self.stop.send(());
    }
}

/// Starts `cycle` of `command` on a thread of its own; `done` is called once, from that thread,
/// when it ended.
pub fn start(
    command: &RemCommand,
    cycle: Cycle,
    done: impl FnOnce(Ended) + Send + 'static,
) -> std::io::Result<Running> {
    let (stop, stopped) = mpsc::channel();
    let command = command.clone();
    std::thread::Builder::new()
        .name("run-rem-cycle".into())
        .spawn(move || done(run(&command, cycle, &stopped)))?;
    Ok(Running { stop })
}

fn run(command: &RemCommand, cycle: Cycle, stopped: &mpsc::Receiver<()>) -> Ended {
    let spawned = Command::new(&command.program)
        .args(&command.args)
        .env("DAEMON_STATE_CYCLE", cycle.cycle.to_string())
        .env("DAEMON_STATE_CYCLES", cycle.of.to_string())
        .env("DAEMON_STATE_IS_LAST", if cycle.is_last { "true" } else { "false" })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // A group of its own: a stop or a timeout kills what it started too, and a terminal's
        // Ctrl-C reaches the host only.
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            return Ended::Failed(format!(
                "cannot start {}: {error}",
                command.program.to_string_lossy()
            ));
        }
    };
    let output = read_output(&mut child);
    let deadline = Instant::now() + command.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(error) => {
                kill(&mut child);
                return Ended::Failed(format!("cannot wait for the REM command: {error}"));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            kill(&mut child);
            return Ended::Failed(format!(
                "the REM command ran past the cycle timeout ({} s) and was killed",
                command.timeout.as_secs_f64()
            ));
        }
        match stopped.recv_timeout(left.min(POLL)) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                kill(&mut child);
                return Ended::Stopped;
            }
        }
    };
    finish(status, output.recv_timeout(OUTPUT_GRACE).ok())
}

/// Reads the child's standard output on a thread of its own, up to [`MAX_OUTPUT`] bytes and
/// drained past that, so that the child never blocks on a full pipe.
fn read_output(child: &mut Child) -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        let _ = std::thread::Builder::new().name("run-rem-output".into()).spawn(move || {
            let mut bytes = Vec::new();
            let mut limited = stdout.take(MAX_OUTPUT);
            let _ = limited.read_to_end(&mut bytes);
            let _ = std::io::copy(&mut limited.into_inner(), &mut std::io::sink());
            let _ = sender.send(bytes);
        });
    }
    receiver
}

/// Kills the child's process group (the child and whatever it started), then reaps the child.
/// The group is signalled before the child is reaped, so its id cannot have been reused.
fn kill(child: &mut Child) {
    if let Ok(id) = i32::try_from(child.id()) {
        let _ = killpg(Pid::from_raw(id), Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn finish(status: ExitStatus, output: Option<Vec<u8>>) -> Ended {
    if !status.success() {
        return Ended::Failed(format!("the REM command failed ({status})"));
    }
    match output {
        Some(bytes) => Ended::Done(parse_result(&bytes)),
        None => {
            tracing::warn!("the REM command's output stayed open after it exited; no result read");
            Ended::Done(RemResult::default())
        }
    }
}

/// The cycle's result from the child's standard output: when it is one JSON object, its
/// `summaries_created`, `schema_candidates`, `claude_call_used`, `main_insight_text` and
/// `timed_out` (each optional; other members ignored); otherwise the defaults, with a warning
/// unless the output was empty.
pub fn parse_result(output: &[u8]) -> RemResult {
    let text = String::from_utf8_lossy(output);
    let text = text.trim();
    if text.is_empty() {
        return RemResult::default();
    }
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) else {
        tracing::warn!("the REM command's output is not one JSON object; its result is ignored");
        return RemResult::default();
    };
    let count = |key: &str| object.get(key).and_then(Value::as_u64).unwrap_or(0);
    let flag = |key: &str| object.get(key).and_then(Value::as_bool).unwrap_or(false);
    RemResult {
        summaries_created: count("summaries_created"),
        schema_candidates: count("schema_candidates"),
        claude_call_used: flag("claude_call_used"),
        main_insight_text: object.get("main_insight_text").and_then(Value::as_str).map(Into::into),
        timed_out: flag("timed_out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_object_is_the_result_and_anything_else_the_defaults() {
        let result = parse_result(
            b" {\"summaries_created\": 3, \"schema_candidates\": 1, \"claude_call_used\": true, \
              \"main_insight_text\": \"links\", \"cycle\": 2}\n",
        );
        assert_eq!(result.summaries_created, 3);
        assert_eq!(result.schema_candidates, 1);
        assert!(result.claude_call_used);
        assert_eq!(result.main_insight_text.as_deref(), Some("links"));
        assert!(!result.timed_out);
        assert_eq!(parse_result(b""), RemResult::default());
        assert_eq!(parse_result(b"done\n"), RemResult::default());
        assert_eq!(parse_result(b"[1]"), RemResult::default());
    }

    #[test]
    fn the_command_is_split_at_whitespace() {
        let command = RemCommand::parse("  /bin/echo a  b ", Duration::from_secs(1)).unwrap();
        assert_eq!(command.program, "/bin/echo");
        assert_eq!(command.args, ["a", "b"]);
        assert!(RemCommand::parse(" ", Duration::from_secs(1)).is_none());
    }
}
