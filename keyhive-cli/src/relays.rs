//! The relays this device syncs with (`relay add`), and the relay id pinned for each URL
//! (trust on first use, specs/sync.md SYNC-34).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use keyhive_core::crypto::signing::PublicKey;

use crate::home::Home;

/// File holding relay URLs.
pub const RELAYS_FILE: &str = "relays.json";
/// File mapping each relay URL this device has synced with to the relay id it pinned.
pub const PINS_FILE: &str = "relay_pins.json";

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

/// Parses a relay id given on the command line.
pub fn parse_id(id: &str) -> Result<PublicKey> {
    id.parse::<PublicKey>().with_context(|| {
        format!("{id:?} is not a relay id (64 hex characters, printed by `keyhive relay serve`)")
    })
}

fn load_pins(home: &Home) -> Result<BTreeMap<String, PublicKey>> {
    let Some(bytes) = home.read_optional(PINS_FILE)? else {
        return Ok(BTreeMap::new());
    };
    let damaged = || format!("{} is damaged", home.path(PINS_FILE).display());
    let raw: BTreeMap<String, String> = serde_json::from_slice(&bytes).with_context(damaged)?;
    raw.into_iter()
        .map(|(url, id)| Ok((url, id.parse::<PublicKey>().with_context(damaged)?)))
        .collect()
}

fn save_pins(home: &Home, pins: &BTreeMap<String, PublicKey>) -> Result<()> {
    let raw: BTreeMap<&String, String> = pins.iter().map(|(u, k)| (u, k.to_string())).collect();
    home.write_atomic(PINS_FILE, &serde_json::to_vec_pretty(&raw)?, false)
}

/// The relay id pinned for `url`, if this device has synced with it or pinned it.
pub fn pinned(home: &Home, url: &str) -> Result<Option<PublicKey>> {
    Ok(load_pins(home)?.get(url).copied())
}

/// Pins `url` to `id`, replacing any earlier pin; returns the id it replaced.
pub fn pin(home: &Home, url: &str, id: PublicKey) -> Result<Option<PublicKey>> {
    let mut pins = load_pins(home)?;
    let old = pins.insert(url.to_owned(), id);
    if old != Some(id) {
        save_pins(home, &pins)?;
    }
    Ok(old)
}

/// The one-line error for a relay whose id differs from the pinned one (SYNC-34).
pub fn changed_id_message(url: &str, pinned: &PublicKey, found: &PublicKey) -> String {
    format!(
        "relay {url} presented id {found}, but this device pinned id {pinned} for it: someone \
         may be intercepting the connection; if the relay's key really changed, re-pin it with \
         `keyhive relay add {url} --id {found}`"
    )
}

/// Adds a URL (no duplicates) and saves; returns whether it was new.
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
