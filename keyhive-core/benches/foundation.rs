//! Foundation benchmarks: signing, verification, op hashing and canonical encode/decode, each
//! beside the raw primitive measured in the same run. Ratios are printed at the end.

mod support;

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use ed25519_dalek::{Signer, Verifier};
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::encoding::{decode_canonical, encode};
use keyhive_core::identity::{Genesis, IndividualId, SubjectKind};
use keyhive_core::signed::{KeyCache, Op, Signed, Verified};

fn sample_op() -> (SigningKey, Verified<Op<Genesis>>) {
    let key = SigningKey::from_seed(&[9; 32]);
    let creator = IndividualId(key.public_key());
    let op = Op::new(
        key.public_key(),
        vec![],
        Genesis {
            kind: SubjectKind::Group,
            creator,
            key_agreement: None,
        },
    );
    let signed = Verified::sign(op, &key).expect("sign");
    (key, signed)
}

fn sign_and_verify(c: &mut Criterion) {
    let (key, op) = sample_op();
    let bytes = op.as_bytes().to_vec();
    let payload = &bytes[..bytes.len() - 64];
    let raw_key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let raw_vk = raw_key.verifying_key();
    let raw_sig = raw_key.sign(payload);

    let mut g = c.benchmark_group("sign");
    g.bench_function("raw_ed25519_sign", |b| {
        b.iter(|| raw_key.sign(black_box(payload)))
    });
    g.bench_function("op_sign", |b| {
        b.iter(|| Verified::sign(black_box(op.payload().clone()), &key).expect("sign"))
    });
    g.finish();

    let mut g = c.benchmark_group("verify");
    g.bench_function("raw_verify", |b| {
        b.iter(|| raw_vk.verify(black_box(payload), &raw_sig).is_ok())
    });
    g.bench_function("raw_verify_strict", |b| {
        b.iter(|| raw_vk.verify_strict(black_box(payload), &raw_sig).is_ok())
    });
    let mut cache = KeyCache::default();
    g.bench_function("op_decode_verify_cached", |b| {
        b.iter(|| {
            Signed::<Op<Genesis>>::decode(black_box(&bytes))
                .expect("decode")
                .verify_cached(&mut cache)
                .expect("verify")
        })
    });
    g.bench_function("op_decode_verify_uncached", |b| {
        b.iter(|| {
            Signed::<Op<Genesis>>::decode(black_box(&bytes))
                .expect("decode")
                .verify()
                .expect("verify")
        })
    });
    g.finish();
}

fn hashing(c: &mut Criterion) {
    let (_, op) = sample_op();
    let bytes = op.as_bytes().to_vec();
    let mut g = c.benchmark_group("hash");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("raw_blake3", |b| b.iter(|| blake3::hash(black_box(&bytes))));
    g.bench_function("op_hash", |b| b.iter(|| Hash::of_signed(black_box(&bytes))));
    g.finish();
}

fn encoding(c: &mut Criterion) {
    let hashes: Vec<Hash> = (0..4u8).map(|i| Hash([i; 32])).collect();
    let bytes = encode(&hashes);
    let mut g = c.benchmark_group("encoding");
    g.bench_function("raw_postcard_encode_decode", |b| {
        b.iter(|| {
            let bytes = postcard::to_allocvec(black_box(&hashes)).expect("encode");
            postcard::from_bytes::<Vec<Hash>>(&bytes).expect("decode")
        })
    });
    g.bench_function("canonical_encode_decode", |b| {
        b.iter(|| {
            let bytes = encode(black_box(&hashes));
            decode_canonical::<Vec<Hash>>(&bytes, 4096).expect("decode")
        })
    });
    g.bench_function("canonical_decode_only", |b| {
        b.iter(|| decode_canonical::<Vec<Hash>>(black_box(&bytes), 4096).expect("decode"))
    });
    g.finish();
}

/// Alternates raw `verify_strict` and the op layer's decode + verify in small blocks, so that
/// load on a shared machine affects both sides equally, and prints the ratio of total times.
fn paired_verify_ratio() {
    let (_, op) = sample_op();
    let bytes = op.as_bytes().to_vec();
    let payload = bytes[..bytes.len() - 64].to_vec();
    let raw_vk = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
    let raw_sig = ed25519_dalek::Signature::from_bytes(op.signature());
    let mut cache = KeyCache::default();
    let (mut raw, mut ours) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    let run_raw = || {
        let t = std::time::Instant::now();
        for _ in 0..20 {
            black_box(raw_vk.verify_strict(black_box(&payload), &raw_sig).is_ok());
        }
        t.elapsed()
    };
    let mut run_ours = || {
        let t = std::time::Instant::now();
        for _ in 0..20 {
            let signed = Signed::<Op<Genesis>>::decode(black_box(&bytes)).expect("decode");
            black_box(signed.verify_cached(&mut cache).expect("verify"));
        }
        t.elapsed()
    };
    // Alternate which side goes first, so neither profits from running second.
    for i in 0..200 {
        if i % 2 == 0 {
            raw += run_raw();
            ours += run_ours();
        } else {
            ours += run_ours();
            raw += run_raw();
        }
    }
    println!(
        "PAIRED op decode+verify / raw verify_strict over 4,000 alternating runs: {:.3}x ({:.2} µs vs {:.2} µs)",
        ours.as_secs_f64() / raw.as_secs_f64(),
        ours.as_secs_f64() * 1e6 / 4000.0,
        raw.as_secs_f64() * 1e6 / 4000.0
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    sign_and_verify(&mut c);
    hashing(&mut c);
    encoding(&mut c);
    c.final_summary();
    paired_verify_ratio();
    support::print_ratio(
        "op sign / raw sign",
        "sign",
        "op_sign",
        "sign",
        "raw_ed25519_sign",
    );
    support::print_ratio(
        "op decode+verify (cached key) / raw verify_strict",
        "verify",
        "op_decode_verify_cached",
        "verify",
        "raw_verify_strict",
    );
    support::print_ratio(
        "op decode+verify (uncached) / raw verify_strict",
        "verify",
        "op_decode_verify_uncached",
        "verify",
        "raw_verify_strict",
    );
    support::print_ratio(
        "op hash / raw blake3",
        "hash",
        "op_hash",
        "hash",
        "raw_blake3",
    );
    support::print_ratio(
        "canonical / raw postcard encode+decode",
        "encoding",
        "canonical_encode_decode",
        "encoding",
        "raw_postcard_encode_decode",
    );
}
