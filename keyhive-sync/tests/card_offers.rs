//! SYNC-81a: a device offers another device's contact card only while it shares a subject with
//! it. A relay serves that card back only then (RELAY-5), so before this rule every sync (every
//! CLI `sync`, every reconnect) pushed the card of each contact sharing nothing again, and the
//! relay answered "already held" each time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use keyhive_core::capability::{Access, AgentId};
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::identity::Device;
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::{MemoryStore, Relay, RelayConfig, Repo, Store, SubjectId};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_sharing_nothing_is_not_pushed_at_every_sync() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_store = Arc::new(MemoryStore::new());
    let policy = Arc::new(CapabilityPolicy::new([]));
    let relay = Relay::serve(
        listener,
        relay_store.clone(),
        policy,
        RelayConfig::new(SigningKey::generate()),
    )
    .unwrap();
    let (url, id) = (relay.url(), Some(relay.id()));
    let alice = Repo::in_memory(Device::generate(Some("alice".into()))).unwrap();
    let bob = Repo::in_memory(Device::generate(Some("bob".into()))).unwrap();
    let carol = Repo::in_memory(Device::generate(Some("carol".into()))).unwrap();
    alice.add_contact(bob.contact_card().unwrap()).unwrap();
    alice.add_contact(carol.contact_card().unwrap()).unwrap();
    let bob_card = SubjectId(bob.id().0);

    // Alice shares nothing yet: her own card travels, her contacts' cards do not.
    let first = alice.sync_with(&url, id).await.unwrap();
    assert!(first.pushed > 0, "{first:?}");
    assert!(relay_store.hashes(&bob_card).unwrap().is_empty());
    let again = alice.sync_with(&url, id).await.unwrap();
    assert_eq!((again.pushed, again.refused), (0, 0), "{again:?}");

    // Once Alice shares a document with Bob, his card is pushed (a co-member who never met him
    // reads it from the relay), once; Carol's still is not.
    let doc = alice.create_document().unwrap();
    alice
        .grant(&doc.0, AgentId::Individual(bob.id()), Access::Read)
        .unwrap();
    alice.sync_with(&url, id).await.unwrap();
    assert_eq!(relay_store.hashes(&bob_card).unwrap().len(), 1);
    assert!(
        relay_store
            .hashes(&SubjectId(carol.id().0))
            .unwrap()
            .is_empty()
    );
    let quiet = alice.sync_with(&url, id).await.unwrap();
    assert_eq!((quiet.pushed, quiet.refused), (0, 0), "{quiet:?}");

    // Bob, who never met Alice's card out of band, gets it from the relay and reads.
    let change = alice.write(doc, b"hello Bob").unwrap();
    alice.sync_with(&url, id).await.unwrap();
    bob.sync_with(&url, id).await.unwrap();
    assert_eq!(bob.read(doc, &change).unwrap(), b"hello Bob");

    for repo in [alice, bob, carol] {
        repo.shutdown().await.unwrap();
    }
    relay.shutdown().await.unwrap();
}
