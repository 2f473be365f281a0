//! Issue 10, deliverable 3 (SYNC-86): a write made through the replica leaves at once. A
//! `ReplicaGate`-backed client with a background `add_link` to a real relay (capability policy,
//! loopback) pushes a local write as soon as the replica stores it, and a second device's own
//! link receives it live; neither waits for the 30 s resync (SYNC-92).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod peers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyhive_core::Hash;
use keyhive_core::capability::{Access, AgentId};
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::client::background::RESYNC_INTERVAL;
use keyhive_sync::{MemoryStore, Store};

use peers::Peer;

/// Polls until `cond` holds and returns how long it took. A hang guard only: it fails after
/// half the resync interval, so a write that waited for the periodic resync fails the test.
async fn latency(start: Instant, mut cond: impl FnMut() -> bool) -> Duration {
    let guard = RESYNC_INTERVAL / 2;
    while !cond() {
        assert!(
            start.elapsed() < guard,
            "not delivered within {guard:?}: only the periodic resync would deliver it"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_write_reaches_the_relay_and_a_subscribed_device_at_once() {
    let relay_store = Arc::new(MemoryStore::new());
    let (relay, relay_key) =
        common::start(relay_store.clone(), Arc::new(CapabilityPolicy::new([]))).await;
    let url = relay.url();
    let (alice, bob) = (Peer::new("alice"), Peer::new("bob"));

    let doc = {
        let mut a = alice.replica.lock().unwrap();
        let bob_card = bob.replica.lock().unwrap().device().contact_card().unwrap();
        let bob_id = bob_card.device;
        a.add_contact(bob_card).unwrap();
        let doc = a.create_document().unwrap();
        a.grant(
            &doc.0,
            AgentId::Individual(keyhive_core::identity::IndividualId(bob_id)),
            Access::Write,
        )
        .unwrap();
        a.write(doc, b"v1").unwrap();
        doc
    };
    alice.sync(&url).await;
    bob.sync(&url).await;
    assert_eq!(bob.read(doc).as_deref(), Some(&b"v1"[..]));

    // Both devices keep a background link to the relay, pinned to its id (SYNC-34).
    let mut a_link = alice
        .client
        .add_link(url.clone(), Some(relay_key.public_key()));
    let mut b_link = bob
        .client
        .add_link(url.clone(), Some(relay_key.public_key()));
    a_link.wait_for(|s| s.connected).await;
    b_link.wait_for(|s| s.connected).await;
    // SYNC-86: Alice's app connects her replica to her client's outbox.
    alice
        .replica
        .lock()
        .unwrap()
        .connect_outbox(alice.client.outbox());

    let start = Instant::now();
    let op: Hash = alice.replica.lock().unwrap().write(doc, b"v2").unwrap();
    let at_relay = latency(start, || relay_store.contains(&op).unwrap()).await;
    let at_bob = latency(start, || bob.read(doc).as_deref() == Some(&b"v2"[..])).await;
    assert!(bob.store.contains(&op).unwrap());
    eprintln!("local write: at the relay after {at_relay:?}, readable by Bob after {at_bob:?}");

    // A streamed write (pieces stored before the change that lists them) leaves whole too.
    let big = vec![7u8; 300 * 1024];
    let start = Instant::now();
    alice.replica.lock().unwrap().write(doc, &big).unwrap();
    let streamed = latency(start, || bob.read(doc).as_deref() == Some(&big[..])).await;
    eprintln!(
        "streamed {} KiB write readable by Bob after {streamed:?}",
        big.len() / 1024
    );

    a_link.stop().await;
    b_link.stop().await;
}
