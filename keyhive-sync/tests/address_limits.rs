//! SYNC-108: limits per network address. Many keys from one address cannot exceed the
//! address's budget of connections, signature checks (pushed items per second), frame bytes
//! per second and stranger storage; another address is unaffected. Clients connect from
//! 127.0.0.1 and 127.0.0.2 (two addresses of the loopback network), with loopback not exempt.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use keyhive_core::capability::AnyVerified;
use keyhive_core::identity::{Device, Genesis};
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::client::{Session, SessionError};
use keyhive_sync::protocol::{ErrorCode, PushOutcome};
use keyhive_sync::relay::{AddressLimits, Limits, Relay, RelayConfig, RelayHandle, StrangerQuota};
use keyhive_sync::replica::op_item;
use keyhive_sync::{Item, MemoryStore};

const ONE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const TWO: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Per-key and per-connection limits far above what these tests push, so that only the
/// per-address limit under test binds; loopback is not exempt.
fn limits(per_address: AddressLimits) -> Limits {
    let mut limits = Limits::default();
    limits.items_per_second = 1e12;
    limits.burst_items = 1e12;
    limits.stranger_checks_per_second = 1e12;
    limits.stranger_burst_checks = 1e12;
    limits.all_strangers_checks_per_second = 1e12;
    limits.all_strangers_burst_checks = 1e12;
    limits.per_address = per_address;
    limits
}

fn loose() -> AddressLimits {
    let mut a = AddressLimits::default();
    a.exempt_loopback = false;
    a
}

async fn serve(limits: Limits) -> RelayHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Relay::serve(
        listener,
        Arc::new(MemoryStore::new()),
        Arc::new(CapabilityPolicy::new([])),
        RelayConfig::new(Device::generate(None).signing_key().clone()).with_limits(limits),
    )
    .unwrap()
}

/// A fresh key (a stranger) connected from `from`, with `n` subjects of its own to push.
async fn stranger(relay: &RelayHandle, from: IpAddr, n: usize) -> (Session, Vec<Item>) {
    let device = Device::generate(None);
    let items = (0..n)
        .map(|_| {
            let genesis = Genesis::create_group(device.id()).unwrap();
            op_item(&AnyVerified::Genesis(genesis)).unwrap()
        })
        .collect();
    let session = Session::connect_from(&relay.url(), device.signing_key(), None, from)
        .await
        .unwrap();
    (session, items)
}

fn stored(outcomes: &[PushOutcome]) -> usize {
    outcomes
        .iter()
        .filter(|o| matches!(o, PushOutcome::Stored))
        .count()
}

