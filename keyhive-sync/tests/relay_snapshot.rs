//! RELAY-8: a relay keeps a start snapshot (what it admitted and stored, authenticated with a
//! key derived from its secret) in its store, and its start replays the snapshot instead of
//! the store, then admits only the items the snapshot does not cover.
//!
//! - a start from the snapshot decides exactly as a full replay (served subjects, shares,
//!   strangers, pushes), on the memory and redb stores (PostgreSQL: the store conformance
//!   suite, STORE-19);
//! - it reads no stored item the snapshot covers (so its store reads do not grow with the
//!   store), and reads only the items stored after it;
//! - a damaged, truncated, foreign or mismatched snapshot is refused with a typed reason and
//!   the whole store is replayed;
//! - the relay writes it after a start that read the store, periodically while serving and
//!   at a clean shutdown.
//!
//! The measured start times (redb, release) are `#[ignore]`d:
//! `cargo test --release -p keyhive-sync --test relay_snapshot -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod replicas;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keyhive_core::Hash;
use keyhive_core::capability::{Access, AgentId};
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::identity::{Device, IndividualId};
use keyhive_sync::capability_policy::{CapabilityPolicy, Loaded, SnapshotError};
use keyhive_sync::client::Session;
use keyhive_sync::protocol::PushOutcome;
use keyhive_sync::reconcile::summary::Summary;
use keyhive_sync::relay::{Limits, Relay, RelayConfig, StrangerQuota};
use keyhive_sync::replica::Replica;
use keyhive_sync::store::MarkKey;
use keyhive_sync::{AccessPolicy, Item, MemoryStore, RedbStore, Store, StoreError, SubjectId};
use replicas::{all_items, card, me};

fn key(seed: u8) -> MarkKey {
    MarkKey::from_identity(&SigningKey::from_seed(&[seed; 32]))
}

fn relay_policy(seed: u8) -> CapabilityPolicy {
    CapabilityPolicy::new([]).with_marks(key(seed))
}

/// A store that counts the items read from it.
struct Counting<S> {
    inner: S,
    gets: AtomicUsize,
    /// Whether reading the snapshot fails (a damaged table).
    unreadable: std::sync::atomic::AtomicBool,
}

