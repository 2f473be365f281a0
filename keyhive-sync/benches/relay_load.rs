//! Relay load figures (issue 5), one loopback relay per phase:
//!
//! 1. 500 idle authenticated connections held at once, each then making one request, and the
//!    resident memory they add (VmRSS from `/proc/self/status`, before and after). Run twice:
//!    once with clients and relay in this process (the figure covers both ends of each
//!    connection), once with the clients in a child process (this same binary, re-executed), so
//!    the relay's own share and the clients' share are measured separately.
//! 2. Fan-out latency: 1 and 100 subscribers on one subject, one more client pushes a 64-byte
//!    item; the time from the push until the last subscriber has it, p50/p99 over 200 pushes.
//!
//! Raw primitives in the same run: a bare tokio-tungstenite loopback round trip of a 64-byte
//! binary frame, and an authenticated protocol round trip (`Session::collection`).
//!
//! Run with `cargo bench -p keyhive-sync --bench relay_load`. Traffic goes only to 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use keyhive_core::Hash;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::identity::IndividualId;
use keyhive_sync::client::{LiveEvent, Session};
use keyhive_sync::policy::MemoryPolicy;
use keyhive_sync::relay::{Limits, Relay, RelayConfig, RelayHandle};
use keyhive_sync::store::MemoryStore;
use keyhive_sync::{Item, ItemKind, SubjectId};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const IDLE_CONNECTIONS: usize = 500;
const SUBSCRIBERS: usize = 100;
const PUSHES: usize = 200;
const WARMUP_PUSHES: usize = 5;
const ROUND_TRIPS: usize = 2_000;
/// Handshakes in flight at once while opening the idle connections.
const CONNECT_CONCURRENCY: usize = 32;
/// A hang guard only: a phase that stalls this long is reported as a failure.
const HANG_GUARD: Duration = Duration::from_secs(60);
/// Set (to the relay URL) when this binary runs as the client-only child process.
const CHILD_ENV: &str = "KEYHIVE_RELAY_LOAD_CLIENTS_OF";
/// Set when this binary runs as the child measuring clients and relay in one process.
const IN_PROCESS_ENV: &str = "KEYHIVE_RELAY_LOAD_IN_PROCESS";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn main() {
    // Child roles are chosen by environment; the parent runs only under `cargo bench` (which
    // passes `--bench`), not when `cargo test --all-targets` runs bench targets as tests.
    if let Ok(url) = std::env::var(CHILD_ENV) {
        return client_child(&url);
    }
    if std::env::var_os(IN_PROCESS_ENV).is_some() {
        return runtime().block_on(idle_connections());
    }
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "relay_load: skipped (run it with `cargo bench -p keyhive-sync --bench relay_load`)"
        );
        return;
    }
    println!("relay_load: loopback, tokio multi-thread runtime with 2 workers per process");
    check_fd_limit();
    // Each memory figure is taken in a process that has run nothing else, so its baseline is
    // not inflated (or its growth hidden) by memory earlier phases freed to the allocator.
    let status = Command::new(std::env::current_exe().unwrap())
        .env(IN_PROCESS_ENV, "1")
        .status()
        .unwrap();
    assert!(status.success(), "in-process idle-connection run failed");
    relay_only_memory();
    let rt = runtime();
    rt.block_on(async {
        raw_round_trips().await;
        fan_out(1).await;
        fan_out(SUBSCRIBERS).await;
    });
}

/// Each connection costs two descriptors here (client and relay end of the socket).
fn check_fd_limit() {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    let needed = 2 * IDLE_CONNECTIONS + 2 * (SUBSCRIBERS + 1) + 64;
    match soft {
        Some(soft) if soft < needed => {
            eprintln!(
                "open-file soft limit {soft} < {needed} needed; run `ulimit -n {needed}` first"
            );
            std::process::exit(2);
        }
        Some(soft) => println!("open-file soft limit {soft} (>= {needed} needed; not raised)"),
        None => println!("open-file limit unknown (no /proc/self/limits)"),
    }
}

