//! CAP-23 (`specs/capabilities.md`): the subject's genesis is an implied parent of a
//! `keyhive/auth` op of version 2: builders do not name it (32 bytes a delegation), the checker
//! applies the op only once the genesis is held, whatever the arrival order, and checks a
//! `Root` proof against it exactly as if it were named. Version-1 ops keep their meaning.
#![allow(clippy::unwrap_used)]

use keyhive_core::Hash;
use keyhive_core::capability::{
    Access, Action, AgentId, AuthBody, Checker, IngestOutcome, PeerTag, Proof, Reason, Validity,
};
use keyhive_core::encoding::encode;
use keyhive_core::identity::Device;
use keyhive_core::signed::{Op, Verified};

fn device(name: &str) -> Device {
    Device::generate(Some(name.into()))
}

#[test]
fn cap23_a_root_grant_names_no_genesis_and_waits_for_it() {
    let (alice, bob) = (device("alice"), device("bob"));
    let mut a = Checker::default();
    let genesis = a.create_group(&alice).unwrap();
    let group = genesis.issuer;
    let grant = a
        .delegate(&alice, &group, AgentId::Individual(bob.id()), Access::Write)
        .unwrap();
    // CAP-24: a `Root` proof by the creator is written in the root form (version 3), which
    // has the genesis as an implied parent like version 2.
    assert_eq!(grant.format_version(), 3);
    assert!(
        !grant.predecessors.contains(&genesis.hash()),
        "the genesis is implied, not named"
    );
    assert!(matches!(
        grant.body.action,
        Action::Delegate {
            proof: Proof::Root,
            ..
        }
    ));
    assert_eq!(a.op_validity(&grant.hash()), Some(Validity::Valid));

    // Delivered before the genesis: it waits (under a key no op hashes to), then applies.
    let mut b = Checker::default();
    match b.ingest(PeerTag::LOCAL, grant.as_bytes()).unwrap() {
        IngestOutcome::Pending { missing, .. } => {
            assert_eq!(missing.len(), 1);
            assert_ne!(missing[0], genesis.hash());
        }
        other => panic!("expected the grant to wait, got {other:?}"),
    }
    assert_eq!(b.pending_len(), 1);
    match b.ingest(PeerTag::LOCAL, genesis.as_bytes()).unwrap() {
        IngestOutcome::Applied { released, .. } => assert_eq!(released, vec![grant.hash()]),
        other => panic!("expected the genesis to apply, got {other:?}"),
    }
    assert_eq!(b.pending_len(), 0);
    assert_eq!(b.op_validity(&grant.hash()), Some(Validity::Valid));

    // A grant by Bob through his delegation, delivered first of all, waits as well.
    let carol = device("carol");
    let mut a2 = Checker::default();
    a2.ingest(PeerTag::LOCAL, genesis.as_bytes()).unwrap();
    a2.ingest(PeerTag::LOCAL, grant.as_bytes()).unwrap();
    let by_bob = a2
        .delegate(&bob, &group, AgentId::Individual(carol.id()), Access::Read)
        .unwrap();
    let mut c = Checker::default();
    for op in [by_bob.as_bytes(), grant.as_bytes(), genesis.as_bytes()] {
        c.ingest(PeerTag::LOCAL, op).unwrap();
    }
    assert_eq!(c.pending_len(), 0);
    assert_eq!(c.op_validity(&by_bob.hash()), Some(Validity::Valid));
}

/// Signs `op` as a `keyhive/auth` op of version 1 (what builders wrote before CAP-23).
fn sign_v1(op: &Op<AuthBody>, by: &Device) -> Vec<u8> {
    let mut bytes = encode(&"keyhive/auth");
    bytes.push(1);
    bytes.extend_from_slice(&encode(op));
    let signature = by.signing_key().sign(&bytes);
    bytes.extend_from_slice(&signature);
    bytes
}

#[test]
fn cap23_version_1_ops_keep_their_hash_and_their_meaning() {
    let (alice, bob) = (device("alice"), device("bob"));
    let mut a = Checker::default();
    let genesis = a.create_group(&alice).unwrap();
    let group = genesis.issuer;
    let body = AuthBody {
        subject: group,
        action: Action::Delegate {
            delegate: AgentId::Individual(bob.id()),
            access: Access::Read,
            proof: Proof::Root,
        },
        content_heads: Vec::new(),
    };
    // Naming the genesis, as version-1 builders did: valid, hash of the exact bytes.
    let named = sign_v1(
        &Op::new(alice.id().0, vec![genesis.hash()], body.clone()),
        &alice,
    );
    match a.ingest(PeerTag::LOCAL, &named).unwrap() {
        IngestOutcome::Applied { hash, validity, .. } => {
            assert_eq!(hash, Hash::of_signed(&named));
            assert_eq!(validity, Validity::Valid);
        }
        other => panic!("{other:?}"),
    }
    // Not naming it: version 1 has no implied parent, so CAP-5 still refuses it.
    let unnamed = sign_v1(&Op::new(alice.id().0, Vec::new(), body.clone()), &alice);
    match a.ingest(PeerTag::LOCAL, &unnamed).unwrap() {
        IngestOutcome::Applied { validity, .. } => match validity {
            Validity::Invalid(r) => assert_eq!(r.reason, Reason::UnknownSubject),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    // The same op in version 2, unnamed: valid (the genesis is implied).
    let v2 = Verified::sign(Op::new(alice.id().0, Vec::new(), body), alice.signing_key()).unwrap();
    assert_eq!(v2.format_version(), 2);
    a.apply_verified(v2.clone()).unwrap();
    assert_eq!(a.op_validity(&v2.hash()), Some(Validity::Valid));
}
