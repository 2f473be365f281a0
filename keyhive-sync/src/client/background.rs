//! The background client: local store, immediate local writes, and one task per relay or peer
//! link that syncs, pushes and subscribes, reconnecting with backoff (SYNC-90..SYNC-94).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keyhive_core::crypto::signing::{PublicKey, SigningKey};
use keyhive_core::identity::IndividualId;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use super::answered::Taken;
use super::session::{ConnectError, LiveEvent, Session};
use super::sync::{
    SyncError, SyncReport, ingest, stored, sync_once, sync_once_skipping, sync_subjects,
};
use crate::item::{Item, SubjectId};
use crate::policy::{AccessPolicy, Share};
use crate::store::{Store, StoreError};

/// SYNC-92: first reconnect delay.
pub const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// SYNC-92: longest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// SYNC-92: a connected link runs a full sync this often, picking up new grants.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(30);
/// Local items queued for links before a slow link falls back to a full resync.
const LOCAL_QUEUE: usize = 16_384;

/// SYNC-86: announces items stored beside the client (a replica's local writes, grants,
/// revocations, key-agreement updates and entry points) to every live link, which pushes
/// them at once instead of at the next full sync. It feeds the client's bounded queue of new
/// items (a link that falls behind runs a full sync, SYNC-94); announcing with no link
/// running does nothing.
#[derive(Clone, Debug)]
pub struct Outbox {
    local: broadcast::Sender<(u64, Arc<Item>)>,
}

impl crate::replica::Announce for Outbox {
    /// Announces `items`, already stored, as local writes, in dependency order (whatever
    /// names an item first, ADM-n): a link may push them in several batches, and a relay
    /// refuses a change before the op that names it. Items stored later are announced later.
    fn announce(&self, items: &[Item]) {
        let mut ordered = items.to_vec();
        crate::admission::apply_order(&mut ordered);
        for item in ordered {
            // No receivers is fine: no link is running.
            let _ = self.local.send((0, Arc::new(item)));
        }
    }
}

/// A device's sync client over its local store.
pub struct Client {
    key: SigningKey,
    store: Arc<dyn Store>,
    policy: Arc<dyn AccessPolicy>,
    /// Newly stored items, tagged with the link they came from (0 = local write).
    local: broadcast::Sender<(u64, Arc<Item>)>,
    next_link: AtomicU64,
    /// Verifies `wss://` servers (SYNC-37); webpki roots unless replaced.
    tls: Arc<rustls::ClientConfig>,
    /// REP-33: per peer, what it took of this device's own items of subjects it was removed
    /// from (the peer does not show it; see `answered`), loaded from the store (STORE-22) the
    /// first time the peer is met.
    taken: std::sync::Mutex<HashMap<PublicKey, Taken>>,
}

impl Client {
    /// A client for the device with signing key `key`. `policy` validates every item
    /// received from a peer before it is stored (SYNC-82).
    /// `wss://` servers are verified against the webpki roots (SYNC-37).
    pub fn new(key: SigningKey, store: Arc<dyn Store>, policy: Arc<dyn AccessPolicy>) -> Arc<Self> {
        Self::new_with_tls(key, store, policy, crate::tls::default_client_config())
    }

    /// [`Client::new`], verifying `wss://` servers with `tls` instead of the webpki roots (e.g.
    /// [`crate::tls::client_config_trusting`] a self-signed relay certificate).
    pub fn new_with_tls(
        key: SigningKey,
        store: Arc<dyn Store>,
        policy: Arc<dyn AccessPolicy>,
        tls: Arc<rustls::ClientConfig>,
    ) -> Arc<Self> {
        let (local, _) = broadcast::channel(LOCAL_QUEUE);
        Arc::new(Client {
            key,
            store,
            policy,
            local,
            next_link: AtomicU64::new(1),
            tls,
            taken: std::sync::Mutex::default(),
        })
    }

    /// A client for `device` (its signing key authenticates every session).
    pub fn for_device(
        device: &keyhive_core::identity::Device,
        store: Arc<dyn Store>,
        policy: Arc<dyn AccessPolicy>,
    ) -> Arc<Self> {
        Self::new(device.signing_key().clone(), store, policy)
    }

    /// This device's id.
    pub fn id(&self) -> IndividualId {
        IndividualId(self.key.public_key())
    }

    /// The local store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Opens an authenticated session to a relay or peer at `url`, whatever its id.
    pub async fn connect(&self, url: &str) -> Result<Session, ConnectError> {
        self.connect_to(url, None).await
    }

