//! Figures for README (issue 16 #5): a legitimate sync's latency on an idle relay and while
//! strangers flood it (SYNC-104, SYNC-105, SYNC-111), and the process's RSS. Not a latency
//! limit: run `cargo test -p keyhive-sync --test abuse_figures -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod figures;
mod replicas;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use figures::{median, rss_mib};
use keyhive_core::capability::{Access, AgentId, AnyVerified};
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::identity::{Device, Genesis};
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::client::{Session, SessionError};
use keyhive_sync::protocol::PushOutcome;
use keyhive_sync::relay::{Limits, Relay, RelayConfig};
use keyhive_sync::replica::{Replica, op_item};
use keyhive_sync::{Item, ItemKind, MemoryStore, RedbStore, Store};
use replicas::all_items;

const FLOODERS: usize = 4;
const SAMPLES: usize = 30;

/// One legitimate sync: connect (handshake), offer round, push one new grant.
async fn legit_sync(url: &str, alice: &mut Replica<MemoryStore>, doc: AgentId) -> Duration {
    let AgentId::Document(doc) = doc else {
        unreachable!("a document")
    };
    let before: std::collections::BTreeSet<_> = all_items(alice).iter().map(Item::hash).collect();
    alice
        .grant(
            &doc.0,
            AgentId::Individual(Device::generate(None).id()),
            Access::Pull,
        )
        .expect("grant");
    let new: Vec<Item> = all_items(alice)
        .into_iter()
        .filter(|i| !before.contains(&i.hash()))
        .collect();
    let started = Instant::now();
    let session = Session::connect(url, alice.device().signing_key(), None)
        .await
        .expect("connect");
    session.collection().await.expect("collection");
    let outcomes = session.push(&new).await.expect("push");
    let took = started.elapsed();
    assert!(outcomes.iter().all(|o| matches!(o, PushOutcome::Stored)));
    took
}

/// Geneses by `device`, some with a broken signature (each costs a signature check).
fn flood_items(device: &Device, n: usize, bad_signatures: bool) -> Vec<Item> {
    (0..n)
        .map(|_| {
            let genesis = Genesis::create_group(device.id()).expect("genesis");
            let item = op_item(&AnyVerified::Genesis(genesis)).expect("item");
            if !bad_signatures {
                return item;
            }
            let mut bytes = item.envelope().to_vec();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            Item::new(ItemKind::Auth, item.subject(), bytes).expect("item")
        })
        .collect()
}

/// The default limits; with `KEYHIVE_ABUSE_WITHOUT_SYNC111` set, strangers' budget of
/// signature checks and their shared admission slots lifted (the figure before SYNC-111, but
/// for admission in slices).
fn limits() -> Limits {
    let mut limits = Limits::default();
    if std::env::var_os("KEYHIVE_ABUSE_WITHOUT_SYNC111").is_some() {
        limits.stranger_checks_per_second = 1e12;
        limits.stranger_burst_checks = 1e12;
        limits.all_strangers_checks_per_second = 1e12;
        limits.all_strangers_burst_checks = 1e12;
        limits.stranger_admissions = 1_024;
        println!("SYNC-111 lifted");
    }
    limits
}

/// How the strangers flood.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flood {
    /// Each stranger keeps one key and pushes frames of 4,096 fresh subjects (every other
    /// stranger's with broken signatures) as fast as the relay answers.
    OneKeyEach,
    /// Each stranger pushes one frame of a burst's worth (1,000) of items with broken
    /// signatures under a fresh key, then connects again with another (SYNC-111's per-key
    /// budget then never binds; the shared admission slots do).
    FreshKeyPerFrame,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures for README; run with --ignored --nocapture"]
