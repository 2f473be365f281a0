//! Writing encrypted content: changes (inline or streamed in pieces) and entry points for new
//! members (REP-3..REP-6, REP-20..REP-22). Reading is in `history.rs`.
//!
//! A small change travels inside the content op the author signs, as one item (INL-1,
//! `specs/encryption.md` §1b); a larger one is a [`Blob::Change`] named by the op
//! (`Payload::Blob`, its hash `Hash::of_content(blob bytes)`, REP-20); a streamed change lists
//! its [`Blob::Piece`] items (REP-21); an entry point is a signed [`EntryPoint`] (REP-22).
//!
//! The plaintext of a change is a [`Body`]: the content inline, or the key and length of a
//! stream encrypted with `encryption::encrypt_stream`, so large files never sit in memory whole.
//! A streamed write that fails removes the pieces it stored; one killed midway leaves them to
//! the next `Replica::open` (REP-24, `orphans.rs`).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};

use keyhive_core::capability::{
    Access, AgentId, BuildError, ContentOp, INLINE_MAX_CIPHERTEXT, Payload,
};
use keyhive_core::cgka::{Cgka, MembershipPlan};
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::prekey::PrekeyPublic;
use keyhive_core::crypto::secret::SymmetricKey;
use keyhive_core::encoding::{decode_canonical, encode};
use keyhive_core::encryption::inline::MAX_INLINE_PREDECESSORS;
use keyhive_core::encryption::{
    EncryptedChange, encrypt_change, encrypt_stream, inline_ciphertext_len, seal_inline,
};
use keyhive_core::identity::{DocumentId, IndividualId};
use keyhive_core::signed::{SignError, Verified};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::Replica;
use super::error::ReplicaError;
use super::history::{DocHistory, Written};
use crate::blob::{Blob, EntryPoint};
use crate::item::{Item, ItemKind, SubjectId};
use crate::store::Store;

mod conflict;
#[cfg(test)]
mod stamp_tests;
#[cfg(test)]
mod vectors;

/// REP-6: ciphertext bytes per piece item (well under the item size limit).
pub const PIECE_LEN: usize = 192 * 1024;
/// Content up to this size is stored inline in its change; larger content is streamed.
pub const INLINE_MAX: usize = 64 * 1024;

/// The plaintext of a change after its predecessor keys.
#[derive(Serialize, Deserialize)]
pub(super) enum Body {
    /// The content itself.
    Inline(#[serde(with = "keyhive_core::encoding::byte_vec")] Vec<u8>),
    /// A stream (its pieces are listed by the change blob, REP-21): its key and length.
    Stream {
        /// The stream key.
        key: [u8; 32],
        /// Plaintext length.
        length: u64,
    },
    /// REP-5: no content; carries only predecessor keys for members seated later.
    EntryPoint,
}

/// Validity of a change as the capability checker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeStatus {
    /// Authorised.
    Valid,
    /// Refused: the rule and what broke it (e.g. CAP-11 `Excluded`, naming the revocation
    /// that did not see the change).
    Invalid(keyhive_core::capability::Refusal),
}

/// One content change of a document, in causal order.
#[derive(Debug, Clone)]
pub struct ChangeEntry {
    /// The content op hash.
    pub op: Hash,
    /// The author device.
    pub author: IndividualId,
    /// Checker verdict.
    pub status: ChangeStatus,
    /// Plaintext length, if this device can decrypt the change.
    pub length: Option<u64>,
}

/// REP-3 bookkeeping: for each document, what its key agreement was last found to match.
/// While the checker's member map, the directory and the key agreement are the same, the key
/// agreement still matches and `prepare` is a few comparisons instead of O(N) work; when only
/// the member map moved, the plan is made from the agents whose level changed (REP-3a).
#[derive(Default)]
pub(super) struct Prepared(HashMap<DocumentId, Matched>);

/// What `prepare` last made a document's key agreement match.
#[derive(Clone, Copy)]
struct Matched {
    stamp: Stamp,
    /// The key agreement's members were then exactly the target (every planned seat and
    /// removal took effect), so a later plan may start from the changes since.
    exact: bool,
}

