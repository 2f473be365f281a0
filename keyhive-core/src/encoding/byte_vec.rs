//! `#[serde(with = "byte_vec")]` for `Vec<u8>` fields: the same bytes on the wire as a
//! sequence of `u8` (postcard writes both as a varint length and the raw bytes), but encoded
//! and decoded as one slice instead of byte by byte, which dominated the cost of
//! (de)serialising ciphertexts.

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;

/// Serialises `bytes` as a byte string.
pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

/// Deserialises a byte string (or, from self-describing formats, a sequence of bytes).
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_byte_buf(ByteVec)
}

struct ByteVec;

impl<'de> Visitor<'de> for ByteVec {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        // Bounded by the input: each element consumes at least one byte of it.
        let mut out = Vec::new();
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Plain(Vec<u8>);

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Bulk(#[serde(with = "super")] Vec<u8>);

    #[test]
    fn same_bytes_on_the_wire_as_a_sequence() {
        for len in [0usize, 1, 127, 128, 300, 70_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let plain = crate::encoding::encode(&Plain(data.clone()));
            let bulk = crate::encoding::encode(&Bulk(data.clone()));
            assert_eq!(plain, bulk);
            let back: Bulk = crate::encoding::decode_canonical(&plain, usize::MAX).unwrap();
            assert_eq!(back.0, data);
        }
    }
}
