//! Passphrase-encrypted export and import of the key store (KEYS-4..KEYS-6).
//!
//! The fixed crate list has no password hash, so the backup key comes from the `argon2` crate
//! (RustCrypto, Argon2id, RFC 9106), then BLAKE3 `derive_key` with a keyhive label; the
//! key store bytes are sealed with the key-committing AEAD envelope of `crypto::aead`.

use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::aead::{self, OpenError, Sealed};
use crate::crypto::derive::{self, derive_key};
use crate::crypto::secret::SymmetricKey;
use crate::encoding::{DecodeError, SignedPayload, decode_tagged, encode, encode_tagged};

use super::store::{KeyStore, KeyStoreDecodeError, MAX_KEYSTORE_LEN};

/// Argon2id cost parameters, stored in the backup (KEYS-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for BackupParams {
    /// 64 MiB, 3 passes, 1 lane (above RFC 9106's second recommended option's time cost).
    fn default() -> Self {
        BackupParams {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

impl BackupParams {
    /// KEYS-5: bounds an importer accepts, so a hostile file cannot demand unbounded work.
    fn check(&self) -> Result<(), BackupError> {
        let ok = (1..=4).contains(&self.parallelism)
            && (1..=16).contains(&self.iterations)
            && self.memory_kib >= 8 * self.parallelism
            && self.memory_kib <= 1024 * 1024;
        if ok { Ok(()) } else { Err(BackupError::Params) }
    }
}

/// The backup's cleartext header; its encoding is the associated data of the sealed store.
#[derive(Serialize, Deserialize)]
pub(crate) struct BackupHeader {
    /// Argon2id parameters.
    pub(crate) params: BackupParams,
    /// Argon2id salt.
    pub(crate) salt: [u8; 16],
}

#[derive(Serialize, Deserialize)]
struct BackupFile {
    header: BackupHeader,
    sealed: Sealed,
}

impl SignedPayload for BackupFile {
    const TAG: &'static str = "keyhive/keystore-backup";
    const VERSION: u8 = 1;
    const MAX_LEN: usize = MAX_KEYSTORE_LEN + 1024;
}

/// Why a backup could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The file is not a keyhive key-store backup.
    #[error("not a key store backup")]
    Decode(#[from] DecodeError),
    /// The Argon2id parameters are outside the accepted bounds.
    #[error("backup key-derivation parameters out of bounds")]
    Params,
    /// Wrong passphrase, or the backup was altered.
    #[error("wrong passphrase or altered backup")]
    Passphrase,
    /// The decrypted key store is malformed.
    #[error(transparent)]
    Contents(#[from] KeyStoreDecodeError),
    /// Sealing failed (the key store is too large).
    #[error("key store too large to back up")]
    TooLarge,
}

/// KEYS-4, KEYS-8: the key derived from `passphrase` under `header`'s parameters and salt,
/// separated per backup kind by the BLAKE3 `label`.
pub(super) fn backup_key(
    label: &str,
    passphrase: &[u8],
    header: &BackupHeader,
) -> Result<SymmetricKey, BackupError> {
    header.params.check()?;
    let params = Params::new(
        header.params.memory_kib,
        header.params.iterations,
        header.params.parallelism,
        Some(32),
    )
    .map_err(|_| BackupError::Params)?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, &header.salt, &mut *out)
        .map_err(|_| BackupError::Params)?;
    Ok(SymmetricKey::from_bytes(derive_key(label, &*out)))
}

/// KEYS-4: encrypts the key store under a key derived from `passphrase`.
pub fn export_backup(
    store: &KeyStore,
    passphrase: &[u8],
    params: BackupParams,
) -> Result<Vec<u8>, BackupError> {
    let mut salt = [0u8; 16];
    rand::Rng::fill_bytes(&mut crate::crypto::csprng(), &mut salt);
    seal_backup(store, passphrase, BackupHeader { params, salt }, aead::seal)
}

/// KEYS-4 with the salt given in `header` and the AEAD sealing given by `seal` ([`aead::seal`]
/// in production; a fixed nonce for the known-answer vectors of `specs/vectors/keystore.json`).
pub(crate) fn seal_backup(
    store: &KeyStore,
    passphrase: &[u8],
    header: BackupHeader,
    seal: impl FnOnce(&SymmetricKey, &[u8], &[u8]) -> Result<Sealed, aead::SealError>,
) -> Result<Vec<u8>, BackupError> {
    let key = backup_key(derive::KEYSTORE_BACKUP_KEY, passphrase, &header)?;
    let sealed =
        seal(&key, &encode(&header), &store.to_bytes()).map_err(|_| BackupError::TooLarge)?;
    Ok(encode_tagged(&BackupFile { header, sealed }))
}

/// KEYS-6: decrypts a backup made by [`export_backup`].
pub fn import_backup(bytes: &[u8], passphrase: &[u8]) -> Result<KeyStore, BackupError> {
    let file: BackupFile = decode_tagged(bytes)?;
    let plain = open_sealed(
        derive::KEYSTORE_BACKUP_KEY,
        passphrase,
        &file.header,
        &file.sealed,
    )?;
    Ok(KeyStore::from_bytes(&plain)?)
}

/// KEYS-6: opens what was sealed under the passphrase key of `label` (KEYS-4), with the
/// header as associated data. A commitment mismatch means a wrong passphrase; an
/// authentication failure, tampering. Both are reported alike so the file does not become a
/// passphrase oracle beyond that.
pub(super) fn open_sealed(
    label: &str,
    passphrase: &[u8],
    header: &BackupHeader,
    sealed: &Sealed,
) -> Result<Zeroizing<Vec<u8>>, BackupError> {
    let key = backup_key(label, passphrase, header)?;
    aead::open(&key, &encode(header), sealed).map_err(|_: OpenError| BackupError::Passphrase)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::identity::Device;

    /// Argon2id parameters cheap enough for tests.
    pub(in crate::keystore) fn cheap() -> BackupParams {
        BackupParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn backup_round_trip_and_wrong_passphrase() {
        let store = KeyStore::new(Device::generate(Some("laptop".into())));
        let backup = export_backup(&store, b"correct horse", cheap()).unwrap();
        let back = import_backup(&backup, b"correct horse").unwrap();
        assert_eq!(back.device().id(), store.device().id());
        assert_eq!(back.to_bytes(), store.to_bytes());
        assert_eq!(
            import_backup(&backup, b"wrong").unwrap_err(),
            BackupError::Passphrase
        );
        let mut bad = backup.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            import_backup(&bad, b"correct horse").unwrap_err(),
            BackupError::Passphrase
        );
        let mut hostile = cheap();
        hostile.memory_kib = u32::MAX;
        assert_eq!(
            export_backup(&store, b"x", hostile).unwrap_err(),
            BackupError::Params
        );
    }
}
