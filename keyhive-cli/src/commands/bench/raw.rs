//! The raw primitives every workload is measured against, timed in the same process.

use std::hint::black_box;
use std::time::Duration;

use anyhow::{Context, Result};
use ed25519_dalek::Signer;
use keyhive_core::crypto::aead;
use keyhive_core::crypto::prekey::PrekeySecret;
use keyhive_core::crypto::secret::SymmetricKey;
use keyhive_core::crypto::signing::SigningKey;
use serde::Serialize;

use super::clock::Stopwatch;

/// Signatures per batch in the batch-verification figure.
const BATCH: usize = 64;

/// Raw primitives, microseconds per operation (per signature for the batch).
#[derive(Serialize)]
pub struct Raw {
    /// Ed25519 sign of a 256-byte message.
    pub sign_us: f64,
    /// Ed25519 `verify_strict` (key decompressed on each call, as for a fresh key).
    pub verify_strict_us: f64,
    /// Ed25519 batch verification of 64 signatures by 64 keys, per signature.
    pub verify_batch_us: f64,
    /// What a batch verification whose acceptance implied `verify_strict`'s would cost per
    /// signature (ENC-5): the batch, plus each `R` decompressed, checked canonical, not small
    /// order and torsion-free (keys checked once when first seen, not counted). Not used.
    pub verify_batch_strict_us: f64,
    /// One point decompressed and checked torsion-free (a multiplication by the group order).
    pub torsion_check_us: f64,
    /// X25519 Diffie-Hellman.
    pub x25519_us: f64,
    /// XChaCha20-Poly1305 seal of 1 KiB.
    pub seal_1k_us: f64,
    /// XChaCha20-Poly1305 open of 1 KiB.
    pub open_1k_us: f64,
    /// BLAKE3 of 1 KiB.
    pub blake3_1k_us: f64,
}

impl Raw {
    /// The mean of two measurements, primitive by primitive.
    pub fn mean(&self, other: &Raw) -> Raw {
        let m = |a: f64, b: f64| (a + b) / 2.0;
        Raw {
            sign_us: m(self.sign_us, other.sign_us),
            verify_strict_us: m(self.verify_strict_us, other.verify_strict_us),
            verify_batch_us: m(self.verify_batch_us, other.verify_batch_us),
            verify_batch_strict_us: m(self.verify_batch_strict_us, other.verify_batch_strict_us),
            torsion_check_us: m(self.torsion_check_us, other.torsion_check_us),
            x25519_us: m(self.x25519_us, other.x25519_us),
            seal_1k_us: m(self.seal_1k_us, other.seal_1k_us),
            open_1k_us: m(self.open_1k_us, other.open_1k_us),
            blake3_1k_us: m(self.blake3_1k_us, other.blake3_1k_us),
        }
    }
}

/// Mean microseconds per call of `f` over `iterations`, best of three runs, in the thread's
/// CPU time (`clock`).
pub fn per_op(iterations: usize, mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let start = Stopwatch::one_core();
        for _ in 0..iterations {
            f();
        }
        best = best.min(start.elapsed());
    }
    micros(best) / iterations as f64
}

/// Microseconds in `d`.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Times every primitive `iterations` times (best of three).
pub fn measure(iterations: usize) -> Result<Raw> {
    let key = SigningKey::generate();
    let public = key.public_key();
    let message = [7u8; 256];
    let signature = key.sign(&message);
    let (a, b) = (PrekeySecret::generate(), PrekeySecret::generate());
    let b_public = b.public();
    let sym = SymmetricKey::random();
    let kib = vec![3u8; 1024];
    let sealed = aead::seal(&sym, b"ad", &kib).context("sealing 1 KiB")?;
    let batch = Batch::new();
    Ok(Raw {
        sign_us: per_op(iterations, || {
            black_box(key.sign(black_box(&message)));
        }),
        verify_strict_us: per_op(iterations, || {
            black_box(public.verify_strict(black_box(&message), &signature)).ok();
        }),
        verify_batch_us: per_op(iterations.div_ceil(BATCH), || {
            black_box(batch.verify()).ok();
        }) / BATCH as f64,
        verify_batch_strict_us: per_op(iterations.div_ceil(BATCH), || {
            black_box(batch.verify_strict_equivalent()).ok();
        }) / BATCH as f64,
        torsion_check_us: per_op(iterations, || {
            black_box(torsion_free(black_box(signature[..32].try_into().ok())));
        }),
        x25519_us: per_op(iterations, || {
            black_box(a.agree(black_box(&b_public))).ok();
        }),
        seal_1k_us: per_op(iterations, || {
            black_box(aead::seal(&sym, b"ad", black_box(&kib))).ok();
        }),
        open_1k_us: per_op(iterations, || {
            black_box(aead::open(&sym, b"ad", black_box(&sealed))).ok();
        }),
        blake3_1k_us: per_op(iterations, || {
            black_box(keyhive_core::Hash::of_content(black_box(&kib)));
        }),
    })
}

/// `BATCH` messages signed by as many keys.
struct Batch {
    messages: Vec<[u8; 256]>,
    signatures: Vec<ed25519_dalek::Signature>,
    keys: Vec<ed25519_dalek::VerifyingKey>,
}

impl Batch {
    fn new() -> Self {
        let mut batch = Batch {
            messages: Vec::with_capacity(BATCH),
            signatures: Vec::with_capacity(BATCH),
            keys: Vec::with_capacity(BATCH),
        };
        for i in 0..BATCH {
            let key = ed25519_dalek::SigningKey::from_bytes(&[i as u8 + 1; 32]);
            let message = [i as u8; 256];
            batch.signatures.push(key.sign(&message));
            batch.keys.push(key.verifying_key());
            batch.messages.push(message);
        }
        batch
    }

    fn verify(&self) -> Result<(), ed25519_dalek::SignatureError> {
        let messages: Vec<&[u8]> = self.messages.iter().map(|m| m.as_slice()).collect();
        ed25519_dalek::verify_batch(&messages, &self.signatures, &self.keys)
    }

    /// The batch, accepted only if every `R` also passes the checks that make a cofactorless
    /// batch's acceptance imply `verify_strict`'s (ENC-5).
    fn verify_strict_equivalent(&self) -> Result<(), ed25519_dalek::SignatureError> {
        for signature in &self.signatures {
            if !torsion_free(Some(signature.r_bytes())) {
                return Err(ed25519_dalek::SignatureError::new());
            }
        }
        self.verify()
    }
}

/// Whether `bytes` encode, canonically, a point of the prime-order subgroup other than the
/// identity: what `R` (and, once per key, `A`) must satisfy for a batch verification's
/// acceptance to imply `verify_strict`'s.
fn torsion_free(bytes: Option<&[u8; 32]>) -> bool {
    let Some(bytes) = bytes else {
        return false;
    };
    let compressed = curve25519_dalek::edwards::CompressedEdwardsY(*bytes);
    compressed.decompress().is_some_and(|point| {
        point.compress() == compressed && !point.is_small_order() && point.is_torsion_free()
    })
}