/// The inputs `prepare` derives its plan from.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    /// The version of the checker's member map of the document (CAP-18a: versions are never
    /// reused, so an equal version means the same members).
    readers: u64,
    directory: u64,
    cgka: u64,
    /// REP-5a: changes of the document this device has opened by reading them; one it
    /// opened since may be an uncovered head it now publishes an entry point for. Its own
    /// writes are not counted: each is sealed under the current epoch and carries the keys of
    /// every head it can open, so it leaves no change uncovered or uncarried that was not
    /// before (REP-5b), and a write does not walk the document's history.
    opened: usize,
}

impl<S: Store> Replica<S> {
    /// REP-3/REP-4: makes the key agreement of `document` match the devices that hold `read`,
    /// updating if needed; publishes an entry point when devices were seated (REP-5).
    pub fn prepare(&mut self, document: DocumentId) -> Result<(), ReplicaError> {
        self.prepare_with(document, true)
    }

    /// REP-3 after a sync ([`Replica::prepare_all`]): as [`Replica::prepare`], except that a
    /// root left in conflict by concurrent updates is re-keyed only by its resolver (REP-3b).
    pub(crate) fn prepare_synced(&mut self, document: DocumentId) -> Result<(), ReplicaError> {
        self.prepare_with(document, false)
    }

