//! Named scenario tests for `specs/invitations.md` (INV-1..INV-7): one per refusal.
#![allow(clippy::unwrap_used)]

use keyhive_core::Hash;
use keyhive_core::capability::{
    Access, Action, AgentId, AuthBody, AuthOp, Checker, InviteSecret, PeerTag, Proof, Reason,
    Validity, build_redemption,
};
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::Device;
use keyhive_core::signed::{Op, Verified};

fn device(name: &str) -> Device {
    Device::generate(Some(name.into()))
}

fn ind(d: &Device) -> AgentId {
    AgentId::Individual(d.id())
}

fn sync(from: &Checker, to: &mut Checker) {
    let ops: Vec<Vec<u8>> = from.ops().map(|o| o.as_bytes().to_vec()).collect();
    for bytes in ops {
        to.ingest(PeerTag::LOCAL, &bytes).unwrap();
    }
}

fn refusal(c: &Checker, h: &Hash) -> (&'static str, Reason) {
    match c.op_validity(h).unwrap() {
        Validity::Invalid(r) => (r.rule, r.reason),
        Validity::Valid => panic!("op {h} is valid"),
    }
}

/// A document by `alice` and an invitation to it.
fn setup(
    alice: &Device,
    access: Access,
    expires: Option<u64>,
    uses: u32,
) -> (Checker, PublicKey, Hash, InviteSecret) {
    let mut c = Checker::default();
    let doc = c.create_document(alice).unwrap().genesis.issuer;
    let inv = c.invite(alice, &doc, access, expires, uses).unwrap();
    (c, doc, inv.op.hash(), inv.secret)
}

#[test]
fn inv3_a_redemption_grants_the_invitation_level_and_nothing_before() {
    let alice = device("alice");
    let bob = device("bob");
    let (mut c, doc, inv, secret) = setup(&alice, Access::Write, Some(1_000), 1);
    // INV-1: the invitation alone grants nothing, not even to its own key.
    assert!(!c.can(
        AgentId::Individual(keyhive_core::identity::IndividualId(secret.invite_key())),
        Access::Pull,
        &doc
    ));
    let r = c.redeem(&bob, &inv, &secret, 999).unwrap();
    assert_eq!(c.op_validity(&r.hash()), Some(Validity::Valid));
    assert!(c.can(ind(&bob), Access::Write, &doc));
    assert!(!c.can(ind(&bob), Access::Admin, &doc));
    // The redeemed member writes with the redemption as its proof.
    let w = c
        .write(&bob, keyhive_core::identity::DocumentId(doc), b"hi")
        .unwrap();
    assert_eq!(c.op_validity(&w.hash()), Some(Validity::Valid));
    // Re-sending the same redemption is idempotent.
    assert!(matches!(
        c.ingest(PeerTag::LOCAL, r.as_bytes()).unwrap(),
        keyhive_core::capability::IngestOutcome::Duplicate { .. }
    ));
    let listed = c.invitations(&doc);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].redeemed_by, vec![bob.id()]);
    assert!(!listed[0].outstanding(0));
}

#[test]
fn cap8_an_invitation_never_exceeds_what_the_inviter_holds() {
    let alice = device("alice");
    let bob = device("bob");
    let mut c = Checker::default();
    let doc = c.create_document(&alice).unwrap().genesis.issuer;
    c.delegate(&alice, &doc, ind(&bob), Access::Write).unwrap();
    // The builder refuses; a hand-made admin invitation by a writer is invalid.
    assert!(c.invite(&bob, &doc, Access::Admin, None, 1).is_err());
    let proof = c
        .find_proof(bob.id(), &doc, Access::Write, u32::MAX)
        .unwrap();
    let preds: Vec<Hash> = c.ops().map(|o| o.hash()).collect();
    let op = sign(
        &bob,
        doc,
        preds,
        Action::Invite {
            invite_key: InviteSecret::random().invite_key(),
            access: Access::Admin,
            expires: None,
            max_uses: 1,
            proof,
        },
    );
    c.apply_verified(op.clone()).unwrap();
    let (rule, reason) = refusal(&c, &op.hash());
    assert_eq!(rule, "CAP-8");
    assert!(matches!(reason, Reason::InsufficientAccess { .. }));
}

