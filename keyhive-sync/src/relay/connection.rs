//! One relay connection: handshake, then sealed request dispatch and live pushes
//! (SYNC-30..33, SYNC-38/39).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use keyhive_core::Hash;
use keyhive_core::identity::IndividualId;
use tokio::sync::{broadcast, watch};

use super::Shared;
use super::limits::TokenBucket;
use crate::item::{Item, ItemKind, SubjectId};
use crate::policy::Share;
use crate::protocol::handshake::{ServerHandshake, SessionKeys};
use crate::protocol::message::SubjectOffer;
use crate::protocol::{
    ErrorCode, ErrorFrame, MAX_FRAME_LEN, Message, RequestId, decode_frame, encode_frame,
};
use crate::reconcile::range;
use crate::store::StoreError;

mod push;
mod share_hint;
mod stranger_push;

/// Payload budget per response frame, leaving room for the envelope of the message.
pub(crate) const FRAME_BUDGET: usize = MAX_FRAME_LEN - 16 * 1024;

/// Longest wait for a close frame to be sent to a peer that may have stopped reading.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Why the connection loop stopped.
enum Stop {
    /// The peer went away, the socket failed, or a frame failed authentication (SYNC-39).
    Gone,
}

/// The socket after the handshake: every frame sealed on send and opened on receipt
/// (SYNC-38/39).
struct Wire {
    socket: WebSocket,
    keys: SessionKeys,
}

struct Conn {
    wire: Wire,
    shared: Arc<Shared>,
    id: u64,
    peer: IndividualId,
    /// SYNC-108: the network address the connection counts under (`None`: exempt).
    address: Option<super::address::Address>,
    subscriptions: BTreeSet<SubjectId>,
    frames: TokenBucket,
    bytes: TokenBucket,
    errors: u32,
    /// Created on the first subscription, so unsubscribed connections never lag.
    live: Option<broadcast::Receiver<(u64, Arc<Item>)>>,
}

type LiveEvent = Result<(u64, Arc<Item>), broadcast::error::RecvError>;

async fn next_live(live: &mut Option<broadcast::Receiver<(u64, Arc<Item>)>>) -> LiveEvent {
    match live {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// Sends a handshake frame, in the clear (SYNC-30..33).
async fn send_plain(socket: &mut WebSocket, message: &Message) -> Result<(), Stop> {
    socket
        .send(WsMessage::Binary(encode_frame(message).into()))
        .await
        .map_err(|_| Stop::Gone)
}

async fn plain_error(socket: &mut WebSocket, code: ErrorCode, detail: impl Into<String>) {
    let _ = send_plain(socket, &Message::Error(ErrorFrame::new(None, code, detail))).await;
}

/// SYNC-38: seals and sends one frame.
async fn send(wire: &mut Wire, message: &Message) -> Result<(), Stop> {
    let sealed = wire
        .keys
        .sealer
        .seal(encode_frame(message))
        .map_err(|_| Stop::Gone)?;
    wire.socket
        .send(WsMessage::Binary(sealed.into()))
        .await
        .map_err(|_| Stop::Gone)
}

async fn send_error(
    wire: &mut Wire,
    req: Option<RequestId>,
    code: ErrorCode,
    detail: impl Into<String>,
) -> Result<(), Stop> {
    send(wire, &Message::Error(ErrorFrame::new(req, code, detail))).await
}

/// Runs a connection to completion. Never panics on peer input.
pub(crate) async fn run(
    mut socket: WebSocket,
    shared: Arc<Shared>,
    id: u64,
    address: Option<super::address::Address>,
    mut shutdown: watch::Receiver<bool>,
) {
    // SYNC-95: the whole handshake (its sends included) is bounded by twice the hello
    // timeout, so a peer that stops reading cannot hold the connection either; a late hello
    // still gets its SYNC-33 error first.
    let handshake = tokio::time::timeout(
        shared.config.limits.handshake_timeout.saturating_mul(2),
        handshake_server(&mut socket, &shared),
    )
    .await;
    let Ok(Some((peer, keys))) = handshake else {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(WsMessage::Close(None))).await;
        return;
    };
    let limits = &shared.config.limits;
    let idle_timeout = limits.idle_timeout;
    let mut conn = Conn {
        frames: TokenBucket::new(limits.frames_per_second, limits.burst_frames),
        bytes: TokenBucket::new(limits.bytes_per_second, limits.burst_bytes),
        wire: Wire { socket, keys },
        shared,
        id,
        peer,
        address,
        subscriptions: BTreeSet::new(),
        errors: 0,
        live: None,
    };
    // SYNC-96: checked every quarter of the idle timeout; a ping at every check once half of it
    // passed in silence (so a live peer has at least a quarter to answer); closed after all of
    // it.
    let mut last_heard = tokio::time::Instant::now();
    // A zero period would panic; a zero timeout closes at the first check.
    let mut idle =
        tokio::time::interval((idle_timeout / 4).max(std::time::Duration::from_millis(1)));
    idle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    idle.reset();
    loop {
        tokio::select! {
            incoming = conn.wire.socket.recv() => {
                let Some(Ok(msg)) = incoming else { break };
                last_heard = tokio::time::Instant::now();
                match msg {
                    WsMessage::Binary(bytes) => {
                        if conn.on_sealed(bytes.into()).await.is_err() {
                            break;
                        }
                    }
                    // SYNC-39: after the handshake only sealed binary frames are accepted; a
                    // text frame cannot be authenticated and ends the connection.
                    WsMessage::Text(_) | WsMessage::Close(_) => break,
                    WsMessage::Ping(_) | WsMessage::Pong(_) => {}
                }
            }
            event = next_live(&mut conn.live) => {
                if conn.on_live(event).await.is_err() {
                    break;
                }
            }
            _ = idle.tick() => {
                let silent = last_heard.elapsed();
                if silent >= idle_timeout {
                    tracing::debug!(connection = conn.id, "closing an idle connection");
                    break;
                }
                if silent >= idle_timeout / 2
                    && conn.wire.socket.send(WsMessage::Ping(Default::default())).await.is_err()
                {
                    break;
                }
            }
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
                let _ = send_error(&mut conn.wire, None, ErrorCode::ShuttingDown, "relay is shutting down").await;
                break;
            }
        }
    }
    let _ =
        tokio::time::timeout(CLOSE_TIMEOUT, conn.wire.socket.send(WsMessage::Close(None))).await;
}

