//! The relay server (`specs/sync.md` §6): axum + WebSocket, verify-before-store via
//! [`AccessPolicy`], serve-only-what-may-be-pulled, no decryption keys. Peers use the same
//! server for direct peer-to-peer sync.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keyhive_core::crypto::signing::{PublicKey, SigningKey};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use crate::item::Item;
use crate::policy::AccessPolicy;
use crate::protocol::frame::MAX_WS_MESSAGE_LEN;
use crate::store::Store;

mod address;
mod connection;
pub mod fanout;
mod forward;
mod guard;
pub mod limits;
mod listen;
mod quota;
mod stranger_budget;
mod tls_listener;
mod writer;

pub use forward::Forwarding;
pub use limits::{ADMISSION_SLICE, AddressLimits, Limits, StrangerQuota};
pub use listen::{LISTEN_BACKLOG, bind};
pub use quota::AbuseCounts;
pub use tls_listener::TLS_HANDSHAKE_TIMEOUT;

/// The HTTP path of the WebSocket endpoint.
pub const SYNC_PATH: &str = "/sync";
/// SYNC-113: the path a load balancer or supervisor asks whether this relay serves.
pub const HEALTH_PATH: &str = "/health";

/// Live fan-out capacity before slow subscribers lag (SYNC-62).
const LIVE_CAPACITY: usize = 4_096;

/// Relay configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RelayConfig {
    /// The relay's own device key: proves its identity in the handshake (SYNC-32).
    pub identity: SigningKey,
    /// Per-connection limits.
    pub limits: Limits,
    /// SYNC-35: when set, the relay serves `wss://` with this configuration instead of `ws://`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl RelayConfig {
    /// Default limits with this identity.
    pub fn new(identity: SigningKey) -> Self {
        RelayConfig {
            identity,
            limits: Limits::default(),
            tls: None,
        }
    }

    /// Default limits, identified by `device`'s signing key.
    pub fn for_device(device: &keyhive_core::identity::Device) -> Self {
        Self::new(device.signing_key().clone())
    }

    /// Replaces the limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// SYNC-35: serve `wss://` with `tls` (see [`crate::tls::server_config`]).
    pub fn with_tls(mut self, tls: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(tls);
        self
    }
}

pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) policy: Arc<dyn AccessPolicy>,
    pub(crate) config: RelayConfig,
    pub(crate) live: broadcast::Sender<(u64, Arc<Item>)>,
    /// SYNC-104, SYNC-105: stranger quotas and per-key item rates.
    pub(crate) guards: Arc<quota::Guards>,
    /// SYNC-108: per-address connection counts, rates and stranger usage.
    pub(crate) addresses: Arc<address::Addresses>,
    /// SYNC-111: strangers' per-key budgets and shared admission slots.
    pub(crate) strangers: Arc<stranger_budget::StrangerBudget>,
    /// SYNC-112: writes every connection's admitted items, several pushes per transaction.
    pub(crate) writer: Arc<writer::Writer>,
    next_id: AtomicU64,
    shutdown: watch::Receiver<bool>,
    /// Each connection task holds a clone; shutdown waits until all are dropped.
    alive: mpsc::Sender<()>,
}

/// A running relay. Dropping the handle also stops the relay, without waiting for its
/// connections; call [`RelayHandle::shutdown`] for a graceful stop.
pub struct RelayHandle {
    local_addr: SocketAddr,
    tls: bool,
    live: broadcast::Sender<(u64, Arc<Item>)>,
    id: PublicKey,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    drained: mpsc::Receiver<()>,
    guards: Arc<quota::Guards>,
    addresses: Arc<address::Addresses>,
    strangers: Arc<stranger_budget::StrangerBudget>,
    /// RELAY-8: brought up to date once every connection has closed.
    store: Arc<dyn Store>,
    policy: Arc<dyn AccessPolicy>,
}

