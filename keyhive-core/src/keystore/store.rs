//! The key store's contents and canonical encoding (KEYS-1, KEYS-2).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::cgka::CgkaSecrets;
use crate::crypto::hash::Hash;
use crate::crypto::prekey::PrekeySecret;
use crate::crypto::secret::SymmetricKey;
use crate::crypto::signing::SigningKey;
use crate::encoding::{DecodeError, SignedPayload, decode_tagged, encode_tagged};
use crate::identity::{Device, DocumentId};

/// Largest encoded key store accepted (KEYS-1): 64 MiB.
pub const MAX_KEYSTORE_LEN: usize = 64 << 20;

/// A device's secrets: its signing key and prekeys, and its CGKA secrets per document.
#[derive(Clone)]
pub struct KeyStore {
    device: Device,
    cgka: BTreeMap<DocumentId, CgkaSecrets>,
}

impl core::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "KeyStore(device={}, {} documents, <redacted>)",
            self.device.id(),
            self.cgka.len()
        )
    }
}

/// Why key-store bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreDecodeError {
    /// Not a canonical key-store encoding.
    #[error("malformed key store")]
    Decode(#[from] DecodeError),
}

/// KEYS-2: the wire form. Every secret field is wiped when the value is dropped.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct KeyStoreFile {
    signing_seed: [u8; 32],
    prekeys: Vec<[u8; 32]>,
    name: Option<String>,
    documents: Vec<DocumentSecrets>,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct DocumentSecrets {
    document: [u8; 32],
    node_keys: Vec<[u8; 32]>,
    epochs: Vec<([u8; 32], [u8; 32])>,
}

impl SignedPayload for KeyStoreFile {
    const TAG: &'static str = "keyhive/keystore";
    const VERSION: u8 = 1;
    const MAX_LEN: usize = MAX_KEYSTORE_LEN;
}

/// KEYS-12: one journal record: some documents' secrets, each replacing what was held.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct SecretsRecord {
    documents: Vec<DocumentSecrets>,
}

impl SignedPayload for SecretsRecord {
    const TAG: &'static str = "keyhive/keystore-record";
    const VERSION: u8 = 1;
    const MAX_LEN: usize = MAX_KEYSTORE_LEN;
}

impl DocumentSecrets {
    fn of(document: &DocumentId, secrets: &CgkaSecrets) -> Self {
        DocumentSecrets {
            document: *document.public_key().as_bytes(),
            node_keys: secrets.node_keys.iter().map(|k| **k).collect(),
            epochs: secrets
                .epochs
                .iter()
                .map(|(h, k)| (h.0, *k.expose()))
                .collect(),
        }
    }

    fn to_entry(&self) -> (DocumentId, CgkaSecrets) {
        let secrets = CgkaSecrets {
            node_keys: self.node_keys.iter().map(|k| Zeroizing::new(*k)).collect(),
            epochs: self
                .epochs
                .iter()
                .map(|(h, k)| (Hash(*h), SymmetricKey::from_bytes(*k)))
                .collect(),
        };
        (
            DocumentId(crate::crypto::signing::PublicKey(self.document)),
            secrets,
        )
    }
}

impl KeyStore {
    /// A key store holding `device` and no CGKA secrets.
    pub fn new(device: Device) -> Self {
        KeyStore {
            device,
            cgka: BTreeMap::new(),
        }
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Records the CGKA secrets of `document` (replacing earlier ones).
    pub fn set_cgka_secrets(&mut self, document: DocumentId, secrets: CgkaSecrets) {
        self.cgka.insert(document, secrets);
    }

    /// Records the local device's current secrets of `cgka` (call after every update it
    /// issues or reads, then [`super::save`]).
    pub fn record(&mut self, cgka: &crate::cgka::Cgka) {
        self.set_cgka_secrets(cgka.document(), cgka.export_secrets());
    }

    /// The CGKA secrets of `document`, if stored.
    pub fn cgka_secrets(&self, document: &DocumentId) -> Option<&CgkaSecrets> {
        self.cgka.get(document)
    }

    /// Every document's CGKA secrets, by document.
    pub fn all_cgka_secrets(&self) -> impl Iterator<Item = (&DocumentId, &CgkaSecrets)> {
        self.cgka.iter()
    }

    /// KEYS-2: the canonical encoding, in a zeroizing buffer.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let file = KeyStoreFile {
            signing_seed: *self.device.signing_key().seed(),
            prekeys: self
                .device
                .prekeys()
                .iter()
                .map(|p| *p.to_bytes())
                .collect(),
            name: self.device.name().map(str::to_owned),
            documents: self
                .cgka
                .iter()
                .map(|(doc, s)| DocumentSecrets::of(doc, s))
                .collect(),
        };
        Zeroizing::new(encode_tagged(&file))
    }

    /// KEYS-12: the journal record of `documents`' secrets as held here (those it holds none
    /// for are left out).
    pub(crate) fn record_bytes(&self, documents: &[DocumentId]) -> Zeroizing<Vec<u8>> {
        let record = SecretsRecord {
            documents: documents
                .iter()
                .filter_map(|d| self.cgka.get(d).map(|s| DocumentSecrets::of(d, s)))
                .collect(),
        };
        Zeroizing::new(encode_tagged(&record))
    }

    /// KEYS-12: applies a journal record: each document's secrets replace those held.
    pub(crate) fn apply_record(&mut self, bytes: &[u8]) -> Result<(), KeyStoreDecodeError> {
        let record: SecretsRecord = decode_tagged(bytes)?;
        for doc in &record.documents {
            let (document, secrets) = doc.to_entry();
            self.cgka.insert(document, secrets);
        }
        Ok(())
    }

    /// KEYS-2: decodes canonical key-store bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyStoreDecodeError> {
        let file: KeyStoreFile = decode_tagged(bytes)?;
        let device = Device::from_parts(
            SigningKey::from_seed(&file.signing_seed),
            file.prekeys
                .iter()
                .map(|b| PrekeySecret::from_bytes(*b))
                .collect(),
            file.name.clone(),
        );
        let cgka = file
            .documents
            .iter()
            .map(DocumentSecrets::to_entry)
            .collect();
        Ok(KeyStore { device, cgka })
    }
}
