//! REP-33: what a device removed from a subject still offers of it: the ops it authored there
//! and holds valid, with the ciphertext items they name.

use std::collections::BTreeMap;

use keyhive_core::Hash;
use keyhive_core::capability::{AnyVerified, Payload};
use keyhive_core::crypto::signing::PublicKey;

use super::{Replica, ReplicaError};
use crate::SubjectId;
use crate::admission::{Envelope, classify};
use crate::blob::Blob;
use crate::item::ItemKind;
use crate::store::Store;

impl<S: Store> Replica<S> {
    /// REP-33: the ops of `subject` this device authored (delegations, revocations, its own
    /// leave, content ops) that its checker holds valid, and the key-agreement ops it signed, each with the item hashes of the
    /// ciphertext it names: a content op's change blob, as this replica holds it, and the
    /// pieces that blob lists (REP-21). An inline change names no other item.
    pub fn own_valid(
        &self,
        subject: &PublicKey,
    ) -> Result<BTreeMap<Hash, Vec<Hash>>, ReplicaError> {
        let me = self.device.id().0;
        let checker = &self.admission.checker;
        let mut out = BTreeMap::new();
        for op in checker.ops_for(subject) {
            let hash = op.hash();
            if issuer(op) != Some(me) || !checker.op_validity(&hash).is_some_and(|v| v.is_valid()) {
                continue;
            }
            out.insert(hash, self.ciphertext_named_by(op)?);
        }
        // Their causal past in this subject, whoever wrote it and whatever its validity: a
        // relay admits an op only once it holds its parents (ADM-3), and a parent may be held
        // here alone. E.g. a grant this device made through a group it then left is excluded
        // by the leave (CAP-11), yet the write it made after the grant stays valid (CAP-22) and
        // names the grant as a parent (simulation seeds 30893, 30919).
        let mut todo: Vec<Hash> = out.keys().copied().collect();
        // Its own ops here that its own ops elsewhere name as parents, whatever their
        // validity: an op of a folder can name an op of a team in the folder's scope (CAP-20),
        // e.g. a grant the device made on the team through a group that was then removed from
        // it, which the removal excludes (simulation seed 32348). Parents by other authors are
        // left to them (or to the closure below, when an own op here needs them). One pass over
        // the ops held.
        let mine = |op: &AnyVerified| issuer(op) == Some(me);
        for op in checker
            .ops()
            .filter(|op| op.subject() != *subject && mine(op))
        {
            for parent in op.parents() {
                if !out.contains_key(&parent)
                    && let Some(held) = checker
                        .op(&parent)
                        .filter(|p| p.subject() == *subject && mine(p))
                {
                    out.insert(parent, self.ciphertext_named_by(held)?);
                    todo.push(parent);
                }
            }
        }
        while let Some(hash) = todo.pop() {
            let Some(op) = checker.op(&hash) else {
                continue;
            };
            for parent in op.parents() {
                if out.contains_key(&parent) {
                    continue;
                }
                let Some(held) = checker.op(&parent).filter(|p| p.subject() == *subject) else {
                    continue;
                };
                out.insert(parent, self.ciphertext_named_by(held)?);
                todo.push(parent);
            }
        }
        // The key-agreement ops it signed (an update its write was sealed under): readers need
        // them to open its changes, and relays store them from a device once given `read`
        // (ADM-5), so offering them is never refused.
        let id = SubjectId(*subject);
        for hash in self.store.hashes(&id)? {
            let Some(item) = self.store.get(&hash)? else {
                continue;
            };
            if item.kind() == ItemKind::Cgka
                && let Ok(Envelope::Cgka(op)) = classify(&item)
                && op.unverified_payload().issuer == me
            {
                out.entry(item.hash()).or_default();
            }
        }
        Ok(out)
    }

    /// The ciphertext items a content op names, as this replica holds them: its change blob
    /// and the pieces that blob lists (REP-21). An inline change and an auth op name none.
    fn ciphertext_named_by(&self, op: &AnyVerified) -> Result<Vec<Hash>, ReplicaError> {
        let AnyVerified::Content(c) = op else {
            return Ok(Vec::new());
        };
        let Payload::Blob { hash, .. } = &c.body.payload else {
            return Ok(Vec::new());
        };
        let mut cipher = Vec::new();
        if let Some(item_hash) = self.blobs.get(hash) {
            cipher.push(*item_hash);
            if let Some(item) = self.store.get(item_hash)?
                && let Ok(Blob::Change { pieces, .. }) = Blob::from_bytes(item.envelope())
            {
                cipher.extend(pieces);
            }
        }
        Ok(cipher)
    }
}

/// Who signed `op`; a genesis has no issuer (its subject's key signs it).
fn issuer(op: &AnyVerified) -> Option<PublicKey> {
    match op {
        AnyVerified::Genesis(_) => None,
        AnyVerified::Auth(a) => Some(a.issuer),
        AnyVerified::Content(c) => Some(c.issuer),
    }
}
