//! A [`Repo`] in a directory of its own that survives restarts: the device's key store and its
//! local store, with the key-agreement secrets kept before anything that needs them is stored
//! (KEYS-11).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyhive_core::identity::Device;
use keyhive_core::keystore::FileError;

use super::Repo;
use crate::replica::{KeyFile, Replica, ReplicaError};
use crate::store::{RedbStore, StoreError};

/// The key store file in a [`Repo::open_dir`] directory (mode 0600, KEYS-3, KEYS-7).
pub const KEY_FILE: &str = "device.key";
/// The local store file in a [`Repo::open_dir`] directory.
pub const STORE_FILE: &str = "store.redb";

/// Why [`Repo::open_dir`] could not open a device.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenDirError {
    /// The directory could not be created.
    #[error("cannot create the directory {path}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key store could not be read or written.
    #[error("key store {path}")]
    Keys {
        /// The key store file.
        path: PathBuf,
        /// Why.
        #[source]
        source: FileError,
    },
    /// The directory holds a store but no key store: opening would make a new device over
    /// another device's data.
    #[error(
        "{store} exists but {keys} does not: restore the key store from a backup (a new device would not read this store)"
    )]
    KeysMissing {
        /// The store file.
        store: PathBuf,
        /// The missing key store file.
        keys: PathBuf,
    },
    /// The local store could not be opened.
    #[error("local store {path}")]
    Store {
        /// The store file.
        path: PathBuf,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The stored items could not be replayed, or the secrets not kept.
    #[error("cannot open the device's replica")]
    Replica(#[from] ReplicaError),
}

impl Repo {
    /// Opens the device kept in `dir`, or creates one named `name` there when `dir` holds
    /// none: its key store in [`KEY_FILE`] (the signing key, prekeys and every key-agreement
    /// secret) and its items in [`STORE_FILE`]. Everything survives a restart or a kill: a
    /// key-agreement op made here is stored only once its secrets are in the key store
    /// (KEYS-11), so the device reads every epoch it announced. One process per directory
    /// (the store is locked).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use keyhive_sync::Repo;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let repo = Repo::open_dir(dir.path(), Some("laptop"))?;
    /// let doc = repo.create_document()?;
    /// let change = repo.write(doc, b"kept across restarts")?;
    /// let id = repo.id();
    /// drop(repo);
    ///
    /// let repo = Repo::open_dir(dir.path(), None)?;
    /// assert_eq!(repo.id(), id);
    /// assert_eq!(repo.read(doc, &change)?, b"kept across restarts");
    /// # Ok(())
    /// # }
    /// ```
    pub fn open_dir(dir: impl AsRef<Path>, name: Option<&str>) -> Result<Repo, OpenDirError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| OpenDirError::Directory {
            path: dir.to_path_buf(),
            source,
        })?;
        let (keys_path, store_path) = (dir.join(KEY_FILE), dir.join(STORE_FILE));
        let keys_error = |source| OpenDirError::Keys {
            path: keys_path.clone(),
            source,
        };
        let keys = if keys_path.exists() {
            KeyFile::load(&keys_path).map_err(keys_error)?
        } else if store_path.exists() {
            return Err(OpenDirError::KeysMissing {
                store: store_path,
                keys: keys_path,
            });
        } else {
            let device = Device::generate(name.map(str::to_owned));
            KeyFile::create(&keys_path, device).map_err(keys_error)?
        };
        let store = RedbStore::open(&store_path).map_err(|source| OpenDirError::Store {
            path: store_path.clone(),
            source,
        })?;
        let mut replica = Replica::open(keys.keys().device().clone(), Arc::new(store) as _)?;
        let secrets: Vec<_> = keys
            .keys()
            .all_cgka_secrets()
            .map(|(d, s)| (*d, s.clone()))
            .collect();
        replica.import_cgka_secrets(secrets);
        replica.keep_secrets_with(keys);
        Ok(Repo::with_replica(replica))
    }
}
