//! Serving a [`Repo`]'s device to peers: the device listens like a relay, and peers connect
//! to it with [`Repo::connect`] as they would to a relay.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use super::Repo;
use crate::relay::{Relay, RelayConfig, RelayHandle};
use crate::replica::ReplicaGate;

/// A listener serving this device, and the task forwarding what it stores to the peers
/// subscribed there.
pub(super) struct Listener {
    relay: Arc<RelayHandle>,
    forward: JoinHandle<()>,
}

impl Listener {
    /// Stops forwarding, then shuts the listener down.
    pub(super) async fn stop(self) -> std::io::Result<()> {
        self.forward.abort();
        // An aborted task reports cancellation, which is what was asked.
        let _ = self.forward.await;
        match Arc::try_unwrap(self.relay) {
            Ok(relay) => relay.shutdown().await,
            Err(_) => Ok(()),
        }
    }
}

impl Repo {
    /// Serves this device to peers on `listener` until [`Repo::shutdown`] and returns the URL
    /// they connect to ([`Repo::connect`], expecting this device's id). Peers are served and
    /// may push exactly what this replica's capability graph allows (REP-2, REP-30); local
    /// writes and what links bring reach the peers subscribed here at once.
    pub async fn listen(&self, listener: tokio::net::TcpListener) -> std::io::Result<String> {
        let device = self.replica().device().clone();
        let gate = Arc::new(ReplicaGate::new(self.replica.clone()));
        let store = self.client.store().clone();
        let relay = Arc::new(Relay::serve(
            listener,
            store,
            gate,
            RelayConfig::for_device(&device),
        )?);
        let url = relay.url();
        let mut items = self.client.new_items();
        let to_peers = Arc::clone(&relay);
        let forward = tokio::spawn(async move {
            loop {
                match items.recv().await {
                    Ok((_, item)) => to_peers.announce([item]),
                    // Peers that missed announcements catch up at their next full sync.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
            }
        });
        self.listeners
            .lock()
            .await
            .push(Listener { relay, forward });
        Ok(url)
    }
}
