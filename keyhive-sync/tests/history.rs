//! REP-23: a replica remembers what it opened of a document's history and, on each read, only
//! looks at what arrived since. These tests drive the incremental paths: a change whose blob
//! arrives after its op, more changes after a first read, and a member whose keys arrive after
//! the history (new epochs and entry points open changes found sealed before).

mod replicas;

use keyhive_core::capability::Access;
use keyhive_core::identity::DocumentId;
use keyhive_sync::{Item, ItemKind};
use replicas::{R, all_items, card, me, replica, tag};

fn sync_where(from: &R, to: &mut R, keep: impl Fn(&Item) -> bool) {
    for _ in 0..4 {
        let batch: Vec<Item> = all_items(from).into_iter().filter(&keep).collect();
        to.ingest_all(tag(from), batch).expect("ingest");
    }
}

fn sync(from: &R, to: &mut R) {
    sync_where(from, to, |_| true);
}

fn readable(r: &R, doc: DocumentId) -> Vec<Vec<u8>> {
    r.changes(doc)
        .expect("changes")
        .into_iter()
        .filter(|c| c.length.is_some())
        .map(|c| {
            let mut out = Vec::new();
            r.read_change(doc, &c.op, &mut out).expect("read");
            out
        })
        .collect()
}

#[test]
fn rep23_reads_follow_what_arrives() {
    let (mut alice, mut bob, mut dave) = (replica("alice"), replica("bob"), replica("dave"));
    let doc = alice.create_document().expect("doc");
    alice.add_contact(card(&bob)).expect("contact");
    alice.grant(&doc.0, me(&bob), Access::Read).expect("grant");
    alice.write(doc, b"c1").expect("write");
    sync(&alice, &mut bob);
    assert_eq!(readable(&bob, doc), vec![b"c1".to_vec()]);

    // More changes after a first read; c2's op arrives before its ciphertext (a change over
    // the inline limit travels as an op and a blob, INL-2; a small one is its op, INL-1).
    let c2 = vec![b'2'; 2048];
    alice.write(doc, &c2).expect("write");
    sync_where(&alice, &mut bob, |i| i.kind() != ItemKind::Blob);
    let listed = bob.changes(doc).expect("changes");
    assert_eq!(listed.len(), 2);
    assert!(listed[1].length.is_none(), "no ciphertext yet");
    sync(&alice, &mut bob);
    alice.write(doc, b"c3").expect("write");
    sync(&alice, &mut bob);
    assert_eq!(
        readable(&bob, doc),
        vec![b"c1".to_vec(), c2.clone(), b"c3".to_vec()]
    );

    // Dave is granted read but learns the history before anyone seats him: nothing opens.
    alice.add_contact(card(&dave)).expect("contact");
    alice.grant(&doc.0, me(&dave), Access::Read).expect("grant");
    sync(&alice, &mut dave);
    assert!(readable(&dave, doc).is_empty());
    // Alice seats him (new epoch, entry point): the changes found sealed before now open.
    alice.prepare_all().expect("prepare");
    sync(&alice, &mut dave);
    assert_eq!(
        readable(&dave, doc),
        vec![b"c1".to_vec(), c2.clone(), b"c3".to_vec()]
    );
    // And what he reads next is opened as it arrives.
    alice.write(doc, b"c4").expect("write");
    sync(&alice, &mut dave);
    assert_eq!(readable(&dave, doc).len(), 4);
}
