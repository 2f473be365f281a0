//! Wire types of ciphertext items (`specs/replica.md` §1, REP-20..REP-22).
//!
//! Every blob starts with its own domain tag (ENC-4), so its bytes can never be taken for an op
//! (or an op's bytes for a blob): an item's kind is a function of its bytes (ADM-1).
//!
//! - [`Blob::Change`]: an encrypted change. It is admitted only when a held content op names it
//!   (`payload_hash = Hash::of_content(blob bytes)`, REP-20), so nobody but the op's author can
//!   supply or replace a change's ciphertext. It lists, in the clear, the item hashes of the
//!   pieces of a streamed change (they are ciphertext addresses; a relay sees the pieces anyway).
//! - [`Blob::Piece`]: up to `PIECE_LEN` bytes of a streamed ciphertext, admitted only when a held
//!   change lists its item hash (REP-21).
//! - [`EntryPoint`]: a signed, content-free change carrying predecessor keys for members seated
//!   later (REP-5), admitted only when its publisher holds `read` on the document (REP-22).

use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::encoding::{DecodeError, SignedPayload, decode_tagged, encode_tagged};
use keyhive_core::encryption::EncryptedChange;
use keyhive_core::identity::DocumentId;
use keyhive_core::signed::Signable;
use serde::{Deserialize, Serialize};

use crate::item::MAX_ENVELOPE_LEN;

/// An unsigned ciphertext item. Variant order is the wire tag: never reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Blob {
    /// REP-20: the ciphertext named by a content op.
    Change {
        /// The encrypted change.
        change: EncryptedChange,
        /// REP-21: item hashes of the pieces of a streamed change, in order (empty if inline).
        pieces: Vec<Hash>,
    },
    /// REP-21: one piece of a streamed ciphertext.
    Piece {
        /// The document.
        document: DocumentId,
        /// Position in the stream.
        index: u32,
        /// Ciphertext bytes.
        #[serde(with = "keyhive_core::encoding::byte_vec")]
        bytes: Vec<u8>,
    },
}

impl SignedPayload for Blob {
    const TAG: &'static str = "keyhive/blob";
    const VERSION: u8 = 1;
    const MAX_LEN: usize = MAX_ENVELOPE_LEN;
}

impl Blob {
    /// The canonical tagged bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_tagged(self)
    }

    /// Decodes canonical tagged bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_tagged(bytes)
    }

    /// The document the blob belongs to.
    pub fn document(&self) -> DocumentId {
        match self {
            Blob::Change { change, .. } => change.header.document,
            Blob::Piece { document, .. } => *document,
        }
    }
}

/// REP-5/REP-22: a content-free change that hands the keys of the current heads to members
/// seated later, signed by the device that seated them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryPoint {
    /// The publishing device (the signer).
    pub publisher: PublicKey,
    /// The encrypted change (its body is empty; its predecessors carry the keys).
    pub change: EncryptedChange,
}

impl SignedPayload for EntryPoint {
    const TAG: &'static str = "keyhive/entry-point";
    const VERSION: u8 = 1;
    const MAX_LEN: usize = MAX_ENVELOPE_LEN - keyhive_core::signed::SIGNATURE_LEN;
}

impl Signable for EntryPoint {
    fn signer(&self) -> &PublicKey {
        &self.publisher
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyhive_core::encoding::peek_tag;

    #[test]
    fn blob_bytes_carry_their_own_tag() {
        let piece = Blob::Piece {
            document: DocumentId(PublicKey([1; 32])),
            index: 0,
            bytes: vec![9; 80],
        };
        let bytes = piece.to_bytes();
        assert_eq!(peek_tag(&bytes), Some(Blob::TAG));
        assert_eq!(Blob::from_bytes(&bytes), Ok(piece));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(Blob::from_bytes(&trailing).is_err());
    }
}
