//! Persisting the key store: one file, mode 0600, replaced atomically (KEYS-3), with an
//! integrity check over its exact bytes (KEYS-7).
//!
//! File format version 2 (KEYS-7): `postcard("keyhive/keystore-file") || 0x02 || KEYS-2 bytes ||
//! check[32]`, where `check = BLAKE3 derive_key(`[`CHECK_CONTEXT`]`, everything before it)`,
//! compared in constant time before anything is decoded. A version-1 file (the bare KEYS-2
//! bytes, no check) is still read, and rewritten as version 2 by the same `load`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::store::{KeyStore, KeyStoreDecodeError, MAX_KEYSTORE_LEN};
use crate::encoding::encode;

/// KEYS-7: the domain tag that starts a version-2 key store file.
pub const FILE_TAG: &str = "keyhive/keystore-file";

/// KEYS-7: the file format version written by [`save`].
pub const FILE_VERSION: u8 = 2;

/// KEYS-7: the BLAKE3 `derive_key` context of the integrity check.
pub const CHECK_CONTEXT: &str = "keyhive 2026-12-01 key store file integrity v2";

const CHECK_LEN: usize = 32;

/// The KEYS-7 header: the tag as a postcard string, then the version.
fn file_header() -> Vec<u8> {
    let mut header = encode(&FILE_TAG);
    header.push(FILE_VERSION);
    header
}

fn check_of(bytes: &[u8]) -> [u8; CHECK_LEN] {
    *blake3::Hasher::new_derive_key(CHECK_CONTEXT)
        .update(bytes)
        .finalize()
        .as_bytes()
}

/// KEYS-7: the version-2 file bytes of `store`.
fn encode_file(store: &KeyStore) -> Zeroizing<Vec<u8>> {
    let body = store.to_bytes();
    let mut out = Zeroizing::new(file_header());
    out.extend_from_slice(&body);
    let check = check_of(&out);
    out.extend_from_slice(&check);
    out
}

/// Which file format a loaded key store was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Version 1: bare KEYS-2 bytes, no integrity check.
    Legacy,
    /// Version 2 (KEYS-7).
    Checked,
}

/// KEYS-7: verifies the check (constant time) before decoding; version 1 is read unchecked.
fn decode_file(bytes: &[u8]) -> Result<(KeyStore, Format), FileError> {
    let header = file_header();
    let Some(rest) = bytes.strip_prefix(header.as_slice()) else {
        if crate::encoding::peek_tag(bytes) == Some(FILE_TAG) {
            return Err(FileError::Integrity);
        }
        return Ok((KeyStore::from_bytes(bytes)?, Format::Legacy));
    };
    let Some(body_len) = rest.len().checked_sub(CHECK_LEN) else {
        return Err(FileError::Integrity);
    };
    let (body, check) = rest.split_at(body_len);
    let expected = check_of(&bytes[..header.len() + body_len]);
    if !bool::from(expected.ct_eq(check)) {
        return Err(FileError::Integrity);
    }
    Ok((KeyStore::from_bytes(body)?, Format::Checked))
}

/// Why the key store could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// A file-system operation failed.
    #[error("key store i/o error")]
    Io(#[from] io::Error),
    /// The file is larger than any key store.
    #[error("key store file is larger than {MAX_KEYSTORE_LEN} bytes")]
    TooLarge,
    /// The file is readable by others than its owner (KEYS-3).
    #[error("key store file {0} is readable by group or others (mode must be 0600)")]
    Permissions(PathBuf),
    /// The contents do not decode.
    #[error("the key store file's contents do not decode; restore it from a backup")]
    Decode(#[from] KeyStoreDecodeError),
    /// KEYS-7: the file fails its integrity check (damaged on disk).
    #[error(
        "the key store file fails its integrity check (it is damaged); restore it from a backup \
         (re-creating it makes a new device)"
    )]
    Integrity,
    /// KEYS-12: a whole record of the key store's journal fails its check (damaged on disk).
    #[error(
        "the key store journal {0} fails its integrity check (it is damaged); restore the key \
         store from a backup"
    )]
    JournalIntegrity(PathBuf),
}

fn temp_path(path: &Path) -> PathBuf {
    let mut suffix = [0u8; 8];
    rand::Rng::fill_bytes(&mut crate::crypto::csprng(), &mut suffix);
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp-{}", u64::from_le_bytes(suffix)));
    path.with_file_name(name)
}

