//! Named scenario tests, one or more per rule of `specs/capabilities.md`.
#![allow(clippy::unwrap_used)]

use keyhive_core::Hash;
use keyhive_core::capability::{
    Access, Action, AgentId, AuthBody, AuthOp, Checker, ContentBody, ContentOp, Explanation,
    IngestError, IngestOutcome, PeerTag, PendingLimit, PendingLimits, Proof, Reason, Validity,
};
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::{Device, DocumentId, GroupId, SubjectKind};
use keyhive_core::signed::{Op, Verified};

fn device(name: &str) -> Device {
    Device::generate(Some(name.into()))
}

fn ind(d: &Device) -> AgentId {
    AgentId::Individual(d.id())
}

/// Sends every op `from` holds to `to`.
fn sync(from: &Checker, to: &mut Checker) {
    let ops: Vec<Vec<u8>> = from.ops().map(|o| o.as_bytes().to_vec()).collect();
    for bytes in ops {
        to.ingest(PeerTag::LOCAL, &bytes).unwrap();
    }
}

fn invalid_rule(c: &Checker, h: &Hash) -> &'static str {
    match c.op_validity(h).unwrap() {
        Validity::Invalid(r) => r.rule,
        Validity::Valid => "valid",
    }
}

fn new_doc(c: &mut Checker, owner: &Device) -> PublicKey {
    c.create_document(owner).unwrap().genesis.issuer
}

fn new_group(c: &mut Checker, owner: &Device) -> PublicKey {
    c.create_group(owner).unwrap().issuer
}

#[test]
fn cap5_root_is_admin_and_cap8_delegation_grants() {
    let alice = device("alice");
    let bob = device("bob");
    let mut c = Checker::default();
    let doc = new_doc(&mut c, &alice);
    assert!(c.can(ind(&alice), Access::Admin, &doc));
    assert!(!c.can(ind(&bob), Access::Pull, &doc));
    let d = c.delegate(&alice, &doc, ind(&bob), Access::Write).unwrap();
    assert_eq!(c.op_validity(&d.hash()), Some(Validity::Valid));
    assert!(c.can(ind(&bob), Access::Write, &doc));
    assert!(!c.can(ind(&bob), Access::Admin, &doc));
    let members = c.members(&doc);
    assert_eq!(members.get(&ind(&alice)), Some(&Access::Admin));
    assert_eq!(members.get(&ind(&bob)), Some(&Access::Write));
}

#[test]
fn cap8_delegation_never_exceeds_what_the_issuer_holds() {
    let alice = device("alice");
    let bob = device("bob");
    let carol = device("carol");
    let mut c = Checker::default();
    let doc = new_doc(&mut c, &alice);
    let d = c.delegate(&alice, &doc, ind(&bob), Access::Write).unwrap();
    // The builder refuses...
    assert!(c.delegate(&bob, &doc, ind(&carol), Access::Admin).is_err());
    // ...and a hand-made op claiming admin through a write delegation is invalid.
    let body = AuthBody {
        subject: doc,
        action: Action::Delegate {
            delegate: ind(&carol),
            access: Access::Admin,
            proof: Proof::Via {
                delegation: d.hash(),
                membership: vec![],
            },
        },
        content_heads: vec![],
    };
    let op: Verified<AuthOp> = Verified::sign(
        Op::new(bob.id().0, c.auth_heads(&doc), body),
        bob.signing_key(),
    )
    .unwrap();
    let outcome = c.apply_verified(op.clone()).unwrap();
    assert!(matches!(
        outcome,
        IngestOutcome::Applied {
            validity: Validity::Invalid(_),
            ..
        }
    ));
    assert_eq!(invalid_rule(&c, &op.hash()), "CAP-8");
    assert!(!c.can(ind(&carol), Access::Pull, &doc));
    // A writer may share at most write.
    let ok = c.delegate(&bob, &doc, ind(&carol), Access::Read).unwrap();
    assert!(c.op_validity(&ok.hash()).unwrap().is_valid());
}

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
        payload_hash: Hash::of_content(b"after"),
        payload_len: 5,
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
fn cap10_content_by_non_writer_is_invalid() {
    let alice = device("alice");
    let bob = device("bob");
    let mut c = Checker::default();
    let doc = new_doc(&mut c, &alice);
    let d = c.delegate(&alice, &doc, ind(&bob), Access::Read).unwrap();
    assert!(c.write(&bob, DocumentId(doc), b"x").is_err());
    let body = ContentBody {
        document: DocumentId(doc),
        auth_heads: c.auth_heads(&doc),
        proof: Proof::Via {
            delegation: d.hash(),
            membership: vec![],
        },
        payload_hash: Hash::of_content(b"x"),
        payload_len: 1,
    };
    let op = Verified::sign(Op::new(bob.id().0, vec![], body), bob.signing_key()).unwrap();
    c.apply_verified(op.clone()).unwrap();
    assert_eq!(invalid_rule(&c, &op.hash()), "CAP-10");
    let ok = c.write(&alice, DocumentId(doc), b"y").unwrap();
    assert!(c.op_validity(&ok.hash()).unwrap().is_valid());
}

