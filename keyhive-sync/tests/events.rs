//! Issue 10, deliverable 5 (`specs/replica.md` REP-40..REP-46): events for apps, driven through
//! the public replica API with several devices and no network.

mod replicas;

use std::collections::BTreeSet;

use keyhive_core::Hash;
use keyhive_core::capability::{Access, Reason, Refusal, Validity};
use keyhive_core::identity::DocumentId;
use keyhive_sync::replica::{ChangeStatus, Event, Subscription};
use replicas::{R, all_items, card, me, replica, tag};

/// One-way sync: `to` ingests everything `from` stores.
fn push(from: &R, to: &mut R) {
    for (hash, result) in to.ingest_all(tag(from), all_items(from)).unwrap() {
        result.unwrap_or_else(|e| panic!("{hash}: {e}"));
    }
}

/// Every event queued now.
fn drain(sub: &Subscription) -> Vec<Event> {
    sub.try_iter().collect()
}

/// The changes reported readable, in order.
fn readable(events: &[Event]) -> Vec<Hash> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Readable { change, .. } => Some(*change),
            _ => None,
        })
        .collect()
}

/// What an app built from a document: the plaintext of every valid change it applied.
#[derive(Default)]
struct App {
    applied: Vec<(Hash, Vec<u8>)>,
}

impl App {
    /// Applies events as an app would: readable valid changes are applied; a content op
    /// whose validity changed (or a lag) makes it rebuild from the replica's history.
    fn on_events(&mut self, replica: &R, doc: DocumentId, events: &[Event]) {
        for event in events {
            match event {
                Event::Readable {
                    document,
                    change,
                    valid: true,
                    ..
                } if *document == doc => {
                    let mut bytes = Vec::new();
                    replica.read_change(doc, change, &mut bytes).unwrap();
                    self.applied.push((*change, bytes));
                }
                Event::ValidityChanged {
                    subject,
                    content: true,
                    ..
                } if *subject == doc.0 => self.rebuild(replica, doc),
                Event::Lagged { .. } => self.rebuild(replica, doc),
                _ => {}
            }
        }
    }

    fn rebuild(&mut self, replica: &R, doc: DocumentId) {
        self.applied.clear();
        for c in replica.changes(doc).unwrap() {
            if c.status == ChangeStatus::Valid && c.length.is_some() {
                let mut bytes = Vec::new();
                replica.read_change(doc, &c.op, &mut bytes).unwrap();
                self.applied.push((c.op, bytes));
            }
        }
    }

    fn texts(&self) -> Vec<&[u8]> {
        self.applied.iter().map(|(_, b)| b.as_slice()).collect()
    }
}

