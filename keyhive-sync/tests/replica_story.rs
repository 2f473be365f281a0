//! The replica layer end to end, without a network: sharing, reading, revoking, rekeying,
//! late members reading history, a pull-only peer, and large streamed content.

mod replicas;

use keyhive_core::capability::{Access, AgentId};
use keyhive_sync::replica::ChangeStatus;
use replicas::{R, all_items, card, me, read, replica, tag};

/// One-way sync: `to` ingests everything `from` stores.
fn push(from: &R, to: &mut R) {
    for (hash, result) in to.ingest_all(tag(from), all_items(from)).unwrap() {
        result.unwrap_or_else(|e| panic!("{hash}: {e}"));
    }
}

#[test]
fn share_read_revoke_rekey() {
    let (mut alice, mut bob, mut carol) = (replica("alice"), replica("bob"), replica("carol"));
    let doc = alice.create_document().unwrap();
    alice.add_contact(card(&bob)).unwrap();
    alice.add_contact(card(&carol)).unwrap();
    alice.grant(&doc.0, me(&bob), Access::Read).unwrap();
    alice.grant(&doc.0, me(&carol), Access::Write).unwrap();
    alice.write(doc, b"v1 for bob and carol").unwrap();

    push(&alice, &mut bob);
    push(&alice, &mut carol);
    assert_eq!(read(&bob, doc).unwrap(), b"v1 for bob and carol");
    assert_eq!(read(&carol, doc).unwrap(), b"v1 for bob and carol");

    // Bob may read but not write: his replica refuses to build the op.
    assert!(bob.write(doc, b"bob tries").is_err());

    // Alice revokes Bob; Carol (not the revoker) learns of it and writes: Bob cannot read it.
    alice.revoke(&doc.0, me(&bob)).unwrap();
    push(&alice, &mut carol);
    carol.write(doc, b"v2 after bob left").unwrap();
    push(&carol, &mut alice);
    push(&carol, &mut bob);
    push(&alice, &mut bob);
    assert_eq!(read(&alice, doc).unwrap(), b"v2 after bob left");
    let changes = bob.changes(doc).unwrap();
    assert_eq!(changes.len(), 2);
    assert!(
        changes[0].length.is_some(),
        "bob keeps what he could read before"
    );
    assert!(
        changes[1].length.is_none(),
        "bob cannot decrypt the change after his removal"
    );
    assert_eq!(changes[1].status, ChangeStatus::Valid);
}

#[test]
fn member_added_later_reads_history_without_new_content() {
    let (mut alice, mut dave) = (replica("alice"), replica("dave"));
    let doc = alice.create_document().unwrap();
    alice.write(doc, b"first").unwrap();
    alice.write(doc, b"second").unwrap();
    alice.add_contact(card(&dave)).unwrap();
    alice.grant(&doc.0, me(&dave), Access::Read).unwrap();
    // Alice only rekeys (no content written), e.g. when she next syncs.
    alice.prepare(doc).unwrap();
    push(&alice, &mut dave);
    let changes = dave.changes(doc).unwrap();
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().all(|c| c.length.is_some()), "{changes:?}");
    assert_eq!(read(&dave, doc).unwrap(), b"second");
}

#[test]
fn pull_only_peer_gets_no_key() {
    let (mut alice, mut relay) = (replica("alice"), replica("relay"));
    let doc = alice.create_document().unwrap();
    alice.add_contact(card(&relay)).unwrap();
    alice.grant(&doc.0, me(&relay), Access::Pull).unwrap();
    alice.write(doc, b"secret").unwrap();
    push(&alice, &mut relay);
    assert!(read(&relay, doc).is_none());
    assert!(
        relay.prepare(doc).is_err(),
        "a pull-only peer cannot seat itself"
    );
}

#[test]
fn folder_grant_reaches_documents_and_large_content_streams() {
    let (mut alice, mut bob) = (replica("alice"), replica("bob"));
    let folder = alice.create_document().unwrap();
    let docs = [
        alice.create_document().unwrap(),
        alice.create_document().unwrap(),
    ];
    for doc in docs {
        alice
            .grant(&doc.0, AgentId::Document(folder), Access::Write)
            .unwrap();
    }
    alice.add_contact(card(&bob)).unwrap();
    alice.grant(&folder.0, me(&bob), Access::Read).unwrap();
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    alice.write(docs[0], &big).unwrap();
    alice.write(docs[1], b"small").unwrap();
    push(&alice, &mut bob);
    assert_eq!(read(&bob, docs[0]).unwrap(), big);
    assert_eq!(read(&bob, docs[1]).unwrap(), b"small");

    // Revoking the folder grant removes Bob from every document in the folder and re-keys each.
    alice.revoke(&folder.0, me(&bob)).unwrap();
    for doc in docs {
        assert!(!alice.checker().can(me(&bob), Access::Read, &doc.0));
        alice.write(doc, b"after").unwrap();
        let members = alice.cgka(&doc).unwrap().members();
        assert!(!members.contains(&bob.device().id()));
    }
    push(&alice, &mut bob);
    for doc in docs {
        let changes = bob.changes(doc).unwrap();
        assert!(
            changes.last().unwrap().length.is_none(),
            "bob reads past the revocation"
        );
    }
}
