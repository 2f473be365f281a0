//! Encrypted content: writing changes (inline or streamed in pieces), entry points for new
//! members, and reading back (REP-3..REP-7).
//!
//! Blob items of a document carry `Blob` values (postcard):
//! - `Blob::Change(EncryptedChange)`: the payload named by a content op (`payload_hash =
//!   Hash::of_content(blob bytes)`) or, without a content op, an entry point (REP-5);
//! - `Blob::Piece`: up to [`PIECE_LEN`] bytes of a streamed ciphertext (REP-6).
//!
//! The plaintext of a change is a [`Body`]: the content inline, or the key and piece list of a
//! stream encrypted with `encryption::encrypt_stream`, so large files never sit in memory whole.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};

use keyhive_core::capability::{AnyVerified, Validity};
use keyhive_core::cgka::Cgka;
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::prekey::PrekeyPublic;
use keyhive_core::crypto::secret::SymmetricKey;
use keyhive_core::encoding::{decode_canonical, encode};
use keyhive_core::encryption::{
    DecryptedChange, EncryptedChange, decrypt_stream, decrypt_with_epoch, decrypt_with_key,
    encrypt_change, encrypt_stream,
};
use keyhive_core::identity::{DocumentId, IndividualId};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::Replica;
use super::error::ReplicaError;
use crate::item::{Item, ItemKind, MAX_ENVELOPE_LEN, SubjectId};
use crate::store::Store;

/// REP-6: ciphertext bytes per piece item (well under the item size limit).
pub const PIECE_LEN: usize = 192 * 1024;
/// Content up to this size is stored inline in its change; larger content is streamed.
pub const INLINE_MAX: usize = 64 * 1024;

#[derive(Serialize, Deserialize)]
enum Blob {
    Change(EncryptedChange),
    Piece {
        document: DocumentId,
        index: u32,
        bytes: Vec<u8>,
    },
}

