//! Criterion benches behind each figure of `keyhive bench` (issue 13): the device API
//! (`Replica`) for one document with N members of one device each, beside the raw primitives
//! in the same run. `keyhive bench` is the figure of record; these give criterion's
//! statistics for one workload at a time, e.g.
//! `cargo bench -p keyhive-sync --bench replica -- steady_write`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use keyhive_core::capability::{Access, AgentId, PeerTag};
use keyhive_core::crypto::aead;
use keyhive_core::crypto::prekey::PrekeySecret;
use keyhive_core::crypto::secret::SymmetricKey;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::identity::{Device, DocumentId};
use keyhive_sync::replica::Replica;
use keyhive_sync::{Item, MemoryStore, Store};

const SIZES: [usize; 2] = [100, 1_000];
const KIB: [u8; 1024] = [5u8; 1024];

/// A replica with one document and `n` members granted `read` (not yet seated).
struct Shared {
    alice: Replica<MemoryStore>,
    doc: DocumentId,
    members: Vec<Device>,
}

fn granted(n: usize) -> Shared {
    let mut alice = Replica::open(Device::generate(None), MemoryStore::new()).unwrap();
    let doc = alice.create_document().unwrap();
    let members: Vec<Device> = (0..n).map(|_| Device::generate(None)).collect();
    for m in &members {
        alice.add_contact(m.contact_card().unwrap()).unwrap();
        alice
            .grant(&doc.0, AgentId::Individual(m.id()), Access::Read)
            .unwrap();
    }
    Shared {
        alice,
        doc,
        members,
    }
}

/// `granted(n)` after the first write (everyone seated).
fn seated(n: usize) -> Shared {
    let mut s = granted(n);
    s.alice.write(s.doc, &KIB).unwrap();
    s
}

fn revoked(n: usize) -> Shared {
    let mut s = seated(n);
    let gone = AgentId::Individual(s.members[0].id());
    s.alice.revoke(&s.doc.0, gone).unwrap();
    s
}

fn items(replica: &Replica<MemoryStore>) -> Vec<Item> {
    let store = replica.store();
    let mut out = Vec::new();
    for subject in store.subjects().unwrap() {
        for hash in store.hashes(&subject).unwrap() {
            out.extend(store.get(&hash).unwrap());
        }
    }
    // A fixed permutation (reversal after a stride shuffle) stands for a shuffled history.
    let len = out.len();
    let mut shuffled: Vec<Item> = (0..len).map(|i| out[(i * 7919) % len].clone()).collect();
    if len % 7919 == 0 {
        shuffled = out;
    }
    shuffled.reverse();
    shuffled
}

fn raw(c: &mut Criterion) {
    let mut g = c.benchmark_group("raw");
    let key = SigningKey::generate();
    let public = key.public_key();
    let message = [7u8; 256];
    let signature = key.sign(&message);
    let (a, b) = (PrekeySecret::generate(), PrekeySecret::generate());
    let b_public = b.public();
    let sym = SymmetricKey::random();
    let sealed = aead::seal(&sym, b"ad", &KIB).unwrap();
    g.bench_function("sign", |bn| bn.iter(|| key.sign(black_box(&message))));
    g.bench_function("verify_strict", |bn| {
        bn.iter(|| public.verify_strict(black_box(&message), &signature))
    });
    g.bench_function("x25519", |bn| bn.iter(|| a.agree(black_box(&b_public))));
    g.bench_function("seal_1k", |bn| {
        bn.iter(|| aead::seal(&sym, b"ad", black_box(&KIB)))
    });
    g.bench_function("open_1k", |bn| {
        bn.iter(|| aead::open(&sym, b"ad", black_box(&sealed)))
    });
    g.finish();
}

fn device(c: &mut Criterion) {
    let mut g = c.benchmark_group("replica");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for n in SIZES {
        g.bench_function(BenchmarkId::new("grant", n), |b| {
            b.iter_batched(
                || granted(n),
                |mut s| {
                    let d = Device::generate(None);
                    s.alice.add_contact(d.contact_card().unwrap()).unwrap();
                    s.alice
                        .grant(&s.doc.0, AgentId::Individual(d.id()), Access::Read)
                        .unwrap();
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function(BenchmarkId::new("first_write", n), |b| {
            b.iter_batched(
                || granted(n),
                |mut s| s.alice.write(s.doc, &KIB).unwrap(),
                BatchSize::PerIteration,
            )
        });
        let mut s = seated(n);
        g.bench_function(BenchmarkId::new("steady_write", n), |b| {
            b.iter(|| s.alice.write(s.doc, &KIB).unwrap())
        });
        let latest = s.alice.latest_readable(s.doc).unwrap().unwrap();
        g.bench_function(BenchmarkId::new("steady_read", n), |b| {
            b.iter(|| {
                let mut sink = Vec::with_capacity(1024);
                s.alice.read_change(s.doc, &latest, &mut sink).unwrap()
            })
        });
        g.bench_function(BenchmarkId::new("revoke", n), |b| {
            b.iter_batched(
                || seated(n),
                |mut s| {
                    let gone = AgentId::Individual(s.members[0].id());
                    s.alice.revoke(&s.doc.0, gone).unwrap()
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function(BenchmarkId::new("write_after_revoke", n), |b| {
            b.iter_batched(
                || revoked(n),
                |mut s| s.alice.write(s.doc, &KIB).unwrap(),
                BatchSize::PerIteration,
            )
        });
        let history = items(&s.alice);
        let from = PeerTag::from(s.alice.device().id().0);
        let newcomer = s.members[1].clone();
        // One core, then signatures checked ahead on every core (ADM-2a).
        for (name, threads) in [("ingest_shuffled", 1), ("ingest_parallel", 0)] {
            g.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter_batched(
                    || {
                        let mut fresh =
                            Replica::open(newcomer.clone(), MemoryStore::new()).unwrap();
                        if threads > 0 {
                            fresh.set_signature_threads(threads);
                        }
                        (fresh, history.clone())
                    },
                    |(mut fresh, history)| fresh.ingest_all(from, history).unwrap(),
                    BatchSize::PerIteration,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, raw, device);
criterion_main!(benches);
