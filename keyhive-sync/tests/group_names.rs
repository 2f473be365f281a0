//! Group names readable by every member (`specs/content.md` REC-8..REC-10), on two people's
//! three devices and a stranger, synced in memory: the creator names a group in its profile
//! document; the creator's second device and another member read the same name; a rename by
//! an admin reaches everyone; concurrent renames settle on one name everywhere; a rename by a
//! member who is not an admin, a profile of another group written by a non-admin, and a
//! profile the group does not hold are refused; a stranger holding every item reads nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod replicas;

use keyhive_core::capability::{Access, AgentId};
use keyhive_core::identity::{Device, DocumentId, GroupId};
use keyhive_sync::Repo;
use keyhive_sync::record::{
    ChangeRecord, DocumentHistory, GroupProfile, GroupProfiles, ProfileError, create_profile,
    name_group,
};
use keyhive_sync::replica::ChangeStatus;
use replicas::{R, all_items, card, me, replica, tag};

/// One-way sync: `to` ingests everything `from` stores.
fn push(from: &R, to: &mut R) {
    for (hash, result) in to.ingest_all(tag(from), all_items(from)).unwrap() {
        result.unwrap_or_else(|e| panic!("{hash}: {e}"));
    }
}

fn name(r: &R, group: GroupId) -> Option<String> {
    GroupProfiles::load(r)
        .unwrap()
        .name(&group)
        .map(str::to_owned)
}

/// Alice's two devices (both admins of Team) and Bob (a writer of Team, not an admin); Alice's
/// first device named Team "Team" after adding her second device, and added Bob after.
struct World {
    alice1: R,
    alice2: R,
    bob: R,
    team: GroupId,
    profile: DocumentId,
}

fn world() -> World {
    let (mut alice1, mut alice2, mut bob) = (replica("alice1"), replica("alice2"), replica("bob"));
    for other in [&alice2, &bob] {
        alice1.add_contact(card(other)).unwrap();
    }
    for r in [&mut alice2, &mut bob] {
        r.add_contact(card(&alice1)).unwrap();
    }
    alice2.add_contact(card(&bob)).unwrap();
    bob.add_contact(card(&alice2)).unwrap();
    let team = alice1.create_group().unwrap();
    alice1.grant(&team.0, me(&alice2), Access::Admin).unwrap();
    let profile = create_profile(&mut alice1, team, "Team").unwrap();
    // A member added after the profile was written is seated in it like any reader (REP-3).
    alice1.grant(&team.0, me(&bob), Access::Write).unwrap();
    alice1.prepare_all().unwrap();
    push(&alice1, &mut alice2);
    push(&alice1, &mut bob);
    World {
        alice1,
        alice2,
        bob,
        team,
        profile,
    }
}

#[test]
fn rec9_every_member_reads_the_creators_name_and_a_stranger_reads_nothing() {
    let w = world();
    for r in [&w.alice1, &w.alice2, &w.bob] {
        assert_eq!(name(r, w.team).as_deref(), Some("Team"));
        let profiles = GroupProfiles::load(r).unwrap();
        assert_eq!(profiles.documents.get(&w.profile), Some(&w.team));
        assert_eq!(profiles.names[&w.team].author, w.alice1.device().id());
    }
    // A stranger (a relay, say) holding every item reads no name and no profile.
    let mut carol = replica("carol");
    push(&w.alice1, &mut carol);
    assert_eq!(
        GroupProfiles::load(&carol).unwrap(),
        GroupProfiles::default()
    );
    // A device that is not an admin of the group cannot name it.
    let mut bob = w.bob;
    assert!(matches!(
        create_profile(&mut bob, w.team, "Bob's"),
        Err(ProfileError::NotAdmin(g)) if g == w.team
    ));
}

