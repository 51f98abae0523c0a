//! Socket connections: accepting them up to the cap, a thread for each, and turning away the
//! clients beyond it with one reply.
//!
//! Owns the cap's count and its warning. It must not read or answer requests itself: each
//! connection is served by [`Server::serve_stream`]; the socket file is `socket`'s.

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};


use super::{Server, SocketListener};
use crate::doc::Doc;

impl Server {
    /// Serves every connection to `socket` on a thread of its own, for as long as the process
    /// runs, at most [`Server::with_max_connections`] at once: a client beyond that gets one
    /// `too_many_connections` reply and is closed.
    pub fn serve_socket(self: &Arc<Self>, socket: &SocketListener) -> ! {
        loop {
            match socket.listener().accept() {
                Ok((stream, _)) => {
                    let Some(slot) = Slot::take(&self.connections, self.max_connections) else {
                        self.turn_away(&stream, socket.path());
                        continue;
                    };
                    self.full_reported.store(false, Ordering::Relaxed);
                    let server = Arc::clone(self);
                    let path = socket.path().to_owned();
                    let spawned = std::thread::Builder::new()
                        .name("serve-connection".into())
                        .spawn(move || {
                            let _slot = slot;
                            server.serve_connection(&stream, &path);
                        });
                    if let Err(error) = spawned {
                        tracing::error!(
                            path = %socket.path().display(),
                            %error,
                            "cannot start a connection thread; connection dropped"
                        );
                    }
                }
                Err(error) => {
                    tracing::warn!(
                        path = %socket.path().display(),
                        %error,
                        "cannot accept a connection"
                    );
                    // Out of descriptors or memory: give the other connections time to finish.
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        }
    }

    /// Answers a client beyond the cap with one error line, without waiting for it, and closes it.
    fn turn_away(&self, stream: &UnixStream, path: &Path) {
        let error =
            format!("the server is serving its maximum of {} connections", self.max_connections);
        let reply = Doc::ok(false).with("reason", "too_many_connections").with("error", error);
        let line = format!("{reply}\n");
        let written =
            stream.set_nonblocking(true).and_then(|()| (&*stream).write_all(line.as_bytes()));
        if !self.full_reported.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                path = %path.display(),
                max_connections = self.max_connections,
                "too many connections: turning clients away until one leaves"
            );
        }
        if let Err(error) = written {
            tracing::debug!(path = %path.display(), %error, "cannot tell a turned-away client");
        }
    }

    fn serve_connection(&self, stream: &UnixStream, path: &Path) {
        if let Err(error) = self.serve_stream(BufReader::new(stream), stream) {
            tracing::debug!(path = %path.display(), %error, "connection ended");
        }
    }
}

/// One of the connections the cap allows; dropping it gives it back.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// Takes a slot unless `max` are taken.
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Self(Arc::clone(count)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
