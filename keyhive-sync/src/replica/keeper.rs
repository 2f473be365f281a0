//! KEYS-11: this device's key-agreement secrets are durable before anything that needs them is
//! stored or sent.
//!
//! A key-agreement op this device makes (a document's creation, a re-key, an update) carries
//! public keys whose secrets exist only in memory until someone keeps them. Once the op is
//! stored it is synced, and others encrypt to those keys; a device that lost the secrets (killed,
//! or restarted by an app that forgot to save them) could no longer read what they write. So a
//! replica with a [`SecretKeeper`] hands it the document's secrets before it stores such an op.

use std::path::{Path, PathBuf};

use keyhive_core::cgka::CgkaSecrets;
use keyhive_core::identity::{Device, DocumentId};
use keyhive_core::keystore::{self, FileError, Journal, KeyStore};

/// KEYS-11: where a replica keeps its key-agreement secrets ([`super::Replica::keep_secrets_with`]).
pub trait SecretKeeper: Send {
    /// Makes `secrets` durable, replacing what was kept for those documents, before returning.
    fn keep(&mut self, secrets: Vec<(DocumentId, CgkaSecrets)>) -> Result<(), FileError>;
}

/// A [`SecretKeeper`] over a key store file (KEYS-3: mode 0600, replaced atomically; KEYS-7:
/// integrity check): the device and every document's key-agreement secrets. What is kept is
/// appended to the file's journal (KEYS-12), and the file saved whole once the journal has
/// grown past it.
pub struct KeyFile {
    path: PathBuf,
    keys: KeyStore,
    journal: Journal,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile")
            .field("path", &self.path)
            .field("keys", &self.keys)
            .field("journal", &self.journal)
            .finish()
    }
}

impl KeyFile {
    /// Loads the key store at `path` (refusing a file others can read or one that fails its
    /// integrity check).
    pub fn load(path: impl AsRef<Path>) -> Result<KeyFile, FileError> {
        let path = path.as_ref().to_path_buf();
        let keys = keystore::load(&path)?;
        Ok(KeyFile {
            path,
            keys,
            journal: Journal::default(),
        })
    }

    /// Writes a new key store holding `device` at `path`, replacing any file there.
    pub fn create(path: impl AsRef<Path>, device: Device) -> Result<KeyFile, FileError> {
        let path = path.as_ref().to_path_buf();
        let keys = KeyStore::new(device);
        keystore::save(&keys, &path)?;
        Ok(KeyFile {
            path,
            keys,
            journal: Journal::default(),
        })
    }

    /// Keeps into `path` from `keys`, which the caller read from (or saved to) that file.
    pub fn with_keys(path: impl AsRef<Path>, keys: KeyStore) -> KeyFile {
        KeyFile {
            path: path.as_ref().to_path_buf(),
            keys,
            journal: Journal::default(),
        }
    }

    /// What the file holds.
    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }
}

impl SecretKeeper for KeyFile {
    fn keep(&mut self, secrets: Vec<(DocumentId, CgkaSecrets)>) -> Result<(), FileError> {
        let documents: Vec<DocumentId> = secrets.iter().map(|(d, _)| *d).collect();
        for (document, s) in secrets {
            self.keys.set_cgka_secrets(document, s);
        }
        self.journal.keep(&self.keys, &self.path, &documents)
    }
}
