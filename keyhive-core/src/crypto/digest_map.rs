//! Hash maps and sets keyed by [`Hash`] digests, with a cheap keyed hasher.
//!
//! The standard `RandomState` runs SipHash-1-3 over every key, which dominated the CGKA's
//! replay (the op DAG's maps are all keyed by op hashes). A key here is a BLAKE3 digest of
//! authenticated bytes (a signed op's envelope, ENC-5): already uniform, so two keyed 64-bit
//! folded multiplications over its bytes spread it as well as SipHash would. The multipliers
//! are drawn once per process from `RandomState` and never leave it, so an author who grinds
//! op hashes cannot aim them at one bucket (a collision of the full 128-bit input, not of a
//! few low bits, is needed to collide for every key). Iteration order is as unspecified as with
//! `RandomState`: nothing may depend on it. Use these only for maps keyed by such digests.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::OnceLock;

use super::hash::Hash;

/// A map keyed by digests of authenticated bytes.
pub(crate) type DigestMap<V> = HashMap<Hash, V, DigestState>;
/// A set of digests of authenticated bytes.
pub(crate) type DigestSet = HashSet<Hash, DigestState>;

/// Builds [`DigestHasher`]s with this process's secret multipliers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DigestState {
    keys: [u64; 2],
}

impl Default for DigestState {
    fn default() -> Self {
        static KEYS: OnceLock<[u64; 2]> = OnceLock::new();
        let keys = *KEYS.get_or_init(|| {
            let random = RandomState::new();
            [random.hash_one(0u8), random.hash_one(1u8)]
        });
        DigestState { keys }
    }
}

impl BuildHasher for DigestState {
    type Hasher = DigestHasher;

    fn build_hasher(&self) -> DigestHasher {
        DigestHasher {
            keys: self.keys,
            state: 0,
        }
    }
}

/// Folds bytes 16 at a time by a keyed 64×64→128-bit multiplication (high half xor low half).
#[derive(Debug)]
pub(crate) struct DigestHasher {
    keys: [u64; 2],
    state: u64,
}

impl DigestHasher {
    fn fold(&mut self, a: u64, b: u64) {
        let product = u128::from(a ^ self.keys[0] ^ self.state) * u128::from(b ^ self.keys[1]);
        self.state = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(16) {
            let mut block = [0u8; 16];
            block[..chunk.len()].copy_from_slice(chunk);
            let (a, b) = block.split_at(8);
            let word = |half: &[u8]| {
                let mut w = [0u8; 8];
                w.copy_from_slice(half);
                u64::from_le_bytes(w)
            };
            self.fold(word(a), word(b));
        }
    }

    fn write_usize(&mut self, n: usize) {
        // The length prefix of a digest's byte slice: folded in like any word.
        self.fold(n as u64, 0);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_digests_hash_equal_and_distinct_ones_spread() {
        let state = DigestState::default();
        let digest = |i: u32| Hash::of_content(&i.to_le_bytes());
        assert_eq!(state.hash_one(digest(7)), state.hash_one(digest(7)));
        // 4,096 digests into 256 buckets by the low byte: every bucket used, none crowded.
        let mut buckets = [0u32; 256];
        for i in 0..4096 {
            buckets[(state.hash_one(digest(i)) & 0xff) as usize] += 1;
        }
        assert!(buckets.iter().all(|n| (1..=48).contains(n)), "{buckets:?}");
    }

    #[test]
    fn digests_agreeing_in_their_low_words_still_spread() {
        // A grinder who fixes the first 8 bytes of every digest gains nothing.
        let state = DigestState::default();
        let mut buckets = [0u32; 256];
        for i in 0u32..4096 {
            let mut bytes = [0u8; 32];
            bytes[8..12].copy_from_slice(&i.to_le_bytes());
            buckets[(state.hash_one(Hash(bytes)) & 0xff) as usize] += 1;
        }
        assert!(buckets.iter().all(|n| (1..=48).contains(n)), "{buckets:?}");
    }

    #[test]
    fn maps_keyed_by_digests_work_as_maps() {
        let mut map: DigestMap<u32> = DigestMap::default();
        for i in 0..1000u32 {
            map.insert(Hash::of_content(&i.to_le_bytes()), i);
        }
        assert_eq!(map.len(), 1000);
        assert_eq!(map.get(&Hash::of_content(&5u32.to_le_bytes())), Some(&5));
        assert_eq!(map.get(&Hash([0; 32])), None);
    }
}
