//! Reading a document's history: which changes this device can open and their plaintext
//! (REP-7, REP-20).
//!
//! A change's ciphertext is only ever the blob its content op names (REP-20): a blob that merely
//! claims a change's reference can neither replace nor hide it. Keys learned from predecessor
//! lists (of changes and of entry points) are tried on every change with that reference; a
//! wrong key fails authentication and is ignored, so a forged key cannot hide a change either.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};

use keyhive_core::capability::{AnyVerified, ContentOp, Validity};
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::secret::SymmetricKey;
use keyhive_core::encoding::decode_canonical;
use keyhive_core::encryption::{
    DecryptedChange, EncryptedChange, decrypt_stream, decrypt_with_epoch, decrypt_with_key,
};
use keyhive_core::identity::{DocumentId, IndividualId};
use keyhive_core::signed::{Signed, Verified};
use zeroize::Zeroizing;

use super::Replica;
use super::content::{Body, ChangeEntry, ChangeStatus, body_length};
use super::error::ReplicaError;
use crate::blob::{Blob, EntryPoint};
use crate::store::Store;

/// A change this device decrypted.
pub(super) struct Opened {
    /// The change's reference (how later changes name it as a predecessor).
    reference: Hash,
    key: SymmetricKey,
    body: Zeroizing<Vec<u8>>,
    /// REP-21: the pieces of a streamed change, as its (op-named) blob lists them.
    pieces: Vec<Hash>,
}

/// A ciphertext to open: the change named by a content op, or an entry point.
struct Sealed {
    /// The content op hash, or the entry point's item hash.
    id: Hash,
    change: EncryptedChange,
    pieces: Vec<Hash>,
}

impl<S: Store> Replica<S> {
    /// Keys of the current content heads this device can open (predecessors of a new change).
    pub(super) fn head_keys(
        &self,
        document: DocumentId,
    ) -> Result<Vec<(Hash, SymmetricKey)>, ReplicaError> {
        let opened = self.open_all(document)?;
        Ok(self
            .admission
            .checker
            .content_heads(&document.0)
            .into_iter()
            .filter_map(|head| opened.get(&head))
            .map(|o| (o.reference, o.key.clone()))
            .collect())
    }

    /// REP-20: the change blob a content op names, found by the op's `payload_hash` only.
    fn named_change(&self, op: &Verified<ContentOp>) -> Result<Option<Sealed>, ReplicaError> {
        let Some(item_hash) = self.blobs.get(&op.body.payload_hash) else {
            return Ok(None);
        };
        let Some(item) = self.store.get(item_hash)? else {
            return Ok(None);
        };
        Ok(match Blob::from_bytes(item.envelope()) {
            Ok(Blob::Change { change, pieces }) if change.header.document == op.body.document => {
                Some(Sealed {
                    id: op.hash(),
                    change,
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
                change: entry.unverified_payload().change.clone(),
                pieces: Vec::new(),
            }))
    }

    /// Decrypts every change of `document` this device can reach: those under an epoch it
    /// knows, then, through the keys they carry, their predecessors (REP-7). Keyed by content
    /// op hash (entry points by item hash).
    pub(super) fn open_all(
        &self,
        document: DocumentId,
    ) -> Result<HashMap<Hash, Opened>, ReplicaError> {
        let Some(cgka) = self.cgkas.get(&document) else {
            return Ok(HashMap::new());
        };
        let mut sealed = Vec::new();
        for op in self.admission.checker.ops_for(&document.0) {
            if let AnyVerified::Content(c) = op
                && let Some(s) = self.named_change(c)?
            {
                sealed.push(s);
            }
        }
        for hash in self.entry_points.get(&document).into_iter().flatten() {
            sealed.extend(self.entry_point(hash)?);
        }
        let mut by_reference: HashMap<Hash, Vec<usize>> = HashMap::new();
        for (i, s) in sealed.iter().enumerate() {
            by_reference
                .entry(s.change.header.change)
                .or_default()
                .push(i);
        }
        let mut opened: HashMap<Hash, Opened> = HashMap::new();
        let mut known: HashMap<Hash, Vec<SymmetricKey>> = HashMap::new();
        let mut queue: Vec<(Hash, SymmetricKey)> = Vec::new();
        let mut record = |s: &Sealed,
                          d: DecryptedChange,
                          opened: &mut HashMap<Hash, Opened>,
                          queue: &mut Vec<(Hash, SymmetricKey)>| {
            for (reference, key) in d.predecessors {
                let keys = known.entry(reference).or_default();
                if !keys.contains(&key) {
                    keys.push(key.clone());
                    queue.push((reference, key));
                }
            }
            opened.insert(
                s.id,
                Opened {
                    reference: s.change.header.change,
                    key: d.key,
                    body: d.content,
                    pieces: s.pieces.clone(),
                },
            );
        };
        for s in &sealed {
            if let Ok(d) = decrypt_with_epoch(cgka, &s.change) {
                record(s, d, &mut opened, &mut queue);
            }
        }
        while let Some((reference, key)) = queue.pop() {
            for i in by_reference.get(&reference).into_iter().flatten() {
                let s = &sealed[*i];
                if opened.contains_key(&s.id) {
                    continue;
                }
                if let Ok(d) = decrypt_with_key(&key, &s.change) {
                    record(s, d, &mut opened, &mut queue);
                }
            }
        }
        Ok(opened)
    }

    /// Every content change of `document`, in causal order, with validity and readability.
    pub fn changes(&self, document: DocumentId) -> Result<Vec<ChangeEntry>, ReplicaError> {
        let opened = self.open_all(document)?;
        let mut out = Vec::new();
        for c in self.content_in_causal_order(document) {
            let hash = c.hash();
            let status = match self.admission.checker.op_validity(&hash) {
                Some(Validity::Valid) => ChangeStatus::Valid,
                Some(Validity::Invalid(r)) => ChangeStatus::Invalid(r.to_string()),
                None => ChangeStatus::Invalid("unknown".into()),
            };
            let length = opened.get(&hash).and_then(|o| body_length(&o.body));
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

    /// Decrypts change `op` of `document` into `out`; returns the plaintext length. Streamed
    /// content is decrypted piece by piece.
    pub fn read_change(
        &self,
        document: DocumentId,
        op: &Hash,
        mut out: impl Write,
    ) -> Result<u64, ReplicaError> {
        let opened = self.open_all(document)?;
        let o = opened
            .get(op)
            .ok_or_else(|| ReplicaError::NotSeated(document.to_string()))?;
        match decode_canonical::<Body>(&o.body, usize::MAX)? {
            Body::Inline(bytes) => {
                out.write_all(&bytes)?;
                Ok(bytes.len() as u64)
            }
            Body::Stream { key, .. } => {
                let key = SymmetricKey::from_bytes(key);
                let reader = PieceReader {
                    store: &self.store,
                    pieces: o.pieces.clone().into_iter(),
                    current: Vec::new(),
                    at: 0,
                };
                Ok(decrypt_stream(&key, document.0.as_bytes(), reader, out)?)
            }
            Body::EntryPoint => Ok(0),
        }
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
