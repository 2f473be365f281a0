//! The watcher's sessions with its relays (LIVE-1, LIVE-4): each stays open, subscribed to
//! every subject this device holds or is offered; a session that drops is reopened with
//! backoff.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use keyhive_core::identity::IndividualId;
use keyhive_sync::SubjectId;
use keyhive_sync::client::sync::ingest;
use keyhive_sync::client::{LiveEvent, Session as SyncSession};
use keyhive_sync::policy::Arrival;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::commands::sync::{RelaySummary, connect_pinned, rounds};
use crate::home::Home;

use super::opened::Opened;
use super::report::Reporter;

/// First delay before reconnecting a relay; doubled per failure up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest delay between reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A live event, tagged with the session (generation) it came from.
type Tagged = (u64, Option<LiveEvent>);

struct Link {
    url: String,
    session: Option<SyncSession>,
    /// The session's number among all the watcher's sessions, so events of a closed session
    /// (or of a link since removed) are told apart.
    generation: u64,
    forward: Option<JoinHandle<()>>,
    subscribed: BTreeSet<SubjectId>,
    retry_at: Instant,
    backoff: Duration,
}

/// Every relay session of the watcher.
pub struct Links {
    home: Home,
    report: Reporter,
    links: Vec<Link>,
    sessions: u64,
    live_tx: mpsc::UnboundedSender<Tagged>,
    live_rx: mpsc::UnboundedReceiver<Tagged>,
}

impl Links {
    /// Links to `urls`, not yet connected.
    pub fn new(home: Home, report: Reporter, urls: Vec<String>) -> Self {
        let (live_tx, live_rx) = mpsc::unbounded_channel();
        let mut links = Links {
            home,
            report,
            links: Vec::new(),
            sessions: 0,
            live_tx,
            live_rx,
        };
        links.follow(urls);
        links
    }

    /// LIVE-4: follows the home's relay list (`relay add` / `relay remove` run meanwhile):
    /// links to new URLs, closes those no longer listed.
    pub fn follow(&mut self, urls: Vec<String>) {
        self.links.retain(|link| {
            let keep = urls.contains(&link.url);
            if !keep && let Some(forward) = &link.forward {
                forward.abort();
            }
            keep
        });
        for url in urls {
            if !self.links.iter().any(|l| l.url == url) {
                self.links.push(Link {
                    url,
                    session: None,
                    generation: 0,
                    forward: None,
                    subscribed: BTreeSet::new(),
                    retry_at: Instant::now(),
                    backoff: BACKOFF_MIN,
                });
            }
        }
    }

    /// The next event a relay pushed.
    pub async fn next_live(&mut self) -> Option<Tagged> {
        self.live_rx.recv().await
    }

    /// Runs a full sync round with every connected relay and connects those due.
    pub async fn sync_all(&mut self, opened: &Opened) {
        for i in 0..self.links.len() {
            if self.links[i].session.is_some() {
                self.sync(opened, i).await;
            } else if Instant::now() >= self.links[i].retry_at {
                self.connect(opened, i).await;
            }
        }
    }

    /// LIVE-4a: when the earliest disconnected relay is due for its next attempt, if any.
    pub fn next_retry(&self) -> Option<Instant> {
        self.links
            .iter()
            .filter(|l| l.session.is_none())
            .map(|l| l.retry_at)
            .min()
    }

    /// LIVE-4a: connects (and syncs) the disconnected relays whose retry is due, and nothing
    /// else: connected relays wait for their live events or the next full round.
    pub async fn connect_due(&mut self, opened: &Opened) {
        for i in 0..self.links.len() {
            if self.links[i].session.is_none() && Instant::now() >= self.links[i].retry_at {
                self.connect(opened, i).await;
            }
        }
    }

    async fn connect(&mut self, opened: &Opened, i: usize) {
        let generation = self.sessions + 1;
        let link = &mut self.links[i];
        match connect_pinned(&opened.client, &self.home, &link.url).await {
            Ok((session, pinned_now)) => {
                let Some(mut live) = session.take_live() else {
                    return;
                };
                link.generation = generation;
                let tx = self.live_tx.clone();
                link.forward = Some(tokio::spawn(async move {
                    while let Some(event) = live.recv().await {
                        if tx.send((generation, Some(event))).is_err() {
                            return;
                        }
                    }
                    let _ = tx.send((generation, None));
                }));
                let id = session.server_id().to_string();
                link.session = Some(session);
                self.sessions = generation;
                link.subscribed.clear();
                link.backoff = BACKOFF_MIN;
                let url = link.url.clone();
                self.report.line(
                    "connected",
                    json!({"relay": url, "relay_id": id, "pinned_now": pinned_now}),
                    || format!("{url}: connected (relay id {})", &id[..12]),
                );
                self.sync(opened, i).await;
            }
            Err(e) => self.failed(i, &format!("{e:#}")),
        }
    }

    /// Records a failure: the session (if any) is dropped and retried after the backoff.
    fn failed(&mut self, i: usize, why: &str) {
        let link = &mut self.links[i];
        let was_connected = link.session.take().is_some();
        if let Some(forward) = link.forward.take() {
            forward.abort();
        }
        link.retry_at = Instant::now() + link.backoff;
        let retry = link.backoff.as_secs();
        link.backoff = (link.backoff * 2).min(BACKOFF_MAX);
        let url = link.url.clone();
        let event = if was_connected {
            "disconnected"
        } else {
            "unreachable"
        };
        self.report.line(
            event,
            json!({"relay": url, "error": why, "retry_in_s": retry}),
            || format!("{url}: {event} ({why}); retrying in {retry} s"),
        );
    }

