//! CAP-24 (`specs/capabilities.md`): an auth op whose proof is `Root` is written in the root
//! form (`keyhive/auth` version 3), which omits the issuer: the creator its subject's genesis
//! names. Its hash is a function of its bytes alone; its signature is checked under that
//! creator once the genesis is held, and until then it waits like any op with a missing
//! parent, in any delivery order.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use keyhive_core::Hash;
use keyhive_core::capability::{
    Access, Action, AgentId, AnySigned, AuthBody, Checker, IngestError, IngestOutcome, PeerTag,
    Proof, Reason, Validity,
};
use keyhive_core::encoding::encode;
use keyhive_core::identity::Device;
use keyhive_core::signed::{Op, Verified};
use proptest::prelude::*;

fn device(name: &str) -> Device {
    Device::generate(Some(name.into()))
}

/// The root form's signed bytes, built by hand from `specs/capabilities.md` CAP-24, signed by
/// `by`.
fn sign_root_form(predecessors: &[Hash], body: &AuthBody, by: &Device) -> Vec<u8> {
    let mut bytes = encode(&"keyhive/auth");
    bytes.push(3);
    bytes.extend_from_slice(&encode(&predecessors.to_vec()));
    bytes.extend_from_slice(&encode(body));
    let signature = by.signing_key().sign(&bytes);
    bytes.extend_from_slice(&signature);
    bytes
}

fn grant(
    subject: keyhive_core::crypto::signing::PublicKey,
    to: &Device,
    access: Access,
) -> AuthBody {
    AuthBody {
        subject,
        action: Action::Delegate {
            delegate: AgentId::Individual(to.id()),
            access,
            proof: Proof::Root,
        },
        content_heads: Vec::new(),
    }
}

#[test]
fn cap24_a_root_grant_omits_its_issuer_and_its_hash_needs_no_state() {
    let (alice, bob, carol) = (device("alice"), device("bob"), device("carol"));
    let mut a = Checker::default();
    let genesis = a.create_group(&alice).unwrap();
    let group = genesis.issuer;
    let to_bob = a
        .delegate(&alice, &group, AgentId::Individual(bob.id()), Access::Admin)
        .unwrap();
    assert_eq!(to_bob.format_version(), 3);
    assert_eq!(
        to_bob.issuer,
        alice.id().0,
        "the verified op knows its issuer"
    );
    let bytes = to_bob.as_bytes();
    assert!(
        !bytes.windows(32).any(|w| w == alice.id().0.as_bytes()),
        "the issuer does not travel"
    );
    // The layout is the spec's: the builder's bytes are the hand-built ones.
    assert_eq!(
        sign_root_form(&to_bob.predecessors, &to_bob.body, &alice),
        bytes
    );
    // 32 bytes shorter than the same op in version 2.
    let v2 = Verified::sign(
        Op::new(
            alice.id().0,
            to_bob.predecessors.clone(),
            to_bob.body.clone(),
        ),
        alice.signing_key(),
    )
    .unwrap();
    assert_eq!(v2.as_bytes().len() - bytes.len(), 32);
    // Decoded with no state at all: the same hash, no issuer yet.
    match AnySigned::decode(bytes).unwrap() {
        AnySigned::RootForm(r) => {
            assert_eq!(r.hash(), to_bob.hash());
            assert_eq!(r.hash(), Hash::of_signed(bytes));
            assert_eq!(r.unverified_body(), &to_bob.body);
        }
        other => panic!("expected a root form, got {other:?}"),
    }
    // Bob's grant rests on a delegation (a `Via` proof): version 2, issuer on the wire.
    let by_bob = a
        .delegate(&bob, &group, AgentId::Individual(carol.id()), Access::Read)
        .unwrap();
    assert_eq!(by_bob.format_version(), 2);
    assert!(matches!(
        AnySigned::decode(by_bob.as_bytes()).unwrap(),
        AnySigned::Auth(_)
    ));
}

