//! RELAY-8 (`specs/replica.md`): the relay's start snapshot, and the journal it is written from.
//!
//! The snapshot lists what the relay admitted *and stored*, in the order it admitted it:
//! ops, contact cards, key-agreement ops and entry points whole (small, signed plaintext), and
//! for ciphertext only what admission keeps of it (a change's item hash, the content hash of
//! its bytes and the pieces it lists; a piece's item hash). Replaying it rebuilds the
//! admission state without reading the store's items, without checking a signature, and
//! without reading any ciphertext. Format (`FORMAT_VERSION` 1):
//!
//! ```text
//! snapshot = MAGIC (8 bytes) || FORMAT_VERSION (1 byte) || postcard(Vec<Entry>) || tag (32)
//! tag      = BLAKE3 keyed with the relay's snapshot key over everything before it
//! ```
//!
//! The tag is checked before anything is decoded, so damaged bytes, bytes of another relay
//! identity or of another format are a typed [`SnapshotError`], never a panic, and the relay
//! then replays its whole store as before.

use std::collections::HashMap;

use keyhive_core::Hash;
use keyhive_core::capability::AnyVerified;
use serde::{Deserialize, Serialize};

use crate::admission::{Admission, Envelope, classify};
use crate::blob::Blob;
use crate::item::{Item, ItemKind, SubjectId};
use crate::store::MarkKey;

/// Leading bytes of every relay snapshot.
const MAGIC: [u8; 8] = *b"KHRELAYS";

/// RELAY-8: the snapshot format this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Length of the authentication tag that ends a snapshot.
const TAG_LEN: usize = 32;

/// RELAY-8: a periodic snapshot is written once at least this many items were stored since
/// the last one, and at least a quarter of what the last one held, so writing snapshots costs
/// a bounded amount of work per stored item.
pub const SNAPSHOT_EVERY: usize = 1_024;

/// RELAY-8: why a snapshot found in the store was not used (the whole store is replayed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Shorter than its header and tag.
    #[error("the relay snapshot is truncated")]
    Truncated,
    /// Does not start with the snapshot magic.
    #[error("the stored bytes are not a relay snapshot")]
    NotASnapshot,
    /// Written in a format this build does not read.
    #[error("relay snapshot format {0} (this build reads format {FORMAT_VERSION})")]
    Version(u8),
    /// The tag does not verify: the bytes were damaged or another relay identity wrote them.
    #[error("the relay snapshot's tag does not verify (damaged, or another relay's)")]
    Tag,
    /// The tag verifies but the body does not decode (a bug of the writer).
    #[error("the relay snapshot does not decode")]
    Decode,
    /// The store failed to read the snapshot (its items may still be readable).
    #[error("the relay snapshot cannot be read from the store")]
    Unreadable,
    /// The snapshot names items the store does not hold (another store's snapshot, or items
    /// lost since): it does not describe this store.
    #[error("the relay snapshot names items the store does not hold")]
    NotInStore,
}

/// One admitted item as the snapshot keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Entry {
    /// An op, contact card, key-agreement op or entry point: its whole item.
    Item {
        /// The item's kind.
        kind: ItemKind,
        /// The item's subject.
        subject: SubjectId,
        /// The item's bytes.
        #[serde(with = "keyhive_core::encoding::byte_vec")]
        envelope: Vec<u8>,
    },
    /// A change (REP-20, REP-21): what admission needs of it, not its ciphertext.
    Change {
        /// The document.
        subject: SubjectId,
        /// The item's content address.
        hash: Hash,
        /// `Hash::of_content` of its bytes, which a held content op must name.
        content: Hash,
        /// The pieces it lists.
        pieces: Vec<Hash>,
    },
    /// A piece (REP-21): its content address only.
    Piece {
        /// The document.
        subject: SubjectId,
        /// The item's content address.
        hash: Hash,
    },
}

/// What the journal keeps of one admitted item: ops by hash only (the checker holds their
/// bytes), everything else as its snapshot entry.
#[derive(Debug)]
enum Record {
    Op(Hash),
    Entry(Entry),
}

/// Everything the relay admitted, in admission order, with whether it is stored yet.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    records: Vec<(Record, bool)>,
    at: HashMap<Hash, usize>,
    /// Entries stored since the last snapshot was written.
    fresh: usize,
    /// Entries the last snapshot held.
    last: usize,
}

impl Journal {
    /// Records an item just admitted (`op` if it went to the capability checker); `stored`
    /// if it is known to be in the store already.
    pub(crate) fn admitted(&mut self, item: &Item, op: bool, stored: bool) {
        let hash = item.hash();
        if self.at.contains_key(&hash) {
            return;
        }
        let record = if op {
            Record::Op(hash)
        } else {
            Record::Entry(entry_of(item))
        };
        self.at.insert(hash, self.records.len());
        self.records.push((record, stored));
        self.fresh += usize::from(stored);
    }

    /// Records an entry restored from a snapshot (it is stored: the load checked).
    pub(crate) fn restored(&mut self, hash: Hash, entry: Entry, op: bool) {
        if self.at.contains_key(&hash) {
            return;
        }
        let record = if op {
            Record::Op(hash)
        } else {
            Record::Entry(entry)
        };
        self.at.insert(hash, self.records.len());
        self.records.push((record, true));
    }

    /// These items are now in the store.
    pub(crate) fn stored(&mut self, hashes: impl IntoIterator<Item = Hash>) {
        for hash in hashes {
            if let Some(&i) = self.at.get(&hash)
                && let Some((_, stored)) = self.records.get_mut(i)
                && !*stored
            {
                *stored = true;
                self.fresh += 1;
            }
        }
    }