fn is_rate_limited(result: Result<Vec<PushOutcome>, SessionError>) -> bool {
    matches!(result, Err(SessionError::Remote(e)) if e.code == ErrorCode::RateLimited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address() {
    let mut per_address = loose();
    per_address.max_connections = 3;
    let relay = serve(limits(per_address)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(stranger(&relay, ONE, 0).await.0);
    }
    let key = Device::generate(None).signing_key().clone();
    assert!(
        Session::connect_from(&relay.url(), &key, None, ONE)
            .await
            .is_err(),
        "a fourth connection from the address is refused, whatever its key"
    );
    assert_eq!(relay.abuse_counts().address_connections_refused, 1);
    let other = Session::connect_from(&relay.url(), &key, None, TWO).await;
    assert!(other.is_ok(), "another address is unaffected");
    assert!(
        held[0].collection().await.is_ok(),
        "held connections still work"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_checks_per_address() {
    let mut per_address = loose();
    per_address.items_per_second = 0.0;
    per_address.burst_items = 100.0;
    let relay = serve(limits(per_address)).await;
    let (a, items) = stranger(&relay, ONE, 60).await;
    assert_eq!(stored(&a.push(&items).await.unwrap()), 60);
    let (b, items) = stranger(&relay, ONE, 60).await;
    assert!(
        is_rate_limited(b.push(&items).await),
        "a second key from the address shares its item budget"
    );
    let (c, items) = stranger(&relay, TWO, 60).await;
    assert_eq!(
        stored(&c.push(&items).await.unwrap()),
        60,
        "another address is unaffected"
    );
    assert_eq!(relay.abuse_counts().rate_limited_pushes, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_per_address() {
    let (_, sample) = {
        let relay = serve(limits(loose())).await;
        stranger(&relay, ONE, 20).await
    };
    // Room for one frame of 20 subjects (envelopes plus at most 64 bytes each of framing), not
    // for two.
    let frame: usize = sample.iter().map(|i| i.envelope().len() + 64).sum();
    let mut per_address = loose();
    per_address.bytes_per_second = 0.0;
    per_address.burst_bytes = frame as f64 * 1.5;
    let relay = serve(limits(per_address)).await;
    let (a, items) = stranger(&relay, ONE, 20).await;
    assert_eq!(stored(&a.push(&items).await.unwrap()), 20);
    let (b, items) = stranger(&relay, ONE, 20).await;
    assert!(
        is_rate_limited(b.push(&items).await),
        "a second key from the address shares its byte budget"
    );
    let (c, items) = stranger(&relay, TWO, 20).await;
    assert_eq!(
        stored(&c.push(&items).await.unwrap()),
        20,
        "another address is unaffected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stranger_items_per_address() {
    let mut per_address = loose();
    per_address.stranger_quota = StrangerQuota::new(30, 1 << 30);
    let relay = serve(limits(per_address)).await;
    let (a, items) = stranger(&relay, ONE, 20).await;
    assert_eq!(stored(&a.push(&items).await.unwrap()), 20);
    let (b, items) = stranger(&relay, ONE, 20).await;
    let outcomes = b.push(&items).await.unwrap();
    assert_eq!(
        stored(&outcomes),
        10,
        "strangers from one address store at most its quota together"
    );
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, PushOutcome::Refused(why) if why.contains("network address")))
    );
    let (c, items) = stranger(&relay, TWO, 20).await;
    assert_eq!(
        stored(&c.push(&items).await.unwrap()),
        20,
        "another address is unaffected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stranger_bytes_per_address() {
    let (_, sample) = {
        let relay = serve(limits(loose())).await;
        stranger(&relay, ONE, 10).await
    };
    let ten: u64 = sample.iter().map(|i| i.envelope().len() as u64).sum();
    let mut per_address = loose();
    // Room for 15 subjects' envelopes, give or take one.
    per_address.stranger_quota = StrangerQuota::new(1_000, ten * 3 / 2);
    let relay = serve(limits(per_address)).await;
    let (a, items) = stranger(&relay, ONE, 10).await;
    assert_eq!(stored(&a.push(&items).await.unwrap()), 10);
    let (b, items) = stranger(&relay, ONE, 10).await;
    let second = stored(&b.push(&items).await.unwrap());
    assert!(
        (4..=6).contains(&second),
        "strangers from one address store at most its byte quota together (stored {second})"
    );
    let (c, items) = stranger(&relay, TWO, 10).await;
    assert_eq!(
        stored(&c.push(&items).await.unwrap()),
        10,
        "another address is unaffected"
    );
}

/// A relay serving `store` (a restart is a new relay on the same store), its graph loaded.
async fn serve_on(store: Arc<MemoryStore>, limits: Limits) -> RelayHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let policy = CapabilityPolicy::new([]);
    policy.load(&*store).unwrap();
    Relay::serve(
        listener,
        store,
        Arc::new(policy),
        RelayConfig::new(Device::generate(None).signing_key().clone()).with_limits(limits),
    )
    .unwrap()
}

/// SYNC-108, STORE-18: what strangers from an address stored is kept through the store, so a
/// restart does not give the address a fresh budget; another address is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stranger_usage_per_address_survives_a_restart() {
    let mut per_address = loose();
    per_address.stranger_quota = StrangerQuota::new(30, 1 << 30);
    let store = Arc::new(MemoryStore::new());
    let relay = serve_on(store.clone(), limits(per_address.clone())).await;
    let (a, items) = stranger(&relay, ONE, 25).await;
    assert_eq!(stored(&a.push(&items).await.unwrap()), 25);
    drop(a);
    relay.shutdown().await.unwrap();

    let relay = serve_on(store, limits(per_address)).await;
    let (b, items) = stranger(&relay, ONE, 20).await;
    assert_eq!(
        stored(&b.push(&items).await.unwrap()),
        5,
        "after a restart, the address has only what was left of its quota"
    );
    let (c, items) = stranger(&relay, TWO, 20).await;
    assert_eq!(
        stored(&c.push(&items).await.unwrap()),
        20,
        "another address is unaffected"
    );
}

/// SYNC-70: a connection over its byte rate is held until its bucket refills (backpressure),
/// not refused: three frames that together pass the burst are all stored, the later ones
/// paced to the rate. Before, the second was answered RateLimited and `keyhive sync` of a
/// 200 MB file failed at the 128 MiB burst. Only what cannot be paid within a second (here:
/// no refill at all) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_its_byte_rate_is_paced_not_refused() {
    let (_, sample) = {
        let relay = serve(limits(loose())).await;
        stranger(&relay, ONE, 20).await
    };
    let frame: usize = sample.iter().map(|i| i.envelope().len() + 64).sum();
    let mut paced = limits(loose());
    paced.burst_bytes = frame as f64 * 1.5;
    paced.bytes_per_second = frame as f64 * 4.0;
    let relay = serve(paced.clone()).await;
    let (a, _) = stranger(&relay, ONE, 0).await;
    for _ in 0..3 {
        let (_, items) = stranger(&relay, TWO, 20).await;
        assert_eq!(stored(&a.push(&items).await.unwrap()), 20);
    }
    assert_eq!(relay.abuse_counts().rate_limited_pushes, 0);

    paced.bytes_per_second = 0.0;
    let relay = serve(paced).await;
    let (a, items) = stranger(&relay, ONE, 20).await;
    assert_eq!(stored(&a.push(&items).await.unwrap()), 20);
    let (_, items) = stranger(&relay, TWO, 20).await;
    assert!(
        is_rate_limited(a.push(&items).await),
        "a frame the bucket can never pay for is refused"
    );
}