fn rss_kib() -> u64 {
    rss_kib_of("self")
}

fn rss_kib_of(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn id(key: &SigningKey) -> IndividualId {
    IndividualId(key.public_key())
}

/// The `i`-th idle client's key, derivable by both processes.
fn client_key(i: usize) -> SigningKey {
    let mut seed = [0x5a; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    SigningKey::from_seed(&seed)
}

/// The one subject every idle client may pull.
fn idle_subject() -> SubjectId {
    SubjectId(SigningKey::from_seed(&[0xa5; 32]).public_key())
}

/// Opens the idle sessions (a bounded number of handshakes in flight).
async fn open_idle(url: &str) -> (Vec<Session>, Duration) {
    let t = Instant::now();
    let sessions = tokio::time::timeout(
        HANG_GUARD,
        futures_util::stream::iter(0..IDLE_CONNECTIONS)
            .map(|i| async move { Session::connect(url, &client_key(i), None).await })
            .buffer_unordered(CONNECT_CONCURRENCY)
            .collect::<Vec<_>>(),
    )
    .await
    .expect("connecting stalled")
    .into_iter()
    .map(|r| r.expect("connect"))
    .collect();
    (sessions, t.elapsed())
}

/// Every session makes one collection request at once; returns (usable, closed, time).
async fn use_all(sessions: &[Session]) -> (usize, usize, Duration) {
    let subject = idle_subject();
    let t = Instant::now();
    let answers = tokio::time::timeout(
        HANG_GUARD,
        futures_util::future::join_all(sessions.iter().map(Session::collection)),
    )
    .await
    .expect("requests stalled");
    let elapsed = t.elapsed();
    let usable = answers
        .iter()
        .filter(|a| matches!(a, Ok(offers) if offers.len() == 1 && offers[0].subject == subject))
        .count();
    let closed = sessions.iter().filter(|s| s.is_closed()).count();
    (usable, closed, elapsed)
}

/// Child process: hold the idle sessions until told, report, then use them all once.
/// Protocol on stdout/stdin: `connected <rss before> <rss after> <ms>`, wait for a line,
/// `usable <n> <closed>`, wait for a line, exit.
fn client_child(url: &str) {
    let rt = runtime();
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_kib();
        let (sessions, took) = open_idle(url).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        println!("connected {before} {} {}", rss_kib(), took.as_millis());
        std::io::stdout().flush().unwrap();
        stdin.read_line(&mut line).unwrap();
        let (usable, closed, _) = use_all(&sessions).await;
        println!("usable {usable} {closed}");
        std::io::stdout().flush().unwrap();
        stdin.read_line(&mut line).unwrap();
    });
}

/// The relay in this process, the 500 clients in a child process: the relay's own memory.
fn relay_only_memory() {
    println!(
        "\n== {IDLE_CONNECTIONS} idle connections, clients in a child process (relay-side memory) =="
    );
    let rt = runtime();
    let policy = Arc::new(MemoryPolicy::new());
    for i in 0..IDLE_CONNECTIONS {
        policy.grant_pull(id(&client_key(i)), idle_subject());
    }
    let relay = rt.block_on(start_relay(policy, Limits::default()));
    // The relay runs on the runtime's workers; this thread talks to the child.
    std::thread::sleep(Duration::from_millis(200));
    let rss_before = rss_kib();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, relay.url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_child = child.stdin.take().unwrap();
    let mut from_child = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    from_child.read_line(&mut line).unwrap();
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    let (child_before, child_after, took_ms) = (f[0], f[1], f[2]);
    let rss_after = rss_kib();
    std::thread::sleep(Duration::from_secs(2));
    writeln!(to_child, "go").unwrap();
    line.clear();
    from_child.read_line(&mut line).unwrap();
    let f: Vec<usize> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    let (usable, closed) = (f[0], f[1]);
    writeln!(to_child, "done").unwrap();
    assert!(child.wait().unwrap().success(), "client process failed");
    println!(
        "child opened {IDLE_CONNECTIONS} sessions in {took_ms} ms; after 2.5 s idle {usable}/{IDLE_CONNECTIONS} answered one request correctly, {closed} closed"
    );
    let relay_delta = rss_after.saturating_sub(rss_before);
    let client_delta = child_after.saturating_sub(child_before);
    println!(
        "relay process VmRSS: {rss_before} KiB before, {rss_after} KiB after: +{relay_delta} KiB = {:.1} KiB per connection (relay side only)",
        relay_delta as f64 / IDLE_CONNECTIONS as f64
    );
    println!(
        "client process VmRSS: {child_before} KiB before, {child_after} KiB after: +{client_delta} KiB = {:.1} KiB per connection (client side only)",
        client_delta as f64 / IDLE_CONNECTIONS as f64
    );
    assert_eq!(
        usable, IDLE_CONNECTIONS,
        "some idle connections became unusable"
    );
    rt.block_on(relay.shutdown()).unwrap();
}

