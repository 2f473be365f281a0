//! Loading and saving this device's identity in its home.

use anyhow::{Context, Result, bail};
use keyhive_core::crypto::prekey::PrekeySecret;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::encoding::{decode_canonical, encode};
use keyhive_core::identity::Device;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::home::Home;

/// File holding the device's secret keys (mode 0600).
pub const DEVICE_FILE: &str = "device.key";

/// Loads the device, with a clear message when `init` has not been run.
pub fn load(home: &Home) -> Result<Device> {
    let Some(bytes) = home.read_optional(DEVICE_FILE)? else {
        bail!(
            "no identity in {} yet: run `keyhive init --name NAME` first (or pass --home)",
            home.root().display()
        );
    };
    decode_device(&bytes).with_context(|| {
        format!(
            "the key store {} is damaged",
            home.path(DEVICE_FILE).display()
        )
    })
}

/// Saves a new device, refusing to overwrite an existing identity.
pub fn create(home: &Home, device: &Device) -> Result<()> {
    if home.path(DEVICE_FILE).exists() {
        bail!(
            "an identity already exists in {}; refusing to overwrite it (use another --home)",
            home.root().display()
        );
    }
    home.write_atomic(DEVICE_FILE, &encode_device(device), true)
}

/// On-disk form of the device's secrets (version 1). Zeroized when dropped.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct StoredDevice {
    version: u8,
    seed: [u8; 32],
    prekeys: Vec<[u8; 32]>,
    name: Option<String>,
}

fn encode_device(device: &Device) -> zeroize::Zeroizing<Vec<u8>> {
    let stored = StoredDevice {
        version: 1,
        seed: *device.signing_key().seed(),
        prekeys: device.prekeys().iter().map(|p| *p.to_bytes()).collect(),
        name: device.name().map(str::to_owned),
    };
    zeroize::Zeroizing::new(encode(&stored))
}

fn decode_device(bytes: &[u8]) -> Result<Device> {
    let stored: StoredDevice = decode_canonical(bytes, 64 * 1024)?;
    if stored.version != 1 {
        bail!("unsupported key store version {}", stored.version);
    }
    Ok(Device::from_parts(
        SigningKey::from_seed(&stored.seed),
        stored
            .prekeys
            .iter()
            .map(|p| PrekeySecret::from_bytes(*p))
            .collect(),
        stored.name.clone(),
    ))
}
