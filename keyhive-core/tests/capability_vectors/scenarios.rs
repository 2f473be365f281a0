//! The graph-shape cases: cascades, mutual revocations, seniority, cycles, invitations, ends.

use super::*;

pub(super) fn cascade() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, carol) = (device(1, "alice"), device(2, "bob"), device(3, "carol"));
    let mut c = Checker::default();
    let doc = c.create_document(&alice).expect("doc").genesis.issuer;
    let ab = c
        .delegate(&alice, &doc, ind(&bob), Access::Admin)
        .expect("grant");
    c.delegate(&bob, &doc, ind(&carol), Access::Write)
        .expect("grant");
    c.write(&carol, DocumentId(doc), b"before").expect("write");
    c.revoke(&alice, &doc, &ab.hash()).expect("revoke");
    let mut case = Case::new();
    case.record(&c);
    (case.log, vec![alice, bob, carol])
}

pub(super) fn mutual_revocation() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, carol) = (device(1, "alice"), device(2, "bob"), device(3, "carol"));
    let mut a = Checker::default();
    let doc = a.create_document(&alice).expect("doc").genesis.issuer;
    let ab = a
        .delegate(&alice, &doc, ind(&bob), Access::Admin)
        .expect("grant");
    let ac = a
        .delegate(&alice, &doc, ind(&carol), Access::Admin)
        .expect("grant");
    let mut b = Checker::default();
    sync(&a, &mut b);
    a.revoke(&bob, &doc, &ac.hash()).expect("bob revokes carol");
    b.revoke(&carol, &doc, &ab.hash())
        .expect("carol revokes bob");
    let mut case = Case::new();
    case.record(&a);
    case.record(&b);
    (case.log, vec![alice, bob, carol])
}

pub(super) fn seniority_and_back_dating() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, dave) = (device(1, "alice"), device(2, "bob"), device(4, "dave"));
    let mut c = Checker::default();
    let doc = c.create_document(&alice).expect("doc").genesis.issuer;
    let ab = c
        .delegate(&alice, &doc, ind(&bob), Access::Admin)
        .expect("grant");
    let bd = c
        .delegate(&bob, &doc, ind(&dave), Access::Admin)
        .expect("grant");
    // Dave (depth 2) tries to revoke Bob (depth 1): CAP-9 seniority.
    let body = AuthBody {
        subject: doc,
        action: Action::Revoke {
            delegation: ab.hash(),
            proof: Proof::Via {
                delegation: bd.hash(),
                membership: vec![],
            },
        },
        content_heads: vec![],
    };
    let mut preds = c.auth_heads(&doc);
    preds.push(ab.hash());
    preds.sort_unstable();
    preds.dedup();
    let junior =
        Verified::sign(Op::new(dave.id().0, preds, body), dave.signing_key()).expect("sign");
    c.apply_verified(junior).expect("apply");
    // Dave is revoked, then claims the auth state from before his revocation.
    let mut heads_before = c.auth_heads(&doc);
    heads_before.push(bd.hash());
    heads_before.sort_unstable();
    heads_before.dedup();
    c.revoke(&alice, &doc, &bd.hash()).expect("revoke");
    let body = ContentBody {
        document: DocumentId(doc),
        auth_heads: heads_before,
        proof: Proof::Via {
            delegation: bd.hash(),
            membership: vec![],
        },
        payload: keyhive_core::capability::Payload::Blob {
            hash: Hash::of_content(b"late"),
            len: 4,
        },
    };
    let late =
        Verified::sign(Op::new(dave.id().0, vec![], body), dave.signing_key()).expect("sign");
    c.apply_verified(late).expect("apply");
    let mut case = Case::new();
    case.record(&c);
    (case.log, vec![alice, bob, dave])
}

