//! Loopback tests of the client: offline outbox, reconnection, several relays, relay-to-relay
//! and peer-to-peer sync, and reconciliation bytes on the wire.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_sync::client::{Client, Session};
use keyhive_sync::policy::{AccessPolicy, AllowAll};
use keyhive_sync::relay::{Relay, RelayConfig};
use keyhive_sync::store::{MemoryStore, RedbStore, Store};
use tokio::net::TcpListener;

fn allow() -> Arc<dyn AccessPolicy> {
    Arc::new(AllowAll)
}

#[tokio::test]
async fn offline_outbox_converges_when_relay_returns() {
    let dir = tempfile::tempdir().unwrap();
    let relay_store: Arc<dyn Store> =
        Arc::new(RedbStore::open(dir.path().join("relay.redb")).unwrap());
    let policy = policy();
    let alice = SigningKey::generate();
    let doc = subject(7);
    policy.grant_write(id(&alice), doc);
    let relay_key = SigningKey::generate();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let relay = Relay::serve(
        listener,
        relay_store.clone(),
        policy.clone(),
        RelayConfig::new(relay_key.clone()),
    )
    .unwrap();

    let client_store: Arc<dyn Store> =
        Arc::new(RedbStore::open(dir.path().join("alice.redb")).unwrap());
    let client = Client::new(alice.clone(), client_store, allow());
    let mut link = client.add_link(relay.url(), Some(pk(&relay_key)));
    link.wait_for(|s| s.connected).await;
    client.write(items(&alice, doc, 0..5)).unwrap();
    eventually(|| relay_store.hashes(&doc).unwrap().len() == 5).await;

    // The relay goes away; local writes still succeed immediately.
    relay.shutdown().await.unwrap();
    link.wait_for(|s| !s.connected).await;
    let offline = items(&alice, doc, 5..25);
    client.write(offline.clone()).unwrap();
    assert_eq!(client.store().hashes(&doc).unwrap().len(), 25);
    assert_eq!(relay_store.hashes(&doc).unwrap().len(), 5);

    // The relay returns on the same address; the link reconnects and pushes the backlog.
    let listener = TcpListener::bind(addr).await.unwrap();
    let relay = Relay::serve(
        listener,
        relay_store.clone(),
        policy,
        RelayConfig::new(relay_key),
    )
    .unwrap();
    eventually(|| relay_store.hashes(&doc).unwrap().len() == 25).await;
    for item in &offline {
        assert!(relay_store.contains(&item.hash()).unwrap());
    }
    assert!(link.status().failures >= 1);
    link.stop().await;
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn several_relays_at_once_and_live_fanout_between_clients() {
    let policy_a = policy();
    let policy_b = policy();
    let store_a: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let store_b: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (relay_a, _) = start(store_a.clone(), policy_a.clone()).await;
    let (relay_b, _) = start(store_b.clone(), policy_b.clone()).await;
    let alice = SigningKey::generate();
    let bob = SigningKey::generate();
    let doc = subject(8);
    for p in [&policy_a, &policy_b] {
        p.grant_write(id(&alice), doc);
        p.grant_write(id(&bob), doc);
    }
    let a = Client::new(alice.clone(), Arc::new(MemoryStore::new()), allow());
    let b = Client::new(bob.clone(), Arc::new(MemoryStore::new()), allow());
    let mut a1 = a.add_link(relay_a.url(), None);
    let mut a2 = a.add_link(relay_b.url(), None);
    let mut b1 = b.add_link(relay_b.url(), None);
    a1.wait_for(|s| s.connected).await;
    a2.wait_for(|s| s.connected).await;
    b1.wait_for(|s| s.connected).await;

    a.write(items(&alice, doc, 0..10)).unwrap();
    eventually(|| {
        store_a.hashes(&doc).unwrap().len() == 10 && store_b.hashes(&doc).unwrap().len() == 10
    })
    .await;
    // Bob, subscribed on relay B only, receives Alice's items live.
    eventually(|| b.store().hashes(&doc).unwrap().len() == 10).await;
    // Bob writes; Alice gets it from relay B and forwards it to relay A too.
    b.write(items(&bob, doc, 100..103)).unwrap();
    eventually(|| a.store().hashes(&doc).unwrap().len() == 13).await;
    eventually(|| store_a.hashes(&doc).unwrap().len() == 13).await;
    for l in [a1, a2, b1] {
        l.stop().await;
    }
    relay_a.shutdown().await.unwrap();
    relay_b.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_relays_converge_when_they_sync_with_each_other() {
    let store_a: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let store_b: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let policy_a = policy();
    let policy_b = policy();
    let key_a = SigningKey::generate();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_a = Relay::serve(
        listener,
        store_a.clone(),
        policy_a.clone(),
        RelayConfig::new(key_a.clone()),
    )
    .unwrap();
    let (relay_b, _) = start(store_b.clone(), policy_b.clone()).await;
    policy_b.grant_everything(id(&key_a));
    let writer = SigningKey::generate();
    let (d1, d2) = (subject(10), subject(11));
    store_a.put(&items(&writer, d1, 0..50)).unwrap();
    store_b.put(&items(&writer, d1, 25..80)).unwrap();
    store_b.put(&items(&writer, d2, 0..5)).unwrap();

    // A reader subscribed on relay A sees what relay A brings over from relay B.
    let reader = SigningKey::generate();
    policy_a.grant_pull(id(&reader), d2);
    let sub = Session::connect(&relay_a.url(), &reader, None)
        .await
        .unwrap();
    let mut live = sub.take_live().unwrap();
    assert_eq!(sub.subscribe(&[d2]).await.unwrap(), vec![d2]);

    // Relay A dials relay B with its own identity and store, forwarding new items to its
    // own subscribers.
    let relay_a_as_client = Client::new(key_a, store_a.clone(), allow());
    let mut fresh = relay_a_as_client.new_items();
    let session = relay_a_as_client.connect(&relay_b.url()).await.unwrap();
    let report = relay_a_as_client.sync_once(&session).await.unwrap();
    assert_eq!(report.pulled, 30 + 5);
    assert_eq!(report.pushed, 25);
    for s in [d1, d2] {
        assert_eq!(store_a.hashes(&s).unwrap(), store_b.hashes(&s).unwrap());
        assert_eq!(store_a.summary(&s).unwrap(), store_b.summary(&s).unwrap());
    }
    let mut forwarded = Vec::new();
    while let Ok((_, item)) = fresh.try_recv() {
        forwarded.push(item);
    }
    assert_eq!(forwarded.len(), 35);
    relay_a.announce(forwarded);
    let mut got = 0;
    while got < 5 {
        match live.recv().await.unwrap() {
            keyhive_sync::client::LiveEvent::Items(items) => {
                assert!(items.iter().all(|i| i.subject() == d2));
                got += items.len();
            }
            keyhive_sync::client::LiveEvent::Lagged => panic!("lagged"),
        }
    }
    // A second sync finds nothing to do and costs only the collection round trip.
    let again = relay_a_as_client.sync_once(&session).await.unwrap();
    assert_eq!((again.reconciled, again.pulled, again.pushed), (0, 0, 0));
    relay_b.shutdown().await.unwrap();
    relay_a.shutdown().await.unwrap();
}

#[tokio::test]
async fn peer_to_peer_over_the_same_protocol() {
    // Peer B serves its own store; peer A dials it directly.
    let store_b: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let key_b = SigningKey::generate();
    let key_a = SigningKey::generate();
    let policy_b = policy();
    let doc = subject(12);
    policy_b.grant_write(id(&key_a), doc);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer_b = Relay::serve(
        listener,
        store_b.clone(),
        policy_b,
        RelayConfig::new(key_b.clone()),
    )
    .unwrap();
    let b_client = Client::new(key_b.clone(), store_b.clone(), allow());
    b_client.write(items(&key_b, doc, 0..3)).unwrap();

    let a = Client::new(key_a.clone(), Arc::new(MemoryStore::new()), allow());
    a.write(items(&key_a, doc, 10..14)).unwrap();
    let mut link = a.add_link(peer_b.url(), Some(pk(&key_b)));
    link.wait_for(|s| s.syncs >= 1).await;
    assert_eq!(a.store().hashes(&doc).unwrap().len(), 7);
    assert_eq!(store_b.hashes(&doc).unwrap().len(), 7);
    link.stop().await;
    peer_b.shutdown().await.unwrap();
}

#[tokio::test]
async fn reconciliation_bytes_grow_with_difference_not_total() {
    let writer = SigningKey::generate();
    let doc = subject(20);
    let n = 10_000u64;
    let all = items(&writer, doc, 0..n);
    let relay_store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    relay_store.put(&all).unwrap();
    let policy = policy();
    let device = SigningKey::generate();
    policy.grant_write(id(&device), doc);
    let (relay, _) = start(relay_store, policy).await;
    let mut rows = Vec::new();
    for d in [0usize, 1, 100] {
        let local: Arc<dyn Store> = Arc::new(MemoryStore::new());
        // Drop d items spread over the set.
        let step = all.len().checked_div(d).unwrap_or(usize::MAX);
        let kept: Vec<_> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| d == 0 || i % step != 0 || i / step >= d)
            .map(|(_, it)| it.clone())
            .collect();
        assert_eq!(kept.len(), all.len() - d);
        local.put(&kept).unwrap();
        let client = Client::new(device.clone(), local.clone(), allow());
        let session = Session::connect(&relay.url(), &device, None).await.unwrap();
        let (s0, r0) = session.stats().bytes();
        let report = client.sync_once(&session).await.unwrap();
        assert_eq!(report.pulled, d);
        assert_eq!(local.hashes(&doc).unwrap().len(), n as usize);
        let (s1, r1) = session.stats().bytes();
        // Item bytes for the d pulled items are data, not reconciliation overhead.
        let item_bytes: usize = kept.first().map(|i| i.envelope().len() + 36).unwrap_or(0) * d;
        rows.push((d, s1 - s0, r1 - r0, report.rounds, item_bytes));
    }
    println!(
        "reconciliation on the wire, n = {n} items (frame bytes, WebSocket headers excluded):"
    );
    for (d, sent, received, rounds, item_bytes) in &rows {
        println!(
            "  d = {d:>3}: sent {sent:>6} B, received {received:>6} B (of which ~{item_bytes} B are the {d} items), {rounds} rounds"
        );
    }
    let full_hash_list = n as usize * 32;
    assert!(rows[0].1 + rows[0].2 < 200);
    assert!(((rows[1].1 + rows[1].2) as usize) < full_hash_list / 50);
    assert!(((rows[2].1 + rows[2].2) as usize) < full_hash_list / 2);
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_replica_verifies_what_it_receives() {
    // A permissive relay holds items from an author the client's own policy does not accept.
    let relay_store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (relay, relay_key) = start(relay_store.clone(), Arc::new(AllowAll)).await;
    let good = SigningKey::generate();
    let doc = subject(21);
    relay_store.put(&items(&good, doc, 0..4)).unwrap();
    relay_store
        .put(&items(&SigningKey::generate(), doc, 100..103))
        .unwrap();
    // The client accepts an item only if it is in its allow-list (stand-in for the capability
    // checker verifying the author's signature and `write` access).
    struct OnlyKnown(std::collections::BTreeSet<keyhive_core::Hash>);
    impl AccessPolicy for OnlyKnown {
        fn may_pull(
            &self,
            _: &keyhive_core::identity::IndividualId,
            _: &keyhive_sync::SubjectId,
        ) -> bool {
            true
        }
        fn check_push(
            &self,
            _: &keyhive_core::identity::IndividualId,
            item: &keyhive_sync::Item,
        ) -> Result<(), keyhive_sync::policy::Refusal> {
            if self.0.contains(&item.hash()) {
                Ok(())
            } else {
                Err(keyhive_sync::policy::Refusal::Unnamed)
            }
        }
        fn reachable(
            &self,
            _: &keyhive_core::identity::IndividualId,
        ) -> Vec<keyhive_sync::SubjectId> {
            Vec::new()
        }
    }
    let known = items(&good, doc, 0..4).iter().map(|i| i.hash()).collect();
    let device = SigningKey::generate();
    let client = Client::new(
        device,
        Arc::new(MemoryStore::new()),
        Arc::new(OnlyKnown(known)),
    );
    let session = Session::connect(&relay.url(), &SigningKey::generate(), Some(pk(&relay_key)))
        .await
        .unwrap();
    let report = client.sync_once(&session).await.unwrap();
    assert_eq!((report.pulled, report.rejected), (4, 3));
    assert_eq!(client.store().hashes(&doc).unwrap().len(), 4);
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn refused_local_subjects_are_not_offered_again() {
    let (relay, _) = start(Arc::new(MemoryStore::new()), policy()).await;
    let device = SigningKey::generate();
    let private = subject(22);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    store.put(&items(&device, private, 0..5)).unwrap();
    let session = Session::connect(&relay.url(), &device, None).await.unwrap();
    let (report, _) = keyhive_sync::client::sync_once(&session, &store, &AllowAll)
        .await
        .unwrap();
    assert_eq!((report.refused, report.closed.clone()), (5, vec![private]));
    let skip = report.closed.into_iter().collect();
    let (again, _) =
        keyhive_sync::client::sync::sync_once_skipping(&session, &store, &AllowAll, &skip)
            .await
            .unwrap();
    assert_eq!((again.reconciled, again.refused), (0, 0));
    relay.shutdown().await.unwrap();
}
