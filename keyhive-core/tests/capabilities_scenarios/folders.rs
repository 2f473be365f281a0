//! Folders: access through a folder (CAP-14), its cycles, and revoking the folder grant (CAP-13).

use super::*;

/// doc -> folder group -> person group -> device.
pub(super) struct Drive {
    c: Checker,
    alice: Device,
    bob_phone: Device,
    folder: PublicKey,
    bob: PublicKey,
    docs: Vec<PublicKey>,
    folder_to_bob: Hash,
}

pub(super) fn drive() -> Drive {
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
