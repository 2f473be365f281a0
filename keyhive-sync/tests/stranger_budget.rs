//! SYNC-111: a stranger's (a key holding no grant from anyone, SYNC-104) pushed items are paid
//! from its key's budget of signature checks before the relay looks at them; past it the relay
//! reads nothing more from the connection until the budget refills (no refusal), and strangers'
//! admission runs in slices under slots they share, so a granted key is neither throttled nor
//! queued behind them. Signature checks are counted at the policy, not timed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod replicas;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use keyhive_core::capability::{Access, AgentId, AnyVerified};
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::identity::{Device, Genesis, IndividualId};
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::client::Session;
use keyhive_sync::policy::{AccessPolicy, Refusal, Share};
use keyhive_sync::protocol::PushOutcome;
use keyhive_sync::relay::{Limits, Relay, RelayConfig, RelayHandle, StrangerQuota};
use keyhive_sync::replica::{Replica, op_item};
use keyhive_sync::{Item, MemoryStore, Store, SubjectId};
use replicas::all_items;

/// The relay's capability policy, counting `check_push` (each a signature check) per pushing
/// key; checks by `blocked` wait until [`Counting::release`].
struct Counting {
    inner: CapabilityPolicy,
    checks: Mutex<HashMap<IndividualId, usize>>,
    blocked: Mutex<Option<IndividualId>>,
    released: Condvar,
    entered: AtomicBool,
}

impl Counting {
    fn new() -> Self {
        Counting {
            inner: CapabilityPolicy::new([]),
            checks: Mutex::new(HashMap::new()),
            blocked: Mutex::new(None),
            released: Condvar::new(),
            entered: AtomicBool::new(false),
        }
    }

    fn checks(&self, who: &IndividualId) -> usize {
        self.checks.lock().unwrap().get(who).copied().unwrap_or(0)
    }

    fn block(&self, who: IndividualId) {
        *self.blocked.lock().unwrap() = Some(who);
    }

    fn release(&self) {
        *self.blocked.lock().unwrap() = None;
        self.released.notify_all();
    }
}

impl AccessPolicy for Counting {
    fn may_pull(&self, requester: &IndividualId, subject: &SubjectId) -> bool {
        self.inner.may_pull(requester, subject)
    }
    fn check_push(&self, from: &IndividualId, item: &Item) -> Result<(), Refusal> {
        *self.checks.lock().unwrap().entry(*from).or_default() += 1;
        let mut blocked = self.blocked.lock().unwrap();
        while *blocked == Some(*from) {
            self.entered.store(true, Ordering::SeqCst);
            blocked = self.released.wait(blocked).unwrap();
        }
        drop(blocked);
        self.inner.check_push(from, item)
    }
    fn reachable(&self, requester: &IndividualId) -> Vec<SubjectId> {
        self.inner.reachable(requester)
    }
    fn stored(&self, items: &[Item]) {
        self.inner.stored(items)
    }
    fn not_stored(&self, store: &dyn Store) {
        self.inner.not_stored(store)
    }
    fn share(&self, requester: &IndividualId, subject: &SubjectId) -> Share {
        self.inner.share(requester, subject)
    }
    fn removed_from(&self, requester: &IndividualId, subject: &SubjectId) -> bool {
        self.inner.removed_from(requester, subject)
    }
    fn stranger_subjects(&self, who: &IndividualId) -> Option<Vec<SubjectId>> {
        self.inner.stranger_subjects(who)
    }
}

