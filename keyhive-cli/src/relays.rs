//! The relays this device syncs with (`relay add`).

use anyhow::{Context, Result, bail};

use crate::home::Home;

/// File holding relay URLs.
pub const RELAYS_FILE: &str = "relays.json";

/// Loads the relay list (absent = empty).
pub fn load(home: &Home) -> Result<Vec<String>> {
    match home.read_optional(RELAYS_FILE)? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is damaged", home.path(RELAYS_FILE).display())),
        None => Ok(Vec::new()),
    }
}

/// Checks that `url` looks like a relay URL.
pub fn validate(url: &str) -> Result<()> {
    if !(url.starts_with("ws://") || url.starts_with("wss://")) {
        bail!("{url:?} is not a relay URL: expected ws://HOST:PORT/sync or wss://...");
    }
    Ok(())
}

/// Adds a URL (no duplicates) and saves.
pub fn add(home: &Home, url: &str) -> Result<bool> {
    validate(url)?;
    let mut list = load(home)?;
    if list.iter().any(|u| u == url) {
        return Ok(false);
    }
    list.push(url.to_owned());
    home.write_atomic(RELAYS_FILE, &serde_json::to_vec_pretty(&list)?, false)?;
    Ok(true)
}
