//! REC-2: reading a change as a file, refusing every other record type before a byte of it
//! is passed on.

use std::io::{self, Write};

use super::{FILE_TAG, RecordError};

/// REC-2: a writer for `Replica::read_change` that checks the type byte of a file record and
/// passes the file bytes on to `inner`. Any other record type fails the read with
/// [`RecordError::NotAFile`] (inside the `io::Error`) before a byte reaches `inner`.
#[derive(Debug)]
pub struct FileContent<W: Write> {
    inner: W,
    seen_tag: bool,
}

impl<W: Write> FileContent<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        FileContent {
            inner,
            seen_tag: false,
        }
    }

    /// The wrapped writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for FileContent<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some((&first, rest)) = buf.split_first() else {
            return Ok(0);
        };
        if self.seen_tag {
            return self.inner.write(buf);
        }
        if first != FILE_TAG {
            return Err(io::Error::other(RecordError::NotAFile(first)));
        }
        self.seen_tag = true;
        self.inner.write_all(rest)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{METADATA_TAG, file_record};

    #[test]
    fn file_content_strips_the_type_byte_and_refuses_other_records() {
        let mut out = FileContent::new(Vec::new());
        out.write_all(&file_record(b"hello")).expect("a file");
        out.write_all(b" world").expect("more file bytes");
        assert_eq!(out.into_inner(), b"hello world");
        let mut meta = FileContent::new(Vec::new());
        let err = meta.write_all(&[METADATA_TAG, 0]).expect_err("not a file");
        assert!(matches!(
            err.get_ref().and_then(|e| e.downcast_ref::<RecordError>()),
            Some(RecordError::NotAFile(METADATA_TAG))
        ));
        assert!(meta.into_inner().is_empty());
    }
}
