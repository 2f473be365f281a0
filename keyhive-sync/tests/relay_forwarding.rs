//! SYNC-63, SYNC-63a: a relay keeping in sync with another relay through its own `Client`
//! (`relay serve --sync-with`) forwards live in both directions with
//! `RelayHandle::forward_through`: what a device pushes to it leaves for the other relay at
//! once, and what the other relay sends reaches its subscribers live. Before, pushed items
//! waited for the link's periodic full sync (SYNC-92, 30 s), and the CLI relay never announced
//! what its links brought in. Each check below fails without forwarding: the item then arrives
//! only through a second full sync of the link, or never reaches the subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_sync::client::{Client, LiveEvent, Session};
use keyhive_sync::policy::MemoryPolicy;
use keyhive_sync::relay::RelayHandle;
use keyhive_sync::store::{MemoryStore, Store};

/// Two relays on memory stores, each letting the other sync everything (RELAY-6).
struct Pair {
    store_a: Arc<dyn Store>,
    store_b: Arc<dyn Store>,
    policy_a: Arc<MemoryPolicy>,
    policy_b: Arc<MemoryPolicy>,
    relay_a: RelayHandle,
    key_a: SigningKey,
    relay_b: RelayHandle,
    key_b: SigningKey,
}

impl Pair {
    async fn start() -> Pair {
        let (store_a, store_b): (Arc<dyn Store>, Arc<dyn Store>) =
            (Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()));
        let (policy_a, policy_b) = (policy(), policy());
        let (relay_a, key_a) = start(store_a.clone(), policy_a.clone()).await;
        let (relay_b, key_b) = start(store_b.clone(), policy_b.clone()).await;
        policy_b.grant_everything(id(&key_a));
        policy_a.grant_everything(id(&key_b));
        Pair {
            store_a,
            store_b,
            policy_a,
            policy_b,
            relay_a,
            key_a,
            relay_b,
            key_b,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_forwards_pushed_and_fetched_items_live() {
    let Pair {
        store_a,
        store_b,
        policy_a,
        policy_b,
        relay_a,
        key_a,
        relay_b,
        key_b,
    } = Pair::start().await;
    let (writer, reader) = (SigningKey::generate(), SigningKey::generate());
    let (pushed_here, written_there) = (subject(1), subject(2));
    policy_a.grant_write(id(&writer), pushed_here);
    policy_b.grant_write(id(&writer), written_there);
    policy_a.grant_pull(id(&reader), written_there);
    // Relay B already holds the subject, so relay A's link subscribes to it when it connects.
    store_b.put(&items(&writer, written_there, 0..1)).unwrap();

    let client = Client::new(key_a.clone(), store_a.clone(), policy_a.clone());
    let _forwarding = relay_a.forward_through(&client);
    let mut link = client.add_link(relay_b.url(), Some(pk(&key_b)));
    let connected = link.wait_for(|s| s.connected).await;
    assert_eq!(connected.syncs, 1, "the link's first full sync");
    assert_eq!(store_a.hashes(&written_there).unwrap().len(), 1);

    // Outbound: pushed to relay A, stored by relay B without another full sync of the link.
    let device = Session::connect(&relay_a.url(), &writer, Some(pk(&key_a)))
        .await
        .unwrap();
    let batch = items(&writer, pushed_here, 0..3);
    device.push(&batch).await.unwrap();
    eventually(|| store_b.hashes(&pushed_here).unwrap().len() == 3).await;
    assert_eq!(
        link.status().syncs,
        1,
        "carried live, not by a periodic sync"
    );

    // Inbound: a reader subscribed on relay A gets, live, what was written on relay B.
    let subscriber = Session::connect(&relay_a.url(), &reader, Some(pk(&key_a)))
        .await
        .unwrap();
    let mut live = subscriber.take_live().unwrap();
    assert_eq!(
        subscriber.subscribe(&[written_there]).await.unwrap(),
        vec![written_there]
    );
    let there = Session::connect(&relay_b.url(), &writer, Some(pk(&key_b)))
        .await
        .unwrap();
    let fresh = items(&writer, written_there, 1..2);
    there.push(&fresh).await.unwrap();
    match live.recv().await.unwrap() {
        LiveEvent::Items(got) => assert_eq!(got[0].hash(), fresh[0].hash()),
        LiveEvent::Lagged => panic!("lagged"),
    }
    assert_eq!(
        link.status().syncs,
        1,
        "carried live, not by a periodic sync"
    );

    link.stop().await;
    relay_a.shutdown().await.unwrap();
    relay_b.shutdown().await.unwrap();
}

/// SYNC-64: a subject new at the other relay (created there after the link subscribed, so the
/// link is not subscribed to it) reaches this relay live: the other relay forwards its auth
/// op, and the link subscribes to the subject and reconciles it alone. Before, it waited for
/// the link's periodic full sync (30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_new_at_the_other_relay_arrives_live() {
    let Pair {
        store_a,
        store_b,
        policy_a,
        policy_b,
        relay_a,
        key_a,
        relay_b,
        key_b,
    } = Pair::start().await;
    let writer = SigningKey::generate();
    let (old, new) = (subject(1), subject(3));
    policy_b.grant_write(id(&writer), old);
    store_b.put(&items(&writer, old, 0..1)).unwrap();

    let client = Client::new(key_a.clone(), store_a.clone(), policy_a.clone());
    let _forwarding = relay_a.forward_through(&client);
    let mut link = client.add_link(relay_b.url(), Some(pk(&key_b)));
    let connected = link.wait_for(|s| s.connected).await;
    assert_eq!(
        connected.last_report.unwrap().offered,
        1,
        "the new subject is not known yet"
    );
    policy_b.grant_write(id(&writer), new);

    // The new subject's first op (an auth op: its genesis, or the grant that shares it), then
    // its content, pushed to relay B.
    let auth = {
        let content = item(&writer, new, 100, 64);
        keyhive_sync::Item::new(
            keyhive_sync::ItemKind::Auth,
            new,
            content.envelope().to_vec(),
        )
        .unwrap()
    };
    let mut batch = vec![auth];
    batch.extend(items(&writer, new, 0..3));
    let there = Session::connect(&relay_b.url(), &writer, Some(pk(&key_b)))
        .await
        .unwrap();
    there.push(&batch).await.unwrap();
    eventually(|| store_a.hashes(&new).unwrap().len() == 4).await;
    assert_eq!(
        link.status().syncs,
        1,
        "carried live, not by a periodic sync"
    );
    // Subscribed now: what follows is live too.
    there.push(&items(&writer, new, 3..4)).await.unwrap();
    eventually(|| store_a.hashes(&new).unwrap().len() == 5).await;
    assert_eq!(link.status().syncs, 1);

    link.stop().await;
    relay_a.shutdown().await.unwrap();
    relay_b.shutdown().await.unwrap();
}