/// KEYS-3: writes the key store to `path` via a fresh mode-0600 temporary file in the same
/// directory, fsynced and renamed over `path`; the directory is then fsynced.
pub fn save(store: &KeyStore, path: &Path) -> Result<(), FileError> {
    let bytes = encode_file(store);
    let temp = temp_path(path);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&temp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok::<(), io::Error>(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    // KEYS-12: the journal extended the file just replaced, so it is stale (ignored on load)
    // whether or not it can be removed now.
    let _ = super::journal::remove(path);
    Ok(())
}

/// Reads `file` (at `path`) whole, refusing it when others can read it (KEYS-3) or when it is
/// larger than any key store (KEYS-1).
pub(super) fn read_private(file: File, path: &Path) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let meta = file.metadata()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(FileError::Permissions(path.to_path_buf()));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    if meta.len() > MAX_KEYSTORE_LEN as u64 {
        return Err(FileError::TooLarge);
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    file.take(MAX_KEYSTORE_LEN as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > MAX_KEYSTORE_LEN {
        return Err(FileError::TooLarge);
    }
    Ok(bytes)
}

/// Loads the key store from `path`, refusing files others can read (KEYS-3) and files that fail
/// their integrity check (KEYS-7), with the secrets its journal holds applied (KEYS-12); a
/// version-1 file is rewritten as version 2.
pub fn load(path: &Path) -> Result<KeyStore, FileError> {
    let bytes = read_private(File::open(path)?, path)?;
    let (mut store, format) = decode_file(&bytes)?;
    match format {
        Format::Legacy => save(&store, path)?,
        Format::Checked => {
            let check: [u8; CHECK_LEN] = bytes[bytes.len() - CHECK_LEN..]
                .try_into()
                .map_err(|_| FileError::Integrity)?;
            super::journal::replay(path, &check, &mut store)?;
        }
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgka::Cgka;
    use crate::cgka::tests::{broadcast, network};
    use crate::signed::Signed;

    #[test]
    fn cgka_secrets_survive_restart_in_a_private_file() {
        let (mut rs, auth) = network(2);
        let (id, pk) = (rs[1].id(), rs[1].prekey());
        let key = rs[0].device.signing_key().clone();
        let op = rs[0].cgka.add(&key, id, pk, &auth).unwrap();
        broadcast(&mut rs, &op, &auth);
        let op = rs[0].cgka.update(&key, &auth).unwrap();
        broadcast(&mut rs, &op, &auth);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let mut store = KeyStore::new(rs[1].device.clone());
        let doc = rs[1].cgka.document();
        store.record(&rs[1].cgka);
        save(&store, &path).unwrap();
        save(&store, &path).unwrap(); // replacing works too
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );

        // "Restart": rebuild the CGKA from public ops plus the stored secrets.
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.device().id(), rs[1].id());
        let mut ops = rs[1].cgka.ops_in_order();
        let init = Signed::decode(ops.next().unwrap().as_bytes()).unwrap();
        let mut cgka =
            Cgka::from_init(&rs[1].cgka.binding(), init, Some(loaded.device()), &auth).unwrap();
        for op in ops {
            cgka.receive(Signed::decode(op.as_bytes()).unwrap(), &auth)
                .unwrap();
        }
        cgka.import_secrets(loaded.cgka_secrets(&doc).unwrap(), &auth);
        assert_eq!(
            cgka.current_epoch().map(|(h, k)| (h, k.clone())),
            rs[1].cgka.current_epoch().map(|(h, k)| (h, k.clone()))
        );

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(load(&path), Err(FileError::Permissions(_))));
        }
    }

    /// KEYS-7: every single-bit flip of a written key store file is refused with a typed error,
    /// never loaded as another device.
    #[test]
    fn every_bit_flip_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        let store = KeyStore::new(crate::identity::Device::generate(Some("laptop".into())));
        save(&store, &path).unwrap();
        let written = fs::read(&path).unwrap();
        assert_eq!(load(&path).unwrap().device().id(), store.device().id());
        for bit in 0..written.len() * 8 {
            let mut bytes = written.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            match decode_file(&bytes) {
                Err(FileError::Integrity | FileError::Decode(_)) => {}
                Err(other) => panic!("bit {bit}: unexpected error {other}"),
                Ok((loaded, _)) => panic!(
                    "bit {bit}: loaded device {} instead of an error",
                    loaded.device().id()
                ),
            }
        }
        // Through the file too, for a sample of flips (the check runs before decoding).
        for bit in (0..written.len() * 8).step_by(97) {
            let mut bytes = written.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            fs::write(&path, &bytes).unwrap();
            assert!(matches!(
                load(&path),
                Err(FileError::Integrity | FileError::Decode(_))
            ));
        }
    }

    /// KEYS-7: a version-1 file (bare KEYS-2 bytes) still loads and is rewritten as version 2.
    #[test]
    fn version_one_file_is_read_and_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        let store = KeyStore::new(crate::identity::Device::generate(None));
        {
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            options
                .open(&path)
                .unwrap()
                .write_all(&store.to_bytes())
                .unwrap();
        }
        assert_eq!(load(&path).unwrap().device().id(), store.device().id());
        let upgraded = fs::read(&path).unwrap();
        assert!(upgraded.starts_with(&file_header()));
        assert_eq!(
            decode_file(&upgraded).unwrap().1,
            Format::Checked,
            "rewritten with its check"
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert!(KeyStore::from_bytes(b"not a key store").is_err());
        let store = KeyStore::new(crate::identity::Device::generate(None));
        let mut bytes = store.to_bytes().to_vec();
        bytes.push(0);
        assert!(KeyStore::from_bytes(&bytes).is_err());
    }
}
