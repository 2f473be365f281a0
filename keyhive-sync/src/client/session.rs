//! One authenticated protocol connection from the connecting side (client or peer): the
//! handshake (SYNC-30..34), then sealed frames both ways (SYNC-38/39).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use keyhive_core::identity::IndividualId;

use futures_util::{SinkExt, StreamExt};
use keyhive_core::Hash;
use keyhive_core::crypto::signing::{PublicKey, SigningKey};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::item::{Item, SubjectId};
use crate::protocol::frame::{FrameError, MAX_WS_MESSAGE_LEN, decode_frame, encode_frame};
use crate::protocol::handshake::{ClientHandshake, HandshakeError, SessionKeys};
use crate::protocol::message::SubjectOffer;
use crate::protocol::transport::{Opener, TAG_LEN};
use crate::protocol::{ErrorCode, ErrorFrame, Message, PushOutcome, RequestId};
use crate::reconcile::range::{self, AnswerError};

/// Frame budget for requests (same as the relay's response budget).
const FRAME_BUDGET: usize = crate::protocol::MAX_FRAME_LEN - 16 * 1024;
/// Hashes per pull request (the relay's default bound).
const PULL_CHUNK: usize = 4_096;
/// Range queries per reconciliation request (the relay's default bound).
const QUERY_CHUNK: usize = 512;
/// A request fails with [`SessionError::Timeout`] when no response frame arrives for this long.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Most frames accepted in one response (a 4,096-hash pull of maximal items needs ~1,000).
const MAX_RESPONSE_FRAMES: usize = 2_048;
/// Live events buffered before further ones are dropped and `Lagged` is reported.
const LIVE_BUFFER: usize = 1_024;

/// SYNC-98: default bound on TCP connect, TLS and the WebSocket upgrade.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
/// SYNC-98: default bound on the authenticated handshake after the upgrade.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// SYNC-98: how long each phase of connecting may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectTimeouts {
    /// TCP connect, TLS and the WebSocket upgrade.
    pub connect: std::time::Duration,
    /// Challenge, hello and welcome.
    pub handshake: std::time::Duration,
}

impl Default for ConnectTimeouts {
    fn default() -> Self {
        ConnectTimeouts {
            connect: CONNECT_TIMEOUT,
            handshake: HANDSHAKE_TIMEOUT,
        }
    }
}

impl ConnectTimeouts {
    /// Both phases bounded by `connect` and `handshake`.
    pub fn new(connect: std::time::Duration, handshake: std::time::Duration) -> Self {
        ConnectTimeouts { connect, handshake }
    }
}

/// The phase of connecting that ran out of time (SYNC-98).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectPhase {
    /// TCP connect, TLS or the WebSocket upgrade.
    Connect,
    /// The authenticated handshake.
    Handshake,
}

impl std::fmt::Display for ConnectPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConnectPhase::Connect => "connecting",
            ConnectPhase::Handshake => "the handshake",
        })
    }
}

/// Why connecting failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// TCP or WebSocket failure (the source says which).
    #[error("transport error")]
    Transport(#[source] std::io::Error),
    /// The relay URL's host is not a name TLS can verify a certificate against (SYNC-37).
    #[error("the relay's host is not a valid TLS server name")]
    InvalidServerName,
    /// The peer sent a frame other than the handshake message expected next.
    #[error("handshake protocol violation: expected {expected}")]
    UnexpectedMessage {
        /// The handshake message expected.
        expected: &'static str,
    },
    /// A handshake frame did not decode.
    #[error("malformed handshake frame")]
    MalformedFrame(#[source] FrameError),
    /// The peer closed the connection before the handshake ended.
    #[error("the connection closed during the handshake")]
    ClosedDuringHandshake,
    /// The handshake did not verify.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The server refused us with an error frame.
    #[error("server refused the handshake ({:?}): {}", .0.code, .0.detail)]
    Refused(ErrorFrame),
    /// TLS failed for a `wss://` URL: e.g. the server certificate is not trusted or does not
    /// name the host (SYNC-37).
    #[error("TLS error")]
    Tls(#[source] rustls::Error),
    /// SYNC-98: the server did not answer in time (down, stalled or unreachable).
    #[error("the server did not answer within {after:?} ({phase}); is the relay up and reachable?")]
    Timeout {
        /// The phase that ran out of time.
        phase: ConnectPhase,
        /// Its bound.
        after: std::time::Duration,
    },
}

/// A TCP connection to `url`'s host from the local address `local`.
async fn tcp_from(
    url: &str,
    local: std::net::IpAddr,
) -> Result<tokio::net::TcpStream, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let request = url.into_client_request()?;
    let uri = request.uri();
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("wss") {
            443
        } else {
            80
        });
    let io =
        |detail: &str| std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, detail.to_owned());
    let remote = tokio::net::lookup_host((host.as_str(), port))
        .await?
        .find(|a| a.is_ipv4() == local.is_ipv4())
        .ok_or_else(|| io("the relay has no address of the local address's family"))?;
    let socket = if local.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(std::net::SocketAddr::new(local, 0))?;
    Ok(socket.connect(remote).await?)
}

