//! `keyhive status`: this device, its relays and whether they answer, what waits to be
//! pushed, when it last synced, and what it holds.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::identity::SubjectKind;
use keyhive_sync::client::session::{ConnectTimeouts, Session as SyncSession};
use serde::Serialize;
use serde_json::json;

use crate::output::print_table;
use crate::relays;
use crate::session::Session;
use crate::sync_state::{self, utc};
use keyhive_sync::record::MetadataKind;

/// How long `status` waits for each relay (TCP + TLS + WebSocket, then the handshake).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One relay as `status` shows it.
#[derive(Debug, Serialize)]
struct RelayStatus {
    relay: String,
    pinned_id: Option<String>,
    reachable: bool,
    /// Connect and handshake time, when reachable.
    ms: Option<u64>,
    error: Option<String>,
    last_sync: Option<u64>,
}

/// `keyhive status`; `watcher` says whether a `sync --watch` lent this command the store.
pub fn status(s: &mut Session, watcher: bool) -> Result<()> {
    let device = s.replica.device().clone();
    let state = sync_state::load(&s.home)?;
    let urls = relays::load(&s.home)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut probes = Vec::new();
    for url in urls {
        let pinned = relays::pinned(&s.home, &url)?;
        let (reachable, ms, error) = runtime.block_on(probe(&url, device.signing_key(), pinned));
        probes.push(RelayStatus {
            last_sync: state.relays.get(&url).copied(),
            pinned_id: pinned.map(|k| k.to_string()),
            relay: url,
            reachable,
            ms,
            error,
        });
    }
    let items = sync_state::item_count(s.store.as_ref())?;
    // Items stored here since the last sync (written here, or waiting to be pushed).
    let pending = state.items.map_or(items, |then| items.saturating_sub(then));
    let metas = s.metas()?;
    let documents = metas
        .values()
        .filter(|m| m.kind == MetadataKind::Document)
        .count();
    let folders = metas.len() - documents;
    let groups = s
        .replica
        .reachable()
        .into_iter()
        .filter(|(_, _, kind)| *kind == SubjectKind::Group)
        .count();
    let id = device.id().to_string();
    let name = device.name().map(str::to_owned);
    s.out.emit(
        &json!({
            "id": id, "name": name, "home": s.home.root(), "watcher": watcher,
            "relays": probes, "items": items, "pending_items": pending,
            "last_sync": state.last_sync, "documents": documents, "folders": folders,
            "groups": groups,
        }),
        || {
            println!("device:    {id}");
            println!("name:      {}", name.as_deref().unwrap_or("-"));
            println!("home:      {}", s.home.root().display());
            println!(
                "watcher:   {}",
                if watcher {
                    "running (`keyhive sync --watch`)"
                } else {
                    "not running"
                }
            );
            println!("last sync: {}", when(state.last_sync));
            println!("pending:   {pending} item(s) stored here since the last sync");
            println!("holds:     {documents} document(s), {folders} folder(s), {groups} group(s), {items} item(s)");
            if probes.is_empty() {
                println!("relays:    none (add one with `keyhive relay add URL`)");
                return;
            }
            print_table(
                &["relay", "reachable", "last sync", "pinned id"],
                probes
                    .iter()
                    .map(|p| {
                        let reach = match (&p.ms, &p.error) {
                            (Some(ms), _) => format!("yes ({ms} ms)"),
                            (None, Some(e)) => format!("NO: {e}"),
                            (None, None) => "NO".to_owned(),
                        };
                        let pinned = p.pinned_id.as_deref().map_or("(on first sync)", |id| &id[..12]);
                        vec![p.relay.clone(), reach, when(p.last_sync), pinned.to_owned()]
                    })
                    .collect(),
            );
        },
    )
}

/// Connects and runs the handshake (checking the pinned id, SYNC-34) within
/// [`PROBE_TIMEOUT`] per phase; the session is closed at once.
async fn probe(
    url: &str,
    key: &SigningKey,
    pinned: Option<keyhive_core::crypto::signing::PublicKey>,
) -> (bool, Option<u64>, Option<String>) {
    let started = Instant::now();
    let connected = SyncSession::connect_with(
        url,
        key,
        pinned,
        keyhive_sync::tls::default_client_config(),
        ConnectTimeouts::new(PROBE_TIMEOUT, PROBE_TIMEOUT),
    )
    .await;
    match connected {
        Ok(session) => {
            drop(session);
            (true, Some(started.elapsed().as_millis() as u64), None)
        }
        Err(e) => (false, None, Some(e.to_string())),
    }
}

/// A time as UTC and how long ago, or "never".
fn when(secs: Option<u64>) -> String {
    let Some(secs) = secs else {
        return "never".to_owned();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{} ({} s ago)", utc(secs), now.saturating_sub(secs))
}