#[test]
fn an_edit_applied_before_its_authors_concurrent_revocation_is_reported_invalid() {
    let (mut alice, mut bob, mut carol) = (replica("alice"), replica("bob"), replica("carol"));
    let doc = alice.create_document().unwrap();
    alice.add_contact(card(&bob)).unwrap();
    alice.add_contact(card(&carol)).unwrap();
    alice.grant(&doc.0, me(&bob), Access::Read).unwrap();
    alice.grant(&doc.0, me(&carol), Access::Write).unwrap();
    alice.write(doc, b"a1").unwrap();
    push(&alice, &mut carol);

    let bob_events = bob.subscribe();
    let carol_events = carol.subscribe();
    let mut app = App::default();
    push(&alice, &mut bob);
    let first = drain(&bob_events);
    app.on_events(&bob, doc, &first);
    assert_eq!(app.texts(), [b"a1"]);
    assert!(
        first.iter().any(|e| matches!(
            e,
            Event::AccessChanged { subject, before: None, after: Some(Access::Read), .. }
                if *subject == doc.0
        )),
        "Bob is told he gained read: {first:?}"
    );

    // Carol edits offline while Alice, concurrently, revokes her.
    let edit = carol.write(doc, b"carol, concurrently").unwrap();
    let revocation = alice.revoke(&doc.0, me(&carol)).unwrap();
    assert_eq!(revocation.len(), 1);
    let revocation = revocation[0];

    // Bob applies Carol's edit first: it is valid.
    push(&carol, &mut bob);
    let events = drain(&bob_events);
    assert!(events.contains(&Event::Readable {
        document: doc,
        change: edit,
        author: carol.device().id(),
        valid: true,
    }));
    app.on_events(&bob, doc, &events);
    assert_eq!(app.texts(), [&b"a1"[..], b"carol, concurrently"]);

    // Then the revocation arrives: Bob learns the edit became invalid, naming the revocation.
    push(&alice, &mut bob);
    let events = drain(&bob_events);
    let changed: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::ValidityChanged { op, .. } if *op == edit))
        .collect();
    assert_eq!(changed.len(), 1, "{events:?}");
    let Event::ValidityChanged {
        subject,
        content,
        before,
        after,
        ..
    } = changed[0]
    else {
        unreachable!()
    };
    assert_eq!(
        (*subject, *content, before),
        (doc.0, true, &Validity::Valid)
    );
    assert!(matches!(
        after,
        Validity::Invalid(Refusal { rule: "CAP-11", reason: Reason::Excluded { revocation: r, .. } })
            if *r == revocation
    ));
    assert_eq!(changed[0].revocation(), Some(revocation));
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::MembershipChanged { subject, members }
                if *subject == doc.0 && !members.contains_key(&me(&carol))
        )),
        "Bob sees Carol leave the document's members: {events:?}"
    );
    // The app rebuilds without the invalid edit.
    app.on_events(&bob, doc, &events);
    assert_eq!(app.texts(), [b"a1"]);

    // Carol is told she lost access, and by which revocation; her own edit is invalid too.
    push(&alice, &mut carol);
    let events = drain(&carol_events);
    assert!(
        events.contains(&Event::AccessChanged {
            subject: doc.0,
            before: Some(Access::Write),
            after: None,
            revocation: Some(revocation),
        }),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::ValidityChanged { op, .. } if *op == edit))
    );
}

#[test]
fn each_change_is_reported_readable_exactly_once_whatever_the_route() {
    let (mut alice, mut bob, mut carol) = (replica("alice"), replica("bob"), replica("carol"));
    let doc = alice.create_document().unwrap();
    alice.add_contact(card(&bob)).unwrap();
    alice.add_contact(card(&carol)).unwrap();
    alice.grant(&doc.0, me(&bob), Access::Read).unwrap();
    alice.grant(&doc.0, me(&carol), Access::Read).unwrap();
    let mine = alice.subscribe();
    let mut written = Vec::new();
    for n in 0..3 {
        written.push(alice.write(doc, format!("change {n}").as_bytes()).unwrap());
    }
    assert_eq!(
        readable(&drain(&mine)),
        written,
        "local writes are readable events too, in order"
    );

    push(&alice, &mut carol);
    let bob_events = bob.subscribe();
    // The same changes reach Bob from Alice, again from Alice, and from Carol, one item at
    // a time in reverse order (each waits for what it names).
    push(&alice, &mut bob);
    push(&alice, &mut bob);
    for item in all_items(&carol).into_iter().rev() {
        bob.ingest(tag(&carol), &item).unwrap();
    }
    push(&carol, &mut bob);
    let got = readable(&drain(&bob_events));
    assert_eq!(got, written, "each once, in causal order");

    // A later change is reported alone.
    let later = alice.write(doc, b"later").unwrap();
    push(&alice, &mut bob);
    assert_eq!(readable(&drain(&bob_events)), [later]);
}

