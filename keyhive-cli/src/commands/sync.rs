//! `keyhive sync` and `keyhive relay add`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use keyhive_core::identity::GroupId;
use keyhive_sync::client::sync::REFUSAL_SAMPLE;
use keyhive_sync::client::{Client, ConnectError, Session as SyncSession, SyncReport};
use keyhive_sync::protocol::handshake::HandshakeError;
use keyhive_sync::replica::{Event, ReplicaGate};
use serde_json::json;

use crate::commands::sync_news::{self, EVENT_CAPACITY, News};
use crate::home::Home;
use crate::output::Output;
use crate::relays;
use crate::session::Session;

/// Rounds per relay: a round can make items acceptable that the peer refused earlier in it
/// (e.g. a key-agreement op before the grant that authorises it), so repeat until quiet.
const MAX_ROUNDS: usize = 8;

/// What a sync with one relay did, over all its rounds (SYNC-84).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RelaySummary {
    /// The relay URL.
    pub relay: String,
    /// The relay's id, as proved in the handshake (SYNC-34).
    pub relay_id: String,
    /// Whether this sync pinned the relay id for the first time (trust on first use).
    pub pinned_now: bool,
    /// Items received from the relay.
    pub arrived: usize,
    /// Items received and newly stored.
    pub pulled: usize,
    /// Items received that were already held.
    pub duplicates: usize,
    /// Items received that wait for causal predecessors (offered again by the next sync).
    pub parked: usize,
    /// Items the relay stored (or already held).
    pub pushed: usize,
    /// Items the relay still refused in the sync's last round (reported, never fatal). Every
    /// round offers again what the relay lacks, so a sum over rounds would count an item once
    /// per round, and one the relay took in a later round (after a grant got in) as refused.
    pub refused: usize,
    /// The first of those (at most `REFUSAL_SAMPLE`) with the reason the relay gave (SYNC-83).
    pub refusals: Vec<RelayRefusal>,
    /// Items received that this device refused.
    pub rejected: usize,
    /// Items refused here, by cause (the `Refusal` kind).
    pub rejected_by_cause: BTreeMap<&'static str, usize>,
    /// The first items refused here (at most `REFUSAL_SAMPLE` over the whole sync), each with
    /// its reason and every cause beneath it (SYNC-84).
    pub rejections: Vec<RelayRefusal>,
    /// PERSON-7: grants that passed on to this person's other devices what was shared with
    /// this device directly since the last sync.
    pub passed_on: usize,
    /// Why passing on what was shared with this device failed (PERSON-7), if it did; the
    /// sync went on, and the next one tries again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass_on_error: Option<String>,
    /// Frame bytes sent.
    pub bytes_sent: u64,
    /// Frame bytes received.
    pub bytes_received: u64,
    /// What syncing with this relay changed for this device (filled in from `events`).
    pub news: Vec<News>,
    /// Why syncing with this relay failed (unreachable, refused the handshake, dropped), with
    /// its causes; the other relays were synced all the same. Absent when it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The replica's events while syncing with this relay.
    #[serde(skip)]
    pub events: Vec<Event>,
}

/// One item refused (by a relay, or here), and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RelayRefusal {
    /// The item's hash.
    pub item: String,
    /// The reason: the relay's, or this device's with its causes (`reason: cause: ...`).
    pub reason: String,
}

impl RelaySummary {
    fn add(&mut self, r: &SyncReport) {
        self.refusals = r
            .peer_refusals
            .iter()
            .take(REFUSAL_SAMPLE)
            .map(|(hash, reason)| RelayRefusal {
                item: hash.to_string(),
                reason: reason.clone(),
            })
            .collect();
        self.arrived += r.arrived;
        self.pulled += r.pulled;
        self.duplicates += r.duplicates;
        self.parked += r.parked;
        self.pushed += r.pushed;
        self.refused = r.refused;
        self.rejected += r.rejected;
        for (cause, n) in &r.rejections.counts {
            *self.rejected_by_cause.entry(cause).or_default() += n;
        }
        let room = REFUSAL_SAMPLE.saturating_sub(self.rejections.len());
        self.rejections.extend(
            r.rejections
                .sample
                .iter()
                .take(room)
                .map(|(hash, refusal)| RelayRefusal {
                    item: hash.to_string(),
                    reason: crate::output::error_chain(refusal),
                }),
        );
        self.bytes_sent += r.bytes_sent;
        self.bytes_received += r.bytes_received;
    }
}

