//! Invitations on replicas, without a network (`specs/invitations.md` INV-6, INV-9, INV-10):
//! two fresh devices redeem one single-use code concurrently; every replica, whatever it
//! received first, ends with exactly one of them as a member; and the one admitted reads the
//! history once the inviter has prepared.

mod replicas;

use keyhive_core::capability::{Access, AgentId};
use keyhive_sync::replica::RedemptionStatus;
use replicas::{R, all_items, me, read, replica, tag};

/// One-way sync: `to` ingests everything `from` stores.
fn push(from: &R, to: &mut R) {
    for (hash, result) in to.ingest_all(tag(from), all_items(from)).unwrap() {
        result.unwrap_or_else(|e| panic!("{hash}: {e}"));
    }
}

fn member(r: &R, who: &R, subject: &keyhive_core::crypto::signing::PublicKey) -> bool {
    r.checker().can(me(who), Access::Pull, subject)
}

#[test]
fn two_concurrent_redemptions_of_a_single_use_invitation_admit_exactly_one() {
    let mut alice = replica("alice");
    let doc = alice.create_document().unwrap();
    alice.write(doc, b"history").unwrap();
    let (_, code) = alice
        .invite(&doc.0, Access::Read, None, 1, "ws://relay.invalid/sync")
        .unwrap();
    let (mut bob, mut carol) = (replica("bob"), replica("carol"));
    // Each redeems from the code alone: its replica holds nothing, so the redemption waits.
    let rb = bob.redeem(&code, 10).unwrap();
    let rc = carol.redeem(&code, 10).unwrap();
    assert_eq!(bob.redemption_status(&rb), RedemptionStatus::Waiting);
    // Redeeming again (e.g. a retried join) returns the same redemption: no second use.
    assert_eq!(bob.redeem(&code, 11).unwrap(), rb);

    // Alice and Bob hear of the two redemptions in opposite orders.
    push(&bob, &mut alice);
    push(&carol, &mut alice);
    push(&alice, &mut bob);
    push(&carol, &mut bob);
    push(&alice, &mut carol);
    push(&bob, &mut carol);
    let winner = rb.min(rc);
    for r in [&alice, &bob, &carol] {
        let members = [member(r, &bob, &doc.0), member(r, &carol, &doc.0)];
        assert_eq!(
            members.iter().filter(|m| **m).count(),
            1,
            "exactly one member"
        );
        assert_eq!(members[0], winner == rb);
    }
    let (admitted, refused, refused_hash) = if winner == rb {
        (&mut bob, &carol, rc)
    } else {
        (&mut carol, &bob, rb)
    };
    match refused.redemption_status(&refused_hash) {
        RedemptionStatus::Refused(r) => assert_eq!(r.rule, "INV-6"),
        other => panic!("not refused: {other:?}"),
    }
    assert_eq!(
        admitted.redemption_status(&winner),
        RedemptionStatus::Admitted(Access::Read)
    );

    // INV-10: the admitted device reads the history once the inviter has prepared (it seats
    // it and publishes an entry point); it never seats itself.
    assert!(admitted.prepare_all().unwrap().is_empty());
    assert!(read(admitted, doc).is_none());
    alice.prepare_all().unwrap();
    push(&alice, admitted);
    assert_eq!(read(admitted, doc).unwrap(), b"history");
    assert!(
        alice
            .invitations()
            .iter()
            .all(|i| i.redeemed_by.len() == 1
                && AgentId::Individual(i.redeemed_by[0]) == me(admitted))
    );
}

#[test]
fn a_repo_invites_redeems_lists_and_revokes() {
    use keyhive_core::identity::Device;
    use keyhive_sync::Repo;
    let alice = Repo::in_memory(Device::generate(Some("alice".into()))).unwrap();
    let bob = Repo::in_memory(Device::generate(Some("bob".into()))).unwrap();
    let doc = alice.create_document().unwrap();
    let (invitation, code) = alice
        .invite(
            &doc.0,
            Access::Write,
            Some(u64::MAX),
            2,
            "ws://relay.invalid/sync",
        )
        .unwrap();
    let redemption = bob.redeem(&code, 1).unwrap();
    let exchange = |from: &Repo, to: &Repo| {
        let items = all_items(&from.replica());
        let from_tag = tag(&from.replica());
        for (hash, result) in to.replica().ingest_all(from_tag, items).unwrap() {
            result.unwrap_or_else(|e| panic!("{hash}: {e}"));
        }
    };
    exchange(&bob, &alice);
    exchange(&alice, &bob);
    assert_eq!(
        bob.redemption_status(&redemption),
        RedemptionStatus::Admitted(Access::Write)
    );
    let listed = alice.invitations();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].hash, invitation);
    assert!(listed[0].outstanding(0), "one use left");

    // INV-7: revoking the invitation removes whom it admitted (CAP-13).
    alice.revoke_invitation(&invitation).unwrap();
    exchange(&alice, &bob);
    match bob.redemption_status(&redemption) {
        RedemptionStatus::Refused(r) => assert_eq!(r.rule, "CAP-13"),
        other => panic!("still admitted: {other:?}"),
    }
    assert!(!alice.invitations()[0].outstanding(0));
}

