//! The relays this device syncs with (`relay add`), the relay id pinned for each URL (trust on
//! first use, specs/sync.md SYNC-34), and the TLS certificates trusted for wss:// relays whose
//! certificate no public authority signed (`relay add --ca-cert`, SYNC-37).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use keyhive_core::crypto::signing::{PublicKey, SigningKey};
use keyhive_sync::client::Client;
use keyhive_sync::policy::AccessPolicy;
use keyhive_sync::store::Store;
use keyhive_sync::tls;

use crate::home::Home;

/// File holding relay URLs.
pub const RELAYS_FILE: &str = "relays.json";
/// File mapping each relay URL this device has synced with to the relay id it pinned.
pub const PINS_FILE: &str = "relay_pins.json";
/// File mapping relay URLs to the PEM certificates (a self-signed certificate or a private CA)
/// trusted for them beside the webpki roots.
pub const CA_FILE: &str = "relay_ca.json";

/// Loads the relay list (absent = empty).
pub fn load(home: &Home) -> Result<Vec<String>> {
    match home.read_optional(RELAYS_FILE)? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is damaged", home.path(RELAYS_FILE).display())),
        None => Ok(Vec::new()),
    }
}

/// The path every relay serves (SYNC-35).
const SYNC_PATH: &str = "/sync";

/// Checks a relay URL and returns its canonical form: `ws://` or `wss://`, a host, and the
/// `/sync` path (added when the URL has no path, so `ws://host:port` works as people type it;
/// any other path, a query or a fragment is refused at once, before a sync fails on it).
pub fn normalize(url: &str) -> Result<String> {
    let expected = "expected ws://HOST:PORT/sync or wss://HOST/sync";
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("{url:?} is not a relay URL: {expected}");
    };
    if scheme != "ws" && scheme != "wss" {
        bail!("{url:?} is not a relay URL (scheme {scheme:?}): {expected}");
    }
    if rest.contains(['?', '#', ' ']) {
        bail!("{url:?} is not a relay URL (a query, fragment or space): {expected}");
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        bail!("{url:?} is not a relay URL (no host, or user info): {expected}");
    }
    match path {
        "" | "/" | SYNC_PATH => Ok(format!("{scheme}://{authority}{SYNC_PATH}")),
        other => {
            bail!("{url:?} names the path {other:?}, but relays serve {SYNC_PATH}: {expected}")
        }
    }
}

/// Removes a URL and its pinned id; returns whether it was configured.
pub fn remove(home: &Home, url: &str) -> Result<bool> {
    let mut list = load(home)?;
    let before = list.len();
    list.retain(|u| u != url);
    let removed = list.len() != before;
    if removed {
        home.write_atomic(RELAYS_FILE, &serde_json::to_vec_pretty(&list)?, false)?;
    }
    let mut pins = load_pins(home)?;
    if pins.remove(url).is_some() {
        save_pins(home, &pins)?;
    }
    let mut cas = load_cas(home)?;
    if cas.remove(url).is_some() {
        save_cas(home, &cas)?;
    }
    Ok(removed)
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
    let mut list = load(home)?;
    if list.iter().any(|u| u == url) {
        return Ok(false);
    }
    list.push(url.to_owned());
    home.write_atomic(RELAYS_FILE, &serde_json::to_vec_pretty(&list)?, false)?;
    Ok(true)
}

fn load_cas(home: &Home) -> Result<BTreeMap<String, String>> {
    let Some(bytes) = home.read_optional(CA_FILE)? else {
        return Ok(BTreeMap::new());
    };
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is damaged", home.path(CA_FILE).display()))
}

fn save_cas(home: &Home, cas: &BTreeMap<String, String>) -> Result<()> {
    home.write_atomic(CA_FILE, &serde_json::to_vec_pretty(cas)?, false)
}

/// Trusts the certificates in `pem` (PEM text: a relay's self-signed certificate or a private
/// CA) for the wss:// relay `url`, replacing what was trusted for it; refuses text that holds
/// no certificate or that TLS cannot use as a trust anchor.
pub fn trust(home: &Home, url: &str, pem: &str) -> Result<()> {
    if !url.starts_with("wss://") {
        bail!("--ca-cert is for wss:// relays; {url} does not use TLS");
    }
    let certificates = tls::certificates_from_pem(pem.as_bytes())
        .context("the --ca-cert file holds no PEM certificate")?;
    tls::client_config_trusting(certificates)
        .context("TLS cannot use the --ca-cert file as a trust anchor")?;
    let mut cas = load_cas(home)?;
    cas.insert(url.to_owned(), pem.to_owned());
    save_cas(home, &cas)
}

/// Whether certificates were trusted for `url` with `relay add --ca-cert`.
pub fn trusts(home: &Home, url: &str) -> Result<bool> {
    Ok(load_cas(home)?.contains_key(url))
}

/// The sync client for this device's relays (SYNC-37): wss:// relays are verified against the
/// webpki roots and every certificate trusted with `relay add --ca-cert`. Those certificates
/// are trusted for all of this device's relays, as a system's added CA would be; TLS only
/// protects the transport, and each relay still proves its pinned id (SYNC-34).
pub fn client(
    home: &Home,
    key: SigningKey,
    store: Arc<dyn Store>,
    policy: Arc<dyn AccessPolicy>,
) -> Result<Arc<Client>> {
    let cas = load_cas(home)?;
    if cas.is_empty() {
        return Ok(Client::new(key, store, policy));
    }
    let mut anchors = Vec::new();
    for (url, pem) in &cas {
        let damaged = || format!("{} is damaged (entry {url})", home.path(CA_FILE).display());
        anchors.extend(tls::certificates_from_pem(pem.as_bytes()).with_context(damaged)?);
    }
    let config = tls::client_config_trusting_also(anchors)
        .with_context(|| format!("{} is damaged", home.path(CA_FILE).display()))?;
    Ok(Client::new_with_tls(key, store, policy, config))
}
