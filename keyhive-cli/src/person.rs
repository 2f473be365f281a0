//! The person this device belongs to (`docs/cli-people.md` PERSON-1..PERSON-5): the group of
//! one person's devices, remembered in `person.json`, and the person line that carries it
//! beside the device's contact card.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use keyhive_core::capability::{Access, AgentId};
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::{GroupId, IndividualId};
use keyhive_sync::Store;
use keyhive_sync::replica::Replica;
use serde::{Deserialize, Serialize};

use crate::home::Home;

/// PERSON-4: how the person group is shown on the person's own devices.
pub const OWN_GROUP_NAME: &str = "me (all my devices)";
/// The file in the home.
pub const PERSON_FILE: &str = "person.json";
/// PERSON-2: prefix of a person line, `keyhive-person1:GROUP_ID:CARD_LINE`.
pub const PERSON_PREFIX: &str = "keyhive-person1:";

#[derive(Debug, Serialize, Deserialize)]
struct PersonFile {
    group: String,
}

/// The person group this device belongs to, if any.
pub fn load(home: &Home) -> Result<Option<GroupId>> {
    let Some(bytes) = home.read_optional(PERSON_FILE)? else {
        return Ok(None);
    };
    let damaged = || format!("{} is damaged", home.path(PERSON_FILE).display());
    let file: PersonFile = serde_json::from_slice(&bytes).with_context(damaged)?;
    Ok(Some(file.group.parse().with_context(damaged)?))
}

/// Remembers the person group.
pub fn save(home: &Home, group: GroupId) -> Result<()> {
    let file = PersonFile {
        group: group.to_string(),
    };
    home.write_atomic(PERSON_FILE, &serde_json::to_vec_pretty(&file)?, false)
}

/// PERSON-4: another device of this device's `person` group, named by the name on its card
/// (`laptop (my device)`); `None` for any other device. A device of the group was linked by one
/// of the person's devices, so its card is trusted as the link is.
pub fn own_device_name<S: Store>(
    replica: &Replica<S>,
    person: Option<GroupId>,
    device: &IndividualId,
) -> Option<String> {
    let person = person?;
    replica
        .checker()
        .level(AgentId::Individual(*device), &person.0)?;
    let card = replica.directory().card(device)?;
    let name = card.payload().name.as_deref().unwrap_or("device");
    Some(format!("{name} (my device)"))
}

/// PERSON-7: gives this device's `person` group what others shared with this device directly
/// (a valid delegation naming it, on a subject it did not create), at the level shared, on
/// every subject the group does not hold at that level yet; returns how many grants it made.
/// `device add`, `device join` and every sync round run it, so a share made after the devices
/// were linked reaches the others at the next sync of the device it names.
///
/// A reader may pass on read and a writer write, never more (CAP-8), and a revocation of this
/// device's grant takes the group's with it (CAP-13). A device no longer in the group (unlinked,
/// PERSON-5) passes on nothing. A subject reached through another one passed on in the same call
/// (a document in a shared folder, a folder through a team) is granted after it, and only if
/// the group does not reach it by then, so nothing is granted twice; with no metadata needed,
/// the order comes from the graph: a subject waits while one of its direct members (a group or
/// folder) is still to be passed on.
pub fn pass_on_shares<S: Store>(replica: &mut Replica<S>, person: GroupId) -> Result<usize> {
    let me = replica.device().id();
    let group = AgentId::Group(person);
    let checker = replica.checker();
    if !checker.can(AgentId::Individual(me), Access::Admin, &person.0) {
        return Ok(0);
    }
    let mine = checker.reachable(AgentId::Individual(me));
    let theirs = checker.reachable(group);
    // subject -> (level shared with this device directly, groups and folders it is shared with)
    let mut pending: BTreeMap<PublicKey, (Access, BTreeSet<PublicKey>)> = BTreeMap::new();
    for (subject, level) in mine.iter() {
        if *subject == person.0 || theirs.get(subject).is_some_and(|held| held >= level) {
            continue;
        }
        let Some(info) = checker.subject_info(subject) else {
            continue;
        };
        if info.creator == me || info.conflicted {
            continue;
        }
        let direct = checker.direct_members(subject);
        let Some(shared) = direct.get(&AgentId::Individual(me)) else {
            continue;
        };
        let through = direct
            .keys()
            .filter(|agent| !matches!(agent, AgentId::Individual(_)))
            .map(|agent| *agent.public_key())
            .collect();
        // Never more than this device holds now (CAP-8), whatever a direct grant said.
        pending.insert(*subject, (shared.access.min(*level), through));
    }
    let mut given = 0;
    while !pending.is_empty() {
        let mut ready: Vec<PublicKey> = pending
            .iter()
            .filter(|(_, (_, through))| !through.iter().any(|s| pending.contains_key(s)))
            .map(|(subject, _)| *subject)
            .collect();
        if ready.is_empty() {
            // A cycle of shares (CAP allows them): any order passes all of them on.
            ready = pending.keys().copied().collect();
        }
        for subject in ready {
            let Some((level, _)) = pending.remove(&subject) else {
                continue;
            };
            if replica.checker().can(group, level, &subject) {
                continue;
            }
            replica.grant(&subject, group, level)?;
            given += 1;
        }
    }
    Ok(given)
}

/// PERSON-2: the person line for `group` and a card line.
pub fn line(group: GroupId, card_line: &str) -> String {
    format!("{PERSON_PREFIX}{group}:{card_line}")
}

/// PERSON-2: splits a person line into its group and card line; a plain card line has no
/// group.
pub fn split(line: &str) -> Result<(Option<GroupId>, &str)> {
    let line = line.trim();
    let Some(rest) = line.strip_prefix(PERSON_PREFIX) else {
        return Ok((None, line));
    };
    let Some((group, card)) = rest.split_once(':') else {
        bail!("this person line has no contact card after its group id");
    };
    let group = group
        .parse::<GroupId>()
        .context("this person line names no valid group id")?;
    Ok((Some(group), card))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_lines_split_into_group_and_card() {
        let group: GroupId = "11".repeat(32).parse().unwrap();
        let card = "keyhive-card1:abc";
        assert_eq!(split(card).unwrap(), (None, card));
        assert_eq!(split(&line(group, card)).unwrap(), (Some(group), card));
        assert_eq!(
            split(&format!("  {}\n", line(group, card))).unwrap(),
            (Some(group), card)
        );
        let no_card = format!("{PERSON_PREFIX}{group}");
        assert!(
            split(&no_card)
                .unwrap_err()
                .to_string()
                .contains("no contact card")
        );
        let bad_group = format!("{PERSON_PREFIX}zz:{card}");
        assert!(
            split(&bad_group)
                .unwrap_err()
                .to_string()
                .contains("no valid group id")
        );
    }
}
