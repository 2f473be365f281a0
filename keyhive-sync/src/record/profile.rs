//! Group names readable by every member (`specs/content.md` REC-8..REC-10).
//!
//! A group has no content of its own, so its shared name lives in a *profile document*: an
//! ordinary encrypted document whose records are [`GroupProfile`] records (type `0x03`), which
//! the group holds `write` on, so that every member reads it (and is seated in its key
//! agreement like any reader) while relays see only ciphertext. A name counts only when its
//! writer is an admin of the group it names (REC-9): a member of the group who can write the
//! document, or anyone naming a group they do not administer, is refused. The latest counted
//! record names the group (REC-10), the same on every replica.

use std::collections::BTreeMap;

use keyhive_core::Hash;
use keyhive_core::capability::{Access, AgentId, Checker};
use keyhive_core::encoding::encode;
use keyhive_core::identity::{DocumentId, GroupId, IndividualId, SubjectKind};
use serde::{Deserialize, Serialize};

use super::{ChangeRecord, DocumentHistory, MAX_METADATA_LEN, PROFILE_TAG};
use crate::replica::{Replica, ReplicaError};
use crate::store::Store;

/// REC-8: a group's shared name, as written to its profile document. Field order is the wire
/// order: never reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupProfile {
    /// The group this record names (REC-9: the same in every record of the document).
    pub group: GroupId,
    /// The group's shared name: untrusted input, checked before it is displayed (REP-9).
    pub name: String,
}

impl GroupProfile {
    /// REC-8: the record bytes: `0x03 || postcard(GroupProfile)`.
    pub fn to_record(&self) -> Vec<u8> {
        let mut out = vec![PROFILE_TAG];
        out.extend_from_slice(&encode(self));
        out
    }
}

/// A group's shared name as this device reads it (REC-10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupName {
    /// The name (untrusted input: REP-9).
    pub name: String,
    /// The profile document it was read from.
    pub profile: DocumentId,
    /// The change that wrote it.
    pub change: Hash,
    /// Its author, an admin of the group (REC-9).
    pub author: IndividualId,
}

/// What one profile document says, as this device reads it (REC-9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileReading {
    /// The group its first record claims.
    pub group: GroupId,
    /// The latest record that counts (REC-9, REC-10); `None` when none does (every record
    /// refused: a writer who is not an admin of the group, or a group that does not hold
    /// `read` on the document).
    pub name: Option<GroupName>,
}

/// REC-9, REC-10: what `document`'s history says about a group's name, or `None` when the
/// document is not a profile document (its first valid, readable change is not a profile
/// record, REC-4 order). `checker` decides, as it stands now, who is an admin of the claimed
/// group and who may write the document.
pub fn read_profile(
    checker: &Checker,
    document: DocumentId,
    history: &DocumentHistory,
) -> Option<ProfileReading> {
    let Some(ChangeRecord::Profile(first)) = history.changes.first().map(|c| &c.record) else {
        return None;
    };
    let group = first.group;
    // REC-9: the profile belongs to the group: the group reads it.
    let owned = checker.can(AgentId::Group(group), Access::Read, &document.0)
        && checker
            .subject_info(&group.0)
            .is_some_and(|i| i.kind == SubjectKind::Group);
    let name = history
        .changes
        .iter()
        .filter(|_| owned)
        .filter_map(|change| match &change.record {
            ChangeRecord::Profile(p) if p.group == group => Some((change, p)),
            _ => None,
        })
        // REC-10: the last in `Replica::changes` order (causal, ties by op hash).
        .rfind(|(change, _)| {
            let author = AgentId::Individual(change.author);
            checker.can(author, Access::Write, &document.0)
                && checker.can(author, Access::Admin, &group.0)
        })
        .map(|(change, p)| GroupName {
            name: p.name.clone(),
            profile: document,
            change: change.op,
            author: change.author,
        });
    Some(ProfileReading { group, name })
}

/// Every group name a device reads (REC-10), and which documents are profile documents (an
/// app lists those as the group, not as documents of their own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupProfiles {
    /// REC-10: each named group's name.
    pub names: BTreeMap<GroupId, GroupName>,
    /// Every profile document read, with the group it claims (also those whose records were
    /// all refused).
    pub documents: BTreeMap<DocumentId, GroupId>,
}

impl GroupProfiles {
    /// Adds what one document says (from [`read_profile`]).
    pub fn add(&mut self, document: DocumentId, reading: ProfileReading) {
        self.documents.insert(document, reading.group);
        let Some(name) = reading.name else { return };
        // REC-10: of several profile documents of one group, the smallest document id with a
        // counted record names it.
        match self.names.get(&reading.group) {
            Some(held) if held.profile < document => {}
            _ => {
                self.names.insert(reading.group, name);
            }
        }
    }

