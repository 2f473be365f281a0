//! What the CLI stores in a document's changes: file content, or the document's metadata.
//!
//! The layout is the library's content record format (`keyhive_sync::record`,
//! `specs/content.md`): one type byte, `0` = file bytes follow; `1` = a [`Meta`] record follows.
//! The first change of every document the CLI creates is its `Meta`, so its name travels with
//! it, encrypted, and every reader refers to it by the same name.

use std::io::{self, Write};

/// The library's content records (`specs/content.md`, REC-1..REC-6) under the CLI's names.
pub use keyhive_sync::record::{FILE_TAG, Metadata as Meta, MetadataKind as MetaKind};

/// Encodes a metadata change (REC-3).
pub fn encode_meta(meta: &Meta) -> Vec<u8> {
    meta.to_record()
}

/// Decodes a metadata change, `None` if the bytes are not one (REC-3).
pub fn decode_meta(bytes: &[u8]) -> Option<Meta> {
    Meta::from_record(bytes).ok()
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
