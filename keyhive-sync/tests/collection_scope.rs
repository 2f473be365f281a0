//! SYNC-50a, STORE-24: a relay answers a collection from what the requester reaches, not by
//! reading and judging every subject it stores.
//!
//! - the capability policy's `reachable` lists every subject a device may pull (its served
//!   subjects, its own card and the cards of the devices it shares a subject with, RELAY-5),
//!   checked for every device and subject of a story with a team, a revoked writer, a
//!   stranger and a device that shares nothing;
//! - a collection over a relay holding 200 unrelated people's documents reads the summaries
//!   of the requester's subjects only, and offers exactly what the scan over every stored
//!   subject (the policy asked about each) offers.
//!
//! The collection time at two relay sizes, listed against scanned, is `#[ignore]`d:
//! `cargo test --release -p keyhive-sync --test collection_scope -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod replicas;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{pk, start};
use keyhive_core::Hash;
use keyhive_core::capability::{Access, AgentId};
use keyhive_core::identity::{Device, IndividualId};
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::client::Session;
use keyhive_sync::policy::{Refusal, Share};
use keyhive_sync::protocol::SubjectOffer;
use keyhive_sync::reconcile::summary::Summary;
use keyhive_sync::replica::Replica;
use keyhive_sync::store::Mark;
use keyhive_sync::{AccessPolicy, Item, ItemKind, MemoryStore, Store, StoreError, SubjectId};
use replicas::{all_items, card, me};

/// A memory store counting the summaries it reads (each subject's, however asked).
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    summaries_read: AtomicUsize,
}

impl Counting {
    fn take(&self) -> usize {
        self.summaries_read.swap(0, Ordering::SeqCst)
    }

    fn read(&self, rows: usize) {
        self.summaries_read.fetch_add(rows, Ordering::SeqCst);
    }
}

impl Store for Counting {
    fn put(&self, items: &[Item]) -> Result<Vec<bool>, StoreError> {
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
        self.read(1);
        self.inner.summary(subject)
    }
    fn subjects(&self) -> Result<Vec<SubjectId>, StoreError> {
        self.inner.subjects()
    }
    fn summaries(&self) -> Result<Vec<(SubjectId, Summary)>, StoreError> {
        let all = self.inner.summaries()?;
        self.read(all.len());
        Ok(all)
    }
    fn summaries_of(
        &self,
        subjects: &[SubjectId],
    ) -> Result<Vec<(SubjectId, Summary)>, StoreError> {
        self.read(subjects.len());
        self.inner.summaries_of(subjects)
    }
    fn remove(&self, hashes: &[Hash]) -> Result<Vec<bool>, StoreError> {
        self.inner.remove(hashes)
    }
    fn put_marks(&self, marks: &[(Hash, Mark)]) -> Result<(), StoreError> {
        self.inner.put_marks(marks)
    }
    fn marks(&self) -> Result<Vec<(Hash, Mark)>, StoreError> {
        self.inner.marks()
    }
}

/// The capability policy with its list declared incomplete: the relay scans every stored
/// subject and asks `may_pull` about each (SYNC-50 without SYNC-50a), for comparison.
struct Scanning(Arc<CapabilityPolicy>);

impl AccessPolicy for Scanning {
    fn may_pull(&self, requester: &IndividualId, subject: &SubjectId) -> bool {
        self.0.may_pull(requester, subject)
    }
    fn check_push(&self, from: &IndividualId, item: &Item) -> Result<(), Refusal> {
        self.0.check_push(from, item)
    }
    fn reachable(&self, requester: &IndividualId) -> Vec<SubjectId> {
        self.0.reachable(requester)
    }
    fn share(&self, requester: &IndividualId, subject: &SubjectId) -> Share {
        self.0.share(requester, subject)
    }
    fn may_serve(&self, requester: &IndividualId, item: &Item) -> bool {
        self.0.may_serve(requester, item)
    }
    fn removed_from(&self, requester: &IndividualId, subject: &SubjectId) -> bool {
        self.0.removed_from(requester, subject)
    }
}

/// A device, its replica's items and the documents it created.
struct Person {
    replica: Replica<MemoryStore>,
}

impl Person {
    fn new(name: &str) -> Self {
        let device = Device::generate(Some(name.into()));
        Person {
            replica: Replica::open(device, MemoryStore::new()).unwrap(),
        }
    }

    fn id(&self) -> IndividualId {
        self.replica.device().id()
    }
}

