//! REP-8 (`specs/replica.md` §4) against adversaries, at the `Replica` level: a document is in
//! a folder iff a valid, granting delegation makes the folder a member of it, issued by a device
//! that holds `write` on the folder. A stranger's or a reader's grant shares a document with the
//! folder's members but does not place it there; revoking the placer's `write` on the folder,
//! or the folder's grant on the document, takes the document out; every replica agrees.

mod common;

use common::{R, auth_items, me, replica, tag};
use keyhive_core::capability::{Access, AgentId, PeerTag};
use keyhive_core::identity::DocumentId;
use keyhive_sync::Item;

/// One-way sync of the capability graph: `to` ingests every auth op `from` holds.
fn push(from: &R, to: &mut R) {
    for (hash, result) in to.ingest_all(tag(from), auth_items(from)).unwrap() {
        result.unwrap_or_else(|e| panic!("{hash}: {e}"));
    }
}

/// A document created by `r` that grants `folder` admin (what `doc create --folder` does).
fn place(r: &mut R, folder: DocumentId) -> DocumentId {
    let doc = r.create_document().unwrap();
    r.grant(&doc.0, AgentId::Document(folder), Access::Admin)
        .unwrap();
    doc
}

fn sorted(mut docs: Vec<DocumentId>) -> Vec<DocumentId> {
    docs.sort_unstable();
    docs
}

#[test]
fn rep8_only_writers_of_the_folder_place_documents_in_it() {
    let (mut alice, mut bob, mut carol, mut eve) = (
        replica("alice"),
        replica("bob"),
        replica("carol"),
        replica("eve"),
    );
    let team = alice.create_document().unwrap();
    let plan = place(&mut alice, team);
    alice.grant(&team.0, me(&bob), Access::Read).unwrap();
    alice.grant(&team.0, me(&carol), Access::Write).unwrap();
    for peer in [&mut bob, &mut carol, &mut eve] {
        push(&alice, peer);
    }

    // Eve is not a member of Team; Bob only reads it; Carol writes it.
    let by_eve = place(&mut eve, team);
    let by_bob = place(&mut bob, team);
    let by_carol = place(&mut carol, team);
    // A writer's grant of `pull` only (the folder's members could not read it) does not place.
    let pull_only = carol.create_document().unwrap();
    carol
        .grant(&pull_only.0, AgentId::Document(team), Access::Pull)
        .unwrap();
    for from in [&eve, &bob, &carol] {
        push(from, &mut alice);
    }

    // Eve's and Bob's grants are valid (each is admin on their own document): they share the
    // document with Team's members, yet place nothing in Team.
    for doc in [by_eve, by_bob] {
        let grant = alice
            .checker()
            .delegations_to(&doc.0, AgentId::Document(team));
        assert_eq!(grant.len(), 1);
        assert!(alice.validity(&grant[0]).unwrap().is_valid());
        assert!(alice.folder_placement(team, doc).is_none());
    }
    assert_eq!(
        alice.folder_documents(team),
        sorted(vec![plan, by_carol]),
        "REP-8: only Alice's and Carol's documents are in Team"
    );
    assert_eq!(
        alice.folder_placement(team, by_carol),
        Some(
            alice
                .checker()
                .delegations_to(&by_carol.0, AgentId::Document(team))[0]
        )
    );
    // A document is never in itself, and a group or unknown id has no contents.
    assert!(alice.folder_placement(team, team).is_none());
    assert!(alice.folder_documents(by_eve).is_empty());

    // Every replica holding the same ops lists the same documents (a pure function of the graph).
    let everything: Vec<Item> = [&alice, &eve, &bob, &carol]
        .into_iter()
        .flat_map(auth_items)
        .collect();
    for to in [&mut bob, &mut carol, &mut eve] {
        to.ingest_all(PeerTag::LOCAL, everything.clone()).unwrap();
    }
    for r in [&bob, &carol, &eve] {
        assert_eq!(r.folder_documents(team), alice.folder_documents(team));
    }
}

#[test]
fn rep8_revoking_the_placer_or_the_grant_takes_the_document_out() {
    let (mut alice, mut carol, mut bob) = (replica("alice"), replica("carol"), replica("bob"));
    let team = alice.create_document().unwrap();
    let plan = place(&mut alice, team);
    alice.grant(&team.0, me(&carol), Access::Write).unwrap();
    push(&alice, &mut carol);
    let by_carol = place(&mut carol, team);
    push(&carol, &mut alice);
    assert_eq!(alice.folder_documents(team), sorted(vec![plan, by_carol]));

    // Carol's write on Team is revoked: the document she placed leaves Team.
    alice.revoke(&team.0, me(&carol)).unwrap();
    assert_eq!(alice.folder_documents(team), vec![plan]);
    // Granted again (read only): still not a writer, still out.
    alice.grant(&team.0, me(&carol), Access::Read).unwrap();
    assert_eq!(alice.folder_documents(team), vec![plan]);

    // Team's grant on plan is revoked: plan leaves Team.
    alice.revoke(&plan.0, AgentId::Document(team)).unwrap();
    assert!(alice.folder_documents(team).is_empty());

    // Another replica that learns the same ops agrees.
    push(&alice, &mut bob);
    push(&carol, &mut bob);
    assert!(bob.folder_documents(team).is_empty());
}
