//! 32-byte BLAKE3 content hashes.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use super::derive;

/// A 32-byte BLAKE3 digest used as a content address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// Hashes opaque content bytes under the content-hash label (ENC-6).
    pub fn of_content(bytes: &[u8]) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key(derive::CONTENT_HASH);
        hasher.update(bytes);
        Hash(*hasher.finalize().as_bytes())
    }

    /// Hashes the exact bytes of a signed envelope (ENC-5).
    pub fn of_signed(envelope: &[u8]) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key(derive::SIGNED_HASH);
        hasher.update(envelope);
        Hash(*hasher.finalize().as_bytes())
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

/// Why a textual 32-byte value (hash or id) could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseHexError {
    /// The text is not exactly 64 characters long.
    #[error("expected 64 hexadecimal characters, found {0}")]
    Length(usize),
    /// The text has a character outside `0-9a-f`.
    #[error("invalid hexadecimal character")]
    Character,
}

/// Parses exactly 64 lowercase or uppercase hex characters into 32 bytes.
pub(crate) fn parse_hex32(s: &str) -> Result<[u8; 32], ParseHexError> {
    let raw = s.as_bytes();
    if raw.len() != 64 {
        return Err(ParseHexError::Length(raw.len()));
    }
    let mut out = [0u8; 32];
    for (i, pair) in raw.chunks_exact(2).enumerate() {
        let hi = hex_value(pair[0]).ok_or(ParseHexError::Character)?;
        let lo = hex_value(pair[1]).ok_or(ParseHexError::Character)?;
        out[i] = (hi << 4) | lo;
    }
    Ok(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl FromStr for Hash {
    type Err = ParseHexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex32(s).map(Hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_separate_domains() {
        assert_ne!(Hash::of_content(b"x"), Hash::of_signed(b"x"));
    }

    #[test]
    fn hex_round_trip() {
        let h = Hash::of_content(b"abc");
        assert_eq!(h.to_string().parse::<Hash>(), Ok(h));
        assert_eq!("zz".parse::<Hash>(), Err(ParseHexError::Length(2)));
        assert_eq!(
            "g".repeat(64).parse::<Hash>(),
            Err(ParseHexError::Character)
        );
    }
}
