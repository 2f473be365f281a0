//! `specs/cgka.md` CGKA-24, CGKA-27..CGKA-31, CGKA-35 through the device API: the first write after
//! many one-by-one grants fills the key agreement's blank nodes in ops that each fit one sync
//! item; the write after a revoke then re-keys with O(log N) wraps; a member that ingests the
//! whole shuffled history reads the latest change and the revoked one cannot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyhive_core::capability::{Access, AgentId, PeerTag};
use keyhive_core::cgka::{CgkaBody, SignedCgkaOp};
use keyhive_core::identity::{Device, DocumentId};
use keyhive_sync::item::MAX_ENVELOPE_LEN;
use keyhive_sync::replica::Replica;
use keyhive_sync::{Item, ItemKind, MemoryStore, Store, SubjectId};

/// The document's key-agreement ops and every item, in store order.
fn items(replica: &Replica<MemoryStore>, doc: DocumentId) -> (Vec<SignedCgkaOp>, Vec<Item>) {
    let store = replica.store();
    let mut all = Vec::new();
    for subject in store.subjects().unwrap() {
        for hash in store.hashes(&subject).unwrap() {
            all.extend(store.get(&hash).unwrap());
        }
    }
    let cgka = all
        .iter()
        .filter(|i| i.kind() == ItemKind::Cgka && i.subject() == SubjectId(doc.0))
        .map(|i| SignedCgkaOp::decode(i.envelope()).unwrap())
        .collect();
    (cgka, all)
}

fn wraps(op: &SignedCgkaOp) -> Option<usize> {
    match &op.unverified_payload().body {
        CgkaBody::Update(path) => Some(path.nodes.iter().map(|n| n.wrapped.len()).sum()),
        _ => None,
    }
}

fn read(
    replica: &Replica<MemoryStore>,
    doc: DocumentId,
    op: &keyhive_core::Hash,
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    replica.read_change(doc, op, &mut out).ok().map(|_| out)
}

#[test]
fn first_write_fills_in_item_sized_ops_and_the_rekey_after_a_revoke_is_logarithmic() {
    // 1,600 members: the fill (at most about 130 B per node as the builder counts it,
    // CGKA-35) needs two ops of at most 192 KiB.
    let n = 1600;
    let mut alice =
        Replica::open(Device::generate(Some("alice".into())), MemoryStore::new()).unwrap();
    let doc = alice.create_document().unwrap();
    let members: Vec<Device> = (0..n).map(|_| Device::generate(None)).collect();
    for m in &members {
        alice.add_contact(m.contact_card().unwrap()).unwrap();
        alice
            .grant(&doc.0, AgentId::Individual(m.id()), Access::Read)
            .unwrap();
    }
    alice.write(doc, b"first").unwrap();
    let (ops, _) = items(&alice, doc);
    let fills = ops
        .iter()
        .filter(|op| matches!(op.unverified_payload().body, CgkaBody::FillByPosition(_)))
        .count();
    assert!(fills >= 2, "{fills} fill ops");
    assert!(
        ops.iter().all(|op| op.as_bytes().len() <= MAX_ENVELOPE_LEN),
        "every key-agreement op fits one item"
    );
    let depth = alice.cgka(&doc).unwrap().tree().depth() as usize;
    let updates: Vec<usize> = ops.iter().filter_map(wraps).collect();
    assert_eq!(updates.len(), 1);
    assert!(
        updates[0] <= depth,
        "the first update wraps {} keys",
        updates[0]
    );
    let before: Vec<_> = ops.iter().map(|op| op.hash()).collect();

    let gone = members[17].id();
    alice.revoke(&doc.0, AgentId::Individual(gone)).unwrap();
    let latest = alice.write(doc, b"after the revoke").unwrap();
    let (ops, all) = items(&alice, doc);
    let rekeys: Vec<usize> = ops
        .iter()
        .filter(|op| !before.contains(&op.hash()))
        .filter_map(wraps)
        .collect();
    assert_eq!(rekeys.len(), 1, "one re-key after the revoke");
    let rekey = rekeys[0];
    assert!(
        rekey <= 2 * depth,
        "the re-key wraps {rekey} keys for depth {depth}"
    );

    // A member and the revoked device ingest everything, shuffled.
    let mut shuffled = all;
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..shuffled.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        shuffled.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let from = PeerTag::from(alice.device().id().0);
    let mut member = Replica::open(members[900].clone(), MemoryStore::new()).unwrap();
    member.ingest_all(from, shuffled.clone()).unwrap();
    assert_eq!(
        read(&member, doc, &latest).as_deref(),
        Some(&b"after the revoke"[..])
    );
    let mut revoked = Replica::open(members[17].clone(), MemoryStore::new()).unwrap();
    revoked.ingest_all(from, shuffled).unwrap();
    assert_eq!(read(&revoked, doc, &latest), None);
}
