//! Reading a document's history: which changes this device can open and their plaintext
//! (REP-7, REP-20).
//!
//! A change's ciphertext is only ever the blob its content op names (REP-20): a blob that merely
//! claims a change's reference can neither replace nor hide it. Keys learned from predecessor
//! lists (of changes and of entry points) are tried on every change with that reference; a
//! wrong key fails authentication and is ignored, so a forged key cannot hide a change either.
//!
//! REP-23 (linear reads): what a device opened is remembered per document (each change's key,
//! reference, pieces and length, never its plaintext), and each call only looks at what arrived
//! since: changes are opened once, so reading every change of a history costs O(history) in all.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{Read, Write};

use keyhive_core::capability::{AnyVerified, ContentOp, Payload, Validity};
use keyhive_core::cgka::Cgka;
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::secret::SymmetricKey;
use keyhive_core::encoding::decode_canonical;
use keyhive_core::encryption::{
    DecryptError, DecryptedChange, EncryptedChange, decrypt_stream, decrypt_with_epoch,
    decrypt_with_key, open_inline_with_epoch, open_inline_with_key,
};
use keyhive_core::identity::{DocumentId, IndividualId};
use keyhive_core::signed::{Signed, Verified};

use super::Replica;
use super::content::{Body, ChangeEntry, ChangeStatus, body_length};
use super::error::ReplicaError;
use crate::blob::{Blob, EntryPoint};
use crate::store::Store;

/// A change this device opened: what it needs to read it again without the history.
pub(super) struct Opened {
    /// The change's reference (how later changes name it as a predecessor).
    pub(super) reference: Hash,
    pub(super) key: SymmetricKey,
    /// REP-21: the pieces of a streamed change, as its (op-named) blob lists them.
    pieces: Vec<Hash>,
    /// Plaintext length (`None` for an entry point).
    length: Option<u64>,
    /// The references of the predecessors whose keys the change carries (REP-5b).
    pub(super) carries: Vec<Hash>,
}

impl Opened {
    /// A content change (an entry point has no length).
    pub(super) fn is_change(&self) -> bool {
        self.length.is_some()
    }
}

/// What the writer of a change knows about it without decrypting it.
pub(super) struct Written {
    /// The change's reference.
    pub(super) reference: Hash,
    /// The change key.
    pub(super) key: SymmetricKey,
    /// REP-21: its pieces, if streamed.
    pub(super) pieces: Vec<Hash>,
    /// Plaintext length (`None` for an entry point).
    pub(super) length: Option<u64>,
}

/// A ciphertext to open: the change named by a content op, the change a content op carries
/// inline, or an entry point.
struct Sealed {
    /// The content op hash, or the entry point's item hash.
    id: Hash,
    cipher: Cipher,
    pieces: Vec<Hash>,
}

/// The two forms of a sealed change.
enum Cipher {
    /// CENC-1: a change blob (REP-20) or an entry point's change (REP-22).
    Blob(EncryptedChange),
    /// INL-1: the change its content op carries; `epoch` is the payload's.
    Inline {
        op: Box<Verified<ContentOp>>,
        epoch: Hash,
    },
}

impl Cipher {
    /// How successors and entry points name the change: the CENC-1 reference in a blob's
    /// header, the content-op hash of an inline change (INL-6).
    fn reference(&self) -> Hash {
        match self {
            Cipher::Blob(c) => c.header.change,
            Cipher::Inline { op, .. } => op.hash(),
        }
    }

    /// The epoch the change is sealed under.
    fn epoch(&self) -> Hash {
        match self {
            Cipher::Blob(c) => c.header.epoch,
            Cipher::Inline { epoch, .. } => *epoch,
        }
    }

    fn open_with_epoch(&self, cgka: &Cgka) -> Result<DecryptedChange, DecryptError> {
        match self {
            Cipher::Blob(c) => decrypt_with_epoch(cgka, c),
            Cipher::Inline { op, .. } => open_inline_with_epoch(cgka, op),
        }
    }

    fn open_with_key(&self, key: &SymmetricKey) -> Result<DecryptedChange, DecryptError> {
        match self {
            Cipher::Blob(c) => decrypt_with_key(key, c),
            Cipher::Inline { op, .. } => open_inline_with_key(key, op),
        }
    }

