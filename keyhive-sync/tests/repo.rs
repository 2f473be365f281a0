//! Issue 11, deliverable 1: the `Repo` handle driven as an app drives it, with a real relay on
//! loopback: live delivery through background links, sync until quiet, and events for a
//! revocation on every device (`specs/replica.md` REP-40..REP-46).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyhive_core::capability::{Access, AgentId};
use keyhive_core::identity::{Device, DocumentId};
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::client::background::RESYNC_INTERVAL;
use keyhive_sync::replica::{Event, Subscription};
use keyhive_sync::{MemoryStore, RelayHandle, Repo};

async fn relay() -> RelayHandle {
    common::start(
        Arc::new(MemoryStore::new()),
        Arc::new(CapabilityPolicy::new([])),
    )
    .await
    .0
}

fn repo(name: &str) -> Repo {
    Repo::in_memory(Device::generate(Some(name.into()))).unwrap()
}

/// The first event `pred` accepts. A hang guard only: it fails after half the resync
/// interval, so an event that only the periodic resync would bring fails the test.
async fn until(events: &mut Subscription, mut pred: impl FnMut(&Event) -> bool) -> Event {
    let wait = async {
        loop {
            let event = events.next_event().await.expect("replica open");
            if pred(&event) {
                return event;
            }
        }
    };
    tokio::time::timeout(RESYNC_INTERVAL / 2, wait)
        .await
        .expect("the event came before the periodic resync")
}

