//! REP-33: what a device removed from a subject still offers of it: the ops it authored there
//! and holds valid, with the ciphertext items they name, the held causal past they need, and
//! the key agreement readers open them with.

use std::collections::BTreeSet;

use keyhive_core::Hash;
use keyhive_core::capability::{AnyVerified, Payload};
use keyhive_core::crypto::signing::PublicKey;

use super::{Replica, ReplicaError};
use crate::SubjectId;
use crate::admission::{Envelope, classify};
use crate::blob::Blob;
use crate::item::ItemKind;
use crate::policy::OwnOffer;
use crate::store::Store;

impl<S: Store> Replica<S> {
    /// REP-33: what this device offers of `subject`, which it was removed from:
    /// - `ops`: the ops it authored there (delegations, revocations, its own leave, content
    ///   ops) that its checker holds valid, each with the item hashes of the ciphertext it
    ///   names (a content op's change blob, as this replica holds it, and the pieces that blob
    ///   lists, REP-21; an inline change names no other item);
    /// - `past`: the ops of `subject` it holds in their causal past (any author, e.g. a write
    ///   it got peer to peer from another device that never reached a relay), each with the
    ///   item hash of its change blob (not the pieces: the client adds a pushed blob's pieces),
    ///   so that a peer lacking them can admit the own ops;
    /// - `keys`: the key-agreement ops of `subject` it holds, when it authored an op there or
    ///   signed one of them (readers open its changes with the update they were sealed under
    ///   and what that update follows).
    pub fn own_valid(&self, subject: &PublicKey) -> Result<OwnOffer, ReplicaError> {
        let me = self.device.id().0;
        let checker = &self.admission.checker;
        let mut offer = OwnOffer::default();
        for op in checker.ops_for(subject) {
            let hash = op.hash();
            if issuer(op) == Some(me) && checker.op_validity(&hash).is_some_and(|v| v.is_valid()) {
                offer.ops.insert(hash, self.cipher_of(op, true)?);
            }
        }
        // Their held causal past within the subject (parents elsewhere travel with their own
        // subject).
        let mut stack: Vec<Hash> = offer
            .ops
            .keys()
            .filter_map(|h| checker.op(h))
            .flat_map(AnyVerified::parents)
            .collect();
        // Its own ops here that its own ops elsewhere name as parents, whatever their
        // validity: an op of a folder can name an op of a team in the folder's scope (CAP-20),
        // e.g. a grant the device made on the team through a group that was then removed from
        // it, which the removal excludes (simulation seed 32348). Parents by other authors are
        // theirs to deliver, so a subject where it authored nothing stays settled. One pass
        // over the ops held.
        let mine = |op: &AnyVerified| issuer(op) == Some(me);
        for op in checker
            .ops()
            .filter(|op| op.subject() != *subject && mine(op))
        {
            stack.extend(op.parents().into_iter().filter(|p| {
                checker
                    .op(p)
                    .is_some_and(|held| held.subject() == *subject && mine(held))
            }));
        }
        let mut seen = BTreeSet::new();
        while let Some(hash) = stack.pop() {
            if !seen.insert(hash) || offer.ops.contains_key(&hash) {
                continue;
            }
            let Some(op) = checker.op(&hash) else {
                continue;
            };
            if op.subject() != *subject {
                continue;
            }
            // Most of the past is at the peer already: its blobs are not read here (the
            // client adds a pushed blob's pieces, SYNC-85).
            offer.past.insert(hash, self.cipher_of(op, false)?);
            stack.extend(op.parents());
        }
        // The key agreement: readers need the update a write was sealed under and what it
        // follows; relays store it from a device once given `read` (ADM-5).
        let id = SubjectId(*subject);
        let mut signed = false;
        let mut keys = BTreeSet::new();
        for hash in self.store.hashes(&id)? {
            let Some(item) = self.store.get(&hash)? else {
                continue;
            };
            if item.kind() == ItemKind::Cgka
                && let Ok(Envelope::Cgka(op)) = classify(&item)
            {
                signed |= op.unverified_payload().issuer == me;
                keys.insert(item.hash());
            }
        }
        if signed || !offer.ops.is_empty() {
            offer.keys = keys;
        }
        Ok(offer)
    }

    /// The item hashes of the ciphertext `op` names, as this replica holds it: a content op's
    /// change blob and, with `pieces`, the pieces it lists (REP-21); nothing for other ops and
    /// inline changes.
    fn cipher_of(&self, op: &AnyVerified, pieces: bool) -> Result<Vec<Hash>, ReplicaError> {
        let AnyVerified::Content(c) = op else {
            return Ok(Vec::new());
        };
        let Payload::Blob { hash, .. } = &c.body.payload else {
            return Ok(Vec::new());
        };
        let mut cipher = Vec::new();
        if let Some(item_hash) = self.blobs.get(hash) {
            cipher.push(*item_hash);
            if pieces
                && let Some(item) = self.store.get(item_hash)?
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