/// Syncs a session with `urls`, returning the session (its replica updated) and summaries.
pub async fn sync_session(mut s: Session, urls: &[String]) -> Result<(Session, Vec<RelaySummary>)> {
    // INV-5, INV-11: the causal end of expired invitations and ended grants.
    crate::commands::invite::revoke_ended(&mut s)?;
    s.replica.prepare_all()?;
    s.save()?;
    let Session {
        home,
        out,
        keys,
        store,
        replica,
        person,
        ..
    } = s;
    let shared = Arc::new(Mutex::new(replica));
    let gate = Arc::new(ReplicaGate::new(shared.clone()));
    let client = relays::client(
        &home,
        keys.device().signing_key().clone(),
        store.clone(),
        gate,
    )?;
    let result = sync_links(&client, &shared, &home, urls, person).await;
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
    home: &Home,
    urls: &[String],
    person: Option<GroupId>,
) -> Result<Vec<RelaySummary>> {
    let events = shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .subscribe_with_capacity(EVENT_CAPACITY);
    let mut summaries = Vec::new();
    // One relay that is down or fails does not keep the others from syncing; each says how it
    // went, and `all_synced` turns a failure into the command's error.
    for url in urls {
        let mut summary = RelaySummary {
            relay: url.clone(),
            ..Default::default()
        };
        let synced = async {
            let (session, pinned_now) = connect_pinned(client, home, url).await?;
            summary.relay_id = session.server_id().to_string();
            summary.pinned_now = pinned_now;
            rounds(client, shared, &session, person, &mut summary).await
        }
        .await;
        if let Err(e) = synced {
            summary.error = Some(format!("{e:#}"));
        }
        summary
            .events
            .extend(std::iter::from_fn(|| events.try_recv()));
        summaries.push(summary);
    }
    Ok(summaries)
}

/// The error of the only relay synced, if it failed; with several, an error naming those that
/// failed (each summary says why).
pub fn all_synced(summaries: &[RelaySummary]) -> Result<()> {
    let failed: Vec<&str> = summaries
        .iter()
        .filter(|r| r.error.is_some())
        .map(|r| r.relay.as_str())
        .collect();
    match (summaries, failed.len()) {
        (_, 0) => Ok(()),
        ([only], _) => bail!("{}", only.error.as_deref().unwrap_or_default()),
        _ => bail!(
            "{} of {} relays could not be synced: {}",
            failed.len(),
            summaries.len(),
            failed.join(", ")
        ),
    }
}

/// Syncs over `session` until quiet (at most [`MAX_ROUNDS`] rounds), passing on to the
/// `person` group what was shared with this device (PERSON-7), seating and re-keying between
/// rounds, adding what each round did to `summary`.
pub(crate) async fn rounds(
    client: &Arc<Client>,
    shared: &Mutex<keyhive_sync::replica::Replica<Arc<keyhive_sync::RedbStore>>>,
    session: &SyncSession,
    person: Option<GroupId>,
    summary: &mut RelaySummary,
) -> Result<()> {
    let mut refused_before = usize::MAX;
    for _ in 0..MAX_ROUNDS {
        let before = accepted(shared);
        let report = client
            .sync_once(session)
            .await
            .with_context(|| format!("sync with {} failed", summary.relay))?;
        let now = accepted(shared);
        summary.add(&report);
        // What was shared with this device reaches the person's other devices (PERSON-7); new
        // grants or revocations learned here may need seats or a re-key (REP-3). Either is
        // sent by the next round.
        let (passed, rekeyed) = {
            let mut replica = shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // A pass-on that fails does not fail the sync: it is said, and tried again next
            // round and next sync.
            let passed =
                match person.map(|group| crate::person::pass_on_shares(&mut replica, group)) {
                    Some(Ok(n)) => n,
                    Some(Err(e)) => {
                        summary.pass_on_error = Some(format!("{e:#}"));
                        0
                    }
                    None => 0,
                };
            (passed, !replica.prepare_all()?.is_empty())
        };
        summary.passed_on += passed;
        // Another round helps only if something moved: items accepted here, a re-key, or
        // fewer items refused (by either side) than the round before, for want of a
        // predecessor or grant sent later. Refusals that do not shrink (a quota, a revoked
        // writer) are not pushed again round after round.
        let refused = report.refused + report.rejected;
        if now == before && passed == 0 && !rekeyed && (refused == 0 || refused >= refused_before) {
            break;
        }
        refused_before = refused;
    }
    Ok(())
}