impl RelayHandle {
    /// The bound address (useful when binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The WebSocket URL of this relay on its bound address: `wss://` when serving TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.local_addr, SYNC_PATH)
    }

    /// Whether this relay serves TLS (SYNC-35).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The relay's identity key.
    pub fn id(&self) -> PublicKey {
        self.id
    }

    /// SYNC-104, SYNC-105, SYNC-108, SYNC-111: what the relay refused or held back so far to
    /// protect itself.
    pub fn abuse_counts(&self) -> AbuseCounts {
        let mut counts = self.guards.counts();
        counts.address_connections_refused = self.addresses.refused_connections();
        counts.stranger_pushes_held = self.strangers.held();
        counts
    }

    /// Fans out items that reached the store by another path (e.g. this relay's own sync with
    /// another relay) to live subscribers, exactly as if they had been pushed (SYNC-63).
    pub fn announce(&self, items: impl IntoIterator<Item = Arc<Item>>) {
        for item in items {
            // Origin 0 is never a connection id, so no subscriber is skipped.
            let _ = self.live.send((0, item));
        }
    }

    /// Graceful shutdown: stop accepting, tell every connection (`ShuttingDown` error, then a
    /// close frame), wait for all connection tasks to finish, then let the policy bring its
    /// start snapshot up to date (RELAY-8, [`AccessPolicy::checkpoint`]).
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        let result = match self.server.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        };
        // `recv` returns None once every connection's sender is dropped.
        while self.drained.recv().await.is_some() {}
        let (store, policy) = (self.store.clone(), self.policy.clone());
        if let Err(e) = tokio::task::spawn_blocking(move || policy.checkpoint(&*store)).await {
            tracing::warn!(error = %e, "the relay snapshot was not written at shutdown");
        }
        result
    }
}

/// The relay server.
pub struct Relay;

impl Relay {
    /// Serves the sync protocol on `listener` until [`RelayHandle::shutdown`]: `wss://` when
    /// `config.tls` is set (SYNC-35), `ws://` otherwise.
    pub fn serve(
        listener: TcpListener,
        store: Arc<dyn Store>,
        policy: Arc<dyn AccessPolicy>,
        config: RelayConfig,
    ) -> std::io::Result<RelayHandle> {
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        Self::serve_on(listener, store, policy, config, live, watch::channel(false))
    }

    /// SYNC-100..103: serves like [`Relay::serve`], one of several relays on a store they share
    /// (e.g. [`crate::store::postgres::PostgresStore`], which is also its `feed`). `policy` holds
    /// the store's state up to `cursor`: read [`fanout::Feed::head`] *before* loading the policy
    /// from the store. Before every authorisation decision, on the store's change signal and
    /// every [`fanout::POLL`], the relay applies what other relays committed since, and
    /// announces it to its own subscribers.
    pub fn serve_shared(
        listener: TcpListener,
        store: Arc<dyn Store>,
        feed: Arc<dyn fanout::Feed>,
        cursor: u64,
        policy: Arc<dyn AccessPolicy>,
        config: RelayConfig,
    ) -> std::io::Result<RelayHandle> {
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        let me = keyhive_core::identity::IndividualId(config.identity.public_key());
        let view = Arc::new(fanout::SharedView::new(
            policy,
            feed,
            store.clone(),
            live.clone(),
            me,
            cursor,
        ));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        tokio::spawn(fanout::follow(view.clone(), shutdown_rx.clone()));
        Self::serve_on(
            listener,
            store,
            view,
            config,
            live,
            (shutdown_tx, shutdown_rx),
        )
    }

