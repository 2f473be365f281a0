//! Issue 16 #4 (REP-24, STORE-16): a streamed write that is interrupted leaves no orphaned
//! pieces. A write that fails (its reader errors, or the store refuses a piece) removes the
//! pieces it stored before it returns; a write killed midway (here: its reader panics, so
//! nothing after that point runs, as with `kill -9`) leaves pieces that the next
//! `Replica::open` removes. Either way the device then pushes nothing a relay refuses, and the
//! relay (capability policy on loopback) holds no piece that no change lists (RELAY-4).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod replicas;

use std::collections::HashSet;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use keyhive_core::Hash;
use keyhive_core::capability::{Access, AgentId};
use keyhive_core::identity::{DocumentId, IndividualId};
use keyhive_sync::blob::Blob;
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::client::{Client, SyncReport};
use keyhive_sync::reconcile::summary::Summary;
use keyhive_sync::replica::{PIECE_LEN, Replica, ReplicaError, ReplicaGate};
use keyhive_sync::store::RedbStore;
use keyhive_sync::{Item, ItemKind, MemoryStore, Store, StoreError, SubjectId};

/// A reader of `len` bytes that fails (or panics, standing in for a kill) once `fail_at` bytes
/// were read.
struct Interrupted {
    read: usize,
    fail_at: usize,
    panic: bool,
}

impl Read for Interrupted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.read >= self.fail_at {
            if self.panic {
                panic!("the process is killed here");
            }
            return Err(std::io::Error::other("the source went away"));
        }
        let n = buf.len().min(self.fail_at - self.read);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = ((self.read + i) % 251) as u8;
        }
        self.read += n;
        Ok(n)
    }
}

/// Far enough into a stream that several pieces were cut and stored.
const FAIL_AT: usize = 5 * PIECE_LEN;

/// The pieces `store` holds that no change it holds lists (REP-24's orphans), and how many
/// pieces it holds.
fn unlisted_pieces(store: &dyn Store) -> (Vec<Hash>, usize) {
    let mut held = Vec::new();
    let mut listed = HashSet::new();
    for subject in store.subjects().unwrap() {
        for hash in store.hashes(&subject).unwrap() {
            let item = store.get(&hash).unwrap().unwrap();
            if item.kind() != ItemKind::Blob {
                continue;
            }
            match Blob::from_bytes(item.envelope()) {
                Ok(Blob::Piece { .. }) => held.push(hash),
                Ok(Blob::Change { pieces, .. }) => listed.extend(pieces),
                Err(_) => {}
            }
        }
    }
    let total = held.len();
    (
        held.into_iter().filter(|h| !listed.contains(h)).collect(),
        total,
    )
}

/// Every subject's summary is that of its hashes (STORE-4 after removals).
fn summaries_agree(store: &dyn Store) {
    for subject in store.subjects().unwrap() {
        let hashes = store.hashes(&subject).unwrap();
        assert!(!hashes.is_empty(), "an empty subject is not listed");
        assert_eq!(store.summary(&subject).unwrap(), Summary::of(&hashes));
    }
}

/// A device behind a `ReplicaGate`, synced with a relay until quiet.
struct Synced<S: Store + Clone> {
    replica: Arc<Mutex<Replica<S>>>,
    client: Arc<Client>,
}

impl<S: Store + Clone> Synced<S> {
    fn new(replica: Replica<S>) -> Self {
        let key = replica.device().signing_key().clone();
        let store: Arc<dyn Store> = Arc::new(replica.store().clone());
        let replica = Arc::new(Mutex::new(replica));
        let gate = Arc::new(ReplicaGate::new(replica.clone()));
        Synced {
            client: Client::new(key, store, gate),
            replica,
        }
    }

    async fn sync(&self, url: &str) -> SyncReport {
        self.replica.lock().unwrap().prepare_all().unwrap();
        let session = self.client.connect(url).await.unwrap();
        let mut total = SyncReport::default();
        for _ in 0..4 {
            let r = self.client.sync_once(&session).await.unwrap();
            total.merge(&r);
            if r.pulled == 0 && r.refused + r.rejected + r.parked == 0 {
                break;
            }
        }
        total
    }
}