/// SYNC-34, trust on first use: connects requiring the id pinned for `url`, or, the first
/// time, pins the id the relay proved. Returns the session and whether it pinned now.
pub(crate) async fn connect_pinned(
    client: &Client,
    home: &Home,
    url: &str,
) -> Result<(SyncSession, bool)> {
    let pinned = relays::pinned(home, url)?;
    let session = match client.connect_to(url, pinned).await {
        Ok(session) => session,
        Err(ConnectError::Handshake(HandshakeError::UnexpectedServer { expected, found })) => {
            bail!(relays::changed_id_message(url, &expected, &found))
        }
        Err(e @ ConnectError::Tls(_)) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot verify relay {url}'s TLS certificate; if the relay uses a \
                     self-signed certificate or a private CA, trust it with \
                     `keyhive relay add {url} --ca-cert FILE`"
                )
            });
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!("cannot reach relay {url} (is it running, and the URL right?)")
            });
        }
    };
    if pinned.is_none() {
        relays::pin(home, url, session.server_id())?;
    }
    Ok((session, pinned.is_none()))
}

fn accepted(shared: &Mutex<keyhive_sync::replica::Replica<Arc<keyhive_sync::RedbStore>>>) -> u64 {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .accepted_count()
}

/// The relays to sync with: `--relay` URLs if given, else those added with `relay add`.
pub fn relay_urls(home: &Home, relays_arg: Vec<String>) -> Result<Vec<String>> {
    let urls = if relays_arg.is_empty() {
        relays::load(home)?
    } else {
        relays_arg
    };
    if urls.is_empty() {
        bail!("no relay to sync with: pass --relay URL or run `keyhive relay add URL` first");
    }
    urls.iter().map(|u| relays::normalize(u)).collect()
}

/// `keyhive sync [--relay URL]...`.
pub fn sync(mut s: Session, relays_arg: Vec<String>) -> Result<()> {
    let urls = relay_urls(&s.home, relays_arg)?;
    let out = s.out;
    // INV-5, INV-11: what ended by this device's clock is revoked before syncing (again
    // inside `sync_session`, which then finds nothing), and said.
    let (invitations, grants) = crate::commands::invite::revoke_ended(&mut s)?;
    let ended = grants.len() + invitations.len();
    if !out.json && ended > 0 {
        println!(
            "Revoked {} grant(s) whose time ran out and {} expired invitation(s) of this device",
            grants.len(),
            invitations.len()
        );
    }
    let spinner = spinner(out);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut s, mut summaries) = runtime.block_on(sync_session(s, &urls))?;
    for summary in &mut summaries {
        summary.news = sync_news::collect(std::mem::take(&mut summary.events), &mut s);
    }
    // REP-68: the session replayed the whole store and ingested what arrived.
    s.refresh_name_index();
    let synced: Vec<String> = summaries
        .iter()
        .filter(|r| r.error.is_none())
        .map(|r| r.relay.clone())
        .collect();
    if !synced.is_empty() {
        crate::sync_state::record(
            &s.home,
            &synced,
            crate::sync_state::item_count(s.store.as_ref())?,
        )?;
    }
    spinner.finish_and_clear();
    if let [only] = summaries.as_slice()
        && only.error.is_some()
    {
        return all_synced(&summaries);
    }
    out.emit(&summaries, || {
        for r in &summaries {
            if let Some(error) = &r.error {
                println!("{}: not synced: {error}", r.relay);
                continue;
            }
            if r.pinned_now {
                println!(
                    "{}: first sync, pinned relay id {} (later syncs require it)",
                    r.relay, r.relay_id
                );
            }
            println!(
                "{}: received {} (stored {}, already held {}, waiting {}, rejected here {}), pushed {}, refused by relay {} ({} B sent, {} B received)",
                r.relay,
                r.arrived,
                r.pulled,
                r.duplicates,
                r.parked,
                r.rejected,
                r.pushed,
                r.refused,
                r.bytes_sent,
                r.bytes_received
            );
            print_reasons(("rejected here", "rejected"), &r.rejections, r.rejected);
            print_reasons(("refused by relay", "refused"), &r.refusals, r.refused);
            if r.refusals.iter().any(|f| {
                f.reason
                    .contains(keyhive_sync::protocol::STRANGER_QUOTA_WORDS)
            }) {
                // SYNC-104, SYNC-104a: what lifts it.
                println!(
                    "  what to do: this relay keeps little for a device nobody shares with; share a document (`keyhive grant`) or link another of your devices (`keyhive device add`) and sync again, or ask its operator for a larger --stranger-quota"
                );
            }
            for news in &r.news {
                println!("  {}", sync_news::line(news));
            }
            if r.passed_on > 0 {
                println!(
                    "  passed on to all your devices {} group(s), folder(s) or document(s) shared with this device (PERSON-7)",
                    r.passed_on
                );
            }
            if let Some(e) = &r.pass_on_error {
                println!("  warning: could not pass on to your other devices what was shared with this one: {e}");
            }
        }
    })?;
    all_synced(&summaries)
}

