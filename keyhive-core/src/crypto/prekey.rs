//! X25519 prekeys: long-lived Diffie-Hellman keys a device publishes (signed by its device key)
//! so that others can send it group secrets without interaction.

use core::fmt;

use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey as XPublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::signing::{PublicKey, SigningKey};

/// The public half of an X25519 prekey.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PrekeyPublic(pub [u8; 32]);

impl fmt::Debug for PrekeyPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrekeyPublic(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl PrekeyPublic {
    /// CGKA-34: a device's seat key, the X25519 (Montgomery) form of its Ed25519 device key,
    /// so that seating a device needs no contact card. `None` when `device` is not a valid
    /// point or is of small order (a weak key, whose X25519 agreements would not be
    /// contributory): such a device is never seated on its device key.
    pub fn of_device(device: &PublicKey) -> Option<Self> {
        let key = device.verifying_key().ok()?;
        if key.is_weak() {
            return None;
        }
        Some(PrekeyPublic(key.to_montgomery().to_bytes()))
    }
}

/// A Diffie-Hellman agreement failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgreementError {
    /// The peer's public key is of low order, so the shared secret would be predictable.
    #[error("X25519 agreement was not contributory (low-order public key)")]
    NonContributory,
}

/// The secret half of an X25519 prekey. Zeroized on drop; `Debug` shows only the public half.
///
/// The public half is computed once, when the secret is made: it is the key secrets are
/// looked up by, and deriving it (a scalar multiplication) for every document a device opens
/// was half the cost of opening a large home.
#[derive(Clone)]
pub struct PrekeySecret {
    secret: StaticSecret,
    public: PrekeyPublic,
}

impl PrekeySecret {
    fn from_secret(secret: StaticSecret) -> Self {
        let public = PrekeyPublic(XPublicKey::from(&secret).to_bytes());
        PrekeySecret { secret, public }
    }

    /// A fresh prekey from the CSPRNG.
    pub fn generate() -> Self {
        Self::from_secret(StaticSecret::random_from_rng(&mut super::csprng()))
    }

    /// CGKA-34: the secret half of [`PrekeyPublic::of_device`] for the device's own signing
    /// key (its Ed25519 secret scalar used as an X25519 secret; zeroized on drop like every
    /// prekey secret). Used only to unwrap path secrets until the device's first update
    /// replaces its leaf key.
    pub fn of_device(key: &SigningKey) -> Self {
        let scalar = key.x25519_scalar();
        Self::from_secret(StaticSecret::from(*scalar))
    }

    /// Rebuilds a prekey from stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self::from_secret(StaticSecret::from(bytes))
    }

    /// The secret bytes in a zeroizing buffer (for key stores only).
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// The public half.
    pub fn public(&self) -> PrekeyPublic {
        self.public
    }

    /// X25519 with `their` public key; refuses non-contributory results (ENC-8).
    pub fn agree(&self, their: &PrekeyPublic) -> Result<Zeroizing<[u8; 32]>, AgreementError> {
        let shared = self.secret.diffie_hellman(&XPublicKey::from(their.0));
        if !shared.was_contributory() {
            return Err(AgreementError::NonContributory);
        }
        Ok(Zeroizing::new(shared.to_bytes()))
    }
}

impl fmt::Debug for PrekeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrekeySecret(public={:?}, secret=<redacted>)",
            self.public()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_is_symmetric_and_low_order_refused() {
        let a = PrekeySecret::generate();
        let b = PrekeySecret::generate();
        assert_eq!(
            *a.agree(&b.public()).unwrap(),
            *b.agree(&a.public()).unwrap()
        );
        assert_eq!(
            a.agree(&PrekeyPublic([0; 32])),
            Err(AgreementError::NonContributory)
        );
        assert!(format!("{a:?}").contains("redacted"));
    }

    /// CGKA-34: a device's seat secret is the X25519 secret of its device key's Montgomery
    /// form, and agrees with any other key as a prekey does.
    #[test]
    fn the_seat_key_is_the_montgomery_form_of_the_device_key() {
        let device = SigningKey::generate();
        let secret = PrekeySecret::of_device(&device);
        let public = PrekeyPublic::of_device(&device.public_key()).expect("a valid key");
        assert_eq!(secret.public(), public);
        let other = PrekeySecret::generate();
        assert_eq!(
            *secret.agree(&other.public()).unwrap(),
            *other.agree(&public).unwrap()
        );
        // Not a point, and a small-order point (the identity): no seat key.
        let not_a_point = (0u8..=255)
            .map(|b| PublicKey([b; 32]))
            .find(|k| k.verifying_key().is_err())
            .expect("some byte string is not a point");
        assert_eq!(PrekeyPublic::of_device(&not_a_point), None);
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(PrekeyPublic::of_device(&PublicKey(identity)), None);
    }
}