fn readable(doc: DocumentId, change: keyhive_core::Hash) -> impl FnMut(&Event) -> bool {
    move |e| matches!(e, Event::Readable { document, change: c, .. } if *document == doc && *c == change)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_travel_live_between_two_repos_through_a_relay() {
    let relay = relay().await;
    let (alice, bob) = (repo("alice"), repo("bob"));
    alice.add_contact(bob.contact_card().unwrap()).unwrap();
    let doc = alice.create_document().unwrap();
    alice
        .grant(&doc.0, AgentId::Individual(bob.id()), Access::Write)
        .unwrap();
    let first = alice.write(doc, b"v1").unwrap();
    let (mut a_events, mut b_events) = (alice.subscribe(), bob.subscribe());
    alice.connect(relay.url(), Some(relay.id())).await;
    alice.sync().await.unwrap();
    bob.connect(relay.url(), Some(relay.id())).await;
    bob.sync().await.unwrap();
    until(&mut b_events, readable(doc, first)).await;
    assert_eq!(bob.read(doc, &first).unwrap(), b"v1");

    let mut latencies = Vec::new();
    for n in 0..5u8 {
        let start = Instant::now();
        let change = bob.write(doc, &[n]).unwrap();
        until(&mut a_events, readable(doc, change)).await;
        latencies.push(start.elapsed());
        assert_eq!(alice.read(doc, &change).unwrap(), [n]);
    }
    latencies.sort();
    eprintln!("write -> readable on the other device: {latencies:?}");
    assert!(
        latencies[latencies.len() / 2] < Duration::from_secs(2),
        "live, not at the next resync"
    );
    alice.shutdown().await.unwrap();
    bob.shutdown().await.unwrap();
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_until_quiet_and_a_revocation_reported_on_every_device() {
    let relay = relay().await;
    let url = relay.url();
    let (alice, bob, carol) = (repo("alice"), repo("bob"), repo("carol"));
    alice.add_contact(bob.contact_card().unwrap()).unwrap();
    alice.add_contact(carol.contact_card().unwrap()).unwrap();
    let doc = alice.create_document().unwrap();
    alice
        .grant(&doc.0, AgentId::Individual(bob.id()), Access::Read)
        .unwrap();
    alice
        .grant(&doc.0, AgentId::Individual(carol.id()), Access::Write)
        .unwrap();
    alice.write(doc, b"v1").unwrap();
    // No links: one-shot syncs until quiet (the CLI's `sync`).
    for r in [&alice, &bob, &carol] {
        r.sync_with(&url, Some(relay.id())).await.unwrap();
    }
    assert_eq!(bob.changes(doc).unwrap().len(), 1);

    // Carol edits offline while Alice revokes her; Bob receives the edit first.
    let (mut b_events, mut c_events) = (bob.subscribe(), carol.subscribe());
    let edit = carol.write(doc, b"carol offline").unwrap();
    carol.sync_with(&url, Some(relay.id())).await.unwrap();
    bob.sync_with(&url, Some(relay.id())).await.unwrap();
    until(&mut b_events, readable(doc, edit)).await;
    let revocation = alice
        .revoke(&doc.0, AgentId::Individual(carol.id()))
        .unwrap()[0];
    alice.sync_with(&url, Some(relay.id())).await.unwrap();
    let report = bob.sync_with(&url, Some(relay.id())).await.unwrap();
    assert!(report.pulled > 0);
    let invalid = until(
        &mut b_events,
        |e| matches!(e, Event::ValidityChanged { op, .. } if *op == edit),
    )
    .await;
    assert_eq!(invalid.revocation(), Some(revocation));
    let rebuilt: Vec<_> = bob
        .changes(doc)
        .unwrap()
        .into_iter()
        .filter(|c| c.status == keyhive_sync::replica::ChangeStatus::Valid)
        .map(|c| c.op)
        .collect();
    assert!(!rebuilt.contains(&edit));

    // The revoked device is told too (REP-30: it is served the ops that remove it).
    carol.sync_with(&url, Some(relay.id())).await.unwrap();
    let lost = until(
        &mut c_events,
        |e| matches!(e, Event::AccessChanged { subject, after: None, .. } if *subject == doc.0),
    )
    .await;
    assert_eq!(lost.revocation(), Some(revocation));
    assert!(carol.write(doc, b"after").is_err());
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_sync_peer_to_peer_without_a_relay() {
    let (alice, bob) = (repo("alice"), repo("bob"));
    alice.add_contact(bob.contact_card().unwrap()).unwrap();
    let doc = alice.create_document().unwrap();
    alice
        .grant(&doc.0, AgentId::Individual(bob.id()), Access::Write)
        .unwrap();
    let first = alice.write(doc, b"over the LAN").unwrap();
    let mut b_events = bob.subscribe();
    // Bob serves his device; Alice connects to it as to a relay, expecting Bob's id.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = bob.listen(listener).await.unwrap();
    alice.connect(url, Some(bob.id().0)).await;
    alice.sync().await.unwrap();
    until(&mut b_events, readable(doc, first)).await;
    assert_eq!(bob.read(doc, &first).unwrap(), b"over the LAN");

    // Live both ways: Alice's write is pushed to Bob, Bob's reaches Alice's subscription.
    let second = alice.write(doc, b"live").unwrap();
    until(&mut b_events, readable(doc, second)).await;
    let mut a_events = alice.subscribe();
    let reply = bob.write(doc, b"reply").unwrap();
    until(&mut a_events, readable(doc, reply)).await;
    assert_eq!(alice.read(doc, &reply).unwrap(), b"reply");
    alice.shutdown().await.unwrap();
    bob.shutdown().await.unwrap();
}

/// `Repo::sync` with a relay that is down and one that is up: the live one is synced (the
/// other device reads the write), the call returns instead of waiting for the dead link, and
/// the error names the relay that failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_goes_on_past_a_relay_that_is_down() {
    let relay = relay().await;
    let dead = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("ws://{}/sync", listener.local_addr().unwrap())
    };
    let (alice, bob) = (repo("alice"), repo("bob"));
    alice.add_contact(bob.contact_card().unwrap()).unwrap();
    let doc = alice.create_document().unwrap();
    alice
        .grant(&doc.0, AgentId::Individual(bob.id()), Access::Read)
        .unwrap();
    let change = alice.write(doc, b"through the live relay").unwrap();
    alice.connect(dead.clone(), None).await;
    alice.connect(relay.url(), Some(relay.id())).await;
    let outcome = tokio::time::timeout(Duration::from_secs(60), alice.sync())
        .await
        .expect("sync returns although a relay is down");
    match outcome {
        Err(keyhive_sync::repo::RepoSyncError::Partial { synced, failures }) => {
            // A session with the live relay took place (its background link may already
            // have pushed everything, so nothing is asserted about what moved).
            assert!(synced.bytes_sent > 0, "{synced:?}");
            assert_eq!(failures.len(), 1, "{failures:?}");
            assert!(failures[0].to_string().contains(&dead), "{}", failures[0]);
        }
        other => panic!("expected a partial sync, got {other:?}"),
    }
    let mut b_events = bob.subscribe();
    bob.connect(relay.url(), Some(relay.id())).await;
    bob.sync().await.unwrap();
    until(&mut b_events, readable(doc, change)).await;
    assert_eq!(bob.read(doc, &change).unwrap(), b"through the live relay");
    alice.shutdown().await.unwrap();
    bob.shutdown().await.unwrap();
}

/// SYNC-83, SYNC-104: `Repo::sync_with` reports what the relay still refuses after its last
/// round, not the sum over rounds. A device alone (a stranger) writes a file far over its
/// quota: each piece the relay refuses is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_counts_each_refused_item_once_whatever_its_rounds() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut limits = keyhive_sync::relay::Limits::default();
    limits.stranger_quota = keyhive_sync::relay::StrangerQuota::new(1_000, 300_000);
    let relay = keyhive_sync::Relay::serve(
        listener,
        Arc::new(MemoryStore::new()),
        Arc::new(CapabilityPolicy::new([])),
        keyhive_sync::RelayConfig::new(Device::generate(None).signing_key().clone())
            .with_limits(limits),
    )
    .unwrap();
    let alone = Repo::in_memory(Device::generate(Some("alone".into()))).unwrap();
    let doc = alone.create_document().unwrap();
    let file: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    alone.write(doc, &file).unwrap();
    let report = alone
        .sync_with(&relay.url(), Some(relay.id()))
        .await
        .unwrap();
    let pieces = file.len().div_ceil(keyhive_sync::replica::PIECE_LEN);
    assert!(report.rounds > 1, "{report:?}");
    assert!(
        report.refused > 0 && report.refused <= pieces + 2,
        "each refused item once ({pieces} pieces): {report:?}"
    );
    assert_eq!(
        report.peer_refusals.len(),
        report.refused.min(16),
        "{report:?}"
    );
    alone.shutdown().await.unwrap();
    relay.shutdown().await.unwrap();
}
