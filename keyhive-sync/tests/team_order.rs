//! SYNC-84a: a sync pulls subject by subject, so a document's key-agreement op that seats a
//! team member can arrive before the team's ops that give that member `read`. Such an op was
//! refused (CGKA-20) and reported as "rejected here" to a new team member on its first sync
//! (`keyhive sync`: "rejected here: 9 x ... cgka op not authorised by the capability graph"),
//! although nothing was wrong and the same sync ended up storing it. Now the sync judges it
//! again once every subject was pulled, and counts it once, by that outcome.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use keyhive_core::capability::{Access, AgentId};
use keyhive_core::identity::{Device, DocumentId};
use keyhive_sync::Repo;

fn repo(name: &str) -> Repo {
    Repo::in_memory(Device::generate(Some(name.into()))).unwrap()
}

/// Alice, Bob and Dave; Alice knows the others' cards.
fn three_people() -> (Repo, Repo, Repo) {
    let (alice, bob, dave) = (repo("alice"), repo("bob"), repo("dave"));
    alice.add_contact(bob.contact_card().unwrap()).unwrap();
    alice.add_contact(dave.contact_card().unwrap()).unwrap();
    (alice, bob, dave)
}

/// A team of Alice's whose id sorts after some of the documents shared with it, so that a
/// sync in subject order meets those documents' key-agreement ops before the team's ops.
fn late_team(alice: &Repo) -> keyhive_core::identity::GroupId {
    loop {
        let team = alice.create_group().unwrap();
        if team.0.0[0] >= 0x40 {
            return team;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_team_member_rejects_nothing_of_documents_shared_with_the_team() {
    let relay = common::capability_relay().await;
    let (url, id) = (relay.url(), Some(relay.id()));
    let (alice, bob, dave) = three_people();
    let team = late_team(&alice);
    alice
        .grant(&team.0, AgentId::Individual(bob.id()), Access::Read)
        .unwrap();
    let mut documents: Vec<(DocumentId, keyhive_core::Hash)> = Vec::new();
    while documents.iter().filter(|(d, _)| d.0 < team.0).count() < 2 {
        let doc = alice.create_document().unwrap();
        alice
            .grant(&doc.0, AgentId::Group(team), Access::Read)
            .unwrap();
        let change = alice.write(doc, b"for the team").unwrap();
        documents.push((doc, change));
    }
    alice.sync_with(&url, id).await.unwrap();

    // Dave joins the team later; his first sync takes everything and refuses nothing.
    alice
        .grant(&team.0, AgentId::Individual(dave.id()), Access::Read)
        .unwrap();
    alice.sync_with(&url, id).await.unwrap();
    let first = dave.sync_with(&url, id).await.unwrap();
    assert_eq!(first.rejected, 0, "{:?}", first.rejections);
    assert_eq!(
        first.arrived,
        first.pulled + first.duplicates + first.parked,
        "{first:?}"
    );
    for (doc, change) in &documents {
        assert_eq!(dave.read(*doc, change).unwrap(), b"for the team");
    }
    // Everything arrived in that sync: the next one finds nothing to take.
    let again = dave.sync_with(&url, id).await.unwrap();
    assert_eq!((again.arrived, again.rejected), (0, 0), "{again:?}");

    for r in [alice, bob, dave] {
        r.shutdown().await.unwrap();
    }
    relay.shutdown().await.unwrap();
}

/// SYNC-84a for removals: a member left the team, so each document's key agreement removed its
/// seat. A new member's first sync meets those removals before the team's ops that show the
/// removed member once held `read` (ADM-5: "never held read ... no seat to remove"); they are
/// judged again once every subject was pulled, and nothing is rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_team_member_rejects_nothing_of_a_former_members_removal() {
    let relay = common::capability_relay().await;
    let (url, id) = (relay.url(), Some(relay.id()));
    let (alice, bob, dave) = three_people();
    let team = late_team(&alice);
    alice
        .grant(&team.0, AgentId::Individual(bob.id()), Access::Write)
        .unwrap();
    let mut documents: Vec<DocumentId> = Vec::new();
    while documents.iter().filter(|d| d.0 < team.0).count() < 2 {
        let doc = alice.create_document().unwrap();
        alice
            .grant(&doc.0, AgentId::Group(team), Access::Write)
            .unwrap();
        alice.write(doc, b"for the team").unwrap();
        documents.push(doc);
    }
    alice.sync_with(&url, id).await.unwrap();
    // Bob leaves; the next writes re-key every document without him.
    alice
        .revoke(&team.0, AgentId::Individual(bob.id()))
        .unwrap();
    let mut changes = Vec::new();
    for doc in &documents {
        changes.push((*doc, alice.write(*doc, b"after bob left").unwrap()));
    }
    alice
        .grant(&team.0, AgentId::Individual(dave.id()), Access::Read)
        .unwrap();
    alice.sync_with(&url, id).await.unwrap();

    let first = dave.sync_with(&url, id).await.unwrap();
    assert_eq!(first.rejected, 0, "{:?}", first.rejections);
    // What waited for a predecessor that came later in the same sync is not still waiting.
    assert_eq!(first.parked, 0, "{first:?}");
    for (doc, change) in &changes {
        assert_eq!(dave.read(*doc, change).unwrap(), b"after bob left");
    }
    for r in [alice, bob, dave] {
        r.shutdown().await.unwrap();
    }
    relay.shutdown().await.unwrap();
}