/// SYNC-30..33, SYNC-38: returns the authenticated peer and the session keys, or `None` after
/// reporting the failure in the clear.
async fn handshake_server(
    socket: &mut WebSocket,
    shared: &Shared,
) -> Option<(IndividualId, SessionKeys)> {
    let server = ServerHandshake::start(shared.config.identity.public_key());
    send_plain(socket, &Message::Challenge(server.challenge().clone()))
        .await
        .ok()?;
    let timeout = shared.config.limits.handshake_timeout;
    let first = tokio::time::timeout(timeout, socket.recv()).await;
    let bytes = match first {
        Ok(Some(Ok(WsMessage::Binary(bytes)))) => bytes,
        Ok(Some(Ok(_))) => {
            plain_error(socket, ErrorCode::HandshakeFailed, "expected a hello frame").await;
            return None;
        }
        Err(_) => {
            plain_error(socket, ErrorCode::HandshakeFailed, "handshake timed out").await;
            return None;
        }
        Ok(_) => return None,
    };
    let hello = match decode_frame(&bytes) {
        Ok(Message::Hello(hello)) => hello,
        Ok(_) => {
            plain_error(socket, ErrorCode::Unexpected, "expected a hello frame").await;
            return None;
        }
        Err(e) => {
            plain_error(socket, e.code(), e.to_string()).await;
            return None;
        }
    };
    let client_id = hello.client_id;
    match server.accept(&hello, &shared.config.identity) {
        Ok((welcome, keys)) => {
            send_plain(socket, &Message::Welcome(welcome)).await.ok()?;
            Some((IndividualId(client_id), keys))
        }
        Err(e) => {
            plain_error(socket, ErrorCode::HandshakeFailed, e.to_string()).await;
            None
        }
    }
}

impl Conn {
    async fn on_malformed(
        &mut self,
        code: ErrorCode,
        detail: impl Into<String>,
    ) -> Result<(), Stop> {
        self.errors += 1;
        send_error(&mut self.wire, None, code, detail).await?;
        if self.errors > self.shared.config.limits.max_errors {
            return Err(Stop::Gone);
        }
        Ok(())
    }

