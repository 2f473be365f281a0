//! Zeroizing 32-byte symmetric secrets with redacted `Debug` and constant-time equality.

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A 32-byte symmetric secret. Wiped on drop; never printed; compared in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SymmetricKey([u8; 32]);

impl SymmetricKey {
    /// Wraps raw key bytes (the caller's copy should be zeroized by the caller).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SymmetricKey(bytes)
    }

    /// A fresh uniformly random key from the CSPRNG.
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::Rng::fill_bytes(&mut super::csprng(), &mut bytes);
        SymmetricKey(bytes)
    }

    /// Exposes the key bytes to a primitive. Do not copy them anywhere that is not zeroized.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl ConstantTimeEq for SymmetricKey {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for SymmetricKey {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for SymmetricKey {}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SymmetricKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let k = SymmetricKey::from_bytes([7; 32]);
        assert_eq!(format!("{k:?}"), "SymmetricKey(<redacted>)");
        assert_ne!(SymmetricKey::random(), k);
        assert_eq!(k.clone(), k);
    }
}
