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
            let (issuer, named) = match op {
                AnyVerified::Genesis(_) => continue,
                AnyVerified::Auth(a) => (a.issuer, None),
                AnyVerified::Content(c) => match &c.body.payload {
                    Payload::Blob { hash, .. } => (c.issuer, Some(*hash)),
                    Payload::Inline(_) => (c.issuer, None),
                },
            };
            let hash = op.hash();
            if issuer != me || !checker.op_validity(&hash).is_some_and(|v| v.is_valid()) {
                continue;
            }
            let mut cipher = Vec::new();
            if let Some(item_hash) = named.and_then(|h| self.blobs.get(&h)) {
                cipher.push(*item_hash);
                if let Some(item) = self.store.get(item_hash)?
                    && let Ok(Blob::Change { pieces, .. }) = Blob::from_bytes(item.envelope())
                {
                    cipher.extend(pieces);
                }
            }
            out.insert(hash, cipher);
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
}
