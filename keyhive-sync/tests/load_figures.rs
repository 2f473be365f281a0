//! Figures for README (issue 16 #5): a legitimate sync's latency and the process's RSS while
//! 1,000 authenticated clients push and pull, and while 5,000 idle or half-open connections
//! are held open (re-opened as the relay closes them). Relay and load in one process, on
//! loopback; measured, never asserted as a time limit. Run
//! `cargo test --release -p keyhive-sync --test load_figures -- --ignored --nocapture --test-threads=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod figures;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{item, items};
use figures::{median, rss_mib};
use keyhive_core::crypto::signing::SigningKey;
use keyhive_sync::client::Session;
use keyhive_sync::policy::AllowAll;
use keyhive_sync::protocol::PushOutcome;
use keyhive_sync::relay::{Limits, Relay, RelayConfig, RelayHandle};
use keyhive_sync::{Item, RedbStore, Store, SubjectId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

const SAMPLES: usize = 30;

/// A relay on a redb store in `dir`, every item allowed (the figures are about connections
/// and transport; capability checks have their own figures), with `limits`.
async fn relay(dir: &tempfile::TempDir, limits: Limits) -> RelayHandle {
    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(dir.path().join("relay.redb")).expect("store"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let config = RelayConfig::new(SigningKey::generate()).with_limits(limits);
    Relay::serve(listener, store, Arc::new(AllowAll), config).expect("serve")
}

/// Why a legitimate sync did not complete (connect, handshake or session error).
type Refused = Box<dyn std::error::Error + Send + Sync>;

/// One legitimate sync: connect (handshake), list the collection, push 10 new items and pull
/// them back. `Err` with the reason when the relay refused or dropped it.
async fn legit_sync(url: &str, key: &SigningKey, round: u64) -> Result<Duration, Refused> {
    let subject = SubjectId(key.public_key());
    let new = items(key, subject, round * 10..round * 10 + 10);
    let hashes: Vec<_> = new.iter().map(Item::hash).collect();
    let started = Instant::now();
    let session = Session::connect(url, key, None).await?;
    session.collection().await?;
    let outcomes = session.push(&new).await?;
    let pulled = session.pull(&hashes).await?;
    let took = started.elapsed();
    assert!(outcomes.iter().all(|o| matches!(o, PushOutcome::Stored)));
    assert_eq!(pulled.len(), new.len());
    Ok(took)
}

/// What `SAMPLES` legitimate syncs saw.
struct Samples {
    /// Median of the syncs that completed (zero if none did).
    median: Duration,
    /// How many were refused or dropped, and the first reason.
    failed: usize,
    first_failure: Option<Refused>,
    /// Peak process RSS meanwhile.
    rss: f64,
}

async fn samples(url: &str, key: &SigningKey, first_round: u64) -> Samples {
    let mut took = Vec::new();
    let (mut failed, mut first_failure) = (0, None);
    let mut rss: f64 = 0.0;
    for round in 0..SAMPLES as u64 {
        match legit_sync(url, key, first_round + round).await {
            Ok(t) => took.push(t),
            Err(e) => {
                failed += 1;
                first_failure.get_or_insert(e);
            }
        }
        rss = rss.max(rss_mib());
    }
    Samples {
        median: if took.is_empty() {
            Duration::ZERO
        } else {
            median(took)
        },
        failed,
        first_failure,
        rss,
    }
}

impl std::fmt::Display for Samples {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "median {:?}", self.median)?;
        if let Some(e) = &self.first_failure {
            write!(f, ", {} of {SAMPLES} failed (first: {e})", self.failed)?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures for README; run with --ignored --nocapture"]
async fn legitimate_sync_while_1000_clients_push_and_pull() {
    const CLIENTS: usize = 1_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut limits = Limits::default();
    limits.max_connections = CLIENTS + 64;
    let relay = relay(&dir, limits).await;
    let url = relay.url();
    let legit = SigningKey::generate();
    let rss_idle = rss_mib();
    let idle = samples(&url, &legit, 0).await;
    assert_eq!(idle.failed, 0, "an idle relay serves every sync: {idle}");

    // 1,000 clients, each authenticated with its own key (from loopback, exempt from the
    // per-address limits like clients at 1,000 addresses), connected in batches of 50; then
    // each pushes one item on its own subject and pulls it back, once a second.
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let mut sessions = Vec::new();
    for batch in 0..CLIENTS / 50 {
        let mut connecting = Vec::new();
        for _ in 0..50 {
            let url = url.clone();
            connecting.push(tokio::spawn(async move {
                let key = SigningKey::generate();
                let session = Session::connect(&url, &key, None).await.expect("connect");
                (key, session)
            }));
        }
        for c in connecting {
            sessions.push(c.await.expect("connect task"));
        }
        assert_eq!(sessions.len(), (batch + 1) * 50);
    }
    let connected_rss = rss_mib();
    let mut clients = Vec::new();
    for (n, (key, session)) in sessions.into_iter().enumerate() {
        let (stop, ops) = (stop.clone(), ops.clone());
        clients.push(tokio::spawn(async move {
            let subject = SubjectId(key.public_key());
            // Spread the clients over the second.
            tokio::time::sleep(Duration::from_millis((n % 1_000) as u64)).await;
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                let it = item(&key, subject, round, 256);
                let outcomes = session.push(std::slice::from_ref(&it)).await;
                let pulled = session.pull(&[it.hash()]).await;
                if outcomes.is_ok() && pulled.is_ok_and(|p| p.len() == 1) {
                    ops.fetch_add(2, Ordering::Relaxed);
                }
                round += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ops_before = ops.load(Ordering::Relaxed);
    let started = Instant::now();
    let loaded = samples(&url, &legit, 1_000).await;
    let rate = (ops.load(Ordering::Relaxed) - ops_before) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    println!(
        "legitimate sync (connect + collection + push 10 + pull 10), median of {SAMPLES}: idle \
         {:?}; while {CLIENTS} authenticated clients push and pull ({rate:.0} ops/s served \
         to them meanwhile) {loaded}: {:.2}x",
        idle.median,
        loaded.median.as_secs_f64() / idle.median.as_secs_f64()
    );
    println!(
        "process RSS (relay and clients in one process): idle {rss_idle:.0} MiB, {CLIENTS} \
         connected {connected_rss:.0} MiB, under load {:.0} MiB",
        loaded.rss
    );
    relay.shutdown().await.expect("shutdown");
}

/// Connects to `addr` from 127.0.0.2 (Linux routes all of 127.0.0.0/8 to loopback), so the
/// relay sees the holders at another address than the legitimate client.
async fn connect_from_another_address(addr: &str) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind("127.0.0.2:0".parse().expect("address"))?;
    socket
        .connect(addr.parse().map_err(std::io::Error::other)?)
        .await
}

/// Holds one connection that never completes the WebSocket upgrade: silent (`half == false`)
/// or a request cut off after its first header lines. Re-opens it whenever the relay closes
/// it; counts the closes. A held connection costs its holder nothing until the relay closes it
/// or `stop` changes (holders that woke every 200 ms to poll a flag made 25,000 wake-ups a
/// second on the cores the relay and the measured client share, a third of the slowdown once
/// all were held).
async fn hold(addr: String, half: bool, mut stop: watch::Receiver<bool>, closed: Arc<AtomicU64>) {
    while !*stop.borrow() {
        let Ok(mut stream) = connect_from_another_address(&addr).await else {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                _ = stop.changed() => return,
            }
        };
        if half {
            let _ = stream
                .write_all(b"GET /sync HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\n")
                .await;
        }
        let mut buf = [0u8; 256];
        loop {
            tokio::select! {
                read = stream.read(&mut buf) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        closed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }
}

const HELD: usize = 5_000;

/// The relay's default limits, as an operator runs it, except that loopback addresses are not
/// exempt from the per-address limits (SYNC-108) here: the holders stand for a remote address
/// (127.0.0.2), the legitimate client for another (127.0.0.1). Under them, the holders' address
/// gets 64 connections: every other holder is refused (HTTP 503) and re-opens at once, a storm
/// of refused connections on the same two cores as the relay and the measured client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures for README; run with --ignored --nocapture"]
async fn legitimate_sync_while_5000_connections_are_idle_or_half_open() {
    let mut limits = Limits::default();
    limits.per_address.exempt_loopback = false;
    held_figures(
        limits,
        "under the default limits (64 per address: the rest refused and re-opened)",
    )
    .await;
}

/// The same holders, with limits that let all of them be held (6,000 connections, 5,000 per
/// address): what idle and half-open connections cost once accepted, without the storm of
/// refused re-opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures for README; run with --ignored --nocapture"]
async fn legitimate_sync_while_5000_connections_are_held() {
    let mut limits = Limits::default();
    limits.max_connections = HELD + 1_000;
    limits.per_address.exempt_loopback = false;
    limits.per_address.max_connections = HELD;
    held_figures(
        limits,
        "all held (limits: 6,000 connections, 5,000 per address)",
    )
    .await;
}

async fn held_figures(limits: Limits, what: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = relay(&dir, limits).await;
    let url = relay.url();
    let addr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .expect("host:port")
        .to_owned();
    let legit = SigningKey::generate();
    let rss_idle = rss_mib();
    let idle = samples(&url, &legit, 0).await;
    assert_eq!(idle.failed, 0, "an idle relay serves every sync: {idle}");

    let (stop, stopped) = watch::channel(false);
    let closed = Arc::new(AtomicU64::new(0));
    let mut holders = Vec::new();
    for n in 0..HELD {
        holders.push(tokio::spawn(hold(
            addr.clone(),
            n % 2 == 1,
            stopped.clone(),
            closed.clone(),
        )));
        if n % 500 == 499 {
            tokio::task::yield_now().await;
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let closed_before = closed.load(Ordering::Relaxed);
    let started = Instant::now();
    let held = samples(&url, &legit, 1_000).await;
    let during = started.elapsed();
    let closed_during = closed.load(Ordering::Relaxed) - closed_before;
    stop.send_replace(true);
    for h in holders {
        h.await.expect("holder");
    }
    println!(
        "legitimate sync (connect + collection + push 10 + pull 10), median of {SAMPLES}: idle \
         {:?}; while {HELD} connections from another address are held idle or half-open, \
         {what} (re-opened when closed; the relay closed {closed_during} of them during the \
         run of {during:?}) {held}: {:.2}x",
        idle.median,
        held.median.as_secs_f64() / idle.median.as_secs_f64()
    );
    println!(
        "process RSS (relay and holders in one process): idle {rss_idle:.0} MiB, holding \
         {:.0} MiB",
        held.rss
    );
    relay.shutdown().await.expect("shutdown");
}
