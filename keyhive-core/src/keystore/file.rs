//! Persisting the key store: one file, mode 0600, replaced atomically (KEYS-3).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::store::{KeyStore, KeyStoreDecodeError, MAX_KEYSTORE_LEN};

/// Why the key store could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// A file-system operation failed.
    #[error("key store i/o error: {0}")]
    Io(#[from] io::Error),
    /// The file is larger than any key store.
    #[error("key store file is larger than {MAX_KEYSTORE_LEN} bytes")]
    TooLarge,
    /// The file is readable by others than its owner (KEYS-3).
    #[error("key store file {0} is readable by group or others (mode must be 0600)")]
    Permissions(PathBuf),
    /// The contents do not decode.
    #[error("{0}")]
    Decode(#[from] KeyStoreDecodeError),
}

fn temp_path(path: &Path) -> PathBuf {
    let mut suffix = [0u8; 8];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut suffix);
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
    let bytes = store.to_bytes();
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
    Ok(result?)
}

/// Loads the key store from `path`, refusing files others can read (KEYS-3).
pub fn load(path: &Path) -> Result<KeyStore, FileError> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(FileError::Permissions(path.to_path_buf()));
        }
    }
    if meta.len() > MAX_KEYSTORE_LEN as u64 {
        return Err(FileError::TooLarge);
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    file.take(MAX_KEYSTORE_LEN as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > MAX_KEYSTORE_LEN {
        return Err(FileError::TooLarge);
    }
    Ok(KeyStore::from_bytes(&bytes)?)
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

    #[test]
    fn garbage_is_refused() {
        assert!(KeyStore::from_bytes(b"not a key store").is_err());
        let store = KeyStore::new(crate::identity::Device::generate(None));
        let mut bytes = store.to_bytes().to_vec();
        bytes.push(0);
        assert!(KeyStore::from_bytes(&bytes).is_err());
    }
}