impl<S> Counting<S> {
    fn new(inner: S) -> Self {
        Counting {
            inner,
            gets: AtomicUsize::new(0),
            unreadable: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn take_gets(&self) -> usize {
        self.gets.swap(0, Ordering::SeqCst)
    }
}

impl<S: Store> Store for Counting<S> {
    fn put(&self, items: &[Item]) -> Result<Vec<bool>, StoreError> {
        self.inner.put(items)
    }
    fn get(&self, hash: &Hash) -> Result<Option<Item>, StoreError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
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
    fn put_marks(&self, marks: &[(Hash, keyhive_sync::store::Mark)]) -> Result<(), StoreError> {
        self.inner.put_marks(marks)
    }
    fn marks(&self) -> Result<Vec<(Hash, keyhive_sync::store::Mark)>, StoreError> {
        self.inner.marks()
    }
    fn put_snapshot(&self, snapshot: &[u8]) -> Result<(), StoreError> {
        self.inner.put_snapshot(snapshot)
    }
    fn snapshot(&self) -> Result<Option<Vec<u8>>, StoreError> {
        if self.unreadable.load(Ordering::SeqCst) {
            return Err(StoreError::Corrupt {
                path: "relay.redb".into(),
                what: "the snapshot table",
            });
        }
        self.inner.snapshot()
    }
}

/// The devices of the story and the items a relay holds of it: a team, two documents (one
/// shared with the team), a writer later revoked, an inline and a streamed change (pieces),
/// key agreement, contact cards, and a stranger's own document.
struct Story {
    devices: Vec<IndividualId>,
    items: Vec<Item>,
    /// Items pushed after the first start: a write by alice and one by the stranger.
    later: Vec<Item>,
}

fn story() -> Story {
    let mut alice =
        Replica::open(Device::generate(Some("alice".into())), MemoryStore::new()).expect("alice");
    let bob = Replica::open(Device::generate(Some("bob".into())), MemoryStore::new()).unwrap();
    let carol = Replica::open(Device::generate(Some("carol".into())), MemoryStore::new()).unwrap();
    let mut eve = Replica::open(Device::generate(Some("eve".into())), MemoryStore::new()).unwrap();
    alice.add_contact(card(&bob)).unwrap();
    alice.add_contact(card(&carol)).unwrap();
    let team = alice.create_group().unwrap();
    let notes = alice.create_document().unwrap();
    let plans = alice.create_document().unwrap();
    alice.grant(&team.0, me(&carol), Access::Write).unwrap();
    alice
        .grant(&plans.0, AgentId::Group(team), Access::Read)
        .unwrap();
    alice.grant(&notes.0, me(&bob), Access::Write).unwrap();
    alice.write(notes, b"first").unwrap();
    alice.write(notes, &vec![7u8; 150_000]).unwrap();
    alice.write(plans, b"plan").unwrap();
    alice.revoke(&notes.0, me(&bob)).unwrap();
    let own = eve.create_document().unwrap();
    eve.write(own, b"mine").unwrap();
    let mut items = all_items(&alice);
    items.extend(all_items(&eve));
    let before: std::collections::HashSet<Hash> = items.iter().map(Item::hash).collect();
    alice.write(plans, b"later").unwrap();
    eve.write(own, b"later").unwrap();
    let mut later: Vec<Item> = all_items(&alice)
        .into_iter()
        .chain(all_items(&eve))
        .filter(|i| !before.contains(&i.hash()))
        .collect();
    keyhive_sync::admission::apply_order(&mut later);
    let devices = [&alice, &bob, &carol]
        .iter()
        .map(|r| r.device().id())
        .chain([eve.device().id(), Device::generate(None).id()])
        .collect();
    Story {
        devices,
        items,
        later,
    }
}

/// Every decision a relay makes from its graph, for every device and subject of the story.
fn decisions(policy: &CapabilityPolicy, store: &dyn Store, story: &Story) -> Vec<String> {
    let mut out = vec![format!("held ops {:?}", policy.held_ops())];
    let mut subjects = store.subjects().unwrap();
    subjects.extend(story.devices.iter().map(|d| SubjectId(d.0)));
    for who in &story.devices {
        out.push(format!("{who:?} reaches {:?}", policy.reachable(who)));
        out.push(format!(
            "{who:?} stranger {:?}",
            policy.stranger_subjects(who)
        ));
        for subject in &subjects {
            out.push(format!(
                "{who:?} {subject:?}: share {:?} pull {} removed {}",
                policy.share(who, subject),
                policy.may_pull(who, subject),
                policy.removed_from(who, subject)
            ));
        }
        for item in &story.items {
            out.push(format!(
                "{who:?} serve {}: {}",
                item.hash(),
                policy.may_serve(who, item)
            ));
        }
    }
    out
}

/// The pushes of `later` as a relay with `policy` answers them, in order.
fn pushes(policy: &CapabilityPolicy, story: &Story) -> Vec<String> {
    let from = story.devices[0];
    story
        .later
        .iter()
        .map(|item| format!("{}: {:?}", item.hash(), policy.check_push(&from, item)))
        .collect()
}

fn full_replay(store: &dyn Store) -> CapabilityPolicy {
    let policy = CapabilityPolicy::new([]);
    policy.load(store).unwrap();
    policy
}

fn starts_from_the_snapshot_as_from_the_store(store: &dyn Store, story: &Story) {
    store.put(&story.items).unwrap();
    let first = relay_policy(1).load_counted(store).unwrap();
    assert_eq!(first.from_snapshot, 0, "no snapshot yet");
    assert_eq!(first.admitted, story.items.len());
    assert!(
        store.snapshot().unwrap().is_some(),
        "written after the start"
    );
    let resumed = relay_policy(1);
    let second = resumed.load_counted(store).unwrap();
    assert_eq!(
        (second.admitted, second.from_snapshot, second.verified),
        (story.items.len(), story.items.len(), 0),
        "everything from the snapshot"
    );
    assert_eq!(second.snapshot_refused, None);
    let replayed = full_replay(store);
    assert_eq!(
        decisions(&resumed, store, story),
        decisions(&replayed, store, story)
    );
    assert_eq!(pushes(&resumed, story), pushes(&replayed, story));
}

/// RELAY-8: a start from the snapshot makes the same decisions as a full replay (memory).
#[test]
fn memory_store_start_from_snapshot_equals_full_replay() {
    starts_from_the_snapshot_as_from_the_store(&MemoryStore::new(), &story());
}

/// RELAY-8: a start from the snapshot makes the same decisions as a full replay (redb).
#[test]
fn redb_store_start_from_snapshot_equals_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("relay.redb")).unwrap();
    starts_from_the_snapshot_as_from_the_store(&store, &story());
}

