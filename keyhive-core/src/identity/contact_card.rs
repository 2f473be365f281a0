//! Contact cards: a device's signed bundle of id, prekeys and optional display name, exported as
//! one copy-pasteable line (`specs/encoding.md` §5).
//!
//! Line form (CARD-1): `keyhive-card1:` followed by the unpadded base64url of the signed envelope.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::crypto::prekey::PrekeyPublic;
use crate::crypto::signing::PublicKey;
use crate::encoding::{DecodeError, SignedPayload};
use crate::signed::{SignError, Signable, Signed, Verified, VerifyError};

use super::device::{Device, Individual};
use super::ids::IndividualId;

/// Prefix of the one-line form (CARD-1).
pub const CARD_PREFIX: &str = "keyhive-card1:";
/// Most prekeys a card may carry (CARD-2).
pub const MAX_PREKEYS: usize = 16;
/// Longest display name, in bytes (CARD-3).
pub const MAX_NAME_LEN: usize = 128;

/// The signed content of a contact card.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactCard {
    /// The device's Ed25519 public key (its id); the card is signed by it.
    pub device: PublicKey,
    /// X25519 prekeys, 1 to [`MAX_PREKEYS`], strictly ascending (CARD-2).
    pub prekeys: Vec<PrekeyPublic>,
    /// Optional display name: at most [`MAX_NAME_LEN`] bytes, no control characters (CARD-3).
    pub name: Option<String>,
}

impl SignedPayload for ContactCard {
    const TAG: &'static str = "keyhive/contact-card";
    const VERSION: u8 = 1;
    const MAX_LEN: usize = 1024;
}

impl Signable for ContactCard {
    fn signer(&self) -> &PublicKey {
        &self.device
    }

    fn check_structure(&self) -> Result<(), DecodeError> {
        if self.prekeys.is_empty() || self.prekeys.len() > MAX_PREKEYS {
            return Err(DecodeError::InvalidStructure(
                "card must carry 1 to 16 prekeys",
            ));
        }
        if self.prekeys.windows(2).any(|w| w[0] >= w[1]) {
            return Err(DecodeError::InvalidStructure(
                "prekeys not strictly ascending",
            ));
        }
        if let Some(name) = &self.name
            && (name.len() > MAX_NAME_LEN || name.chars().any(char::is_control))
        {
            return Err(DecodeError::InvalidStructure(
                "display name too long or has control characters",
            ));
        }
        Ok(())
    }
}

/// Why a contact card could not be made or imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContactCardError {
    /// The text does not start with `keyhive-card1:`.
    #[error("not a keyhive contact card (expected a line starting with {CARD_PREFIX:?})")]
    MissingPrefix,
    /// The text after the prefix is not base64url, or is far too long.
    #[error("contact card text is not valid base64url")]
    Base64,
    /// The card bytes are malformed.
    #[error("contact card is malformed")]
    Decode(#[from] DecodeError),
    /// The card's signature does not verify.
    #[error("contact card signature is invalid")]
    Signature(#[from] VerifyError),
    /// The card could not be signed (e.g. name too long).
    #[error("cannot sign contact card")]
    Sign(#[from] SignError),
}

impl ContactCard {
    /// Builds and signs the card of `device`.
    pub fn sign(device: &Device) -> Result<Verified<ContactCard>, ContactCardError> {
        let mut prekeys: Vec<PrekeyPublic> = device.prekeys().iter().map(|p| p.public()).collect();
        prekeys.sort_unstable();
        prekeys.dedup();
        let card = ContactCard {
            device: device.signing_key().public_key(),
            prekeys,
            name: device.name().map(str::to_owned),
        };
        Ok(Verified::sign(card, device.signing_key())?)
    }

    /// Exports a verified card as one line (CARD-1).
    pub fn to_line(card: &Verified<ContactCard>) -> String {
        format!("{CARD_PREFIX}{}", URL_SAFE_NO_PAD.encode(card.as_bytes()))
    }

    /// Parses a line (surrounding whitespace ignored) and verifies the card's signature.
    pub fn from_line(line: &str) -> Result<Verified<ContactCard>, ContactCardError> {
        let body = line
            .trim()
            .strip_prefix(CARD_PREFIX)
            .ok_or(ContactCardError::MissingPrefix)?;
        // Bound the work before decoding: base64 expands 3 bytes to 4 characters.
        if body.len() > (Self::MAX_LEN + crate::signed::SIGNATURE_LEN) * 4 / 3 + 4 {
            return Err(ContactCardError::Decode(DecodeError::Oversize {
                len: body.len(),
                max: Self::MAX_LEN,
            }));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| ContactCardError::Base64)?;
        Ok(Signed::<ContactCard>::decode(&bytes)?.verify()?)
    }

    /// The device id this card describes.
    pub fn id(&self) -> IndividualId {
        IndividualId(self.device)
    }

    /// The public device view the card authenticates.
    pub fn individual(&self) -> Individual {
        Individual {
            id: self.id(),
            prekeys: self.prekeys.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_round_trip_and_tamper() {
        let device = Device::generate(Some("Alice laptop".into()));
        let card = device.contact_card().unwrap();
        let line = ContactCard::to_line(&card);
        assert!(!line.contains('\n'));
        let back = ContactCard::from_line(&format!("  {line}\n")).unwrap();
        assert_eq!(back.payload(), card.payload());
        assert_eq!(back.individual(), device.individual_sorted());

        let mut bytes = card.as_bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("{CARD_PREFIX}{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert!(matches!(
            ContactCard::from_line(&tampered),
            Err(ContactCardError::Signature(_))
        ));
        assert!(matches!(
            ContactCard::from_line("hello"),
            Err(ContactCardError::MissingPrefix)
        ));
        assert!(matches!(
            ContactCard::from_line("keyhive-card1:!!"),
            Err(ContactCardError::Base64)
        ));
    }

    #[test]
    fn control_characters_in_name_refused() {
        let device = Device::generate(Some("evil\u{1b}[2J".into()));
        assert!(matches!(
            device.contact_card(),
            Err(ContactCardError::Sign(_))
        ));
    }

    impl Device {
        fn individual_sorted(&self) -> Individual {
            let mut i = self.individual();
            i.prekeys.sort_unstable();
            i
        }
    }
}
