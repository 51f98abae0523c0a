//! The socket's clients: each connection served by `serve`'s [`Server::serve_stream`] on a thread
//! of its own, every reply seen by the host on its way out.
//!
//! Owns accepting connections (up to a cap) and tapping the replies: an answered message wakes the
//! host (its next deadline may have moved), and the effects an engine reply carries are the
//! host's to perform. It must not answer requests itself nor touch the engine: `Server` does.

use std::io::{self, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::doc::Doc;
use crate::effects::Effect;
use crate::serve::{DEFAULT_MAX_CONNECTIONS, Server, SocketListener};

use super::Inbox;

/// Serves every connection to `socket` on a thread of its own, for as long as the process runs.
pub fn accept(server: &Arc<Server>, socket: &SocketListener, inbox: &Arc<Inbox>) -> ! {
    let count = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match socket.listener().accept() {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(path = %socket.path().display(), %error, "cannot accept a connection");
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        };
        let taken = count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < DEFAULT_MAX_CONNECTIONS).then_some(n + 1)
        });
        if taken.is_err() {
            let error = format!(
                "the server is serving its maximum of {DEFAULT_MAX_CONNECTIONS} connections"
            );
            let reply = Doc::ok(false).with("reason", "too_many_connections").with("error", error);
            let _ = stream.set_nonblocking(true);
            let _ = (&stream).write_all(format!("{reply}\n").as_bytes());
            continue;
        }
        let (server, inbox, count) = (Arc::clone(server), Arc::clone(inbox), Arc::clone(&count));
        let spawned = std::thread::Builder::new().name("run-connection".into()).spawn(move || {
            let tap = Tap { stream: &stream, line: Vec::new(), inbox: &inbox };
            if let Err(error) = server.serve_stream(BufReader::new(&stream), tap) {
                tracing::debug!(%error, "connection ended");
            }
            count.fetch_sub(1, Ordering::AcqRel);
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start a connection thread; connection dropped");
        }
    }
}

/// The writer of one connection's replies: each whole reply line is shown to the host, then
/// written to the client. The host hears of it even when the client has gone away.
struct Tap<'a> {
    stream: &'a UnixStream,
    line: Vec<u8>,
    inbox: &'a Inbox,
}

impl Write for Tap<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(bytes);
        if self.line.ends_with(b"\n") {
            let line = std::mem::take(&mut self.line);
            self.inbox.answered(reply_effects(&line));
            self.stream.write_all(&line)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// The effects an engine reply carries (none for any other reply).
fn reply_effects(line: &[u8]) -> Vec<Effect> {
    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(default)]
        effects: Vec<Effect>,
    }
    serde_json::from_slice::<Reply>(line).map(|reply| reply.effects).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_reply_gives_its_effects_and_others_none() {
        let line = br#"{"ok":true,"state":"TRANSITIONING","transitions":[],"effects":[{"effect":"emit","kind":"daemon_yielded","payload":{"reason":"mcp_active","completed_cycles":0},"severity":"info"},{"effect":"acquire_lock"}],"next_deadline":null}"#;
        let effects = reply_effects(line);
        assert_eq!(effects.len(), 2);
        assert_eq!(effects[1], Effect::AcquireLock);
        assert!(matches!(effects[0], Effect::Emit(_)));
        assert!(reply_effects(br#"{"ok":true,"reason":"rem_queued"}"#).is_empty());
        assert!(reply_effects(b"not json").is_empty());
    }
}