/// INV-9 (session 4): through one relay, first come keeps a single-use seat. A second invitee
/// pushing its own redemption of a spent invitation is refused `INV-6`, and builds it without
/// storing it; the same op pushed by anyone else is stored, so replicas can still hold the same
/// redemptions.
#[test]
fn a_relay_refuses_a_redeemer_pushing_past_the_use_limit_but_stores_it_from_others() {
    use keyhive_sync::capability_policy::CapabilityPolicy;
    use keyhive_sync::{AccessPolicy, Refusal};

    let mut alice = replica("alice");
    let doc = alice.create_document().unwrap();
    let (_, code) = alice
        .invite(&doc.0, Access::Read, None, 1, "ws://relay.invalid/sync")
        .unwrap();
    let relay = CapabilityPolicy::new([]);
    let push_all = |from: &R, mut items: Vec<keyhive_sync::Item>| {
        keyhive_sync::admission::apply_order(&mut items);
        for item in items {
            relay.check_push(&from.device().id(), &item).unwrap();
        }
    };
    push_all(&alice, all_items(&alice));

    let (mut bob, carol) = (replica("bob"), replica("carol"));
    let (bob_held, carol_held) = (all_items(&bob).len(), all_items(&carol).len());
    let bobs = bob.redemption(&code, 10).unwrap();
    assert_eq!(all_items(&bob).len(), bob_held, "built, not stored");
    relay.check_push(&bob.device().id(), &bobs).unwrap();
    assert_eq!(bob.redeem(&code, 10).unwrap(), bobs.hash(), "same bytes");

    // Carol redeems the spent code later, concurrently (she holds nothing of the subject).
    let carols = carol.redemption(&code, 20).unwrap();
    match relay.check_push(&carol.device().id(), &carols) {
        Err(Refusal::InvalidOp(r)) => assert_eq!(r.rule, "INV-6", "{r}"),
        other => panic!("expected an INV-6 refusal, got {other:?}"),
    }
    assert_eq!(
        all_items(&carol).len(),
        carol_held,
        "a refused redemption exists nowhere"
    );
    // Pushed again by her, refused again; pushed by someone else (a peer she gave it to), stored.
    assert!(relay.check_push(&carol.device().id(), &carols).is_err());
    relay.check_push(&alice.device().id(), &carols).unwrap();
}

/// INV-11, INV-12 through `Replica::end_before_writing`: after a grant's end, a plain writer
/// is refused (the change would reach the ex-grantee) while the admin's call revokes the grant
/// and lets the admin write; once the revocation reaches the writer, it writes again, and the
/// ex-grantee cannot read what it writes.
#[test]
fn inv12_a_writer_waits_for_the_admin_to_end_a_grant() {
    let (mut alice, mut bob, mut carol) = (replica("alice"), replica("bob"), replica("carol"));
    let doc = alice.create_document().unwrap();
    alice.add_contact(replicas::card(&bob)).unwrap();
    alice.add_contact(replicas::card(&carol)).unwrap();
    alice.grant(&doc.0, me(&carol), Access::Write).unwrap();
    let grant = alice
        .grant_until(&doc.0, me(&bob), Access::Read, 100)
        .unwrap();
    alice.write(doc, b"v1").unwrap();
    push(&alice, &mut bob);
    push(&alice, &mut carol);
    assert_eq!(read(&bob, doc).unwrap(), b"v1");

    assert!(carol.end_before_writing(doc, 100).is_ok(), "not ended yet");
    match carol.end_before_writing(doc, 101) {
        Err(keyhive_sync::replica::ReplicaError::GrantEnded { subject, grant: g }) => {
            assert_eq!((subject, g), (doc.0, grant));
        }
        other => panic!("expected GrantEnded, got {other:?}"),
    }
    alice.end_before_writing(doc, 101).unwrap();
    assert!(!member(&alice, &bob, &doc.0), "the admin revoked it");
    alice.write(doc, b"v2 by alice").unwrap();
    push(&alice, &mut carol);
    carol.end_before_writing(doc, 101).unwrap();
    carol.write(doc, b"v3 by carol").unwrap();
    push(&carol, &mut bob);
    push(&alice, &mut bob);
    assert_eq!(
        read(&bob, doc).unwrap(),
        b"v1",
        "bob reads nothing after his end"
    );
}