/// REP-41: a streamed change is readable only when every piece it lists is stored. Its
/// pieces are admitted after the change that lists them (REP-21), so they often come in a
/// later batch: the change is reported by the batch that stores the last piece, never before
/// (a watcher printed an arrival that `get` then could not read, `docs/cli-live.md` LIVE-8).
#[test]
fn a_streamed_change_is_reported_readable_once_its_pieces_are_stored() {
    let (mut alice, mut bob) = (replica("alice"), replica("bob"));
    let doc = alice.create_document().unwrap();
    alice.add_contact(card(&bob)).unwrap();
    alice.grant(&doc.0, me(&bob), Access::Read).unwrap();
    push(&alice, &mut bob);
    let bob_events = bob.subscribe();
    let content = vec![7u8; 3 * keyhive_sync::replica::PIECE_LEN + 11];
    let change = alice.write_stream(doc, content.as_slice()).unwrap();
    let is_piece = |item: &keyhive_sync::Item| {
        matches!(
            keyhive_sync::blob::Blob::from_bytes(item.envelope()),
            Ok(keyhive_sync::blob::Blob::Piece { .. })
        )
    };
    let (pieces, rest): (Vec<_>, Vec<_>) = all_items(&alice).into_iter().partition(is_piece);
    assert!(pieces.len() > 1, "the change is streamed in pieces");
    for (hash, result) in bob.ingest_all(tag(&alice), rest).unwrap() {
        result.unwrap_or_else(|e| panic!("{hash}: {e}"));
    }
    assert_eq!(
        readable(&drain(&bob_events)),
        [],
        "no piece is stored yet: not readable"
    );
    let (last, first) = pieces.split_last().unwrap();
    for (hash, result) in bob.ingest_all(tag(&alice), first.to_vec()).unwrap() {
        result.unwrap_or_else(|e| panic!("{hash}: {e}"));
    }
    assert_eq!(readable(&drain(&bob_events)), [], "one piece still missing");
    bob.ingest(tag(&alice), last).unwrap();
    assert_eq!(readable(&drain(&bob_events)), [change]);
    let mut read = Vec::new();
    bob.read_change(doc, &change, &mut read).unwrap();
    assert_eq!(read, content);
}

#[test]
fn access_gained_and_lost_follow_grants_and_revocations() {
    let (mut alice, mut dave) = (replica("alice"), replica("dave"));
    let folder = alice.create_document().unwrap();
    let doc = alice.create_document().unwrap();
    alice
        .grant(
            &doc.0,
            keyhive_core::capability::AgentId::Document(folder),
            Access::Write,
        )
        .unwrap();
    alice.write(doc, b"history").unwrap();
    let dave_events = dave.subscribe();

    // Dave gains read on the folder, and so on the document in it, and reads its history.
    alice.add_contact(card(&dave)).unwrap();
    alice.grant(&folder.0, me(&dave), Access::Read).unwrap();
    alice.prepare_all().unwrap();
    push(&alice, &mut dave);
    let events = drain(&dave_events);
    let gained: BTreeSet<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::AccessChanged {
                subject,
                before: None,
                after: Some(Access::Read),
                revocation: None,
            } => Some(*subject),
            _ => None,
        })
        .collect();
    assert_eq!(gained, BTreeSet::from([folder.0, doc.0]), "{events:?}");
    assert_eq!(readable(&events).len(), 1, "the history became readable");

    // Revoking the folder grant removes him from both, naming the revocation.
    let revocation = alice.revoke(&folder.0, me(&dave)).unwrap()[0];
    push(&alice, &mut dave);
    let events = drain(&dave_events);
    for subject in [folder.0, doc.0] {
        assert!(
            events.contains(&Event::AccessChanged {
                subject,
                before: Some(Access::Read),
                after: None,
                revocation: Some(revocation),
            }),
            "{events:?}"
        );
    }
}

#[test]
fn a_slow_subscriber_is_bounded_and_told_it_lagged() {
    let (mut alice, mut bob) = (replica("alice"), replica("bob"));
    let doc = alice.create_document().unwrap();
    alice.add_contact(card(&bob)).unwrap();
    alice.grant(&doc.0, me(&bob), Access::Read).unwrap();
    push(&alice, &mut bob);
    let slow = bob.subscribe_with_capacity(2);
    let fast = bob.subscribe();
    for n in 0..10 {
        alice.write(doc, format!("{n}").as_bytes()).unwrap();
        push(&alice, &mut bob);
    }
    let events = drain(&slow);
    assert_eq!(events.len(), 3, "two events, then the gap: {events:?}");
    assert!(matches!(events[2], Event::Lagged { missed: 8 }));
    // Once drained, the slow subscriber receives again; the fast one missed nothing.
    alice.write(doc, b"after").unwrap();
    push(&alice, &mut bob);
    assert_eq!(readable(&drain(&slow)).len(), 1);
    assert_eq!(readable(&drain(&fast)).len(), 11);
}

#[test]
fn a_blocking_iterator_ends_when_the_replica_is_dropped() {
    let mut alice = replica("alice");
    let events = alice.subscribe();
    let doc = alice.create_document().unwrap();
    let change = alice.write(doc, b"x").unwrap();
    let reader = std::thread::spawn(move || events.into_iter().collect::<Vec<_>>());
    drop(alice);
    let events = reader.join().unwrap();
    assert_eq!(readable(&events), [change]);
}