fn sign(dev: &Device, subject: PublicKey, preds: Vec<Hash>, action: Action) -> Verified<AuthOp> {
    let body = AuthBody {
        subject,
        action,
        content_heads: Vec::new(),
    };
    Verified::sign(
        Op::new(dev.signing_key().public_key(), preds, body),
        dev.signing_key(),
    )
    .unwrap()
}

#[test]
fn inv4_an_observed_redemption_cannot_be_reused_by_another_device() {
    let alice = device("alice");
    let bob = device("bob");
    let eve = device("eve");
    let (mut c, doc, inv, secret) = setup(&alice, Access::Read, None, 5);
    let r = c.redeem(&bob, &inv, &secret, 10).unwrap();
    let Action::Redeem {
        proof_of_secret, ..
    } = r.body.action
    else {
        panic!("not a redemption");
    };
    // Eve copies Bob's proof of secret into her own redemption.
    let stolen = sign(
        &eve,
        doc,
        vec![inv],
        Action::Redeem {
            invitation: inv,
            redeemed_at: 10,
            proof_of_secret,
        },
    );
    c.apply_verified(stolen.clone()).unwrap();
    assert_eq!(
        refusal(&c, &stolen.hash()),
        ("INV-4", Reason::BadProofOfSecret)
    );
    assert!(!c.can(ind(&eve), Access::Pull, &doc));
    // A proof for a different time does not verify either.
    let moved = sign(
        &bob,
        doc,
        vec![inv],
        Action::Redeem {
            invitation: inv,
            redeemed_at: 11,
            proof_of_secret,
        },
    );
    c.apply_verified(moved.clone()).unwrap();
    assert_eq!(
        refusal(&c, &moved.hash()),
        ("INV-4", Reason::BadProofOfSecret)
    );
}

#[test]
fn inv4_the_invitation_key_itself_cannot_redeem() {
    let alice = device("alice");
    let secret_bytes = [7u8; 32];
    let secret = InviteSecret::from_bytes(secret_bytes);
    let mut c = Checker::default();
    let doc = c.create_document(&alice).unwrap().genesis.issuer;
    let preds: Vec<Hash> = c.ops().map(|o| o.hash()).collect();
    let inv = sign(
        &alice,
        doc,
        preds,
        Action::Invite {
            invite_key: secret.invite_key(),
            access: Access::Read,
            expires: None,
            max_uses: 1,
            proof: Proof::Root,
        },
    );
    c.apply_verified(inv.clone()).unwrap();
    // A device whose signing key is the invitation key (derived from the same secret).
    let seed = keyhive_core::crypto::derive::derive_key(
        keyhive_core::crypto::derive::INVITATION_KEY,
        &secret_bytes,
    );
    let key_device = Device::from_parts(
        keyhive_core::crypto::signing::SigningKey::from_seed(&seed),
        Vec::new(),
        None,
    );
    let r = build_redemption(&key_device, &doc, &inv.hash(), &secret, 1).unwrap();
    c.apply_verified(r.clone()).unwrap();
    assert_eq!(refusal(&c, &r.hash()), ("INV-4", Reason::WrongDevice));
}

