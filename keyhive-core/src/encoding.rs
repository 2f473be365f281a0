//! Canonical postcard encoding (`specs/encoding.md` §1).
//!
//! postcard alone is not canonical: it accepts overlong varints and ignores trailing bytes.
//! Every decoder here therefore (ENC-1) refuses input over a size limit before parsing,
//! (ENC-2) requires that the value consumes every byte, and (ENC-3) re-encodes the value and
//! requires byte equality with the input, which rejects every non-canonical form.
//! Signed payloads additionally start with a domain tag and a format version (ENC-4).

use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod byte_vec;

/// Why bytes could not be decoded into a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// ENC-1: the input is larger than this type may ever be.
    #[error("input of {len} bytes exceeds the {max}-byte limit")]
    Oversize {
        /// Input length.
        len: usize,
        /// Limit for this type.
        max: usize,
    },
    /// The bytes do not parse as the expected type (truncated, bad tag, invalid UTF-8...).
    #[error("malformed encoding: {0}")]
    Malformed(postcard::Error),
    /// ENC-2: bytes are left over after the value.
    #[error("{0} trailing byte(s) after the value")]
    TrailingBytes(usize),
    /// ENC-3: the value parses but is not in its unique canonical form (e.g. an overlong varint).
    #[error("non-canonical encoding")]
    NonCanonical,
    /// ENC-4: the payload carries another type's domain tag.
    #[error("wrong domain tag: expected {expected:?}")]
    WrongTag {
        /// The tag this decoder accepts.
        expected: &'static str,
    },
    /// ENC-4: the payload's format version is not one this implementation reads.
    #[error("unsupported format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version found in the input.
        found: u8,
        /// Version this build reads.
        supported: u8,
    },
    /// The value decodes canonically but breaks a structural rule of its type (e.g. ENC-9).
    #[error("invalid structure: {0}")]
    InvalidStructure(&'static str),
    /// A signed envelope is shorter than its 64-byte signature.
    #[error("envelope is truncated: shorter than a signature")]
    Truncated,
}

/// Encodes a value with postcard.
///
/// Serialising our wire types cannot fail: they contain only fixed arrays, integers, strings,
/// byte vectors, sequences of known length and tagged enums, all of which postcard supports.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // An error is unreachable for the types above; an empty vector would then fail every
    // decode and signature check rather than produce wrong bytes.
    postcard::to_allocvec(value).unwrap_or_default()
}

/// Decodes a value that must occupy exactly `bytes`, in canonical form, within `max_len`.
pub fn decode_canonical<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    max_len: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > max_len {
        return Err(DecodeError::Oversize {
            len: bytes.len(),
            max: max_len,
        });
    }
    let (value, rest) = decode_prefix::<T>(bytes)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    require_canonical(&value, bytes)?;
    Ok(value)
}

fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, &[u8]), DecodeError> {
    postcard::take_from_bytes::<T>(bytes).map_err(DecodeError::Malformed)
}

fn require_canonical<T: Serialize>(value: &T, bytes: &[u8]) -> Result<(), DecodeError> {
    // ENC-3: streaming comparison would avoid the allocation, but payloads are bounded by
    // ENC-1 and the cost is measured in the `encoding` benchmark.
    if encode(value).as_slice() == bytes {
        Ok(())
    } else {
        Err(DecodeError::NonCanonical)
    }
}

/// A payload type that is signed: it declares its domain tag, version and size limit.
///
/// The signed bytes are `postcard(TAG as str) || VERSION (1 byte) || postcard(body)`.
pub trait SignedPayload: Serialize + DeserializeOwned {
    /// Domain tag, unique per payload type (ENC-4), e.g. `"keyhive/contact-card"`.
    const TAG: &'static str;
    /// Format version of this payload type.
    const VERSION: u8;
    /// Largest encoded payload accepted (ENC-1).
    const MAX_LEN: usize;

