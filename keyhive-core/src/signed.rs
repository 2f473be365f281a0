//! Content-addressed signed envelopes with type-state verification (`specs/encoding.md` §2).
//!
//! Wire form (ENC-5): `envelope = payload || signature`, where `payload` is the tagged,
//! canonical encoding of `T` ([`encode_tagged`]) and `signature` is the 64-byte Ed25519
//! signature by `T::signer()` over exactly `payload`. The content address is
//! `Hash::of_signed(envelope)`. Bytes are kept as received and never re-serialised to verify.
//!
//! [`Signed<T>`] is what comes off the network or disk: decoded but not trusted. Only
//! [`Signed::verify`] (or signing locally) yields a [`Verified<T>`], so an unverified op cannot
//! be passed where a verified one is expected.

use std::collections::HashMap;
use std::ops::Deref;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::crypto::hash::Hash;
use crate::crypto::signing::{PublicKey, SignatureError, SigningKey, verify_strict_with};
use crate::encoding::{DecodeError, SignedPayload, decode_tagged, encode_tagged};

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// A payload that names the key that must have signed it.
pub trait Signable: SignedPayload {
    /// The public key whose signature makes this payload valid.
    fn signer(&self) -> &PublicKey;

    /// Structural rules beyond canonical encoding, checked on decode (e.g. ENC-9).
    fn check_structure(&self) -> Result<(), DecodeError> {
        Ok(())
    }
}

/// Why a signed envelope was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The signer's key is not a valid point.
    #[error("signer key is invalid")]
    Signature(#[from] SignatureError),
    /// CAP-24: a root-form auth op's signer is the creator its subject's genesis names, and
    /// that genesis is not held.
    #[error("the signer is named by a genesis not held")]
    IssuerNotKnown,
}

/// A decoded, **unverified** signed envelope.
#[derive(Clone, Debug)]
pub struct Signed<T> {
    envelope: Vec<u8>,
    payload: T,
    hash: Hash,
}

impl<T: Signable> Signed<T> {
    /// Decodes an envelope (ENC-1..ENC-5). Performs no signature check.
    pub fn decode(envelope: &[u8]) -> Result<Self, DecodeError> {
        if envelope.len() > T::MAX_LEN + SIGNATURE_LEN {
            return Err(DecodeError::Oversize {
                len: envelope.len(),
                max: T::MAX_LEN + SIGNATURE_LEN,
            });
        }
        let Some(split) = envelope.len().checked_sub(SIGNATURE_LEN) else {
            return Err(DecodeError::Truncated);
        };
        let payload = decode_tagged::<T>(&envelope[..split])?;
        payload.check_structure()?;
        Ok(Signed {
            envelope: envelope.to_vec(),
            payload,
            hash: Hash::of_signed(envelope),
        })
    }

    /// The content address: BLAKE3 (signed-hash label) of the exact envelope bytes.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// ENC-4: the format version the envelope was written in (the byte after the tag; a
    /// decoded envelope always has one).
    pub fn format_version(&self) -> u8 {
        let at = crate::encoding::encode(&T::TAG).len();
        self.envelope.get(at).copied().unwrap_or(0)
    }

    /// The payload, not yet authenticated. Use only to triage (e.g. find missing predecessors).
    pub fn unverified_payload(&self) -> &T {
        &self.payload
    }

