//! REP-3b, CGKA-37: after a sync, a root left in conflict by concurrent updates is re-keyed by
//! its resolver alone, so devices syncing together do not answer each other's updates with
//! more concurrent updates; a device that encrypts still re-keys first (CGKA-19).

mod replicas;

use keyhive_core::capability::Access;
use keyhive_core::cgka::{CgkaBody, SignedCgkaOp};
use keyhive_core::identity::{DocumentId, IndividualId};
use keyhive_sync::{Item, ItemKind};
use replicas::{R, all_items, card, me, read, replica, tag};

fn sync_where(from: &R, to: &mut R, keep: impl Fn(&Item) -> bool) {
    for _ in 0..4 {
        let batch: Vec<Item> = all_items(from).into_iter().filter(&keep).collect();
        to.ingest_all(tag(from), batch).expect("ingest");
    }
}

fn sync_all(rs: &mut [R]) {
    for _ in 0..2 {
        for from in 0..rs.len() {
            for to in 0..rs.len() {
                if from != to {
                    let (a, b) = pick(rs, from, to);
                    sync_where(a, b, |_| true);
                }
            }
        }
    }
}

fn pick(rs: &mut [R], from: usize, to: usize) -> (&R, &mut R) {
    if from < to {
        let (l, r) = rs.split_at_mut(to);
        (&l[from], &mut r[0])
    } else {
        let (l, r) = rs.split_at_mut(from);
        (&r[0], &mut l[to])
    }
}

fn is_update(item: &Item) -> bool {
    item.kind() == ItemKind::Cgka
        && SignedCgkaOp::decode(item.envelope())
            .is_ok_and(|op| matches!(op.unverified_payload().body, CgkaBody::Update(_)))
}

fn ops(r: &R, doc: DocumentId) -> usize {
    r.cgka(&doc).expect("cgka").op_count()
}

fn resolver(r: &R, doc: DocumentId) -> Option<IndividualId> {
    r.cgka(&doc).expect("cgka").conflict_resolver()
}

/// Alice, Bob and Carol (admins, seated, root agreed) and a document. Alice then seats Dave;
/// Bob and Carol receive the seat but not Alice's update after it, so each re-keys the blank
/// root (REP-3): three concurrent updates, all after the seat. Everyone then syncs.
fn three_concurrent_updates() -> (Vec<R>, DocumentId) {
    let (mut alice, mut bob, mut carol, dave) = (
        replica("alice"),
        replica("bob"),
        replica("carol"),
        replica("dave"),
    );
    let doc = alice.create_document().expect("doc");
    for r in [&bob, &carol, &dave] {
        alice.add_contact(card(r)).expect("contact");
    }
    alice.grant(&doc.0, me(&bob), Access::Admin).expect("grant");
    alice
        .grant(&doc.0, me(&carol), Access::Admin)
        .expect("grant");
    alice.prepare_all().expect("prepare");
    sync_where(&alice, &mut bob, |_| true);
    sync_where(&alice, &mut carol, |_| true);
    alice.grant(&doc.0, me(&dave), Access::Read).expect("grant");
    alice.prepare_all().expect("prepare");
    let before = ops(&bob, doc);
    sync_where(&alice, &mut bob, |i| !is_update(i));
    sync_where(&alice, &mut carol, |i| !is_update(i));
    assert_eq!(
        ops(&bob, doc),
        before + 1,
        "the seat arrived, the update did not"
    );
    for r in [&mut bob, &mut carol] {
        assert!(r.cgka(&doc).unwrap().must_update_before_encrypt());
        assert_eq!(resolver(r, doc), None, "a blank root has no resolver");
        r.prepare_all().expect("prepare");
    }
    let mut rs = vec![alice, bob, carol];
    sync_all(&mut rs);
    (rs, doc)
}

#[test]
fn only_the_resolver_rekeys_a_conflict_after_a_sync() {
    let (mut rs, doc) = three_concurrent_updates();
    let chosen = resolver(&rs[0], doc).expect("the root is in conflict");
    assert!(rs.iter().all(|r| resolver(r, doc) == Some(chosen)));
    let at = rs
        .iter()
        .position(|r| r.device().id() == chosen)
        .expect("the resolver is one of the three");
    // REP-3b: every other device leaves the conflict to the resolver.
    for (i, r) in rs.iter_mut().enumerate().filter(|(i, _)| *i != at) {
        let before = ops(r, doc);
        assert!(r.prepare_all().expect("prepare").is_empty(), "replica {i}");
        assert_eq!(ops(r, doc), before, "replica {i} issued nothing");
    }
    // The resolver re-keys once; after a sync the root is agreed everywhere and nobody
    // re-keys again.
    let before = ops(&rs[at], doc);
    rs[at].prepare_all().expect("prepare");
    assert_eq!(ops(&rs[at], doc), before + 1, "one update");
    sync_all(&mut rs);
    let epoch = rs[at].cgka(&doc).unwrap().current_epoch().map(|(h, _)| h);
    assert!(epoch.is_some());
    for r in rs.iter_mut() {
        assert_eq!(r.cgka(&doc).unwrap().current_epoch().map(|(h, _)| h), epoch);
        let before = ops(r, doc);
        r.prepare_all().expect("prepare");
        assert_eq!(ops(r, doc), before);
    }
}

#[test]
fn a_device_writing_during_a_conflict_rekeys_first_and_is_read() {
    let (mut rs, doc) = three_concurrent_updates();
    let chosen = resolver(&rs[0], doc).expect("the root is in conflict");
    let at = rs
        .iter()
        .position(|r| r.device().id() != chosen)
        .expect("a device that is not the resolver");
    // It leaves the conflict after a sync (twice: the second finds nothing changed)...
    let before = ops(&rs[at], doc);
    for _ in 0..2 {
        assert!(rs[at].prepare_all().expect("prepare").is_empty());
    }
    assert_eq!(ops(&rs[at], doc), before);
    // ...but writing re-keys first.
    rs[at].write(doc, b"during the conflict").expect("write");
    assert_eq!(ops(&rs[at], doc), before + 1, "the writer re-keyed first");
    sync_all(&mut rs);
    for r in &rs {
        assert_eq!(read(r, doc).as_deref(), Some(&b"during the conflict"[..]));
        assert_eq!(resolver(r, doc), None);
    }
}
