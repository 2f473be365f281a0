//! Issue 10, deliverable 2 (SYNC-84): a device replica behind `ReplicaGate` stores each
//! received item exactly once, and `SyncReport` says what really arrived, was stored, was a
//! duplicate, was parked and was refused (by cause); an item parked or refused for want of a
//! predecessor is offered again by the next sync and stored then, never lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod peers;

use std::sync::Arc;

use keyhive_core::Hash;
use keyhive_core::capability::{Access, AgentId};
use keyhive_core::identity::DocumentId;
use keyhive_sync::client::SyncReport;
use keyhive_sync::policy::{AccessPolicy, MemoryPolicy, Refusal};
use keyhive_sync::{Item, ItemKind, MemoryStore, Store, SubjectId};

use peers::Peer;

/// SYNC-84: every received item is counted once, in exactly one bucket.
fn assert_balanced(r: &SyncReport) {
    assert_eq!(
        r.arrived,
        r.pulled + r.duplicates + r.parked + r.rejected,
        "{r:?}"
    );
    assert_eq!(r.rejected, r.rejections.total(), "{r:?}");
}

/// Alice's document, shared with Bob (read), with one change written after the grant; returns
/// the document, the grant's hash and the change's (blob, op) hashes.
fn shared_document(alice: &Peer, bob: &Peer) -> (DocumentId, Hash, Hash, Hash) {
    let mut a = alice.replica.lock().unwrap();
    let mut b = bob.replica.lock().unwrap();
    // Cards travel out of band here (the relay's `MemoryPolicy` serves only the document).
    a.add_contact(b.device().contact_card().unwrap()).unwrap();
    b.add_contact(a.device().contact_card().unwrap()).unwrap();
    drop(b);
    let doc = a.create_document().unwrap();
    let grant = a
        .grant(&doc.0, AgentId::Individual(bob.id()), Access::Read)
        .unwrap();
    // Over the inline limit (INL-2), so the change has a blob to account for.
    let op = a.write(doc, &hello()).unwrap();
    let blob = a
        .store()
        .hashes(&SubjectId(doc.0))
        .unwrap()
        .into_iter()
        .find(|h| {
            let item = a.store().get(h).unwrap().unwrap();
            item.kind() == ItemKind::Blob
                && keyhive_sync::blob::Blob::from_bytes(item.envelope())
                    .is_ok_and(|b| matches!(b, keyhive_sync::blob::Blob::Change { .. }))
        })
        .unwrap();
    (doc, grant, blob, op)
}

fn relay_policy(alice: &Peer, bob: &Peer, doc: DocumentId) -> Arc<MemoryPolicy> {
    let policy = common::policy();
    policy.grant_everything(alice.id());
    policy.grant_pull(bob.id(), SubjectId(doc.0));
    policy
}

/// SYNC-84: the old `ReplicaGate::check_push` stored every item, then the client stored it
/// again and reported it as not new (`pulled` read 0 or 2 where dozens arrived).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulled_counts_every_item_stored_once() {
    let (alice, bob) = (Peer::new("alice"), Peer::new("bob"));
    let (doc, ..) = shared_document(&alice, &bob);
    let relay_store = Arc::new(MemoryStore::new());
    let policy = relay_policy(&alice, &bob, doc);
    let (relay, _) = common::start(relay_store.clone(), policy.clone()).await;

    let a = alice.client.connect(&relay.url()).await.unwrap();
    let pushed = alice.client.sync_once(&a).await.unwrap();
    assert!(pushed.pushed > 0);
    let on_relay = relay_store.hashes(&SubjectId(doc.0)).unwrap().len();

    let b = bob.client.connect(&relay.url()).await.unwrap();
    let report = bob.client.sync_once(&b).await.unwrap();
    assert_balanced(&report);
    assert_eq!(report.arrived, on_relay, "{report:?}");
    assert_eq!(report.pulled, bob.count(SubjectId(doc.0)), "{report:?}");
    assert_eq!(report.pulled, on_relay, "{report:?}");
    assert_eq!(
        (report.duplicates, report.parked, report.rejected),
        (0, 0, 0)
    );

    // Nothing new: everything is already held, nothing arrives.
    let again = bob.client.sync_once(&b).await.unwrap();
    assert_eq!((again.arrived, again.pulled), (0, 0), "{again:?}");
}