async fn serve(limits: Limits) -> (RelayHandle, Arc<Counting>) {
    let policy = Arc::new(Counting::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let handle = Relay::serve(
        listener,
        Arc::new(MemoryStore::new()),
        policy.clone(),
        RelayConfig::new(SigningKey::generate()).with_limits(limits),
    )
    .expect("serve");
    (handle, policy)
}

/// `n` fresh subjects created by `device`: each a signature check, each stored new.
fn geneses(device: &Device, n: usize) -> Vec<Item> {
    (0..n)
        .map(|_| {
            let genesis = Genesis::create_group(device.id()).expect("genesis");
            op_item(&AnyVerified::Genesis(genesis)).expect("item")
        })
        .collect()
}

/// A writer that shares a document with another device, so not a stranger once its few
/// first items are stored ([`establish`]).
struct Granted {
    replica: Replica<MemoryStore>,
    doc: keyhive_core::identity::DocumentId,
}

impl Granted {
    fn new() -> Self {
        let device = Device::generate(Some("alice".into()));
        let mut replica = Replica::open(device, MemoryStore::new()).expect("open");
        let doc = replica.create_document().expect("doc");
        let mut granted = Granted { replica, doc };
        granted.grants(1);
        granted
    }

    fn key(&self) -> &SigningKey {
        self.replica.device().signing_key()
    }

    fn id(&self) -> IndividualId {
        self.replica.device().id()
    }

    /// Grants `n` more devices access; returns the new items.
    fn grants(&mut self, n: usize) -> Vec<Item> {
        let before: std::collections::BTreeSet<_> =
            all_items(&self.replica).iter().map(Item::hash).collect();
        for _ in 0..n {
            self.replica
                .grant(
                    &self.doc.0,
                    AgentId::Individual(Device::generate(None).id()),
                    Access::Read,
                )
                .expect("grant");
        }
        all_items(&self.replica)
            .into_iter()
            .filter(|i| !before.contains(&i.hash()))
            .collect()
    }
}

/// Stores `alice`'s first items (a stranger's push until they are stored: fewer than a
/// starved budget's 10).
async fn establish(url: &str, alice: &Granted) {
    let items = all_items(&alice.replica);
    assert!(items.len() < 10, "{} first items", items.len());
    assert_eq!(push_all(url, alice.key(), items.clone()).await, items.len());
}

/// Pushes `items`, parents first (what still needed predecessors is offered again, ADM-3),
/// until each is stored; returns how many were stored.
async fn push_all(url: &str, key: &SigningKey, mut items: Vec<Item>) -> usize {
    let session = Session::connect(url, key, None).await.expect("connect");
    keyhive_sync::admission::apply_order(&mut items);
    let mut rest = items;
    let mut stored = 0;
    for _ in 0..8 {
        if rest.is_empty() {
            break;
        }
        let outcomes = session.push(&rest).await.expect("push");
        let mut next = Vec::new();
        for (item, outcome) in rest.into_iter().zip(outcomes) {
            match outcome {
                PushOutcome::Stored => stored += 1,
                PushOutcome::Duplicate => {}
                _ => next.push(item),
            }
        }
        rest = next;
    }
    assert!(rest.is_empty(), "every granted item is stored");
    stored
}

/// Waits (no time limit: the condition is reached or the test hangs) until `done`.
async fn until(done: impl Fn() -> bool) {
    while !done() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A budget that refills once in 1,000 s: 10 checks, then nothing within the test.
fn starved() -> Limits {
    let mut limits = Limits::default();
    limits.stranger_checks_per_second = 0.001;
    limits.stranger_burst_checks = 10.0;
    limits
}

/// SYNC-111: a stranger's push past its budget is checked only as far as the budget pays, and
/// not answered, while a granted key pushing more than that budget is served in full; the
/// relay's shutdown still ends the held push, with what was paid for stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_past_its_budget_is_held_and_a_granted_key_is_not() {
    let (relay, policy) = serve(starved()).await;
    let url = relay.url();
    let mut alice = Granted::new();
    establish(&url, &alice).await;
    let stranger = Device::generate(None);
    let flood = geneses(&stranger, 30);
    let held = tokio::spawn({
        let (url, key) = (url.clone(), stranger.signing_key().clone());
        async move {
            let session = Session::connect(&url, &key, None).await.expect("connect");
            session.push(&flood).await
        }
    });
    until(|| policy.checks(&stranger.id()) >= 10).await;

    let checked = policy.checks(&alice.id());
    let items = alice.grants(20);
    let wanted = items.len();
    assert!(wanted > 10, "more than a stranger's burst");
    assert_eq!(push_all(&url, alice.key(), items).await, wanted);
    assert!(
        policy.checks(&alice.id()) >= checked + wanted,
        "every item checked"
    );

    assert_eq!(
        policy.checks(&stranger.id()),
        10,
        "nothing past the budget is checked"
    );
    assert!(!held.is_finished(), "the held push is not answered");
    let counts = relay.abuse_counts();
    assert_eq!(counts.stranger_pushes_held, 1);
    assert_eq!(counts.rate_limited_pushes, 0, "nothing is refused for it");

    relay.shutdown().await.expect("shutdown");
    let outcomes = held.await.expect("task").expect("answered at shutdown");
    assert!(outcomes[..10].iter().all(|o| *o == PushOutcome::Stored));
    assert!(
        outcomes[10..]
            .iter()
            .all(|o| matches!(o, PushOutcome::Refused(r) if r.contains("shutting down")))
    );
    assert_eq!(policy.checks(&stranger.id()), 10);
}

/// SYNC-111: a stranger's push larger than its burst is not refused: it is answered, every
/// item stored, once its budget has refilled for the rest (here 20 items at 100/s: at least
/// 200 ms; a lower bound, which a token bucket guarantees).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_push_beyond_its_burst_is_answered_once_its_budget_refills() {
    let mut limits = Limits::default();
    limits.stranger_checks_per_second = 100.0;
    limits.stranger_burst_checks = 10.0;
    let (relay, policy) = serve(limits).await;
    let stranger = Device::generate(None);
    let session = Session::connect(&relay.url(), stranger.signing_key(), None)
        .await
        .expect("connect");
    let started = Instant::now();
    let outcomes = session
        .push(&geneses(&stranger, 30))
        .await
        .expect("answered");
    let took = started.elapsed();
    assert!(outcomes.iter().all(|o| *o == PushOutcome::Stored));
    assert_eq!(policy.checks(&stranger.id()), 30);
    assert!(
        took >= Duration::from_millis(200),
        "paid at the budget's rate: {took:?}"
    );
    let counts = relay.abuse_counts();
    assert_eq!(counts.stranger_pushes_held, 1);
    assert_eq!(counts.rate_limited_pushes, 0);
    relay.shutdown().await.expect("shutdown");
}