#[test]
fn inv3_a_redemption_must_name_an_invitation_as_direct_parent() {
    let alice = device("alice");
    let bob = device("bob");
    let (mut c, doc, inv, secret) = setup(&alice, Access::Read, None, 1);
    let grant = c.delegate(&alice, &doc, ind(&alice), Access::Read).unwrap();
    // Naming a delegation as the invitation.
    let proof_of_secret = secret.prove(&grant.hash(), bob.id(), 1);
    let wrong = sign(
        &bob,
        doc,
        vec![grant.hash()],
        Action::Redeem {
            invitation: grant.hash(),
            redeemed_at: 1,
            proof_of_secret,
        },
    );
    c.apply_verified(wrong.clone()).unwrap();
    assert_eq!(
        refusal(&c, &wrong.hash()),
        ("INV-3", Reason::NotAnInvitation(grant.hash()))
    );
    // Naming the invitation without it as a predecessor.
    let proof_of_secret = secret.prove(&inv, bob.id(), 1);
    let detached = sign(
        &bob,
        doc,
        vec![grant.hash()],
        Action::Redeem {
            invitation: inv,
            redeemed_at: 1,
            proof_of_secret,
        },
    );
    c.apply_verified(detached.clone()).unwrap();
    assert_eq!(
        refusal(&c, &detached.hash()),
        ("INV-3", Reason::NotAnInvitation(inv))
    );
}

#[test]
fn inv3_redeeming_an_invalid_invitation_is_refused() {
    let alice = device("alice");
    let bob = device("bob");
    let carol = device("carol");
    let mut c = Checker::default();
    let doc = c.create_document(&alice).unwrap().genesis.issuer;
    let preds: Vec<Hash> = c.ops().map(|o| o.hash()).collect();
    let secret = InviteSecret::random();
    // Bob claims root on Alice's document.
    let inv = sign(
        &bob,
        doc,
        preds,
        Action::Invite {
            invite_key: secret.invite_key(),
            access: Access::Read,
            expires: None,
            max_uses: 1,
            proof: Proof::Root,
        },
    );
    c.apply_verified(inv.clone()).unwrap();
    let r = build_redemption(&carol, &doc, &inv.hash(), &secret, 1).unwrap();
    c.apply_verified(r.clone()).unwrap();
    assert_eq!(
        refusal(&c, &r.hash()),
        ("INV-3", Reason::InvitationInvalid(inv.hash()))
    );
}

#[test]
fn inv5_a_redemption_claiming_a_time_after_expiry_is_refused() {
    let alice = device("alice");
    let bob = device("bob");
    let carol = device("carol");
    let (mut c, doc, inv, secret) = setup(&alice, Access::Read, Some(100), 2);
    let on_time = c.redeem(&bob, &inv, &secret, 100).unwrap();
    assert_eq!(c.op_validity(&on_time.hash()), Some(Validity::Valid));
    let late = c.redeem(&carol, &inv, &secret, 101).unwrap();
    assert_eq!(
        refusal(&c, &late.hash()),
        (
            "INV-5",
            Reason::Expired {
                expires: 100,
                redeemed_at: 101
            }
        )
    );
    assert!(!c.can(ind(&carol), Access::Pull, &doc));
}

#[test]
fn inv6_past_the_use_limit_later_redemptions_are_used_up_in_any_order() {
    let alice = device("alice");
    let (mut c, doc, inv, secret) = setup(&alice, Access::Read, None, 2);
    let devices: Vec<Device> = (0..4).map(|i| device(&format!("d{i}"))).collect();
    let reds: Vec<Verified<AuthOp>> = devices
        .iter()
        .map(|d| build_redemption(d, &doc, &inv, &secret, 5).unwrap())
        .collect();
    // Two replicas receive the four concurrent redemptions in opposite orders.
    let mut other = Checker::default();
    sync(&c, &mut other);
    for r in &reds {
        c.apply_verified(r.clone()).unwrap();
    }
    for r in reds.iter().rev() {
        other.ingest(PeerTag::LOCAL, r.as_bytes()).unwrap();
    }
    // Concurrent redemptions have the same height: the two smallest hashes win.
    let mut by_hash: Vec<Hash> = reds.iter().map(Verified::hash).collect();
    by_hash.sort_unstable();
    for (i, h) in by_hash.iter().enumerate() {
        for rep in [&c, &other] {
            if i < 2 {
                assert_eq!(rep.op_validity(h), Some(Validity::Valid));
            } else {
                assert_eq!(
                    refusal(rep, h),
                    (
                        "INV-6",
                        Reason::UsedUp {
                            invitation: inv,
                            max_uses: 2
                        }
                    )
                );
            }
        }
    }
    for rep in [&c, &other] {
        let readers = rep.individuals_with(&doc, Access::Read);
        assert_eq!(readers.len(), 3, "alice and two invitees");
    }
}