    /// Plaintext length of opened `content` (`None` for an entry point): an inline change's
    /// content is the plaintext itself (INL-5), a blob's is a CENC-11 body.
    fn length(&self, content: &[u8]) -> Option<u64> {
        match self {
            Cipher::Blob(_) => body_length(content),
            Cipher::Inline { .. } => Some(content.len() as u64),
        }
    }
}

/// REP-23: one document's reading state.
#[derive(Default)]
pub(super) struct DocHistory {
    pub(super) opened: HashMap<Hash, Opened>,
    /// How many of `opened` this device wrote itself (`note_written`).
    written: usize,
    /// Changes found but not opened yet, by id.
    sealed: HashMap<Hash, Sealed>,
    /// Ids of `sealed`, by change reference.
    by_reference: HashMap<Hash, Vec<Hash>>,
    /// Keys learned for each reference.
    known: HashMap<Hash, Vec<SymmetricKey>>,
    /// Content ops of the document looked at so far (the checker lists them append-only).
    ops_seen: usize,
    /// Content ops whose change blob had not arrived when they were looked at.
    awaiting_blob: HashSet<Hash>,
    /// Entry points looked at so far.
    entries_seen: usize,
    /// Epoch secrets known when `sealed` was last tried with them.
    epochs_tried: usize,
    /// REP-5a: per epoch, the references of the changes sealed under it and of the
    /// predecessors they carry: what a device seated in that epoch can open.
    pub(super) covered: HashMap<Hash, HashSet<Hash>>,
}

/// REP-23: the reading state of every document, filled lazily.
#[derive(Default)]
pub(super) struct HistoryCache(RefCell<HashMap<DocumentId, DocHistory>>);

impl<S: Store> Replica<S> {
    /// Keys of the current content heads this device can open (predecessors of a new change).
    pub(super) fn head_keys(
        &self,
        document: DocumentId,
    ) -> Result<Vec<(Hash, SymmetricKey)>, ReplicaError> {
        let heads = self.admission.checker.content_heads(&document.0);
        self.with_history(document, |h| {
            heads
                .iter()
                .filter_map(|head| h.opened.get(head))
                .map(|o| (o.reference, o.key.clone()))
                .collect()
        })
    }

    /// REP-20: the change blob a content op names, found by the op's payload hash only; or
    /// INL-1: the change the op carries.
    fn named_change(&self, op: &Verified<ContentOp>) -> Result<Option<Sealed>, ReplicaError> {
        let hash = match &op.body.payload {
            Payload::Blob { hash, .. } => hash,
            Payload::Inline(change) => {
                return Ok(Some(Sealed {
                    id: op.hash(),
                    cipher: Cipher::Inline {
                        op: Box::new(op.clone()),
                        epoch: change.epoch,
                    },
                    pieces: Vec::new(),
                }));
            }
        };
        let Some(item_hash) = self.blobs.get(hash) else {
            return Ok(None);
        };
        let Some(item) = self.store.get(item_hash)? else {
            return Ok(None);
        };
        Ok(match Blob::from_bytes(item.envelope()) {
            Ok(Blob::Change { change, pieces }) if change.header.document == op.body.document => {
                Some(Sealed {
                    id: op.hash(),
                    cipher: Cipher::Blob(change),
                    pieces,
                })
            }
            _ => None,
        })
    }

    fn entry_point(&self, item_hash: &Hash) -> Result<Option<Sealed>, ReplicaError> {
        let Some(item) = self.store.get(item_hash)? else {
            return Ok(None);
        };
        Ok(Signed::<EntryPoint>::decode(item.envelope())
            .ok()
            .map(|entry| Sealed {
                id: *item_hash,
                cipher: Cipher::Blob(entry.unverified_payload().change.clone()),
                pieces: Vec::new(),
            }))
    }

