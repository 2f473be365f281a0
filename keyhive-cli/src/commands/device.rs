//! `keyhive device add|join|remove|list`: one person's devices as one group
//! (`docs/cli-people.md` PERSON-1..PERSON-5).

use anyhow::{Context, Result, bail};
use keyhive_core::capability::{Access, AgentId, SubjectInfo};
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::{ContactCard, DocumentId, GroupId, SubjectKind};
use keyhive_sync::record::MetadataKind;
use serde_json::json;

use crate::output::print_table;
use crate::person;
use crate::session::Session;

/// PERSON-1: this device's person group, created (with this device as its admin) on first use.
fn person_group(s: &mut Session) -> Result<GroupId> {
    if let Some(group) = s.person {
        return Ok(group);
    }
    let group = s.replica.create_group()?;
    person::save(&s.home, group)?;
    s.person = Some(group);
    Ok(group)
}

/// PERSON-6: gives this device's person group (if it has one) `admin` on `subject`, which this
/// device just created, so that the person's other devices hold it too. Returns the grant.
pub(crate) fn give_to_person(
    s: &mut Session,
    subject: &PublicKey,
) -> Result<Option<keyhive_core::Hash>> {
    let Some(group) = s.person else {
        return Ok(None);
    };
    if group.0 == *subject
        || s.replica
            .checker()
            .can(AgentId::Group(group), Access::Admin, subject)
    {
        return Ok(None);
    }
    Ok(Some(s.replica.grant(
        subject,
        AgentId::Group(group),
        Access::Admin,
    )?))
}

/// Every group, folder and document held here that a person group may be given (not a
/// group's profile document: its group's members read and name it; not a conflicted subject),
/// ranked groups 0, folders 1, documents 2, with what the checker knows of it.
fn ranked_subjects(s: &mut Session) -> Result<Vec<(u8, PublicKey, SubjectInfo)>> {
    let metas = s.metas()?.clone();
    let profiles = s.group_names()?.shared.profiles.clone();
    let checker = s.replica.checker();
    Ok(checker
        .subjects()
        .filter_map(|subject| {
            let info = checker.subject_info(subject)?;
            let document = DocumentId(*subject);
            let rank = match info.kind {
                SubjectKind::Group => 0,
                SubjectKind::Document if profiles.contains(&document) => return None,
                SubjectKind::Document => match metas.get(&document) {
                    Some(m) if m.kind == MetadataKind::Folder => 1,
                    _ => 2,
                },
            };
            (!info.conflicted).then_some((rank, *subject, info))
        })
        .collect())
}

/// PERSON-6: gives the person group `admin` on every group, folder and document this device
/// created (when it links or joins a person group); returns how many it gave. Groups first,
/// then folders, then documents, so that a document in a folder given already is not given
/// again; a group's profile document is not given (its group's members read and name it).
fn give_creations_to_person(s: &mut Session) -> Result<usize> {
    let me = s.replica.device().id();
    let mut created: Vec<(u8, PublicKey)> = ranked_subjects(s)?
        .into_iter()
        .filter(|(_, _, info)| info.creator == me)
        .map(|(rank, subject, _)| (rank, subject))
        .collect();
    created.sort();
    let mut given = 0;
    for (_, subject) in created {
        if give_to_person(s, &subject)?.is_some() {
            given += 1;
        }
    }
    Ok(given)
}

/// PERSON-7 (`person::pass_on_shares`), for this device's person group if it has one.
fn give_shares_to_person(s: &mut Session) -> Result<usize> {
    match s.person {
        Some(group) => person::pass_on_shares(&mut s.replica, group),
        None => Ok(0),
    }
}

/// `keyhive device add CARD [--name NAME]`: links another device of this person.
pub fn add(s: &mut Session, card: &str, name: Option<String>) -> Result<()> {
    let line = if card
        .trim_start()
        .starts_with(keyhive_core::identity::contact_card::CARD_PREFIX)
    {
        card.to_owned()
    } else {
        std::fs::read_to_string(card).with_context(|| {
            format!("{card:?} is neither a keyhive-card1: line nor a readable file")
        })?
    };
    let group = person_group(s)?;
    let contact = s.contacts.add(&line, name)?;
    if contact.id == s.replica.device().id() {
        bail!("that is this device's own card; pass the other device's `keyhive contact export`");
    }
    s.replica
        .add_contact(ContactCard::from_line(&contact.card)?)?;
    // PERSON-1: every device of the person is an admin of the group, so each can link more.
    let op = s
        .replica
        .grant(&group.0, AgentId::Individual(contact.id), Access::Admin)?;
    let shared = give_creations_to_person(s)?;
    let passed = give_shares_to_person(s)?;
    s.replica.prepare_all()?;
    s.contacts.save(&s.home)?;
    s.save()?;
    let (device, group) = (contact.id.to_string(), group.to_string());
    s.out.emit(
        &json!({"device": device, "name": contact.name, "group": group, "op": op.to_string(), "shared": shared, "passed_on": passed}),
        || {
            println!("Linked device {} ({device}) into your person group {group}", contact.name);
            print_given(shared, passed);
            println!("Next: `keyhive sync` here, then on that device `keyhive sync` and `keyhive device join {group}`");
        },
    )
}