#[test]
fn inv6_a_later_redemption_never_displaces_one_it_saw() {
    let alice = device("alice");
    let bob = device("bob");
    let carol = device("carol");
    let (mut c, doc, inv, secret) = setup(&alice, Access::Read, None, 1);
    let first = c.redeem(&bob, &inv, &secret, 1).unwrap();
    // Carol's redemption names Bob's as a predecessor too: it is higher, so it comes after,
    // whatever the hashes.
    let proof_of_secret = secret.prove(&inv, carol.id(), 1);
    let mut preds = vec![inv, first.hash()];
    preds.sort_unstable();
    let second = sign(
        &carol,
        doc,
        preds,
        Action::Redeem {
            invitation: inv,
            redeemed_at: 1,
            proof_of_secret,
        },
    );
    c.apply_verified(second.clone()).unwrap();
    assert_eq!(c.op_validity(&first.hash()), Some(Validity::Valid));
    assert_eq!(refusal(&c, &second.hash()).0, "INV-6");
}

#[test]
fn inv6_ops_built_on_a_displaced_redemption_fall_with_it() {
    let alice = device("alice");
    let (c0, doc, inv, secret) = setup(&alice, Access::Write, None, 1);
    let bob = device("bob");
    let carol = device("carol");
    let rb = build_redemption(&bob, &doc, &inv, &secret, 1).unwrap();
    let rc = build_redemption(&carol, &doc, &inv, &secret, 1).unwrap();
    let (winner, loser, loser_dev) = if rb.hash() < rc.hash() {
        (rb, rc, &carol)
    } else {
        (rc, rb, &bob)
    };
    // The loser's replica sees only its own redemption and writes on it.
    let mut mine = Checker::default();
    sync(&c0, &mut mine);
    mine.apply_verified(loser.clone()).unwrap();
    let w = mine
        .write(loser_dev, keyhive_core::identity::DocumentId(doc), b"x")
        .unwrap();
    assert_eq!(mine.op_validity(&w.hash()), Some(Validity::Valid));
    // The winner arrives: the loser and its write are out.
    mine.ingest(PeerTag::LOCAL, winner.as_bytes()).unwrap();
    assert_eq!(refusal(&mine, &loser.hash()).0, "INV-6");
    assert_eq!(refusal(&mine, &w.hash()).0, "INV-6");
    assert!(!mine.can(AgentId::Individual(loser_dev.id()), Access::Pull, &doc));
}

#[test]
fn inv7_revoking_an_invitation_cascades_and_excludes_concurrent_redemptions() {
    let alice = device("alice");
    let bob = device("bob");
    let carol = device("carol");
    let (mut c, doc, inv, secret) = setup(&alice, Access::Read, None, 3);
    let before = c.redeem(&bob, &inv, &secret, 1).unwrap();
    // Carol redeems concurrently with the revocation (she never saw it).
    let concurrent = build_redemption(&carol, &doc, &inv, &secret, 1).unwrap();
    let rev = c.revoke(&alice, &doc, &inv).unwrap();
    assert_eq!(c.op_validity(&rev.hash()), Some(Validity::Valid));
    c.apply_verified(concurrent.clone()).unwrap();
    // CAP-13: Bob's membership flowed through the invitation.
    assert!(!c.can(ind(&bob), Access::Pull, &doc));
    // CAP-11: Carol's redemption is not in the revocation's past.
    let (rule, reason) = refusal(&c, &concurrent.hash());
    assert_eq!(rule, "CAP-11");
    assert!(matches!(reason, Reason::Excluded { delegation, .. } if delegation == inv));
    assert!(!c.can(ind(&carol), Access::Pull, &doc));
    assert_eq!(c.op_validity(&before.hash()), Some(Validity::Valid));
    let listed = c.invitations(&doc);
    assert!(listed[0].revoked && !listed[0].outstanding(0));
}

