//! Shared helpers for loopback tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use keyhive_core::crypto::signing::{PublicKey, SigningKey};
use keyhive_core::identity::IndividualId;
use keyhive_sync::policy::{AccessPolicy, MemoryPolicy};
use keyhive_sync::relay::{Relay, RelayConfig, RelayHandle};
use keyhive_sync::store::Store;
use keyhive_sync::{Item, ItemKind, SubjectId};
use tokio::net::TcpListener;

/// A signed opaque envelope: `payload || ed25519(payload)`.
pub fn item(key: &SigningKey, subject: SubjectId, n: u64, size: usize) -> Item {
    let mut payload = vec![0u8; size.max(16)];
    // Big-endian: the first byte stays 0, never a compact wire code (SYNC-110).
    payload[..8].copy_from_slice(&n.to_be_bytes());
    payload[8..16].copy_from_slice(&subject.as_bytes()[..8]);
    let mut envelope = payload.clone();
    envelope.extend_from_slice(&key.sign(&payload));
    Item::new(ItemKind::Content, subject, envelope).expect("valid item")
}

pub fn items(key: &SigningKey, subject: SubjectId, range: std::ops::Range<u64>) -> Vec<Item> {
    range.map(|n| item(key, subject, n, 64)).collect()
}

pub fn subject(byte: u8) -> SubjectId {
    SubjectId(SigningKey::from_seed(&[byte; 32]).public_key())
}

pub fn id(key: &SigningKey) -> IndividualId {
    IndividualId(key.public_key())
}

pub async fn start(
    store: Arc<dyn Store>,
    policy: Arc<dyn AccessPolicy>,
) -> (RelayHandle, SigningKey) {
    let key = SigningKey::generate();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let handle =
        Relay::serve(listener, store, policy, RelayConfig::new(key.clone())).expect("serve");
    (handle, key)
}

/// A relay on loopback over a memory store, authorising from the capability graph as a real
/// relay does (`CapabilityPolicy`, no peer relays).
pub async fn capability_relay() -> RelayHandle {
    let policy = Arc::new(keyhive_sync::capability_policy::CapabilityPolicy::new([]));
    start(Arc::new(keyhive_sync::MemoryStore::new()), policy)
        .await
        .0
}

pub fn policy() -> Arc<MemoryPolicy> {
    Arc::new(MemoryPolicy::new())
}

pub fn pk(key: &SigningKey) -> PublicKey {
    key.public_key()
}

/// Polls `cond` until it holds. A hang guard only (not a performance limit): fails after 60 s.
pub async fn eventually(mut cond: impl FnMut() -> bool) {
    for _ in 0..6_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("condition never held");
}
