//! Every accepted connection is counted and timed from accept (SYNC-95, SYNC-97): the listener
//! takes a slot of `max_connections` before handing a stream to the HTTP server, answers HTTP
//! 503 and closes when none is free, and a stream that has not reached the WebSocket upgrade
//! handler within `upgrade_timeout` fails its next read or write, so the server closes it
//! (a silent client or a half-sent request holds its slot for at most that long). SYNC-108: a
//! connection also takes a slot of its network address's `per_address.max_connections`, and is
//! answered HTTP 503 when its address holds all of them.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use super::address::{Address, Addresses, Slot};

/// Sent to a connection accepted while every slot is taken (SYNC-72).
const BUSY_RESPONSE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
/// Longest time spent telling a refused connection that the relay is busy.
const BUSY_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// What handlers learn about their connection: the switch that ends its upgrade deadline.
#[derive(Clone, Debug)]
pub(crate) struct Accepted {
    upgraded: Arc<AtomicBool>,
    /// SYNC-108: the address the connection counts under (`None`: exempt).
    pub(crate) address: Option<Address>,
}

impl Accepted {
    /// SYNC-95: the request reached the upgrade handler; the upgrade deadline no longer applies
    /// (the handshake and idle timeouts take over).
    pub(crate) fn upgraded(&self) {
        self.upgraded.store(true, Ordering::Release);
    }
}

impl<L: Listener<Addr = SocketAddr>> Connected<IncomingStream<'_, GuardedListener<L>>>
    for Accepted
{
    fn connect_info(stream: IncomingStream<'_, GuardedListener<L>>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A listener counting and timing every stream it yields.
pub(crate) struct GuardedListener<L> {
    inner: L,
    connections: Arc<Semaphore>,
    addresses: Arc<Addresses>,
    upgrade_timeout: Duration,
}

impl<L> GuardedListener<L> {
    pub(crate) fn new(
        inner: L,
        connections: Arc<Semaphore>,
        addresses: Arc<Addresses>,
        upgrade_timeout: Duration,
    ) -> Self {
        GuardedListener {
            inner,
            connections,
            addresses,
            upgrade_timeout,
        }
    }
}

/// SYNC-72, SYNC-108: tells a refused connection the relay is busy, without waiting for it.
fn refuse<IO: AsyncWrite + Unpin + Send + 'static>(mut io: IO) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(BUSY_WRITE_TIMEOUT, io.write_all(BUSY_RESPONSE)).await;
    });
}

impl<L> Listener for GuardedListener<L>
where
    L: Listener<Addr = SocketAddr>,
{
    type Io = Guarded<L::Io>;
    type Addr = Accepted;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, peer) = self.inner.accept().await;
            let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                tracing::debug!("refusing {peer}: every connection slot is taken");
                refuse(io);
                continue;
            };
            let address = self.addresses.address(peer.ip());
            let slot = match address {
                None => None,
                Some(a) => match self.addresses.connect(a) {
                    Some(slot) => Some(slot),
                    None => {
                        tracing::debug!("refusing {peer}: its address holds all its connections");
                        refuse(io);
                        continue;
                    }
                },
            };
            let accepted = Accepted {
                upgraded: Arc::new(AtomicBool::new(false)),
                address,
            };
            let io = Guarded {
                inner: io,
                upgraded: accepted.upgraded.clone(),
                deadline: Box::pin(tokio::time::sleep(self.upgrade_timeout)),
                _permit: permit,
                _slot: slot,
            };
            return (io, accepted);
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        // Never asked by axum for a connection; it names no connection.
        Err(io::Error::other("a guarded listener has no single address"))
    }
}

/// A stream holding its connection slot (SYNC-97) and failing once its upgrade deadline passes
/// before the upgrade (SYNC-95).
pub(crate) struct Guarded<IO> {
    inner: IO,
    upgraded: Arc<AtomicBool>,
    deadline: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
    /// SYNC-108: the address's connection slot.
    _slot: Option<Slot>,
}

impl<IO> Guarded<IO> {
    /// Fails once the deadline passed without an upgrade; otherwise registers for the deadline.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if !self.upgraded.load(Ordering::Acquire) && self.deadline.as_mut().poll(cx).is_ready() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no WebSocket upgrade before the deadline",
            ));
        }
        Ok(())
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
