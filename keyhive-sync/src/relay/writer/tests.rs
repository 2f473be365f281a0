//! SYNC-112: the group-commit writer's turns.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::mpsc;
use std::time::Duration;

use keyhive_core::Hash;
use keyhive_core::crypto::signing::PublicKey;

use super::*;
use crate::item::{ItemKind, SubjectId};
use crate::policy::AllowAll;
use crate::reconcile::summary::Summary;
use crate::store::MemoryStore;

/// Item `n`, distinct for every `n` (the first envelope byte stays 0: no compact code).
fn item(n: u64) -> Item {
    let mut envelope = vec![0u8; 80];
    envelope[1..9].copy_from_slice(&n.to_be_bytes());
    Item::new(ItemKind::Content, SubjectId(PublicKey([7; 32])), envelope).expect("valid item")
}

fn items(range: std::ops::Range<u64>) -> Vec<Item> {
    range.map(item).collect()
}

/// What a put holding the poisoned item does.
#[derive(Clone, Copy)]
enum Poison {
    Fails,
    Panics,
}

/// A memory store that records the size of every put, holds the first put until released,
/// and fails or panics on any put holding `poisoned`.
struct Recording {
    inner: MemoryStore,
    puts: Mutex<Vec<usize>>,
    entered: Mutex<Option<mpsc::Sender<()>>>,
    release: Mutex<Option<mpsc::Receiver<()>>>,
    poisoned: Option<(Hash, Poison)>,
}

impl Recording {
    /// The store, a receiver told when the first put started, and the sender that lets it go on.
    fn new(poisoned: Option<(Hash, Poison)>) -> (Arc<Self>, mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        let store = Arc::new(Recording {
            inner: MemoryStore::new(),
            puts: Mutex::default(),
            entered: Mutex::new(Some(entered_tx)),
            release: Mutex::new(Some(release_rx)),
            poisoned,
        });
        (store, entered_rx, release_tx)
    }

    fn puts(&self) -> Vec<usize> {
        self.puts.lock().unwrap().clone()
    }
}

