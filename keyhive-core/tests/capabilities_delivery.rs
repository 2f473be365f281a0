//! Causally closed delivery (`specs/capabilities.md` §8, CAP-20..CAP-22): scenario tests.
//! The random-order property lives in `capabilities_convergence.rs`
//! (`partial_replica_agrees`).
#![allow(clippy::unwrap_used)]

use keyhive_core::Hash;
use keyhive_core::capability::{
    Access, AgentId, AnyVerified, Checker, ContentBody, PeerTag, Reason, Validity,
};
use keyhive_core::identity::{Device, DocumentId, GroupId};
use keyhive_core::signed::{Op, Verified};

fn device(name: &str) -> Device {
    Device::generate(Some(name.into()))
}

fn ind(d: &Device) -> AgentId {
    AgentId::Individual(d.id())
}

/// What a relay serves `who` (CAP-21): auth ops of its served subjects, content ops of the
/// documents it reaches.
fn served(from: &Checker, who: AgentId) -> Vec<AnyVerified> {
    let scope = from.served_subjects(who);
    let pulls = from.reachable(who);
    from.ops()
        .filter(|op| match op {
            AnyVerified::Content(_) => pulls.contains_key(&op.subject()),
            _ => scope.contains(&op.subject()),
        })
        .cloned()
        .collect()
}

/// Ingests `ops` newest first, so that most wait in the pending set for their parents.
fn deliver(ops: &[AnyVerified], to: &mut Checker) {
    for op in ops.iter().rev() {
        to.ingest(PeerTag::LOCAL, op.as_bytes()).unwrap();
    }
}

#[test]
fn cap20_a_private_document_never_becomes_a_parent_of_shared_ops() {
    let alice = device("alice");
    let bob = device("bob");
    let mut a = Checker::default();
    let shared = a.create_document(&alice).unwrap().genesis.issuer;
    a.delegate(&alice, &shared, ind(&bob), Access::Write)
        .unwrap();
    // Alice's private diary is created after the grant, and written to in between.
    let diary = a.create_document(&alice).unwrap().genesis.issuer;
    a.write(&alice, DocumentId(diary), b"dear diary").unwrap();
    let v2 = a.write(&alice, DocumentId(shared), b"v2").unwrap();
    let later = a.create_document(&alice).unwrap().genesis.issuer;
    let grant = a.delegate(&alice, &later, ind(&bob), Access::Read).unwrap();

    let ops = served(&a, ind(&bob));
    assert!(ops.iter().all(|op| op.subject() != diary), "diary served");
    let diary_ops: Vec<Hash> = a.ops_for(&diary).map(|op| op.hash()).collect();
    for op in &ops {
        assert!(op.parents().iter().all(|p| !diary_ops.contains(p)));
    }
    let mut b = Checker::default();
    deliver(&ops, &mut b);
    assert_eq!(b.pending_len(), 0);
    assert_eq!(b.op_validity(&v2.hash()), Some(Validity::Valid));
    assert_eq!(b.op_validity(&grant.hash()), Some(Validity::Valid));
    assert!(b.subject_info(&diary).is_none());
}

#[test]
fn cap20_an_op_naming_another_subjects_op_as_parent_is_invalid() {
    let alice = device("alice");
    let mut c = Checker::default();
    let shared = c.create_document(&alice).unwrap().genesis.issuer;
    let diary = c.create_document(&alice).unwrap().genesis.issuer;
    let secret = c.write(&alice, DocumentId(diary), b"secret").unwrap();
    let proof = c
        .find_proof(alice.id(), &shared, Access::Write, u32::MAX)
        .unwrap();
    let mut auth_heads = c.auth_heads(&shared);
    auth_heads.extend(c.auth_heads(&diary));
    auth_heads.sort_unstable();
    let body = ContentBody {
        document: DocumentId(shared),
        auth_heads,
        proof: proof.clone(),
        payload: keyhive_core::capability::Payload::Blob {
            hash: Hash::of_content(b"x"),
            len: 1,
        },
    };
    let op = Verified::sign(Op::new(alice.id().0, vec![], body), alice.signing_key()).unwrap();
    c.apply_verified(op.clone()).unwrap();
    match c.op_validity(&op.hash()).unwrap() {
        Validity::Invalid(r) => {
            assert_eq!(r.rule, "CAP-20");
            assert!(matches!(r.reason, Reason::ParentOutOfScope(_)));
        }
        Validity::Valid => panic!("out-of-scope auth head accepted"),
    }
    // A content op whose predecessor is another document's change is refused too.
    let body = ContentBody {
        document: DocumentId(shared),
        auth_heads: c.auth_heads(&shared),
        proof,
        payload: keyhive_core::capability::Payload::Blob {
            hash: Hash::of_content(b"y"),
            len: 1,
        },
    };
    let op = Verified::sign(
        Op::new(alice.id().0, vec![secret.hash()], body),
        alice.signing_key(),
    )
    .unwrap();
    c.apply_verified(op.clone()).unwrap();
    assert!(matches!(
        c.op_validity(&op.hash()),
        Some(Validity::Invalid(r)) if r.rule == "CAP-20"
    ));
}