    /// Whether enough was stored since the last snapshot to write another one.
    pub(crate) fn due(&self) -> bool {
        self.fresh >= SNAPSHOT_EVERY.max(self.last / 4)
    }

    /// Whether anything was stored since the last snapshot.
    pub(crate) fn changed(&self) -> bool {
        self.fresh > 0
    }

    /// The snapshot of every stored entry, in admission order, tagged with `key`; counts it
    /// as written.
    pub(crate) fn snapshot(&mut self, admission: &Admission, key: &MarkKey) -> Vec<u8> {
        let mut entries: Vec<Entry> = Vec::with_capacity(self.records.len());
        for (record, stored) in &self.records {
            if !*stored {
                continue;
            }
            match record {
                Record::Op(hash) => {
                    if let Some(op) = admission.checker.op(hash) {
                        entries.push(op_entry(op));
                    }
                }
                Record::Entry(entry) => entries.push(entry.clone()),
            }
        }
        self.last = entries.len();
        self.fresh = 0;
        encode(&entries, key)
    }
}

fn op_entry(op: &AnyVerified) -> Entry {
    let kind = match op {
        AnyVerified::Content(_) => ItemKind::Content,
        _ => ItemKind::Auth,
    };
    Entry::Item {
        kind,
        subject: SubjectId(op.subject()),
        envelope: op.as_bytes().to_vec(),
    }
}

/// The entry of an admitted item.
pub(crate) fn entry_of(item: &Item) -> Entry {
    if item.kind() == ItemKind::Blob {
        match classify(item) {
            Ok(Envelope::Blob(Blob::Change { pieces, .. })) => {
                return Entry::Change {
                    subject: item.subject(),
                    hash: item.hash(),
                    content: Hash::of_content(item.envelope()),
                    pieces,
                };
            }
            Ok(Envelope::Blob(Blob::Piece { .. })) => {
                return Entry::Piece {
                    subject: item.subject(),
                    hash: item.hash(),
                };
            }
            _ => {}
        }
    }
    Entry::Item {
        kind: item.kind(),
        subject: item.subject(),
        envelope: item.envelope().to_vec(),
    }
}

/// RELAY-8: `MAGIC || FORMAT_VERSION || postcard(entries) || tag`.
pub(crate) fn encode(entries: &[Entry], key: &MarkKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 1 + TAG_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    match postcard::to_extend(entries, out) {
        Ok(mut out) => match key.snapshot_tag(&out) {
            Some(tag) => {
                out.extend_from_slice(&tag);
                out
            }
            // A device's key tags no snapshot; an empty one would be refused on load.
            None => Vec::new(),
        },
        // Serialising into a Vec cannot fail; an empty snapshot would be refused on load.
        Err(_) => Vec::new(),
    }
}

/// RELAY-8: the entries of a snapshot this relay wrote; anything else is a typed error. The
/// tag is checked before the body is decoded.
pub(crate) fn decode(bytes: &[u8], key: &MarkKey) -> Result<Vec<Entry>, SnapshotError> {
    if bytes.len() < MAGIC.len() + 1 + TAG_LEN {
        return Err(SnapshotError::Truncated);
    }
    if bytes[..MAGIC.len()] != MAGIC {
        return Err(SnapshotError::NotASnapshot);
    }
    let version = bytes[MAGIC.len()];
    if version != FORMAT_VERSION {
        return Err(SnapshotError::Version(version));
    }
    let (signed, tag) = bytes.split_at(bytes.len() - TAG_LEN);
    let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| SnapshotError::Truncated)?;
    if !key.snapshot_tag_holds(signed, &tag) {
        return Err(SnapshotError::Tag);
    }
    match postcard::take_from_bytes::<Vec<Entry>>(&signed[MAGIC.len() + 1..]) {
        Ok((entries, [])) => Ok(entries),
        _ => Err(SnapshotError::Decode),
    }
}

#[cfg(test)]
mod tests {
    use keyhive_core::crypto::signing::SigningKey;

    use super::*;

    fn key(seed: u8) -> MarkKey {
        MarkKey::from_identity(&SigningKey::from_seed(&[seed; 32]))
    }

    fn sample() -> Vec<Entry> {
        vec![
            Entry::Piece {
                subject: SubjectId(keyhive_core::crypto::signing::PublicKey([3; 32])),
                hash: Hash([4; 32]),
            },
            Entry::Change {
                subject: SubjectId(keyhive_core::crypto::signing::PublicKey([3; 32])),
                hash: Hash([5; 32]),
                content: Hash([6; 32]),
                pieces: vec![Hash([4; 32])],
            },
        ]
    }

    /// RELAY-8: a snapshot decodes only under the key that wrote it; every damaged byte,
    /// every truncation and another format version are typed errors, never a panic.
    #[test]
    fn only_the_writers_intact_snapshot_decodes() {
        let bytes = encode(&sample(), &key(1));
        let back = decode(&bytes, &key(1)).unwrap();
        assert_eq!(format!("{back:?}"), format!("{:?}", sample()));
        assert_eq!(decode(&bytes, &key(2)).unwrap_err(), SnapshotError::Tag);
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x40;
            let expected = if i < MAGIC.len() {
                SnapshotError::NotASnapshot
            } else if i == MAGIC.len() {
                SnapshotError::Version(FORMAT_VERSION ^ 0x40)
            } else {
                SnapshotError::Tag
            };
            assert_eq!(decode(&damaged, &key(1)).unwrap_err(), expected, "byte {i}");
        }
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len], &key(1)).is_err(), "length {len}");
        }
    }
}
