//! This device's key store in its home (`device.key`, mode 0600, written atomically).

use anyhow::{Context, Result, bail};
use keyhive_core::identity::Device;
use keyhive_core::keystore::{self, FileError, KeyStore};

use crate::home::Home;

/// File holding the device's secret keys.
pub const DEVICE_FILE: &str = "device.key";

/// Loads the key store, with a clear message when `init` has not been run.
pub fn load(home: &Home) -> Result<KeyStore> {
    let path = home.path(DEVICE_FILE);
    match keystore::load(&path) {
        Ok(store) => Ok(store),
        Err(FileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no identity in {} yet: run `keyhive init --name NAME` first (or pass --home)",
            home.root().display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot open the key store {}", path.display())),
    }
}

/// Loads only the device.
pub fn load_device(home: &Home) -> Result<Device> {
    Ok(load(home)?.device().clone())
}

/// Saves a new device, refusing to overwrite an existing identity.
pub fn create(home: &Home, device: Device) -> Result<()> {
    if home.path(DEVICE_FILE).exists() {
        bail!(
            "an identity already exists in {}; refusing to overwrite it (use another --home)",
            home.root().display()
        );
    }
    save(home, &KeyStore::new(device))
}

/// What the key store file holds, as a digest of its contents, so that a command that learned
/// no secret writes nothing (an idle `sync` of a home of 3,562 documents rewrote its 780 KB
/// key store twice, each time with two fsyncs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved(blake3::Hash);

impl Saved {
    /// The digest of `keys` as loaded from (or last written to) the home.
    pub fn of(keys: &KeyStore) -> Self {
        Saved(blake3::hash(&keys.to_bytes()))
    }

    /// Saves `keys` unless they are exactly what was loaded or saved last.
    pub fn save(&mut self, home: &Home, keys: &KeyStore) -> Result<()> {
        let now = Self::of(keys);
        // `blake3::Hash` compares in constant time.
        if now == *self {
            crate::debug_trace::trace("keys", "key store unchanged, not written");
            return Ok(());
        }
        save(home, keys)?;
        *self = now;
        Ok(())
    }
}

/// Saves the key store atomically with mode 0600.
pub fn save(home: &Home, store: &KeyStore) -> Result<()> {
    home.ensure()?;
    crate::debug_trace::trace("keys", "key store saved whole");
    let path = home.path(DEVICE_FILE);
    keystore::save(store, &path).with_context(|| format!("cannot write {}", path.display()))
}