/// Classifies a WebSocket connect error, separating TLS failures (SYNC-37).
fn connect_error(e: tokio_tungstenite::tungstenite::Error) -> ConnectError {
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::error::TlsError;
    match e {
        WsError::Tls(TlsError::Rustls(tls)) => ConnectError::Tls(*tls),
        WsError::Tls(TlsError::InvalidDnsName) => ConnectError::InvalidServerName,
        WsError::Io(io) => {
            // tokio-rustls reports handshake failures as I/O errors wrapping a rustls::Error.
            match io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                Some(tls) => ConnectError::Tls(tls.clone()),
                None => ConnectError::Transport(io),
            }
        }
        other => ConnectError::Transport(std::io::Error::other(other)),
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The connection is gone.
    #[error("connection closed")]
    Disconnected,
    /// The peer sent no response frame for [`REQUEST_TIMEOUT`].
    #[error("request timed out")]
    Timeout,
    /// The peer answered with an error frame.
    #[error("peer error {:?}: {}", .0.code, .0.detail)]
    Remote(ErrorFrame),
    /// The peer answered a request with a message of another kind.
    #[error("unexpected answer from peer: expected {expected}")]
    UnexpectedAnswer {
        /// The answer expected.
        expected: &'static str,
    },
    /// The peer acknowledged a different number of pushed items than were sent (SYNC-41).
    #[error("the peer acknowledged {got} of {sent} pushed items")]
    PushAckCount {
        /// Items pushed in the frame.
        sent: usize,
        /// Outcomes in its acknowledgement.
        got: usize,
    },
    /// One response ran over the most frames a response may have (2,048).
    #[error("response has more than {MAX_RESPONSE_FRAMES} frames")]
    TooManyFrames,
    /// A reconciliation answer was malformed (SYNC-23).
    #[error("malformed reconciliation answer")]
    Reconcile(#[from] AnswerError),
    /// Reconciliation did not end within its round bound (SYNC-23).
    #[error("reconciliation does not terminate")]
    ReconcileDiverges,
}

/// Something the relay pushed without being asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveEvent {
    /// New items of subscribed subjects (hashes recomputed locally, SYNC-3).
    Items(Vec<Item>),
    /// Live items were dropped (by the relay or this buffer): resynchronise (SYNC-62).
    Lagged,
}

/// Bytes moved over a session, counted at the frame level (WebSocket headers excluded).
#[derive(Debug, Default)]
pub struct WireStats {
    /// Frame bytes sent.
    pub sent: AtomicU64,
    /// Frame bytes received.
    pub received: AtomicU64,
    /// Frames sent.
    pub frames_sent: AtomicU64,
    /// Frames received.
    pub frames_received: AtomicU64,
}

impl WireStats {
    /// `(bytes sent, bytes received)` so far.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        )
    }
}

type Pending = Arc<Mutex<HashMap<RequestId, mpsc::UnboundedSender<Message>>>>;

fn lock(p: &Pending) -> MutexGuard<'_, HashMap<RequestId, mpsc::UnboundedSender<Message>>> {
    // The map holds only channel senders; a panic elsewhere cannot leave it inconsistent.
    p.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An authenticated connection. Requests may be issued concurrently; responses are matched by
