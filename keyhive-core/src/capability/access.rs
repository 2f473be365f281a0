//! Access levels and agents (`specs/capabilities.md` CAP-1).

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::crypto::signing::PublicKey;
use crate::identity::{DocumentId, GroupId, IndividualId, SubjectKind};

/// CAP-1: access levels, totally ordered `Pull < Read < Write < Admin`.
///
/// The declaration order is the wire tag (postcard) and the order: never reorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Access {
    /// May fetch ciphertext (relays, backups).
    Pull,
    /// Holds the decryption keys.
    Read,
    /// May author content changes.
    Write,
    /// May change membership.
    Admin,
}

impl Access {
    /// All levels, lowest first.
    pub const ALL: [Access; 4] = [Access::Pull, Access::Read, Access::Write, Access::Admin];

    /// Lower-case name (`pull`, `read`, `write`, `admin`).
    pub fn name(self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::Read => "read",
            Access::Write => "write",
            Access::Admin => "admin",
        }
    }

    fn rank(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for Access {
    type Err = ParseAccessError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pull" => Ok(Access::Pull),
            "read" => Ok(Access::Read),
            "write" => Ok(Access::Write),
            "admin" => Ok(Access::Admin),
            _ => Err(ParseAccessError),
        }
    }
}

/// The text is not one of `pull`, `read`, `write`, `admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("access level must be one of pull, read, write, admin")]
pub struct ParseAccessError;

/// Index of a level in small per-level arrays.
pub(crate) fn rank(access: Access) -> usize {
    access.rank()
}

/// CAP-1: anything that can be granted authority.
///
/// Variant order is the wire tag: never reorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AgentId {
    /// One device.
    Individual(IndividualId),
    /// A group: a person (group of devices), a team, a folder.
    Group(GroupId),
    /// A document: a group with content.
    Document(DocumentId),
}

impl AgentId {
    /// The agent's public key (device key or self-certifying subject id).
    pub fn public_key(&self) -> &PublicKey {
        match self {
            AgentId::Individual(id) => &id.0,
            AgentId::Group(id) => &id.0,
            AgentId::Document(id) => &id.0,
        }
    }

    /// The subject key if this agent is a group or document.
    pub fn subject_key(&self) -> Option<&PublicKey> {
        match self {
            AgentId::Individual(_) => None,
            AgentId::Group(id) => Some(&id.0),
            AgentId::Document(id) => Some(&id.0),
        }
    }

    /// The agent naming subject `key` of `kind`.
    pub fn subject(key: PublicKey, kind: SubjectKind) -> AgentId {
        match kind {
            SubjectKind::Group => AgentId::Group(GroupId(key)),
            SubjectKind::Document => AgentId::Document(DocumentId(key)),
        }
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentId::Individual(id) => write!(f, "individual:{id}"),
            AgentId::Group(id) => write!(f, "group:{id}"),
            AgentId::Document(id) => write!(f, "document:{id}"),
        }
    }
}

impl From<IndividualId> for AgentId {
    fn from(id: IndividualId) -> Self {
        AgentId::Individual(id)
    }
}

impl From<GroupId> for AgentId {
    fn from(id: GroupId) -> Self {
        AgentId::Group(id)
    }
}

impl From<DocumentId> for AgentId {
    fn from(id: DocumentId) -> Self {
        AgentId::Document(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_parse() {
        assert!(Access::Pull < Access::Read);
        assert!(Access::Read < Access::Write);
        assert!(Access::Write < Access::Admin);
        for a in Access::ALL {
            assert_eq!(a.name().parse::<Access>(), Ok(a));
        }
        assert!("owner".parse::<Access>().is_err());
    }
}
