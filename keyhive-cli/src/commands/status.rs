//! `keyhive status`: this device, its relays and whether they answer, what waits to be
//! pushed, when it last synced, and what it holds (with the groups it reaches by name). With a
//! valid name index (REP-66, REP-69) it answers from the index without opening the replica.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};

use keyhive_core::capability::Access;
use keyhive_core::crypto::signing::{PublicKey, SigningKey};
use keyhive_core::identity::{Device, DocumentId, SubjectKind};
use keyhive_sync::client::session::{ConnectTimeouts, Session as SyncSession};
use serde::Serialize;
use serde_json::json;

use crate::home::Home;
use crate::name_index;
use crate::names::{GroupNames, LocalNames, shown};
use crate::output::{Output, print_table};
use crate::relays;
use crate::session::{Session, short};
use crate::sync_state::{self, utc};
use keyhive_sync::record::{DocumentMetadata, MetadataKind};

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

/// One group this device reaches, as `status` names it (the name `ls` shows, REC-10).
#[derive(Debug, Serialize)]
struct GroupRow {
    #[serde(skip)]
    key: PublicKey,
    name: Option<String>,
    id: String,
    access: String,
}

/// What the home holds, from a full session or from the name index (the same either way).
struct Holdings {
    items: u64,
    documents: usize,
    folders: usize,
    /// Documents and folders this device was removed from (REP-32): named here still, not
    /// listed by `ls`.
    removed: usize,
    groups: Vec<GroupRow>,
}

impl Holdings {
    /// Counts documents and folders (profile documents are their group's, REC-10) and names
    /// the groups `reachable` holds as `ls` does.
    fn new(
        items: u64,
        reachable: &[(PublicKey, Access, SubjectKind)],
        metas: &BTreeMap<DocumentId, DocumentMetadata>,
        names: GroupNames<'_>,
    ) -> Self {
        // As `ls` lists them: what this device reaches now.
        let reached: BTreeSet<&PublicKey> = reachable.iter().map(|(id, _, _)| id).collect();
        let held = || metas.iter().filter(|(id, _)| reached.contains(&id.0));
        let documents = held()
            .filter(|(_, m)| m.kind == MetadataKind::Document)
            .count();
        let folders = held().count() - documents;
        let mut groups: Vec<GroupRow> = reachable
            .iter()
            .filter(|(_, _, kind)| *kind == SubjectKind::Group)
            .map(|(id, access, _)| GroupRow {
                key: *id,
                name: names.get(id).map(shown),
                id: id.to_string(),
                access: access.to_string(),
            })
            .collect();
        // Named groups by name, then unnamed ones, each by id: the same order on every run.
        groups.sort_by(|a, b| {
            (a.name.is_none(), &a.name, &a.id).cmp(&(b.name.is_none(), &b.name, &b.id))
        });
        Holdings {
            items,
            documents,
            folders,
            removed: metas.len() - documents - folders,
            groups,
        }
    }
}

/// `keyhive status` on a fully opened session; `watcher` says whether a `sync --watch` lent
/// this command the store.
pub fn status(s: &mut Session, watcher: bool) -> Result<()> {
    let items = sync_state::item_count(s.store.as_ref())?;
    let reachable = s.replica.reachable();
    let metas = s.metas()?.clone();
    let device = s.replica.device().clone();
    let (home, out) = (s.home.clone(), s.out);
    let holds = Holdings::new(items, &reachable, &metas, s.group_names()?);
    report(&home, out, &device, holds, watcher)
}

/// REP-69: `keyhive status` from the name index when it is valid (nothing replayed, nothing
/// written); `false` (nothing printed) when the command must open the home fully instead.
pub fn status_indexed(home: &Home, out: Output, watcher: bool) -> Result<bool> {
    let Some(name_index::ReadOnlyView {
        keys,
        summaries,
        index,
    }) = name_index::read_only_view(home)?
    else {
        return Ok(false);
    };
    name_index::trace("used");
    // STORE-4: a subject's summary counts its items.
    let items = summaries.iter().map(|(_, s)| s.count).sum();
    let local = LocalNames::load(home)?;
    let holds = Holdings::new(
        items,
        &index.reachable,
        &index.metas,
        index
            .group_names(&local)
            .with_person(crate::person::load(home)?),
    );
    report(home, out, keys.device(), holds, watcher)?;
    Ok(true)
}

fn report(home: &Home, out: Output, device: &Device, holds: Holdings, watcher: bool) -> Result<()> {
    let state = sync_state::load(home)?;
    let urls = relays::load(home)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut probes = Vec::new();
    for url in urls {
        let pinned = relays::pinned(home, &url)?;
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
    let Holdings {
        items,
        documents,
        folders,
        removed,
        groups: group_rows,
    } = holds;
    let groups = group_rows.len();
    // Items stored here since the last sync (written here, or waiting to be pushed).
    let pending = state.items.map_or(items, |then| items.saturating_sub(then));
    let id = device.id().to_string();
    let name = device.name().map(str::to_owned);
    out.emit(
        &json!({
            "id": id, "name": name, "home": home.root(), "watcher": watcher,
            "relays": probes, "items": items, "pending_items": pending,
            "last_sync": state.last_sync, "documents": documents, "folders": folders,
            "removed_from": removed, "groups": groups, "group_names": group_rows,
        }),
        || {
            println!("device:    {id}");
            println!("name:      {}", name.as_deref().unwrap_or("-"));
            println!("home:      {}", home.root().display());
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
            if removed > 0 {
                println!("removed:   from {removed} document(s) or folder(s); what it received before stays readable (`keyhive get`)");
            }
            println!("groups:    {}", group_list(&group_rows));
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

/// `Team (admin), Ops (write), 1a2b3c4d5e6f (read)`: each group by its shown name (its id's
/// first 12 hex digits when it has none) and this device's level; `none` when there is none.
fn group_list(rows: &[GroupRow]) -> String {
    if rows.is_empty() {
        return "none".to_owned();
    }
    rows.iter()
        .map(|g| {
            let name = g.name.clone().unwrap_or_else(|| short(&g.key));
            format!("{name} ({})", g.access)
        })
        .collect::<Vec<_>>()
        .join(", ")
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