/// doc -> folder group -> person group -> device.
struct Drive {
    c: Checker,
    alice: Device,
    bob_phone: Device,
    folder: PublicKey,
    bob: PublicKey,
    docs: Vec<PublicKey>,
    folder_to_bob: Hash,
}

fn drive() -> Drive {
    let alice = device("alice");
    let bob_laptop = device("bob laptop");
    let bob_phone = device("bob phone");
    let mut c = Checker::default();
    let folder = new_group(&mut c, &alice);
    let bob = new_group(&mut c, &bob_laptop);
    c.delegate(&bob_laptop, &bob, ind(&bob_phone), Access::Admin)
        .unwrap();
    let folder_to_bob = c
        .delegate(&alice, &folder, AgentId::Group(GroupId(bob)), Access::Write)
        .unwrap()
        .hash();
    let mut docs = Vec::new();
    for _ in 0..3 {
        let doc = new_doc(&mut c, &alice);
        c.delegate(&alice, &doc, AgentId::Group(GroupId(folder)), Access::Admin)
            .unwrap();
        docs.push(doc);
    }
    Drive {
        c,
        alice,
        bob_phone,
        folder,
        bob,
        docs,
        folder_to_bob,
    }
}

#[test]
fn cap14_access_through_a_folder() {
    let mut d = drive();
    let phone = ind(&d.bob_phone);
    for doc in &d.docs {
        assert_eq!(
            d.c.level(phone, doc),
            Some(Access::Write),
            "min along the path"
        );
        match d.c.explain(phone, Access::Write, doc) {
            Explanation::Granted { level, path } => {
                assert_eq!(level, Access::Write);
                assert_eq!(path.len(), 3);
                assert_eq!(path[0].subject, *doc);
                assert_eq!(path[0].member, AgentId::Group(GroupId(d.folder)));
                assert_eq!(path[1].member, AgentId::Group(GroupId(d.bob)));
                assert_eq!(path[2].member, phone);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            d.c.individuals_with(doc, Access::Read)
                .contains(&d.bob_phone.id())
        );
    }
    assert_eq!(
        d.c.reachable(phone).len(),
        5,
        "folder, person group and three docs"
    );
    // The phone writes through the folder chain.
    let w =
        d.c.write(&d.bob_phone, DocumentId(d.docs[0]), b"hi")
            .unwrap();
    assert!(d.c.op_validity(&w.hash()).unwrap().is_valid());
    match &w.body.proof {
        Proof::Via { membership, .. } => assert_eq!(membership.len(), 2),
        Proof::Root => panic!("phone is not root"),
    }
}

#[test]
fn cap13_revoking_the_folder_grant_removes_every_doc() {
    let mut d = drive();
    let phone = ind(&d.bob_phone);
    let w =
        d.c.write(&d.bob_phone, DocumentId(d.docs[1]), b"hi")
            .unwrap();
    let folder_to_bob = d.folder_to_bob;
    let folder = d.folder;
    let alice = d.alice.clone();
    d.c.revoke(&alice, &folder, &folder_to_bob).unwrap();
    for doc in &d.docs {
        assert!(!d.c.can(phone, Access::Pull, doc));
        assert!(
            !d.c.individuals_with(doc, Access::Pull)
                .contains(&d.bob_phone.id())
        );
    }
    assert!(
        d.c.reachable(phone).len() == 1,
        "only the person group remains"
    );
    // The edit made before the revocation was recorded by it and stays valid.
    assert!(d.c.op_validity(&w.hash()).unwrap().is_valid());
    assert!(
        d.c.write(&d.bob_phone, DocumentId(d.docs[1]), b"no")
            .is_err()
    );
}

#[test]
fn cap14_cycles_are_safe() {
    let alice = device("alice");
    let bob = device("bob");
    let mut c = Checker::default();
    let g1 = new_group(&mut c, &alice);
    let g2 = new_group(&mut c, &alice);
    let doc = new_doc(&mut c, &alice);
    c.delegate(&alice, &g1, AgentId::Group(GroupId(g2)), Access::Admin)
        .unwrap();
    let back = c
        .delegate(&alice, &g2, AgentId::Group(GroupId(g1)), Access::Admin)
        .unwrap();
    c.delegate(&alice, &g2, ind(&bob), Access::Read).unwrap();
    c.delegate(&alice, &doc, AgentId::Group(GroupId(g1)), Access::Write)
        .unwrap();
    assert_eq!(c.level(ind(&bob), &doc), Some(Access::Read));
    let members = c.members(&doc);
    assert!(members.contains_key(&AgentId::Group(GroupId(g2))));
    assert_eq!(members.get(&ind(&bob)), Some(&Access::Read));
    c.revoke(&alice, &g2, &back.hash()).unwrap();
    assert_eq!(
        c.level(ind(&bob), &doc),
        Some(Access::Read),
        "g1 -> g2 still holds"
    );
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
fn cap4_out_of_order_ops_wait_and_limits_are_typed() {
    let alice = device("alice");
    let bob = device("bob");
    let mut a = Checker::default();
    let doc = new_doc(&mut a, &alice);
    a.delegate(&alice, &doc, ind(&bob), Access::Admin).unwrap();
    a.write(&bob, DocumentId(doc), b"x").unwrap();
    let ops: Vec<Vec<u8>> = a.ops().map(|o| o.as_bytes().to_vec()).collect();
    let mut b = Checker::default();
    for bytes in ops.iter().rev() {
        b.ingest(PeerTag::LOCAL, bytes).unwrap();
    }
    assert_eq!(b.pending_len(), 0);
    assert_eq!(b.len(), ops.len());
    assert_eq!(*a.members(&doc), *b.members(&doc));

    let limits = PendingLimits {
        per_peer: 1,
        per_subject: 10,
        total: 10,
    };
    let mut small = Checker::new(limits);
    small.set_pending_bytes_limit(1 << 20);
    let peer = PeerTag([7; 32]);
    let last = ops.len() - 1;
    assert!(matches!(
        small.ingest(peer, &ops[last]).unwrap(),
        IngestOutcome::Pending { .. }
    ));
    assert_eq!(
        small.ingest(peer, &ops[last - 1]),
        Err(IngestError::PendingFull(PendingLimit::PerPeer))
    );
    // Nothing else was lost: the rest still applies and releases the parked op.
    for bytes in &ops {
        small.ingest(PeerTag::LOCAL, bytes).unwrap();
    }
    assert_eq!(small.len(), ops.len());
    assert_eq!(small.pending_len(), 0);
}

#[test]
fn cap4_byte_bounds_per_peer_and_released_bytes_are_returned() {
    // Twelve ops of one subject, each waiting for its predecessor.
    let alice = device("alice");
    let bob = device("bob");
    let mut a = Checker::default();
    let doc = new_doc(&mut a, &alice);
    a.delegate(&alice, &doc, ind(&bob), Access::Write).unwrap();
    for i in 0..12u8 {
        a.write(&bob, DocumentId(doc), &[i]).unwrap();
    }
    let ops: Vec<Vec<u8>> = a.ops().map(|o| o.as_bytes().to_vec()).collect();
    let size = ops.iter().map(Vec::len).max().unwrap();
    assert!(2 * ops.last().unwrap().len() > size, "ops of similar size");
    let mut small = Checker::default();
    // Room for four parked ops in all, so one peer may park exactly one (a quarter).
    small.set_pending_bytes_limit(4 * size + 3);
    let (mallory, honest) = (PeerTag([7; 32]), PeerTag([8; 32]));
    let last = ops.len() - 1;
    assert!(matches!(
        small.ingest(mallory, &ops[last]).unwrap(),
        IngestOutcome::Pending { .. }
    ));
    assert_eq!(
        small.ingest(mallory, &ops[last - 1]),
        Err(IngestError::PendingFull(PendingLimit::PeerBytes))
    );
    // Another peer still has room: one peer cannot fill the set for everyone.
    assert!(matches!(
        small.ingest(honest, &ops[last - 1]).unwrap(),
        IngestOutcome::Pending { .. }
    ));
    // Released ops give their bytes back: the set can fill and drain again and again.
    for bytes in &ops {
        small.ingest(PeerTag::LOCAL, bytes).unwrap();
    }
    assert_eq!(small.pending_len(), 0);
    let mut b = Checker::default();
    b.set_pending_bytes_limit(4 * size + 3);
    for round in ops.chunks(2) {
        for bytes in round.iter().rev() {
            b.ingest(mallory, bytes).unwrap();
        }
    }
    assert_eq!(
        b.len(),
        ops.len(),
        "every op applied; no byte leak blocked a round"
    );
}

#[test]
fn cap3_proof_references_must_be_parents() {
    let alice = device("alice");
    let bob = device("bob");
    let carol = device("carol");
    let mut c = Checker::default();
    let doc = new_doc(&mut c, &alice);
    let d = c.delegate(&alice, &doc, ind(&bob), Access::Admin).unwrap();
    c.delegate(&alice, &doc, ind(&carol), Access::Read).unwrap();
    // Bob's proof names `d`, which is in the op's past but not one of its parents.
    let body = AuthBody {
        subject: doc,
        action: Action::Delegate {
            delegate: ind(&carol),
            access: Access::Write,
            proof: Proof::Via {
                delegation: d.hash(),
                membership: vec![],
            },
        },
        content_heads: vec![],
    };
    let op = Verified::sign(
        Op::new(bob.id().0, c.auth_heads(&doc), body),
        bob.signing_key(),
    )
    .unwrap();
    c.apply_verified(op.clone()).unwrap();
    match c.op_validity(&op.hash()).unwrap() {
        Validity::Invalid(r) => assert_eq!(r.reason, Reason::ProofNotInPast(d.hash())),
        Validity::Valid => panic!("indirect proof reference accepted"),
    }
}

#[test]
fn cap2_tampered_and_garbage_input_is_refused() {
    let alice = device("alice");
    let mut a = Checker::default();
    let doc = new_doc(&mut a, &alice);
    let d = a.delegate(
        &alice,
        &doc,
        AgentId::Document(DocumentId(doc)),
        Access::Read,
    );
    let mut bytes = d.unwrap().as_bytes().to_vec();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    let mut b = Checker::default();
    assert!(matches!(
        b.ingest(PeerTag::LOCAL, &bytes),
        Err(IngestError::Signature(_))
    ));
    assert!(matches!(
        b.ingest(PeerTag::LOCAL, b"garbage"),
        Err(IngestError::Decode(_))
    ));
}

#[test]
fn cap5_conflicting_genesis_makes_the_subject_unusable() {
    use keyhive_core::crypto::signing::SigningKey;
    use keyhive_core::identity::Genesis;
    let alice = device("alice");
    let mallory = device("mallory");
    let kept = SigningKey::generate();
    let g1 = Verified::sign(
        Op::new(
            kept.public_key(),
            vec![],
            Genesis {
                kind: SubjectKind::Group,
                creator: alice.id(),
                key_agreement: None,
            },
        ),
        &kept,
    )
    .unwrap();
    let g2 = Verified::sign(
        Op::new(
            kept.public_key(),
            vec![],
            Genesis {
                kind: SubjectKind::Group,
                creator: mallory.id(),
                key_agreement: None,
            },
        ),
        &kept,
    )
    .unwrap();
    let subject = kept.public_key();
    let mut c = Checker::default();
    c.apply_verified(g1.clone()).unwrap();
    let d = c
        .delegate(&alice, &subject, ind(&mallory), Access::Read)
        .unwrap();
    assert!(c.can(ind(&mallory), Access::Read, &subject));
    c.apply_verified(g2.clone()).unwrap();
    assert!(c.members(&subject).is_empty());
    assert!(!c.can(ind(&alice), Access::Pull, &subject));
    assert_eq!(invalid_rule(&c, &d.hash()), "CAP-5");
    // Order does not matter.
    let mut other = Checker::default();
    other.apply_verified(g2).unwrap();
    sync(&c, &mut other);
    assert!(other.members(&subject).is_empty());
    assert_eq!(invalid_rule(&other, &d.hash()), "CAP-5");
    assert!(c.subject_info(&subject).unwrap().conflicted);
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
fn cap17_explain_refusals() {
    let alice = device("alice");
    let bob = device("bob");
    let carol = device("carol");
    let mut c = Checker::default();
    let doc = new_doc(&mut c, &alice);
    c.delegate(&alice, &doc, ind(&bob), Access::Read).unwrap();
    match c.explain(ind(&bob), Access::Write, &doc) {
        Explanation::Refused(r) => {
            assert_eq!(r.rule, "CAP-14");
            assert_eq!(r.reason, Reason::Insufficient { held: Access::Read });
        }
        other => panic!("unexpected {other:?}"),
    }
    match c.explain(ind(&carol), Access::Pull, &doc) {
        Explanation::Refused(r) => assert_eq!(r.reason, Reason::NotAMember),
        other => panic!("unexpected {other:?}"),
    }
    match c.explain(ind(&alice), Access::Admin, &doc) {
        Explanation::Granted { path, .. } => {
            assert_eq!(path.len(), 1);
            assert_eq!(path[0].op, c.subject_info(&doc).unwrap().genesis);
        }
        other => panic!("unexpected {other:?}"),
    }
    match c.explain(ind(&alice), Access::Pull, &carol.id().0) {
        Explanation::Refused(r) => assert_eq!(r.rule, "CAP-5"),
        other => panic!("unexpected {other:?}"),
    }
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

mod hostile {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// CAP-2: arbitrary bytes and mutated envelopes never panic and are refused or
        /// stored as typed outcomes.
        #[test]
        fn ingest_never_panics(garbage in prop::collection::vec(any::<u8>(), 0..600),
                               flip in any::<(usize, u8)>()) {
            let alice = device("alice");
            let mut c = Checker::default();
            let doc = new_doc(&mut c, &alice);
            let op = c.delegate(&alice, &doc, ind(&device("bob")), Access::Read).unwrap();
            let _ = c.ingest(PeerTag::LOCAL, &garbage);
            let mut bytes = op.as_bytes().to_vec();
            let i = flip.0 % bytes.len();
            bytes[i] ^= flip.1.max(1);
            let mut fresh = Checker::default();
            let _ = fresh.ingest(PeerTag::LOCAL, &bytes);
            prop_assert!(fresh.len() <= 1);
        }
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

#[test]
fn checker_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Checker>();
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

#[test]
fn cap10_edit_must_claim_an_auth_state_where_the_author_could_write() {
    let alice = device("alice");
    let bob = device("bob");
    let mut c = Checker::default();
    let doc = new_doc(&mut c, &alice);
    let before = c.auth_heads(&doc);
    let d = c.delegate(&alice, &doc, ind(&bob), Access::Write).unwrap();
    // Bob claims the auth state from before his grant, but names the grant as proof.
    let body = ContentBody {
        document: DocumentId(doc),
        auth_heads: before,
        proof: Proof::Via {
            delegation: d.hash(),
            membership: vec![],
        },
        payload_hash: Hash::of_content(b"x"),
        payload_len: 1,
    };
    let op = Verified::sign(Op::new(bob.id().0, vec![], body), bob.signing_key()).unwrap();
    c.apply_verified(op.clone()).unwrap();
    match c.op_validity(&op.hash()).unwrap() {
        Validity::Invalid(r) => assert_eq!(r.reason, Reason::ProofNotInPast(d.hash())),
        Validity::Valid => panic!("edit outside its claimed auth state accepted"),
    }
}