    /// SYNC-39: a frame that does not open at the expected counter ends the connection
    /// without an answer (the sender is not the authenticated peer, or frames were replayed,
    /// reordered or dropped on the way).
    async fn on_sealed(&mut self, sealed: Vec<u8>) -> Result<(), Stop> {
        match self.wire.keys.opener.open(sealed) {
            Ok(frame) => self.on_frame(&frame).await,
            Err(e) => {
                tracing::debug!(error = %e, "closing connection: sealed frame refused");
                Err(Stop::Gone)
            }
        }
    }

    async fn on_frame(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        let message = match decode_frame(bytes) {
            Ok(m) => m,
            Err(e) => return self.on_malformed(e.code(), e.to_string()).await,
        };
        // SYNC-70: a request over its connection's frame or byte rate, or (SYNC-108) its
        // address's byte rate over all its connections, is held (nothing more is read from the
        // connection) until the buckets refill, for at most MAX_PUSH_DELAY in all; only one
        // that cannot be paid by then is answered RateLimited and not executed. A large upload
        // is paced to the rate instead of failing once it passes the burst.
        let deadline = tokio::time::Instant::now() + push::MAX_PUSH_DELAY;
        let len = bytes.len();
        let shared = self.shared.clone();
        let within = match self.address {
            None => true,
            Some(a) => push::room_before(deadline, || shared.addresses.take_bytes(a, len)).await,
        } && push::room_before(deadline, || self.frames.take_or_wait(1.0)).await
            && push::room_before(deadline, || self.bytes.take_or_wait(len as f64)).await;
        if !within {
            return send_error(
                &mut self.wire,
                message.request_id(),
                ErrorCode::RateLimited,
                "rate limit exceeded; retry later",
            )
            .await;
        }
        match message {
            Message::Push { req, items } => self.on_push(req, items).await,
            Message::Pull { req, hashes } => self.on_pull(req, hashes).await,
            Message::Collection { req } => self.on_collection(req, None).await,
            Message::CollectionSince { req, digest } => {
                self.on_collection(req, Some(blake3::Hash::from(digest)))
                    .await
            }
            Message::Reconcile {
                req,
                subject,
                queries,
            } => self.on_reconcile(req, subject, queries).await,
            Message::Subscribe { req, subjects } => self.on_subscribe(req, subjects).await,
            other => {
                let req = other.request_id();
                self.errors += 1;
                send_error(
                    &mut self.wire,
                    req,
                    ErrorCode::Unexpected,
                    "message not valid from a client here",
                )
                .await
            }
        }
    }

    async fn internal(
        &mut self,
        req: RequestId,
        e: impl std::fmt::Display + Outage,
    ) -> Result<(), Stop> {
        tracing::warn!(error = %e, "relay storage error");
        // SYNC-14: a store that cannot be reached for now is `Unavailable` (retry later);
        // anything else is `Internal`. Either way nothing of the request was acknowledged.
        let (code, detail) = if e.is_outage() {
            (ErrorCode::Unavailable, "storage unavailable; retry later")
        } else {
            (ErrorCode::Internal, "storage error")
        };
        send_error(&mut self.wire, Some(req), code, detail).await
    }

    /// SYNC-42/43/44: serve only items whose subject the requester may pull; others are
    /// omitted exactly like missing ones, so a stranger learns nothing about them.
    async fn on_pull(&mut self, req: RequestId, hashes: Vec<Hash>) -> Result<(), Stop> {
        if hashes.len() > self.shared.config.limits.max_pull_hashes {
            return send_error(
                &mut self.wire,
                Some(req),
                ErrorCode::TooLarge,
                "too many hashes in one pull",
            )
            .await;
        }
        let mut shares: BTreeMap<SubjectId, Share> = BTreeMap::new();
        let mut batch = Vec::new();
        let mut size = 0usize;
        for hash in hashes {
            let item = match self.shared.store.get(&hash) {
                Ok(Some(item)) => item,
                Ok(None) => continue,
                Err(e) => return self.internal(req, e).await,
            };
            let subject = item.subject();
            let share = *shares
                .entry(subject)
                .or_insert_with(|| self.shared.policy.share(&self.peer, &subject));
            // CAP-21, REP-30: part of a subject may be served (its auth ops, or its ops).
            if !share.covers(item.kind()) {
                continue;
            }
            let cost = item.wire_len() + 48;
            if size + cost > FRAME_BUDGET && !batch.is_empty() {
                let items = std::mem::take(&mut batch);
                send(
                    &mut self.wire,
                    &Message::Items {
                        req,
                        items,
                        last: false,
                    },
                )
                .await?;
                size = 0;
            }
            size += cost;
            batch.push(item.into_wire());
        }
        send(
            &mut self.wire,
            &Message::Items {
                req,
                items: batch,
                last: true,
            },
        )
        .await
    }

