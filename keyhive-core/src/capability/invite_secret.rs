//! The invitation secret and what is derived from it (`specs/invitations.md` INV-2, INV-4).
//!
//! The secret `s` (32 random bytes) travels out of band in the invite code. The invitation
//! names only the public half of the Ed25519 key derived from `s`; a redemption carries that
//! key's signature over the invitation and the redeeming device, so it proves knowledge of
//! `s` without revealing it, and cannot be moved to another device.

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::derive::{INVITATION_KEY, INVITATION_PROOF, derive_key};
use crate::crypto::hash::Hash;
use crate::crypto::signing::{PublicKey, SignatureError, SigningKey};
use crate::identity::IndividualId;

use super::op::ProofOfSecret;

/// INV-2: an invitation secret. Wiped on drop; `Debug` is redacted; compared in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct InviteSecret([u8; 32]);

impl InviteSecret {
    /// A fresh secret from the CSPRNG.
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::Rng::fill_bytes(&mut crate::crypto::csprng(), &mut bytes);
        InviteSecret(bytes)
    }

    /// Wraps secret bytes (e.g. parsed from an invite code; the caller wipes its copy).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        InviteSecret(bytes)
    }

    /// The secret bytes, to encode an invite code. Do not copy them anywhere unzeroized.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// INV-2: the invitation signing key, `Ed25519(seed = derive_key(INVITATION_KEY, s))`.
    fn signing_key(&self) -> SigningKey {
        let mut seed = derive_key(INVITATION_KEY, &self.0);
        let key = SigningKey::from_seed(&seed);
        seed.zeroize();
        key
    }

    /// INV-2: the invitation key an invitation names.
    pub fn invite_key(&self) -> PublicKey {
        self.signing_key().public_key()
    }

    /// INV-4: the proof of secret for redeeming `invitation` from `device` at `redeemed_at`.
    pub fn prove(
        &self,
        invitation: &Hash,
        device: IndividualId,
        redeemed_at: u64,
    ) -> ProofOfSecret {
        let message = proof_message(invitation, device, redeemed_at);
        ProofOfSecret::from_bytes(self.signing_key().sign(&message))
    }
}

impl ConstantTimeEq for InviteSecret {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for InviteSecret {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for InviteSecret {}

impl fmt::Debug for InviteSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InviteSecret(<redacted>)")
    }
}

/// INV-4: the exact bytes an invitation key signs: the domain string, the invitation hash,
/// the redeeming device's key and the claimed time (big-endian).
pub(crate) fn proof_message(invitation: &Hash, device: IndividualId, redeemed_at: u64) -> Vec<u8> {
    let mut message = Vec::with_capacity(INVITATION_PROOF.len() + 32 + 32 + 8);
    message.extend_from_slice(INVITATION_PROOF.as_bytes());
    message.extend_from_slice(invitation.as_bytes());
    message.extend_from_slice(device.0.as_bytes());
    message.extend_from_slice(&redeemed_at.to_be_bytes());
    message
}

/// INV-4: checks a proof of secret (`verify_strict`).
pub(crate) fn verify_proof(
    invite_key: &PublicKey,
    invitation: &Hash,
    device: IndividualId,
    redeemed_at: u64,
    proof: &ProofOfSecret,
) -> Result<(), SignatureError> {
    invite_key.verify_strict(
        &proof_message(invitation, device, redeemed_at),
        &proof.to_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_binds_the_device_and_debug_is_redacted() {
        let s = InviteSecret::from_bytes([9; 32]);
        let inv = Hash::of_content(b"invitation");
        let a = IndividualId(SigningKey::from_seed(&[1; 32]).public_key());
        let b = IndividualId(SigningKey::from_seed(&[2; 32]).public_key());
        let proof = s.prove(&inv, a, 10);
        assert_eq!(verify_proof(&s.invite_key(), &inv, a, 10, &proof), Ok(()));
        assert!(verify_proof(&s.invite_key(), &inv, b, 10, &proof).is_err());
        assert!(verify_proof(&s.invite_key(), &inv, a, 11, &proof).is_err());
        assert_eq!(format!("{s:?}"), "InviteSecret(<redacted>)");
        assert_ne!(InviteSecret::random(), s);
    }
}
