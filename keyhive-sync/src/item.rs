//! The unit of sync: an opaque signed envelope with its kind and subject (`specs/sync.md` §2).
//!
//! The sync layer never interprets an envelope beyond its size (SYNC-2) and its wire form
//! (SYNC-110: auth and content ops travel without the tag, version and subject the framing
//! carries, and are expanded on arrival); the content address is always recomputed locally from
//! the exact signed bytes (SYNC-3) and never taken from the wire.

use core::fmt;
use std::borrow::Cow;

use keyhive_core::Hash;
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::{DocumentId, GroupId};
use keyhive_core::signed::SIGNATURE_LEN;
use keyhive_core::wire_form::{self, CompactKind, WireFormError};
use serde::{Deserialize, Serialize};

/// SYNC-2: largest envelope (payload + signature) the sync layer moves or stores.
pub const MAX_ENVELOPE_LEN: usize = 256 * 1024;

/// What an item is. Declaration order is the wire tag: never reorder (ENC rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ItemKind {
    /// A signed auth op (delegation, revocation, genesis): plaintext, the relay reads it.
    Auth,
    /// A CGKA op: public keys and ciphertext.
    Cgka,
    /// A content op: ciphertext with a signed header.
    Content,
    /// An encrypted blob chunk belonging to a document.
    Blob,
}

impl ItemKind {
    /// The one-byte code used by storage backends (same as the postcard tag).
    pub fn code(self) -> u8 {
        match self {
            ItemKind::Auth => 0,
            ItemKind::Cgka => 1,
            ItemKind::Content => 2,
            ItemKind::Blob => 3,
        }
    }

    /// SYNC-110: the ops that travel compact in items of this kind (auth ops in `Auth` items,
    /// content ops in `Content` items); `None` for `Cgka` and `Blob`.
    pub fn compact_kind(self) -> Option<CompactKind> {
        match self {
            ItemKind::Auth => Some(CompactKind::Auth),
            ItemKind::Content => Some(CompactKind::Content),
            ItemKind::Cgka | ItemKind::Blob => None,
        }
    }

    /// Inverse of [`ItemKind::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(ItemKind::Auth),
            1 => Some(ItemKind::Cgka),
            2 => Some(ItemKind::Content),
            3 => Some(ItemKind::Blob),
            _ => None,
        }
    }
}

/// The group or document an item belongs to: the subject's self-certifying public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SubjectId(pub PublicKey);

impl SubjectId {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }
}

impl From<DocumentId> for SubjectId {
    fn from(id: DocumentId) -> Self {
        SubjectId(id.0)
    }
}

impl From<GroupId> for SubjectId {
    fn from(id: GroupId) -> Self {
        SubjectId(id.0)
    }
}

impl fmt::Display for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectId({})", self.0)
    }
}

/// An item as it travels on the wire (and rests in a store): no hash (the receiver computes
/// it, SYNC-3), and the envelope in its wire form (SYNC-110).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireItem {
    /// What the envelope is.
    pub kind: ItemKind,
    /// The subject it belongs to.
    pub subject: SubjectId,
    /// The envelope's wire form: the signed bytes, or for an auth or content op of a compact
    /// version, those bytes without the tag, the version and the subject (SYNC-110).
    pub envelope: Vec<u8>,
}

/// Why bytes were not accepted as an item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ItemError {
    /// SYNC-2: the envelope is shorter than a signature.
    #[error("envelope of {0} bytes is shorter than a signature")]
    TooShort(usize),
    /// SYNC-2: the envelope is larger than [`MAX_ENVELOPE_LEN`].
    #[error("envelope of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Envelope length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// SYNC-110: the wire envelope has no signed form (a full-form op of a compact version, or
    /// a malformed compact envelope).
    #[error("wire envelope refused")]
    WireForm(#[from] WireFormError),
}

/// A stored or received item with its locally computed content address.
#[derive(Clone, PartialEq, Eq)]
pub struct Item {
    kind: ItemKind,
    subject: SubjectId,
    envelope: Vec<u8>,
    hash: Hash,
}

impl Item {
    /// Builds an item from its signed (expanded) envelope, checking SYNC-2 and SYNC-110 (no
    /// compact code as the first byte) and computing the hash (SYNC-3).
    pub fn new(kind: ItemKind, subject: SubjectId, envelope: Vec<u8>) -> Result<Self, ItemError> {
        Item::check(kind, &envelope)?;
        let hash = Hash::of_signed(&envelope);
        Ok(Item {
            kind,
            subject,
            envelope,
            hash,
        })
    }

    /// As [`Item::new`] for the envelope of an op this device just signed or verified, whose
    /// `hash` (`Verified::hash`) is `Hash::of_signed` of exactly these bytes (ENC-5): the same
    /// checks, without hashing the bytes again.
    pub(crate) fn of_verified(
        kind: ItemKind,
        subject: SubjectId,
        envelope: Vec<u8>,
        hash: Hash,
    ) -> Result<Self, ItemError> {
        Item::check(kind, &envelope)?;
        debug_assert_eq!(hash, Hash::of_signed(&envelope), "a verified op's hash");
        Ok(Item {
            kind,
            subject,
            envelope,
            hash,
        })
    }

