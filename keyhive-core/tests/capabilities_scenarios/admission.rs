//! Admission and delegation: roots and grants (CAP-5, CAP-8), waiting and bounded input (CAP-4),
//! proofs and parents (CAP-3), hostile bytes (CAP-2), content checks (CAP-10), `explain` (CAP-17).

use super::*;

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
        payload: keyhive_core::capability::Payload::Blob {
            hash: Hash::of_content(b"x"),
            len: 1,
        },
    };
    let op = Verified::sign(Op::new(bob.id().0, vec![], body), bob.signing_key()).unwrap();
    c.apply_verified(op.clone()).unwrap();
    assert_eq!(invalid_rule(&c, &op.hash()), "CAP-10");
    let ok = c.write(&alice, DocumentId(doc), b"y").unwrap();
    assert!(c.op_validity(&ok.hash()).unwrap().is_valid());
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
    let genesis = a.subject_info(&doc).unwrap().genesis;
    let genesis = a.op(&genesis).unwrap().as_bytes().to_vec();
    // CAP-24: a root-form grant is checked under the creator its genesis names.
    let mut b = Checker::default();
    b.ingest(PeerTag::LOCAL, &genesis).unwrap();
    assert!(matches!(
        b.ingest(PeerTag::LOCAL, &bytes),
        Err(IngestError::Signature(_))
    ));
    // Before the genesis it waits unverified, and is dropped when the genesis shows its
    // signature false.
    let mut early = Checker::default();
    assert!(matches!(
        early.ingest(PeerTag::LOCAL, &bytes),
        Ok(IngestOutcome::Pending { .. })
    ));
    early.ingest(PeerTag::LOCAL, &genesis).unwrap();
    assert_eq!(early.pending_len(), 0);
    assert_eq!(early.op_validity(&Hash::of_signed(&bytes)), None);
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
fn checker_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Checker>();
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
        payload: keyhive_core::capability::Payload::Blob {
            hash: Hash::of_content(b"x"),
            len: 1,
        },
    };
    let op = Verified::sign(Op::new(bob.id().0, vec![], body), bob.signing_key()).unwrap();
    c.apply_verified(op.clone()).unwrap();
    match c.op_validity(&op.hash()).unwrap() {
        Validity::Invalid(r) => assert_eq!(r.reason, Reason::ProofNotInPast(d.hash())),
        Validity::Valid => panic!("edit outside its claimed auth state accepted"),
    }
}