/// Items of a story: Alice's team (Carol writes in it) reads her plans; Bob wrote in her
/// notes and was removed; Dave's document is shared with nobody; Eve has a document of her
/// own; Frank has nothing. Every device's contact card is stored.
fn story() -> (Vec<IndividualId>, Vec<Item>) {
    let mut alice = Person::new("alice");
    let bob = Person::new("bob");
    let carol = Person::new("carol");
    let mut dave = Person::new("dave");
    let mut eve = Person::new("eve");
    let frank = Person::new("frank");
    let a = &mut alice.replica;
    a.add_contact(card(&bob.replica)).unwrap();
    a.add_contact(card(&carol.replica)).unwrap();
    let team = a.create_group().unwrap();
    let notes = a.create_document().unwrap();
    let plans = a.create_document().unwrap();
    a.grant(&team.0, me(&carol.replica), Access::Write).unwrap();
    a.grant(&plans.0, AgentId::Group(team), Access::Read)
        .unwrap();
    a.grant(&notes.0, me(&bob.replica), Access::Write).unwrap();
    a.write(notes, b"first").unwrap();
    a.write(plans, b"plan").unwrap();
    a.revoke(&notes.0, me(&bob.replica)).unwrap();
    let own = dave.replica.create_document().unwrap();
    dave.replica.write(own, b"alone").unwrap();
    let mine = eve.replica.create_document().unwrap();
    eve.replica.write(mine, b"mine").unwrap();
    let everyone = [&alice, &bob, &carol, &dave, &eve, &frank];
    let mut items: Vec<Item> = Vec::new();
    for p in everyone {
        items.extend(all_items(&p.replica));
        items.push(card_item(p));
    }
    keyhive_sync::admission::apply_order(&mut items);
    (everyone.iter().map(|p| p.id()).collect(), items)
}

fn card_item(p: &Person) -> Item {
    let bytes = card(&p.replica).as_bytes().to_vec();
    Item::new(ItemKind::Auth, SubjectId(p.id().0), bytes).unwrap()
}

/// SYNC-50a: every subject a device may pull is listed by `reachable`, and a card is listed
/// exactly when it may be pulled (RELAY-5: its device shares a subject with the requester).
#[test]
fn sync50a_reachable_lists_every_subject_a_device_may_pull() {
    let (devices, items) = story();
    let store = MemoryStore::new();
    store.put(&items).unwrap();
    let policy = CapabilityPolicy::new([]);
    policy.load(&store).unwrap();
    let subjects = store.subjects().unwrap();
    let cards: BTreeSet<SubjectId> = devices.iter().map(|d| SubjectId(d.0)).collect();
    let mut pulled = 0;
    for who in &devices {
        assert!(policy.reachable_is_complete(who));
        let listed: BTreeSet<SubjectId> = policy.reachable(who).into_iter().collect();
        for subject in &subjects {
            if policy.may_pull(who, subject) {
                pulled += 1;
                assert!(
                    listed.contains(subject),
                    "{who:?} may pull {subject:?}, unlisted"
                );
            }
            if cards.contains(subject) {
                assert_eq!(
                    listed.contains(subject),
                    policy.may_pull(who, subject),
                    "{who:?}, card {subject:?}"
                );
            }
        }
    }
    // Not vacuous: Carol shares the team with Alice, so each is served the other's card;
    // Dave shares nothing with anyone.
    let (alice, carol, dave) = (devices[0], devices[2], devices[3]);
    let carol_reaches = policy.reachable(&carol);
    assert!(carol_reaches.contains(&SubjectId(alice.0)));
    assert!(policy.reachable(&alice).contains(&SubjectId(carol.0)));
    assert!(!carol_reaches.contains(&SubjectId(dave.0)));
    assert!(!policy.reachable(&dave).contains(&SubjectId(alice.0)));
    assert!(pulled > devices.len() * 2, "{pulled} pulls in the story");
}

/// `n` people, each with a document of their own and a change in it.
fn strangers(n: usize) -> Vec<Item> {
    let mut items = Vec::new();
    for _ in 0..n {
        let mut p = Person::new("someone");
        let doc = p.replica.create_document().unwrap();
        p.replica.write(doc, b"hello").unwrap();
        items.extend(all_items(&p.replica));
        items.push(card_item(&p));
    }
    items
}

/// A relay over `store` with the story and `others`' documents loaded, answering with the
/// capability policy (listed) or with it scanning.
async fn relay_over(
    store: Arc<Counting>,
    scanning: bool,
) -> (
    keyhive_sync::relay::RelayHandle,
    keyhive_core::crypto::signing::SigningKey,
) {
    let policy = Arc::new(CapabilityPolicy::new([]));
    policy.load(&*store).unwrap();
    let policy: Arc<dyn AccessPolicy> = if scanning {
        Arc::new(Scanning(policy))
    } else {
        policy
    };
    start(store, policy).await
}

