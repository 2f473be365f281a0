//! CGKA and causal-encryption benchmarks, with the raw primitives measured in the same run.
//!
//! Run: `cargo bench -p keyhive-core --bench cgka`. Also prints CGKA state and history bytes
//! per member for N = 10 … 10,000.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use keyhive_core::cgka::state::fresh_path;
use keyhive_core::cgka::{Cgka, CgkaBody, StaticAuthority};
use keyhive_core::crypto::aead;
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::prekey::PrekeySecret;
use keyhive_core::crypto::secret::SymmetricKey;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::encryption::{change_key, decrypt_with_key, encrypt_with_epoch};
use keyhive_core::identity::{Device, DocumentId};
use keyhive_core::signed::{Op, Signed, Verified};

/// A document of `n` members built by the join pattern: the creator adds each member, who
/// then issues one update, so the tree has no blanks. Returns the creator's replica.
fn document(n: usize) -> (Cgka, Device, Vec<Device>, StaticAuthority) {
    let creator = Device::generate(None);
    let mut authority = StaticAuthority::new();
    authority.grant_admin(creator.id(), creator.prekeys()[0].public());
    let doc = DocumentId(SigningKey::generate().public_key());
    let (mut cgka, _) = Cgka::create(doc, &creator).expect("create");
    let key = creator.signing_key().clone();
    let mut members = Vec::with_capacity(n);
    for _ in 1..n {
        let d = Device::generate(None);
        let pk = d.prekeys()[0].public();
        authority.grant_read(d.id(), pk);
        cgka.add(&key, d.id(), pk, &authority).expect("add");
        let slot = cgka.tree().slot_of(&d.id()).expect("seated");
        let fresh = fresh_path(cgka.tree(), &doc, slot).expect("path");
        let heads: Vec<Hash> = cgka.heads().iter().copied().collect();
        let op = Verified::sign(
            Op::new(
                d.signing_key().public_key(),
                heads,
                CgkaBody::Update(fresh.path),
            ),
            d.signing_key(),
        )
        .expect("sign");
        let signed = Signed::decode(op.as_bytes()).expect("decode");
        cgka.receive(signed, &authority).expect("receive");
        members.push(d);
    }
    (cgka, creator, members, authority)
}

fn sizes() {
    println!("\nCGKA bytes per member (join pattern: add + one update per member)");
    println!(
        "{:>7} {:>10} {:>14} {:>14} {:>12}",
        "N", "ops", "history B/mbr", "public B/mbr", "secret B"
    );
    for n in [10usize, 100, 1_000, 10_000] {
        let start = Instant::now();
        let (cgka, _, _, _) = document(n);
        let (_, entries) = cgka.tree().inner_stats();
        // Public tree state: per leaf id + key + op (96 B), per inner entry key + op (64 B).
        let public = n * 96 + entries * 64;
        println!(
            "{:>7} {:>10} {:>14} {:>14} {:>12}   (built in {:.1?})",
            n,
            cgka.op_count(),
            cgka.history_bytes() / n,
            public / n,
            cgka.secret_bytes(),
            start.elapsed()
        );
    }
}

