//! A device's own keys ([`Device`]) and the public view others hold of it ([`Individual`]).

use crate::crypto::prekey::{PrekeyPublic, PrekeySecret};
use crate::crypto::signing::SigningKey;
use crate::signed::Verified;

use super::contact_card::{ContactCard, ContactCardError};
use super::ids::IndividualId;

/// Prekeys a fresh device publishes.
pub const INITIAL_PREKEYS: usize = 2;

/// This device's secret keys: its Ed25519 signing key and its X25519 prekey secrets.
/// Secrets are zeroized on drop and never printed.
#[derive(Debug, Clone)]
pub struct Device {
    signing_key: SigningKey,
    prekeys: Vec<PrekeySecret>,
    /// CGKA-34: the X25519 form of the signing key, derived once (every document the device
    /// opens seats it on this key).
    seat: PrekeySecret,
    name: Option<String>,
}

impl Device {
    /// Creates a device with a fresh signing key and [`INITIAL_PREKEYS`] prekeys.
    pub fn generate(name: Option<String>) -> Self {
        Self::from_parts(
            SigningKey::generate(),
            (0..INITIAL_PREKEYS)
                .map(|_| PrekeySecret::generate())
                .collect(),
            name,
        )
    }

    /// Rebuilds a device from stored secrets (key store).
    pub fn from_parts(
        signing_key: SigningKey,
        prekeys: Vec<PrekeySecret>,
        name: Option<String>,
    ) -> Self {
        Device {
            seat: PrekeySecret::of_device(&signing_key),
            signing_key,
            prekeys,
            name,
        }
    }

    /// The device id.
    pub fn id(&self) -> IndividualId {
        IndividualId(self.signing_key.public_key())
    }

    /// The signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing_key
    }

    /// The prekey secrets, oldest first.
    pub fn prekeys(&self) -> &[PrekeySecret] {
        &self.prekeys
    }

    /// CGKA-34: the seat secret, [`PrekeySecret::of_device`] of the signing key.
    pub fn seat(&self) -> &PrekeySecret {
        &self.seat
    }

    /// The prekey secret whose public half is `public`, if this device holds it.
    pub fn prekey_secret(&self, public: &PrekeyPublic) -> Option<&PrekeySecret> {
        self.prekeys.iter().find(|p| p.public() == *public)
    }

    /// The display name chosen at creation.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The public view of this device.
    pub fn individual(&self) -> Individual {
        Individual {
            id: self.id(),
            prekeys: self.prekeys.iter().map(PrekeySecret::public).collect(),
        }
    }

    /// Signs this device's contact card.
    pub fn contact_card(&self) -> Result<Verified<ContactCard>, ContactCardError> {
        ContactCard::sign(self)
    }
}

/// A device as others know it: its id and its prekeys, as authenticated by its contact card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Individual {
    /// The device id.
    pub id: IndividualId,
    /// The device's X25519 prekeys, signed by the device key.
    pub prekeys: Vec<PrekeyPublic>,
}
