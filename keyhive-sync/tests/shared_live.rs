//! SYNC-64 through the public handle: a document shared with a device while its link is
//! connected reaches it live (the relay forwards the grant, an auth op of a subject the link
//! is not subscribed to; the link subscribes and reconciles that subject alone). Before, a
//! newly shared document waited for the link's periodic full sync (30 s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use keyhive_core::capability::{Access, AgentId};
use keyhive_core::identity::Device;
use keyhive_sync::Repo;
use keyhive_sync::replica::Event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_shared_while_connected_arrives_live() {
    let relay = common::capability_relay().await;
    let (url, id) = (relay.url(), Some(relay.id()));
    let alice = Repo::in_memory(Device::generate(Some("alice".into()))).unwrap();
    let bob = Repo::in_memory(Device::generate(Some("bob".into()))).unwrap();
    alice.add_contact(bob.contact_card().unwrap()).unwrap();
    alice.connect(url.clone(), id).await;
    bob.connect(url.clone(), id).await;
    alice.connected().await;
    bob.connected().await;
    let mut events = bob.subscribe();

    // Shared after both links synced: only live delivery can bring it before the next
    // periodic sync.
    let doc = alice.create_document().unwrap();
    alice
        .grant(&doc.0, AgentId::Individual(bob.id()), Access::Read)
        .unwrap();
    let change = alice.write(doc, b"shared while you were online").unwrap();
    loop {
        match events.next_event().await {
            Some(Event::Readable { change: c, .. }) if c == change => break,
            Some(_) => continue,
            None => panic!("the replica closed"),
        }
    }
    assert_eq!(
        bob.read(doc, &change).unwrap(),
        b"shared while you were online"
    );
    // A periodic sync that brought it would finish right after the event (and count itself);
    // give it the time to, then check that only the link's first sync ran.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let links = bob.links().await;
    assert_eq!(links[0].1.syncs, 1, "carried live, not by a periodic sync");

    for r in [alice, bob] {
        r.shutdown().await.unwrap();
    }
    relay.shutdown().await.unwrap();
}
