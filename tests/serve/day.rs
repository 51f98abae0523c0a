//! Issue 11, acceptance 2: a host that drives time through `ts` gets its night. Through `serve` on
//! stdio, a host sends `ts` on every message (boot and a session opening at 09:00, then a tick
//! every 30 s for the rest of that simulated day, granting the lock and finishing each cycle it is
//! given) and sees exactly one night, starting 2 h or more after the session, with
//! `next_deadline` in every engine reply. The server's own clock is months away, so a message
//! handled at it instead of at its `ts` would show.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_daemon-state");

/// The host's side of one `serve` process.
struct Host {
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    /// Every engine message's reply, with the request's type.
    engine_replies: Vec<(String, Value)>,
}

impl Host {
    /// Sends one message and returns its reply.
    fn send(&mut self, message: Value) -> Value {
        writeln!(self.input, "{message}").unwrap();
        self.input.flush().unwrap();
        let mut line = String::new();
        self.output.read_line(&mut line).unwrap();
        let reply: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(reply["ok"], json!(true), "{message} -> {reply}");
        reply
    }

    /// Sends one engine message at `at` and answers every effect it asks for at the same moment:
    /// the lock is granted, each REM cycle finished.
    fn engine(&mut self, message: Value, at: DateTime<Utc>) {
        let mut queue = VecDeque::from([message]);
        while let Some(mut message) = queue.pop_front() {
            message["ts"] = json!(at.to_rfc3339());
            let reply = self.send(message.clone());
            let kind = message["type"].as_str().unwrap().to_owned();
            for effect in reply["effects"].as_array().unwrap() {
                match effect["effect"].as_str().unwrap() {
                    "acquire_lock" => queue.push_back(json!({"type": "lock_acquired"})),
                    "run_rem_cycle" => queue.push_back(json!({
                        "type": "rem_cycle_finished",
                        "result": {"cycle": effect["cycle"], "summaries_created": 1},
                    })),
                    _ => {}
                }
            }
            self.engine_replies.push((kind, reply));
        }
    }
}

#[test]
fn a_host_driving_time_through_ts_sees_one_night_two_hours_after_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .env_remove("DAEMON_STATE_FILE")
        .env_remove("DAEMON_STATE_TZ")
        .env_remove("RUST_LOG")
        .arg("--state-file")
        .arg(dir.path().join("state.json"))
        .args(["--now", "2026-09-01T12:00:00Z", "serve"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut host = Host {
        input: child.stdin.take().unwrap(),
        output: BufReader::new(child.stdout.take().unwrap()),
        engine_replies: Vec::new(),
    };
    let nine: DateTime<Utc> = "2026-04-18T09:00:00Z".parse().unwrap();
    let midnight = nine + Duration::hours(15);

    host.engine(json!({"type": "boot"}), nine);
    let opened = host
        .send(json!({"type": "session_open", "session_id": "s1", "ts": "2026-04-18T09:00:00Z"}));
    assert_eq!(opened, json!({"ok": true, "reason": "session_open_queued"}));
    let mut at = nine;
    let mut ticks = 0;
    while at + Duration::seconds(30) < midnight {
        at += Duration::seconds(30);
        host.engine(json!({"type": "tick"}), at);
        ticks += 1;
    }
    drop(host.input);
    assert!(child.wait().unwrap().success());

    for (kind, reply) in &host.engine_replies {
        let deadline = reply.get("next_deadline");
        assert!(deadline.is_some_and(|d| d.is_null() || d.as_str().is_some()), "{kind} -> {reply}");
    }
    let transitions: Vec<&Value> = host
        .engine_replies
        .iter()
        .flat_map(|(_, reply)| reply["transitions"].as_array().unwrap())
        .collect();
    let nights: Vec<&Value> = transitions
        .iter()
        .copied()
        .filter(|t| t["from"] == json!("TRANSITIONING") && t["to"] == json!("SLEEP"))
        .collect();
    assert_eq!(nights.len(), 1, "{transitions:#?}");
    let started: DateTime<Utc> = nights[0]["at"].as_str().unwrap().parse().unwrap();
    assert!(started >= nine + Duration::hours(2), "the night started at {started}");
    let began = transitions.iter().filter(|t| t["to"] == json!("TRANSITIONING")).count();
    assert_eq!(began, 1, "one night begun, none yielded: {transitions:#?}");
    let woke = transitions.iter().filter(|t| t["to"] == json!("WAKE")).count();
    assert_eq!(woke, 1, "the night ended once: {transitions:#?}");
    let cycles = host.engine_replies.iter().filter(|(kind, _)| kind == "rem_cycle_finished");
    println!(
        "{ticks} ticks, {} engine replies, night from {started}, {} cycles finished",
        host.engine_replies.len(),
        cycles.count()
    );
}