/// SYNC-111: a stranger pushing on past its quota (SYNC-104) pays for each push too, so its
/// `QuotaExceeded` answers come no faster than its budget refills (no refusal storm).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_over_its_quota_is_answered_no_faster_than_its_budget_refills() {
    let mut limits = starved();
    limits.stranger_quota = StrangerQuota::new(5, 1 << 20);
    let (relay, policy) = serve(limits).await;
    let url = relay.url();
    let mut alice = Granted::new();
    establish(&url, &alice).await;
    let stranger = Device::generate(None);
    let session = Session::connect(&url, stranger.signing_key(), None)
        .await
        .expect("connect");
    // 8 of its 10 checks: 5 stored, 3 refused for the quota.
    let outcomes = session
        .push(&geneses(&stranger, 8))
        .await
        .expect("first push");
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == PushOutcome::Stored)
            .count(),
        5
    );
    assert_eq!(relay.abuse_counts().quota_refusals, 3);
    let again = geneses(&stranger, 8);
    let held = tokio::spawn(async move { session.push(&again).await });

    let items = alice.grants(3);
    let wanted = items.len();
    assert_eq!(push_all(&url, alice.key(), items).await, wanted);
    assert!(
        !held.is_finished(),
        "not answered before its budget refills"
    );
    assert_eq!(relay.abuse_counts().quota_refusals, 3, "not refused yet");
    assert_eq!(policy.checks(&stranger.id()), 5, "nothing more checked");
    relay.shutdown().await.expect("shutdown");
    let _ = held.await.expect("task");
}

/// SYNC-111: strangers' admission holds the slots they share (one by default) a slice at a
/// time, so while one stranger's slice is admitted another stranger's push waits, and a granted
/// key's push does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_share_their_admission_slots_and_granted_keys_do_not_wait_for_them() {
    let mut limits = Limits::default();
    limits.stranger_admissions = 1;
    let (relay, policy) = serve(limits).await;
    let url = relay.url();
    let mut alice = Granted::new();
    establish(&url, &alice).await;
    let first = Device::generate(None);
    let second = Device::generate(None);
    policy.block(first.id());
    let push = |device: &Device| {
        let (url, key, items) = (
            url.clone(),
            device.signing_key().clone(),
            geneses(device, 5),
        );
        tokio::spawn(async move {
            let session = Session::connect(&url, &key, None).await.expect("connect");
            session.push(&items).await.expect("answered")
        })
    };
    let first_push = push(&first);
    until(|| policy.entered.load(Ordering::SeqCst)).await;
    let second_push = push(&second);

    let items = alice.grants(3);
    let wanted = items.len();
    assert_eq!(push_all(&url, alice.key(), items).await, wanted);
    assert_eq!(
        policy.checks(&second.id()),
        0,
        "the second stranger waits for the slot the first holds"
    );
    assert!(!second_push.is_finished());

    policy.release();
    for pushed in [first_push, second_push] {
        let outcomes = pushed.await.expect("task");
        assert!(outcomes.iter().all(|o| *o == PushOutcome::Stored));
    }
    assert_eq!(policy.checks(&second.id()), 5);
    relay.shutdown().await.expect("shutdown");
}

/// SYNC-111: all strangers together pay from one more budget, so a fresh key per push gains
/// nothing once it is spent: the next stranger's push is held, unchecked, while a granted key
/// is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_key_does_not_bring_a_fresh_budget_once_all_strangers_spent_theirs() {
    let mut limits = Limits::default();
    limits.all_strangers_checks_per_second = 0.001;
    limits.all_strangers_burst_checks = 20.0;
    let (relay, policy) = serve(limits).await;
    let url = relay.url();
    let mut alice = Granted::new();
    establish(&url, &alice).await;
    let spent = policy.checks(&alice.id());
    let first = Device::generate(None);
    let session = Session::connect(&url, first.signing_key(), None)
        .await
        .expect("connect");
    let outcomes = session
        .push(&geneses(&first, 20 - spent))
        .await
        .expect("within the shared budget");
    assert!(outcomes.iter().all(|o| *o == PushOutcome::Stored));

    let fresh = Device::generate(None);
    let held = tokio::spawn({
        let (url, key, items) = (url.clone(), fresh.signing_key().clone(), geneses(&fresh, 5));
        async move {
            let session = Session::connect(&url, &key, None).await.expect("connect");
            session.push(&items).await
        }
    });
    until(|| relay.abuse_counts().stranger_pushes_held == 1).await;
    let items = alice.grants(3);
    let wanted = items.len();
    assert_eq!(push_all(&url, alice.key(), items).await, wanted);
    assert_eq!(
        policy.checks(&fresh.id()),
        0,
        "the fresh key's push is held"
    );
    assert!(!held.is_finished());
    relay.shutdown().await.expect("shutdown");
    let _ = held.await.expect("task");
}
