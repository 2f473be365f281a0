//! KEYS-8: a passphrase-sealed archive of a whole device home (its key store, its items and
//! its local settings, assembled by the application), sealed like the key store backup
//! (KEYS-4, KEYS-5) under its own tag and derivation label.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::aead::{self, Sealed};
use crate::crypto::derive;
use crate::encoding::{SignedPayload, decode_tagged, encode, encode_tagged};

use super::backup::{BackupError, BackupHeader, BackupParams, backup_key, open_sealed};

/// KEYS-8: the largest payload an archive holds (1 GiB).
pub const MAX_ARCHIVE_LEN: usize = 1 << 30;

#[derive(Serialize, Deserialize)]
struct ArchiveFile {
    header: BackupHeader,
    sealed: Sealed,
}

impl SignedPayload for ArchiveFile {
    const TAG: &'static str = "keyhive/home-archive";
    const VERSION: u8 = 1;
    const MAX_LEN: usize = MAX_ARCHIVE_LEN + 1024;
}

/// KEYS-8: seals `payload` (at most [`MAX_ARCHIVE_LEN`] bytes) under a key derived from
/// `passphrase`, with a fresh random salt and nonce.
pub fn seal_archive(
    payload: &[u8],
    passphrase: &[u8],
    params: BackupParams,
) -> Result<Vec<u8>, BackupError> {
    let mut salt = [0u8; 16];
    rand::Rng::fill_bytes(&mut crate::crypto::csprng(), &mut salt);
    let mut nonce = [0u8; 24];
    rand::Rng::fill_bytes(&mut crate::crypto::csprng(), &mut nonce);
    seal_with(payload, passphrase, params, salt, nonce)
}

fn seal_with(
    payload: &[u8],
    passphrase: &[u8],
    params: BackupParams,
    salt: [u8; 16],
    nonce: [u8; 24],
) -> Result<Vec<u8>, BackupError> {
    if payload.len() > MAX_ARCHIVE_LEN {
        return Err(BackupError::TooLarge);
    }
    let header = BackupHeader { params, salt };
    let key = backup_key(derive::HOME_ARCHIVE_KEY, passphrase, &header)?;
    let sealed = aead::seal_with_nonce(&key, nonce, &encode(&header), payload)
        .map_err(|_| BackupError::TooLarge)?;
    Ok(encode_tagged(&ArchiveFile { header, sealed }))
}

/// KEYS-8: opens an archive made by [`seal_archive`]. A wrong passphrase and an altered
/// archive both yield [`BackupError::Passphrase`] (KEYS-6); parameters outside the KEYS-5
/// bounds are refused before any work.
pub fn open_archive(bytes: &[u8], passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>, BackupError> {
    let file: ArchiveFile = decode_tagged(bytes)?;
    open_sealed(
        derive::HOME_ARCHIVE_KEY,
        passphrase,
        &file.header,
        &file.sealed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::backup::tests::cheap;
    use serde_json::json;

    #[test]
    fn archive_round_trip_wrong_passphrase_tampering_and_domain() {
        let archive = seal_archive(b"the home", b"correct horse", cheap()).unwrap();
        assert_eq!(
            open_archive(&archive, b"correct horse").unwrap().as_slice(),
            b"the home"
        );
        assert_eq!(
            open_archive(&archive, b"wrong").unwrap_err(),
            BackupError::Passphrase
        );
        let mut bad = archive.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            open_archive(&bad, b"correct horse").unwrap_err(),
            BackupError::Passphrase
        );
        // A key store backup is not an archive, and the reverse (ENC-4 tags).
        let store = crate::keystore::KeyStore::new(crate::identity::Device::generate(None));
        let backup = crate::keystore::export_backup(&store, b"correct horse", cheap()).unwrap();
        assert!(matches!(
            open_archive(&backup, b"correct horse"),
            Err(BackupError::Decode(_))
        ));
        assert!(matches!(
            crate::keystore::import_backup(&archive, b"correct horse"),
            Err(BackupError::Decode(_))
        ));
    }

    fn vector() -> serde_json::Value {
        let (salt, nonce) = ([7u8; 16], [9u8; 24]);
        let archive = seal_with(b"keyhive home", b"correct horse", cheap(), salt, nonce).unwrap();
        json!({
            "description": "KEYS-8 home archive: Argon2id(memory 64 KiB, 1 pass, 1 lane), fixed salt and nonce",
            "passphrase": "correct horse",
            "payload_utf8": "keyhive home",
            "salt": hex::encode(salt),
            "nonce": hex::encode(nonce),
            "archive": hex::encode(&archive),
        })
    }

    #[test]
    fn archive_vector_matches_specs() {
        let v = vector();
        crate::spec_vectors::check("home-archive.json", &v);
        let archive = hex::decode(v["archive"].as_str().unwrap()).unwrap();
        assert_eq!(
            open_archive(&archive, b"correct horse").unwrap().as_slice(),
            b"keyhive home"
        );
    }

    #[test]
    #[ignore = "writes specs/vectors/home-archive.json"]
    fn generate_archive_vector() {
        crate::spec_vectors::write("home-archive.json", &vector());
    }
}