/// request id. Dropping the session closes the connection.
pub struct Session {
    server_id: PublicKey,
    out: mpsc::Sender<Vec<u8>>,
    pending: Pending,
    live: Mutex<Option<mpsc::Receiver<LiveEvent>>>,
    next_req: AtomicU32,
    stats: Arc<WireStats>,
    closed: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    /// REP-33: what the peer answered of this device's own items of subjects it was removed
    /// from.
    pub(crate) own: super::answered::Ledger,
    /// This device's id.
    device: IndividualId,
    /// SYNC-104a: the peer's words when it said this key used up its stranger quota; from then
    /// on only grants to other devices are pushed on this session.
    over_quota: Mutex<Option<String>>,
    /// SYNC-104a: how often this session sent a whole push again after a grant got in.
    quota_probes: AtomicU32,
    /// SYNC-52: the last offer the peer sent on this session, with its digest, so that a
    /// collection that finds it unchanged downloads nothing but its answer.
    offer: Mutex<Option<(blake3::Hash, Arc<Vec<SubjectOffer>>)>>,
    /// SYNC-53: set when the peer sent a whole offer, until the sync that asked stores it.
    offer_fresh: AtomicBool,
    /// SYNC-52: whether the peer may be asked `CollectionSince` (false once it could not
    /// decode one: a peer built before the rule).
    offer_digests: AtomicBool,
    /// SYNC-52: the outstanding `CollectionSince`, which a peer built before the rule answers
    /// with `Error{req: none, Malformed}` (it cannot read the request id).
    undecodable: Undecodable,
}

/// SYNC-52: the request a `Malformed` error without a request id answers, if any.
type Undecodable = Arc<Mutex<Option<RequestId>>>;

fn undecodable_slot(slot: &Undecodable) -> MutexGuard<'_, Option<RequestId>> {
    // Poisoned only by a panic in another holder; the value is replaced whole.
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// SYNC-104a: most times a session sends a whole push again after the peer said the quota is
/// used up and a grant then got in.
const QUOTA_PROBES: u32 = 2;

impl Drop for Session {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Session {
    /// Connects to `url` (`ws://host:port/sync` or `wss://...`), runs the handshake with `key`,
    /// and checks the server's identity against `expected_server` when given (SYNC-34).
    /// `wss://` servers must present a certificate valid under the webpki roots (SYNC-37).
    pub async fn connect(
        url: &str,
        key: &SigningKey,
        expected_server: Option<PublicKey>,
    ) -> Result<Session, ConnectError> {
        Self::connect_tls(
            url,
            key,
            expected_server,
            crate::tls::default_client_config(),
        )
        .await
    }

    /// [`Session::connect`], verifying a `wss://` server with `tls` instead of the webpki roots
    /// (e.g. [`crate::tls::client_config_trusting`] a self-signed certificate). `tls` is unused
    /// for `ws://` URLs.
    pub async fn connect_tls(
        url: &str,
        key: &SigningKey,
        expected_server: Option<PublicKey>,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Session, ConnectError> {
        Self::connect_with(url, key, expected_server, tls, ConnectTimeouts::default()).await
    }

    /// [`Session::connect_tls`] with explicit per-phase `timeouts` (SYNC-98): each phase that
    /// overruns fails with [`ConnectError::Timeout`].
    pub async fn connect_with(
        url: &str,
        key: &SigningKey,
        expected_server: Option<PublicKey>,
        tls: Arc<rustls::ClientConfig>,
        timeouts: ConnectTimeouts,
    ) -> Result<Session, ConnectError> {
        Self::connect_via(url, key, expected_server, tls, timeouts, None).await
    }

    /// [`Session::connect`] from the local address `local` (the relay counts connections,
    /// items and bytes per network address, SYNC-108): e.g. a second loopback address.
    pub async fn connect_from(
        url: &str,
        key: &SigningKey,
        expected_server: Option<PublicKey>,
        local: std::net::IpAddr,
    ) -> Result<Session, ConnectError> {
        Self::connect_via(
            url,
            key,
            expected_server,
            crate::tls::default_client_config(),
            ConnectTimeouts::default(),
            Some(local),
        )
        .await
    }

    async fn connect_via(
        url: &str,
        key: &SigningKey,
        expected_server: Option<PublicKey>,
        tls: Arc<rustls::ClientConfig>,
        timeouts: ConnectTimeouts,
        local: Option<std::net::IpAddr>,
    ) -> Result<Session, ConnectError> {
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_WS_MESSAGE_LEN))
            .max_frame_size(Some(MAX_WS_MESSAGE_LEN));
        let connector = Some(tokio_tungstenite::Connector::Rustls(tls));
        let connecting = async move {
            match local {
                None => {
                    tokio_tungstenite::connect_async_tls_with_config(
                        url,
                        Some(config),
                        true,
                        connector,
                    )
                    .await
                }
                Some(local) => {
                    let stream = tcp_from(url, local).await?;
                    tokio_tungstenite::client_async_tls_with_config(
                        url,
                        stream,
                        Some(config),
                        connector,
                    )
                    .await
                }
            }
        };
        let (ws, _) = tokio::time::timeout(timeouts.connect, connecting)
            .await
            .map_err(|_| ConnectError::Timeout {
                phase: ConnectPhase::Connect,
                after: timeouts.connect,
            })?
            .map_err(connect_error)?;
        let (mut sink, mut stream) = ws.split();
        let stats = Arc::new(WireStats::default());
        let handshake = tokio::time::timeout(
            timeouts.handshake,
            handshake_client(&mut sink, &mut stream, &stats, key, expected_server),
        );
        let (
            server_id,
            SessionKeys {
                mut sealer,
                mut opener,
            },
        ) = handshake.await.map_err(|_| ConnectError::Timeout {
            phase: ConnectPhase::Handshake,
            after: timeouts.handshake,
        })??;