    /// The exact envelope bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.envelope
    }

    fn signed_parts(&self) -> (&[u8], &[u8; SIGNATURE_LEN]) {
        let (payload, signature) = self.envelope.split_at(self.envelope.len() - SIGNATURE_LEN);
        (payload, signature_ref(signature))
    }

    /// Checks the signature with `verify_strict` over exactly the received payload bytes.
    pub fn verify(self) -> Result<Verified<T>, VerifyError> {
        let key = self.payload.signer().verifying_key()?;
        self.verify_with_key(&key)
    }

    /// Runs the check [`Signed::verify`] runs (`verify_strict`, ENC-4) without consuming the
    /// envelope: for checking a batch's signatures on several cores before the batch is
    /// applied in order by whoever holds the answers.
    pub fn check_signature(&self) -> Result<(), VerifyError> {
        let key = self.payload.signer().verifying_key()?;
        let (payload, signature) = self.signed_parts();
        verify_strict_with(&key, payload, signature)?;
        Ok(())
    }

    /// As [`Signed::verify`], reusing decompressed signer keys from `cache`.
    pub fn verify_cached(self, cache: &mut KeyCache) -> Result<Verified<T>, VerifyError> {
        let key = cache.get(self.payload.signer())?;
        cache.checked += 1;
        self.verify_with_key(&key)
    }

    /// Treats the envelope as verified **without checking its signature**. Only for bytes
    /// whose signature this process's owner checked before and kept proof of under a secret
    /// key (a relay's admission marks, `specs/replica.md` RELAY-7); anything read from a peer
    /// or an unauthenticated store must go through [`Signed::verify`].
    pub fn assume_verified(self) -> Verified<T> {
        Verified(self)
    }

    /// An envelope decoded by its own rules (CAP-24: a root-form auth op, whose signed bytes
    /// omit the issuer that `payload` carries): `envelope` is exactly what was signed followed
    /// by the signature, and its hash is the content address as for any envelope.
    pub(crate) fn from_parts(envelope: Vec<u8>, payload: T) -> Self {
        let hash = Hash::of_signed(&envelope);
        Signed {
            envelope,
            payload,
            hash,
        }
    }

    fn verify_with_key(self, key: &VerifyingKey) -> Result<Verified<T>, VerifyError> {
        let (payload, signature) = self.signed_parts();
        verify_strict_with(key, payload, signature)?;
        Ok(Verified(self))
    }
}

fn signature_ref(bytes: &[u8]) -> &[u8; SIGNATURE_LEN] {
    // `bytes` is always exactly SIGNATURE_LEN long: it is the tail split off above.
    <&[u8; SIGNATURE_LEN]>::try_from(bytes).unwrap_or(&[0u8; SIGNATURE_LEN])
}

/// A signed envelope whose signature has been checked (or which this device signed).
#[derive(Clone, Debug)]
pub struct Verified<T>(Signed<T>);

impl<T: Signable> Verified<T> {
    /// Signs `payload` with `key`. The key must be the payload's declared signer.
    pub fn sign(payload: T, key: &SigningKey) -> Result<Self, SignError> {
        if key.public_key() != *payload.signer() {
            return Err(SignError::WrongKey);
        }
        let mut envelope = encode_tagged(&payload);
        if envelope.len() > T::MAX_LEN {
            return Err(SignError::TooLarge {
                len: envelope.len(),
                max: T::MAX_LEN,
            });
        }
        payload.check_structure().map_err(SignError::Structure)?;
        let signature = key.sign(&envelope);
        envelope.extend_from_slice(&signature);
        let hash = Hash::of_signed(&envelope);
        Ok(Verified(Signed {
            envelope,
            payload,
            hash,
        }))
    }

    /// Signs `signed_bytes`, the encoding of `payload` by its own rules (CAP-24: a root-form
    /// auth op), with `key`, which must be the payload's declared signer. The caller checked
    /// the payload's structure and size.
    pub(crate) fn sign_encoded(
        payload: T,
        mut signed_bytes: Vec<u8>,
        key: &SigningKey,
    ) -> Result<Self, SignError> {
        if key.public_key() != *payload.signer() {
            return Err(SignError::WrongKey);
        }
        let signature = key.sign(&signed_bytes);
        signed_bytes.extend_from_slice(&signature);
        Ok(Verified(Signed::from_parts(signed_bytes, payload)))
    }

    /// The content address.
    pub fn hash(&self) -> Hash {
        self.0.hash
    }

    /// ENC-4: the format version the envelope was written in.
    pub fn format_version(&self) -> u8 {
        self.0.format_version()
    }

    /// The exact envelope bytes, for storage and the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0.envelope
    }

    /// The verified payload.
    pub fn payload(&self) -> &T {
        &self.0.payload
    }

    /// The 64-byte signature.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        self.0.signed_parts().1
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0.payload
    }
}

