//! Statically refused ops, signed by hand, each refused by the rule that names its defect.

use super::*;

/// Signs `body` by `by` with `parents` (sorted, as CAP-2 requires) and applies it, whatever
/// its verdict: a statically invalid op is still held (CAP-10). Returns its hash.
fn hand_signed<B: keyhive_core::signed::OpBody>(
    c: &mut Checker,
    by: &Device,
    mut parents: Vec<Hash>,
    body: B,
) -> Hash
where
    Verified<Op<B>>: Into<AnyVerified>,
{
    parents.sort_unstable();
    parents.dedup();
    let op = Verified::sign(Op::new(by.id().0, parents, body), by.signing_key()).expect("sign");
    let hash = op.hash();
    c.apply_verified(op).expect("apply");
    hash
}

/// CAP-3..CAP-10, INV-3/4: ops the builders refuse to make, signed by hand, each refused by
/// the rule that names its defect.
pub(super) fn static_refusals() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, mallory) = (device(1, "alice"), device(2, "bob"), device(6, "mallory"));
    let mut c = Checker::default();
    let doc_genesis = c.create_document(&alice).expect("doc").genesis.hash();
    let doc = c.op(&doc_genesis).expect("held").subject();
    let group_genesis = c.create_group(&alice).expect("group").hash();
    let group = c.op(&group_genesis).expect("held").subject();
    let read = c
        .delegate(&alice, &doc, ind(&bob), Access::Read)
        .expect("grant")
        .hash();
    let on_group = c
        .delegate(&alice, &group, ind(&bob), Access::Write)
        .expect("grant")
        .hash();
    let content = |document: PublicKey, proof: Proof, mut auth_heads: Vec<Hash>| {
        auth_heads.sort_unstable();
        ContentBody {
            document: DocumentId(document),
            auth_heads,
            proof,
            payload: keyhive_core::capability::Payload::Blob {
                hash: Hash::of_content(b"x"),
                len: 1,
            },
        }
    };
    let via = |delegation: Hash| Proof::Via {
        delegation,
        membership: vec![],
    };
    // NotADocument: an edit of a group.
    hand_signed(
        &mut c,
        &alice,
        vec![group_genesis],
        content(group, Proof::Root, vec![group_genesis]),
    );
    // InsufficientAccess: a reader writes.
    hand_signed(
        &mut c,
        &bob,
        vec![doc_genesis, read],
        content(doc, via(read), vec![doc_genesis, read]),
    );
    // NotRoot: a root proof by someone who did not create the document.
    hand_signed(
        &mut c,
        &mallory,
        vec![doc_genesis],
        content(doc, Proof::Root, vec![doc_genesis]),
    );
    // ProofNotInPast: the named delegation is not a direct parent.
    hand_signed(
        &mut c,
        &bob,
        vec![doc_genesis],
        content(doc, via(read), vec![doc_genesis]),
    );
    // ProofWrongSubject: a delegation on the group used as authority on the document.
    hand_signed(
        &mut c,
        &bob,
        vec![doc_genesis, on_group],
        content(doc, via(on_group), vec![doc_genesis, on_group]),
    );
    // UnknownSubject: a delegation on the document whose genesis is not in its past.
    hand_signed(
        &mut c,
        &alice,
        vec![],
        AuthBody {
            subject: doc,
            action: Action::Delegate {
                delegate: ind(&mallory),
                access: Access::Read,
                proof: Proof::Root,
            },
            content_heads: vec![],
        },
    );
    // BadTarget: revoking a delegation of another subject.
    hand_signed(
        &mut c,
        &alice,
        vec![doc_genesis, on_group],
        AuthBody {
            subject: doc,
            action: Action::Revoke {
                delegation: on_group,
                proof: Proof::Root,
            },
            content_heads: vec![],
        },
    );
    // ProofInvalid: authority through a delegation that is itself refused (NotRoot).
    let forged = Verified::sign(
        Op::new(
            mallory.id().0,
            vec![doc_genesis],
            AuthBody {
                subject: doc,
                action: Action::Delegate {
                    delegate: ind(&mallory),
                    access: Access::Write,
                    proof: Proof::Root,
                },
                content_heads: vec![],
            },
        ),
        mallory.signing_key(),
    )
    .expect("sign");
    let forged_hash = forged.hash();
    c.apply_verified(forged).expect("apply");
    hand_signed(
        &mut c,
        &mallory,
        vec![doc_genesis, forged_hash],
        content(doc, via(forged_hash), vec![doc_genesis, forged_hash]),
    );
    // ProofWrongSubject (second form): the group's delegation on the document, then a
    // "membership" link that is not a delegation on that group. (BrokenMembership, a chain
    // that does not end at the issuer, is in `chain_and_invitation_refusals`.)
    let group_on_doc = c
        .delegate(&alice, &doc, AgentId::Group(GroupId(group)), Access::Write)
        .expect("grant")
        .hash();
    hand_signed(
        &mut c,
        &bob,
        vec![doc_genesis, group_on_doc, read],
        content(
            doc,
            Proof::Via {
                delegation: group_on_doc,
                membership: vec![read],
            },
            vec![doc_genesis, group_on_doc, read],
        ),
    );
    // NotAnInvitation: a redemption naming an ordinary delegation.
    let invite = c
        .invite(&alice, &doc, Access::Read, None, 1)
        .expect("invite");
    let Action::Redeem {
        proof_of_secret, ..
    } = c
        .redeem(&mallory, &invite.op.hash(), &invite.secret, 1)
        .expect("redeem")
        .body
        .action
    else {
        unreachable!("a redemption")
    };
    hand_signed(
        &mut c,
        &mallory,
        vec![read],
        AuthBody {
            subject: doc,
            action: Action::Redeem {
                invitation: read,
                redeemed_at: 1,
                proof_of_secret,
            },
            content_heads: vec![],
        },
    );
    let mut case = Case::new();
    case.record(&c);
    (case.log, vec![alice, bob, mallory])
}