/// One `  LABEL: N x REASON` line per distinct reason among `sample`, and a note when more
/// than the sample (`total`) were refused.
fn print_reasons((label, refused): (&str, &str), sample: &[RelayRefusal], total: usize) {
    for (reason, n) in refusal_reasons(sample) {
        println!("  {label}: {n} x {reason}");
    }
    if total > sample.len() {
        println!(
            "  (reasons given for the first {} of {total} {refused} items)",
            sample.len()
        );
    }
}

/// Each distinct reason among `refusals`, with how many gave it, in first-seen order.
pub(crate) fn refusal_reasons(refusals: &[RelayRefusal]) -> Vec<(&str, usize)> {
    let mut reasons: Vec<(&str, usize)> = Vec::new();
    for refusal in refusals {
        match reasons.iter_mut().find(|(r, _)| *r == refusal.reason) {
            Some((_, n)) => *n += 1,
            None => reasons.push((&refusal.reason, 1)),
        }
    }
    reasons
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

/// `keyhive relay add URL [--id RELAY_ID]`: remembers the URL and, with `--id`, pins (or
/// re-pins) the relay id it must prove (SYNC-34).
pub fn relay_add(
    home: &Home,
    out: Output,
    url: &str,
    id: Option<&str>,
    ca_cert: Option<&std::path::Path>,
) -> Result<()> {
    let id = id.map(relays::parse_id).transpose()?;
    let url = &relays::normalize(url)?;
    // Checked before anything is saved, so a bad file leaves the configuration as it was.
    if let Some(path) = ca_cert {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --ca-cert file {}", path.display()))?;
        relays::trust(home, url, &pem)
            .with_context(|| format!("--ca-cert file {}", path.display()))?;
    }
    let added = relays::add(home, url)?;
    let replaced = match id {
        Some(id) => relays::pin(home, url, id)?.filter(|old| *old != id),
        None => None,
    };
    let pinned = relays::pinned(home, url)?;
    out.emit(
        &json!({
            "relay": url,
            "added": added,
            "id": pinned.map(|k| k.to_string()),
            "replaced_id": replaced.map(|k| k.to_string()),
            "ca_cert": relays::trusts(home, url)?,
        }),
        || {
            if added {
                println!("Added relay {url}; `keyhive sync` now uses it");
            } else {
                println!("Relay {url} was already configured");
            }
            if let Some(path) = ca_cert {
                println!("Its TLS certificate is checked against {}", path.display());
            }
            match (pinned, replaced) {
                (Some(new), Some(old)) => println!("Re-pinned its id: {old} -> {new}"),
                (Some(new), None) => println!("Pinned relay id {new}"),
                (None, _) => {
                    println!("Its id will be pinned on the first sync (trust on first use)")
                }
            }
        },
    )
}

/// `keyhive relay list`: the relays `keyhive sync` uses, the id pinned for each, and whether a
/// certificate was trusted for it (`relay add --ca-cert`).
pub fn relay_list(home: &Home, out: Output) -> Result<()> {
    let rows: Vec<(String, Option<String>, bool)> = relays::load(home)?
        .into_iter()
        .map(|url| {
            let id = relays::pinned(home, &url)?.map(|k| k.to_string());
            let ca = relays::trusts(home, &url)?;
            Ok((url, id, ca))
        })
        .collect::<Result<_>>()?;
    out.emit(
        &rows
            .iter()
            .map(|(url, id, ca)| json!({ "relay": url, "id": id, "ca_cert": ca }))
            .collect::<Vec<_>>(),
        || {
            crate::output::print_table(
                &["RELAY", "PINNED ID", "TLS TRUST"],
                rows.iter()
                    .map(|(url, id, ca)| {
                        vec![
                            url.clone(),
                            id.clone()
                                .unwrap_or_else(|| "(pinned on first sync)".into()),
                            match (url.starts_with("wss://"), ca) {
                                (false, _) => "-".into(),
                                (true, true) => "--ca-cert".into(),
                                (true, false) => "public roots".into(),
                            },
                        ]
                    })
                    .collect(),
            )
        },
    )
}

/// `keyhive relay remove URL`: forgets a relay and its pinned id.
pub fn relay_remove(home: &Home, out: Output, url: &str) -> Result<()> {
    let url = &relays::normalize(url)?;
    if !relays::remove(home, url)? {
        anyhow::bail!("{url} is not a configured relay (see `keyhive relay list`)");
    }
    out.emit(&json!({ "relay": url, "removed": true }), || {
        println!("Removed relay {url}, its pinned id and any certificate trusted for it")
    })
}