/// Why signing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The signing key is not the payload's declared signer.
    #[error("the signing key is not the payload's declared signer")]
    WrongKey,
    /// The payload breaks a structural rule (e.g. too many predecessors).
    #[error("payload is malformed: {0}")]
    Structure(DecodeError),
    /// The payload would exceed its type's size limit, so no peer would accept it.
    #[error("payload of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// Limit.
        max: usize,
    },
}

/// Decompressed verifying keys by public key, so that repeated issuers skip point
/// decompression. Bounded: cleared when it reaches [`KeyCache::CAPACITY`] entries.
#[derive(Default, Debug)]
pub struct KeyCache {
    keys: HashMap<PublicKey, VerifyingKey>,
    /// Signatures checked with keys from this cache.
    checked: u64,
}

impl KeyCache {
    /// Most keys held before the cache is cleared.
    pub const CAPACITY: usize = 65_536;

    /// How many signatures were checked ([`Signed::verify_cached`]) with keys from this
    /// cache, valid or not.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// Returns the decompressed key, decompressing and remembering it on a miss.
    pub fn get(&mut self, key: &PublicKey) -> Result<VerifyingKey, SignatureError> {
        if let Some(found) = self.keys.get(key) {
            return Ok(*found);
        }
        let decompressed = key.verifying_key()?;
        if self.keys.len() >= Self::CAPACITY {
            self.keys.clear();
        }
        self.keys.insert(*key, decompressed);
        Ok(decompressed)
    }
}

/// The generic causal op: an issuer, the hashes of its causal predecessors, and a body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op<B> {
    /// The device (or self-certifying subject key, for a genesis) that signs the op.
    pub issuer: PublicKey,
    /// Hashes of the ops this one causally follows, sorted ascending and without duplicates.
    pub predecessors: Vec<Hash>,
    /// The op's content.
    pub body: B,
}

/// An op body type: supplies the domain tag, version and size limit of `Op<Self>`.
pub trait OpBody: Serialize + serde::de::DeserializeOwned {
    /// Domain tag of `Op<Self>`.
    const TAG: &'static str;
    /// Format version of `Op<Self>`.
    const VERSION: u8;
    /// Largest encoded `Op<Self>` accepted.
    const MAX_LEN: usize;
    /// Most causal predecessors an op may name.
    const MAX_PREDECESSORS: usize = 64;

    /// Structural rules of the body beyond canonical encoding, checked on decode and sign.
    fn check_body(&self) -> Result<(), DecodeError> {
        Ok(())
    }

    /// ENC-4: decodes an `Op<Self>` written in an earlier format `version` this build still
    /// reads ([`SignedPayload::decode_earlier`]); `None` (the default) reads none.
    fn decode_earlier_op(version: u8, body: &[u8]) -> Option<Result<Op<Self>, DecodeError>>
    where
        Self: Sized,
    {
        let _ = (version, body);
        None
    }
}

impl<B: OpBody> SignedPayload for Op<B> {
    const TAG: &'static str = B::TAG;
    const VERSION: u8 = B::VERSION;
    const MAX_LEN: usize = B::MAX_LEN;

    fn decode_earlier(version: u8, body: &[u8]) -> Option<Result<Self, DecodeError>> {
        B::decode_earlier_op(version, body)
    }
}

impl<B: OpBody> Signable for Op<B> {
    fn signer(&self) -> &PublicKey {
        &self.issuer
    }

    /// ENC-9: predecessors are strictly ascending (sorted, no duplicates) and bounded.
    fn check_structure(&self) -> Result<(), DecodeError> {
        if self.predecessors.len() > B::MAX_PREDECESSORS {
            return Err(DecodeError::InvalidStructure("too many predecessors"));
        }
        if self.predecessors.windows(2).any(|w| w[0] >= w[1]) {
            return Err(DecodeError::InvalidStructure(
                "predecessors not strictly ascending",
            ));
        }
        self.body.check_body()
    }
}

impl<B: OpBody> Op<B> {
    /// Builds an op, sorting and de-duplicating `predecessors` as ENC-9 requires.
    pub fn new(issuer: PublicKey, mut predecessors: Vec<Hash>, body: B) -> Self {
        predecessors.sort_unstable();
        predecessors.dedup();
        Op {
            issuer,
            predecessors,
            body,
        }
    }
}