/// RELAY-8: a start from the snapshot reads no item it covers (before: every stored item was
/// read and admitted again); items stored after it are the only ones read, and the start
/// then decides as a full replay.
#[test]
fn a_start_reads_only_the_items_stored_after_the_snapshot() {
    let story = story();
    let store = Counting::new(MemoryStore::new());
    store.put(&story.items).unwrap();
    relay_policy(1).load(&store).unwrap();
    assert_eq!(
        store.take_gets(),
        story.items.len(),
        "the first start reads all"
    );
    let again = relay_policy(1).load_counted(&store).unwrap();
    assert_eq!(
        store.take_gets(),
        0,
        "a start from the snapshot reads no item"
    );
    assert_eq!(again.from_snapshot, story.items.len());
    // Stored behind the relay's back (no snapshot update): read at the next start.
    store.put(&story.later).unwrap();
    let resumed = relay_policy(1);
    let third = resumed.load_counted(&store).unwrap();
    assert_eq!(
        store.take_gets(),
        story.later.len(),
        "only the new items are read"
    );
    assert_eq!(
        (third.from_snapshot, third.admitted),
        (story.items.len(), story.items.len() + story.later.len())
    );
    assert_eq!(third.verified, story.later.len(), "unmarked: verified");
    let replayed = full_replay(&store);
    assert_eq!(
        decisions(&resumed, &store, &story),
        decisions(&replayed, &store, &story)
    );
    store.take_gets();
    let fourth = relay_policy(1).load_counted(&store).unwrap();
    assert_eq!(store.take_gets(), 0, "the third start wrote a new snapshot");
    assert_eq!(fourth.from_snapshot, fourth.admitted);
}

/// RELAY-8: a damaged, truncated, foreign, unreadable or mismatched snapshot is refused with its reason,
/// and the start replays the whole store, deciding exactly as without a snapshot.
#[test]
fn a_bad_snapshot_is_refused_and_the_store_replayed() {
    let story = story();
    let store = MemoryStore::new();
    store.put(&story.items).unwrap();
    relay_policy(1).load(&store).unwrap();
    let good = store.snapshot().unwrap().unwrap();
    let replayed = full_replay(&store);
    let expected = decisions(&replayed, &store, &story);
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 1;
    let other = MemoryStore::new();
    other.put(&story.items).unwrap();
    other.put(&story.later).unwrap();
    relay_policy(1).load(&other).unwrap();
    let of_another_store = other.snapshot().unwrap().unwrap();
    let cases: Vec<(&str, Vec<u8>, SnapshotError)> = vec![
        ("a flipped bit", flipped, SnapshotError::Tag),
        (
            "truncated",
            good[..good.len() - 1].to_vec(),
            SnapshotError::Tag,
        ),
        ("empty", Vec::new(), SnapshotError::Truncated),
        ("garbage", vec![0x5a; 4096], SnapshotError::NotASnapshot),
        (
            "another store's, holding items this one lacks",
            of_another_store,
            SnapshotError::NotInStore,
        ),
    ];
    for (what, bytes, reason) in cases {
        store.put_snapshot(&bytes).unwrap();
        let policy = relay_policy(1);
        let loaded = policy.load_counted(&store).unwrap();
        assert_eq!(loaded.snapshot_refused, Some(reason), "{what}");
        assert_eq!(
            (loaded.from_snapshot, loaded.admitted),
            (0, story.items.len()),
            "{what}: the whole store is replayed"
        );
        assert_eq!(decisions(&policy, &store, &story), expected, "{what}");
        assert_eq!(
            store.snapshot().unwrap().as_deref(),
            Some(&good[..]),
            "{what}: a good snapshot replaces it"
        );
    }
    store.put_snapshot(&good).unwrap();
    let foreign = relay_policy(2).load_counted(&store).unwrap();
    assert_eq!(foreign.snapshot_refused, Some(SnapshotError::Tag));
    assert_eq!(
        foreign.from_snapshot, 0,
        "another relay's snapshot is not trusted"
    );
    let broken = Counting::new(MemoryStore::new());
    broken.put(&story.items).unwrap();
    relay_policy(1).load(&broken).unwrap();
    broken.unreadable.store(true, Ordering::SeqCst);
    let unreadable = relay_policy(1);
    let loaded = unreadable.load_counted(&broken).unwrap();
    assert_eq!(
        (loaded.snapshot_refused, loaded.admitted),
        (Some(SnapshotError::Unreadable), story.items.len()),
        "a snapshot the store cannot read: the whole store is replayed"
    );
    assert_eq!(decisions(&unreadable, &broken, &story), expected);
    let without_key = CapabilityPolicy::new([]).load_counted(&store).unwrap();
    assert_eq!(
        (without_key.from_snapshot, without_key.snapshot_refused),
        (0, None),
        "a relay without a key ignores snapshots"
    );
}