fn benches(c: &mut Criterion) {
    // Raw primitives, same run.
    let a = PrekeySecret::generate();
    let b = PrekeySecret::generate().public();
    c.bench_function("raw/x25519_dh", |bench| {
        bench.iter(|| black_box(a.agree(black_box(&b)).expect("dh")))
    });
    c.bench_function("raw/x25519_keygen", |bench| {
        bench.iter(|| black_box(PrekeySecret::generate().public()))
    });
    let signer = SigningKey::generate();
    let message = vec![1u8; 200];
    let signature = signer.sign(&message);
    let public = signer.public_key();
    c.bench_function("raw/ed25519_verify_strict_200B", |bench| {
        bench.iter(|| black_box(public.verify_strict(black_box(&message), &signature)))
    });
    let key = SymmetricKey::random();
    let kib = vec![7u8; 1024];
    {
        use chacha20poly1305::aead::{Aead, KeyInit};
        use chacha20poly1305::{XChaCha20Poly1305, XNonce};
        let cipher = XChaCha20Poly1305::new(key.expose().into());
        c.bench_function(
            "raw/xchacha20poly1305_seal_open_1KiB_no_commitment",
            |bench| {
                bench.iter(|| {
                    let nonce = XNonce::from([3u8; 24]);
                    let ct = cipher
                        .encrypt(&nonce, black_box(kib.as_slice()))
                        .expect("seal");
                    black_box(cipher.decrypt(&nonce, ct.as_slice()).expect("open"))
                })
            },
        );
    }
    c.bench_function("raw/aead_seal_open_1KiB", |bench| {
        bench.iter(|| {
            let sealed = aead::seal(&key, b"", black_box(&kib)).expect("seal");
            black_box(aead::open(&key, b"", &sealed).expect("open"))
        })
    });

    // Encrypt + decrypt of a 1 KiB change (derive change key, seal with commitment, open).
    let doc = DocumentId(SigningKey::generate().public_key());
    let root = SymmetricKey::random();
    let epoch = Hash([1; 32]);
    let preds = vec![(Hash([2; 32]), SymmetricKey::random())];
    c.bench_function("cenc/encrypt_decrypt_1KiB_change", |bench| {
        bench.iter(|| {
            let (enc, _) =
                encrypt_with_epoch(doc, epoch, &root, Hash([3; 32]), &preds, black_box(&kib))
                    .expect("encrypt");
            let k = change_key(&root, &enc.header);
            black_box(decrypt_with_key(&k, &enc).expect("decrypt"))
        })
    });

    if std::env::var_os("KEYHIVE_BENCH_QUICK").is_some() {
        return;
    }
    // Update after one removal in a 1,000-member document.
    let (mut cgka, creator, members, authority) = document(1_000);
    let key = creator.signing_key().clone();
    cgka.remove(&key, members[500].id(), &authority)
        .expect("remove");
    let mut group = c.benchmark_group("cgka");
    group.sample_size(30);
    // `iter_batched_ref`: neither the clone nor dropping it is timed.
    group.bench_function("update_after_one_removal_n1000", |bench| {
        bench.iter_batched_ref(
            || cgka.clone(),
            |c| black_box(c.update(&key, &authority).expect("update")),
            BatchSize::LargeInput,
        )
    });
    let op = cgka.clone().update(&key, &authority).expect("update");
    if let CgkaBody::Update(path) = &op.body {
        let wraps: usize = path.nodes.iter().map(|n| n.wrapped.len()).sum();
        println!(
            "update after one removal, N=1000: {} path nodes, {} wrapped secrets (DH), {} bytes",
            path.nodes.len(),
            wraps,
            op.as_bytes().len()
        );
    }

    // A member ingests the whole history of a 1,000-member document (verify + apply + read).
    let history: Vec<Vec<u8>> = cgka
        .ops_in_order()
        .map(|op| op.as_bytes().to_vec())
        .collect();
    let reader = members.last().expect("members").clone();
    let binding = cgka.binding();
    group.sample_size(10);
    group.bench_function("ingest_history_n1000", |bench| {
        bench.iter(|| {
            let init = Signed::decode(&history[0]).expect("decode");
            let mut replica =
                Cgka::from_init(&binding, init, Some(&reader), &authority).expect("init");
            for bytes in &history[1..] {
                let op = Signed::decode(bytes).expect("decode");
                replica.receive(op, &authority).expect("receive");
            }
            black_box(replica.op_count())
        })
    });
    println!("history of N=1000: {} ops", history.len());

    // First update after 1,000 one-by-one adds (every inner node blank: O(n) wraps).
    let mut adds_only = Cgka::create(doc, &creator).expect("create").0;
    for m in &members {
        adds_only
            .add(&key, m.id(), m.prekeys()[0].public(), &authority)
            .expect("add");
    }
    group.bench_function("first_update_after_1000_adds", |bench| {
        bench.iter_batched_ref(
            || adds_only.clone(),
            |c| black_box(c.update(&key, &authority).expect("update")),
            BatchSize::LargeInput,
        )
    });
    let first = adds_only.clone().update(&key, &authority).expect("update");
    adds_only
        .receive(
            Signed::decode(first.as_bytes()).expect("decode"),
            &authority,
        )
        .expect("receive");
    println!(
        "adds one by one + one update, N=1000: history {} B/member",
        adds_only.history_bytes() / 1000
    );
    group.finish();
    sizes();
}

criterion_group!(all, benches);
criterion_main!(all);
