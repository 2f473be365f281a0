//! Folders (`specs/replica.md` §4, REP-8): a folder's contents are what the capability graph
//! says, never what a document claims about itself.
//!
//! A folder is a document that other documents grant access to. Anyone who is admin on a
//! document may grant a folder access to it, so such a grant alone only *shares* the document
//! with the folder's members; it *places* the document in the folder only when the device that
//! issued it holds `write` on the folder, because placing something in a folder is a write to
//! the folder.

use keyhive_core::capability::{Access, Action, AgentId, AnyVerified, Checker};
use keyhive_core::crypto::hash::Hash;
use keyhive_core::identity::{DocumentId, IndividualId, SubjectKind};

use super::Replica;
use crate::store::Store;

impl<S: Store> Replica<S> {
    /// REP-8: the documents in `folder`, sorted by id. A pure function of the capability
    /// graph, so every replica holding the same ops lists the same documents.
    pub fn folder_documents(&self, folder: DocumentId) -> Vec<DocumentId> {
        folder_documents(&self.admission.checker, folder)
    }

    /// REP-8: the delegation that places `document` in `folder` (the smallest such hash), or
    /// `None` when the document is not in the folder.
    pub fn folder_placement(&self, folder: DocumentId, document: DocumentId) -> Option<Hash> {
        placement(&self.admission.checker, folder, document)
    }
}

/// A known, unconflicted document subject.
fn is_document(checker: &Checker, id: DocumentId) -> bool {
    checker
        .subject_info(&id.0)
        .is_some_and(|i| i.kind == SubjectKind::Document && !i.conflicted)
}

/// REP-8 over a checker: every document `document` with a placing delegation in `folder`.
fn folder_documents(checker: &Checker, folder: DocumentId) -> Vec<DocumentId> {
    if !is_document(checker, folder) {
        return Vec::new();
    }
    // Every document the folder directly holds access on is among the subjects it reaches
    // (which also lists documents reached through other documents; `placement` keeps only
    // direct, placing grants).
    let mut out: Vec<DocumentId> = checker
        .reachable(AgentId::Document(folder))
        .keys()
        .map(|k| DocumentId(*k))
        .filter(|d| placement(checker, folder, *d).is_some())
        .collect();
    out.sort_unstable();
    out
}

/// REP-8: the smallest delegation on `document` that (a) names `folder` as delegate with at
/// least `read`, (b) is valid (CAP-11/12) and currently grants (CAP-13), and (c) was issued by
/// a device that now holds `write` or more on `folder` (CAP-14).
fn placement(checker: &Checker, folder: DocumentId, document: DocumentId) -> Option<Hash> {
    if document == folder || !is_document(checker, folder) || !is_document(checker, document) {
        return None;
    }
    // `delegations_to` lists only currently granting delegations, sorted by hash.
    checker
        .delegations_to(&document.0, AgentId::Document(folder))
        .into_iter()
        .find(|hash| places(checker, folder, hash))
}

fn places(checker: &Checker, folder: DocumentId, hash: &Hash) -> bool {
    let Some(AnyVerified::Auth(op)) = checker.op(hash) else {
        return false;
    };
    let Action::Delegate { access, .. } = op.body.action else {
        return false;
    };
    access >= Access::Read
        && checker.grants(hash) == Some(true)
        && checker.op_validity(hash).is_some_and(|v| v.is_valid())
        && checker.can(
            AgentId::Individual(IndividualId(op.issuer)),
            Access::Write,
            &folder.0,
        )
}