fn item(key: &SigningKey, subject: SubjectId, n: u64) -> Item {
    let mut payload = vec![0u8; 64];
    payload[..8].copy_from_slice(&n.to_le_bytes());
    let mut envelope = payload.clone();
    envelope.extend_from_slice(&key.sign(&payload));
    Item::new(ItemKind::Content, subject, envelope).unwrap()
}

async fn start_relay(policy: Arc<MemoryPolicy>, limits: Limits) -> RelayHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Relay::serve(
        listener,
        Arc::new(MemoryStore::new()),
        policy,
        RelayConfig::new(SigningKey::generate()).with_limits(limits),
    )
    .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    // Nearest-rank percentile.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<44} n={:<5} p50 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}",
        samples.len(),
        percentile(&samples, 50.0),
        percentile(&samples, 99.0),
        samples[samples.len() - 1],
    );
}

async fn idle_connections() {
    let limits = Limits::default();
    assert!(
        limits.max_connections >= IDLE_CONNECTIONS,
        "default max_connections {} is below {IDLE_CONNECTIONS}",
        limits.max_connections
    );
    println!(
        "\n== {IDLE_CONNECTIONS} idle connections, clients and relay in this process \
         (default Limits::max_connections = {}) ==",
        limits.max_connections
    );
    let policy = Arc::new(MemoryPolicy::new());
    for i in 0..IDLE_CONNECTIONS {
        policy.grant_pull(id(&client_key(i)), idle_subject());
    }
    let relay = start_relay(policy, limits).await;
    // Settle the runtime and allocator before the baseline.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss_before, fds_before) = (rss_kib(), open_fds());
    let (sessions, connect_time) = open_idle(&relay.url()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_after, fds_after) = (rss_kib(), open_fds());
    // Stay idle a while longer, then every connection makes one request.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (usable, closed, request_time) = use_all(&sessions).await;

    println!(
        "opened {} authenticated sessions in {connect_time:.2?} ({CONNECT_CONCURRENCY} handshakes in flight)",
        sessions.len()
    );
    println!(
        "after 2.5 s idle: {usable}/{IDLE_CONNECTIONS} answered one collection request correctly \
         (all {IDLE_CONNECTIONS} concurrently in {request_time:.2?}); {closed} closed"
    );
    println!("open descriptors: {fds_before} before, {fds_after} after");
    let delta = rss_after.saturating_sub(rss_before);
    println!(
        "VmRSS: {rss_before} KiB before, {rss_after} KiB after: +{delta} KiB = {:.1} KiB per \
         connection (client + relay side, one process)",
        delta as f64 / IDLE_CONNECTIONS as f64
    );
    assert_eq!(
        usable, IDLE_CONNECTIONS,
        "some idle connections became unusable"
    );
    drop(sessions);
    relay.shutdown().await.unwrap();
}

