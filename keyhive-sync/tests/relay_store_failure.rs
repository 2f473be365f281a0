//! ADM-3: a relay never acts on an op it has not stored. When the store fails a push, the
//! relay's capability graph forgets what it admitted from that push (it rebuilds from the store),
//! so a grant that was never stored is never enforced.

mod replicas;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use keyhive_core::Hash;
use keyhive_core::capability::{Access, AgentId};
use keyhive_core::identity::{Device, IndividualId};
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::client::Session;
use keyhive_sync::policy::AccessPolicy;
use keyhive_sync::reconcile::summary::Summary;
use keyhive_sync::relay::{Relay, RelayConfig};
use keyhive_sync::replica::Replica;
use keyhive_sync::{Item, MemoryStore, Store, StoreError, SubjectId};
use replicas::all_items;

/// A store whose next `put` fails once when armed (a full disk, a broken database).
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    fail_next: AtomicBool,
}

impl Store for FlakyStore {
    fn put(&self, items: &[Item]) -> Result<Vec<bool>, StoreError> {
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Unusable {
                path: "injected-failure.redb".into(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_the_store_refused_is_not_enforced() {
    let store = Arc::new(FlakyStore::default());
    let policy = Arc::new(CapabilityPolicy::new([]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let relay_key = Device::generate(None).signing_key().clone();
    let handle = Relay::serve(
        listener,
        store.clone(),
        policy.clone(),
        RelayConfig::new(relay_key),
    )
    .expect("serve");

    let device = Device::generate(Some("alice".into()));
    let key = device.signing_key().clone();
    let mut alice = Replica::open(device, MemoryStore::new()).expect("open");
    let bob: IndividualId = Device::generate(None).id();
    let doc = alice.create_document().expect("doc");
    let before: Vec<Item> = all_items(&alice);
    let grant = alice
        .grant(&doc.0, AgentId::Individual(bob), Access::Read)
        .expect("grant");
    let grant_item = all_items(&alice)
        .into_iter()
        .find(|i| i.hash() == grant)
        .expect("held");

    let session = Session::connect(&handle.url(), &key, None)
        .await
        .expect("connect");
    let mut rest = before;
    for _ in 0..4 {
        let outcomes = session.push(&rest).await.expect("push");
        rest = rest
            .into_iter()
            .zip(outcomes)
            .filter(|(_, o)| !matches!(o, keyhive_sync::protocol::PushOutcome::Stored))
            .map(|(i, _)| i)
            .collect();
    }
    let subject = SubjectId(doc.0);
    assert!(!policy.may_pull(&bob, &subject));

    store.fail_next.store(true, Ordering::SeqCst);
    assert!(
        session
            .push(std::slice::from_ref(&grant_item))
            .await
            .is_err(),
        "the relay reports the storage failure"
    );
    assert!(!store.contains(&grant).expect("contains"));
    assert!(
        !policy.may_pull(&bob, &subject),
        "a grant the relay did not store is not enforced"
    );

    // Offered again once the store works: stored and enforced.
    let session = Session::connect(&handle.url(), &key, None)
        .await
        .expect("reconnect");
    session
        .push(std::slice::from_ref(&grant_item))
        .await
        .expect("push");
    assert!(store.contains(&grant).expect("contains"));
    assert!(policy.may_pull(&bob, &subject));
    handle.shutdown().await.expect("shutdown");
}
