//! The `serve` protocol: the seed project's control messages and the engine messages over the
//! library's stream API, and the Unix socket.

mod day;
mod engine;
mod process;
mod protocol;
mod protocol_doc;
mod socket;

use std::io::Cursor;
use std::path::PathBuf;

use daemon_state::engine::Engine;
use daemon_state::record::Record;
use daemon_state::serve::Server;
use daemon_state::store::{SimFs, Store};
use daemon_state::timestamp;
use serde_json::Value;

/// The server's clock.
pub const NOW: &str = "2026-04-18T12:30:00+00:00";

/// A server over a state file in its own temp directory.
pub struct Daemon {
    _dir: Option<tempfile::TempDir>,
    path: PathBuf,
    server: Server,
}

impl Daemon {
    /// A daemon whose state file holds `state` (`null`: no file yet).
    pub fn new(state: Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".daemon-state.json");
        if !state.is_null() {
            std::fs::write(&path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
            // Private, as the store and the seed write it (a wider mode is repaired with a warning).
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
        }
        let (engine, report) = Engine::open(&path).unwrap();
        assert!(report.recovery.is_none() && report.warnings.is_empty(), "{report:?}");
        let now = timestamp::parse(NOW).unwrap();
        Self { _dir: Some(dir), path, server: Server::new(engine, move || now) }
    }

    /// A daemon on a simulated disk, so that its saves can be made to fail.
    pub fn on_sim(state: Value) -> (Self, SimFs) {
        let fs = SimFs::new();
        let path = PathBuf::from("/state/.daemon-state.json");
        let store = Store::with_fs(&path, Box::new(fs.clone())).unwrap();
        let (mut engine, _) = Engine::with_store(store).unwrap();
        let state = Record::from_map(state.as_object().unwrap().clone());
        engine.update("test", chrono::Utc::now(), |record| (*record = state, true)).unwrap();
        let now = timestamp::parse(NOW).unwrap();
        (Self { _dir: None, path, server: Server::new(engine, move || now) }, fs)
    }

    /// Feeds raw bytes through the stream API and returns the reply lines, parsed.
    pub fn feed(&self, input: &[u8]) -> Vec<Value> {
        let mut output = Vec::new();
        self.server.serve_stream(Cursor::new(input), &mut output).unwrap();
        let text = String::from_utf8(output).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    /// Sends one request line and returns its one reply.
    pub fn ask(&self, request: &str) -> Value {
        let replies = self.feed(format!("{request}\n").as_bytes());
        assert_eq!(replies.len(), 1, "{request} -> {replies:?}");
        replies.into_iter().next().unwrap()
    }

    /// The state file as it is on disk.
    pub fn disk(&self) -> Value {
        serde_json::from_slice(&std::fs::read(&self.path).unwrap()).unwrap()
    }

    pub fn durable_writes(&self) -> u64 {
        self.server.engine().store().durable_writes()
    }
}