    /// SYNC-2 and SYNC-110 (no compact code as the first byte).
    fn check(kind: ItemKind, envelope: &[u8]) -> Result<(), ItemError> {
        if envelope.len() < SIGNATURE_LEN {
            return Err(ItemError::TooShort(envelope.len()));
        }
        if envelope.len() > MAX_ENVELOPE_LEN {
            return Err(ItemError::TooLarge {
                len: envelope.len(),
                max: MAX_ENVELOPE_LEN,
            });
        }
        // SYNC-110: one wire form per item.
        if let Some(compact) = kind.compact_kind() {
            wire_form::check_signed_form(envelope, compact)?;
        }
        Ok(())
    }

    /// Accepts an item from the wire or a store: expands its envelope to the signed bytes with
    /// the item's subject (SYNC-110), then the checks of [`Item::new`].
    pub fn from_wire(wire: WireItem) -> Result<Self, ItemError> {
        let envelope = match wire.kind.compact_kind() {
            Some(kind) => match wire_form::expand(&wire.envelope, &wire.subject.0, kind)? {
                Cow::Borrowed(_) => wire.envelope,
                Cow::Owned(full) => full,
            },
            None => wire.envelope,
        };
        Item::new(wire.kind, wire.subject, envelope)
    }

    /// The wire form (SYNC-110).
    pub fn to_wire(&self) -> WireItem {
        WireItem {
            kind: self.kind,
            subject: self.subject,
            envelope: self.wire_envelope().into_owned(),
        }
    }

    /// Consumes the item into its wire form (SYNC-110).
    pub fn into_wire(self) -> WireItem {
        let envelope = match self.kind.compact_kind() {
            Some(kind) => match wire_form::compact(&self.envelope, &self.subject.0, kind) {
                Cow::Borrowed(_) => self.envelope,
                Cow::Owned(compact) => compact,
            },
            None => self.envelope,
        };
        WireItem {
            kind: self.kind,
            subject: self.subject,
            envelope,
        }
    }

    /// The envelope as it travels and is stored (SYNC-110): what the wire and storage bytes
    /// of an item count.
    pub fn wire_envelope(&self) -> Cow<'_, [u8]> {
        match self.kind.compact_kind() {
            Some(kind) => wire_form::compact(&self.envelope, &self.subject.0, kind),
            None => Cow::Borrowed(&self.envelope),
        }
    }

    /// The length of [`Item::wire_envelope`], without building it.
    pub fn wire_len(&self) -> usize {
        match self.kind.compact_kind() {
            Some(kind) => wire_form::compact_len(&self.envelope, &self.subject.0, kind),
            None => self.envelope.len(),
        }
    }

    /// The item's kind.
    pub fn kind(&self) -> ItemKind {
        self.kind
    }

    /// The subject the item belongs to.
    pub fn subject(&self) -> SubjectId {
        self.subject
    }

    /// The exact signed envelope bytes (expanded, SYNC-110): what is decoded, verified and
    /// hashed.
    pub fn envelope(&self) -> &[u8] {
        &self.envelope
    }

    /// The content address: `Hash::of_signed(envelope)` (ENC-5).
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// The envelope's payload, without the trailing signature.
    pub fn payload(&self) -> &[u8] {
        // `new` guarantees len >= SIGNATURE_LEN.
        &self.envelope[..self.envelope.len() - SIGNATURE_LEN]
    }

    /// The envelope's trailing 64-byte signature.
    pub fn signature(&self) -> [u8; SIGNATURE_LEN] {
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(&self.envelope[self.envelope.len() - SIGNATURE_LEN..]);
        out
    }
}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Item")
            .field("kind", &self.kind)
            .field("subject", &self.subject)
            .field("hash", &self.hash)
            .field("len", &self.envelope.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_limits_and_hash() {
        let subject = SubjectId(PublicKey([1; 32]));
        assert_eq!(
            Item::new(ItemKind::Auth, subject, vec![0; 10]),
            Err(ItemError::TooShort(10))
        );
        assert!(matches!(
            Item::new(ItemKind::Auth, subject, vec![0; MAX_ENVELOPE_LEN + 1]),
            Err(ItemError::TooLarge { .. })
        ));
        let item = Item::new(ItemKind::Blob, subject, vec![7; 100]).expect("valid");
        assert_eq!(item.hash(), Hash::of_signed(&[7; 100]));
        assert_eq!(item.payload().len(), 36);
        for k in [
            ItemKind::Auth,
            ItemKind::Cgka,
            ItemKind::Content,
            ItemKind::Blob,
        ] {
            assert_eq!(ItemKind::from_code(k.code()), Some(k));
            assert_eq!(keyhive_core::encoding::encode(&k), vec![k.code()]);
        }
    }
}