impl Store for Recording {
    fn put(&self, items: &[Item]) -> Result<Vec<bool>, StoreError> {
        self.puts.lock().unwrap().push(items.len());
        let entered = self.entered.lock().unwrap().take();
        if let Some(entered) = entered {
            entered.send(()).unwrap();
            let release = self.release.lock().unwrap().take().unwrap();
            release.recv().unwrap();
        }
        if let Some((hash, poison)) = self.poisoned
            && items.iter().any(|i| i.hash() == hash)
        {
            match poison {
                Poison::Fails => {
                    return Err(StoreError::Corrupt {
                        path: "poisoned".into(),
                        what: "a poisoned item",
                    });
                }
                Poison::Panics => panic!("a poisoned item"),
            }
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

type Pending = tokio::task::JoinHandle<Answer>;

/// Starts a push whose first turn the store holds, then `queued` pushes, each only once the one
/// before it waits in the queue (so their order is the arrival order).
async fn hold_then_queue(
    writer: &Arc<Writer>,
    entered: mpsc::Receiver<()>,
    first: Vec<Item>,
    queued: Vec<Vec<Item>>,
) -> (Pending, Vec<Pending>) {
    let w = writer.clone();
    let first = tokio::spawn(async move { w.write(first).await });
    tokio::task::spawn_blocking(move || entered.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the first turn started");
    let mut pending = Vec::new();
    for (n, push) in queued.into_iter().enumerate() {
        let w = writer.clone();
        pending.push(tokio::spawn(async move { w.write(push).await }));
        while writer.lock().waiting.len() < n + 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    (first, pending)
}

fn fresh(answer: Answer) -> Vec<bool> {
    answer.expect("written").1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_that_wait_together_are_written_in_one_transaction_in_arrival_order() {
    let (store, entered, release) = Recording::new(None);
    let writer = Writer::new(store.clone(), Arc::new(AllowAll));
    // B repeats an item of A; C repeats one of B: within a turn, the earlier push holds it.
    let (a, b, c, d) = (
        items(0..3),
        vec![item(2), item(10)],
        vec![item(10), item(11)],
        items(20..22),
    );
    let (first, queued) = hold_then_queue(&writer, entered, a, vec![b, c.clone(), d]).await;
    release.send(()).unwrap();
    assert_eq!(fresh(first.await.unwrap()), vec![true; 3]);
    let mut answers = Vec::new();
    for pending in queued {
        answers.push(pending.await.unwrap());
    }
    let mut answers = answers.into_iter();
    assert_eq!(fresh(answers.next().unwrap()), vec![false, true]);
    let (items_c, fresh_c) = answers.next().unwrap().expect("written");
    assert_eq!(items_c, c, "each push gets its own items back");
    assert_eq!(fresh_c, vec![false, true]);
    assert_eq!(fresh(answers.next().unwrap()), vec![true, true]);
    assert_eq!(
        store.puts(),
        vec![3, 6],
        "the three pushes that waited share one transaction"
    );
    // The last answer goes out before the turn finds the queue empty.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while writer.lock().running {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no turn runs once the queue is empty"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_holds_at_most_its_item_bound_and_a_larger_push_alone() {
    let (store, entered, release) = Recording::new(None);
    let writer = Writer::new(store.clone(), Arc::new(AllowAll));
    let bound = GROUP_COMMIT_ITEMS as u64;
    let queued = vec![
        items(100..100 + bound - 1),
        items(20_000..20_002),
        items(30_000..30_000 + bound + 1),
        items(40_000..40_001),
    ];
    let (first, queued) = hold_then_queue(&writer, entered, items(0..1), queued).await;
    release.send(()).unwrap();
    first.await.unwrap().expect("written");
    for pending in queued {
        let fresh = fresh(pending.await.unwrap());
        assert!(fresh.iter().all(|f| *f));
    }
    let bound = GROUP_COMMIT_ITEMS;
    assert_eq!(
        store.puts(),
        vec![1, bound - 1, 2, bound + 1, 1],
        "a push that would take a turn past its bound waits for the next turn"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_turn_answers_each_push_on_its_own() {
    let poisoned = item(11);
    let (store, entered, release) = Recording::new(Some((poisoned.hash(), Poison::Fails)));
    let writer = Writer::new(store.clone(), Arc::new(AllowAll));
    let queued = vec![items(10..11), items(11..12), items(12..13)];
    let (first, queued) = hold_then_queue(&writer, entered, items(0..1), queued).await;
    release.send(()).unwrap();
    first.await.unwrap().expect("written");
    let mut answers = Vec::new();
    for pending in queued {
        answers.push(pending.await.unwrap());
    }
    assert_eq!(fresh(answers.remove(0)), vec![true]);
    assert!(matches!(
        answers.remove(0),
        Err(WriteError::Store(StoreError::Corrupt { .. }))
    ));
    assert_eq!(fresh(answers.remove(0)), vec![true]);
    assert_eq!(store.puts(), vec![1, 3, 1, 1, 1]);
    assert!(store.contains(&item(12).hash()).unwrap());
    assert!(!store.contains(&poisoned.hash()).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_write_abandons_its_push_only_and_later_pushes_are_written() {
    let poisoned = item(11);
    let (store, entered, release) = Recording::new(Some((poisoned.hash(), Poison::Panics)));
    let writer = Writer::new(store.clone(), Arc::new(AllowAll));
    let queued = vec![items(10..11), items(11..12), items(12..13)];
    let (first, queued) = hold_then_queue(&writer, entered, items(0..1), queued).await;
    release.send(()).unwrap();
    first.await.unwrap().expect("written");
    let mut answers = Vec::new();
    for pending in queued {
        answers.push(pending.await.unwrap());
    }
    assert_eq!(fresh(answers.remove(0)), vec![true]);
    assert!(matches!(answers.remove(0), Err(WriteError::Abandoned)));
    assert_eq!(fresh(answers.remove(0)), vec![true]);
    assert_eq!(fresh(writer.write(items(50..52)).await), vec![true, true]);
    assert_eq!(store.puts(), vec![1, 3, 1, 1, 1, 2]);
}
