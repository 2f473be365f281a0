//! Which ciphertext items the held ops name (REP-20, REP-21).

use std::collections::HashSet;

use keyhive_core::crypto::hash::Hash;

/// The ciphertext a replica or relay may admit: change blobs named by held content ops and
/// pieces listed by held changes. Grows with the ops; rebuilt by replaying the store.
#[derive(Debug, Default)]
pub struct BlobIndex {
    /// `payload_hash` (`Hash::of_content`) of every held content op.
    named_changes: HashSet<Hash>,
    /// Item hashes of the pieces every held change lists.
    listed_pieces: HashSet<Hash>,
}

impl BlobIndex {
    /// REP-20: a held content op names a change whose bytes hash to `payload_hash`.
    pub(crate) fn name_change(&mut self, payload_hash: Hash) {
        self.named_changes.insert(payload_hash);
    }

    /// REP-21: a held change lists these pieces.
    pub(crate) fn list_pieces(&mut self, pieces: &[Hash]) {
        self.listed_pieces.extend(pieces.iter().copied());
    }

    /// Whether a held content op names a change with these bytes.
    pub(crate) fn is_named(&self, blob_bytes: &[u8]) -> bool {
        self.named_changes.contains(&Hash::of_content(blob_bytes))
    }

    /// Whether a held content op names a change whose bytes hash to `payload_hash`.
    pub(crate) fn names(&self, payload_hash: &Hash) -> bool {
        self.named_changes.contains(payload_hash)
    }

    /// Whether a held change lists the piece item with this hash.
    pub(crate) fn is_listed(&self, piece_item: &Hash) -> bool {
        self.listed_pieces.contains(piece_item)
    }
}