async fn raw_round_trips() {
    println!("\n== raw primitives ==");
    // Bare WebSocket echo over loopback, no protocol, no authentication.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_binary() && ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/"), None, true)
            .await
            .unwrap();
    let frame = vec![7u8; 64];
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..ROUND_TRIPS + 100 {
        let t = Instant::now();
        ws.send(WsMessage::Binary(frame.clone().into()))
            .await
            .unwrap();
        let back = ws.next().await.unwrap().unwrap();
        let elapsed = t.elapsed();
        assert_eq!(back.into_data().len(), frame.len());
        if i >= 100 {
            samples.push(elapsed);
        }
    }
    report("raw ws round trip, 64-byte binary frame", samples);
    ws.close(None).await.unwrap();
    drop(ws);
    echo.abort();

    // An authenticated protocol request with a one-subject answer.
    let policy = Arc::new(MemoryPolicy::new());
    let relay = start_relay(policy.clone(), Limits::default()).await;
    let key = SigningKey::generate();
    policy.grant_pull(id(&key), SubjectId(SigningKey::generate().public_key()));
    let session = Session::connect(&relay.url(), &key, None).await.unwrap();
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..ROUND_TRIPS + 100 {
        let t = Instant::now();
        let offers = session.collection().await.unwrap();
        let elapsed = t.elapsed();
        assert_eq!(offers.len(), 1);
        if i >= 100 {
            samples.push(elapsed);
        }
    }
    report("session round trip (collection request)", samples);
    drop(session);
    relay.shutdown().await.unwrap();
}

async fn fan_out(subscribers: usize) {
    println!("\n== fan-out to {subscribers} subscriber(s), one 64-byte item per push ==");
    let policy = Arc::new(MemoryPolicy::new());
    let relay = start_relay(policy.clone(), Limits::default()).await;
    let url = relay.url();
    let subject = SubjectId(SigningKey::generate().public_key());
    let writer = SigningKey::generate();
    policy.grant_write(id(&writer), subject);

    // Every subscriber reports (hash, arrival time) of each live item it receives.
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel::<(Hash, Instant)>();
    let mut subs = Vec::with_capacity(subscribers);
    let mut listeners = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let key = SigningKey::generate();
        policy.grant_pull(id(&key), subject);
        let session = Session::connect(&url, &key, None).await.unwrap();
        let mut live = session.take_live().unwrap();
        assert_eq!(session.subscribe(&[subject]).await.unwrap(), vec![subject]);
        let tx = arrived_tx.clone();
        listeners.push(tokio::spawn(async move {
            while let Some(event) = live.recv().await {
                let now = Instant::now();
                match event {
                    LiveEvent::Items(items) => {
                        for it in items {
                            let _ = tx.send((it.hash(), now));
                        }
                    }
                    LiveEvent::Lagged => panic!("subscriber lagged"),
                }
            }
        }));
        subs.push(session);
    }
    drop(arrived_tx);
    let pusher = Session::connect(&url, &writer, None).await.unwrap();

    let mut all = Vec::with_capacity(PUSHES);
    let mut acks = Vec::with_capacity(PUSHES);
    for n in 0..(WARMUP_PUSHES + PUSHES) as u64 {
        let it = item(&writer, subject, n);
        let hash = it.hash();
        let t0 = Instant::now();
        pusher.push(std::slice::from_ref(&it)).await.unwrap();
        let ack = t0.elapsed();
        let mut last = t0;
        let mut got = 0;
        while got < subscribers {
            let (h, at) = tokio::time::timeout(HANG_GUARD, arrived.recv())
                .await
                .expect("fan-out stalled")
                .expect("subscribers gone");
            assert_eq!(h, hash, "live items arrive in push order");
            last = last.max(at);
            got += 1;
        }
        if n >= WARMUP_PUSHES as u64 {
            all.push(last - t0);
            acks.push(ack);
        }
    }
    report("push acknowledged (pusher round trip)", acks);
    report(
        &format!("push -> all {subscribers} subscriber(s) have it"),
        all,
    );
    for l in &listeners {
        l.abort();
    }
    drop(subs);
    drop(pusher);
    relay.shutdown().await.unwrap();
}