pub(super) fn cycle_and_folder_witness() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, xavier) = (device(1, "alice"), device(2, "bob"), device(5, "xavier"));
    let mut c = Checker::default();
    let folder = c.create_group(&alice).expect("group").issuer;
    let team = c.create_group(&alice).expect("group").issuer;
    // A cycle: the team is in the folder and the folder in the team.
    c.delegate(
        &alice,
        &folder,
        AgentId::Group(GroupId(team)),
        Access::Write,
    )
    .expect("grant");
    c.delegate(&alice, &team, AgentId::Group(GroupId(folder)), Access::Read)
        .expect("grant");
    c.delegate(&alice, &team, ind(&bob), Access::Write)
        .expect("grant");
    let one = c.create_document(&alice).expect("doc").genesis.issuer;
    let two = c.create_document(&alice).expect("doc").genesis.issuer;
    for doc in [one, two] {
        c.delegate(&alice, &doc, AgentId::Group(GroupId(folder)), Access::Write)
            .expect("grant");
    }
    let fx = c
        .delegate(&alice, &folder, ind(&xavier), Access::Write)
        .expect("grant");
    c.write(&xavier, DocumentId(one), b"1").expect("write");
    c.write(&xavier, DocumentId(two), b"2").expect("write");
    c.write(&bob, DocumentId(two), b"bob").expect("write");
    // CAP-22: the revocation witnesses Xavier's earlier edits in both documents.
    c.revoke(&alice, &folder, &fx.hash()).expect("revoke");
    let mut case = Case::new();
    case.record(&c);
    (case.log, vec![alice, bob, xavier])
}

pub(super) fn conflicted_genesis_and_out_of_scope_parent() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, mallory) = (device(1, "alice"), device(6, "mallory"));
    let mut c = Checker::default();
    let kept = SigningKey::from_seed(&[0x77; 32]);
    for creator in [&alice, &mallory] {
        let genesis = Verified::sign(
            Op::new(
                kept.public_key(),
                vec![],
                Genesis {
                    kind: SubjectKind::Group,
                    creator: creator.id(),
                    key_agreement: None,
                },
            ),
            &kept,
        )
        .expect("sign");
        c.apply_verified(genesis).expect("apply");
    }
    let shared = c.create_document(&alice).expect("doc").genesis.issuer;
    let diary = c.create_document(&alice).expect("doc").genesis.issuer;
    // CAP-20: an edit of `shared` naming the diary's genesis as an auth head.
    let mut auth_heads = c.auth_heads(&shared);
    auth_heads.extend(c.auth_heads(&diary));
    auth_heads.sort_unstable();
    let body = ContentBody {
        document: DocumentId(shared),
        auth_heads,
        proof: Proof::Root,
        payload: keyhive_core::capability::Payload::Blob {
            hash: Hash::of_content(b"x"),
            len: 1,
        },
    };
    let edit =
        Verified::sign(Op::new(alice.id().0, vec![], body), alice.signing_key()).expect("sign");
    c.apply_verified(edit).expect("apply");
    let mut case = Case::new();
    case.record(&c);
    (case.log, vec![alice, mallory])
}

/// INV-4..INV-6: concurrent redemptions of a single-use invitation (one is used up), a
/// redemption after expiry, and a proof of secret copied by another device.
pub(super) fn invitation_limits() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, carol) = (device(1, "alice"), device(2, "bob"), device(3, "carol"));
    let (dave, eve) = (device(4, "dave"), device(5, "eve"));
    let mut c = Checker::default();
    let doc = c.create_document(&alice).expect("doc").genesis.issuer;
    let once = c
        .invite(&alice, &doc, Access::Write, None, 1)
        .expect("invite");
    let timed = c
        .invite(&alice, &doc, Access::Read, Some(100), 2)
        .expect("invite");
    let rb = c
        .redeem(&bob, &once.op.hash(), &once.secret, 50)
        .expect("redeem");
    c.redeem(&carol, &once.op.hash(), &once.secret, 50)
        .expect("redeem");
    c.redeem(&dave, &timed.op.hash(), &timed.secret, 200)
        .expect("redeem");
    let Action::Redeem {
        proof_of_secret, ..
    } = rb.body.action
    else {
        unreachable!("a redemption")
    };
    let body = AuthBody {
        subject: doc,
        action: Action::Redeem {
            invitation: once.op.hash(),
            redeemed_at: 50,
            proof_of_secret,
        },
        content_heads: vec![],
    };
    let stolen = Verified::sign(
        Op::new(eve.id().0, vec![once.op.hash()], body),
        eve.signing_key(),
    )
    .expect("sign");
    c.apply_verified(stolen).expect("apply");
    let mut case = Case::new();
    case.record(&c);
    (case.log, vec![alice, bob, carol, dave, eve])
}

