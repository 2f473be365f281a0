//! What the CLI stores in a document's changes: file content, or the document's metadata.
//!
//! A change's plaintext starts with one tag byte: `0` = file bytes follow; `1` = a postcard
//! [`Meta`] follows; `2` = a postcard [`MetaUpdate`] follows (REP-50). The first change of every
//! document the CLI creates is its `Meta`, so its name travels with it, encrypted, and every
//! reader refers to it by the same name; renames and removals travel the same way.

use std::io::{self, Write};

use keyhive_core::encoding::{decode_canonical, encode};
use keyhive_core::identity::DocumentId;
use serde::{Deserialize, Serialize};

/// Tag byte of a file change.
pub const FILE_TAG: u8 = 0;
/// Tag byte of a metadata change.
pub const META_TAG: u8 = 1;
/// Tag byte of a metadata update (rename or removal, REP-50).
pub const UPDATE_TAG: u8 = 2;
/// Most plaintext bytes of a metadata record (`Meta` or `MetaUpdate`) a reader decodes.
pub const MAX_RECORD: u64 = 4096;

/// Whether a document is a folder (other documents grant it access) or a plain document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaKind {
    /// A folder.
    Folder,
    /// A document.
    Document,
}

/// A document's metadata, stored encrypted as its first change. It comes from whoever wrote
/// that change: its name is checked before display or use on disk (REP-9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The shared name (for files pushed from a directory: the relative path).
    pub name: String,
    /// Folder or document.
    pub kind: MetaKind,
    /// The folder the creator meant the document for. Written for readers of older versions
    /// and never trusted: it is the document's own claim, and a folder's contents are decided
    /// by the capability graph alone (REP-8, `Replica::folder_documents`).
    pub folder: Option<DocumentId>,
    /// Whether a removal record applies (REP-51). Not encoded: computed from the history.
    #[serde(skip)]
    pub removed: bool,
}

/// REP-50: a later change to a document's metadata, written by a writer of the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaUpdate {
    /// The document's shared name is now `name` (REP-9 applies to it as to the first name).
    Rename {
        /// The new name.
        name: String,
    },
    /// The document is removed from its folder's tree (REP-51).
    Remove,
}

/// Encodes a metadata change.
pub fn encode_meta(meta: &Meta) -> Vec<u8> {
    let mut out = vec![META_TAG];
    out.extend_from_slice(&encode(meta));
    out
}

/// Decodes a metadata change, `None` if the bytes are not one.
pub fn decode_meta(bytes: &[u8]) -> Option<Meta> {
    match bytes.split_first() {
        Some((&META_TAG, rest)) => decode_canonical(rest, MAX_RECORD as usize).ok(),
        _ => None,
    }
}

/// Encodes a metadata update change (REP-50).
pub fn encode_update(update: &MetaUpdate) -> Vec<u8> {
    let mut out = vec![UPDATE_TAG];
    out.extend_from_slice(&encode(update));
    out
}

/// What a small change's plaintext holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// File bytes (tag 0).
    File,
    /// The document's metadata (tag 1).
    Meta(Meta),
    /// A metadata update (tag 2).
    Update(MetaUpdate),
    /// Anything else: a tag this version does not know, or a record that does not decode.
    Unknown,
}

/// Classifies the plaintext of a change (REP-50).
pub fn classify(bytes: &[u8]) -> Record {
    match bytes.split_first() {
        Some((&FILE_TAG, _)) => Record::File,
        Some((&META_TAG, _)) => decode_meta(bytes).map_or(Record::Unknown, Record::Meta),
        Some((&UPDATE_TAG, rest)) => {
            decode_canonical(rest, MAX_RECORD as usize).map_or(Record::Unknown, Record::Update)
        }
        _ => Record::Unknown,
    }
}

/// A writer that checks and strips the leading tag byte of a file change.
pub struct FileBody<W: Write> {
    inner: W,
    seen_tag: bool,
    /// True if the change turned out not to be a file change.
    pub not_a_file: bool,
}

impl<W: Write> FileBody<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        FileBody {
            inner,
            seen_tag: false,
            not_a_file: false,
        }
    }
}

impl<W: Write> Write for FileBody<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if !self.seen_tag {
            self.seen_tag = true;
            if buf[0] != FILE_TAG {
                self.not_a_file = true;
                return Err(io::Error::other("this change is not file content"));
            }
            self.inner.write_all(&buf[1..])?;
            return Ok(buf.len());
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
