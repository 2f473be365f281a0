//! Self-certifying groups and documents (`specs/encoding.md` §6).
//!
//! GEN-1: a subject is created by generating a throw-away Ed25519 key pair, signing a genesis
//! op with it, and dropping (zeroizing) the secret. The subject id is that public key, so every
//! replica can check that the genesis really belongs to the id, and nobody can sign another one.

use serde::{Deserialize, Serialize};

use crate::crypto::signing::SigningKey;
use crate::signed::{Op, OpBody, SignError, Verified};

use super::ids::{DocumentId, GroupId, IndividualId};

/// What kind of subject a genesis creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SubjectKind {
    /// A group: a person's devices, a team, or a folder.
    Group,
    /// A document: a group that also has content.
    Document,
}

/// The genesis body: the kind of subject and its first admin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// Group or document.
    pub kind: SubjectKind,
    /// The device that becomes the subject's first admin (its root authority).
    pub creator: IndividualId,
}

impl OpBody for Genesis {
    const TAG: &'static str = "keyhive/genesis";
    const VERSION: u8 = 1;
    const MAX_LEN: usize = 256;
    const MAX_PREDECESSORS: usize = 0;
}

impl Genesis {
    /// GEN-1: creates a subject of `kind` whose first admin is `creator`.
    pub fn create(
        kind: SubjectKind,
        creator: IndividualId,
    ) -> Result<Verified<Op<Genesis>>, SignError> {
        let throwaway = SigningKey::generate();
        let op = Op::new(
            throwaway.public_key(),
            Vec::new(),
            Genesis { kind, creator },
        );
        // `throwaway` is dropped (and zeroized) at the end of this scope.
        Verified::sign(op, &throwaway)
    }
}

/// Typed id accessors for a verified genesis.
pub trait GenesisIds {
    /// The id as a group id (for [`SubjectKind::Group`]).
    fn group_id(&self) -> Option<GroupId>;
    /// The id as a document id (for [`SubjectKind::Document`]).
    fn document_id(&self) -> Option<DocumentId>;
}

impl GenesisIds for Verified<Op<Genesis>> {
    fn group_id(&self) -> Option<GroupId> {
        (self.body.kind == SubjectKind::Group).then_some(GroupId(self.issuer))
    }

    fn document_id(&self) -> Option<DocumentId> {
        (self.body.kind == SubjectKind::Document).then_some(DocumentId(self.issuer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signed::Signed;

    #[test]
    fn genesis_is_self_certifying() {
        let creator = IndividualId(SigningKey::generate().public_key());
        let g = Genesis::create(SubjectKind::Document, creator).unwrap();
        let id = g.document_id().unwrap();
        assert_eq!(g.group_id(), None);
        let back = Signed::<Op<Genesis>>::decode(g.as_bytes())
            .unwrap()
            .verify()
            .unwrap();
        assert_eq!(back.document_id(), Some(id));
        assert_eq!(back.hash(), g.hash());
    }
}