/// Content ops of `document` naming `refs` (and nothing else) as auth heads: no content
/// predecessors, so CAP-20 holds and only the proof can refuse them.
fn edit(document: PublicKey, proof: Proof, mut refs: Vec<Hash>) -> ContentBody {
    refs.sort_unstable();
    refs.dedup();
    ContentBody {
        document: DocumentId(document),
        auth_heads: refs,
        proof,
        payload: keyhive_core::capability::Payload::Blob {
            hash: Hash::of_content(b"x"),
            len: 1,
        },
    }
}

fn via(delegation: Hash) -> Proof {
    Proof::Via {
        delegation,
        membership: vec![],
    }
}

/// A subject key no op of any case creates: `explain` on it is `CAP-5 UnknownSubject`.
pub(super) fn unknown_subject() -> PublicKey {
    SigningKey::from_seed(&[0xEE; 32]).public_key()
}

/// CAP-6 BrokenMembership (a chain ending at another device, and at a group the issuer did not
/// create), CAP-8 and CAP-9 InsufficientAccess (a writer granting admin, a writer revoking),
/// INV-3 InvitationInvalid, INV-4 WrongDevice; and `explain` refusing
/// `CAP-14 Insufficient` (levels above pull) and `CAP-5 UnknownSubject` (an unknown key).
pub(super) fn chain_and_invitation_refusals() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, carol, mallory) = (
        device(1, "alice"),
        device(2, "bob"),
        device(3, "carol"),
        device(6, "mallory"),
    );
    let mut c = Checker::default();
    let doc_genesis = c.create_document(&alice).expect("doc").genesis.hash();
    let doc = c.op(&doc_genesis).expect("held").subject();
    let group_genesis = c.create_group(&alice).expect("group").hash();
    let group = c.op(&group_genesis).expect("held").subject();
    let bob_writes = c
        .delegate(&alice, &doc, ind(&bob), Access::Write)
        .expect("grant")
        .hash();
    let group_writes = c
        .delegate(&alice, &doc, AgentId::Group(GroupId(group)), Access::Write)
        .expect("grant")
        .hash();
    // BrokenMembership: Mallory presents Bob's delegation; its chain ends at Bob.
    hand_signed(
        &mut c,
        &mallory,
        vec![],
        edit(doc, via(bob_writes), vec![bob_writes]),
    );
    // BrokenMembership: Bob presents the group's delegation with no membership link; the
    // chain ends at the group, whose creator is Alice, not Bob.
    hand_signed(
        &mut c,
        &bob,
        vec![],
        edit(doc, via(group_writes), vec![group_genesis, group_writes]),
    );
    // The same chain from the group's creator is valid (CAP-6: a group the issuer created).
    hand_signed(
        &mut c,
        &alice,
        vec![],
        edit(doc, via(group_writes), vec![group_genesis, group_writes]),
    );
    // CAP-8 InsufficientAccess: Bob, a writer, grants admin.
    hand_signed(
        &mut c,
        &bob,
        vec![bob_writes],
        AuthBody {
            subject: doc,
            action: Action::Delegate {
                delegate: ind(&mallory),
                access: Access::Admin,
                proof: via(bob_writes),
            },
            content_heads: vec![],
        },
    );
    // CAP-9 InsufficientAccess: Bob, a writer, revokes the group's delegation.
    hand_signed(
        &mut c,
        &bob,
        vec![bob_writes, group_writes],
        AuthBody {
            subject: doc,
            action: Action::Revoke {
                delegation: group_writes,
                proof: via(bob_writes),
            },
            content_heads: vec![],
        },
    );
    // InvitationInvalid: Mallory invites with a root proof she does not have (CAP-6 NotRoot);
    // Carol's redemption of it, with a correct proof of secret, is refused.
    let secret = InviteSecret::from_bytes([0x42; 32]);
    let forged = Verified::sign(
        Op::new(
            mallory.id().0,
            vec![doc_genesis],
            AuthBody {
                subject: doc,
                action: Action::Invite {
                    invite_key: secret.invite_key(),
                    access: Access::Write,
                    expires: None,
                    max_uses: 1,
                    proof: Proof::Root,
                },
                content_heads: vec![],
            },
        ),
        mallory.signing_key(),
    )
    .expect("sign");
    let forged_hash = forged.hash();
    c.apply_verified(forged).expect("apply");
    let redemption = build_redemption(&carol, &doc, &forged_hash, &secret, 1).expect("redemption");
    c.apply_verified(redemption).expect("apply");
    // WrongDevice: Alice's invitation names Carol's device key as its invitation key; Carol
    // redeems it with a proof of secret that verifies, but as the invitation key itself.
    let invitation = hand_signed(
        &mut c,
        &alice,
        vec![doc_genesis],
        AuthBody {
            subject: doc,
            action: Action::Invite {
                invite_key: carol.id().0,
                access: Access::Read,
                expires: None,
                max_uses: 1,
                proof: Proof::Root,
            },
            content_heads: vec![],
        },
    );
    let mut message = INVITATION_PROOF.as_bytes().to_vec();
    message.extend_from_slice(invitation.as_bytes());
    message.extend_from_slice(carol.id().0.as_bytes());
    message.extend_from_slice(&1u64.to_be_bytes());
    hand_signed(
        &mut c,
        &carol,
        vec![invitation],
        AuthBody {
            subject: doc,
            action: Action::Redeem {
                invitation,
                redeemed_at: 1,
                proof_of_secret: ProofOfSecret::from_bytes(carol.signing_key().sign(&message)),
            },
            content_heads: vec![],
        },
    );
    let mut case = Case::new();
    case.record(&c);
    (case.log, vec![alice, bob, carol, mallory])
}