/// INV-7: revoking an invitation removes whom it admitted (CAP-13) and excludes a redemption
/// concurrent with the revocation (CAP-11).
pub(super) fn invitation_revoked() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, carol) = (device(1, "alice"), device(2, "bob"), device(3, "carol"));
    let mut a = Checker::default();
    let doc = a.create_document(&alice).expect("doc").genesis.issuer;
    let inv = a
        .invite(&alice, &doc, Access::Read, None, 3)
        .expect("invite");
    a.redeem(&bob, &inv.op.hash(), &inv.secret, 1)
        .expect("redeem");
    let mut b = Checker::default();
    sync(&a, &mut b);
    a.revoke(&alice, &doc, &inv.op.hash()).expect("revoke");
    b.redeem(&carol, &inv.op.hash(), &inv.secret, 2)
        .expect("redeem");
    let mut case = Case::new();
    case.record(&a);
    case.record(&b);
    (case.log, vec![alice, bob, carol])
}

/// INV-11: a grant that ends, then revoked after its end (the causal end), and one still
/// running.
pub(super) fn grant_that_ends() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, carol) = (device(1, "alice"), device(2, "bob"), device(3, "carol"));
    let mut c = Checker::default();
    let doc = c.create_document(&alice).expect("doc").genesis.issuer;
    let ended = c
        .delegate_until(&alice, &doc, ind(&bob), Access::Write, 100)
        .expect("grant");
    c.delegate_until(&alice, &doc, ind(&carol), Access::Read, u64::MAX)
        .expect("grant");
    c.revoke(&alice, &doc, &ended.hash()).expect("revoke");
    let mut case = Case::new();
    case.record(&c);
    (case.log, vec![alice, bob, carol])
}

/// CAP-24: the creator's grants (to a device, to a team on a document) and its revocation in
/// the root form (version 3, no issuer on the wire), a grant resting on one in version 2, an
/// edit through the team, and the cascade of the revocation (CAP-13).
pub(super) fn root_form() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, carol, dave) = (
        device(1, "alice"),
        device(2, "bob"),
        device(3, "carol"),
        device(4, "dave"),
    );
    let mut c = Checker::default();
    let team = c.create_group(&alice).expect("group").issuer;
    let doc = c.create_document(&alice).expect("doc").genesis.issuer;
    let ab = c
        .delegate(&alice, &doc, ind(&bob), Access::Admin)
        .expect("grant");
    let folder = c
        .delegate(&alice, &doc, AgentId::Group(GroupId(team)), Access::Write)
        .expect("grant");
    let ad = c
        .delegate(&alice, &team, ind(&dave), Access::Write)
        .expect("grant");
    let bc = c
        .delegate(&bob, &doc, ind(&carol), Access::Write)
        .expect("grant");
    c.write(&dave, DocumentId(doc), b"through the team")
        .expect("write");
    let revoke = c.revoke(&alice, &doc, &ab.hash()).expect("revoke");
    for op in [&ab, &folder, &ad, &revoke] {
        assert_eq!(op.format_version(), 3, "a Root proof by the creator");
    }
    assert_eq!(bc.format_version(), 2, "a Via proof");
    let mut case = Case::new();
    case.record(&c);
    (case.log, vec![alice, bob, carol, dave])
}