/// Pushes `items` until all are stored: key agreement comes in hash order (`apply_order`
/// orders only ops causally), so an op refused for a missing predecessor goes again.
async fn push_all(session: &Session, items: &[Item]) {
    let mut rest = items.to_vec();
    for _ in 0..8 {
        if rest.is_empty() {
            return;
        }
        let outcomes = session.push(&rest).await.unwrap();
        rest = rest
            .into_iter()
            .zip(outcomes)
            .filter(|(_, o)| !matches!(o, PushOutcome::Stored | PushOutcome::Duplicate))
            .map(|(i, _)| i)
            .collect();
    }
    assert!(rest.is_empty(), "{} items never stored", rest.len());
}

/// RELAY-8: a serving relay writes its snapshot at a clean shutdown (and periodically, once
/// `SNAPSHOT_EVERY` items were stored since the last), so its next start reads no item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_writes_its_snapshot_while_serving_and_at_shutdown() {
    let store = Arc::new(MemoryStore::new());
    let identity = Device::generate(None).signing_key().clone();
    let mark_key = || MarkKey::from_identity(&identity);
    let policy = Arc::new(CapabilityPolicy::new([]).with_marks(mark_key()));
    policy.load(store.as_ref()).unwrap();
    assert!(
        store.snapshot().unwrap().is_none(),
        "empty store: no snapshot"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // The writer holds no grant from anyone: lift the stranger quota (SYNC-104) and its budget
    // of signature checks (SYNC-111) above it.
    let mut limits = Limits::default();
    limits.stranger_quota = StrangerQuota::new(1_000_000, 1 << 30);
    limits.stranger_checks_per_second = 1e12;
    limits.stranger_burst_checks = 1e12;
    limits.all_strangers_checks_per_second = 1e12;
    limits.all_strangers_burst_checks = 1e12;
    let relay = Relay::serve(
        listener,
        store.clone(),
        policy,
        RelayConfig::new(identity.clone()).with_limits(limits),
    )
    .unwrap();
    let writer = Device::generate(Some("alice".into()));
    let mut alice = Replica::open(writer.clone(), MemoryStore::new()).unwrap();
    let doc = alice.create_document().unwrap();
    // One item a write: small changes travel inline (INL-1).
    let writes = keyhive_sync::capability_policy::snapshot::SNAPSHOT_EVERY + 10;
    for n in 0..writes {
        alice.write(doc, &(n as u64).to_le_bytes()).unwrap();
    }
    let mut items = all_items(&alice);
    keyhive_sync::admission::apply_order(&mut items);
    let session = Session::connect(&relay.url(), writer.signing_key(), None)
        .await
        .unwrap();
    for chunk in items.chunks(256) {
        push_all(&session, chunk).await;
    }
    let periodic = store.snapshot().unwrap().expect("written while serving");
    let between = relay_policy_of(&identity)
        .load_counted(store.as_ref())
        .unwrap();
    assert!(
        between.from_snapshot >= keyhive_sync::capability_policy::snapshot::SNAPSHOT_EVERY,
        "the periodic snapshot covers what was stored before it: {between:?}"
    );
    alice.write(doc, b"last").unwrap();
    let all = all_items(&alice);
    let mut last: Vec<Item> = all
        .into_iter()
        .filter(|i| !items.iter().any(|j| j.hash() == i.hash()))
        .collect();
    keyhive_sync::admission::apply_order(&mut last);
    push_all(&session, &last).await;
    drop(session);
    relay.shutdown().await.unwrap();
    let at_shutdown = store.snapshot().unwrap().unwrap();
    assert_ne!(at_shutdown, periodic, "brought up to date at shutdown");
    let restart = relay_policy_of(&identity)
        .load_counted(store.as_ref())
        .unwrap();
    assert_eq!(
        (restart.from_snapshot, restart.admitted, restart.verified),
        (items.len() + last.len(), items.len() + last.len(), 0),
        "the next start reads no item"
    );
}