    /// SYNC-50/51: one round trip offering every subject the requester may pull. The
    /// subjects are gathered on the blocking pool (one store read, STORE-21, and a policy check
    /// per stored subject), not on the async workers every other connection is served on.
    /// SYNC-50..52: the offer, or `OfferUnchanged` when its digest is `since`.
    async fn on_collection(
        &mut self,
        req: RequestId,
        since: Option<blake3::Hash>,
    ) -> Result<(), Stop> {
        let (store, policy, peer) = (
            self.shared.store.clone(),
            self.shared.policy.clone(),
            self.peer,
        );
        let offers =
            match tokio::task::spawn_blocking(move || collection(&*store, &*policy, &peer)).await {
                Ok(Ok(offers)) => offers,
                Ok(Err(e)) => return self.internal(req, e).await,
                Err(e) => return self.internal(req, e).await,
            };
        // `blake3::Hash` compares in constant time.
        if since.is_some_and(|digest| digest == crate::protocol::offer_digest(&offers)) {
            return send(&mut self.wire, &Message::OfferUnchanged { req }).await;
        }
        let mut batches = offers.chunks(OFFERS_PER_FRAME).peekable();
        loop {
            let subjects = batches.next().map(<[_]>::to_vec).unwrap_or_default();
            let last = batches.peek().is_none();
            send(
                &mut self.wire,
                &Message::Offer {
                    req,
                    subjects,
                    last,
                },
            )
            .await?;
            if last {
                return Ok(());
            }
        }
    }

    /// SYNC-22/44: answer one reconciliation round.
    async fn on_reconcile(
        &mut self,
        req: RequestId,
        subject: SubjectId,
        queries: Vec<range::RangeQuery>,
    ) -> Result<(), Stop> {
        if queries.len() > self.shared.config.limits.max_queries {
            return send_error(
                &mut self.wire,
                Some(req),
                ErrorCode::TooLarge,
                "too many range queries",
            )
            .await;
        }
        if queries.iter().any(|q| q.prefix.check().is_err()) {
            return send_error(
                &mut self.wire,
                Some(req),
                ErrorCode::Malformed,
                "malformed range prefix",
            )
            .await;
        }
        let share = self.shared.policy.share(&self.peer, &subject);
        if share == Share::Nothing {
            return send_error(
                &mut self.wire,
                Some(req),
                ErrorCode::Forbidden,
                "no pull access to this subject",
            )
            .await;
        }
        let mut hashes = match self.shared.store.hashes(&subject) {
            Ok(h) => h,
            Err(e) => return self.internal(req, e).await,
        };
        if share != Share::All {
            // CAP-21, REP-30: a device served part of a subject reconciles over that part
            // only: a removed device over its ops (it learns of its removal and nothing of
            // the ciphertext written since), a device in its scope over its auth ops.
            let mut ops = Vec::with_capacity(hashes.len());
            for hash in hashes {
                match self.shared.store.get(&hash) {
                    Ok(Some(item)) if share.covers(item.kind()) => ops.push(hash),
                    Ok(_) => {}
                    Err(e) => return self.internal(req, e).await,
                }
            }
            hashes = ops;
        }
        let answers = range::respond(&hashes, &queries);
        send(&mut self.wire, &Message::ReconcileReply { req, answers }).await
    }

    /// SYNC-60: subscribe to the subjects the requester may pull.
    async fn on_subscribe(&mut self, req: RequestId, subjects: Vec<SubjectId>) -> Result<(), Stop> {
        let max = self.shared.config.limits.max_subscriptions;
        if subjects.len() > max {
            return send_error(
                &mut self.wire,
                Some(req),
                ErrorCode::TooLarge,
                "too many subjects",
            )
            .await;
        }
        if self.live.is_none() {
            self.live = Some(self.shared.live.subscribe());
        }
        let mut accepted = Vec::new();
        for subject in subjects {
            if self.subscriptions.len() >= max && !self.subscriptions.contains(&subject) {
                break;
            }
            // CAP-21: scope subjects stream their auth ops live; a removed device (REP-30)
            // learns of its removal when it syncs, and is not subscribed.
            if matches!(
                self.shared.policy.share(&self.peer, &subject),
                Share::All | Share::AuthOps
            ) {
                self.subscriptions.insert(subject);
                accepted.push(subject);
            }
        }
        send(
            &mut self.wire,
            &Message::Subscribed {
                req,
                subjects: accepted,
            },
        )
        .await
    }

