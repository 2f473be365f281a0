//! REP-60..REP-63: opening a replica for a few subjects, replaying (and verifying again) only
//! the stored items those subjects depend on, so that reading one document of a large home
//! costs what that document's history costs, not what the whole store costs.
//!
//! - REP-60: the scope of a set of subjects is the smallest set of stored subjects that holds
//!   them, every subject or device any item of the scope names (delegates, issuers, creators,
//!   seated and removed devices, entry point publishers), and the subject of every stored item
//!   any item of the scope names by hash (parents, proofs, revoked delegations, invitations,
//!   content heads).
//! - REP-61: a scoped open replays exactly the stored items of the scope, through the same
//!   admission path (ADM-n: every signature verified again) as a full open.
//! - REP-62: if the replay leaves an op waiting for a predecessor, or a key-agreement op waiting
//!   for its document, the scope was not closed (the store changed under it, or it holds
//!   something the scope rules did not foresee): the replica warns and replays the whole store.
//! - REP-63: a scoped replica is for reading: it refuses to ingest items and to store anything
//!   made locally ([`ReplicaError::Scoped`]), since an op it would make or accept could name
//!   subjects it has not replayed.

use std::collections::{BTreeSet, HashSet};

use keyhive_core::capability::{Action, AnySigned, AuthBody};
use keyhive_core::cgka::CgkaBody;
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::Device;

use super::{Replica, ReplicaError};
use crate::admission::{Envelope, classify};
use crate::item::{Item, SubjectId};
use crate::store::Store;

impl<S: Store> Replica<S> {
    /// REP-60..REP-62: opens a replica over `store` that replays only the stored items that
    /// `subjects` depend on (every one verified again, as in [`Replica::open`]). For those
    /// subjects it answers exactly as a fully opened replica; other subjects may be unknown to
    /// it. It falls back to replaying the whole store when the scope turns out not to be
    /// closed (REP-62). It is read-only (REP-63).
    pub fn open_scoped(
        device: Device,
        store: S,
        subjects: &[PublicKey],
    ) -> Result<Self, ReplicaError> {
        let mut replica = Replica::blank(device, store);
        let mut roots: Vec<SubjectId> = subjects.iter().copied().map(SubjectId).collect();
        roots.push(SubjectId(replica.device.id().0));
        let (scope, items) = closure(&replica.store, roots)?;
        // A scoped replica is read-only (REP-63): it collects no pieces (REP-24 runs on a full
        // open, which sees every change that may list them).
        let _census = replica.replay(items, super::Marking::Nothing);
        if replica.admission.checker.pending_len() > 0 || !replica.early_cgka.is_empty() {
            tracing::warn!(
                pending = replica.admission.checker.pending_len(),
                "REP-62: the scoped replay left items waiting; replaying the whole store"
            );
            let Replica { device, store, .. } = replica;
            return Replica::open(device, store);
        }
        replica.finish_open()?;
        replica.scope = Some(scope);
        Ok(replica)
    }

    /// REP-60: the subjects a scoped open replayed, or `None` after a full open.
    pub fn scope(&self) -> Option<&BTreeSet<SubjectId>> {
        self.scope.as_ref()
    }

    /// REP-63: refuses when this replica was opened for a few subjects only.
    pub(super) fn require_full(&self) -> Result<(), ReplicaError> {
        match &self.scope {
            Some(scope) => Err(ReplicaError::Scoped {
                subjects: scope.len(),
            }),
            None => Ok(()),
        }
    }
}

/// REP-60: the scope of `roots` in `store` and its stored items.
fn closure<S: Store>(
    store: &S,
    roots: Vec<SubjectId>,
) -> Result<(BTreeSet<SubjectId>, Vec<Item>), ReplicaError> {
    let mut visited: BTreeSet<SubjectId> = BTreeSet::new();
    let mut queue = roots;
    // Hashes of the items of visited subjects, and hashes already looked up elsewhere.
    let mut known: HashSet<Hash> = HashSet::new();
    let mut items = Vec::new();
    while let Some(subject) = queue.pop() {
        if !visited.insert(subject) {
            continue;
        }
        let hashes = store.hashes(&subject)?;
        known.extend(hashes.iter().copied());
        for hash in hashes {
            let Some(item) = store.get(&hash)? else {
                continue;
            };
            let (keys, refs) = references(&item);
            queue.extend(
                keys.into_iter()
                    .map(SubjectId)
                    .filter(|s| !visited.contains(s)),
            );
            for r in refs {
                if known.insert(r)
                    && let Some(named) = store.get(&r)?
                    && !visited.contains(&named.subject())
                {
                    queue.push(named.subject());
                }
            }
            items.push(item);
        }
    }
    Ok((visited, items))
}

/// REP-60: the keys and hashes an auth op's body names.
fn auth_references(body: &AuthBody, keys: &mut Vec<PublicKey>, refs: &mut Vec<Hash>) {
    // CAP-23: the subject's genesis is an implied parent.
    keys.push(body.subject);
    refs.extend(body.content_heads.iter().copied());
    refs.extend(body.action.references());
    match &body.action {
        Action::Delegate { delegate, .. } | Action::DelegateUntil { delegate, .. } => {
            keys.push(*delegate.public_key())
        }
        Action::Revoke { delegation, .. } => refs.push(*delegation),
        Action::Invite { .. } | Action::Redeem { .. } => {}
    }
}

/// REP-60: the keys (subjects and devices) and the item hashes `item` names. An item that does
/// not decode names nothing (its replay refuses it, as a full replay does).
fn references(item: &Item) -> (Vec<PublicKey>, Vec<Hash>) {
    let mut keys = Vec::new();
    let mut refs = Vec::new();
    match classify(item) {
        Ok(Envelope::Op(op)) => {
            refs.extend(op.parents());
            match &op {
                AnySigned::Genesis(s) => {
                    let genesis = s.unverified_payload();
                    keys.push(genesis.issuer);
                    keys.push(genesis.body.creator.0);
                    refs.extend(genesis.body.key_agreement);
                }
                AnySigned::Auth(s) => {
                    let auth = s.unverified_payload();
                    keys.push(auth.issuer);
                    auth_references(&auth.body, &mut keys, &mut refs);
                }
                // CAP-24: the issuer is the creator the genesis names (a key it adds).
                AnySigned::RootForm(r) => {
                    auth_references(r.unverified_body(), &mut keys, &mut refs)
                }
                AnySigned::Content(s) => {
                    let content = s.unverified_payload();
                    keys.push(content.issuer);
                    refs.extend(content.body.proof.references());
                }
            }
        }
        Ok(Envelope::Cgka(op)) => {
            let op = op.unverified_payload();
            keys.push(op.issuer);
            refs.extend(op.predecessors.iter().copied());
            match &op.body {
                CgkaBody::Init { document, .. } => keys.push(document.0),
                body => keys.extend(body.named_devices().iter().map(|d| d.0)),
            }
        }
        Ok(Envelope::EntryPoint(entry)) => keys.push(entry.unverified_payload().publisher),
        Ok(Envelope::Card(_) | Envelope::Blob(_)) | Err(_) => {}
    }
    (keys, refs)
}
