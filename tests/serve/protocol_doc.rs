//! PROTOCOL.md cannot drift: every example exchange in it is fed to `daemon-state serve` on stdio
//! and the replies are compared with the document's, exactly, and every message is exemplified.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_daemon-state");

/// The server's clock in every example, as PROTOCOL.md says.
const CLOCK: &str = "2026-04-18T12:30:00Z";

/// Every message type the protocol knows.
const TYPES: [&str; 17] = [
    "status",
    "why",
    "user_initiated_sleep",
    "force_wake",
    "force_rem",
    "pause",
    "resume",
    "session_open",
    "boot",
    "shutdown",
    "tick",
    "recall",
    "lock_acquired",
    "lock_denied",
    "lock_lost",
    "mcp_activity",
    "rem_cycle_finished",
];

/// One example: the state file it starts from (`None`: no file) and its request/reply pairs.
struct Example {
    line: usize,
    state: Option<Value>,
    exchanges: Vec<(String, String)>,
}

/// The fenced blocks of `text` whose first line is `# state file: ...`.
fn examples(text: &str) -> Vec<Example> {
    let mut found = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((_, line)) = lines.next() {
        if !line.starts_with("```") {
            continue;
        }
        let body: Vec<(usize, &str)> =
            lines.by_ref().take_while(|(_, line)| !line.starts_with("```")).collect();
        let Some(((at, first), rest)) = body.split_first() else { continue };
        let Some(state) = first.strip_prefix("# state file: ") else { continue };
        let state = (state != "none").then(|| serde_json::from_str(state).unwrap());
        assert!(rest.len() % 2 == 0, "PROTOCOL.md:{}: a request without its reply", at + 1);
        let exchanges = rest
            .chunks(2)
            .map(|pair| {
                let (n, request) = pair[0];
                let (m, reply) = pair[1];
                let request = request.strip_prefix("> ");
                let reply = reply.strip_prefix("< ");
                let request = request.unwrap_or_else(|| panic!("PROTOCOL.md:{}: not `> `", n + 1));
                let reply = reply.unwrap_or_else(|| panic!("PROTOCOL.md:{}: not `< `", m + 1));
                (request.to_owned(), reply.to_owned())
            })
            .collect();
        found.push(Example { line: at + 1, state, exchanges });
    }
    found
}

/// Runs `serve` on stdio over the example's state file and returns its reply lines.
fn serve(example: &Example) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    if let Some(state) = &example.state {
        std::fs::write(&path, serde_json::to_vec_pretty(state).unwrap()).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
    }
    let mut child = Command::new(BIN)
        .env_remove("DAEMON_STATE_FILE")
        .env_remove("DAEMON_STATE_TZ")
        .env_remove("RUST_LOG")
        .arg("--state-file")
        .arg(&path)
        .args(["--now", CLOCK, "serve"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String =
        example.exchanges.iter().map(|(request, _)| format!("{request}\n")).collect();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().lines().map(str::to_owned).collect()
}

/// JSON text without the whitespace between its tokens (strings kept as written).
fn compact(text: &str) -> String {
    let (mut out, mut in_string, mut escaped) = (String::new(), false, false);
    for c in text.chars() {
        if in_string {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if c == '"' {
            in_string = true;
        } else if c.is_whitespace() {
            continue;
        }
        out.push(c);
    }
    out
}

#[test]
fn every_example_in_protocol_md_is_what_serve_replies() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md");
    let text = std::fs::read_to_string(path).unwrap();
    let examples = examples(&text);
    assert!(examples.len() >= 4, "PROTOCOL.md has {} examples", examples.len());
    let mut exemplified = Vec::new();
    for example in &examples {
        let replies = serve(example);
        assert_eq!(replies.len(), example.exchanges.len(), "PROTOCOL.md:{}", example.line);
        for ((request, documented), reply) in example.exchanges.iter().zip(&replies) {
            // The document's reply as the server writes it: compact, keys in the same order.
            serde_json::from_str::<Value>(documented).expect("a documented reply is JSON");
            let documented = compact(documented);
            assert_eq!(reply, &documented, "PROTOCOL.md:{}: > {request}", example.line);
            if let Ok(Value::Object(message)) = serde_json::from_str(request)
                && let Some(Value::String(kind)) = message.get("type")
            {
                exemplified.push(kind.clone());
            }
        }
    }
    for kind in TYPES {
        assert!(exemplified.iter().any(|k| k == kind), "no example sends {kind}");
        let listed = text.lines().any(|line| {
            line.starts_with("| `")
                && line.split(" | ").next().unwrap().contains(&format!("`{kind}`"))
        });
        assert!(listed, "the reference tables do not list {kind}");
    }
    println!("{} examples, {} exchanges", examples.len(), exemplified.len());
}