    fn prepare_with(&mut self, document: DocumentId, encrypting: bool) -> Result<(), ReplicaError> {
        let stamp = self.prepared_stamp(document)?;
        let last = self.prepared.0.get(&document).copied();
        if last.is_some_and(|m| m.stamp == stamp) {
            // REP-3b: a conflict left to its resolver matched the readers; encrypting re-keys.
            let owed = encrypting
                && self
                    .cgkas
                    .get(&document)
                    .is_some_and(Cgka::must_update_before_encrypt);
            if !owed {
                return Ok(());
            }
        }
        // REP-3a: from the changes since an exact match when only the members moved, else
        // from the whole member map; both give the same plan.
        let plan = match last.and_then(|m| self.changed_readers(document, m, stamp)) {
            Some(changed) => self.plan_for(document, &changed)?,
            None => self.full_plan(document)?,
        };
        // REP-3b: after a sync, a root conflict among concurrent updates is left to its
        // resolver; the key agreement matches its readers, so the next sync plans nothing.
        if !encrypting && plan.is_empty() && self.leaves_conflict(document) {
            self.prepared
                .0
                .insert(document, Matched { stamp, exact: true });
            return Ok(());
        }
        let (cgka, authority, key) = self.cgka_with_authority(document)?;
        if plan.is_empty() && !cgka.must_update_before_encrypt() {
            if self.uncovered_change_to_publish(document)? {
                self.publish_entry_point(document)?;
            }
            self.prepared
                .0
                .insert(document, Matched { stamp, exact: true });
            return Ok(());
        }
        let seated = !plan.add.is_empty();
        // REP-3/REP-4: removes first, then seats, then an update if the root is not agreed.
        let ops = cgka.apply_membership(key, &plan, &authority)?;
        let members = cgka.tree().members();
        let exact = plan.remove.iter().all(|d| !members.contains_key(d))
            && plan.add.iter().all(|(d, _)| members.contains_key(d));
        // Built and signed here: stored without hashing or decoding them again.
        let items = ops
            .iter()
            .map(|op| {
                Item::of_verified(
                    ItemKind::Cgka,
                    SubjectId(document.0),
                    op.as_bytes().to_vec(),
                    op.hash(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.require_full()?;
        for item in &items {
            self.admission.note_local_key_agreement(item);
        }
        self.put_local(items)?;
        if seated || self.uncovered_change_to_publish(document)? {
            self.publish_entry_point(document)?;
        }
        let stamp = self.prepared_stamp(document)?;
        self.prepared.0.insert(document, Matched { stamp, exact });
        Ok(())
    }

    /// REP-3a: the agents whose level on `document` may have changed since `last`, when the
    /// key agreement and the directory are as they were then and the key agreement matched
    /// the readers exactly (otherwise `None`: plan from the whole member map).
    fn changed_readers(
        &self,
        document: DocumentId,
        last: Matched,
        now: Stamp,
    ) -> Option<Vec<AgentId>> {
        if !last.exact || last.stamp.directory != now.directory || last.stamp.cgka != now.cgka {
            return None;
        }
        self.admission
            .checker
            .members_changed_since(&document.0, last.stamp.readers)
    }

    /// CGKA-23 from the whole member map: every device holding `read`, with its seat key
    /// (CGKA-34: no contact card needed), against every seated device.
    fn full_plan(&self, document: DocumentId) -> Result<MembershipPlan, ReplicaError> {
        let readers = self.admission.checker.members(&document.0);
        let target: BTreeMap<IndividualId, PrekeyPublic> = readers
            .iter()
            .filter_map(|(agent, held)| match agent {
                AgentId::Individual(d) if *held >= Access::Read => {
                    self.admission.directory.seat_key(d).map(|k| (*d, k))
                }
                _ => None,
            })
            .collect();
        if !target.contains_key(&self.device.id()) {
            return Err(ReplicaError::NotSeated(document));
        }
        Ok(self.cgka_of(&document)?.sync_membership(&target))
    }

    /// REP-3a: the plan for the devices among `changed` only, when the key agreement matched
    /// the readers exactly before they changed: what [`Replica::full_plan`] gives then.
    fn plan_for(
        &self,
        document: DocumentId,
        changed: &[AgentId],
    ) -> Result<MembershipPlan, ReplicaError> {
        let readers = self.admission.checker.members(&document.0);
        let seated = self.cgka_of(&document)?.tree().members();
        let mut plan = MembershipPlan::default();
        for agent in changed {
            let AgentId::Individual(d) = agent else {
                continue;
            };
            let prekey = readers
                .get(agent)
                .is_some_and(|held| *held >= Access::Read)
                .then(|| self.admission.directory.seat_key(d))
                .flatten();
            if *d == self.device.id() && prekey.is_none() {
                return Err(ReplicaError::NotSeated(document));
            }
            match (prekey, seated.contains_key(d)) {
                (Some(k), false) => plan.add.push((*d, k)),
                (None, true) => plan.remove.push(*d),
                _ => {}
            }
        }
        Ok(plan)
    }

    /// What a prepared key agreement was checked against: the document's members, the
    /// prekeys and the key agreement's own state.
    fn prepared_stamp(&self, document: DocumentId) -> Result<Stamp, ReplicaError> {
        Ok(Stamp {
            readers: self.admission.checker.members_version(&document.0),
            directory: self.admission.directory.generation(),
            cgka: self.cgka_of(&document)?.generation(),
            opened: self.with_history(document, DocHistory::opened_by_reading)?,
        })
    }

    fn cgka_of(&self, document: &DocumentId) -> Result<&Cgka, ReplicaError> {
        self.cgkas
            .get(document)
            .ok_or(ReplicaError::UnknownSubject(*document))
    }

    /// REP-5/REP-5b/REP-22: a signed change without content naming the current heads and the
    /// changes no head carries, with their keys.
    fn publish_entry_point(&mut self, document: DocumentId) -> Result<(), ReplicaError> {
        let predecessors = self.entry_point_keys(document)?;
        if predecessors.is_empty() {
            return Ok(());
        }
        let (change, _) = self.seal(document, &predecessors, &Body::EntryPoint)?;
        let entry = Verified::sign(
            EntryPoint {
                publisher: self.device.id().0,
                change,
            },
            self.device.signing_key(),
        )
        .map_err(ReplicaError::Sign)?;
        let item = Item::new(
            ItemKind::Blob,
            SubjectId(document.0),
            entry.as_bytes().to_vec(),
        )?;
        self.store_items(vec![item])
    }

    /// Encrypts `body` under the document's current epoch with a fresh random reference.
    /// Returns the change and its key.
    fn seal(
        &self,
        document: DocumentId,
        predecessors: &[(Hash, SymmetricKey)],
        body: &Body,
    ) -> Result<(EncryptedChange, SymmetricKey), ReplicaError> {
        let reference = Hash(*SymmetricKey::random().expose());
        let plaintext = Zeroizing::new(encode(body));
        Ok(encrypt_change(
            self.cgka_of(&document)?,
            reference,
            predecessors,
            &plaintext,
        )?)
    }

    /// Writes `content` as a new change of `document` (encrypt, sign, store). Returns the
    /// content op hash. A change whose ciphertext fits [`INLINE_MAX_CIPHERTEXT`] travels in its
    /// content op (INL-2); content above [`INLINE_MAX`] is streamed in pieces; the rest is a
    /// change blob.
    pub fn write(&mut self, document: DocumentId, content: &[u8]) -> Result<Hash, ReplicaError> {
        if content.len() > INLINE_MAX {
            self.require_full()?;
            self.require_unrevoked(&document.0, Access::Write)?;
            return self.stream_pieces(document, content);
        }
        if let Some(op) = self.write_inline(document, content)? {
            return Ok(op);
        }
        self.write_body(document, &Body::Inline(content.to_vec()), Vec::new())
    }

    /// INL-2: writes `content` as a change carried by its content op, one item, if its
    /// ciphertext fits [`INLINE_MAX_CIPHERTEXT`] and the op its size limit; `None` otherwise
    /// (nothing was stored or applied: the caller writes a blob instead).
    fn write_inline(
        &mut self,
        document: DocumentId,
        content: &[u8],
    ) -> Result<Option<Hash>, ReplicaError> {
        self.require_unrevoked(&document.0, Access::Write)?;
        self.prepare(document)?;
        let predecessors = self.head_keys(document)?;
        if predecessors.len() > MAX_INLINE_PREDECESSORS
            || inline_ciphertext_len(predecessors.len(), content.len()) > INLINE_MAX_CIPHERTEXT
        {
            return Ok(None);
        }
        let cgka = self
            .cgkas
            .get(&document)
            .ok_or(ReplicaError::UnknownSubject(document))?;
        let written = self
            .admission
            .checker
            .write_with(&self.device, document, |header| {
                Ok::<_, ReplicaError>(seal_inline(cgka, header, &predecessors, content)?)
            });
        let (op, key) = match written {
            Ok(written) => written,
            // The op with its auth heads, proof and predecessors exceeds its limit: a blob.
            Err(ReplicaError::Build(BuildError::Sign(SignError::TooLarge { .. }))) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        // INL-1: an inline change names no blob; nothing to record but the op.
        let op_item = content_item(&op)?;
        self.require_full()?;
        self.put_local(vec![op_item])?;
        let written = Written {
            // INL-6: an inline change is named by its op hash.
            reference: op.hash(),
            key,
            pieces: Vec::new(),
            length: Some(content.len() as u64),
        };
        self.note_written(document, op.hash(), written, predecessors);
        self.publish_events([]);
        Ok(Some(op.hash()))
    }

    /// Writes everything `reader` yields as one change, streamed in pieces with bounded memory.
    /// A stream that ends within [`INLINE_MAX`] bytes is written as [`Replica::write`] writes
    /// it (INL-2: in its content op when its ciphertext fits, one item), so a small file costs
    /// no manifest and no piece.
    pub fn write_stream(
        &mut self,
        document: DocumentId,
        mut reader: impl Read,
    ) -> Result<Hash, ReplicaError> {
        // REP-63: checked before anything is read or stored.
        self.require_full()?;
        self.require_unrevoked(&document.0, Access::Write)?;
        let mut head = Zeroizing::new(Vec::new());
        (&mut reader)
            .take(INLINE_MAX as u64 + 1)
            .read_to_end(&mut head)
            .map_err(|e| ReplicaError::Stream(e.into()))?;
        if head.len() <= INLINE_MAX {
            return self.write(document, &head);
        }
        self.stream_pieces(document, std::io::Cursor::new(&head[..]).chain(reader))
    }

    /// The streamed form of [`Replica::write_stream`]: pieces, then the manifest naming them.
    fn stream_pieces(
        &mut self,
        document: DocumentId,
        reader: impl Read,
    ) -> Result<Hash, ReplicaError> {
        self.prepare(document)?;
        let key = SymmetricKey::random();
        let mut sink = PieceSink::new(document, &self.store);
        // A piece the store refused surfaces as the store's own error, not as an I/O error.
        let streamed = match encrypt_stream(&key, document.0.as_bytes(), reader, &mut sink) {
            Ok(length) => sink.finish().map(|()| length),
            Err(e) => Err(sink.error.take().unwrap_or_else(|| e.into())),
        };
        let pieces = std::mem::take(&mut sink.pieces);
        let fresh = std::mem::take(&mut sink.fresh);
        // REP-24: until the manifest is stored, the pieces stored so far are this write's
        // alone; a failure removes them (a kill leaves them to the next open).
        let written = streamed.and_then(|length| {
            self.write_body(
                document,
                &Body::Stream {
                    key: *key.expose(),
                    length,
                },
                pieces.clone(),
            )
        });
        let op = match written {
            Ok(op) => op,
            Err(e) => {
                self.discard_pieces(&fresh);
                return Err(e);
            }
        };
        self.announce_stored(&pieces)?;
        Ok(op)
    }

    /// Seals `body` as a change listing `pieces`, signs the content op naming it (REP-20) and
    /// stores both.
    fn write_body(
        &mut self,
        document: DocumentId,
        body: &Body,
        pieces: Vec<Hash>,
    ) -> Result<Hash, ReplicaError> {
        self.require_unrevoked(&document.0, Access::Write)?;
        self.prepare(document)?;
        let predecessors = self.head_keys(document)?;
        let (change, key) = self.seal(document, &predecessors, body)?;
        let written = Written {
            reference: change.header.change,
            key,
            pieces: pieces.clone(),
            length: match body {
                Body::Inline(bytes) => Some(bytes.len() as u64),
                Body::Stream { length, .. } => Some(*length),
                Body::EntryPoint => None,
            },
        };
        let blob = Item::new(
            ItemKind::Blob,
            SubjectId(document.0),
            Blob::Change { change, pieces }.to_bytes(),
        )?;
        // REP-20: the op names the blob by `Hash::of_content` of its bytes, hashed once here
        // for the op, admission's index and the replica's.
        let named = Hash::of_content(blob.envelope());
        let len = blob.envelope().len() as u64;
        let (op, ()) = self
            .admission
            .checker
            .write_with(&self.device, document, |_| {
                Ok::<_, ReplicaError>((Payload::Blob { hash: named, len }, ()))
            })?;
        let op_item = content_item(&op)?;
        // What `store_items` would record, from what was just built instead of decoding it.
        self.require_full()?;
        self.admission.note_local_change(named, &written.pieces);
        self.blobs.insert(named, blob.hash());
        self.put_local(vec![blob, op_item])?;
        self.note_written(document, op.hash(), written, predecessors);
        self.publish_events([]);
        Ok(op.hash())
    }
}

/// The store item for a content op this device just signed (its hash already computed).
fn content_item(op: &Verified<ContentOp>) -> Result<Item, ReplicaError> {
    Ok(Item::of_verified(
        ItemKind::Content,
        SubjectId(op.body.document.0),
        op.as_bytes().to_vec(),
        op.hash(),
    )?)
}

pub(super) fn body_length(body: &[u8]) -> Option<u64> {
    match decode_canonical::<Body>(body, usize::MAX).ok()? {
        Body::Inline(bytes) => Some(bytes.len() as u64),
        Body::Stream { length, .. } => Some(length),
        Body::EntryPoint => None,
    }
}

/// Cuts a ciphertext stream into piece items as it is produced (REP-6).
struct PieceSink<'a, S: Store> {
    document: DocumentId,
    store: &'a S,
    buffer: Vec<u8>,
    pieces: Vec<Hash>,
    /// REP-24: the pieces this write stored new (what a failure removes).
    fresh: Vec<Hash>,
    error: Option<ReplicaError>,
}

impl<'a, S: Store> PieceSink<'a, S> {
    fn new(document: DocumentId, store: &'a S) -> Self {
        PieceSink {
            document,
            store,
            buffer: Vec::with_capacity(PIECE_LEN),
            pieces: Vec::new(),
            fresh: Vec::new(),
            error: None,
        }
    }

    fn flush_piece(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let index = u32::try_from(self.pieces.len()).map_err(std::io::Error::other)?;
        let blob = Blob::Piece {
            document: self.document,
            index,
            bytes: std::mem::take(&mut self.buffer),
        };
        let stored = Item::new(ItemKind::Blob, SubjectId(self.document.0), blob.to_bytes())
            .map_err(ReplicaError::from)
            .and_then(|item| {
                let fresh = self.store.put(std::slice::from_ref(&item))?;
                Ok((item.hash(), fresh.first().copied().unwrap_or(false)))
            });
        match stored {
            Ok((hash, fresh)) => {
                self.pieces.push(hash);
                if fresh {
                    self.fresh.push(hash);
                }
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                self.error = Some(e);
                Err(std::io::Error::other(msg))
            }
        }
    }

    fn finish(&mut self) -> Result<(), ReplicaError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.flush_piece()?;
        Ok(())
    }
}

impl<S: Store> Write for PieceSink<'_, S> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = PIECE_LEN - self.buffer.len();
        let n = room.min(data.len());
        self.buffer.extend_from_slice(&data[..n]);
        if self.buffer.len() == PIECE_LEN {
            self.flush_piece()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