    /// Brings `document`'s reading state up to date (REP-7, REP-23) and hands it to `f`.
    pub(super) fn with_history<R>(
        &self,
        document: DocumentId,
        f: impl FnOnce(&DocHistory) -> R,
    ) -> Result<R, ReplicaError> {
        let mut cache = self.history.0.borrow_mut();
        let history = cache.entry(document).or_default();
        let Some(cgka) = self.cgkas.get(&document) else {
            return Ok(f(history));
        };
        let mut fresh = Vec::new();
        let ops: Vec<&AnyVerified> = self
            .admission
            .checker
            .ops_for_since(&document.0, history.ops_seen)
            .collect();
        history.ops_seen += ops.len();
        for op in ops {
            if let AnyVerified::Content(c) = op
                && !history.opened.contains_key(&c.hash())
            {
                history.awaiting_blob.insert(c.hash());
            }
        }
        let awaiting: Vec<Hash> = history.awaiting_blob.iter().copied().collect();
        for hash in awaiting {
            if let Some(AnyVerified::Content(c)) = self.admission.checker.op(&hash)
                && let Some(s) = self.named_change(c)?
            {
                history.awaiting_blob.remove(&hash);
                fresh.push(s);
            }
        }
        let entries = self
            .entry_points
            .get(&document)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for hash in &entries[history.entries_seen.min(entries.len())..] {
            fresh.extend(self.entry_point(hash)?);
        }
        history.entries_seen = entries.len();
        history.open(cgka, fresh);
        Ok(f(history))
    }

    /// REP-23: records change `id` that this device just sealed under the current epoch as
    /// opened (it knows the key and what the change carries), so that the reading state need
    /// not decode and decrypt it again.
    pub(super) fn note_written(
        &self,
        document: DocumentId,
        id: Hash,
        written: Written,
        predecessors: Vec<(Hash, SymmetricKey)>,
    ) {
        let epoch = self
            .cgkas
            .get(&document)
            .and_then(Cgka::current_epoch)
            .map(|(epoch, _)| epoch);
        let mut cache = self.history.0.borrow_mut();
        let history = cache.entry(document).or_default();
        if history.opened.contains_key(&id) || history.sealed.contains_key(&id) {
            return;
        }
        if let Some(epoch) = epoch {
            history.cover(epoch, written.reference, &predecessors);
        }
        let carries = predecessors.iter().map(|(r, _)| *r).collect();
        let mut queue = Vec::new();
        history.learn(predecessors, &mut queue);
        history.written += 1;
        history.opened.insert(
            id,
            Opened {
                reference: written.reference,
                key: written.key,
                pieces: written.pieces,
                length: written.length,
                carries,
            },
        );
        history.propagate(queue);
    }

    /// Every content change of `document`, in causal order, with validity and readability.
    pub fn changes(&self, document: DocumentId) -> Result<Vec<ChangeEntry>, ReplicaError> {
        let lengths: HashMap<Hash, Option<u64>> = self.with_history(document, |h| {
            h.opened.iter().map(|(id, o)| (*id, o.length)).collect()
        })?;
        let mut out = Vec::new();
        for c in self.content_in_causal_order(document) {
            let hash = c.hash();
            // The checker judges every op it holds, and these ops come from it.
            let status = match self.admission.checker.op_validity(&hash) {
                Some(Validity::Valid) => ChangeStatus::Valid,
                Some(Validity::Invalid(r)) => ChangeStatus::Invalid(r),
                None => continue,
            };
            let length = lengths.get(&hash).copied().flatten();
            out.push(ChangeEntry {
                op: hash,
                author: IndividualId(c.issuer),
                status,
                length,
            });
        }
        Ok(out)
    }

