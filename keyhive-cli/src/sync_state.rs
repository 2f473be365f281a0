//! When this home last synced (`docs/cli-live.md` LIVE-7): `sync.json`, written after every
//! successful `sync` and watcher round, read by `status`.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use keyhive_sync::Store;
use serde::{Deserialize, Serialize};

use crate::home::Home;

/// The file in the home.
pub const SYNC_FILE: &str = "sync.json";

/// What `sync.json` holds.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SyncState {
    /// Unix seconds of the last successful sync with any relay.
    pub last_sync: Option<u64>,
    /// Unix seconds of the last successful sync, per relay URL.
    pub relays: BTreeMap<String, u64>,
    /// Items in the local store right after that sync (items stored since are pending).
    pub items: Option<u64>,
}

/// Loads the state (absent = never synced).
pub fn load(home: &Home) -> Result<SyncState> {
    match home.read_optional(SYNC_FILE)? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is damaged", home.path(SYNC_FILE).display())),
        None => Ok(SyncState::default()),
    }
}

/// Records a successful sync with `urls` now, the store holding `items` items.
pub fn record(home: &Home, urls: &[String], items: u64) -> Result<()> {
    let mut state = load(home).unwrap_or_default();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    state.last_sync = Some(now);
    for url in urls {
        state.relays.insert(url.clone(), now);
    }
    state.items = Some(items);
    home.write_atomic(SYNC_FILE, &serde_json::to_vec_pretty(&state)?, false)
}

/// Every item the store holds.
pub fn item_count(store: &dyn Store) -> Result<u64> {
    let mut n = 0u64;
    for subject in store.subjects()? {
        n += store.hashes(&subject)?.len() as u64;
    }
    Ok(n)
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian calendar).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_142_472), "2026-12-01 16:27:52 UTC");
    }
}
