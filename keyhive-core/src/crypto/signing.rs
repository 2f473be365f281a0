//! Ed25519 device signing keys. Acceptance is `verify_strict` only (ENC-4).

use core::fmt;
use core::str::FromStr;

use ed25519_dalek::{Signer, SigningKey as DalekSigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::hash::{ParseHexError, parse_hex32};

/// The 32-byte compressed Ed25519 public key of a device or of a self-certifying subject.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Decompresses the key for verification.
    pub fn verifying_key(&self) -> Result<VerifyingKey, SignatureError> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| SignatureError::InvalidPublicKey)
    }

    /// Verifies `signature` over exactly `message` with the strict rule (ENC-4): rejects
    /// non-canonical `S`, small-order `A` and `R`.
    pub fn verify_strict(
        &self,
        message: &[u8],
        signature: &[u8; 64],
    ) -> Result<(), SignatureError> {
        verify_strict_with(&self.verifying_key()?, message, signature)
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Verifies with an already-decompressed key (the hot path when issuers repeat).
pub fn verify_strict_with(
    key: &VerifyingKey,
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), SignatureError> {
    let signature = ed25519_dalek::Signature::from_bytes(signature);
    key.verify_strict(message, &signature)
        .map_err(|_| SignatureError::BadSignature)
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = ParseHexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex32(s).map(PublicKey)
    }
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The public key bytes are not a valid compressed Edwards point.
    #[error("public key is not a valid Ed25519 point")]
    InvalidPublicKey,
    /// `verify_strict` rejected the signature.
    #[error("signature does not verify under the strict Ed25519 rule")]
    BadSignature,
}

/// An Ed25519 signing key. Zeroized on drop (ed25519-dalek's `zeroize` feature); `Debug`
/// prints only the public half.
#[derive(Clone)]
pub struct SigningKey(DalekSigningKey);

impl SigningKey {
    /// A fresh key from the CSPRNG.
    pub fn generate() -> Self {
        SigningKey(DalekSigningKey::generate(&mut super::csprng()))
    }

    /// Rebuilds a key from its 32-byte secret seed (for key stores).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SigningKey(DalekSigningKey::from_bytes(seed))
    }

    /// The 32-byte secret seed, in a zeroizing buffer (for key stores only).
    pub fn seed(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs exactly `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    /// CGKA-34: the X25519 secret scalar of this key (the lower half of SHA-512 of the seed,
    /// unclamped; X25519 clamps it), whose public half is the birational (Montgomery) form of
    /// [`SigningKey::public_key`]. Only [`super::prekey::PrekeySecret::of_device`] uses it.
    pub(crate) fn x25519_scalar(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.0.to_scalar_bytes())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey(public={}, secret=<redacted>)",
            self.public_key()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_reject() {
        let key = SigningKey::generate();
        let sig = key.sign(b"hello");
        assert_eq!(key.public_key().verify_strict(b"hello", &sig), Ok(()));
        assert_eq!(
            key.public_key().verify_strict(b"hellp", &sig),
            Err(SignatureError::BadSignature)
        );
        assert!(!format!("{key:?}").contains(&format!("{:?}", key.seed().as_slice())));
    }

    #[test]
    fn small_order_key_is_rejected() {
        // The identity point (0x01, 0, ...) has small order; verify_strict must refuse it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let pk = PublicKey(identity);
        let mut sig = [0u8; 64];
        sig[0] = 1;
        assert!(pk.verify_strict(b"", &sig).is_err());
    }
}