/// The plaintext of a change after its predecessor keys.
#[derive(Serialize, Deserialize)]
enum Body {
    /// The content itself.
    Inline(Vec<u8>),
    /// A stream: its key, its pieces in order and the plaintext length.
    Stream {
        key: [u8; 32],
        pieces: Vec<Hash>,
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
    /// Refused: the rule and reason.
    Invalid(String),
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

struct Opened {
    key: SymmetricKey,
    body: Zeroizing<Vec<u8>>,
}

impl<S: Store> Replica<S> {
    /// REP-3/REP-4: makes the key agreement of `document` match the devices that hold `read`,
    /// updating if needed; publishes an entry point when devices were seated (REP-5).
    pub fn prepare(&mut self, document: DocumentId) -> Result<(), ReplicaError> {
        let target: BTreeMap<IndividualId, PrekeyPublic> = self
            .checker
            .individuals_with(&document.0, keyhive_core::capability::Access::Read)
            .into_iter()
            .filter_map(|d| self.directory.prekey_of(&d).map(|k| (d, k)))
            .collect();
        if !target.contains_key(&self.device.id()) {
            return Err(ReplicaError::NotSeated(document.to_string()));
        }
        let (cgka, authority, key) = self.cgka_with_authority(document)?;
        let plan = cgka.sync_membership(&target);
        if plan.is_empty() && !cgka.must_update_before_encrypt() {
            return Ok(());
        }
        let seated = !plan.add.is_empty();
        // REP-3/REP-4: removes first, then seats, then an update if the root is not agreed.
        let ops = cgka.apply_membership(key, &plan, &authority)?;
        let items = ops
            .iter()
            .map(|op| {
                Item::new(
                    ItemKind::Cgka,
                    SubjectId(document.0),
                    op.as_bytes().to_vec(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.store_items(items)?;
        if seated {
            self.publish_entry_point(document)?;
        }
        Ok(())
    }

    fn cgka_of(&self, document: &DocumentId) -> Result<&Cgka, ReplicaError> {
        self.cgkas
            .get(document)
            .ok_or_else(|| ReplicaError::UnknownSubject(document.to_string()))
    }

    /// REP-5: an encrypted change without content naming the current heads and their keys.
    fn publish_entry_point(&mut self, document: DocumentId) -> Result<(), ReplicaError> {
        let predecessors = self.head_keys(document)?;
        if predecessors.is_empty() {
            return Ok(());
        }
        let blob = self.seal(document, &predecessors, &Body::EntryPoint)?;
        self.store_items(vec![blob])
    }

    fn seal(
        &self,
        document: DocumentId,
        predecessors: &[(Hash, SymmetricKey)],
        body: &Body,
    ) -> Result<Item, ReplicaError> {
        let reference = Hash(*SymmetricKey::random().expose());
        let plaintext = Zeroizing::new(encode(body));
        let (change, _key) = encrypt_change(
            self.cgka_of(&document)?,
            reference,
            predecessors,
            &plaintext,
        )?;
        Ok(Item::new(
            ItemKind::Blob,
            SubjectId(document.0),
            encode(&Blob::Change(change)),
        )?)
    }

    /// Writes `content` as a new change of `document` (encrypt, sign, store). Returns the
    /// content op hash. Content above [`INLINE_MAX`] is streamed in pieces.
    pub fn write(&mut self, document: DocumentId, content: &[u8]) -> Result<Hash, ReplicaError> {
        if content.len() > INLINE_MAX {
            return self.write_stream(document, content);
        }
        self.write_body(document, &Body::Inline(content.to_vec()))
    }

    /// Writes everything `reader` yields as one change, streamed in pieces with bounded memory.
    pub fn write_stream(
        &mut self,
        document: DocumentId,
        reader: impl Read,
    ) -> Result<Hash, ReplicaError> {
        self.prepare(document)?;
        let key = SymmetricKey::random();
        let mut sink = PieceSink {
            document,
            store: &self.store,
            buffer: Vec::with_capacity(PIECE_LEN),
            pieces: Vec::new(),
            error: None,
        };
        let length = encrypt_stream(&key, document.0.as_bytes(), reader, &mut sink)?;
        sink.finish()?;
        let pieces = std::mem::take(&mut sink.pieces);
        self.write_body(
            document,
            &Body::Stream {
                key: *key.expose(),
                pieces,
                length,
            },
        )
    }

    fn write_body(&mut self, document: DocumentId, body: &Body) -> Result<Hash, ReplicaError> {
        self.prepare(document)?;
        let predecessors = self.head_keys(document)?;
        let blob = self.seal(document, &predecessors, body)?;
        let op = self
            .checker
            .write(&self.device, document, blob.envelope())?;
        let op_item = super::op_item(&AnyVerified::Content(op.clone()))?;
        self.store_items(vec![blob, op_item])?;
        Ok(op.hash())
    }

    /// Keys of the current content heads this device can open (predecessors of a new change).
    fn head_keys(&self, document: DocumentId) -> Result<Vec<(Hash, SymmetricKey)>, ReplicaError> {
        let opened = self.open_all(document)?;
        let mut out = Vec::new();
        for head in self.checker.content_heads(&document.0) {
            if let Some((reference, o)) = self.change_of(&head, &opened) {
                out.push((reference, o.key.clone()));
            }
        }
        Ok(out)
    }

    fn encrypted_change(&self, op: &Hash) -> Option<EncryptedChange> {
        let AnyVerified::Content(c) = self.checker.op(op)? else {
            return None;
        };
        let item_hash = self.blobs.get(&c.body.payload_hash)?;
        let item = self.store.get(item_hash).ok()??;
        match decode_canonical::<Blob>(item.envelope(), MAX_ENVELOPE_LEN).ok()? {
            Blob::Change(change) => Some(change),
            Blob::Piece { .. } => None,
        }
    }

    fn change_of<'a>(
        &self,
        op: &Hash,
        opened: &'a HashMap<Hash, Opened>,
    ) -> Option<(Hash, &'a Opened)> {
        let change = self.encrypted_change(op)?;
        opened
            .get(&change.header.change)
            .map(|o| (change.header.change, o))
    }

    /// Decrypts every change of `document` this device can reach: those under an epoch it
    /// knows, then, through the keys they carry, their predecessors (REP-7). Linear in history.
    fn open_all(&self, document: DocumentId) -> Result<HashMap<Hash, Opened>, ReplicaError> {
        let Some(cgka) = self.cgkas.get(&document) else {
            return Ok(HashMap::new());
        };
        let mut changes: HashMap<Hash, EncryptedChange> = HashMap::new();
        for hash in self.store.hashes(&SubjectId(document.0))? {
            let Some(item) = self.store.get(&hash)? else {
                continue;
            };
            if item.kind() != ItemKind::Blob {
                continue;
            }
            if let Ok(Blob::Change(c)) = decode_canonical::<Blob>(item.envelope(), MAX_ENVELOPE_LEN)
                && c.header.document == document
            {
                changes.insert(c.header.change, c);
            }
        }
        let mut opened: HashMap<Hash, Opened> = HashMap::new();
        let mut known: HashMap<Hash, SymmetricKey> = HashMap::new();
        let mut queue = Vec::new();
        let record = |reference: Hash,
                      d: DecryptedChange,
                      opened: &mut HashMap<Hash, Opened>,
                      known: &mut HashMap<Hash, SymmetricKey>,
                      queue: &mut Vec<Hash>| {
            for (p, k) in &d.predecessors {
                if !known.contains_key(p) {
                    known.insert(*p, k.clone());
                    queue.push(*p);
                }
            }
            opened.insert(
                reference,
                Opened {
                    key: d.key,
                    body: d.content,
                },
            );
        };
        for (reference, change) in &changes {
            if let Ok(d) = decrypt_with_epoch(cgka, change) {
                record(*reference, d, &mut opened, &mut known, &mut queue);
            }
        }
        while let Some(reference) = queue.pop() {
            if opened.contains_key(&reference) {
                continue;
            }
            let (Some(change), Some(key)) = (changes.get(&reference), known.get(&reference)) else {
                continue;
            };
            if let Ok(d) = decrypt_with_key(&key.clone(), change) {
                record(reference, d, &mut opened, &mut known, &mut queue);
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
            let status = match self.checker.op_validity(&hash) {
                Some(Validity::Valid) => ChangeStatus::Valid,
                Some(Validity::Invalid(r)) => ChangeStatus::Invalid(r.to_string()),
                None => ChangeStatus::Invalid("unknown".into()),
            };
            let length = self
                .change_of(&hash, &opened)
                .and_then(|(_, o)| body_length(&o.body));
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
    fn content_in_causal_order(
        &self,
        document: DocumentId,
    ) -> Vec<&keyhive_core::signed::Verified<keyhive_core::capability::ContentOp>> {
        let ops: HashMap<Hash, _> = self
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
        let mut ready: std::collections::BTreeSet<Hash> = waiting
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
        let (_, o) = self
            .change_of(op, &opened)
            .ok_or_else(|| ReplicaError::NotSeated(document.to_string()))?;
        match decode_canonical::<Body>(&o.body, usize::MAX)? {
            Body::Inline(bytes) => {
                out.write_all(&bytes)?;
                Ok(bytes.len() as u64)
            }
            Body::Stream { key, pieces, .. } => {
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

fn body_length(body: &[u8]) -> Option<u64> {
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
    error: Option<ReplicaError>,
}

impl<S: Store> PieceSink<'_, S> {
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
        let stored = Item::new(ItemKind::Blob, SubjectId(self.document.0), encode(&blob))
            .map_err(ReplicaError::from)
            .and_then(|item| {
                self.store.put(std::slice::from_ref(&item))?;
                Ok(item.hash())
            });
        match stored {
            Ok(hash) => {
                self.pieces.push(hash);
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
            match decode_canonical::<Blob>(item.envelope(), MAX_ENVELOPE_LEN) {
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
