//! Incremental set summaries and range fingerprints (SYNC-20).
//!
//! A summary of a set of hashes is `(count, sum)` where `sum` is the sum of the hashes read as
//! little-endian 256-bit integers, modulo 2^256. It is order-independent and incremental, so
//! stores keep one per subject and update it on every insert. The fingerprint sent on the wire
//! is `BLAKE3-derive(SYNC_RANGE_FINGERPRINT, count_le64 || sum)[..16]` (SYNC-20). Unlike XOR,
//! an additive sum cannot be cancelled by a linear-algebra choice of items.

use keyhive_core::Hash;
use keyhive_core::crypto::derive::{SYNC_RANGE_FINGERPRINT, derive_key};
use serde::{Deserialize, Serialize};

/// Length of a wire fingerprint.
pub const FINGERPRINT_LEN: usize = 16;

/// A 16-byte fingerprint of a set of hashes.
pub type Fingerprint = [u8; FINGERPRINT_LEN];

/// The order-independent summary of a set of hashes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of hashes.
    pub count: u64,
    /// Sum of the hashes as little-endian integers, modulo 2^256.
    pub sum: [u8; 32],
}

impl Summary {
    /// The summary of a slice of distinct hashes.
    pub fn of(hashes: &[Hash]) -> Self {
        let mut s = Summary::default();
        for h in hashes {
            s.add(h);
        }
        s
    }

    /// Adds one hash (the caller guarantees it was not already counted).
    pub fn add(&mut self, hash: &Hash) {
        self.count = self.count.wrapping_add(1);
        let mut carry = 0u16;
        for (acc, b) in self.sum.iter_mut().zip(hash.0.iter()) {
            let v = u16::from(*acc) + u16::from(*b) + carry;
            *acc = (v & 0xff) as u8;
            carry = v >> 8;
        }
    }

    /// Removes one hash (the caller guarantees it was counted): the inverse of
    /// [`Summary::add`], modulo 2^256 (STORE-16).
    pub fn remove(&mut self, hash: &Hash) {
        self.count = self.count.wrapping_sub(1);
        let mut borrow = 0i16;
        for (acc, b) in self.sum.iter_mut().zip(hash.0.iter()) {
            let mut v = i16::from(*acc) - i16::from(*b) - borrow;
            borrow = 0;
            if v < 0 {
                v += 256;
                borrow = 1;
            }
            *acc = (v & 0xff) as u8;
        }
    }

    /// The wire fingerprint (SYNC-20).
    pub fn fingerprint(&self) -> Fingerprint {
        let mut material = [0u8; 40];
        material[..8].copy_from_slice(&self.count.to_le_bytes());
        material[8..].copy_from_slice(&self.sum);
        let full = derive_key(SYNC_RANGE_FINGERPRINT, &material);
        let mut out = [0u8; FINGERPRINT_LEN];
        out.copy_from_slice(&full[..FINGERPRINT_LEN]);
        out
    }

    /// Encodes as 40 bytes (count little-endian, then sum), for storage backends.
    pub fn to_bytes(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&self.count.to_le_bytes());
        out[8..].copy_from_slice(&self.sum);
        out
    }

    /// Inverse of [`Summary::to_bytes`]; `None` unless exactly 40 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 40 {
            return None;
        }
        let mut count = [0u8; 8];
        count.copy_from_slice(&bytes[..8]);
        let mut sum = [0u8; 32];
        sum.copy_from_slice(&bytes[8..]);
        Some(Summary {
            count: u64::from_le_bytes(count),
            sum,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_independent_and_carrying() {
        let a = Hash([0xff; 32]);
        let b = Hash::of_content(b"b");
        let c = Hash::of_content(b"c");
        assert_eq!(Summary::of(&[a, b, c]), Summary::of(&[c, a, b]));
        assert_ne!(
            Summary::of(&[a, b]).fingerprint(),
            Summary::of(&[a, c]).fingerprint()
        );
        let mut one = [0u8; 32];
        one[0] = 1;
        // 0xff..ff + 1 wraps to zero.
        assert_eq!(Summary::of(&[a, Hash(one)]).sum, [0u8; 32]);
        let s = Summary::of(&[b, c]);
        assert_eq!(Summary::from_bytes(&s.to_bytes()), Some(s));
        assert_eq!(Summary::from_bytes(&[0; 3]), None);
    }

    /// STORE-16: removing a hash undoes adding it, with borrows across bytes and wrapping.
    #[test]
    fn remove_undoes_add() {
        let a = Hash([0xff; 32]);
        let b = Hash::of_content(b"b");
        let c = Hash::of_content(b"c");
        let mut s = Summary::of(&[a, b, c]);
        s.remove(&b);
        assert_eq!(s, Summary::of(&[a, c]));
        s.remove(&a);
        s.remove(&c);
        assert_eq!(s, Summary::default());
        let mut one = [0u8; 32];
        one[0] = 1;
        let mut wrapped = Summary::of(&[Hash(one)]);
        wrapped.remove(&a);
        wrapped.remove(&Hash(one));
        wrapped.add(&a);
        assert_eq!(wrapped, Summary::default());
    }
}
