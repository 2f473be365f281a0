//! Devices syncing with each other directly (`Repo::listen`, `Repo::connect`), against a
//! hostile peer:
//!
//! - RELAY-5 on a device serving peers (`ReplicaGate`): a contact card is served only to its
//!   own device and to devices sharing a subject with it, as a relay serves it; the serving
//!   device's own card to anyone. Before, any key that completed the handshake was offered,
//!   and could pull, every card the device knew, with its name: its whole contact list.
//! - SYNC-104 there too: a stranger stores at most its quota.
//! - REP-2b: a device syncing with a peer device sends it only what that device may be
//!   served; before, it pushed every subject it held.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use keyhive_core::capability::{Access, AgentId, AnyVerified};
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::identity::{Device, Genesis};
use keyhive_sync::client::Session;
use keyhive_sync::protocol::PushOutcome;
use keyhive_sync::replica::op_item;
use keyhive_sync::{Item, ItemKind, Repo, Store, SubjectId};

fn repo(name: &str) -> Repo {
    Repo::in_memory(Device::generate(Some(name.into()))).unwrap()
}

fn card_item(repo: &Repo) -> Item {
    let card = repo.contact_card().unwrap();
    Item::new(
        ItemKind::Auth,
        SubjectId(card.device),
        card.as_bytes().to_vec(),
    )
    .unwrap()
}

