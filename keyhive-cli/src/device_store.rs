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

/// Saves the key store atomically with mode 0600.
pub fn save(home: &Home, store: &KeyStore) -> Result<()> {
    home.ensure()?;
    crate::debug_trace::trace("keys", "key store saved whole");
    let path = home.path(DEVICE_FILE);
    keystore::save(store, &path).with_context(|| format!("cannot write {}", path.display()))
}