async fn legitimate_sync_during_a_stranger_flood() {
    figures(Flood::OneKeyEach).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures for README; run with --ignored --nocapture"]
async fn legitimate_sync_while_strangers_flood_with_a_fresh_key_per_frame() {
    figures(Flood::FreshKeyPerFrame).await;
}

async fn figures(how: Flood) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(dir.path().join("relay.redb")).expect("store"));
    let policy = Arc::new(CapabilityPolicy::new([]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let relay = Relay::serve(
        listener,
        store.clone(),
        policy,
        RelayConfig::new(Device::generate(None).signing_key().clone()).with_limits(limits()),
    )
    .expect("serve");
    let url = relay.url();

    // A legitimate writer: a document shared with bob.
    let device = Device::generate(Some("alice".into()));
    let mut alice = Replica::open(device, MemoryStore::new()).expect("open");
    let doc = alice.create_document().expect("doc");
    alice
        .grant(
            &doc.0,
            AgentId::Individual(Device::generate(None).id()),
            Access::Read,
        )
        .expect("grant");
    let session = Session::connect(&url, alice.device().signing_key(), None)
        .await
        .expect("connect");
    let mut rest = all_items(&alice);
    for _ in 0..4 {
        let outcomes = session.push(&rest).await.expect("push");
        rest = rest
            .into_iter()
            .zip(outcomes)
            .filter(|(_, o)| !matches!(o, PushOutcome::Stored | PushOutcome::Duplicate))
            .map(|(i, _)| i)
            .collect();
    }
    assert!(rest.is_empty());
    drop(session);
    let doc = AgentId::Document(doc);

    let rss_idle = rss_mib();
    let mut idle = Vec::new();
    for _ in 0..SAMPLES {
        idle.push(legit_sync(&url, &mut alice, doc).await);
    }

    // Strangers: each pushes frames of 4,096 fresh subjects (half of them with a broken
    // signature) as fast as the relay answers.
    let stop = Arc::new(AtomicBool::new(false));
    let frames = Arc::new(AtomicU64::new(0));
    let mut flooders = Vec::new();
    for n in 0..FLOODERS {
        let device = Device::generate(None);
        let items = match how {
            Flood::OneKeyEach => flood_items(&device, 4_096, n % 2 == 1),
            Flood::FreshKeyPerFrame => flood_items(&device, 1_000, true),
        };
        let (url, stop, frames) = (url.clone(), stop.clone(), frames.clone());
        flooders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let key = match how {
                    Flood::OneKeyEach => device.signing_key().clone(),
                    Flood::FreshKeyPerFrame => SigningKey::generate(),
                };
                let Ok(session) = Session::connect(&url, &key, None).await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                // RateLimited and QuotaExceeded answers are the point; keep pushing until the
                // relay closes the connection (SYNC-104), then connect again.
                while !stop.load(Ordering::Relaxed) {
                    let pushed = session.push(&items).await;
                    frames.fetch_add(1, Ordering::Relaxed);
                    if how == Flood::FreshKeyPerFrame
                        || matches!(pushed, Err(ref e) if !matches!(e, SessionError::Remote(_)))
                    {
                        break;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut flooded = Vec::new();
    let mut rss_flood: f64 = 0.0;
    for _ in 0..SAMPLES {
        flooded.push(legit_sync(&url, &mut alice, doc).await);
        rss_flood = rss_flood.max(rss_mib());
    }
    stop.store(true, Ordering::Relaxed);
    // A flooder held by SYNC-111 may wait long for its answer: stop it where it is.
    for f in flooders {
        f.abort();
    }
    let (idle, flooded) = (median(idle), median(flooded));
    let counts = relay.abuse_counts();
    let flood = match how {
        Flood::OneKeyEach => "one key each, frames of 4,096 items",
        Flood::FreshKeyPerFrame => "a fresh key per frame of 1,000 items, bad signatures",
    };
    println!(
        "legitimate sync (connect + offer round + push of one op), median of {SAMPLES}: idle \
         {idle:?}, during a flood by {FLOODERS} strangers ({flood}; {} frames pushed) \
         {flooded:?}: {:.2}x",
        frames.load(Ordering::Relaxed),
        flooded.as_secs_f64() / idle.as_secs_f64()
    );
    println!(
        "process RSS (relay and flooders in one process): idle {rss_idle:.0} MiB, flood peak \
         {rss_flood:.0} MiB; refused by quota {} items, rate-limited {} pushes, stranger pushes \
         held for their budget {}; subjects stored {}",
        counts.quota_refusals,
        counts.rate_limited_pushes,
        counts.stranger_pushes_held,
        store.subjects().expect("subjects").len()
    );
    relay.shutdown().await.expect("shutdown");
}
