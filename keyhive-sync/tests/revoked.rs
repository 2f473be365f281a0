//! Issue 10, deliverable 4: revocation reaches the revoked (REP-30..REP-33, SYNC-85). A device
//! removed from a document is served the document's ops (auth ops and the signed headers of
//! content ops, which share one causal graph) and no ciphertext or key agreement; once its
//! replica holds the revocation, a local write fails naming the revocation, the document is no
//! longer among what it can reach, and its syncs stop offering the document (so the relay
//! refuses nothing of it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod peers;

use std::sync::Arc;

use keyhive_core::capability::{Access, AgentId, PeerTag};
use keyhive_core::identity::DocumentId;
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::policy::AccessPolicy;
use keyhive_sync::replica::{ReplicaError, ReplicaGate};
use keyhive_sync::{Item, ItemKind, MemoryStore, Store, SubjectId};

use peers::Peer;

/// Alice shares a document with Bob (write); both hold it. Returns the document.
fn share(alice: &Peer, bob: &Peer) -> DocumentId {
    let mut a = alice.replica.lock().unwrap();
    let mut b = bob.replica.lock().unwrap();
    a.add_contact(b.device().contact_card().unwrap()).unwrap();
    b.add_contact(a.device().contact_card().unwrap()).unwrap();
    let doc = a.create_document().unwrap();
    a.grant(&doc.0, AgentId::Individual(b.device().id()), Access::Write)
        .unwrap();
    a.write(doc, b"v1").unwrap();
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_device_knows_it_and_stops_offering_what_the_relay_refuses() {
    let relay_store = Arc::new(MemoryStore::new());
    let (relay, _) = common::start(relay_store, Arc::new(CapabilityPolicy::new([]))).await;
    let url = relay.url();
    let (alice, bob) = (Peer::new("alice"), Peer::new("bob"));
    let doc = share(&alice, &bob);
    alice.sync(&url).await;
    bob.sync(&url).await;

    let revocation = alice
        .replica
        .lock()
        .unwrap()
        .revoke(&doc.0, AgentId::Individual(bob.id()))
        .unwrap()[0];
    alice.sync(&url).await;

    // Alice writes after the revocation; Bob, not knowing yet, writes concurrently, then syncs
    // through the relay, which no longer lets him pull the document but serves him its ops
    // (REP-30: reconciliation over the ops only, pulls filtered item by item).
    alice
        .replica
        .lock()
        .unwrap()
        .write(doc, b"after bob")
        .unwrap();
    alice.sync(&url).await;
    let bob_had: Vec<Item> = bob.items(SubjectId(doc.0));
    let written_since: Vec<Item> = alice
        .items(SubjectId(doc.0))
        .into_iter()
        .filter(|i| matches!(i.kind(), ItemKind::Blob | ItemKind::Cgka) && !bob_had.contains(i))
        .collect();
    assert!(!written_since.is_empty());
    bob.replica.lock().unwrap().write(doc, b"late").unwrap();
    bob.sync(&url).await;
    assert!(
        bob.store.contains(&revocation).unwrap(),
        "the relay served the revocation"
    );
    for item in &written_since {
        assert!(
            !bob.store.contains(&item.hash()).unwrap(),
            "ciphertext or key agreement written since reached the removed device"
        );
    }
    {
        let mut b = bob.replica.lock().unwrap();
        // REP-31: a local write fails, naming the revocation.
        match b.write(doc, b"after") {
            Err(ReplicaError::Revoked {
                subject,
                revocation: named,
            }) => assert_eq!((subject, named), (doc.0, revocation)),
            other => panic!("expected a revocation error, got {other:?}"),
        }
        // REP-32: the document is no longer reachable (what `ls` lists).
        assert!(b.reachable().iter().all(|(s, _, _)| *s != doc.0));
    }
    // REP-33, SYNC-85: Bob no longer offers the document: none of its items is pushed or
    // refused (what is left is a contact card the relay holds already).
    let after = bob.sync(&url).await;
    assert_eq!(after.refused, 0, "{after:?}");
}

/// REP-30: what a relay serves a removed device of the document: its ops only (auth ops and
/// content op headers), no ciphertext and no key agreement.
#[test]
fn a_relay_serves_a_removed_device_the_ops_only() {
    let (alice, bob, carol) = (Peer::new("alice"), Peer::new("bob"), Peer::new("carol"));
    let doc = share(&alice, &bob);
    alice
        .replica
        .lock()
        .unwrap()
        .revoke(&doc.0, AgentId::Individual(bob.id()))
        .unwrap();
    let policy = CapabilityPolicy::new([]);
    let store = MemoryStore::new();
    let mut items = alice.items(SubjectId(doc.0));
    items.sort_by_key(|i| match i.kind() {
        ItemKind::Auth | ItemKind::Content => 0,
        ItemKind::Cgka => 1,
        ItemKind::Blob => 2,
    });
    // Ops in causal order: admit in rounds until everything is in (a relay never parks).
    for _ in 0..items.len() {
        let fresh: Vec<Item> = items
            .iter()
            .filter(|i| !store.contains(&i.hash()).unwrap())
            .cloned()
            .collect();
        policy.admit_batch(&alice.id(), fresh, &store).unwrap();
    }
    let held = alice.items(SubjectId(doc.0));
    assert!(held.iter().all(|i| store.contains(&i.hash()).unwrap()));
    assert!(!policy.may_pull(&bob.id(), &SubjectId(doc.0)));
    for item in &held {
        let op = matches!(item.kind(), ItemKind::Auth | ItemKind::Content);
        assert_eq!(policy.may_serve(&bob.id(), item), op, "{:?}", item.kind());
        assert!(!policy.may_serve(&carol.id(), item));
        assert!(policy.may_serve(&alice.id(), item));
    }
}

/// REP-30 for peers: a replica serving peers directly serves a removed device the document's
/// ops only; once that device holds them (the revocation's causal past includes content ops)
/// it no longer offers the document (REP-33).
#[test]
fn a_peer_replica_serves_a_removed_device_the_ops_only() {
    let (alice, bob, carol) = (Peer::new("alice"), Peer::new("bob"), Peer::new("carol"));
    let doc = share(&alice, &bob);
    let gate = ReplicaGate::new(alice.replica.clone());
    let held = alice.items(SubjectId(doc.0));
    assert!(held.iter().all(|i| gate.may_serve(&bob.id(), i)));
    alice
        .replica
        .lock()
        .unwrap()
        .revoke(&doc.0, AgentId::Individual(bob.id()))
        .unwrap();
    for item in &alice.items(SubjectId(doc.0)) {
        let op = matches!(item.kind(), ItemKind::Auth | ItemKind::Content);
        assert_eq!(gate.may_serve(&bob.id(), item), op, "{:?}", item.kind());
        assert!(!gate.may_serve(&carol.id(), item));
    }
    assert!(gate.offers(&SubjectId(doc.0)));
    // Bob's own replica, once it holds the revocation, no longer offers the document.
    let bob_gate = ReplicaGate::new(bob.replica.clone());
    assert!(bob_gate.offers(&SubjectId(doc.0)));
    let auth: Vec<Item> = alice
        .items(SubjectId(doc.0))
        .into_iter()
        .filter(|i| matches!(i.kind(), ItemKind::Auth | ItemKind::Content))
        .collect();
    bob.replica
        .lock()
        .unwrap()
        .ingest_all(PeerTag::LOCAL, auth)
        .unwrap();
    assert!(!bob_gate.offers(&SubjectId(doc.0)));
}