    fn serve_on(
        listener: TcpListener,
        store: Arc<dyn Store>,
        policy: Arc<dyn AccessPolicy>,
        config: RelayConfig,
        live: broadcast::Sender<(u64, Arc<Item>)>,
        (shutdown_tx, shutdown_rx): (watch::Sender<bool>, watch::Receiver<bool>),
    ) -> std::io::Result<RelayHandle> {
        let local_addr = listener.local_addr()?;
        let (alive, drained) = mpsc::channel(1);
        let id = config.identity.public_key();
        let tls = config.tls.clone();
        let tls_enabled = tls.is_some();
        let max_handshakes = config.limits.max_connections;
        // SYNC-97: one count of every accepted connection, from accept until it closes.
        let connections = Arc::new(Semaphore::new(config.limits.max_connections));
        let upgrade_timeout = config.limits.upgrade_timeout;
        let tls_handshake_timeout = config.limits.tls_handshake_timeout;
        let guards = Arc::new(quota::Guards::new(
            config.limits.stranger_quota,
            config.limits.items_per_second,
            config.limits.burst_items,
        ));
        let addresses = Arc::new(address::Addresses::new(config.limits.per_address.clone()));
        let strangers = Arc::new(stranger_budget::StrangerBudget::new(
            (
                config.limits.stranger_checks_per_second,
                config.limits.stranger_burst_checks,
            ),
            (
                config.limits.all_strangers_checks_per_second,
                config.limits.all_strangers_burst_checks,
            ),
            config.limits.stranger_admissions,
        ));
        let (handle_store, handle_policy) = (store.clone(), policy.clone());
        let writer = writer::Writer::new(store.clone(), policy.clone());
        let shared = Arc::new(Shared {
            store,
            policy,
            writer,
            config,
            live: live.clone(),
            guards: guards.clone(),
            addresses: addresses.clone(),
            strangers: strangers.clone(),
            next_id: AtomicU64::new(1),
            shutdown: shutdown_rx.clone(),
            alive,
        });
        let app = Router::new()
            .route(SYNC_PATH, get(upgrade))
            .route(HEALTH_PATH, get(health))
            .with_state(shared)
            .into_make_service_with_connect_info::<guard::Accepted>();
        let listener_addresses = addresses.clone();
        let mut stop = shutdown_rx.clone();
        let stopped = async move {
            let _ = stop.wait_for(|v| *v).await;
        };
        let server = match tls {
            None => tokio::spawn(async move {
                let listener = guard::GuardedListener::new(
                    listener,
                    connections,
                    listener_addresses,
                    upgrade_timeout,
                );
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            }),
            Some(tls) => {
                let listener = tls_listener::TlsListener::spawn(
                    listener,
                    tls,
                    max_handshakes,
                    tls_handshake_timeout,
                    shutdown_rx,
                )?;
                let listener = guard::GuardedListener::new(
                    listener,
                    connections,
                    listener_addresses,
                    upgrade_timeout,
                );
                tokio::spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stopped)
                        .await
                })
            }
        };
        Ok(RelayHandle {
            local_addr,
            tls: tls_enabled,
            live,
            id,
            shutdown: shutdown_tx,
            server,
            drained,
            guards,
            addresses,
            strangers,
            store: handle_store,
            policy: handle_policy,
        })
    }
}

/// SYNC-113: `200` and `{"status":"serving","relay_id":HEX}` while this relay accepts syncs,
/// `503` and `{"status":"shutting down"}` once it stops. It says nothing about what the relay
/// holds. The connection is not upgraded, so SYNC-95's timeout closes it like any other that
/// does not upgrade, and it counts toward the connection limits (SYNC-72, SYNC-108).
async fn health(State(shared): State<Arc<Shared>>) -> Response {
    if *shared.shutdown.borrow() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            r#"{"status":"shutting down"}"#,
        )
            .into_response();
    }
    let body = format!(
        r#"{{"status":"serving","relay_id":"{}"}}"#,
        shared.config.identity.public_key()
    );
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(accepted): ConnectInfo<guard::Accepted>,
    ws: WebSocketUpgrade,
) -> Response {
    // SYNC-95: the upgrade request arrived in time; the handshake timeout (SYNC-33) and the
    // idle timeout (SYNC-96) apply from here. The connection's slot (SYNC-72, SYNC-97) is held
    // by its stream until it closes.
    accepted.upgraded();
    let address = accepted.address;
    if *shared.shutdown.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let alive = shared.alive.clone();
    let shutdown = shared.shutdown.clone();
    ws.max_message_size(MAX_WS_MESSAGE_LEN)
        .max_frame_size(MAX_WS_MESSAGE_LEN)
        .on_upgrade(move |socket| async move {
            connection::run(socket, shared, id, address, shutdown).await;
            drop(alive);
        })
}
