//! REP-33, the causal past of what a removed device offers (simulation seeds 30893, 30919).
//!
//! Bob administers a document through a group. Offline, he grants Carol `read` on it through
//! the group, writes it, and leaves the group. His leave excludes the grant (CAP-11: the leave,
//! an op of the group, cannot have the document's ops in its past) but not the write, which it
//! witnesses (CAP-22); the write names the grant as a parent. Offering only his own valid ops,
//! Bob pushed the write without the grant: every relay refused it for its missing parent, and
//! every device that got it from him kept it pending. Now he offers their causal past in the
//! document as well, and the write reaches the relay and Alice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod peers;

use std::sync::Arc;

use keyhive_core::capability::{Access, AgentId};
use keyhive_sync::MemoryStore;
use keyhive_sync::Store;
use keyhive_sync::capability_policy::CapabilityPolicy;

use peers::Peer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_after_an_excluded_grant_still_reaches_every_reader() {
    let relay_store = Arc::new(MemoryStore::new());
    let (relay, _) = common::start(relay_store.clone(), Arc::new(CapabilityPolicy::new([]))).await;
    let url = relay.url();
    let (alice, bob, carol) = (Peer::new("alice"), Peer::new("bob"), Peer::new("carol"));
    let (group, doc) = {
        let mut a = alice.replica.lock().unwrap();
        let mut b = bob.replica.lock().unwrap();
        let c = carol.replica.lock().unwrap();
        for card in [
            b.device().contact_card().unwrap(),
            c.device().contact_card().unwrap(),
        ] {
            a.add_contact(card).unwrap();
        }
        for card in [
            a.device().contact_card().unwrap(),
            c.device().contact_card().unwrap(),
        ] {
            b.add_contact(card).unwrap();
        }
        let group = a.create_group().unwrap();
        a.grant(
            &group.0,
            AgentId::Individual(b.device().id()),
            Access::Admin,
        )
        .unwrap();
        let doc = a.create_document().unwrap();
        a.grant(&doc.0, AgentId::Group(group), Access::Admin)
            .unwrap();
        a.write(doc, b"v1").unwrap();
        (group, doc)
    };
    alice.sync(&url).await;
    bob.sync(&url).await;
    assert_eq!(bob.read(doc).as_deref(), Some(&b"v1"[..]));

    // Offline: a grant through the group, a write naming it, then the leave.
    let (grant, write) = {
        let mut b = bob.replica.lock().unwrap();
        let grant = b
            .grant(&doc.0, AgentId::Individual(carol.id()), Access::Read)
            .unwrap();
        let write = b.write(doc, b"offline").unwrap();
        let me = AgentId::Individual(b.device().id());
        b.revoke(&group.0, me).unwrap();
        assert!(
            b.validity(&write).is_some_and(|v| v.is_valid()),
            "witnessed by the leave"
        );
        assert!(
            !b.validity(&grant).is_some_and(|v| v.is_valid()),
            "excluded by the leave"
        );
        (grant, write)
    };

    let first = bob.sync(&url).await;
    assert_eq!(first.refused, 0, "{first:?}");
    assert!(
        relay_store.contains(&grant).unwrap(),
        "the excluded parent reached the relay"
    );
    assert!(
        relay_store.contains(&write).unwrap(),
        "the valid write reached the relay"
    );

    alice.sync(&url).await;
    assert!(alice.holds(&write));
    let bobs = bob.replica.lock().unwrap().validity(&grant);
    {
        let a = alice.replica.lock().unwrap();
        assert!(a.validity(&write).is_some_and(|v| v.is_valid()));
        assert_eq!(a.validity(&grant), bobs);
    }
    assert_eq!(alice.read(doc).as_deref(), Some(&b"offline"[..]));

    // Nothing is left to push: the next sync refuses nothing and pushes nothing of the document.
    let next = bob.sync(&url).await;
    assert_eq!(next.refused, 0, "{next:?}");
    assert_eq!(next.parked, 0, "{next:?}");
}
