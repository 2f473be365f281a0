//! SYNC-63, SYNC-63a: a relay that keeps in sync with other relays through a [`Client`] (its
//! own identity and store, one background link per relay) forwards live in both directions,
//! instead of waiting for each link's periodic full sync (SYNC-92, 30 s):
//!
//! - items the links bring in are fanned out to this relay's subscribers
//!   ([`RelayHandle::announce`]);
//! - items devices push to this relay are announced to the client's links
//!   ([`Client::outbox`]), which push them to the other relays at once.
//!
//! Items a link brought in are not sent back: they reach the fan-out as announced (origin 0),
//! and only pushed items (a connection's origin) are forwarded to the links. An item pushed to
//! two relays that forward to each other is pushed back once and answered "already held".
//! A forwarding task that falls behind its bounded queue skips what it missed; the links' next
//! full sync carries it.

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::RelayHandle;
use crate::client::Client;
use crate::item::Item;
use crate::replica::Announce;

/// The two forwarding tasks of [`RelayHandle::forward_through`]; dropping it stops them.
#[derive(Debug)]
pub struct Forwarding {
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl RelayHandle {
    /// Forwards between this relay and the links of `client` (the relay's own client to other
    /// relays) as they store items, in both directions (SYNC-63, SYNC-63a). Needs a tokio
    /// runtime.
    pub fn forward_through(&self, client: &Arc<Client>) -> Forwarding {
        let mut fetched = client.new_items();
        let live = self.live.clone();
        let inbound = tokio::spawn(async move {
            while let Some(item) = next(&mut fetched).await {
                // Origin 0 is never a connection id, so no subscriber is skipped.
                let _ = live.send((0, item));
            }
        });
        let mut pushed = self.live.subscribe();
        let outbox = client.outbox();
        let outbound = tokio::spawn(async move {
            loop {
                match pushed.recv().await {
                    // Origin 0: announced (brought by a link, or by a relay sharing the store).
                    Ok((0, _)) => {}
                    Ok((_, item)) => outbox.announce(std::slice::from_ref(&*item)),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Forwarding {
            tasks: [inbound, outbound],
        }
    }
}

/// The next item of `items`, skipping what a lag dropped; `None` once it is closed.
async fn next(items: &mut broadcast::Receiver<(u64, Arc<Item>)>) -> Option<Arc<Item>> {
    loop {
        match items.recv().await {
            Ok((_, item)) => return Some(item),
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}
