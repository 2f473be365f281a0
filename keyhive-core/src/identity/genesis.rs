//! Self-certifying groups and documents (`specs/encoding.md` §6).
//!
//! GEN-1: a subject is created by generating a throw-away Ed25519 key pair, signing a genesis
//! op with it, and dropping (zeroizing) the secret. The subject id is that public key, so every
//! replica can check that the genesis really belongs to the id, and nobody can sign another one.
//!
//! GEN-2: a document's genesis also names the hash of its key agreement's init op
//! (`specs/cgka.md` CGKA-25), so every replica knows which init is the document's, whatever
//! order ops arrive in; a group's genesis names none.

use serde::{Deserialize, Serialize};

use crate::crypto::hash::Hash;
use crate::crypto::signing::SigningKey;
use crate::encoding::DecodeError;
use crate::signed::{Op, OpBody, SignError, Verified};

use super::ids::{DocumentId, GroupId, IndividualId};

/// What kind of subject a genesis creates. Variant order is the wire tag: never reorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SubjectKind {
    /// A group: a person's devices, a team, or a folder.
    Group,
    /// A document: a group that also has content.
    Document,
}

/// The genesis body: the kind of subject, its first admin and, for a document, its key
/// agreement's init op. Field order is the wire order (GEN-1, GEN-2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// Group or document.
    pub kind: SubjectKind,
    /// The device that becomes the subject's first admin (its root authority).
    pub creator: IndividualId,
    /// GEN-2: for a document, the hash of its one key-agreement init op; `None` for a group.
    pub key_agreement: Option<Hash>,
}

impl OpBody for Genesis {
    const TAG: &'static str = "keyhive/genesis";
    /// Version 2 added `key_agreement` (GEN-2).
    const VERSION: u8 = 2;
    const MAX_LEN: usize = 256;
    const MAX_PREDECESSORS: usize = 0;

    /// GEN-2: a document genesis names its key-agreement init; a group genesis names none.
    fn check_body(&self) -> Result<(), DecodeError> {
        match (self.kind, self.key_agreement) {
            (SubjectKind::Document, Some(_)) | (SubjectKind::Group, None) => Ok(()),
            (SubjectKind::Document, None) => Err(DecodeError::InvalidStructure(
                "GEN-2: document genesis names no key-agreement init",
            )),
            (SubjectKind::Group, Some(_)) => Err(DecodeError::InvalidStructure(
                "GEN-2: group genesis names a key-agreement init",
            )),
        }
    }
}

impl Genesis {
    /// GEN-1: creates a group whose first admin is `creator`.
    pub fn create_group(creator: IndividualId) -> Result<Verified<Op<Genesis>>, SignError> {
        let throwaway = SigningKey::generate();
        let op = Op::new(
            throwaway.public_key(),
            Vec::new(),
            Genesis {
                kind: SubjectKind::Group,
                creator,
                key_agreement: None,
            },
        );
        // `throwaway` is dropped (and zeroized) at the end of this scope.
        Verified::sign(op, &throwaway)
    }

    /// GEN-1, GEN-2: creates a document whose first admin is `creator`. `key_agreement` is
    /// given the new document's id before the genesis is signed; it creates the document's key
    /// agreement and returns its init op's hash (which the genesis names) and whatever the
    /// caller wants back (the key agreement itself).
    pub fn create_document<T, E: From<SignError>>(
        creator: IndividualId,
        key_agreement: impl FnOnce(DocumentId) -> Result<(Hash, T), E>,
    ) -> Result<(Verified<Op<Genesis>>, T), E> {
        let throwaway = SigningKey::generate();
        let (init, created) = key_agreement(DocumentId(throwaway.public_key()))?;
        let op = Op::new(
            throwaway.public_key(),
            Vec::new(),
            Genesis {
                kind: SubjectKind::Document,
                creator,
                key_agreement: Some(init),
            },
        );
        // `throwaway` is dropped (and zeroized) at the end of this scope.
        Ok((Verified::sign(op, &throwaway)?, created))
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

    fn document(creator: IndividualId) -> Verified<Op<Genesis>> {
        Genesis::create_document(creator, |_| {
            Ok::<_, SignError>((Hash::of_content(b"init"), ()))
        })
        .unwrap()
        .0
    }

    #[test]
    fn genesis_is_self_certifying() {
        let creator = IndividualId(SigningKey::generate().public_key());
        let g = document(creator);
        let id = g.document_id().unwrap();
        assert_eq!(g.group_id(), None);
        let back = Signed::<Op<Genesis>>::decode(g.as_bytes())
            .unwrap()
            .verify()
            .unwrap();
        assert_eq!(back.document_id(), Some(id));
        assert_eq!(back.hash(), g.hash());
        assert_eq!(back.body.key_agreement, Some(Hash::of_content(b"init")));
    }

    /// GEN-2: a document genesis without a key-agreement init, or a group genesis with one,
    /// can be neither signed nor decoded.
    #[test]
    fn genesis_key_agreement_must_match_kind() {
        let creator = IndividualId(SigningKey::generate().public_key());
        let key = SigningKey::generate();
        for (kind, key_agreement) in [
            (SubjectKind::Document, None),
            (SubjectKind::Group, Some(Hash::of_content(b"init"))),
        ] {
            let body = Genesis {
                kind,
                creator,
                key_agreement,
            };
            let op = Op::new(key.public_key(), Vec::new(), body);
            assert!(matches!(
                Verified::sign(op.clone(), &key),
                Err(SignError::Structure(DecodeError::InvalidStructure(_)))
            ));
            let mut envelope = crate::encoding::encode_tagged(&op);
            envelope.extend_from_slice(&key.sign(&envelope));
            assert!(matches!(
                Signed::<Op<Genesis>>::decode(&envelope),
                Err(DecodeError::InvalidStructure(_))
            ));
        }
        let group = Genesis::create_group(creator).unwrap();
        assert_eq!(group.body.key_agreement, None);
        assert!(group.group_id().is_some());
    }
}