/// A relay over `store` (see [`relay_over`]) and `who`'s session with it.
async fn session_on(
    store: &Arc<Counting>,
    scanning: bool,
    who: &Person,
) -> (keyhive_sync::relay::RelayHandle, Session) {
    let (relay, key) = relay_over(store.clone(), scanning).await;
    let session = Session::connect(
        &relay.url(),
        who.replica.device().signing_key(),
        Some(pk(&key)),
    )
    .await
    .unwrap();
    (relay, session)
}

async fn offers_to(
    store: &Arc<Counting>,
    scanning: bool,
    who: &Person,
) -> (Vec<SubjectOffer>, usize) {
    let (_relay, session) = session_on(store, scanning, who).await;
    store.take();
    let offers = session.collection().await.unwrap().as_ref().clone();
    (offers, store.take())
}

/// SYNC-50a, STORE-24: Alice's collection on a relay holding 200 other people's documents
/// reads the summaries of her subjects only, and offers what the scan of every stored
/// subject offers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync50a_a_collection_reads_only_what_the_requester_reaches() {
    let mut alice = Person::new("alice");
    let bob = Person::new("bob");
    alice.replica.add_contact(card(&bob.replica)).unwrap();
    let doc = alice.replica.create_document().unwrap();
    alice
        .replica
        .grant(&doc.0, me(&bob.replica), Access::Write)
        .unwrap();
    alice.replica.write(doc, b"ours").unwrap();
    let mut items = all_items(&alice.replica);
    items.push(card_item(&alice));
    items.push(card_item(&bob));
    items.extend(strangers(200));
    keyhive_sync::admission::apply_order(&mut items);
    let store = Arc::new(Counting::default());
    store.put(&items).unwrap();
    let stored = store.subjects().unwrap().len();
    assert!(stored > 400, "{stored} subjects stored");

    let (listed, read_listed) = offers_to(&store, false, &alice).await;
    let (scanned, read_scanned) = offers_to(&store, true, &alice).await;
    assert_eq!(listed, scanned, "the same offer either way");
    let offered: BTreeSet<SubjectId> = listed.iter().map(|o| o.subject).collect();
    assert!(offered.contains(&SubjectId(doc.0)));
    assert!(
        offered.contains(&SubjectId(bob.id().0)),
        "Bob's card: he shares the document"
    );
    assert!(listed.iter().all(|o| o.count > 0));
    assert_eq!(read_scanned, stored, "the scan reads every summary");
    assert!(
        read_listed <= offered.len(),
        "read {read_listed} summaries for an offer of {} subjects",
        offered.len()
    );
}

/// The collection time (p50 of 20, loopback, release) on a relay holding only the
/// requester's subjects (the floor: one authenticated round trip and the policy's answer),
/// then holding 500 and 5,000 other people's documents, listed (SYNC-50a) against scanned
/// (every stored subject judged, SYNC-50). A measurement, not a limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with --release -- --ignored --nocapture"]
async fn collection_time_against_relay_size_measured() {
    let mut alice = Person::new("alice");
    let doc = alice.replica.create_document().unwrap();
    alice.replica.write(doc, b"mine").unwrap();
    let mut rows: Vec<(usize, usize, &str, Duration)> = Vec::new();
    for others in [0, 500, 5_000] {
        let mut items = all_items(&alice.replica);
        items.push(card_item(&alice));
        items.extend(strangers(others));
        keyhive_sync::admission::apply_order(&mut items);
        let store = Arc::new(Counting::default());
        store.put(&items).unwrap();
        let subjects = store.subjects().unwrap().len();
        for scanning in [false, true] {
            let (_relay, session) = session_on(&store, scanning, &alice).await;
            let mut times: Vec<Duration> = Vec::new();
            for _ in 0..20 {
                session.collection().await.unwrap();
            }
            for _ in 0..50 {
                let started = Instant::now();
                let offer = session.collection().await.unwrap();
                times.push(started.elapsed());
                assert_eq!(offer.len(), 2, "her document and her card");
            }
            times.sort();
            let how = if scanning {
                "scanned (SYNC-50)"
            } else {
                "listed (SYNC-50a)"
            };
            rows.push((subjects, items.len(), how, times[times.len() / 2]));
        }
    }
    // The floor: the faster of the two on the relay holding only her subjects.
    let floor = rows[..2].iter().map(|r| r.3).min().unwrap();
    for (subjects, items, how, p50) in rows {
        println!(
            "{subjects} subjects stored ({items} items), {how}: collection p50 {p50:?} \
             ({:.1}x the relay holding only hers)",
            p50.as_secs_f64() / floor.as_secs_f64()
        );
    }
}