/// `keyhive device join GROUP`: on a linked device, adopts the person group (PERSON-1).
pub fn join(s: &mut Session, group: Option<&str>) -> Result<()> {
    let group: GroupId = match group {
        Some(group) => group
            .parse()
            .context("expected the group id printed by `keyhive device add` (64 hex characters)")?,
        None => linked_into(s)?,
    };
    let me = AgentId::Individual(s.replica.device().id());
    if !s.replica.checker().can(me, Access::Admin, &group.0) {
        bail!(
            "this device is not (yet) linked into group {group}: run `keyhive device add` with this device's card on a linked device, then `keyhive sync` on both"
        );
    }
    if let Some(old) = s.person
        && old != group
    {
        bail!("this device already belongs to person group {old}");
    }
    let already = s.person == Some(group);
    person::save(&s.home, group)?;
    s.person = Some(group);
    let shared = give_creations_to_person(s)?;
    let passed = give_shares_to_person(s)?;
    s.replica.prepare_all()?;
    s.save()?;
    let group = group.to_string();
    s.out.emit(
        &json!({"group": group, "shared": shared, "passed_on": passed, "already": already}),
        || {
            if already {
                println!("This device already belongs to person group {group}");
            } else {
                println!("This device now belongs to person group {group}; `keyhive contact export` sends it with your card");
            }
            print_given(shared, passed);
            if shared + passed > 0 {
                println!("`keyhive sync` sends them");
            }
        },
    )
}

/// What linking gave the person group (PERSON-6, PERSON-7), as a person reads it.
fn print_given(created: usize, passed: usize) {
    let things = |n: usize| match n {
        1 => "1 group, folder or document".to_owned(),
        n => format!("{n} groups, folders and documents"),
    };
    if created > 0 {
        println!(
            "The {} created here now reach all your devices",
            things(created)
        );
    }
    if passed > 0 {
        println!(
            "The {} others shared with this device now reach all your devices, at the level shared",
            things(passed)
        );
    }
}

/// `device join` without a group: the one group another device made this device a direct
/// admin of (what `device add` does). Teams this device was made admin of are candidates too,
/// so more than one is refused with the list, not guessed.
fn linked_into(s: &mut Session) -> Result<GroupId> {
    let me = s.replica.device().id();
    let checker = s.replica.checker();
    let mut candidates: Vec<GroupId> = s
        .replica
        .reachable()
        .into_iter()
        .filter(|(_, level, kind)| *kind == SubjectKind::Group && *level == Access::Admin)
        .map(|(subject, _, _)| GroupId(subject))
        .filter(|group| {
            checker
                .subject_info(&group.0)
                .is_some_and(|info| info.creator != me)
                && checker
                    .direct_members(&group.0)
                    .contains_key(&AgentId::Individual(me))
        })
        .collect();
    candidates.sort_unstable();
    match candidates.as_slice() {
        [] => bail!(
            "no device has linked this one yet: run `keyhive device add` with this device's card on a linked device, then `keyhive sync` on both"
        ),
        [group] => Ok(*group),
        more => {
            let ids: Vec<String> = more.iter().map(ToString::to_string).collect();
            bail!(
                "this device is a direct admin of {} groups; name the one `keyhive device add` printed: {}",
                more.len(),
                ids.join(", ")
            )
        }
    }
}

/// `keyhive device remove DEVICE`: unlinks a device (it loses what it held through the
/// person; documents it could read are re-keyed, REP-3).
pub fn remove(s: &mut Session, device: &str) -> Result<()> {
    let Some(group) = s.person else {
        bail!("this device belongs to no person group: nothing to remove");
    };
    let id = match s.agent(device)? {
        AgentId::Individual(id) => id,
        _ => bail!("{device:?} is not a device (name a contact's device or its id)"),
    };
    let before = s.replica.checker().members(&group.0);
    let ops = s.replica.revoke(&group.0, AgentId::Individual(id))?;
    if ops.is_empty() {
        bail!("{device} is not linked into your person group {group}");
    }
    s.replica.prepare_all()?;
    s.save()?;
    // PERSON-5: devices linked through the removed one leave with it (revocation cascade).
    let after = s.replica.checker().members(&group.0);
    let mut unlinked = Vec::new();
    for agent in before.keys().filter(|a| !after.contains_key(a)) {
        if let AgentId::Individual(gone) = agent {
            unlinked.push((gone.to_string(), s.name_of(&gone.0)));
        }
    }
    let id = id.to_string();
    s.out.emit(
        &json!({"device": id, "group": group.to_string(), "ops": ops.len(),
                "unlinked": unlinked.iter().map(|(i, n)| json!({"device": i, "name": n})).collect::<Vec<_>>()}),
        || {
            println!("Unlinked device {device} ({id}) from your person group; `keyhive sync` sends it");
            let others: Vec<&str> = unlinked.iter().filter(|(i, _)| *i != id).map(|(_, n)| n.as_str()).collect();
            if !others.is_empty() {
                println!("Also unlinked, as they were linked through it: {}", others.join(", "));
            }
        },
    )
}

/// `keyhive device list`: the devices of this person.
pub fn list(s: &mut Session) -> Result<()> {
    let Some(group) = s.person else {
        bail!("this device belongs to no person group yet: `keyhive device add CARD` links one");
    };
    let members = s.replica.checker().members(&group.0);
    let mut rows = Vec::new();
    for (agent, access) in members.iter() {
        if let AgentId::Individual(id) = agent {
            rows.push((id.to_string(), s.name_of(&id.0), access.to_string()));
        }
    }
    s.out.emit(
        &rows
            .iter()
            .map(|(id, name, access)| json!({"device": id, "name": name, "access": access}))
            .collect::<Vec<_>>(),
        || {
            println!("person group {group}");
            print_table(
                &["device", "name", "access"],
                rows.iter()
                    .map(|(id, name, access)| {
                        vec![id[..12].to_owned(), name.clone(), access.clone()]
                    })
                    .collect(),
            )
        },
    )
}
