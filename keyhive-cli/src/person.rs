//! The person this device belongs to (`docs/cli-people.md` PERSON-1..PERSON-5): the group of
//! one person's devices, remembered in `person.json`, and the person line that carries it
//! beside the device's contact card.

use anyhow::{Context, Result, bail};
use keyhive_core::capability::AgentId;
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