#[test]
fn inv1_an_invitation_is_never_a_proof_link() {
    let alice = device("alice");
    let bob = device("bob");
    let (mut c, doc, inv, secret) = setup(&alice, Access::Admin, None, 1);
    // Someone holding the secret signs as the invitation key with a proof naming the
    // invitation: refused, the invitation is not a delegation.
    let seed = keyhive_core::crypto::derive::derive_key(
        keyhive_core::crypto::derive::INVITATION_KEY,
        secret.expose(),
    );
    let key_device = Device::from_parts(
        keyhive_core::crypto::signing::SigningKey::from_seed(&seed),
        Vec::new(),
        None,
    );
    let op = sign(
        &key_device,
        doc,
        vec![inv],
        Action::Delegate {
            delegate: ind(&bob),
            access: Access::Admin,
            proof: Proof::Via {
                delegation: inv,
                membership: Vec::new(),
            },
        },
    );
    c.apply_verified(op.clone()).unwrap();
    assert_eq!(
        refusal(&c, &op.hash()),
        ("CAP-6", Reason::ProofNotInPast(inv))
    );
    assert!(!c.can(ind(&bob), Access::Pull, &doc));
}

#[test]
fn inv1_an_invitation_allowing_no_use_does_not_decode() {
    let alice = device("alice");
    let mut c = Checker::default();
    let doc = c.create_document(&alice).unwrap().genesis.issuer;
    let body = AuthBody {
        subject: doc,
        action: Action::Invite {
            invite_key: InviteSecret::random().invite_key(),
            access: Access::Read,
            expires: None,
            max_uses: 0,
            proof: Proof::Root,
        },
        content_heads: Vec::new(),
    };
    assert!(
        Verified::sign(
            Op::new(alice.signing_key().public_key(), Vec::new(), body),
            alice.signing_key()
        )
        .is_err()
    );
}

#[test]
fn inv11_a_grant_that_ends_grants_until_revoked_after_its_end() {
    let alice = device("alice");
    let bob = device("bob");
    let carol = device("carol");
    let mut c = Checker::default();
    let doc = c.create_document(&alice).unwrap().genesis.issuer;
    let admin = c
        .delegate(&alice, &doc, ind(&carol), Access::Admin)
        .unwrap();
    let grant = c
        .delegate_until(&carol, &doc, ind(&bob), Access::Write, 100)
        .unwrap();
    assert_eq!(c.op_validity(&grant.hash()), Some(Validity::Valid));
    assert!(c.can(ind(&bob), Access::Write, &doc));
    assert!(c.ended_grants(100).is_empty(), "not before its end");
    assert_eq!(c.ended_grants(101), vec![(doc, grant.hash())]);
    // The causal end: a device that may revoke it does; the cascade is CAP-13's.
    let w = c
        .write(&bob, keyhive_core::identity::DocumentId(doc), b"before")
        .unwrap();
    c.revoke(&alice, &doc, &grant.hash()).unwrap();
    assert!(!c.can(ind(&bob), Access::Pull, &doc));
    assert!(
        c.ended_grants(101).is_empty(),
        "a revoked grant is not listed again"
    );
    assert_eq!(
        c.op_validity(&w.hash()),
        Some(Validity::Valid),
        "earlier edits stay"
    );
    // An ending grant never exceeds what its issuer holds (CAP-8), like any delegation.
    c.revoke(&alice, &doc, &admin.hash()).unwrap();
    assert!(
        c.delegate_until(&carol, &doc, ind(&bob), Access::Read, 200)
            .is_err()
    );
}