#[test]
fn cap24_a_root_form_not_signed_by_the_creator_is_refused_on_every_replica() {
    let (alice, mallory) = (device("alice"), device("mallory"));
    let mut a = Checker::default();
    let genesis = a.create_group(&alice).unwrap();
    let group = genesis.issuer;
    let forged = sign_root_form(&[], &grant(group, &mallory, Access::Admin), &mallory);
    let forged_hash = Hash::of_signed(&forged);
    // Genesis first: refused at once for its signature.
    let mut first = Checker::default();
    first.ingest(PeerTag::LOCAL, genesis.as_bytes()).unwrap();
    assert!(matches!(
        first.ingest(PeerTag::LOCAL, &forged),
        Err(IngestError::Signature(_))
    ));
    // Forgery first: it waits for the genesis, which then shows its signature false.
    let mut later = Checker::default();
    match later.ingest(PeerTag::LOCAL, &forged).unwrap() {
        IngestOutcome::Pending { missing, .. } => assert_eq!(missing.len(), 1),
        other => panic!("expected the forgery to wait, got {other:?}"),
    }
    match later.ingest(PeerTag::LOCAL, genesis.as_bytes()).unwrap() {
        IngestOutcome::Applied { released, .. } => assert!(released.is_empty()),
        other => panic!("{other:?}"),
    }
    for c in [&first, &later] {
        assert_eq!(c.op_validity(&forged_hash), None, "never stored");
        assert_eq!(c.pending_len(), 0);
        assert!(!c.can(AgentId::Individual(mallory.id()), Access::Pull, &group));
    }
    // The same claim in version 2 (issuer on the wire) is stored and refused by CAP-6 on
    // every replica, whatever the order, as before.
    let v2 = Verified::sign(
        Op::new(
            mallory.id().0,
            Vec::new(),
            grant(group, &mallory, Access::Admin),
        ),
        mallory.signing_key(),
    )
    .unwrap();
    for order in [
        [genesis.as_bytes(), v2.as_bytes()],
        [v2.as_bytes(), genesis.as_bytes()],
    ] {
        let mut c = Checker::default();
        for bytes in order {
            c.ingest(PeerTag::LOCAL, bytes).unwrap();
        }
        match c.op_validity(&v2.hash()) {
            Some(Validity::Invalid(r)) => assert_eq!(r.reason, Reason::NotRoot),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn cap24_non_canonical_root_forms_are_refused() {
    let (alice, bob) = (device("alice"), device("bob"));
    let mut a = Checker::default();
    let genesis = a.create_group(&alice).unwrap();
    let group = genesis.issuer;
    let mut c = Checker::default();
    c.ingest(PeerTag::LOCAL, genesis.as_bytes()).unwrap();
    // Only a `Root` proof may take the root form (one form per op).
    let mut via = grant(group, &bob, Access::Read);
    if let Action::Delegate { proof, .. } = &mut via.action {
        *proof = Proof::Via {
            delegation: genesis.hash(),
            membership: Vec::new(),
        };
    }
    let unsorted = [Hash::of_content(b"b"), Hash::of_content(b"a")];
    let mut unsorted = unsorted.to_vec();
    unsorted.sort_unstable();
    unsorted.reverse();
    let cases = [
        sign_root_form(&[], &via, &alice),
        sign_root_form(&unsorted, &grant(group, &bob, Access::Read), &alice),
        {
            // A trailing byte inside the signed bytes.
            let good = sign_root_form(&[], &grant(group, &bob, Access::Read), &alice);
            let (payload, _) = good.split_at(good.len() - 64);
            let mut bytes = payload.to_vec();
            bytes.push(0);
            let signature = alice.signing_key().sign(&bytes);
            bytes.extend_from_slice(&signature);
            bytes
        },
    ];
    for bytes in cases {
        assert!(matches!(
            c.ingest(PeerTag::LOCAL, &bytes),
            Err(IngestError::Decode(_))
        ));
    }
    assert_eq!(c.ops().count(), 1);
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// CAP-24 with CAP-3/CAP-4: root-form grants and revocations, grants resting on them
    /// (version 2) and a forged root form, delivered to four replicas in random orders: every
    /// replica waits for what it lacks, ends with nothing pending, never stores the forgery,
    /// and agrees with the author on every op's validity and on the members.
    #[test]
    fn cap24_root_forms_wait_for_their_genesis_in_any_order(seed in any::<u64>()) {
        let (alice, bob, carol, dave, mallory) =
            (device("alice"), device("bob"), device("carol"), device("dave"), device("mallory"));
        let mut a = Checker::default();
        let genesis = a.create_group(&alice).unwrap();
        let group = genesis.issuer;
        let doc = a.create_document(&alice).unwrap();
        let document = doc.genesis.issuer;
        let to_bob = a.delegate(&alice, &group, AgentId::Individual(bob.id()), Access::Admin).unwrap();
        let to_carol = a.delegate(&alice, &group, AgentId::Individual(carol.id()), Access::Read).unwrap();
        let by_bob = a.delegate(&bob, &group, AgentId::Individual(dave.id()), Access::Write).unwrap();
        let folder = a.delegate(&alice, &document, AgentId::Group(keyhive_core::identity::GroupId(group)), Access::Read).unwrap();
        let revoke = a.revoke(&alice, &group, &to_carol.hash()).unwrap();
        for op in [&to_bob, &to_carol, &folder, &revoke] {
            prop_assert_eq!(op.format_version(), 3);
        }
        prop_assert_eq!(by_bob.format_version(), 2);
        let forged = sign_root_form(&[], &grant(group, &mallory, Access::Admin), &mallory);
        let mut ops: Vec<Vec<u8>> = a.ops().map(|o| o.as_bytes().to_vec()).collect();
        let expected: BTreeMap<Hash, Validity> = a
            .ops()
            .map(|o| (o.hash(), a.op_validity(&o.hash()).unwrap()))
            .collect();
        ops.push(forged.clone());
        let mut state = seed;
        for _ in 0..4 {
            for i in (1..ops.len()).rev() {
                let j = (splitmix(&mut state) % (i as u64 + 1)) as usize;
                ops.swap(i, j);
            }
            let mut r = Checker::default();
            for bytes in &ops {
                match r.ingest(PeerTag::LOCAL, bytes) {
                    Ok(_) => {}
                    Err(IngestError::Signature(_)) => prop_assert_eq!(bytes, &forged),
                    Err(e) => prop_assert!(false, "{e:?}"),
                }
            }
            prop_assert_eq!(r.pending_len(), 0);
            prop_assert_eq!(r.op_validity(&Hash::of_signed(&forged)), None);
            let got: BTreeMap<Hash, Validity> = r
                .ops()
                .map(|o| (o.hash(), r.op_validity(&o.hash()).unwrap()))
                .collect();
            prop_assert_eq!(&got, &expected);
            prop_assert_eq!(r.members(&group), a.members(&group));
            prop_assert_eq!(r.members(&document), a.members(&document));
        }
    }
}