/// A document with one small and one streamed change, on `store`.
fn document_with_history<S: Store>(store: S) -> (Replica<S>, DocumentId, Vec<u8>) {
    let mut r = replicas::replica_with("alice", store);
    let doc = r.create_document().unwrap();
    r.write(doc, b"first").unwrap();
    let big: Vec<u8> = (0..3 * PIECE_LEN).map(|i| (i % 7) as u8).collect();
    r.write(doc, &big).unwrap();
    (r, doc, big)
}

/// Once synced, a device has nothing left to push: no piece it holds is refused by the relay
/// and sent again on every sync (what orphaned pieces did before REP-24).
async fn pushes_nothing_more<S: Store + Clone>(device: &Synced<S>, url: &str) {
    let report = device.sync(url).await;
    assert_eq!(
        (report.pushed, report.refused),
        (0, 0),
        "a second sync pushed again: {report:?}"
    );
    assert!(report.bytes_sent < PIECE_LEN as u64, "{report:?}");
}

/// The relay holds every piece the device's changes list and no other (RELAY-4).
fn relay_holds_no_orphan(relay: &MemoryStore, device: &dyn Store) {
    let (orphans, held) = unlisted_pieces(relay);
    assert!(orphans.is_empty(), "the relay holds unlisted pieces");
    assert_eq!(
        held,
        unlisted_pieces(device).1,
        "every listed piece reached the relay"
    );
}

/// REP-24: a write whose reader fails midway removes the pieces it stored before returning
/// the error; nothing of it is pushed, and the document reads as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rep24_a_failed_streamed_write_removes_its_pieces_at_once() {
    let relay_store = Arc::new(MemoryStore::new());
    let (relay, _) = common::start(relay_store.clone(), Arc::new(CapabilityPolicy::new([]))).await;
    let (mut r, doc, big) = document_with_history(Arc::new(MemoryStore::new()));
    let before: Vec<Hash> = r.store().hashes(&SubjectId(doc.0)).unwrap();
    let failed = r.write_stream(
        doc,
        Interrupted {
            read: 0,
            fail_at: FAIL_AT,
            panic: false,
        },
    );
    assert!(matches!(failed, Err(ReplicaError::Stream(_))), "{failed:?}");
    assert_eq!(unlisted_pieces(r.store().as_ref()).0, Vec::<Hash>::new());
    assert_eq!(r.store().hashes(&SubjectId(doc.0)).unwrap(), before);
    summaries_agree(r.store().as_ref());
    assert_eq!(replicas::read(&r, doc), Some(big));

    let device = Synced::new(r);
    device.sync(&relay.url()).await;
    pushes_nothing_more(&device, &relay.url()).await;
    relay_holds_no_orphan(
        &relay_store,
        device.replica.lock().unwrap().store().as_ref(),
    );
}

/// A store whose `put` fails from the `k`-th call on (a full disk mid-write).
struct FailsAfter {
    inner: MemoryStore,
    puts_left: AtomicUsize,
}

impl Store for FailsAfter {
    fn put(&self, items: &[Item]) -> Result<Vec<bool>, StoreError> {
        if self
            .puts_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            return Err(StoreError::Unusable {
                path: "injected-full-disk.redb".into(),
            });
        }
        self.inner.put(items)
    }
    fn get(&self, hash: &Hash) -> Result<Option<Item>, StoreError> {
        self.inner.get(hash)
    }
    fn contains(&self, hash: &Hash) -> Result<bool, StoreError> {
        self.inner.contains(hash)
    }
    fn hashes(&self, subject: &SubjectId) -> Result<Vec<Hash>, StoreError> {
        self.inner.hashes(subject)
    }
    fn summary(&self, subject: &SubjectId) -> Result<Summary, StoreError> {
        self.inner.summary(subject)
    }
    fn subjects(&self) -> Result<Vec<SubjectId>, StoreError> {
        self.inner.subjects()
    }
    fn remove(&self, hashes: &[Hash]) -> Result<Vec<bool>, StoreError> {
        self.inner.remove(hashes)
    }
}