/// CAP-6 ProofTooLong: a line of `MAX_CHAIN + 2` admin delegations, each made through the one
/// before (Bob and Carol alternately re-granting each other). The delegation whose chain holds
/// `MAX_CHAIN` delegations is the last valid one; the next delegation and an edit through the
/// last are refused.
pub(super) fn proof_too_long() -> (Vec<AnyVerified>, Vec<Device>) {
    let (alice, bob, carol) = (device(1, "alice"), device(2, "bob"), device(3, "carol"));
    let mut c = Checker::default();
    let doc = c.create_document(&alice).expect("doc").genesis.issuer;
    let mut last = c
        .delegate(&alice, &doc, ind(&bob), Access::Admin)
        .expect("grant")
        .hash();
    // Delegation k (k = 1 is Alice's) has a chain of k - 1 delegations.
    for k in 2..=MAX_CHAIN + 2 {
        let (by, to) = if k % 2 == 0 {
            (&bob, &carol)
        } else {
            (&carol, &bob)
        };
        let hash = hand_signed(
            &mut c,
            by,
            vec![last],
            AuthBody {
                subject: doc,
                action: Action::Delegate {
                    delegate: ind(to),
                    access: Access::Admin,
                    proof: via(last),
                },
                content_heads: vec![],
            },
        );
        if k <= MAX_CHAIN + 1 {
            last = hash;
        }
    }
    // Delegation MAX_CHAIN + 1 (odd: Carol to Bob) has a chain of MAX_CHAIN and is valid;
    // Bob's edit through it has a chain of MAX_CHAIN + 1.
    hand_signed(&mut c, &bob, vec![], edit(doc, via(last), vec![last]));
    let mut case = Case::new();
    case.record(&c);
    (case.log, vec![alice, bob, carol])
}