/// INV-12: the ended grants that still reach a document: on the document itself, or on a
/// group that is (here transitively, through a folder) a member of it; not those on a subject
/// the document does not reach, not before their end, and not once revoked.
#[test]
fn inv12_ended_grants_reaching_a_document_through_groups_and_folders() {
    let (alice, bob, carol) = (device("alice"), device("bob"), device("carol"));
    let mut c = Checker::default();
    let doc = c.create_document(&alice).unwrap().genesis.issuer;
    let folder = c.create_document(&alice).unwrap().genesis.issuer;
    let team = c.create_group(&alice).unwrap().issuer;
    let elsewhere = c.create_document(&alice).unwrap().genesis.issuer;
    // doc <- folder (admin, REP-8) <- team (read) <- bob, until 100.
    c.delegate(
        &alice,
        &doc,
        AgentId::Document(keyhive_core::identity::DocumentId(folder)),
        Access::Admin,
    )
    .unwrap();
    c.delegate(
        &alice,
        &folder,
        AgentId::Group(keyhive_core::identity::GroupId(team)),
        Access::Read,
    )
    .unwrap();
    let through_team = c
        .delegate_until(&alice, &team, ind(&bob), Access::Read, 100)
        .unwrap();
    let direct = c
        .delegate_until(&alice, &doc, ind(&carol), Access::Read, 150)
        .unwrap();
    let unrelated = c
        .delegate_until(&alice, &elsewhere, ind(&carol), Access::Read, 50)
        .unwrap();
    assert!(c.can(ind(&bob), Access::Read, &doc));
    assert!(
        c.ended_grants_reaching(&doc, 100).is_empty(),
        "none ended yet"
    );
    assert_eq!(
        c.ended_grants_reaching(&doc, 101),
        vec![(team, through_team.hash())]
    );
    let mut both = vec![(team, through_team.hash()), (doc, direct.hash())];
    both.sort_unstable();
    assert_eq!(c.ended_grants_reaching(&doc, 151), both);
    assert_eq!(
        c.ended_grants_reaching(&elsewhere, 151),
        vec![(elsewhere, unrelated.hash())]
    );
    c.revoke(&alice, &team, &through_team.hash()).unwrap();
    assert_eq!(
        c.ended_grants_reaching(&doc, 151),
        vec![(doc, direct.hash())]
    );
}

/// CAP-13: an invitation by a writer whom the admin then removes is no longer outstanding (a
/// redemption would delegate through the removed grant): `issuer_holds` is false, and a
/// redemption made after the removal grants nothing.
#[test]
fn cap13_an_invitation_is_not_outstanding_once_its_issuer_was_removed() {
    let alice = device("alice");
    let bob = device("bob");
    let carol = device("carol");
    let mut c = Checker::default();
    let doc = c.create_document(&alice).unwrap().genesis.issuer;
    let grant = c.delegate(&alice, &doc, ind(&bob), Access::Write).unwrap();
    let inv = c.invite(&bob, &doc, Access::Read, None, 2).unwrap();
    let listed = c.invitations(&doc);
    assert!(listed[0].issuer_holds && listed[0].outstanding(0));

    c.revoke(&alice, &doc, &grant.hash()).unwrap();
    let listed = c.invitations(&doc);
    assert!(!listed[0].issuer_holds, "{listed:?}");
    assert!(!listed[0].outstanding(0));
    assert!(listed[0].validity.is_valid() && !listed[0].revoked);
    let r = c.redeem(&carol, &inv.op.hash(), &inv.secret, 0);
    if let Ok(r) = r {
        assert!(!matches!(c.op_validity(&r.hash()), Some(Validity::Valid)));
    }
    assert!(!c.can(ind(&carol), Access::Pull, &doc));
}
