//! `keyhive sync` and `keyhive relay add`.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use keyhive_sync::client::{Client, SyncReport};
use keyhive_sync::replica::ReplicaGate;
use serde_json::json;

use crate::home::Home;
use crate::output::Output;
use crate::relays;
use crate::session::Session;

/// Rounds per relay: a round can make items acceptable that the peer refused earlier in it
/// (e.g. a key-agreement op before the grant that authorises it), so repeat until quiet.
const MAX_ROUNDS: usize = 8;

/// What a sync with one relay did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RelaySummary {
    /// The relay URL.
    pub relay: String,
    /// Items received and stored.
    pub pulled: usize,
    /// Items the relay stored.
    pub pushed: usize,
    /// Items the relay refused (reported, never fatal).
    pub refused: usize,
    /// Items received that this device refused.
    pub rejected: usize,
    /// Frame bytes sent.
    pub bytes_sent: u64,
    /// Frame bytes received.
    pub bytes_received: u64,
}

impl RelaySummary {
    fn add(&mut self, r: &SyncReport, accepted: u64) {
        // Items are verified and stored by the replica itself (REP-2), so the count of items
        // it accepted is what was pulled.
        self.pulled += usize::try_from(accepted).unwrap_or(usize::MAX);
        self.pushed += r.pushed;
        self.refused = r.refused;
        self.rejected = r.rejected;
        self.bytes_sent += r.bytes_sent;
        self.bytes_received += r.bytes_received;
    }
}

/// Syncs a session with `urls`, returning the session (its replica updated) and summaries.
pub async fn sync_session(mut s: Session, urls: &[String]) -> Result<(Session, Vec<RelaySummary>)> {
    s.replica.prepare_all()?;
    s.save()?;
    let Session {
        home,
        out,
        keys,
        store,
        replica,
        ..
    } = s;
    let shared = Arc::new(Mutex::new(replica));
    let gate = Arc::new(ReplicaGate::new(shared.clone()));
    let client = Client::new(keys.device().signing_key().clone(), store.clone(), gate);
    let result = sync_links(&client, &shared, urls).await;
    drop(client);
    let replica = Arc::try_unwrap(shared)
        .map_err(|_| anyhow::anyhow!("internal error: sync link still running"))?
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut s = Session::assemble(home, out, keys, store, replica)?;
    s.save()?;
    Ok((s, result?))
}

async fn sync_links(
    client: &Arc<Client>,
    shared: &Arc<Mutex<keyhive_sync::replica::Replica<Arc<keyhive_sync::RedbStore>>>>,
    urls: &[String],
) -> Result<Vec<RelaySummary>> {
    let mut summaries = Vec::new();
    for url in urls {
        let session = client.connect(url).await.with_context(|| {
            format!(
                "cannot reach relay {url}: is it running (`keyhive relay serve`) and the URL right?"
            )
        })?;
        let mut summary = RelaySummary {
            relay: url.clone(),
            ..Default::default()
        };
        for _ in 0..MAX_ROUNDS {
            let before = accepted(shared);
            let report = client
                .sync_once(&session)
                .await
                .with_context(|| format!("sync with {url} failed"))?;
            let now = accepted(shared);
            summary.add(&report, now - before);
            // New grants or revocations learned here may need seats or a re-key (REP-3).
            let rekeyed = {
                let mut replica = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                !replica.prepare_all()?.is_empty()
            };
            // Another round helps only if something moved: items accepted here, a re-key, or
            // items refused (by either side) for want of a predecessor or grant sent later.
            let refused = report.refused + report.rejected;
            if now == before && !rekeyed && refused == 0 {
                break;
            }
        }
        summaries.push(summary);
    }
    Ok(summaries)
}

fn accepted(shared: &Mutex<keyhive_sync::replica::Replica<Arc<keyhive_sync::RedbStore>>>) -> u64 {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .accepted_count()
}

/// `keyhive sync [--relay URL]...`.
pub fn sync(s: Session, relays_arg: Vec<String>) -> Result<()> {
    let urls = if relays_arg.is_empty() {
        relays::load(&s.home)?
    } else {
        relays_arg
    };
    if urls.is_empty() {
        bail!("no relay to sync with: pass --relay URL or run `keyhive relay add URL` first");
    }
    for url in &urls {
        relays::validate(url)?;
    }
    let out = s.out;
    let spinner = spinner(out);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (_, summaries) = runtime.block_on(sync_session(s, &urls))?;
    spinner.finish_and_clear();
    out.emit(&summaries, || {
        for r in &summaries {
            println!(
                "{}: pulled {}, pushed {}, refused by relay {}, rejected here {} ({} B sent, {} B received)",
                r.relay, r.pulled, r.pushed, r.refused, r.rejected, r.bytes_sent, r.bytes_received
            );
        }
    })
}

fn spinner(out: Output) -> indicatif::ProgressBar {
    if out.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message("syncing");
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

/// `keyhive relay add URL`.
pub fn relay_add(home: &Home, out: Output, url: &str) -> Result<()> {
    let added = relays::add(home, url)?;
    out.emit(&json!({"relay": url, "added": added}), || {
        if added {
            println!("Added relay {url}; `keyhive sync` now uses it");
        } else {
            println!("Relay {url} was already configured");
        }
    })
}