#[test]
fn rec10_a_rename_by_an_admin_reaches_every_member() {
    let World {
        mut alice1,
        mut alice2,
        mut bob,
        team,
        profile,
    } = world();
    let profiles = GroupProfiles::load(&alice2).unwrap();
    let written = name_group(&mut alice2, &profiles, team, "Team B").unwrap();
    assert_eq!(
        written, profile,
        "the rename goes to the group's profile document"
    );
    push(&alice2, &mut alice1);
    push(&alice2, &mut bob);
    for r in [&alice1, &alice2, &bob] {
        assert_eq!(name(r, team).as_deref(), Some("Team B"));
    }

    // Concurrent renames by both admins settle on one name, the same on every device.
    let p1 = GroupProfiles::load(&alice1).unwrap();
    name_group(&mut alice1, &p1, team, "From one").unwrap();
    let p2 = GroupProfiles::load(&alice2).unwrap();
    name_group(&mut alice2, &p2, team, "From two").unwrap();
    push(&alice1, &mut alice2);
    push(&alice2, &mut alice1);
    push(&alice1, &mut bob);
    let settled = name(&alice1, team).unwrap();
    assert!(settled == "From one" || settled == "From two", "{settled}");
    assert_eq!(name(&alice2, team), Some(settled.clone()));
    assert_eq!(name(&bob, team), Some(settled));
}

#[test]
fn rec9_a_members_forged_rename_is_refused() {
    let World {
        mut alice1,
        alice2: _,
        mut bob,
        team,
        profile,
    } = world();
    // Bob writes the profile document (Team holds write on it and Bob writes Team), so his
    // change is valid; but he is not an admin of Team, so it does not name it.
    let forged = GroupProfile {
        group: team,
        name: "Bob's team".into(),
    };
    let op = bob.write(profile, &forged.to_record()).unwrap();
    push(&bob, &mut alice1);
    for r in [&alice1, &bob] {
        let history = DocumentHistory::load(r, profile).unwrap();
        let change = history.changes.iter().find(|c| c.op == op).expect("read");
        assert_eq!(change.record, ChangeRecord::Profile(forged.clone()));
        let status = r
            .changes(profile)
            .unwrap()
            .into_iter()
            .find(|c| c.op == op)
            .unwrap()
            .status;
        assert_eq!(
            status,
            ChangeStatus::Valid,
            "a valid change, refused as a name"
        );
        assert_eq!(name(r, team).as_deref(), Some("Team"));
    }

    // Bob's own document, which Team holds and which claims to be Team's profile: refused.
    let own = bob.create_document().unwrap();
    bob.grant(&own.0, AgentId::Group(team), Access::Write)
        .unwrap();
    bob.write(own, &forged.to_record()).unwrap();
    push(&bob, &mut alice1);
    for r in [&alice1, &bob] {
        let profiles = GroupProfiles::load(r).unwrap();
        assert_eq!(profiles.name(&team), Some("Team"));
        assert_eq!(profiles.names[&team].profile, profile);
    }
    assert_eq!(
        GroupProfiles::load(&bob).unwrap().documents.get(&own),
        Some(&team),
        "listed as a profile document, refused as a name"
    );

    // An admin's document that claims Team but that Team does not hold: refused as well.
    let stray = alice1.create_document().unwrap();
    alice1
        .write(
            stray,
            &GroupProfile {
                group: team,
                name: "Stray".into(),
            }
            .to_record(),
        )
        .unwrap();
    let profiles = GroupProfiles::load(&alice1).unwrap();
    assert_eq!(profiles.name(&team), Some("Team"));
    assert!(profiles.is_profile(&stray));
}

#[test]
fn rec8_a_repo_names_and_renames_its_group() {
    let repo = Repo::in_memory(Device::generate(None)).unwrap();
    let group = repo.create_named_group("Family").unwrap();
    assert_eq!(repo.group_names().unwrap().name(&group), Some("Family"));
    let profile = repo.group_names().unwrap().names[&group].profile;
    assert_eq!(repo.name_group(group, "Family & friends").unwrap(), profile);
    assert_eq!(
        repo.group_names().unwrap().name(&group),
        Some("Family & friends")
    );
    assert!(matches!(
        repo.name_group(group, ""),
        Err(ProfileError::InvalidName)
    ));
}