        let (out, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
        let pending: Pending = Arc::default();
        let (live_tx, live_rx) = mpsc::channel(LIVE_BUFFER);
        let closed = Arc::new(AtomicBool::new(false));

        // SYNC-38: the writer alone seals, so frames take counter values in sending order.
        let writer = tokio::spawn(async move {
            while let Some(frame) = out_rx.recv().await {
                let Ok(sealed) = sealer.seal(frame) else {
                    break;
                };
                if sink.send(WsMessage::Binary(sealed.into())).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let undecodable = Undecodable::default();
        let reader = {
            let pending = pending.clone();
            let stats = stats.clone();
            let closed = closed.clone();
            let undecodable = undecodable.clone();
            tokio::spawn(async move {
                let routes = Routes {
                    pending: &pending,
                    undecodable: &undecodable,
                };
                read_loop(&mut stream, &mut opener, routes, &live_tx, &stats).await;
                closed.store(true, Ordering::Release);
                lock(&pending).clear();
            })
        };
        Ok(Session {
            server_id,
            out,
            pending,
            live: Mutex::new(Some(live_rx)),
            next_req: AtomicU32::new(1),
            stats,
            closed,
            tasks: vec![writer, reader],
            own: super::answered::Ledger::default(),
            device: IndividualId(key.public_key()),
            over_quota: Mutex::new(None),
            quota_probes: AtomicU32::new(0),
            offer: Mutex::new(None),
            offer_fresh: AtomicBool::new(false),
            offer_digests: AtomicBool::new(true),
            undecodable,
        })
    }

    /// SYNC-104a: the peer's words about this key's used-up quota, if it said so.
    fn quota_note(&self) -> MutexGuard<'_, Option<String>> {
        self.over_quota
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The authenticated identity of the other side.
    pub fn server_id(&self) -> PublicKey {
        self.server_id
    }

    /// Frame-level byte counters.
    pub fn stats(&self) -> &WireStats {
        &self.stats
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Takes the receiver of live events (once).
    pub fn take_live(&self) -> Option<mpsc::Receiver<LiveEvent>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Sends a request and gathers every frame of its response.
    async fn request(
        &self,
        build: impl FnOnce(RequestId) -> Message,
    ) -> Result<Vec<Message>, SessionError> {
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel();
        lock(&self.pending).insert(req, tx);
        if self.is_closed() {
            lock(&self.pending).remove(&req);
            return Err(SessionError::Disconnected);
        }
        let frame = encode_frame(&build(req));
        count_sealed(&self.stats, frame.len());
        if self.out.send(frame).await.is_err() {
            lock(&self.pending).remove(&req);
            return Err(SessionError::Disconnected);
        }
        let mut frames = Vec::new();
        loop {
            let next = tokio::time::timeout(REQUEST_TIMEOUT, rx.recv()).await;
            let Ok(next) = next else {
                lock(&self.pending).remove(&req);
                return Err(SessionError::Timeout);
            };
            let Some(message) = next else {
                return Err(SessionError::Disconnected);
            };
            if let Message::Error(e) = message {
                lock(&self.pending).remove(&req);
                return Err(SessionError::Remote(e));
            }
            let done = message.is_final();
            frames.push(message);
            // A hostile peer cannot grow one response without bound.
            if frames.len() > MAX_RESPONSE_FRAMES {
                lock(&self.pending).remove(&req);
                return Err(SessionError::TooManyFrames);
            }
            if done {
                lock(&self.pending).remove(&req);
                return Ok(frames);
            }
        }
    }

    /// SYNC-40/41: pushes items (split into frames) and returns one outcome per item.
    pub async fn push(&self, items: &[Item]) -> Result<Vec<PushOutcome>, SessionError> {
        let mut outcomes = Vec::with_capacity(items.len());
        let mut start = 0;
        while start < items.len() {
            let mut end = start;
            let mut size = 0;
            while end < items.len()
                && (end == start || size + items[end].wire_len() + 48 <= FRAME_BUDGET)
                && end - start < 4_096
            {
                size += items[end].wire_len() + 48;
                end += 1;
            }
            let wire = items[start..end].iter().map(Item::to_wire).collect();
            let frames = match self.request(|req| Message::Push { req, items: wire }).await {
                // SYNC-104: the relay holds no more for this key; what is left is refused with
                // its words, and the session goes on (pulls, and a grant that ends this key's
                // being a stranger, SYNC-104a, in a later round).
                Err(e) => return Err(e),
                Ok(frames) => frames,
            };
            match frames.into_iter().next() {
                Some(Message::PushAck { outcomes: o, .. }) if o.len() == end - start => {
                    outcomes.extend(o)
                }
                Some(Message::PushAck { outcomes: o, .. }) => {
                    return Err(SessionError::PushAckCount {
                        sent: end - start,
                        got: o.len(),
                    });
                }
                _ => {
                    return Err(SessionError::UnexpectedAnswer {
                        expected: "push ack",
                    });
                }
            }
            start = end;
        }
        Ok(outcomes)
    }

    /// [`Session::push`] as a syncing device uses it. SYNC-104: when the peer answers that this
    /// key used up its stranger quota, what is left is refused with the peer's words and the
    /// session goes on (pulls, and a grant that ends this key's being a stranger, SYNC-104a).
    pub(crate) async fn push_or_hold(
        &self,
        items: &[Item],
    ) -> Result<Vec<PushOutcome>, SessionError> {
        // SYNC-104a: once the peer said this key used up its stranger quota, only the auth ops
        // of the subjects this push grants to another device (the grant that ends its being a
        // stranger, and its causal past) are sent; the rest is refused here with the peer's
        // words (pushing it would only collect errors, SYNC-13, until the peer hangs up).
        let held_back: Option<String> = self.quota_note().clone();
        let send: Vec<usize> = match &held_back {
            None => (0..items.len()).collect(),
            Some(_) => {
                let sharing: Vec<_> = items
                    .iter()
                    .filter(|i| crate::policy::stranger::grants_to_another_device(i, &self.device))
                    .map(Item::subject)
                    .collect();
                (0..items.len())
                    .filter(|&i| {
                        items[i].kind() == crate::item::ItemKind::Auth
                            && sharing.contains(&items[i].subject())
                    })
                    .collect()
            }
        };
        let latched = held_back.is_some();
        let mut outcomes = vec![PushOutcome::Refused(held_back.unwrap_or_default()); items.len()];
        if send.is_empty() {
            return Ok(outcomes);
        }
        let sent: Vec<Item> = send.iter().map(|&i| items[i].clone()).collect();
        match self.push(&sent).await {
            Ok(answers) => {
                // A grant got in: this key may no longer be a stranger, so the next push is
                // sent whole, at most QUOTA_PROBES times a session (a grant the capability
                // rules refuse does not end it, and each probe that finds the quota still used
                // up costs an error, SYNC-13).
                if latched && self.quota_probes.fetch_add(1, Ordering::Relaxed) < QUOTA_PROBES {
                    *self.quota_note() = None;
                }
                for (i, answer) in send.into_iter().zip(answers) {
                    outcomes[i] = answer;
                }
            }
            Err(SessionError::Remote(frame)) if frame.code == ErrorCode::QuotaExceeded => {
                // Frames answered before the refused one are not told apart from it: they are
                // offered again later, and the peer answers `Duplicate`.
                for i in send {
                    outcomes[i] = PushOutcome::Refused(frame.detail.clone());
                }
                *self.quota_note() = Some(frame.detail);
            }
            Err(e) => return Err(e),
        }
        Ok(outcomes)
    }

    /// SYNC-42/43: pulls items by hash. Items whose hash was not asked for are dropped;
    /// missing or unauthorised ones are simply absent.
    pub async fn pull(&self, hashes: &[Hash]) -> Result<Vec<Item>, SessionError> {
        let mut out = Vec::new();
        for chunk in hashes.chunks(PULL_CHUNK) {
            let wanted: std::collections::HashSet<Hash> = chunk.iter().copied().collect();
            let frames = self
                .request(|req| Message::Pull {
                    req,
                    hashes: chunk.to_vec(),
                })
                .await?;
            for frame in frames {
                let Message::Items { items, .. } = frame else {
                    return Err(SessionError::UnexpectedAnswer { expected: "items" });
                };
                for wire in items {
                    if let Ok(item) = Item::from_wire(wire)
                        && wanted.contains(&item.hash())
                    {
                        out.push(item);
                    }
                }
            }
        }
        Ok(out)
    }

    /// SYNC-50..53: every subject the server lets us pull, with its root summary. After the
    /// first on a session (or from the first, with an offer stored by an earlier client,
    /// SYNC-53), the request names the digest of the offer held, and an unchanged
    /// offer is not sent again (an idle sync of 3,562 subjects downloaded 174 KB of offer
    /// twice, and a background link every 30 s).
    pub async fn collection(&self) -> Result<Arc<Vec<SubjectOffer>>, SessionError> {
        let held = match self.offer_digests.load(Ordering::Relaxed) {
            true => self.held_offer().clone(),
            false => None,
        };
        let frames = match &held {
            Some((digest, _)) => {
                let digest = *digest.as_bytes();
                let answer = self
                    .request(|req| {
                        *undecodable_slot(&self.undecodable) = Some(req);
                        Message::CollectionSince { req, digest }
                    })
                    .await;
                undecodable_slot(&self.undecodable).take();
                match answer {
                    // A peer built before SYNC-52: `Collection` for the rest of the session.
                    Err(SessionError::Remote(e)) if e.code == ErrorCode::Malformed => {
                        self.offer_digests.store(false, Ordering::Relaxed);
                        self.request(|req| Message::Collection { req }).await?
                    }
                    answer => answer?,
                }
            }
            None => self.request(|req| Message::Collection { req }).await?,
        };
        if let (Some((_, offer)), [Message::OfferUnchanged { .. }]) = (held, frames.as_slice()) {
            return Ok(offer);
        }
        let mut out = Vec::new();
        for frame in frames {
            let Message::Offer { subjects, .. } = frame else {
                return Err(SessionError::UnexpectedAnswer { expected: "offer" });
            };
            out.extend(subjects);
        }
        let offer = Arc::new(out);
        *self.held_offer() = Some((crate::protocol::offer_digest(&offer), Arc::clone(&offer)));
        self.offer_fresh.store(true, Ordering::Relaxed);
        Ok(offer)
    }

    /// SYNC-53: takes `offer` (the one this peer sent an earlier client, from the store) as the
    /// offer held, unless this session holds one already: the first collection then names its
    /// digest.
    pub(crate) fn seed_offer(&self, offer: Vec<SubjectOffer>) {
        let mut held = self.held_offer();
        if held.is_none() {
            *held = Some((crate::protocol::offer_digest(&offer), Arc::new(offer)));
        }
    }

    /// SYNC-53: the offer the peer sent whole since this was last asked, to be stored.
    pub(crate) fn take_fresh_offer(&self) -> Option<Arc<Vec<SubjectOffer>>> {
        if !self.offer_fresh.swap(false, Ordering::Relaxed) {
            return None;
        }
        self.held_offer()
            .as_ref()
            .map(|(_, offer)| Arc::clone(offer))
    }

    fn held_offer(&self) -> MutexGuard<'_, Option<(blake3::Hash, Arc<Vec<SubjectOffer>>)>> {
        // Poisoned only by a panic in another holder; the value is replaced whole.
        self.offer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// SYNC-22/23: reconciles one subject against our sorted hash list; returns the hashes
    /// we need and the hashes the other side lacks.
    pub async fn reconcile(
        &self,
        subject: SubjectId,
        sorted: &[Hash],
    ) -> Result<Reconciled, SessionError> {
        let mut queries = range::initial_queries(sorted);
        let mut result = Reconciled::default();
        while !queries.is_empty() {
            result.rounds += 1;
            let mut next = Vec::new();
            for chunk in queries.chunks(QUERY_CHUNK) {
                let frames = self
                    .request(|req| Message::Reconcile {
                        req,
                        subject,
                        queries: chunk.to_vec(),
                    })
                    .await?;
                let Some(Message::ReconcileReply { answers, .. }) = frames.into_iter().next()
                else {
                    return Err(SessionError::UnexpectedAnswer {
                        expected: "reconcile reply",
                    });
                };
                let out = range::process(sorted, chunk, &answers)?;
                result.need.extend(out.need);
                result.have.extend(out.have);
                next.extend(out.next);
            }
            queries = next;
            if result.rounds > 70 {
                return Err(SessionError::ReconcileDiverges);
            }
        }
        Ok(result)
    }

    /// SYNC-60: subscribes to live items; returns the subjects accepted.
    pub async fn subscribe(&self, subjects: &[SubjectId]) -> Result<Vec<SubjectId>, SessionError> {
        let mut accepted = Vec::new();
        for chunk in subjects.chunks(1_024) {
            let frames = self
                .request(|req| Message::Subscribe {
                    req,
                    subjects: chunk.to_vec(),
                })
                .await?;
            match frames.into_iter().next() {
                Some(Message::Subscribed { subjects, .. }) => accepted.extend(subjects),
                _ => {
                    return Err(SessionError::UnexpectedAnswer {
                        expected: "subscribed",
                    });
                }
            }
        }
        Ok(accepted)
    }

    /// Seals and sends an arbitrary frame body (tests of hostile input from an authenticated
    /// peer).
    #[doc(hidden)]
    pub async fn send_raw(&self, frame: Vec<u8>) -> Result<(), SessionError> {
        count_sealed(&self.stats, frame.len());
        self.out
            .send(frame)
            .await
            .map_err(|_| SessionError::Disconnected)
    }
}

/// The outcome of reconciling one subject.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Hashes the other side has and we lack.
    pub need: Vec<Hash>,
    /// Hashes we have and the other side lacks.
    pub have: Vec<Hash>,
    /// Round trips used.
    pub rounds: u32,
}

/// Counts one frame as sent; `len` is the unsealed frame, so sealed frames add [`TAG_LEN`].
fn count_sealed(stats: &WireStats, len: usize) {
    count_sent(stats, len + TAG_LEN);
}

fn count_sent(stats: &WireStats, len: usize) {
    stats.sent.fetch_add(len as u64, Ordering::Relaxed);
    stats.frames_sent.fetch_add(1, Ordering::Relaxed);
}

type WsStream = futures_util::stream::SplitStream<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
>;

type WsSink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    WsMessage,
>;

/// SYNC-30..34 from the connecting side: the server's identity and the session keys.
async fn handshake_client(
    sink: &mut WsSink,
    stream: &mut WsStream,
    stats: &WireStats,
    key: &SigningKey,
    expected_server: Option<PublicKey>,
) -> Result<(PublicKey, SessionKeys), ConnectError> {
    let challenge = match next_message(stream, stats).await? {
        Message::Challenge(c) => c,
        Message::Error(e) => return Err(ConnectError::Refused(e)),
        _ => {
            return Err(ConnectError::UnexpectedMessage {
                expected: "challenge",
            });
        }
    };
    // SYNC-34: an unexpected server is refused before anything is signed.
    let (hello, pending) = ClientHandshake::answer(&challenge, key, expected_server.as_ref())?;
    let frame = encode_frame(&Message::Hello(hello));
    count_sent(stats, frame.len());
    sink.send(WsMessage::Binary(frame.into()))
        .await
        .map_err(connect_error)?;
    let welcome = match next_message(stream, stats).await? {
        Message::Welcome(w) => w,
        Message::Error(e) => return Err(ConnectError::Refused(e)),
        _ => {
            return Err(ConnectError::UnexpectedMessage {
                expected: "welcome",
            });
        }
    };
    Ok((challenge.server_id, pending.confirm(&welcome)?))
}

async fn next_message(stream: &mut WsStream, stats: &WireStats) -> Result<Message, ConnectError> {
    loop {
        match stream.next().await {
            Some(Ok(WsMessage::Binary(bytes))) => {
                stats
                    .received
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                stats.frames_received.fetch_add(1, Ordering::Relaxed);
                return decode_frame(&bytes).map_err(ConnectError::MalformedFrame);
            }
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
            Some(Ok(_)) => {
                return Err(ConnectError::UnexpectedMessage {
                    expected: "a binary handshake frame",
                });
            }
            Some(Err(e)) => return Err(connect_error(e)),
            None => {
                return Err(ConnectError::ClosedDuringHandshake);
            }
        }
    }
}

/// SYNC-39: reads sealed frames until the connection ends or a frame fails to open at the
/// expected counter (injected, tampered, replayed, reordered or after a dropped frame), which
/// ends the session: every pending request then fails with [`SessionError::Disconnected`].
/// Where the reader hands answers: by request id, and (SYNC-52) the request an error without
/// one answers.
struct Routes<'a> {
    pending: &'a Pending,
    undecodable: &'a Undecodable,
}

async fn read_loop(
    stream: &mut WsStream,
    opener: &mut Opener,
    routes: Routes<'_>,
    live: &mpsc::Sender<LiveEvent>,
    stats: &WireStats,
) {
    let pending = routes.pending;
    let mut lagged = false;
    while let Some(Ok(msg)) = stream.next().await {
        let bytes = match msg {
            WsMessage::Binary(bytes) => bytes,
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            // Text cannot be authenticated (SYNC-39); Close ends the session.
            _ => break,
        };
        stats
            .received
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        stats.frames_received.fetch_add(1, Ordering::Relaxed);
        let frame = match opener.open(bytes.into()) {
            Ok(frame) => frame,
            Err(e) => {
                tracing::debug!(error = %e, "closing session: sealed frame refused");
                break;
            }
        };
        let Ok(message) = decode_frame(&frame) else {
            tracing::debug!("dropping malformed frame from peer");
            continue;
        };
        let event = match message {
            Message::Live { items } => LiveEvent::Items(
                items
                    .into_iter()
                    .filter_map(|w| Item::from_wire(w).ok())
                    .collect(),
            ),
            Message::Error(ErrorFrame {
                req: None,
                code,
                detail,
            }) => {
                if code == ErrorCode::Lagged {
                    LiveEvent::Lagged
                } else {
                    // SYNC-52: a peer that cannot decode `CollectionSince` answers this way.
                    // (The slot is released before the pending map is locked.)
                    let waiting = match code {
                        ErrorCode::Malformed => undecodable_slot(routes.undecodable).take(),
                        _ => None,
                    };
                    if let Some(req) = waiting
                        && let Some(tx) = lock(pending).get(&req)
                    {
                        let _ = tx.send(Message::Error(ErrorFrame::new(Some(req), code, detail)));
                    } else {
                        tracing::debug!(?code, %detail, "peer error");
                    }
                    continue;
                }
            }
            other => {
                if let Some(req) = other.request_id()
                    && let Some(tx) = lock(pending).get(&req)
                {
                    let _ = tx.send(other);
                }
                continue;
            }
        };
        if lagged {
            if live.try_send(LiveEvent::Lagged).is_ok() {
                lagged = false;
            } else {
                continue;
            }
        }
        if live.try_send(event).is_err() {
            lagged = true;
        }
    }
}
