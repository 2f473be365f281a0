//! Capability checker benchmarks (`specs/capabilities.md` CAP-18), each beside the raw
//! primitive it is bounded by (`verify_strict`).
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use keyhive_core::capability::{Access, AgentId, AnySigned, AnyVerified, Checker, PeerTag};
use keyhive_core::crypto::signing::{PublicKey, SigningKey, verify_strict_with};
use keyhive_core::identity::{Device, DocumentId, GroupId};

fn device(i: usize) -> Device {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    seed[31] = 0x5a;
    Device::from_parts(SigningKey::from_seed(&seed), Vec::new(), None)
}

fn shuffle<T>(items: &mut [T], mut state: u64) {
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (state % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// A 1,000-member document: 1,000 delegations (100 of them writers who each write 2 changes),
/// 10 revocations: 1,211 ops.
fn document_history(members: usize) -> (Vec<Vec<u8>>, PublicKey) {
    let owner = device(0);
    let mut c = Checker::default();
    let doc = c.create_document(&owner).unwrap().genesis.issuer;
    let mut grants = Vec::new();
    for i in 1..=members {
        let access = if i % 10 == 0 {
            Access::Write
        } else {
            Access::Read
        };
        grants.push(
            c.delegate(&owner, &doc, AgentId::Individual(device(i).id()), access)
                .unwrap()
                .hash(),
        );
    }
    for i in (10..=members).step_by(10) {
        let d = device(i);
        c.write(&d, DocumentId(doc), b"one").unwrap();
        c.write(&d, DocumentId(doc), b"two").unwrap();
    }
    for g in grants.iter().take(10) {
        c.revoke(&owner, &doc, g).unwrap();
    }
    (c.ops().map(|o| o.as_bytes().to_vec()).collect(), doc)
}

/// A large mixed history: a folder with 2,000 devices and 100 person groups (3 devices each),
/// 20 documents granted to the folder, 1,000 edits through doc -> folder -> person -> device
/// chains, and 55 revocations: about 3,700 ops.
fn mixed_history() -> Vec<Vec<u8>> {
    let owner = device(0);
    let mut c = Checker::default();
    let folder = c.create_group(&owner).unwrap().issuer;
    let docs: Vec<PublicKey> = (0..20)
        .map(|_| {
            let doc = c.create_document(&owner).unwrap().genesis.issuer;
            c.delegate(&owner, &doc, AgentId::Group(GroupId(folder)), Access::Admin)
                .unwrap();
            doc
        })
        .collect();
    let mut person_grants = Vec::new();
    let mut writers = Vec::new();
    for p in 0..100 {
        let laptop = device(10_000 + p * 3);
        let person = c.create_group(&laptop).unwrap().issuer;
        for k in 1..3 {
            let d = device(10_000 + p * 3 + k);
            c.delegate(&laptop, &person, AgentId::Individual(d.id()), Access::Admin)
                .unwrap();
            writers.push(d);
        }
        person_grants.push(
            c.delegate(
                &owner,
                &folder,
                AgentId::Group(GroupId(person)),
                Access::Write,
            )
            .unwrap()
            .hash(),
        );
    }
    let mut member_grants = Vec::new();
    for i in 1..=2_000 {
        member_grants.push(
            c.delegate(
                &owner,
                &folder,
                AgentId::Individual(device(i).id()),
                Access::Read,
            )
            .unwrap()
            .hash(),
        );
    }
    for round in 0..5 {
        for (w, d) in writers.iter().enumerate() {
            c.write(d, DocumentId(docs[(w + round) % docs.len()]), b"edit")
                .unwrap();
        }
    }
    for g in member_grants.iter().step_by(40) {
        c.revoke(&owner, &folder, g).unwrap();
    }
    for g in person_grants.iter().step_by(20) {
        c.revoke(&owner, &folder, g).unwrap();
    }
    c.ops().map(|o| o.as_bytes().to_vec()).collect()
}

fn raw_verify_inputs(ops: &[Vec<u8>]) -> Vec<(PublicKey, Vec<u8>, [u8; 64])> {
    // A representative signed message per op: the same bytes and signature sizes.
    let key = device(1);
    ops.iter()
        .map(|bytes| {
            let msg = bytes[..bytes.len() - 64].to_vec();
            let sig = key.signing_key().sign(&msg);
            (key.signing_key().public_key(), msg, sig)
        })
        .collect()
}

fn bench_ingest(c: &mut Criterion) {
    let (ops, doc) = document_history(1_000);
    let mixed = mixed_history();
    let mut shuffled = mixed.clone();
    shuffle(&mut shuffled, 0x1234_5678_9abc_def1);
    let raw = raw_verify_inputs(&mixed);
    let mut group = c.benchmark_group("capabilities/ingest");
    group.sample_size(10);
    group.throughput(Throughput::Elements(mixed.len() as u64));
    println!("mixed history: {} ops", mixed.len());
    group.bench_function("raw verify_strict (decompress + verify) x ops", |b| {
        b.iter(|| {
            for (pk, msg, sig) in &raw {
                black_box(pk.verify_strict(msg, sig)).unwrap();
            }
        })
    });
    group.bench_function("raw verify_strict (key cached) x ops", |b| {
        let vk = raw[0].0.verifying_key().unwrap();
        b.iter(|| {
            for (_, msg, sig) in &raw {
                black_box(verify_strict_with(&vk, msg, sig)).unwrap();
            }
        })
    });
    group.bench_function("ingest shuffled mixed history (verify+apply)", |b| {
        b.iter(|| {
            let mut c = Checker::default();
            for bytes in &shuffled {
                c.ingest(PeerTag::LOCAL, bytes).unwrap();
            }
            assert_eq!(c.pending_len(), 0);
            assert_eq!(c.len(), shuffled.len());
            black_box(c.len())
        })
    });
    // The checker's own share: the same shuffled history, already decoded and verified.
    // (A root-form op, CAP-24, is verified under the creator its genesis names: taken from a
    // checker that holds the whole history.)
    let mut held = Checker::default();
    for bytes in &shuffled {
        held.ingest(PeerTag::LOCAL, bytes).unwrap();
    }
    let verified: Vec<AnyVerified> = shuffled
        .iter()
        .map(|bytes| {
            let hash = AnySigned::decode(bytes).unwrap().hash();
            held.op(&hash).unwrap().clone()
        })
        .collect();
    group.bench_function("apply only: shuffled mixed history, pre-verified", |b| {
        b.iter_batched(
            || verified.clone(),
            |ops| {
                let mut c = Checker::default();
                for op in ops {
                    c.apply_verified(op).unwrap();
                }
                c
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("decode only: shuffled mixed history", |b| {
        b.iter(|| {
            for bytes in &shuffled {
                black_box(AnySigned::decode(bytes).unwrap());
            }
        })
    });
    group.throughput(Throughput::Elements(ops.len() as u64));
    println!("1000-member document history: {} ops", ops.len());
    group.bench_function("fresh replica ingests 1000-member history in order", |b| {
        b.iter(|| {
            let mut c = Checker::default();
            for bytes in &ops {
                c.ingest(PeerTag::LOCAL, bytes).unwrap();
            }
            black_box(c.members(&doc).len())
        })
    });
    group.finish();
}

fn bench_add_members(c: &mut Criterion) {
    const N: usize = 1_000;
    let owner = device(0);
    let devices: Vec<Device> = (1..=N).map(device).collect();
    // Per-add cost at the start and at the end (mean of 100 adds each), printed once.
    let mut checker = Checker::default();
    let doc = checker.create_document(&owner).unwrap().genesis.issuer;
    let mut per_add = Vec::with_capacity(N);
    for d in &devices {
        let t = Instant::now();
        checker
            .delegate(&owner, &doc, AgentId::Individual(d.id()), Access::Read)
            .unwrap();
        per_add.push(t.elapsed());
    }
    let mean = |s: &[Duration]| s.iter().sum::<Duration>() / s.len() as u32;
    println!(
        "add members one by one (sign + apply): first 100 mean {:?}, last 100 mean {:?}",
        mean(&per_add[..100]),
        mean(&per_add[N - 100..])
    );
    // Revoking members of the 1,000-member document, one by one (sign + apply, including
    // the CAP-12 recomputation and the cascade re-evaluation).
    let mut per_revoke = Vec::with_capacity(100);
    for d in devices.iter().take(100) {
        let target = checker.delegations_to(&doc, AgentId::Individual(d.id()));
        let t = Instant::now();
        checker.revoke(&owner, &doc, &target[0]).unwrap();
        per_revoke.push(t.elapsed());
    }
    println!(
        "revoke one member of a 1000-member document (sign + apply): first {:?}, mean of 100 {:?}",
        per_revoke[0],
        mean(&per_revoke)
    );
    let mut group = c.benchmark_group("capabilities/add-members");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("raw sign x 1000", |b| {
        let key = owner.signing_key();
        b.iter(|| {
            for i in 0..N {
                black_box(key.sign(&(i as u64).to_le_bytes()));
            }
        })
    });
    group.bench_function("add 1000 members one by one (sign + apply)", |b| {
        b.iter_batched(
            || {
                let mut c = Checker::default();
                let doc = c.create_document(&owner).unwrap().genesis.issuer;
                (c, doc)
            },
            |(mut c, doc)| {
                for d in &devices {
                    c.delegate(&owner, &doc, AgentId::Individual(d.id()), Access::Read)
                        .unwrap();
                }
                c
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn bench_can(c: &mut Criterion) {
    const MEMBERS: usize = 10_000;
    const DOCS: usize = 1_000;
    let owner = device(0);
    let mut checker = Checker::default();
    let folder = checker.create_group(&owner).unwrap().issuer;
    for i in 1..=MEMBERS {
        checker
            .delegate(
                &owner,
                &folder,
                AgentId::Individual(device(i).id()),
                Access::Write,
            )
            .unwrap();
    }
    let mut docs = Vec::with_capacity(DOCS);
    for _ in 0..DOCS {
        let doc = checker.create_document(&owner).unwrap().genesis.issuer;
        checker
            .delegate(&owner, &doc, AgentId::Group(GroupId(folder)), Access::Read)
            .unwrap();
        docs.push(doc);
    }
    // 1,000 distinct (agent, document) pairs, cycled.
    let queries: Vec<(AgentId, PublicKey)> = (0..1_000)
        .map(|i| {
            (
                AgentId::Individual(device(1 + (i * 7919) % MEMBERS).id()),
                docs[(i * 104_729) % DOCS],
            )
        })
        .collect();
    let t = Instant::now();
    for (agent, doc) in &queries {
        assert!(checker.can(*agent, Access::Read, doc));
    }
    println!(
        "can(): first query per agent (cold cache, 1,001 reachable subjects) mean {:?}",
        t.elapsed() / queries.len() as u32
    );
    let mut group = c.benchmark_group("capabilities/can");
    group.throughput(Throughput::Elements(queries.len() as u64));
    group.bench_function("can() x1000, 10k members, 1k documents (warm)", |b| {
        b.iter(|| {
            for (agent, doc) in &queries {
                black_box(checker.can(*agent, Access::Read, doc));
            }
        })
    });
    let msg = [7u8; 150];
    let sig = owner.signing_key().sign(&msg);
    let pk = owner.signing_key().public_key();
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw verify_strict (for scale)", |b| {
        b.iter(|| black_box(pk.verify_strict(&msg, &sig)))
    });
    group.finish();
}

criterion_group!(benches, bench_ingest, bench_add_members, bench_can);
criterion_main!(benches);