    /// Subscribes, syncs until quiet, subscribes to what that sync made known, and prints
    /// what moved.
    async fn sync(&mut self, opened: &Opened, i: usize) {
        let link = &mut self.links[i];
        let Some(session) = &link.session else { return };
        let mut summary = RelaySummary {
            relay: link.url.clone(),
            ..Default::default()
        };
        let result = async {
            subscribe_all(opened, session, &mut link.subscribed).await?;
            rounds(
                &opened.client,
                &opened.replica,
                session,
                opened.person,
                &mut summary,
            )
            .await?;
            subscribe_all(opened, session, &mut link.subscribed).await
        }
        .await;
        if let Err(e) = result {
            self.failed(i, &format!("{e:#}"));
            return;
        }
        self.record(opened, i);
        if let Some(error) = &summary.pass_on_error {
            let url = summary.relay.clone();
            self.report.line(
                "pass_on_failed",
                json!({"relay": url, "error": error}),
                || format!("{url}: could not pass on to your other devices what was shared with this one: {error}"),
            );
        }
        // Only rounds that moved something are printed (refusals alone repeat every round).
        if summary.pushed + summary.pulled > 0 {
            let url = summary.relay.clone();
            self.report.line(
                "synced",
                json!({"relay": url, "pushed": summary.pushed, "pulled": summary.pulled,
                       "refused": summary.refused, "rejected": summary.rejected,
                       "refusals": summary.refusals, "passed_on": summary.passed_on}),
                || {
                    let mut line = format!(
                        "{url}: pushed {}, received {} (refused by relay {}, rejected here {})",
                        summary.pushed, summary.pulled, summary.refused, summary.rejected
                    );
                    if summary.passed_on > 0 {
                        line.push_str(&format!(
                            "; passed on to all your devices {} shared with this device",
                            summary.passed_on
                        ));
                    }
                    for (reason, n) in crate::commands::sync::refusal_reasons(&summary.refusals) {
                        line.push_str(&format!("; refused {n} x {reason}"));
                    }
                    line
                },
            );
        }
    }

    /// LIVE-7: records that link `i` is in sync now (a failure is reported, not fatal).
    fn record(&self, opened: &Opened, i: usize) {
        let url = &self.links[i].url;
        let recorded =
            crate::sync_state::item_count(opened.client.store().as_ref()).and_then(|items| {
                crate::sync_state::record(&self.home, std::slice::from_ref(url), items)
            });
        if let Err(e) = recorded {
            self.report.line(
                "warning",
                json!({"relay": url, "error": format!("{e:#}")}),
                || format!("{url}: synced, but cannot record the time: {e:#}"),
            );
        }
    }

    /// Stores what a relay pushed (verified by the replica, REP-2); a lag, a parked item or a
    /// re-key is followed by a full round, and a closed session by a reconnection.
    pub async fn live(
        &mut self,
        opened: &mut Opened,
        generation: u64,
        event: Option<LiveEvent>,
    ) -> Result<()> {
        let Some(i) = self
            .links
            .iter()
            .position(|l| l.generation == generation && l.session.is_some())
        else {
            return Ok(());
        };
        let link = &self.links[i];
        let items = match event {
            Some(LiveEvent::Items(items)) => items,
            Some(LiveEvent::Lagged) => {
                self.sync(opened, i).await;
                return Ok(());
            }
            None => {
                self.failed(i, "the relay closed the connection");
                return Ok(());
            }
        };
        let from = match &link.session {
            Some(s) => IndividualId(s.server_id()),
            None => return Ok(()),
        };
        // SYNC-64: an auth op of a subject this link is not subscribed to is a subject just
        // shared with this device: a round subscribes to it and pulls the rest.
        let new_subject = items
            .iter()
            .any(|i| !link.subscribed.contains(&i.subject()));
        let arrivals = match ingest(opened.client.store(), opened.gate(), &from, items) {
            Ok(arrivals) => arrivals,
            Err(e) => {
                self.failed(i, &format!("cannot store what it sent: {e}"));
                return Ok(());
            }
        };
        let parked = arrivals
            .iter()
            .any(|(_, a)| matches!(a, Arrival::Parked | Arrival::Refused(_)));
        let stored = arrivals.iter().any(|(_, a)| matches!(a, Arrival::Stored));
        let rekeyed = !opened.lock().prepare_all()?.is_empty();
        if rekeyed {
            // New seats or keys: every relay gets them at once.
            self.sync_all(opened).await;
        } else if parked || new_subject {
            // Predecessors (or the grant, or the rest of a new subject) come with a full round.
            self.sync(opened, i).await;
        }
        if stored || rekeyed {
            opened.save()?;
            self.record(opened, i);
        }
        Ok(())
    }

    /// LIVE-6: closes every session.
    pub fn close(self) {
        for link in self.links {
            if let Some(forward) = link.forward {
                forward.abort();
            }
            drop(link.session);
        }
    }
}

/// Subscribes `session` to every subject held here or offered by the relay, not yet
/// subscribed (SYNC-91).
async fn subscribe_all(
    opened: &Opened,
    session: &SyncSession,
    subscribed: &mut BTreeSet<SubjectId>,
) -> Result<()> {
    let mut wanted: BTreeSet<SubjectId> = opened.client.store().subjects()?.into_iter().collect();
    wanted.extend(session.collection().await?.iter().map(|o| o.subject));
    let list: Vec<SubjectId> = wanted.difference(subscribed).copied().collect();
    if !list.is_empty() {
        subscribed.extend(session.subscribe(&list).await?);
    }
    Ok(())
}
