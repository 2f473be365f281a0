//! Issue 10, deliverable 4: revocation reaches the revoked (REP-30..REP-33, SYNC-85). A device
//! removed from a document is served the document's ops (auth ops and the signed headers of
//! content ops, which share one causal graph) and no ciphertext or key agreement; once its
//! replica holds the revocation, a local write fails naming the revocation, the document is no
//! longer among what it can reach, and its syncs offer of the document only the ops it authored
//! there and holds valid, with their ciphertext (so the relay refuses nothing of it, and a write
//! made before the removal, or its own leave, still arrives).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod peers;

use std::sync::Arc;

use keyhive_core::capability::{Access, AgentId, PeerTag};
use keyhive_core::identity::DocumentId;
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::policy::{AccessPolicy, Offer};
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
    assert_eq!(gate.offers(&SubjectId(doc.0)), Offer::All);
    // Bob's own replica, once it holds the revocation, offers nothing of the document: he
    // authored nothing there (REP-33).
    let bob_gate = ReplicaGate::new(bob.replica.clone());
    assert_eq!(bob_gate.offers(&SubjectId(doc.0)), Offer::All);
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
    assert!(bob_gate.offers(&SubjectId(doc.0)).is_empty());
}

/// Alice administers a group through which Bob writes a document (the group holds `write` on
/// it); Bob is an admin of the group when `bob_admin`. Both sync. Returns (group, document).
fn share_through_group(
    alice: &Peer,
    bob: &Peer,
    bob_admin: bool,
) -> (keyhive_core::identity::GroupId, DocumentId) {
    let mut a = alice.replica.lock().unwrap();
    let mut b = bob.replica.lock().unwrap();
    a.add_contact(b.device().contact_card().unwrap()).unwrap();
    b.add_contact(a.device().contact_card().unwrap()).unwrap();
    let group = a.create_group().unwrap();
    let level = if bob_admin {
        Access::Admin
    } else {
        Access::Write
    };
    a.grant(&group.0, AgentId::Individual(b.device().id()), level)
        .unwrap();
    let doc = a.create_document().unwrap();
    a.grant(&doc.0, AgentId::Group(group), Access::Write)
        .unwrap();
    a.write(doc, b"v1").unwrap();
    (group, doc)
}

/// REP-33 (amended): Bob writes the document while offline, then is removed from the group
/// (by Alice, or by himself: `leave`) before he syncs. His sync still delivers his valid write
/// (and his own leave) and nothing the relay refuses; Alice then reads the write if it is valid
/// (his own leave follows it) and judges it as Bob does if she holds it; his next sync pushes
/// nothing.
async fn a_removed_device_delivers_what_it_wrote_before(leave: bool) {
    let relay_store = Arc::new(MemoryStore::new());
    let (relay, _) = common::start(relay_store.clone(), Arc::new(CapabilityPolicy::new([]))).await;
    let url = relay.url();
    let (alice, bob) = (Peer::new("alice"), Peer::new("bob"));
    let (group, doc) = share_through_group(&alice, &bob, leave);
    alice.sync(&url).await;
    bob.sync(&url).await;
    assert_eq!(bob.read(doc).as_deref(), Some(&b"v1"[..]));

    // Offline: Bob writes, then is removed from the group.
    let write = bob.replica.lock().unwrap().write(doc, b"offline").unwrap();
    let me = AgentId::Individual(bob.id());
    let revocation = if leave {
        bob.replica.lock().unwrap().revoke(&group.0, me).unwrap()[0]
    } else {
        let revocation = alice.replica.lock().unwrap().revoke(&group.0, me).unwrap()[0];
        alice.sync(&url).await;
        revocation
    };

    let first = bob.sync(&url).await;
    assert_eq!(first.refused, 0, "{first:?}");
    // After his own leave the write is valid and must reach the relay. Alice's removal is
    // concurrent with it, so it is excluded (CAP-11): whether it travels depends on whether Bob
    // pulled the removal before pushing (REP-33 offers only his valid ops), never on validity;
    // so may whether he pushes anything at all (SYNC-81a: not Alice's card, as they share
    // nothing now).
    if leave {
        assert!(first.pushed > 0, "{first:?}");
        assert!(
            relay_store.contains(&write).unwrap(),
            "the write reached the relay"
        );
    }
    assert!(relay_store.contains(&revocation).unwrap());
    {
        let b = bob.replica.lock().unwrap();
        assert!(
            b.require_unrevoked(&doc.0, Access::Pull).is_err(),
            "bob knows"
        );
    }
    alice.sync(&url).await;
    assert!(alice.holds(&revocation));
    // Alice judges the write as Bob does: valid after his own leave, which follows it; excluded
    // (CAP-11) by Alice's concurrent removal, so she keeps reading her own change.
    let valid = alice.replica.lock().unwrap().validity(&write);
    let bobs = bob.replica.lock().unwrap().validity(&write);
    assert_eq!(
        bobs.as_ref().is_some_and(|v| v.is_valid()),
        leave,
        "{bobs:?}"
    );
    if alice.holds(&write) {
        assert_eq!(valid, bobs);
    } else {
        assert!(!leave, "a valid write reached Alice");
    }
    let expected: &[u8] = if leave { b"offline" } else { b"v1" };
    assert_eq!(alice.read(doc).as_deref(), Some(expected));

    // Everything of his own is at the relay. The next sync reconciles the document and the
    // group only where he holds valid ops of his own, finds nothing to push there, and the
    // link settles them; where he holds none, they are not reconciled at all. Nothing is
    // refused.
    let next = bob.sync(&url).await;
    assert_eq!(next.refused, 0, "{next:?}");
    let gate = ReplicaGate::new(bob.replica.clone());
    for subject in [SubjectId(doc.0), SubjectId(group.0)] {
        let offer = gate.offers(&subject);
        assert_eq!(!offer.is_empty(), leave, "{offer:?}");
        assert_eq!(next.closed.contains(&subject), leave, "{next:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_removed_before_it_synced_still_delivers_its_earlier_write() {
    a_removed_device_delivers_what_it_wrote_before(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_left_before_it_synced_delivers_its_write_and_its_leave() {
    a_removed_device_delivers_what_it_wrote_before(true).await;
}