    /// ENC-4: decodes the body of an earlier format `version` this build still reads, or
    /// `None` when it reads no version but [`SignedPayload::VERSION`] (the default). Such a
    /// body must be decoded canonically in its own version's layout; values are always written
    /// in the current version.
    fn decode_earlier(version: u8, body: &[u8]) -> Option<Result<Self, DecodeError>> {
        let _ = (version, body);
        None
    }
}

/// Encodes `body` behind its domain tag and version (ENC-4).
pub fn encode_tagged<T: SignedPayload>(body: &T) -> Vec<u8> {
    let mut out = encode(&T::TAG);
    out.push(T::VERSION);
    out.extend_from_slice(&encode(body));
    out
}

/// Longest domain tag [`peek_tag`] reads (every tag in `specs/encoding.md` is far shorter).
pub const MAX_TAG_LEN: usize = 64;

/// ENC-11: the domain tag a tagged payload (or a signed envelope) starts with, read without
/// decoding the rest, so that decoders dispatch on the tag instead of trying each type in turn
/// (a trial decode may fail on another type's size limit before it ever sees the tag).
/// `None` when the bytes do not start with a canonical tag of at most [`MAX_TAG_LEN`] bytes.
pub fn peek_tag(bytes: &[u8]) -> Option<&str> {
    // The tag is a postcard `str`: a one-byte varint length (tags are short) then UTF-8.
    let (&len, rest) = bytes.split_first()?;
    let len = usize::from(len);
    if len > MAX_TAG_LEN || len >= 0x80 {
        return None;
    }
    core::str::from_utf8(rest.get(..len)?).ok()
}

/// Decodes a tagged payload: checks size, tag and version, then decodes the body canonically.
pub fn decode_tagged<T: SignedPayload>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > T::MAX_LEN {
        return Err(DecodeError::Oversize {
            len: bytes.len(),
            max: T::MAX_LEN,
        });
    }
    let header = encode(&T::TAG);
    let Some(rest) = bytes.strip_prefix(header.as_slice()) else {
        return Err(DecodeError::WrongTag { expected: T::TAG });
    };
    let Some((&version, body)) = rest.split_first() else {
        return Err(DecodeError::Malformed(
            postcard::Error::DeserializeUnexpectedEnd,
        ));
    };
    if version != T::VERSION {
        return T::decode_earlier(version, body).unwrap_or(Err(DecodeError::UnsupportedVersion {
            found: version,
            supported: T::VERSION,
        }));
    }
    decode_canonical(body, T::MAX_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlong_varint_and_trailing_bytes_rejected() {
        assert_eq!(decode_canonical::<u32>(&[0x05], 16), Ok(5));
        assert_eq!(
            decode_canonical::<u32>(&[0x85, 0x00], 16),
            Err(DecodeError::NonCanonical)
        );
        assert_eq!(
            decode_canonical::<u32>(&[0x05, 0x00], 16),
            Err(DecodeError::TrailingBytes(1))
        );
        assert_eq!(
            decode_canonical::<u32>(&[0x05, 0x00], 1),
            Err(DecodeError::Oversize { len: 2, max: 1 })
        );
        assert!(matches!(
            decode_canonical::<u32>(&[], 16),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn peek_tag_reads_only_the_tag() {
        let bytes = encode_tagged(&TaggedExample(7));
        assert_eq!(peek_tag(&bytes), Some(TaggedExample::TAG));
        assert_eq!(peek_tag(&[]), None);
        assert_eq!(peek_tag(&[5, b'a']), None, "truncated tag");
        assert_eq!(
            peek_tag(&[0x80, 0x01]),
            None,
            "multi-byte length is never a tag"
        );
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct TaggedExample(u32);

    impl SignedPayload for TaggedExample {
        const TAG: &'static str = "keyhive/test-example";
        const VERSION: u8 = 1;
        const MAX_LEN: usize = 16;
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // A length prefix of 2^32 with no data must fail, not allocate 4 GiB.
        let bytes = [0x80, 0x80, 0x80, 0x80, 0x10];
        assert!(decode_canonical::<Vec<u64>>(&bytes, 64).is_err());
        assert!(decode_canonical::<String>(&bytes, 64).is_err());
    }
}
