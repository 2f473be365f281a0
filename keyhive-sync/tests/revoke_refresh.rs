//! `specs/cgka.md` CGKA-32 through the device API: a revocation replays no key agreement whose
//! add and remove answers it leaves unchanged (the device API's authority stamps its allowed
//! adds, ADM-5), and the tree it keeps is the one a full replay gives: a member that ingests the
//! whole shuffled history holds the same tree, reads the latest change, and the revoked members
//! cannot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyhive_core::capability::{Access, AgentId, PeerTag};
use keyhive_core::identity::{Device, DocumentId};
use keyhive_sync::replica::Replica;
use keyhive_sync::{Item, MemoryStore, Store};

fn all_items(replica: &Replica<MemoryStore>) -> Vec<Item> {
    let store = replica.store();
    let mut all = Vec::new();
    for subject in store.subjects().unwrap() {
        for hash in store.hashes(&subject).unwrap() {
            all.extend(store.get(&hash).unwrap());
        }
    }
    // Reverse store order: dependants before what they depend on.
    all.reverse();
    all
}

fn generation(replica: &Replica<MemoryStore>, doc: DocumentId) -> u64 {
    replica.cgka(&doc).unwrap().generation()
}

#[test]
fn a_revocation_replays_nothing_and_keeps_the_tree_a_full_replay_gives() {
    let mut alice =
        Replica::open(Device::generate(Some("alice".into())), MemoryStore::new()).unwrap();
    let doc = alice.create_document().unwrap();
    let members: Vec<Device> = (0..12).map(|_| Device::generate(None)).collect();
    for m in &members {
        alice.add_contact(m.contact_card().unwrap()).unwrap();
        alice
            .grant(&doc.0, AgentId::Individual(m.id()), Access::Read)
            .unwrap();
    }
    alice.write(doc, b"everyone").unwrap();

    for gone in &members[..3] {
        let before = generation(&alice, doc);
        alice
            .revoke(&doc.0, AgentId::Individual(gone.id()))
            .unwrap();
        assert_eq!(
            generation(&alice, doc),
            before,
            "the revocation changed no add or remove answer: no replay"
        );
        // The write removes the revoked device and re-keys.
        alice.write(doc, b"after a revoke").unwrap();
        assert!(!alice.cgka(&doc).unwrap().members().contains(&gone.id()));
    }
    let latest = alice.write(doc, b"latest").unwrap();

    // A remaining member replays the whole history from scratch.
    let reader = &members[7];
    let mut fresh = Replica::open(reader.clone(), MemoryStore::new()).unwrap();
    fresh
        .ingest_all(PeerTag::from(alice.device().id().0), all_items(&alice))
        .unwrap();
    assert_eq!(
        fresh.cgka(&doc).unwrap().tree(),
        alice.cgka(&doc).unwrap().tree(),
        "the tree kept without a replay is the full replay's"
    );
    let mut out = Vec::new();
    fresh.read_change(doc, &latest, &mut out).unwrap();
    assert_eq!(out, b"latest");

    // A revoked member that ingests everything cannot read the latest change.
    let mut revoked = Replica::open(members[0].clone(), MemoryStore::new()).unwrap();
    let _ = revoked.ingest_all(PeerTag::from(alice.device().id().0), all_items(&alice));
    let mut out = Vec::new();
    assert!(revoked.read_change(doc, &latest, &mut out).is_err());

    // Granting a revoked device again changes the answer on its remove (it holds `read` once
    // more, and Alice is an admin, so the remove stays allowed) and on nothing else: still the
    // full replay's tree after the next write seats it again.
    alice
        .grant(&doc.0, AgentId::Individual(members[0].id()), Access::Read)
        .unwrap();
    alice.write(doc, b"welcome back").unwrap();
    assert!(
        alice
            .cgka(&doc)
            .unwrap()
            .members()
            .contains(&members[0].id())
    );
    let mut again = Replica::open(members[8].clone(), MemoryStore::new()).unwrap();
    again
        .ingest_all(PeerTag::from(alice.device().id().0), all_items(&alice))
        .unwrap();
    assert_eq!(
        again.cgka(&doc).unwrap().tree(),
        alice.cgka(&doc).unwrap().tree()
    );
}