/// SYNC-84, ADM-3, ADM-6: an op waiting for a predecessor is parked (not stored), the change
/// it names is refused as `Unnamed` (counted by cause, with a sample); both are offered again
/// by the next sync and stored once the predecessor arrives. Nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_and_refused_items_are_offered_again_and_counted_by_cause() {
    let (alice, bob) = (Peer::new("alice"), Peer::new("bob"));
    let (doc, grant, blob, op) = shared_document(&alice, &bob);
    let relay_store = Arc::new(MemoryStore::new());
    let policy = relay_policy(&alice, &bob, doc);
    let (relay, _) = common::start(relay_store.clone(), policy.clone()).await;

    // The relay (a trusting `MemoryPolicy`) gets the document without Bob's grant, which the
    // content op names as its causal predecessor.
    let a = alice.client.connect(&relay.url()).await.unwrap();
    let without_grant: Vec<Item> = alice
        .items(SubjectId(doc.0))
        .into_iter()
        .filter(|i| i.hash() != grant)
        .collect();
    a.push(&without_grant).await.unwrap();

    let b = bob.client.connect(&relay.url()).await.unwrap();
    let first = bob.client.sync_once(&b).await.unwrap();
    assert_balanced(&first);
    assert!(first.parked >= 1, "{first:?}");
    assert!(!bob.holds(&op) && !bob.holds(&blob));
    assert!(first.rejections.counts.get("Unnamed").copied().unwrap_or(0) >= 1);
    assert!(
        first
            .rejections
            .sample
            .iter()
            .any(|(h, r)| *h == blob && matches!(r, Refusal::Unnamed)),
        "{first:?}"
    );

    // The grant reaches the relay; Bob's next sync is offered the parked op and the refused
    // change again (he stored neither) and stores them.
    a.push(&alice.items(SubjectId(doc.0))).await.unwrap();
    let mut total = SyncReport::default();
    let mut quiet = false;
    for _ in 0..4 {
        let r = bob.client.sync_once(&b).await.unwrap();
        assert_balanced(&r);
        total.merge(&r);
        if r.arrived == 0 {
            quiet = true;
            break;
        }
    }
    assert!(
        bob.holds(&grant) && bob.holds(&op) && bob.holds(&blob),
        "{total:?}"
    );
    // Nothing is offered forever: every key-agreement op that waited was stored once applied.
    assert!(quiet, "{total:?}");
    assert_eq!(bob.count(SubjectId(doc.0)), alice.count(SubjectId(doc.0)));
    let replica = bob.replica.lock().unwrap();
    let latest = replica.latest_readable(doc).unwrap().unwrap();
    let mut out = Vec::new();
    replica.read_change(doc, &latest, &mut out).unwrap();
    assert_eq!(out, hello());
}

/// SYNC-84: the default (non-replica) `admit_batch` stores accepted items once, reports a
/// repeated item as a duplicate and each refusal with its typed cause.
#[test]
fn default_admit_batch_stores_once_and_reports_refusals() {
    let key = keyhive_core::crypto::signing::SigningKey::generate();
    let (s, other) = (common::subject(1), common::subject(2));
    let policy = MemoryPolicy::new();
    policy.grant_write(common::id(&key), s);
    let store = MemoryStore::new();
    let mine = common::items(&key, s, 0..3);
    let theirs = common::items(&key, other, 0..2);
    let mut batch = mine.clone();
    batch.extend(theirs);
    batch.push(mine[0].clone());
    let out = policy
        .admit_batch(&common::id(&key), batch, &store)
        .unwrap();
    let kinds: Vec<&str> = out
        .iter()
        .map(|(_, a)| match a {
            keyhive_sync::policy::Arrival::Stored => "stored",
            keyhive_sync::policy::Arrival::Duplicate => "duplicate",
            keyhive_sync::policy::Arrival::Parked => "parked",
            keyhive_sync::policy::Arrival::Refused(r) => r.cause(),
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "stored",
            "stored",
            "stored",
            "NotAuthorised",
            "NotAuthorised",
            "duplicate"
        ]
    );
    assert_eq!(store.hashes(&s).unwrap().len(), 3);
    assert!(store.hashes(&other).unwrap().is_empty());
}

/// The change Alice writes: larger than an inline change may be (INL-2).
fn hello() -> Vec<u8> {
    [&b"hello bob"[..], &[b' '; 1100][..]].concat()
}
