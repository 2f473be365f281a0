//! Which init op is a document's key agreement (`specs/cgka.md` CGKA-25).
//!
//! A document's genesis names the hash of its key agreement's init op (`specs/encoding.md`
//! GEN-2). Every replica and relay accepts that init and no other, so two replicas holding the
//! same ops start from the same init whatever order the ops arrived in.

use crate::crypto::hash::Hash;
use crate::identity::{DocumentId, IndividualId};

use super::op::{CgkaBody, CgkaOp};

/// What a document's genesis says about its key agreement (GEN-2, CGKA-25).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitBinding {
    /// The document.
    pub document: DocumentId,
    /// The document's creator (the genesis's root admin), the only device that may issue its
    /// init.
    pub creator: IndividualId,
    /// The hash of the document's one init op.
    pub init: Hash,
}

/// Why an op is not the init its document's genesis names (CGKA-25).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InitBindingError {
    /// The op is not an init.
    #[error("not a key-agreement init op")]
    NotInit,
    /// The document's genesis is not held (or is conflicted), so no init can be accepted yet.
    #[error("the document's genesis is not known, so its key-agreement init is not either")]
    GenesisUnknown,
    /// The init names another document.
    #[error("the init belongs to document {named}, not {expected}")]
    WrongDocument {
        /// The document the genesis is for.
        expected: DocumentId,
        /// The document the init names.
        named: DocumentId,
    },
    /// The genesis names another init (a second init for the document).
    #[error("the document's genesis names init {named}, not {got}")]
    NotNamed {
        /// The init the genesis names.
        named: Hash,
        /// The init received.
        got: Hash,
    },
    /// The init is not issued by the document's creator.
    #[error("the init is issued by {issuer}, not the document's creator")]
    NotCreator {
        /// The init's issuer.
        issuer: IndividualId,
    },
}

impl InitBinding {
    /// CGKA-25: `op` is the init this binding names: it is an init for this document, its
    /// hash is the one the genesis names, and its issuer is the creator.
    pub fn check(&self, op: &CgkaOp) -> Result<(), InitBindingError> {
        let CgkaBody::Init { document, .. } = &op.body else {
            return Err(InitBindingError::NotInit);
        };
        if *document != self.document {
            return Err(InitBindingError::WrongDocument {
                expected: self.document,
                named: *document,
            });
        }
        let got = op.hash();
        if got != self.init {
            return Err(InitBindingError::NotNamed {
                named: self.init,
                got,
            });
        }
        let issuer = IndividualId(op.issuer);
        if issuer != self.creator {
            return Err(InitBindingError::NotCreator { issuer });
        }
        Ok(())
    }
}

/// CGKA-25 for relays and other holders of a document's ops: any op other than an init
/// passes; an init passes only if `binding` (the document's genesis, when held) names it.
pub fn check_init(binding: Option<&InitBinding>, op: &CgkaOp) -> Result<(), InitBindingError> {
    if !matches!(op.body, CgkaBody::Init { .. }) {
        return Ok(());
    }
    binding.ok_or(InitBindingError::GenesisUnknown)?.check(op)
}