#[test]
fn cap21_a_direct_member_is_served_the_team_its_co_writers_come_through() {
    let alice = device("alice");
    let bob = device("bob");
    let carol = device("carol");
    let mut a = Checker::default();
    let doc = a.create_document(&alice).unwrap().genesis.issuer;
    let team = a.create_group(&alice).unwrap().issuer;
    a.delegate(&alice, &team, ind(&carol), Access::Write)
        .unwrap();
    a.delegate(&alice, &doc, AgentId::Group(GroupId(team)), Access::Write)
        .unwrap();
    a.delegate(&alice, &doc, ind(&bob), Access::Read).unwrap();
    let edit = a.write(&carol, DocumentId(doc), b"carol").unwrap();

    let scope = a.served_subjects(ind(&bob));
    assert!(scope.contains(&doc) && scope.contains(&team));
    let mut b = Checker::default();
    deliver(&served(&a, ind(&bob)), &mut b);
    assert_eq!(b.pending_len(), 0);
    assert_eq!(b.op_validity(&edit.hash()), Some(Validity::Valid));
    // Carol's removal from the team reaches Bob, and her concurrent edit is refused there.
    let mut carols = Checker::default();
    deliver(&a.ops().cloned().collect::<Vec<_>>(), &mut carols);
    let concurrent = carols.write(&carol, DocumentId(doc), b"late").unwrap();
    let in_team = a.delegations_to(&team, ind(&carol));
    a.revoke(&alice, &team, &in_team[0]).unwrap();
    a.apply_verified(concurrent.clone()).unwrap();
    deliver(&served(&a, ind(&bob)), &mut b);
    assert_eq!(b.pending_len(), 0);
    assert!(!b.can(ind(&carol), Access::Read, &doc));
    assert_eq!(
        b.op_validity(&concurrent.hash()),
        a.op_validity(&concurrent.hash())
    );
    assert!(!b.op_validity(&concurrent.hash()).unwrap().is_valid());
    assert_eq!(b.op_validity(&edit.hash()), Some(Validity::Valid));
}

#[test]
fn cap22_a_folder_revocation_witnesses_earlier_edits_in_any_arrival_order() {
    let alice = device("alice");
    let xavier = device("xavier");
    let mut a = Checker::default();
    let folder = a.create_group(&alice).unwrap().issuer;
    let one = a.create_document(&alice).unwrap().genesis.issuer;
    let two = a.create_document(&alice).unwrap().genesis.issuer;
    for doc in [one, two] {
        a.delegate(&alice, &doc, AgentId::Group(GroupId(folder)), Access::Write)
            .unwrap();
    }
    let grant = a
        .delegate(&alice, &folder, ind(&xavier), Access::Write)
        .unwrap();
    let before_one = a.write(&xavier, DocumentId(one), b"1").unwrap();
    let before_two = a.write(&xavier, DocumentId(two), b"2").unwrap();
    let removal = a.revoke(&alice, &folder, &grant.hash()).unwrap();
    // The revocation's parents stay on the folder; the documents' changes are witnesses.
    assert!(!removal.predecessors.contains(&before_one.hash()));
    assert!(removal.body.content_heads.contains(&before_one.hash()));

    // Revocation first, the edits later: the edit is excluded until its witness arrives.
    let mut b = Checker::default();
    for op in a.ops().filter(|op| !matches!(op, AnyVerified::Content(_))) {
        b.ingest(PeerTag::LOCAL, op.as_bytes()).unwrap();
    }
    b.ingest(PeerTag::LOCAL, before_two.as_bytes()).unwrap();
    b.ingest(PeerTag::LOCAL, before_one.as_bytes()).unwrap();
    assert_eq!(b.pending_len(), 0);
    for edit in [&before_one, &before_two] {
        assert_eq!(b.op_validity(&edit.hash()), Some(Validity::Valid));
        assert_eq!(b.op_validity(&edit.hash()), a.op_validity(&edit.hash()));
    }
    assert!(!b.can(ind(&xavier), Access::Read, &one));
}
