//! Push + pull throughput of 1 KiB items over loopback WebSocket, against the memory and redb
//! stores, with the raw primitives (BLAKE3 item hash, frame encode+decode, store put) measured
//! in the same run. Reconciliation bytes are printed by the `client` integration test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keyhive_core::crypto::signing::SigningKey;
use keyhive_sync::client::Session;
use keyhive_sync::policy::AllowAll;
use keyhive_sync::protocol::{Message, decode_frame, encode_frame};
use keyhive_sync::relay::{Relay, RelayConfig};
use keyhive_sync::store::{MemoryStore, RedbStore, Store};
use keyhive_sync::{Item, ItemKind, SubjectId};

const BATCH: usize = 256;
const ITEM: usize = 1024;

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn fresh_items(key: &SigningKey, subject: SubjectId, n: usize) -> Vec<Item> {
    (0..n)
        .map(|_| {
            let i = COUNTER.fetch_add(1, Ordering::Relaxed);
            let mut payload = vec![0u8; ITEM - 64];
            payload[..8].copy_from_slice(&i.to_le_bytes());
            let mut envelope = payload.clone();
            envelope.extend_from_slice(&key.sign(&payload));
            Item::new(ItemKind::Content, subject, envelope).unwrap()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let key = SigningKey::generate();
    let subject = SubjectId(SigningKey::generate().public_key());
    let mut group = c.benchmark_group("sync_1KiB");
    group.throughput(Throughput::Bytes((BATCH * ITEM) as u64));
    group.measurement_time(Duration::from_secs(5));
    group.sample_size(20);

    // Raw primitives.
    let sample = fresh_items(&key, subject, BATCH);
    group.bench_function("raw_blake3_item_hash_x256", |b| {
        b.iter(|| {
            for it in &sample {
                std::hint::black_box(keyhive_core::Hash::of_signed(it.envelope()));
            }
        })
    });
    let frame = encode_frame(&Message::Push {
        req: 1,
        items: sample.iter().map(Item::to_wire).collect(),
    });
    group.bench_function("raw_frame_encode_decode_x256", |b| {
        b.iter(|| {
            let f = encode_frame(&Message::Push {
                req: 1,
                items: sample.iter().map(Item::to_wire).collect(),
            });
            std::hint::black_box(decode_frame(&f).unwrap());
        })
    });
    println!("push frame of {BATCH} x 1 KiB items: {} bytes", frame.len());
    let mem = MemoryStore::new();
    group.bench_function("raw_memory_put_x256", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let items = fresh_items(&key, subject, BATCH);
                let t = Instant::now();
                mem.put(&items).unwrap();
                total += t.elapsed();
            }
            total
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let raw_redb = RedbStore::open(dir.path().join("raw.redb")).unwrap();
    group.bench_function("raw_redb_put_x256_one_txn", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let items = fresh_items(&key, subject, BATCH);
                let t = Instant::now();
                raw_redb.put(&items).unwrap();
                total += t.elapsed();
            }
            total
        })
    });

    for backend in ["memory", "redb"] {
        let store: Arc<dyn Store> = match backend {
            "memory" => Arc::new(MemoryStore::new()),
            _ => Arc::new(RedbStore::open(dir.path().join("relay.redb")).unwrap()),
        };
        let (relay, session) = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let relay = Relay::serve(
                listener,
                store,
                Arc::new(AllowAll),
                RelayConfig::new(SigningKey::generate()),
            )
            .unwrap();
            let session = Session::connect(&relay.url(), &key, None).await.unwrap();
            (relay, session)
        });
        group.bench_function(format!("push_x256_{backend}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let items = fresh_items(&key, subject, BATCH);
                    let t = Instant::now();
                    rt.block_on(session.push(&items)).unwrap();
                    total += t.elapsed();
                }
                total
            })
        });
        let stored = fresh_items(&key, subject, BATCH);
        rt.block_on(session.push(&stored)).unwrap();
        let hashes: Vec<_> = stored.iter().map(Item::hash).collect();
        group.bench_function(format!("pull_x256_{backend}"), |b| {
            b.iter(|| {
                let got = rt.block_on(session.pull(&hashes)).unwrap();
                assert_eq!(got.len(), BATCH);
            })
        });
        drop(session);
        rt.block_on(relay.shutdown()).unwrap();
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
