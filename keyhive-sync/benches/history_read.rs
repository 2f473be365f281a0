//! Issue 11 #3 (linear reads, REP-23): a new member's first full read of a 1,000-change
//! document, timed beside raw decrypt + verify of the same 1,000 changes in the same run.
//!
//! - `raw_decrypt_verify`: for each change, decode and `verify_strict` its content op and
//!   decode and decrypt its ciphertext with its epoch's root (what any reader must do at least
//!   once per change).
//! - `first_read`: a fresh replica of the new member that has admitted the history (not timed)
//!   lists the changes and reads every one (`changes` + `read_change`).
//! - `ingest_and_read`: the same, with admitting the history (signature checks, capability
//!   graph, key agreement) inside the timing.
//!
//! Besides criterion's statistics the bench prints each ratio to the raw figure (best of
//! [`ROUNDS`] runs measured in this process) and the cost per change of the first full read at
//! 1,000 and 2,000 changes (equal when reads are linear), e.g.
//! `cargo bench -p keyhive-sync --bench history_read`. Under `cargo test --benches` it runs
//! each workload once and still prints the ratios.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use keyhive_core::capability::{Access, AgentId, ContentOp, PeerTag};
use keyhive_core::encryption::decrypt_with_epoch;
use keyhive_core::identity::{Device, DocumentId};
use keyhive_core::signed::Signed;
use keyhive_sync::blob::Blob;
use keyhive_sync::replica::{ChangeStatus, Replica};
use keyhive_sync::{Item, ItemKind, MemoryStore, Store};

/// Changes in the document.
const CHANGES: usize = 1_000;
/// Plaintext bytes per change (a typical small Automerge change).
const CHANGE_LEN: usize = 150;
/// Runs of each workload behind the printed ratios.
const ROUNDS: usize = 5;

/// A 1,000-change document written by Alice, then shared with `newcomer` (seated, with an
/// entry point to the history, REP-5), and every item Alice holds.
struct History {
    doc: DocumentId,
    alice: Replica<MemoryStore>,
    newcomer: Device,
    items: Vec<Item>,
}

fn history(changes: usize) -> History {
    let mut alice = Replica::open(Device::generate(None), MemoryStore::new()).unwrap();
    let doc = alice.create_document().unwrap();
    for i in 0..changes {
        let mut change = [0u8; CHANGE_LEN];
        change[..8].copy_from_slice(&(i as u64).to_le_bytes());
        alice.write(doc, &change).unwrap();
    }
    let newcomer = Device::generate(None);
    alice.add_contact(newcomer.contact_card().unwrap()).unwrap();
    alice
        .grant(&doc.0, AgentId::Individual(newcomer.id()), Access::Read)
        .unwrap();
    alice.prepare(doc).unwrap();
    let store = alice.store();
    let mut items = Vec::new();
    for subject in store.subjects().unwrap() {
        for hash in store.hashes(&subject).unwrap() {
            items.extend(store.get(&hash).unwrap());
        }
    }
    History {
        doc,
        alice,
        newcomer,
        items,
    }
}

/// The baseline: verify every content op, decrypt every change once.
fn raw_decrypt_verify(h: &History) -> usize {
    let cgka = h.alice.cgka(&h.doc).unwrap();
    let mut read = 0;
    for item in &h.items {
        match item.kind() {
            ItemKind::Content => {
                let op = Signed::<ContentOp>::decode(item.envelope()).unwrap();
                black_box(op.verify().unwrap());
            }
            ItemKind::Blob => {
                if let Ok(Blob::Change { change, .. }) = Blob::from_bytes(item.envelope()) {
                    read += decrypt_with_epoch(cgka, &change).unwrap().content.len();
                }
            }
            _ => {}
        }
    }
    read
}

fn admitted(h: &History) -> Replica<MemoryStore> {
    let mut fresh = Replica::open(h.newcomer.clone(), MemoryStore::new()).unwrap();
    let from = PeerTag::from(h.alice.device().id().0);
    fresh.ingest_all(from, h.items.clone()).unwrap();
    fresh
}

/// Lists the document and reads every valid readable change; returns the bytes read.
fn read_all(replica: &Replica<MemoryStore>, doc: DocumentId) -> u64 {
    let mut total = 0;
    let mut sink = Vec::with_capacity(CHANGE_LEN);
    for c in replica.changes(doc).unwrap() {
        if c.status == ChangeStatus::Valid && c.length.is_some() {
            sink.clear();
            total += replica.read_change(doc, &c.op, &mut sink).unwrap();
        }
    }
    total
}

/// The fastest of [`ROUNDS`] runs: on a shared machine the slower ones measure the neighbours.
fn timed(mut setup_and_run: impl FnMut() -> Duration) -> Duration {
    (0..ROUNDS)
        .map(|_| setup_and_run())
        .min()
        .unwrap_or_default()
}

/// The best time of a new member's first full read of `h` (`changes` changes).
fn first_read(h: &History, changes: usize) -> Duration {
    timed(|| {
        let fresh = admitted(h);
        let start = Instant::now();
        let bytes = read_all(&fresh, h.doc);
        let spent = start.elapsed();
        assert_eq!(bytes, (changes * CHANGE_LEN) as u64, "every change read");
        spent
    })
}

/// REP-23: the first full read costs the same per change at twice the history (a read that
/// walked the history again for each change would cost twice as much per change). Both sizes
/// are past the point where the history stops fitting in the CPU caches, which alone makes
/// smaller histories cheaper per change.
fn linearity(read: Duration) {
    let double = 2 * CHANGES;
    let twice = first_read(&history(double), double);
    let per_change = |d: Duration, n: usize| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "history_read linearity: first full read {:.1} us/change at {CHANGES} changes, \
         {:.1} us/change at {double}",
        per_change(read, CHANGES),
        per_change(twice, double),
    );
}

/// Times the three workloads directly and prints the ratios (the acceptance figure).
/// Returns the first full read's time.
fn ratios(h: &History) -> Duration {
    let raw = timed(|| {
        let start = Instant::now();
        black_box(raw_decrypt_verify(h));
        start.elapsed()
    });
    let read = first_read(h, CHANGES);
    let ingest_read = timed(|| {
        let start = Instant::now();
        let fresh = admitted(h);
        black_box(read_all(&fresh, h.doc));
        start.elapsed()
    });
    let ratio = |d: Duration| d.as_secs_f64() / raw.as_secs_f64();
    println!(
        "history_read ({CHANGES} changes of {CHANGE_LEN} B, best of {ROUNDS}): \
         raw decrypt+verify {raw:.2?}; first full read {read:.2?} = {:.2}x raw; \
         admit+first full read {ingest_read:.2?} = {:.2}x raw",
        ratio(read),
        ratio(ingest_read),
    );
    read
}

fn bench(c: &mut Criterion) {
    let h = history(CHANGES);
    let read = ratios(&h);
    linearity(read);
    let mut g = c.benchmark_group("history_read");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("raw_decrypt_verify", |b| b.iter(|| raw_decrypt_verify(&h)));
    g.bench_function("first_read", |b| {
        b.iter_batched(
            || admitted(&h),
            |fresh| read_all(&fresh, h.doc),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("ingest_and_read", |b| {
        b.iter(|| read_all(&admitted(&h), h.doc))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
