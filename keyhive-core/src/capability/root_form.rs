//! CAP-24: version 3 of `keyhive/auth`, the *root form*: an auth op whose proof is `Root`
//! omits its issuer, which CAP-6 fixes as the creator named in its subject's genesis (an
//! implied parent, CAP-23).
//!
//! ```text
//! signed bytes = postcard("keyhive/auth") || 3 || varint(n) || n × 32 || subject(32) || action || content_heads
//! envelope     = signed bytes || signature(64)      (signed by the genesis creator's key)
//! ```
//!
//! Its content address is `Hash::of_signed(envelope)`, computed from the bytes alone like any
//! op's, so stores, pending sets and other ops name it without knowing its issuer. Its
//! signature is checked under the creator's key once the genesis is held: before, the op waits
//! like any op with a missing parent.

use serde::{Deserialize, Serialize};

use crate::crypto::hash::Hash;
use crate::crypto::signing::{PublicKey, SigningKey};
use crate::encoding::{DecodeError, decode_canonical, encode};
use crate::signed::{OpBody, SIGNATURE_LEN, SignError, Signed, Verified};

use super::op::{AuthBody, AuthOp, Proof};

/// CAP-24: the format version of a root-form `keyhive/auth` op.
pub const ROOT_FORM_VERSION: u8 = 3;

/// The signed layout of a root form after its tag and version.
#[derive(Serialize, Deserialize)]
struct RootPayload {
    predecessors: Vec<Hash>,
    body: AuthBody,
}

/// CAP-24: a root-form auth op as its bytes alone give it: everything but its issuer, and so
/// not yet verifiable. [`RootFormOp::with_issuer`] ties it to its subject's genesis creator.
#[derive(Clone, Debug)]
pub struct RootFormOp {
    envelope: Vec<u8>,
    hash: Hash,
    predecessors: Vec<Hash>,
    body: AuthBody,
}

/// Whether `envelope` starts with the tag and version of the root form.
pub(crate) fn is_root_form(envelope: &[u8]) -> bool {
    let tag = encode(&<AuthBody as OpBody>::TAG);
    envelope.starts_with(&tag) && envelope.get(tag.len()) == Some(&ROOT_FORM_VERSION)
}

/// CAP-24: whether an op with this body is written in the root form by its subject's creator
/// (its proof is `Root`; a redemption has no proof).
pub fn takes_root_form(body: &AuthBody) -> bool {
    body.action.proof() == Some(&Proof::Root)
}

/// ENC-9 and CAP-2 on a root form's fields, and CAP-24: only a `Root` proof.
fn check(predecessors: &[Hash], body: &AuthBody) -> Result<(), DecodeError> {
    if predecessors.len() > <AuthBody as OpBody>::MAX_PREDECESSORS {
        return Err(DecodeError::InvalidStructure("too many predecessors"));
    }
    if predecessors.windows(2).any(|w| w[0] >= w[1]) {
        return Err(DecodeError::InvalidStructure(
            "predecessors not strictly ascending",
        ));
    }
    if !takes_root_form(body) {
        return Err(DecodeError::InvalidStructure(
            "CAP-24: a version-3 auth op must carry a Root proof",
        ));
    }
    body.check_body()
}

impl RootFormOp {
    /// Decodes a root-form envelope (ENC-1..ENC-5, ENC-9, CAP-24). Performs no signature
    /// check: the signer is not known from the bytes.
    pub fn decode(envelope: &[u8]) -> Result<Self, DecodeError> {
        let max = <AuthBody as OpBody>::MAX_LEN;
        if envelope.len() > max + SIGNATURE_LEN {
            return Err(DecodeError::Oversize {
                len: envelope.len(),
                max: max + SIGNATURE_LEN,
            });
        }
        let Some(split) = envelope.len().checked_sub(SIGNATURE_LEN) else {
            return Err(DecodeError::Truncated);
        };
        if !is_root_form(envelope) {
            return Err(DecodeError::WrongTag {
                expected: "keyhive/auth version 3",
            });
        }
        let at = encode(&<AuthBody as OpBody>::TAG).len() + 1;
        let body = envelope.get(at..split).ok_or(DecodeError::Truncated)?;
        let RootPayload { predecessors, body } = decode_canonical::<RootPayload>(body, max)?;
        check(&predecessors, &body)?;
        Ok(RootFormOp {
            envelope: envelope.to_vec(),
            hash: Hash::of_signed(envelope),
            predecessors,
            body,
        })
    }

    /// The content address: BLAKE3 (signed-hash label) of the exact envelope bytes.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// The exact envelope bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.envelope
    }

    /// The op's named predecessors (its subject's genesis is implied, CAP-23).
    pub fn predecessors(&self) -> &[Hash] {
        &self.predecessors
    }

    /// The op's body, not yet authenticated.
    pub fn unverified_body(&self) -> &AuthBody {
        &self.body
    }

    /// CAP-24: the op as signed by `creator`, the creator its subject's genesis names; the
    /// signature is checked by [`Signed::verify`] as for any op, over exactly the received
    /// bytes.
    pub fn with_issuer(self, creator: PublicKey) -> Signed<AuthOp> {
        Signed::from_parts(
            self.envelope,
            AuthOp {
                issuer: creator,
                predecessors: self.predecessors,
                body: self.body,
            },
        )
    }
}

/// CAP-24: signs `op` (whose proof is `Root`, issued by its subject's creator) in the root
/// form.
pub(crate) fn sign_root_form(op: AuthOp, key: &SigningKey) -> Result<Verified<AuthOp>, SignError> {
    check(&op.predecessors, &op.body).map_err(SignError::Structure)?;
    let payload = RootPayload {
        predecessors: op.predecessors,
        body: op.body,
    };
    let mut bytes = encode(&<AuthBody as OpBody>::TAG);
    bytes.push(ROOT_FORM_VERSION);
    bytes.extend_from_slice(&encode(&payload));
    let max = <AuthBody as OpBody>::MAX_LEN;
    if bytes.len() > max {
        return Err(SignError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    let op = AuthOp {
        issuer: op.issuer,
        predecessors: payload.predecessors,
        body: payload.body,
    };
    Verified::sign_encoded(op, bytes, key)
}
