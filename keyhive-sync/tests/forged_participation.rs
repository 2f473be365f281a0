//! REP-30 (who counts as removed): a device revoked from a document through a group, that
//! never took part in the document, is not served the document's ops because it pushed an
//! unauthorised write to it (simulation seed 34025). A relay's graph keeps an op it refused as
//! statically unauthorised (RELAY-1/2, so that every replica agrees), without storing it; such
//! an op no longer counts as taking part (`Checker::took_part`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyhive_core::Hash;
use keyhive_core::capability::{Access, AgentId, ContentBody, Payload, Proof};
use keyhive_core::identity::Device;
use keyhive_core::signed::{Op, Verified};
use keyhive_sync::admission::apply_order;
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::policy::{AccessPolicy, Share};
use keyhive_sync::replica::Replica;
use keyhive_sync::{Item, ItemKind, MemoryStore, Store, SubjectId};

#[test]
fn an_unauthorised_write_does_not_make_a_revoked_device_a_removed_member() {
    let mut alice =
        Replica::open(Device::generate(Some("alice".into())), MemoryStore::new()).unwrap();
    let dave = Device::generate(Some("dave".into()));
    alice.add_contact(dave.contact_card().unwrap()).unwrap();
    let group = alice.create_group().unwrap();
    alice
        .grant(&group.0, AgentId::Individual(dave.id()), Access::Read)
        .unwrap();
    let doc = alice.create_document().unwrap();
    alice
        .grant(&doc.0, AgentId::Group(group), Access::Read)
        .unwrap();
    alice.write(doc, b"v1").unwrap();
    alice
        .revoke(&group.0, AgentId::Individual(dave.id()))
        .unwrap();

    // The relay holds all of it.
    let relay = CapabilityPolicy::new([]);
    let relay_store = MemoryStore::new();
    let mut items: Vec<Item> = alice
        .store()
        .subjects()
        .unwrap()
        .iter()
        .flat_map(|s| alice.store().hashes(s).unwrap())
        .map(|h| alice.store().get(&h).unwrap().unwrap())
        .collect();
    apply_order(&mut items);
    let from = alice.device().id();
    for item in items {
        if relay.check_push(&from, &item).is_ok() {
            relay_store.put(&[item]).unwrap();
        }
    }
    let subject = SubjectId(doc.0);
    let before = relay.share(&dave.id(), &subject);
    assert_ne!(before, Share::Ops, "dave never took part in the document");

    // Dave signs a write he may not make, naming the document's heads, and pushes it.
    let body = ContentBody {
        document: doc,
        auth_heads: Vec::new(),
        proof: Proof::Root,
        payload: Payload::Blob {
            hash: Hash::of_content(b"forged"),
            len: 6,
        },
    };
    let heads = alice.checker().content_heads(&doc.0);
    let op = Verified::sign(Op::new(dave.id().0, heads, body), dave.signing_key()).unwrap();
    let forged = Item::new(ItemKind::Content, subject, op.as_bytes().to_vec()).unwrap();
    assert!(relay.check_push(&dave.id(), &forged).is_err(), "refused");
    assert!(
        !relay_store.contains(&forged.hash()).unwrap(),
        "never stored"
    );

    // Refused, it changes nothing in what he is served.
    assert_eq!(relay.share(&dave.id(), &subject), before);
    assert!(!relay.may_pull(&dave.id(), &subject));
}