/// REP-24: a write whose store refuses a piece midway (3 pieces stored, the 4th refused)
/// removes the 3 before it returns the store's error.
#[test]
fn rep24_a_store_failing_mid_write_leaves_no_piece() {
    let store = Arc::new(FailsAfter {
        inner: MemoryStore::new(),
        puts_left: AtomicUsize::new(usize::MAX),
    });
    let (mut r, doc, _) = document_with_history(store.clone());
    let held = unlisted_pieces(&store.inner).1;
    store.puts_left.store(3, Ordering::SeqCst);
    let failed = r.write_stream(
        doc,
        Interrupted {
            read: 0,
            fail_at: 2 * FAIL_AT,
            panic: false,
        },
    );
    assert!(
        matches!(
            failed,
            Err(ReplicaError::Store(StoreError::Unusable { .. }))
        ),
        "{failed:?}"
    );
    let (orphans, now) = unlisted_pieces(&store.inner);
    assert_eq!(orphans, Vec::<Hash>::new());
    assert_eq!(now, held);
    summaries_agree(&store.inner);
}

/// REP-24: a write killed midway (its pieces stored, its manifest never) leaves pieces no
/// change lists; reopening the replica (on redb, as the CLI does) removes them in one step,
/// keeps everything else, and the device then pushes nothing a relay refuses. A later write
/// and a reader on another device work as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rep24_pieces_of_a_killed_write_are_removed_when_the_replica_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let relay_store = Arc::new(MemoryStore::new());
    let (relay, _) = common::start(relay_store.clone(), Arc::new(CapabilityPolicy::new([]))).await;
    let (r, doc, big) = document_with_history(Arc::new(RedbStore::open(&path).unwrap()));
    let kept: Vec<Hash> = r.store().hashes(&SubjectId(doc.0)).unwrap();
    let device = r.device().clone();
    let secrets: Vec<_> = r.cgka_secrets().collect();

    // The kill: nothing after the reader's panic runs (no cleanup, no manifest).
    let mut r = r;
    let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        r.write_stream(
            doc,
            Interrupted {
                read: 0,
                fail_at: FAIL_AT,
                panic: true,
            },
        )
    }));
    assert!(killed.is_err());
    let (orphans, _) = unlisted_pieces(r.store().as_ref());
    assert!(
        orphans.len() >= 4,
        "the killed write left its pieces: {}",
        orphans.len()
    );
    drop(r);

    // The next process.
    let store = Arc::new(RedbStore::open(&path).unwrap());
    let mut r = Replica::open(device, store).unwrap();
    r.import_cgka_secrets(secrets);
    for orphan in &orphans {
        assert!(!r.store().contains(orphan).unwrap());
    }
    assert_eq!(unlisted_pieces(r.store().as_ref()).0, Vec::<Hash>::new());
    assert_eq!(r.store().hashes(&SubjectId(doc.0)).unwrap(), kept);
    summaries_agree(r.store().as_ref());
    assert_eq!(replicas::read(&r, doc), Some(big));

    // Nothing a relay refuses is pushed, and the relay holds no orphan (RELAY-4).
    let alice = Synced::new(r);
    alice.sync(&relay.url()).await;
    pushes_nothing_more(&alice, &relay.url()).await;
    relay_holds_no_orphan(&relay_store, alice.replica.lock().unwrap().store().as_ref());

    // Writing again works and reaches a reader on another device.
    let bob = Synced::new(replicas::replica_with("bob", Arc::new(MemoryStore::new())));
    let bob_card = replicas::card(&bob.replica.lock().unwrap());
    let again: Vec<u8> = (0..2 * PIECE_LEN + 5).map(|i| (i % 13) as u8).collect();
    {
        let mut a = alice.replica.lock().unwrap();
        let bob_id = IndividualId(bob_card.device);
        a.add_contact(bob_card).unwrap();
        a.grant(&doc.0, AgentId::Individual(bob_id), Access::Read)
            .unwrap();
        a.write(doc, &again).unwrap();
    }
    alice.sync(&relay.url()).await;
    pushes_nothing_more(&alice, &relay.url()).await;
    bob.sync(&relay.url()).await;
    assert_eq!(
        replicas::read(&*bob.replica.lock().unwrap(), doc),
        Some(again)
    );
    relay_holds_no_orphan(&relay_store, alice.replica.lock().unwrap().store().as_ref());
}