/// What a device with `key` is offered by the peer at `url`, and which of `cards` it can pull.
async fn served(
    url: &str,
    key: &SigningKey,
    alice: &Repo,
    cards: &[&Item],
) -> (BTreeSet<SubjectId>, usize) {
    let session = Session::connect(url, key, Some(alice.id().0))
        .await
        .unwrap();
    let offered = session
        .collection()
        .await
        .unwrap()
        .iter()
        .map(|o| o.subject)
        .collect();
    let hashes: Vec<_> = cards.iter().map(|c| c.hash()).collect();
    let pulled = session.pull(&hashes).await.unwrap().len();
    (offered, pulled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay5_a_peer_is_served_only_the_cards_of_devices_it_shares_a_subject_with() {
    let (alice, bob, carol) = (repo("alice"), repo("bob"), repo("carol"));
    alice.add_contact(bob.contact_card().unwrap()).unwrap();
    alice.add_contact(carol.contact_card().unwrap()).unwrap();
    let doc = alice.create_document().unwrap();
    alice
        .grant(&doc.0, AgentId::Individual(bob.id()), Access::Read)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = alice.listen(listener).await.unwrap();
    let (alice_card, bob_card, carol_card) =
        (card_item(&alice), card_item(&bob), card_item(&carol));
    let cards = [&bob_card, &carol_card];
    let subject = |item: &Item| item.subject();

    // A stranger learns nothing of whom Alice knows.
    let stranger = SigningKey::generate();
    let (offered, pulled) = served(&url, &stranger, &alice, &cards).await;
    assert!(!offered.contains(&subject(&bob_card)), "{offered:?}");
    assert!(!offered.contains(&subject(&carol_card)));
    assert_eq!(pulled, 0, "no contact card pulled by a stranger");
    assert!(!offered.contains(&SubjectId(doc.0)));

    // Bob shares the document with Alice: her card and his own, not Carol's.
    let bob_key = bob.replica().device().signing_key().clone();
    let (offered, pulled) = served(&url, &bob_key, &alice, &[&alice_card, &carol_card]).await;
    assert!(offered.contains(&subject(&alice_card)));
    assert!(offered.contains(&SubjectId(doc.0)));
    assert!(!offered.contains(&subject(&carol_card)), "{offered:?}");
    assert_eq!(pulled, 1, "Alice's card, not Carol's");

    // Once Carol shares the document too, Bob is served her card.
    alice
        .grant(&doc.0, AgentId::Individual(carol.id()), Access::Read)
        .unwrap();
    let (offered, pulled) = served(&url, &bob_key, &alice, &[&alice_card, &carol_card]).await;
    assert!(offered.contains(&subject(&carol_card)));
    assert_eq!(pulled, 2);
    alice.shutdown().await.unwrap();
}

/// SYNC-104 on a device serving peers: a key nobody granted anything (a stranger) stores at
/// most the stranger quota in the device's store, as at a relay; before, a device listening
/// for peers stored every subject any key that completed the handshake pushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync104_a_stranger_stores_at_most_its_quota_on_a_device_serving_peers() {
    let alice = repo("alice");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = alice.listen(listener).await.unwrap();
    let quota = keyhive_sync::relay::Limits::default().stranger_quota.items as usize;
    let stranger = Device::generate(Some("stranger".into()));
    let flood: Vec<Item> = (0..quota * 3)
        .map(|_| {
            let genesis = Genesis::create_group(stranger.id()).unwrap();
            op_item(&AnyVerified::Genesis(genesis)).unwrap()
        })
        .collect();
    let before = alice.client().store().subjects().unwrap().len();
    let session = Session::connect(&url, stranger.signing_key(), Some(alice.id().0))
        .await
        .unwrap();
    let mut stored = 0;
    for frame in flood.chunks(500) {
        match session.push(frame).await {
            Ok(outcomes) => {
                stored += outcomes
                    .iter()
                    .filter(|o| matches!(o, PushOutcome::Stored))
                    .count()
            }
            // Refused whole (QuotaExceeded) or disconnected for pushing on after it.
            Err(_) => break,
        }
    }
    let held = alice.client().store().subjects().unwrap().len() - before;
    assert!(stored <= quota, "{stored} stored, quota {quota}");
    assert!(held <= quota, "{held} new subjects held, quota {quota}");
    alice.shutdown().await.unwrap();
}

/// RELAY-5, CAP-21 for a device syncing with another device directly (`Repo::connect` with
/// the peer's device id): it pushes only what that device may be served, as its own listener
/// would serve it. A peer that stores everything it is sent (a hostile listener, here a relay
/// under Bob's key accepting everything) receives nothing of Alice's private document: not
/// its ops (who shares it with whom), its ciphertext or its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_pushes_to_a_peer_device_only_what_that_device_may_pull() {
    let (alice, bob) = (repo("alice"), repo("bob"));
    let carol = repo("carol");
    alice.add_contact(bob.contact_card().unwrap()).unwrap();
    alice.add_contact(carol.contact_card().unwrap()).unwrap();
    let shared = alice.create_document().unwrap();
    alice
        .grant(&shared.0, AgentId::Individual(bob.id()), Access::Read)
        .unwrap();
    alice.write(shared, b"for bob").unwrap();
    let private = alice.create_document().unwrap();
    alice
        .grant(&private.0, AgentId::Individual(carol.id()), Access::Write)
        .unwrap();
    alice.write(private, b"not for bob").unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let kept = std::sync::Arc::new(keyhive_sync::MemoryStore::new());
    let hostile = keyhive_sync::Relay::serve(
        listener,
        kept.clone(),
        std::sync::Arc::new(keyhive_sync::policy::AllowAll),
        keyhive_sync::RelayConfig::for_device(&bob.replica().device().clone()),
    )
    .unwrap();
    alice.connect(hostile.url(), Some(bob.id().0)).await;
    alice.sync().await.unwrap();
    let subjects = kept.subjects().unwrap();
    assert!(subjects.contains(&SubjectId(shared.0)), "{subjects:?}");
    assert!(
        !subjects.contains(&SubjectId(private.0)),
        "Alice's private document reached Bob's device"
    );
    assert!(
        !subjects.contains(&SubjectId(carol.id().0)),
        "Carol's card (she shares nothing with Bob) reached Bob's device"
    );
    alice.shutdown().await.unwrap();
    hostile.shutdown().await.unwrap();
}