    /// Content ops of `document` in a deterministic causal order: parents first, ties broken
    /// by hash (Kahn's algorithm), so every replica lists the same history the same way.
    fn content_in_causal_order(&self, document: DocumentId) -> Vec<&Verified<ContentOp>> {
        let ops: HashMap<Hash, _> = self
            .admission
            .checker
            .ops_for(&document.0)
            .filter_map(|op| match op {
                AnyVerified::Content(c) => Some((c.hash(), c)),
                _ => None,
            })
            .collect();
        let mut waiting: HashMap<Hash, usize> = HashMap::new();
        let mut children: HashMap<Hash, Vec<Hash>> = HashMap::new();
        for (hash, op) in &ops {
            let parents: Vec<&Hash> = op
                .predecessors
                .iter()
                .filter(|p| ops.contains_key(p))
                .collect();
            waiting.insert(*hash, parents.len());
            for p in parents {
                children.entry(*p).or_default().push(*hash);
            }
        }
        let mut ready: BTreeSet<Hash> = waiting
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(h, _)| *h)
            .collect();
        let mut out = Vec::with_capacity(ops.len());
        while let Some(next) = ready.pop_first() {
            out.push(ops[&next]);
            for child in children.get(&next).into_iter().flatten() {
                if let Some(n) = waiting.get_mut(child) {
                    *n -= 1;
                    if *n == 0 {
                        ready.insert(*child);
                    }
                }
            }
        }
        out
    }

    /// The latest valid change this device can decrypt, if any.
    pub fn latest_readable(&self, document: DocumentId) -> Result<Option<Hash>, ReplicaError> {
        Ok(self
            .changes(document)?
            .into_iter()
            .rev()
            .find(|c| c.status == ChangeStatus::Valid && c.length.is_some())
            .map(|c| c.op))
    }

    /// REP-41: whether opened change `op` of `document` reads in full now: every piece its
    /// blob lists (REP-21) is stored. A change whose pieces are still on their way (a piece is
    /// admitted only after the change naming it, so it often arrives in a later batch) is not
    /// readable yet; an inline or unstreamed change has no pieces. `false` when `op` is not
    /// opened.
    pub(super) fn pieces_stored(
        &self,
        document: DocumentId,
        op: &Hash,
    ) -> Result<bool, ReplicaError> {
        let pieces = self.with_history(document, |h| h.opened.get(op).map(|o| o.pieces.clone()))?;
        let Some(pieces) = pieces else {
            return Ok(false);
        };
        for piece in &pieces {
            if !self.store.contains(piece)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Decrypts change `op` of `document` into `out`; returns the plaintext length. Streamed
    /// content is decrypted piece by piece.
    pub fn read_change(
        &self,
        document: DocumentId,
        op: &Hash,
        mut out: impl Write,
    ) -> Result<u64, ReplicaError> {
        let opened = self.with_history(document, |h| {
            h.opened.get(op).map(|o| (o.key.clone(), o.pieces.clone()))
        })?;
        let unreadable = || ReplicaError::Unreadable {
            document,
            change: *op,
        };
        let (key, pieces) = opened.ok_or_else(unreadable)?;
        let change = self
            .admission
            .checker
            .op(op)
            .and_then(|o| match o {
                AnyVerified::Content(c) => self.named_change(c).transpose(),
                _ => None,
            })
            .transpose()?
            .ok_or_else(unreadable)?;
        let body = change
            .cipher
            .open_with_key(&key)
            .map_err(|_| unreadable())?
            .content;
        if let Cipher::Inline { .. } = change.cipher {
            // INL-5: the plaintext after the keys is the content itself.
            out.write_all(&body)?;
            return Ok(body.len() as u64);
        }
        match decode_canonical::<Body>(&body, usize::MAX)? {
            Body::Inline(bytes) => {
                out.write_all(&bytes)?;
                Ok(bytes.len() as u64)
            }
            Body::Stream { key, .. } => {
                let key = SymmetricKey::from_bytes(key);
                let reader = PieceReader {
                    store: &self.store,
                    pieces: pieces.into_iter(),
                    current: Vec::new(),
                    at: 0,
                };
                Ok(decrypt_stream(&key, document.0.as_bytes(), reader, out)?)
            }
            Body::EntryPoint => Ok(0),
        }
    }
}

impl DocHistory {
    /// REP-3a, REP-5a: how many changes this device opened by reading them (not counting
    /// those it wrote itself, which it seals covered under the current epoch, carrying the
    /// keys of every head it can open: a local write never makes a change uncovered).
    pub(super) fn opened_by_reading(&self) -> usize {
        self.opened.len() - self.written
    }

    /// Adds `fresh` changes and opens every change it can: under an epoch this device knows
    /// (all sealed ones again when new epochs arrived), then through the keys opened changes
    /// carry (REP-7). A change is opened at most once.
    fn open(&mut self, cgka: &Cgka, fresh: Vec<Sealed>) {
        let new_epochs = cgka.epoch_count() != self.epochs_tried;
        self.epochs_tried = cgka.epoch_count();
        let mut try_epoch: Vec<Hash> = fresh.iter().map(|s| s.id).collect();
        for s in fresh {
            if self.opened.contains_key(&s.id) || self.sealed.contains_key(&s.id) {
                continue;
            }
            self.by_reference
                .entry(s.cipher.reference())
                .or_default()
                .push(s.id);
            self.sealed.insert(s.id, s);
        }
        if new_epochs {
            try_epoch = self.sealed.keys().copied().collect();
        }
        let mut queue: Vec<(Hash, SymmetricKey)> = Vec::new();
        for id in try_epoch {
            let Some(s) = self.sealed.get(&id) else {
                continue;
            };
            let opened = s.cipher.open_with_epoch(cgka).ok().or_else(|| {
                // A fresh change may open with a key learned earlier.
                self.known
                    .get(&s.cipher.reference())
                    .into_iter()
                    .flatten()
                    .find_map(|k| s.cipher.open_with_key(k).ok())
            });
            if let Some(d) = opened {
                self.record(id, d, &mut queue);
            }
        }
        self.propagate(queue);
    }

    /// Opens the sealed changes that the queued keys open, and those their keys open in turn.
    fn propagate(&mut self, mut queue: Vec<(Hash, SymmetricKey)>) {
        while let Some((reference, key)) = queue.pop() {
            let ids = self
                .by_reference
                .get(&reference)
                .cloned()
                .unwrap_or_default();
            for id in ids {
                let Some(s) = self.sealed.get(&id) else {
                    continue;
                };
                if let Ok(d) = s.cipher.open_with_key(&key) {
                    self.record(id, d, &mut queue);
                }
            }
        }
    }

    /// REP-5a: notes what a change sealed under `epoch` lets that epoch's members open.
    fn cover(&mut self, epoch: Hash, reference: Hash, predecessors: &[(Hash, SymmetricKey)]) {
        let set = self.covered.entry(epoch).or_default();
        set.insert(reference);
        set.extend(predecessors.iter().map(|(r, _)| *r));
    }

    /// Remembers predecessor keys a change carries, queueing the new ones to try.
    fn learn(
        &mut self,
        predecessors: Vec<(Hash, SymmetricKey)>,
        queue: &mut Vec<(Hash, SymmetricKey)>,
    ) {
        for (reference, key) in predecessors {
            let keys = self.known.entry(reference).or_default();
            if !keys.contains(&key) {
                keys.push(key.clone());
                queue.push((reference, key));
            }
        }
    }

    /// Moves an opened change from `sealed` to `opened`, queueing the keys it carries.
    fn record(&mut self, id: Hash, d: DecryptedChange, queue: &mut Vec<(Hash, SymmetricKey)>) {
        let Some(s) = self.sealed.remove(&id) else {
            return;
        };
        let reference = s.cipher.reference();
        if let Some(ids) = self.by_reference.get_mut(&reference) {
            ids.retain(|i| *i != id);
        }
        self.cover(s.cipher.epoch(), reference, &d.predecessors);
        let carries = d.predecessors.iter().map(|(r, _)| *r).collect();
        self.learn(d.predecessors, queue);
        self.opened.insert(
            id,
            Opened {
                reference,
                key: d.key,
                length: s.cipher.length(&d.content),
                pieces: s.pieces,
                carries,
            },
        );
    }
}

/// Reads a streamed ciphertext back from its piece items, one piece in memory at a time.
struct PieceReader<'a, S: Store, I: Iterator<Item = Hash>> {
    store: &'a S,
    pieces: I,
    current: Vec<u8>,
    at: usize,
}

impl<S: Store, I: Iterator<Item = Hash>> Read for PieceReader<'_, S, I> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            let Some(hash) = self.pieces.next() else {
                return Ok(0);
            };
            let item = self
                .store
                .get(&hash)
                .map_err(std::io::Error::other)?
                .ok_or_else(|| std::io::Error::other(ReplicaError::MissingPiece(hash)))?;
            match Blob::from_bytes(item.envelope()) {
                Ok(Blob::Piece { bytes, .. }) => {
                    self.current = bytes;
                    self.at = 0;
                }
                _ => return Err(std::io::Error::other("a stream piece is malformed")),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
