//! Revocation: cascades (CAP-13), who may revoke whom (CAP-9), races and seniority (CAP-12),
//! what a revoked member can still do (CAP-11) and re-adding (CAP-15).

use super::*;

#[test]
fn cap13_cascade_through_a_sub_delegate() {
    let alice = device("alice");
    let bob = device("bob");
    let carol = device("carol");
    let mut c = Checker::default();
    let doc = new_doc(&mut c, &alice);
    let ab = c.delegate(&alice, &doc, ind(&bob), Access::Admin).unwrap();
    let bc = c.delegate(&bob, &doc, ind(&carol), Access::Read).unwrap();
    assert!(c.can(ind(&carol), Access::Read, &doc));
    let r = c.revoke(&alice, &doc, &ab.hash()).unwrap();
    assert!(!c.can(ind(&bob), Access::Pull, &doc));
    assert!(!c.can(ind(&carol), Access::Pull, &doc), "cascade");
    // Bob's grant was made before the revocation: it stays a valid op, but grants nothing.
    assert!(c.op_validity(&bc.hash()).unwrap().is_valid());
    assert_eq!(c.grants(&bc.hash()), Some(false));
    assert_eq!(c.grants(&ab.hash()), Some(false));
    assert_eq!(c.grants(&r.hash()), None);
    match c.explain(ind(&carol), Access::Read, &doc) {
        Explanation::Refused(refusal) => {
            assert_eq!(refusal.rule, "CAP-13");
            assert_eq!(
                refusal.reason,
                Reason::Revoked {
                    revocation: r.hash(),
                    delegation: ab.hash()
                }
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn cap13_cascade_spares_an_independent_chain() {
    let alice = device("alice");
    let bob = device("bob");
    let carol = device("carol");
    let mut c = Checker::default();
    let doc = new_doc(&mut c, &alice);
    let ab = c.delegate(&alice, &doc, ind(&bob), Access::Admin).unwrap();
    c.delegate(&bob, &doc, ind(&carol), Access::Write).unwrap();
    c.delegate(&alice, &doc, ind(&carol), Access::Read).unwrap();
    c.revoke(&alice, &doc, &ab.hash()).unwrap();
    assert_eq!(c.level(ind(&carol), &doc), Some(Access::Read));
}

#[test]
fn cap9_admin_removes_a_member_it_did_not_add_but_not_a_senior() {
    let alice = device("alice");
    let bob = device("bob");
    let carol = device("carol");
    let dave = device("dave");
    let mut c = Checker::default();
    let doc = new_doc(&mut c, &alice);
    let ab = c.delegate(&alice, &doc, ind(&bob), Access::Admin).unwrap();
    let ac = c.delegate(&alice, &doc, ind(&carol), Access::Read).unwrap();
    // Bob (depth 1) removes Carol (depth 1), whom Alice added: peers may remove peers.
    let r = c.revoke(&bob, &doc, &ac.hash()).unwrap();
    assert!(c.op_validity(&r.hash()).unwrap().is_valid());
    assert!(!c.can(ind(&carol), Access::Pull, &doc));
    // Dave, added by Bob (depth 2), may not remove Bob (depth 1).
    c.delegate(&bob, &doc, ind(&dave), Access::Admin).unwrap();
    assert!(c.revoke(&dave, &doc, &ab.hash()).is_err());
    let dave_proof = c
        .find_proof(dave.id(), &doc, Access::Admin, u32::MAX)
        .unwrap();
    let body = AuthBody {
        subject: doc,
        action: Action::Revoke {
            delegation: ab.hash(),
            proof: dave_proof,
        },
        content_heads: vec![],
    };
    let mut preds = c.auth_heads(&doc);
    preds.push(ab.hash());
    let op = Verified::sign(Op::new(dave.id().0, preds, body), dave.signing_key()).unwrap();
    c.apply_verified(op.clone()).unwrap();
    match c.op_validity(&op.hash()).unwrap() {
        Validity::Invalid(r) => {
            assert_eq!(r.rule, "CAP-9");
            assert!(matches!(r.reason, Reason::Seniority { .. }));
        }
        Validity::Valid => panic!("junior revoked a senior"),
    }
    assert!(c.can(ind(&bob), Access::Admin, &doc));
}

#[test]
fn cap12_mutual_concurrent_revocation_of_two_admins() {
    let alice = device("alice");
    let bob = device("bob");
    let carol = device("carol");
    let mut a = Checker::default();
    let doc = new_doc(&mut a, &alice);
    let ab = a.delegate(&alice, &doc, ind(&bob), Access::Admin).unwrap();
    let ac = a
        .delegate(&alice, &doc, ind(&carol), Access::Admin)
        .unwrap();
    let mut b = Checker::default();
    let mut cr = Checker::default();
    sync(&a, &mut b);
    sync(&a, &mut cr);
    let rb = b.revoke(&bob, &doc, &ac.hash()).unwrap();
    let rc = cr.revoke(&carol, &doc, &ab.hash()).unwrap();
    sync(&b, &mut a);
    sync(&cr, &mut a);
    sync(&a, &mut b);
    sync(&a, &mut cr);
    for x in [&a, &b, &cr] {
        let bob_admin = x.can(ind(&bob), Access::Admin, &doc);
        let carol_admin = x.can(ind(&carol), Access::Admin, &doc);
        assert!(bob_admin ^ carol_admin, "exactly one survives");
        assert!(
            x.can(ind(&alice), Access::Admin, &doc),
            "root never removed"
        );
        // The smaller hash wins among peers of equal depth.
        let bob_wins = rb.hash() < rc.hash();
        assert_eq!(bob_admin, bob_wins);
        assert_eq!(x.op_validity(&rb.hash()).unwrap().is_valid(), bob_wins);
        assert_eq!(x.op_validity(&rc.hash()).unwrap().is_valid(), !bob_wins);
    }
    assert_eq!(*a.members(&doc), *b.members(&doc));
    assert_eq!(*a.members(&doc), *cr.members(&doc));
}

#[test]
fn cap12_senior_wins_a_concurrent_revocation_race() {
    let alice = device("alice");
    let bob = device("bob");
    let carol = device("carol");
    let mut a = Checker::default();
    let doc = new_doc(&mut a, &alice);
    let ab = a.delegate(&alice, &doc, ind(&bob), Access::Admin).unwrap();
    let ac = a
        .delegate(&alice, &doc, ind(&carol), Access::Admin)
        .unwrap();
    let mut b = Checker::default();
    sync(&a, &mut b);
    // Alice (root) removes Bob while Bob removes Carol.
    a.revoke(&alice, &doc, &ab.hash()).unwrap();
    let rb = b.revoke(&bob, &doc, &ac.hash()).unwrap();
    sync(&b, &mut a);
    sync(&a, &mut b);
    for x in [&a, &b] {
        assert!(!x.can(ind(&bob), Access::Pull, &doc));
        assert!(x.can(ind(&carol), Access::Admin, &doc));
        assert_eq!(invalid_rule(x, &rb.hash()), "CAP-11");
    }
}

#[test]
fn cap11_revoked_members_concurrent_grant_does_not_survive() {
    let alice = device("alice");
    let bob = device("bob");
    let dave = device("dave");
    let mut a = Checker::default();
    let doc = new_doc(&mut a, &alice);
    let ab = a.delegate(&alice, &doc, ind(&bob), Access::Admin).unwrap();
    let mut b = Checker::default();
    sync(&a, &mut b);
    a.revoke(&alice, &doc, &ab.hash()).unwrap();
    let bd = b.delegate(&bob, &doc, ind(&dave), Access::Write).unwrap();
    assert!(b.can(ind(&dave), Access::Write, &doc));
    sync(&a, &mut b);
    sync(&b, &mut a);
    for x in [&a, &b] {
        assert!(!x.can(ind(&dave), Access::Pull, &doc));
        assert_eq!(invalid_rule(x, &bd.hash()), "CAP-11");
    }
}

#[test]
fn cap11_back_dated_edit_by_a_revoked_writer_is_rejected() {
    let alice = device("alice");
    let bob = device("bob");
    let mut a = Checker::default();
    let doc = new_doc(&mut a, &alice);
    let document = DocumentId(doc);
    let ab = a.delegate(&alice, &doc, ind(&bob), Access::Write).unwrap();
    let mut b = Checker::default();
    sync(&a, &mut b);
    let early = b.write(&bob, document, b"before").unwrap();
    let heads_before = b.auth_heads(&doc);
    let proof = b
        .find_proof(bob.id(), &doc, Access::Write, u32::MAX)
        .unwrap();
    sync(&b, &mut a);
    a.revoke(&alice, &doc, &ab.hash()).unwrap();
    sync(&a, &mut b);
    // Bob, now revoked, claims an auth state from before his revocation.
    let body = ContentBody {
        document,
        auth_heads: heads_before,
        proof,
        payload: keyhive_core::capability::Payload::Blob {
            hash: Hash::of_content(b"after"),
            len: 5,
        },
    };
    let late: Verified<ContentOp> = Verified::sign(
        Op::new(bob.id().0, vec![early.hash()], body),
        bob.signing_key(),
    )
    .unwrap();
    for x in [&mut a, &mut b] {
        x.ingest(PeerTag::LOCAL, late.as_bytes()).unwrap();
        assert!(x.op_validity(&early.hash()).unwrap().is_valid(), "seen");
        assert_eq!(invalid_rule(x, &late.hash()), "CAP-11");
    }
    // A revoked writer's edit after seeing its revocation is refused too.
    assert!(b.write(&bob, document, b"x").is_err());
}

#[test]
fn cap15_re_adding_after_revocation() {
    let alice = device("alice");
    let bob = device("bob");
    let mut c = Checker::default();
    let doc = new_doc(&mut c, &alice);
    let d = c.delegate(&alice, &doc, ind(&bob), Access::Write).unwrap();
    c.revoke(&alice, &doc, &d.hash()).unwrap();
    assert!(!c.can(ind(&bob), Access::Pull, &doc));
    c.delegate(&alice, &doc, ind(&bob), Access::Read).unwrap();
    assert_eq!(c.level(ind(&bob), &doc), Some(Access::Read));
}

#[test]
fn cap9_an_admin_may_leave() {
    let alice = device("alice");
    let bob = device("bob");
    let mut c = Checker::default();
    let doc = new_doc(&mut c, &alice);
    let d = c.delegate(&alice, &doc, ind(&bob), Access::Admin).unwrap();
    let r = c.revoke(&bob, &doc, &d.hash()).unwrap();
    assert!(c.op_validity(&r.hash()).unwrap().is_valid());
    assert!(!c.can(ind(&bob), Access::Pull, &doc));
}

#[test]
fn cap11_ops_after_own_revocation_are_invalid() {
    let alice = device("alice");
    let bob = device("bob");
    let carol = device("carol");
    let mut c = Checker::default();
    let doc = new_doc(&mut c, &alice);
    let d = c.delegate(&alice, &doc, ind(&bob), Access::Admin).unwrap();
    let proof = c
        .find_proof(bob.id(), &doc, Access::Admin, u32::MAX)
        .unwrap();
    c.revoke(&alice, &doc, &d.hash()).unwrap();
    // Bob has seen his revocation (it is in the op's past) and still tries to grant.
    let body = AuthBody {
        subject: doc,
        action: Action::Delegate {
            delegate: ind(&carol),
            access: Access::Read,
            proof,
        },
        content_heads: vec![],
    };
    let mut preds = c.auth_heads(&doc);
    preds.push(d.hash());
    let op = Verified::sign(Op::new(bob.id().0, preds, body), bob.signing_key()).unwrap();
    c.apply_verified(op.clone()).unwrap();
    assert_eq!(invalid_rule(&c, &op.hash()), "CAP-11");
    assert!(!c.can(ind(&carol), Access::Pull, &doc));
}

#[test]
fn cap11_removed_members_concurrent_ops_never_undo_its_removal() {
    let alice = device("alice");
    let bob = device("bob");
    let bob_phone = device("bob phone");
    let mut a = Checker::default();
    let doc = new_doc(&mut a, &alice);
    let ab = a.delegate(&alice, &doc, ind(&bob), Access::Admin).unwrap();
    let mut b = Checker::default();
    sync(&a, &mut b);
    a.revoke(&alice, &doc, &ab.hash()).unwrap();
    // Concurrently Bob hands admin to his phone, and the phone re-adds Bob.
    b.delegate(&bob, &doc, ind(&bob_phone), Access::Admin)
        .unwrap();
    let readd = b
        .delegate(&bob_phone, &doc, ind(&bob), Access::Admin)
        .unwrap();
    // The phone's chain runs through Bob: the re-add is at depth 3.
    assert!(b.can(ind(&bob), Access::Admin, &doc));
    sync(&b, &mut a);
    sync(&a, &mut b);
    for x in [&a, &b] {
        assert!(!x.can(ind(&bob), Access::Pull, &doc));
        assert!(!x.can(ind(&bob_phone), Access::Pull, &doc));
        assert_eq!(invalid_rule(x, &readd.hash()), "CAP-11");
        assert_eq!(x.members(&doc).len(), 1);
    }
}

#[test]
fn cap15_re_add_concurrent_with_the_revocation_stands() {
    let alice = device("alice");
    let bob = device("bob");
    let carol = device("carol");
    let mut a = Checker::default();
    let doc = new_doc(&mut a, &alice);
    a.delegate(&alice, &doc, ind(&carol), Access::Admin)
        .unwrap();
    let ab = a.delegate(&alice, &doc, ind(&bob), Access::Read).unwrap();
    let mut c = Checker::default();
    sync(&a, &mut c);
    a.revoke(&alice, &doc, &ab.hash()).unwrap();
    let readd = c.delegate(&carol, &doc, ind(&bob), Access::Write).unwrap();
    sync(&a, &mut c);
    sync(&c, &mut a);
    for x in [&a, &c] {
        assert!(x.op_validity(&readd.hash()).unwrap().is_valid());
        assert_eq!(x.level(ind(&bob), &doc), Some(Access::Write));
    }
}

/// CAP-12 step 2: a senior revocation lends its priority to the same-subject revocations it
/// builds on, so a junior's
/// concurrent revocation cannot slip in ahead of it.
#[test]
fn cap12_priority_inheritance() {
    let alice = device("alice");
    let bob = device("bob");
    let carol = device("carol");
    let erin = device("erin");
    let frank = device("frank");
    let mut a = Checker::default();
    let doc = new_doc(&mut a, &alice);
    let ab = a.delegate(&alice, &doc, ind(&bob), Access::Admin).unwrap();
    a.delegate(&alice, &doc, ind(&carol), Access::Read).unwrap();
    let mut b = Checker::default();
    sync(&a, &mut b);
    a.delegate(&bob, &doc, ind(&erin), Access::Admin).unwrap();
    let ef = a.delegate(&erin, &doc, ind(&frank), Access::Admin).unwrap();
    let ry = a.revoke(&erin, &doc, &ef.hash()).unwrap();
    let r0 = a.revoke(&alice, &doc, &ab.hash()).unwrap();
    let ra = b.revoke_member(&bob, &doc, ind(&carol)).unwrap();
    sync(&a, &mut b);
    sync(&b, &mut a);
    for x in [&a, &b] {
        assert!(x.op_validity(&ry.hash()).unwrap().is_valid());
        assert!(x.op_validity(&r0.hash()).unwrap().is_valid());
        assert_eq!(invalid_rule(x, &ra[0].hash()), "CAP-11");
        assert_eq!(x.level(ind(&carol), &doc), Some(Access::Read));
        assert!(!x.can(ind(&bob), Access::Pull, &doc));
        assert!(!x.can(ind(&erin), Access::Pull, &doc), "cascade");
    }
}

#[test]
fn cap9_admin_through_nested_groups_revokes_a_peer() {
    let alice = device("alice");
    let bob_laptop = device("bob laptop");
    let bob_phone = device("bob phone");
    let carol = device("carol");
    let mut c = Checker::default();
    let folder = new_group(&mut c, &alice);
    let bob = new_group(&mut c, &bob_laptop);
    let doc = new_doc(&mut c, &alice);
    c.delegate(&bob_laptop, &bob, ind(&bob_phone), Access::Admin)
        .unwrap();
    c.delegate(&alice, &folder, AgentId::Group(GroupId(bob)), Access::Admin)
        .unwrap();
    c.delegate(&alice, &doc, AgentId::Group(GroupId(folder)), Access::Admin)
        .unwrap();
    let ac = c.delegate(&alice, &doc, ind(&carol), Access::Read).unwrap();
    // The phone's authority on the document: doc -> folder -> bob -> phone, depth 1.
    let r = c.revoke(&bob_phone, &doc, &ac.hash()).unwrap();
    match &r.body.action {
        Action::Revoke {
            proof: Proof::Via { membership, .. },
            ..
        } => assert_eq!(membership.len(), 2),
        other => panic!("unexpected {other:?}"),
    }
    assert!(c.op_validity(&r.hash()).unwrap().is_valid());
    assert!(!c.can(ind(&carol), Access::Pull, &doc));
    // The laptop created the person group: its chain ends at the group it created.
    let w = c.write(&bob_laptop, DocumentId(doc), b"x").unwrap();
    assert!(c.op_validity(&w.hash()).unwrap().is_valid());
}
