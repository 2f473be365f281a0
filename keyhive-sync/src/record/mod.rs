//! Content records, version 1 (`specs/content.md`, REC-1..REC-6): how an app lays out the
//! plaintext of a document's changes so that any other app can read them.
//!
//! keyhive itself treats a change's plaintext as opaque bytes. This format gives them a
//! shape: the first byte names the record type, the rest is that record.
//!
//! - [`FILE_TAG`] (`0x00`): file bytes follow, as they are (REC-2). [`file_record`] builds
//!   one in memory; a large file is streamed as `[FILE_TAG]` followed by the file
//!   (`Replica::write_stream`), and read back through [`FileContent`].
//! - [`METADATA_TAG`] (`0x01`): a [`Metadata`] record follows: the document's name, whether it
//!   is a folder, and the folder its creator meant it for (REC-3). The first change of a
//!   document is its metadata record (REC-4); [`document_metadata`] finds it.
//!
//! - [`UPDATE_TAG`] (`0x02`): a [`MetadataUpdate`] follows: a rename or a removal (REC-7).
//!   [`DocumentHistory`] applies them to a document's metadata (REP-50, REP-51) and finds its
//!   concurrent versions (REP-52).
//!
//! - [`PROFILE_TAG`] (`0x03`): a [`GroupProfile`] follows: the shared name of a group, written
//!   to the group's profile document (REC-8). [`GroupProfiles`] finds every group's name from
//!   the profile documents a device reads, refusing those their writer may not name (REC-9,
//!   REC-10); [`create_profile`] and [`name_group`] write them.
//!
//! Every other first byte is a record type this version does not know: readers refuse it with
//! [`RecordError::UnknownType`] and skip the change (REC-5), so later versions add types
//! without breaking older readers.
//!
//! ```
//! use keyhive_sync::record::{Metadata, MetadataKind, Record};
//!
//! let meta = Metadata { name: "notes/todo.md".into(), kind: MetadataKind::Document, folder: None };
//! let bytes = meta.to_record();
//! assert_eq!(Record::decode(&bytes)?, Record::Metadata(meta));
//! assert_eq!(Record::decode(&[0, b'h', b'i'])?, Record::File(b"hi"));
//! # Ok::<(), keyhive_sync::record::RecordError>(())
//! ```

use keyhive_core::encoding::{DecodeError, decode_canonical, encode};
use keyhive_core::identity::DocumentId;
use serde::{Deserialize, Serialize};

use crate::replica::{ChangeStatus, Replica, ReplicaError};
use crate::store::Store;

mod file;
mod history;
mod profile;

pub use file::FileContent;
pub use history::{ChangeRecord, DocumentHistory, DocumentMetadata, HistoryChange, classify};
pub use profile::{
    GroupName, GroupProfile, GroupProfiles, ProfileError, ProfileReading, create_profile,
    name_group, read_profile,
};

/// REC-2: the type byte of a file record.
pub const FILE_TAG: u8 = 0;
/// REC-3: the type byte of a metadata record.
pub const METADATA_TAG: u8 = 1;
/// REC-7: the type byte of a metadata update record (a rename or a removal).
pub const UPDATE_TAG: u8 = 2;
/// REC-8: the type byte of a group profile record (a group's shared name).
pub const PROFILE_TAG: u8 = 3;
/// REC-3, REC-7, REC-8: most bytes of an encoded [`Metadata`] or [`MetadataUpdate`] (after the type
/// byte).
pub const MAX_METADATA_LEN: usize = 4096;

/// REC-3: whether a document is a folder (other documents grant it access) or a plain
/// document. Variant order is the wire tag: never reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataKind {
    /// A folder.
    Folder,
    /// A document.
    Document,
}

/// REC-3: a document's metadata. It is whatever the writer of its record wrote: its name is
/// untrusted input and must be checked before it is displayed or used as a path (REP-9).
/// Field order is the wire order: never reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The shared name (for files pushed from a directory: the relative path).
    pub name: String,
    /// Folder or document.
    pub kind: MetadataKind,
    /// The folder the creator meant the document for: the document's own claim, never
    /// trusted; a folder's contents are decided by the capability graph alone (REP-8).
    pub folder: Option<DocumentId>,
}

/// REC-7: a later change to a document's metadata, written by a writer of the document.
/// Variant order is the wire tag: never reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataUpdate {
    /// REP-50: the document's shared name is now `name` (untrusted, like every name: REP-9).
    Rename {
        /// The new name.
        name: String,
    },
    /// REP-51: the document is removed from its folder's tree.
    Remove,
}

impl MetadataUpdate {
    /// REC-7: the record bytes: `0x02 || postcard(MetadataUpdate)`.
    pub fn to_record(&self) -> Vec<u8> {
        let mut out = vec![UPDATE_TAG];
        out.extend_from_slice(&encode(self));
        out
    }
}

/// A decoded record (REC-1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    /// REC-2: file content.
    File(&'a [u8]),
    /// REC-3: document metadata.
    Metadata(Metadata),
    /// REC-7: a rename or a removal.
    Update(MetadataUpdate),
    /// REC-8: a group's shared name.
    Profile(GroupProfile),
}

