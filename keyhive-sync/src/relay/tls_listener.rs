//! SYNC-35: a TLS listener for the relay. TCP connections are accepted and their TLS handshakes
//! run in separate tasks (a slow or silent client never blocks accepting others), bounded in
//! number and time; finished TLS streams are handed to axum like plain TCP streams, so routing,
//! limits and graceful shutdown are identical for `ws://` and `wss://`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The default of [`super::Limits::tls_handshake_timeout`]: a TLS handshake that has not
/// finished after this long is dropped.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Completed TLS streams waiting for axum to pick them up.
const READY_QUEUE: usize = 64;

/// An [`axum::serve::Listener`] yielding server-side TLS streams.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `listener`; stops (and closes the socket) once `stop` turns true or
    /// its sender is dropped. At most `max_handshakes` handshakes run at once, each for at most
    /// `handshake_timeout`; further TCP connections wait in the kernel backlog.
    pub(crate) fn spawn(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        max_handshakes: usize,
        handshake_timeout: Duration,
        mut stop: watch::Receiver<bool>,
    ) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (ready_tx, ready) = mpsc::channel(READY_QUEUE);
        let handshakes = Arc::new(Semaphore::new(max_handshakes.max(1)));
        tokio::spawn(async move {
            loop {
                let permit = tokio::select! {
                    _ = stopped(&mut stop) => return,
                    p = handshakes.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        // The semaphore is never closed.
                        Err(_) => return,
                    },
                };
                let (tcp, peer) = tokio::select! {
                    _ = stopped(&mut stop) => return,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::debug!("accept failed: {e}");
                            // Back off briefly (e.g. out of file descriptors).
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let acceptor = acceptor.clone();
                let ready_tx = ready_tx.clone();
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            // A closed queue means the server stopped: drop the stream.
                            let _ = ready_tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                    }
                    drop(permit);
                });
            }
        });
        Ok(TlsListener { ready, local_addr })
    }
}

/// Resolves once shutdown is requested or the handle is dropped (no guard held across awaits).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|v| *v).await;
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task has stopped (shutdown): graceful shutdown is under way, so never
            // yield another connection.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