    /// SYNC-61/62: forward new items of subscribed subjects, re-checking pull access; SYNC-64:
    /// and the auth ops of a subject not subscribed that the peer may now be served (a subject
    /// just shared with it), so that it subscribes and pulls it at once.
    async fn on_live(&mut self, first: LiveEvent) -> Result<(), Stop> {
        let mut items = Vec::new();
        let mut size = 0usize;
        let mut next = Some(first);
        while let Some(event) = next.take() {
            match event {
                Ok((origin, item)) => {
                    let subject = item.subject();
                    let wanted = self.subscriptions.contains(&subject)
                        || item.kind() == ItemKind::Auth
                            && (self.shared.policy.pulls_everything(&self.peer)
                                || share_hint::may_share_with(&item, &self.peer));
                    if origin != self.id
                        && wanted
                        && self.shared.policy.may_serve(&self.peer, &item)
                    {
                        size += item.wire_len() + 48;
                        items.push(item.to_wire());
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    send_error(
                        &mut self.wire,
                        None,
                        ErrorCode::Lagged,
                        "live items dropped; resynchronise",
                    )
                    .await?;
                }
                Err(broadcast::error::RecvError::Closed) => {
                    self.live = None;
                    break;
                }
            }
            if size < FRAME_BUDGET / 2 {
                let Some(live) = self.live.as_mut() else {
                    break;
                };
                next = match live.try_recv() {
                    Ok(v) => Some(Ok(v)),
                    Err(broadcast::error::TryRecvError::Lagged(n)) => {
                        Some(Err(broadcast::error::RecvError::Lagged(n)))
                    }
                    Err(_) => None,
                };
            }
        }
        if items.is_empty() {
            return Ok(());
        }
        send(&mut self.wire, &Message::Live { items }).await
    }
}

/// Most subjects offered in one `Offer` frame (SYNC-51).
const OFFERS_PER_FRAME: usize = 10_000;

/// SYNC-50: every subject `peer` is served anything of, sorted: the policy's
/// `reachable(peer)` (with an empty summary when nothing of it is stored), and every stored
/// subject it may pull, with its summary. When the policy's list is complete (SYNC-50a) only
/// those summaries are read (STORE-24); otherwise every stored summary, in one pass
/// (STORE-21), and the policy is asked about each subject.
fn collection(
    store: &dyn crate::store::Store,
    policy: &dyn crate::policy::AccessPolicy,
    peer: &IndividualId,
) -> Result<Vec<SubjectOffer>, StoreError> {
    let mut reachable: BTreeSet<SubjectId> = policy.reachable(peer).into_iter().collect();
    let mut offers = Vec::new();
    if policy.reachable_is_complete(peer) {
        let listed: Vec<SubjectId> = reachable.iter().copied().collect();
        for (subject, summary) in store.summaries_of(&listed)? {
            reachable.remove(&subject);
            offers.push((subject, summary));
        }
    } else {
        for (subject, summary) in store.summaries()? {
            if reachable.remove(&subject) || policy.may_pull(peer, &subject) {
                offers.push((subject, summary));
            }
        }
    }
    // What is reached but not stored is offered empty.
    offers.extend(
        reachable
            .into_iter()
            .map(|s| (s, crate::reconcile::summary::Summary::default())),
    );
    offers.sort_unstable_by_key(|(s, _)| *s);
    Ok(offers
        .into_iter()
        .map(|(subject, summary)| SubjectOffer {
            subject,
            count: summary.count,
            fingerprint: summary.fingerprint(),
        })
        .collect())
}

/// SYNC-14: whether a failure means the store cannot be reached for now.
trait Outage {
    fn is_outage(&self) -> bool;
}

impl Outage for StoreError {
    fn is_outage(&self) -> bool {
        self.is_unavailable()
    }
}

impl Outage for super::writer::WriteError {
    fn is_outage(&self) -> bool {
        match self {
            super::writer::WriteError::Store(e) => e.is_unavailable(),
            super::writer::WriteError::Abandoned => false,
        }
    }
}

impl Outage for tokio::task::JoinError {
    fn is_outage(&self) -> bool {
        false
    }
}