/// Why a change's plaintext is not a record of this version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// REC-1: the plaintext is empty (it has no type byte).
    #[error("the change is empty: no record type")]
    Empty,
    /// REC-5: a record type this version does not know.
    #[error("unknown record type {0:#04x}")]
    UnknownType(u8),
    /// REC-3: a metadata record whose body does not decode canonically, or is too long.
    #[error("malformed metadata record")]
    Metadata(#[source] DecodeError),
    /// REC-7: a metadata update record whose body does not decode canonically, or is too
    /// long.
    #[error("malformed metadata update record")]
    Update(#[source] DecodeError),
    /// REC-8: a group profile record whose body does not decode canonically, or is too long.
    #[error("malformed group profile record")]
    Profile(#[source] DecodeError),
    /// REC-2: a file was expected and the change is another record type.
    #[error("the change is not a file record (type {0:#04x})")]
    NotAFile(u8),
    /// REC-3: metadata was expected and the change is another record type.
    #[error("the change is not a metadata record (type {0:#04x})")]
    NotMetadata(u8),
}

impl Record<'_> {
    /// REC-1: decodes a change's plaintext.
    pub fn decode(bytes: &[u8]) -> Result<Record<'_>, RecordError> {
        match bytes.split_first() {
            None => Err(RecordError::Empty),
            Some((&FILE_TAG, rest)) => Ok(Record::File(rest)),
            Some((&METADATA_TAG, rest)) => Metadata::decode_body(rest).map(Record::Metadata),
            Some((&UPDATE_TAG, rest)) => decode_canonical(rest, MAX_METADATA_LEN)
                .map(Record::Update)
                .map_err(RecordError::Update),
            Some((&PROFILE_TAG, rest)) => decode_canonical(rest, MAX_METADATA_LEN)
                .map(Record::Profile)
                .map_err(RecordError::Profile),
            Some((&other, _)) => Err(RecordError::UnknownType(other)),
        }
    }
}

impl Metadata {
    /// REC-3: the record bytes: `0x01 || postcard(Metadata)`.
    pub fn to_record(&self) -> Vec<u8> {
        let mut out = vec![METADATA_TAG];
        out.extend_from_slice(&encode(self));
        out
    }

    /// REC-3: decodes a metadata record (type byte included).
    pub fn from_record(bytes: &[u8]) -> Result<Metadata, RecordError> {
        match Record::decode(bytes)? {
            Record::Metadata(meta) => Ok(meta),
            Record::File(_) => Err(RecordError::NotMetadata(FILE_TAG)),
            Record::Update(_) => Err(RecordError::NotMetadata(UPDATE_TAG)),
            Record::Profile(_) => Err(RecordError::NotMetadata(PROFILE_TAG)),
        }
    }

    fn decode_body(body: &[u8]) -> Result<Metadata, RecordError> {
        decode_canonical(body, MAX_METADATA_LEN).map_err(RecordError::Metadata)
    }
}

/// REC-2: a file record holding `content`.
pub fn file_record(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + content.len());
    out.push(FILE_TAG);
    out.extend_from_slice(content);
    out
}

/// REC-4: the metadata of `document` as this device sees it: the first valid change it can
/// read, in `Replica::changes` order, if that change is a metadata record. `None` when there
/// is no such change, or it is not a metadata record (too long, another type, malformed).
pub fn document_metadata<S: Store>(
    replica: &Replica<S>,
    document: DocumentId,
) -> Result<Option<Metadata>, ReplicaError> {
    let first = replica
        .changes(document)?
        .into_iter()
        .find(|c| c.status == ChangeStatus::Valid && c.length.is_some());
    let Some(first) = first else {
        return Ok(None);
    };
    if first
        .length
        .is_some_and(|l| l > (1 + MAX_METADATA_LEN) as u64)
    {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    replica.read_change(document, &first.op, &mut bytes)?;
    Ok(Metadata::from_record(&bytes).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyhive_core::crypto::signing::PublicKey;

    #[test]
    fn records_round_trip_and_unknown_types_are_refused() {
        let meta = Metadata {
            name: "a".into(),
            kind: MetadataKind::Folder,
            folder: Some(DocumentId(PublicKey([7; 32]))),
        };
        let bytes = meta.to_record();
        assert_eq!(Metadata::from_record(&bytes), Ok(meta));
        assert_eq!(Record::decode(&[]), Err(RecordError::Empty));
        assert_eq!(Record::decode(&[4, 0]), Err(RecordError::UnknownType(4)));
        let rename = MetadataUpdate::Rename { name: "b".into() };
        assert_eq!(
            Record::decode(&rename.to_record()),
            Ok(Record::Update(rename))
        );
        assert!(matches!(
            Record::decode(&[UPDATE_TAG, 2]),
            Err(RecordError::Update(DecodeError::Malformed(_)))
        ));
        assert_eq!(
            Metadata::from_record(&file_record(b"x")),
            Err(RecordError::NotMetadata(FILE_TAG))
        );
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            Record::decode(&trailing),
            Err(RecordError::Metadata(DecodeError::TrailingBytes(1)))
        ));
    }
}