    /// Reads every document `replica`'s device can read and collects the profiles among them.
    pub fn load<S: Store>(replica: &Replica<S>) -> Result<GroupProfiles, ReplicaError> {
        let mut profiles = GroupProfiles::default();
        for (subject, level, kind) in replica.reachable() {
            if kind != SubjectKind::Document || level < Access::Read {
                continue;
            }
            let document = DocumentId(subject);
            let history = DocumentHistory::load(replica, document)?;
            if let Some(reading) = read_profile(replica.checker(), document, &history) {
                profiles.add(document, reading);
            }
        }
        Ok(profiles)
    }

    /// The shared name of `group`, if one counts.
    pub fn name(&self, group: &GroupId) -> Option<&str> {
        self.names.get(group).map(|n| n.name.as_str())
    }

    /// Whether `document` is a profile document.
    pub fn is_profile(&self, document: &DocumentId) -> bool {
        self.documents.contains_key(document)
    }
}

/// Why a group could not be named.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// REC-9: only an admin of the group names it (another device's records would be refused).
    #[error("this device is not an admin of group {0}: only its admins name it")]
    NotAdmin(GroupId),
    /// REC-8: the name is empty, or the record would be over 4,096 bytes.
    #[error("a group name must be 1 to about 4,000 bytes")]
    InvalidName,
    /// Creating, granting or writing the profile document failed.
    #[error(transparent)]
    Replica(#[from] ReplicaError),
}

fn record_for(group: GroupId, name: &str) -> Result<Vec<u8>, ProfileError> {
    let record = GroupProfile {
        group,
        name: name.to_owned(),
    }
    .to_record();
    if name.is_empty() || record.len() > 1 + MAX_METADATA_LEN {
        return Err(ProfileError::InvalidName);
    }
    Ok(record)
}

fn require_admin<S: Store>(replica: &Replica<S>, group: GroupId) -> Result<(), ProfileError> {
    let me = AgentId::Individual(replica.device().id());
    if replica.checker().can(me, Access::Admin, &group.0) {
        Ok(())
    } else {
        Err(ProfileError::NotAdmin(group))
    }
}

/// REC-8, REC-9: creates a profile document for `group` named `name`: a new document the
/// group holds `write` on (its members read it; its admins, who hold at least `write` on the
/// group, write it), whose first change is the profile record. Returns the document.
pub fn create_profile<S: Store>(
    replica: &mut Replica<S>,
    group: GroupId,
    name: &str,
) -> Result<DocumentId, ProfileError> {
    let record = record_for(group, name)?;
    require_admin(replica, group)?;
    let document = replica.create_document()?;
    replica.grant(&document.0, AgentId::Group(group), Access::Write)?;
    // The write seats the group's members in the document's key agreement (REP-3).
    replica.write(document, &record)?;
    Ok(document)
}

/// REC-10: renames `group`: writes a profile record to the profile document that names it now
/// (from `profiles`, [`GroupProfiles::load`]) when this device can write it, otherwise creates
/// a profile document. Returns the profile document written to.
pub fn name_group<S: Store>(
    replica: &mut Replica<S>,
    profiles: &GroupProfiles,
    group: GroupId,
    name: &str,
) -> Result<DocumentId, ProfileError> {
    let record = record_for(group, name)?;
    require_admin(replica, group)?;
    let me = AgentId::Individual(replica.device().id());
    match profiles.names.get(&group) {
        Some(current) if replica.checker().can(me, Access::Write, &current.profile.0) => {
            replica.write(current.profile, &record)?;
            Ok(current.profile)
        }
        _ => create_profile(replica, group, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use keyhive_core::crypto::signing::PublicKey;

    #[test]
    fn rec8_profile_records_round_trip() {
        let profile = GroupProfile {
            group: GroupId(PublicKey([5; 32])),
            name: "Team".into(),
        };
        let bytes = profile.to_record();
        assert_eq!(bytes[0], PROFILE_TAG);
        assert_eq!(Record::decode(&bytes), Ok(Record::Profile(profile)));
        assert!(matches!(
            record_for(GroupId(PublicKey([5; 32])), ""),
            Err(ProfileError::InvalidName)
        ));
        assert!(matches!(
            record_for(GroupId(PublicKey([5; 32])), &"x".repeat(MAX_METADATA_LEN)),
            Err(ProfileError::InvalidName)
        ));
    }
}