fn relay_policy_of(identity: &SigningKey) -> CapabilityPolicy {
    CapabilityPolicy::new([]).with_marks(MarkKey::from_identity(identity))
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let out = f();
    (out, started.elapsed())
}

/// The items of one document with `writes` changes (two items each: op and change).
fn document_items(writes: usize) -> Vec<Item> {
    let device = Device::generate(Some("alice".into()));
    let mut alice = Replica::open(device, MemoryStore::new()).expect("open");
    let doc = alice.create_document().expect("doc");
    for n in 0..writes {
        alice.write(doc, &(n as u64).to_le_bytes()).expect("write");
    }
    all_items(&alice)
}

fn print_start(what: &str, loaded: &Loaded, took: Duration) {
    println!(
        "  {what}: {took:?} ({} admitted, {} from the snapshot, {} marked, {} verified)",
        loaded.admitted, loaded.from_snapshot, loaded.marked, loaded.verified
    );
}

/// RELAY-8 figures: a redb relay store at 10,004 and 40,004 items; the start before RELAY-8
/// (admitted on marks, RELAY-7), from the snapshot, and from the snapshot with 1,000 items
/// stored after it. A measurement, not a limit: run in release with `--ignored --nocapture`.
#[test]
#[ignore = "measurement; run with --release -- --ignored --nocapture"]
fn start_time_from_snapshot_measured() {
    for writes in [5_000, 20_000] {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path().join("relay.redb")).unwrap();
        let mut items = document_items(writes + 500);
        keyhive_sync::admission::apply_order(&mut items);
        let later = items.split_off(items.len() - 1_000);
        store.put(&items).unwrap();
        println!("{} items (redb):", items.len());
        let (first, took) = timed(|| relay_policy(1).load_counted(&store).unwrap());
        print_start("first start (verify, mark, write snapshot)", &first, took);
        let snapshot = store.snapshot().unwrap().unwrap();
        store.put_snapshot(&[]).unwrap();
        let (marked, took) = timed(|| relay_policy(1).load_counted(&store).unwrap());
        print_start("start on marks, no snapshot (before)", &marked, took);
        store.put_snapshot(&snapshot).unwrap();
        let (resumed, took) = timed(|| relay_policy(1).load_counted(&store).unwrap());
        print_start("start from the snapshot", &resumed, took);
        println!("  snapshot: {} bytes", snapshot.len());
        store.put(&later).unwrap();
        store.put_snapshot(&snapshot).unwrap();
        let (behind, took) = timed(|| relay_policy(1).load_counted(&store).unwrap());
        print_start(
            "start from the snapshot, 1,000 items stored after it",
            &behind,
            took,
        );
        assert_eq!(resumed.from_snapshot, items.len());
        assert_eq!(behind.admitted, items.len() + later.len());
    }
}