    /// Opens an authenticated session to `url`, refusing it unless the server proves the id
    /// `expected` when given (SYNC-34).
    pub async fn connect_to(
        &self,
        url: &str,
        expected: Option<PublicKey>,
    ) -> Result<Session, ConnectError> {
        let mut session = Session::connect_tls(url, &self.key, expected, self.tls.clone()).await?;
        self.remember(&mut session);
        Ok(session)
    }

    /// REP-33: lets `session` remember, and know, what its peer took over earlier sessions,
    /// of this client and, through the store (STORE-22), of earlier ones; SYNC-53: and the
    /// offer the peer sent last (STORE-23).
    fn remember(&self, session: &mut Session) {
        let peer = session.server_id();
        let mut all = self
            .taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let taken = all
            .entry(peer)
            .or_insert_with(|| {
                let held = self.store.peer_taken(peer.as_bytes()).unwrap_or_else(|e| {
                    // Only costs pushing those items once more.
                    tracing::warn!(error = %e, "cannot read what this peer took before");
                    Vec::new()
                });
                Arc::new(std::sync::Mutex::new(held.into_iter().collect()))
            })
            .clone();
        session.own.share_taken(taken);
        drop(all);
        // SYNC-53: the offer this peer sent last, as an earlier client stored it.
        match self.store.peer_offer(peer.as_bytes()) {
            Ok(Some(bytes)) => match super::offer_cache::decode(&bytes) {
                Some(offer) => session.seed_offer(offer),
                None => tracing::warn!(
                    "the stored offer of this peer is damaged; asking the whole offer"
                ),
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the stored offer of this peer"),
        }
    }

    /// One full sync over `session` (collection + reconciliation + pull + push).
    pub async fn sync_once(&self, session: &Session) -> Result<SyncReport, SyncError> {
        let (report, fresh) = sync_once(session, &self.store, self.policy.as_ref()).await?;
        self.announce(0, fresh);
        Ok(report)
    }

    /// SYNC-90: stores items locally (durably, for a durable store) and returns without
    /// touching the network; every link pushes them in the background, or on reconnect.
    pub fn write(&self, items: Vec<Item>) -> Result<Vec<bool>, StoreError> {
        let fresh = self.store.put(&items)?;
        let new: Vec<Item> = items
            .into_iter()
            .zip(fresh.iter())
            .filter_map(|(item, is_new)| is_new.then_some(item))
            .collect();
        self.announce(0, new);
        Ok(fresh)
    }

    /// Every item newly stored by this client (local writes and items received from links),
    /// tagged with its origin (0 = local write or `sync_once`). A relay that syncs with
    /// another relay through a `Client` forwards these to [`crate::relay::RelayHandle::announce`].
    pub fn new_items(&self) -> broadcast::Receiver<(u64, Arc<Item>)> {
        self.local.subscribe()
    }

    /// SYNC-86: the outbox a replica (`Replica::connect_outbox`) announces its local writes
    /// through, so that every link pushes them at once.
    pub fn outbox(&self) -> Outbox {
        Outbox {
            local: self.local.clone(),
        }
    }

    fn announce(&self, origin: u64, items: Vec<Item>) {
        for item in items {
            // No receivers is fine: no link is running.
            let _ = self.local.send((origin, Arc::new(item)));
        }
    }

    /// SYNC-91: keeps this client in sync with `url` in the background until the link is
    /// stopped. Several links may run at once (several relays, or peers).
    pub fn add_link(self: &Arc<Self>, url: impl Into<String>, expected: Option<PublicKey>) -> Link {
        let id = self.next_link.fetch_add(1, Ordering::Relaxed);
        let (status_tx, status) = watch::channel(LinkStatus::default());
        let (stop_tx, stop) = watch::channel(false);
        let client = self.clone();
        let url = url.into();
        let task = tokio::spawn(async move {
            client.run_link(id, url, expected, status_tx, stop).await;
        });
        Link {
            status,
            stop: stop_tx,
            task,
        }
    }

    async fn run_link(
        self: Arc<Self>,
        id: u64,
        url: String,
        expected: Option<PublicKey>,
        status: watch::Sender<LinkStatus>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut backoff = BACKOFF_MIN;
        loop {
            if *stop.borrow() {
                return;
            }
            // Subscribe to local writes before syncing so nothing written meanwhile is missed.
            let local_rx = self.local.subscribe();
            let result =
                match Session::connect_tls(&url, &self.key, expected, self.tls.clone()).await {
                    Ok(mut session) => {
                        self.remember(&mut session);
                        backoff = BACKOFF_MIN;
                        self.serve_link(id, &session, local_rx, &status, &mut stop)
                            .await
                    }
                    Err(e) => {
                        // E.g. a peer relay proving another id than the one expected (SYNC-34).
                        tracing::warn!(%url, error = %e, "link cannot connect");
                        Err(e.to_string())
                    }
                };
            status.send_modify(|s| {
                s.connected = false;
                if let Err(e) = &result {
                    s.last_error = Some(e.clone());
                    s.failures += 1;
                }
            });
            if *stop.borrow() {
                return;
            }
            // SYNC-92: exponential backoff with up to 50% random jitter.
            let jitter = rand::RngExt::random_range(
                &mut keyhive_core::crypto::csprng(),
                0..=backoff.as_millis() as u64 / 2,
            );
            let delay = backoff + Duration::from_millis(jitter);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Subscribes to every local and offered subject not yet subscribed.
    async fn subscribe_all(
        &self,
        session: &Session,
        subscribed: &mut BTreeSet<SubjectId>,
    ) -> Result<(), String> {
        // REP-2b: a device peer is told only of the subjects it may be served.
        let device = super::sync::peer_device(session, self.policy.as_ref());
        let mut wanted: BTreeSet<SubjectId> = self
            .store
            .subjects()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|s| {
                super::sync::shown(self.policy.as_ref(), device.as_ref(), s) != Share::Nothing
            })
            .collect();
        let offers = session.collection().await.map_err(|e| e.to_string())?;
        wanted.extend(offers.iter().map(|o| o.subject));
        let list: Vec<SubjectId> = wanted.difference(subscribed).copied().collect();
        if !list.is_empty() {
            let accepted = session.subscribe(&list).await.map_err(|e| e.to_string())?;
            subscribed.extend(accepted);
        }
        Ok(())
    }

    async fn resync(
        &self,
        id: u64,
        session: &Session,
        status: &watch::Sender<LinkStatus>,
        closed: &mut BTreeSet<SubjectId>,
    ) -> Result<(), String> {
        let (report, fresh) =
            sync_once_skipping(session, &self.store, self.policy.as_ref(), closed)
                .await
                .map_err(|e| e.to_string())?;
        closed.extend(report.closed.iter().copied());
        self.announce(id, fresh);
        status.send_modify(|s| {
            s.syncs += 1;
            s.pushed += report.pushed as u64;
            s.received += report.pulled as u64;
            s.last_report = Some(report);
        });
        Ok(())
    }

    /// SYNC-64: subscribes to `subjects` (just shared with this device, or new at the peer
    /// relay) and reconciles them alone; a subject the peer does not accept a subscription for
    /// (one this device was removed from, REP-30) is reconciled all the same, and offered again
    /// by the next periodic sync.
    async fn sync_new_subjects(
        &self,
        id: u64,
        session: &Session,
        status: &watch::Sender<LinkStatus>,
        subjects: &BTreeSet<SubjectId>,
        subscribed: &mut BTreeSet<SubjectId>,
    ) -> Result<(), String> {
        let list: Vec<SubjectId> = subjects.iter().copied().collect();
        let accepted = session.subscribe(&list).await.map_err(|e| e.to_string())?;
        subscribed.extend(accepted);
        let (report, fresh) = sync_subjects(session, &self.store, self.policy.as_ref(), subjects)
            .await
            .map_err(|e| e.to_string())?;
        self.announce(id, fresh);
        status.send_modify(|s| {
            s.pushed += report.pushed as u64;
            s.received += report.pulled as u64;
        });
        Ok(())
    }

    /// One connected period of a link. Returns `Ok` on stop, `Err` on disconnection.
    async fn serve_link(
        &self,
        id: u64,
        session: &Session,
        mut local_rx: broadcast::Receiver<(u64, Arc<Item>)>,
        status: &watch::Sender<LinkStatus>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let mut live = session.take_live().ok_or("live events already taken")?;
        // Subscribe before the full sync, so nothing stored meanwhile is missed (SYNC-91).
        let mut subscribed: BTreeSet<SubjectId> = BTreeSet::new();
        // Local-only subjects this peer refused; retried on reconnect (SYNC-81).
        let mut closed: BTreeSet<SubjectId> = BTreeSet::new();
        self.subscribe_all(session, &mut subscribed).await?;
        self.resync(id, session, status, &mut closed).await?;
        // Subjects the peer learned from that sync (ours, pushed just now) accept a
        // subscription only now.
        self.subscribe_all(session, &mut subscribed).await?;
        let mut refresh = tokio::time::interval(RESYNC_INTERVAL);
        refresh.tick().await;
        status.send_modify(|s| {
            s.connected = true;
            s.server = Some(session.server_id());
        });
        let from = IndividualId(session.server_id());
        let device = super::sync::peer_device(session, self.policy.as_ref());
        loop {
            tokio::select! {
                event = local_rx.recv() => {
                    let mut batch = Vec::new();
                    let mut lagged = false;
                    let mut next = Some(event);
                    while let Some(event) = next.take() {
                        match event {
                            Ok((origin, item)) => if origin != id { batch.push((*item).clone()) },
                            Err(broadcast::error::RecvError::Lagged(_)) => lagged = true,
                            Err(broadcast::error::RecvError::Closed) => return Ok(()),
                        }
                        if batch.len() < 1_024 {
                            next = match local_rx.try_recv() {
                                Ok(v) => Some(Ok(v)),
                                Err(broadcast::error::TryRecvError::Lagged(n)) => Some(Err(broadcast::error::RecvError::Lagged(n))),
                                Err(_) => None,
                            };
                        }
                    }
                    if lagged {
                        self.resync(id, session, status, &mut closed).await?;
                    }
                    // REP-2b: a device peer is sent only what it may be served.
                    if let Some(peer) = &device {
                        batch.retain(|item| self.policy.may_serve(peer, item));
                    }
                    // The peer admits an item only after what names it (ADM-n).
                    crate::admission::apply_order(&mut batch);
                    let fresh: Vec<SubjectId> = batch.iter().map(Item::subject).filter(|s| !subscribed.contains(s)).collect::<BTreeSet<_>>().into_iter().collect();
                    if !batch.is_empty() {
                        let outcomes = session.push_or_hold(&batch).await.map_err(|e| e.to_string())?;
                        let ok = outcomes.iter().filter(|o| matches!(o, crate::protocol::PushOutcome::Stored | crate::protocol::PushOutcome::Duplicate)).count();
                        status.send_modify(|s| { s.pushed += ok as u64; s.refused += (outcomes.len() - ok) as u64; });
                    }
                    if !fresh.is_empty() {
                        session.subscribe(&fresh).await.map_err(|e| e.to_string())?;
                        subscribed.extend(fresh);
                    }
                }
                event = live.recv() => match event {
                    Some(LiveEvent::Items(items)) => {
                        // SYNC-64: an auth op of a subject not subscribed here is a subject
                        // just shared with this device (or its peer relay): subscribe and pull it
                        // now, not at the next periodic sync.
                        let new_subjects: BTreeSet<SubjectId> = items.iter().map(Item::subject).filter(|s| !subscribed.contains(s)).collect();
                        let arrivals = ingest(&self.store, self.policy.as_ref(), &from, items).map_err(|e| e.to_string())?;
                        let fresh = stored(arrivals);
                        let n = fresh.len() as u64;
                        self.announce(id, fresh);
                        status.send_modify(|s| s.received += n);
                        if !new_subjects.is_empty() {
                            self.sync_new_subjects(id, session, status, &new_subjects, &mut subscribed).await?;
                        }
                    }
                    Some(LiveEvent::Lagged) => self.resync(id, session, status, &mut closed).await?,
                    None => return Err("connection closed".into()),
                },
                _ = refresh.tick() => {
                    // SYNC-92: periodic full sync picks up newly granted subjects.
                    self.subscribe_all(session, &mut subscribed).await?;
                    self.resync(id, session, status, &mut closed).await?;
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }
}

/// The observable state of a link.
#[derive(Debug, Default, Clone)]
pub struct LinkStatus {
    /// Whether the link is connected and synced.
    pub connected: bool,
    /// The peer's authenticated id, once known.
    pub server: Option<PublicKey>,
    /// Full syncs completed.
    pub syncs: u64,
    /// Items pushed and acknowledged.
    pub pushed: u64,
    /// Items refused by the peer.
    pub refused: u64,
    /// Items received and stored.
    pub received: u64,
    /// Connection attempts or sessions that failed.
    pub failures: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// The last full sync's report.
    pub last_report: Option<SyncReport>,
}

/// A running background link.
pub struct Link {
    status: watch::Receiver<LinkStatus>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Link {
    /// The current status.
    pub fn status(&self) -> LinkStatus {
        self.status.borrow().clone()
    }

    /// Waits until `pred` holds for the status.
    pub async fn wait_for(&mut self, pred: impl FnMut(&LinkStatus) -> bool) -> LinkStatus {
        if let Ok(s) = self.status.wait_for(pred).await {
            return s.clone();
        }
        self.status.borrow().clone()
    }

    /// Stops the link and waits for its task.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
