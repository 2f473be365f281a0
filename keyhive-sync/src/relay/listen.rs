//! SYNC-109: the relay's listening socket, with an accept queue sized for a burst of
//! reconnects (every client of a restarted relay dials it at once).
//!
//! `tokio::net::TcpListener::bind` listens with a backlog of 1,024. A connect arriving while
//! the accept queue is full is not refused: Linux drops its SYN and the client retransmits it
//! about 1 s later (then 3 s, 7 s), so a burst larger than the queue costs the surplus
//! clients a second or more. [`bind`] listens with [`LISTEN_BACKLOG`] instead (the kernel
//! caps it at `net.core.somaxconn`, 4,096 by default since Linux 5.4).

use std::io;

use tokio::net::{TcpListener, TcpSocket, lookup_host};

/// SYNC-109: the listen backlog [`bind`] asks for.
pub const LISTEN_BACKLOG: u32 = 4_096;

/// SYNC-109: binds `addr` (`host:port`, resolved; the first address that binds is used) with
/// `SO_REUSEADDR`, like `TcpListener::bind`, and listens with [`LISTEN_BACKLOG`].
pub async fn bind(addr: &str) -> io::Result<TcpListener> {
    let mut last = None;
    for candidate in lookup_host(addr).await? {
        let socket = if candidate.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        match socket.bind(candidate) {
            Ok(()) => return socket.listen(LISTEN_BACKLOG),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the listen address resolved to nothing",
        )
    }))
}
