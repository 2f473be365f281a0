//! RELAY-7 (`specs/replica.md`): admission marks, a relay's proof to itself that it checked a
//! stored item's signatures when it admitted it.
//!
//! A mark is a keyed BLAKE3 hash of the item's content address under a key derived from the
//! relay's own secret (its identity seed), so nobody without that secret can make one, and one
//! made for some bytes is worth nothing for any other bytes (the address is recomputed from the
//! bytes read back, SYNC-3). A relay's start admits marked items without checking their
//! signatures again ([`crate::capability_policy::CapabilityPolicy::load`]); an item without a
//! valid mark (an older store, an item a peer relay or a sync link stored, a tampered or
//! foreign mark) is verified as before, and marked once it passes. Marks are an optimisation
//! only: losing some costs verification time at the next start, never correctness.

use keyhive_core::Hash;
use keyhive_core::crypto::signing::SigningKey;
use zeroize::Zeroize;

/// BLAKE3 key-derivation context of the mark key.
const CONTEXT: &str = "keyhive 2026-12-01 relay admission mark v1";

/// BLAKE3 key-derivation context of a device replica's mark key (REP-70): a device's marks
/// can never be taken for a relay's, even over the same seed.
const DEVICE_CONTEXT: &str = "keyhive 2026-12-03 device admission mark v1";

/// BLAKE3 key-derivation context of the key that authenticates the relay's start snapshot
/// (RELAY-8).
const SNAPSHOT_CONTEXT: &str = "keyhive 2026-12-07 relay start snapshot v1";

/// A 32-byte admission mark of one stored item (RELAY-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark(pub [u8; 32]);

/// The secret that makes and checks a relay's admission marks (RELAY-7) and authenticates its
/// start snapshot (RELAY-8), both derived from the relay's identity seed; or a device
/// replica's marks (REP-70), from the device's signing key (a device keeps no snapshot).
pub struct MarkKey {
    key: [u8; 32],
    snapshot: Option<[u8; 32]>,
}

impl std::fmt::Debug for MarkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MarkKey(..)")
    }
}

impl Drop for MarkKey {
    fn drop(&mut self) {
        self.key.zeroize();
        if let Some(snapshot) = &mut self.snapshot {
            snapshot.zeroize();
        }
    }
}

impl MarkKey {
    /// The mark key of the relay identified by `identity`: relays sharing one store and one
    /// identity (SYNC-100) check each other's marks.
    pub fn from_identity(identity: &SigningKey) -> Self {
        let seed = identity.seed();
        MarkKey {
            key: blake3::derive_key(CONTEXT, seed.as_slice()),
            snapshot: Some(blake3::derive_key(SNAPSHOT_CONTEXT, seed.as_slice())),
        }
    }

    /// REP-70: the mark key of a device replica, from the device's signing key: marks the
    /// items whose signatures this device verified, so that opening its store again does not
    /// verify them again. It authenticates no snapshot: a device keeps none.
    pub fn for_device(device: &SigningKey) -> Self {
        let seed = device.seed();
        MarkKey {
            key: blake3::derive_key(DEVICE_CONTEXT, seed.as_slice()),
            snapshot: None,
        }
    }

    /// RELAY-8: the authentication tag of snapshot bytes (keyed BLAKE3); `None` for a
    /// device's key.
    pub(crate) fn snapshot_tag(&self, bytes: &[u8]) -> Option<[u8; 32]> {
        let key = self.snapshot.as_ref()?;
        Some(*blake3::keyed_hash(key, bytes).as_bytes())
    }

    /// RELAY-8: whether `tag` was made by this relay for exactly `bytes` (constant time).
    pub(crate) fn snapshot_tag_holds(&self, bytes: &[u8], tag: &[u8; 32]) -> bool {
        self.snapshot
            .as_ref()
            .is_some_and(|key| blake3::keyed_hash(key, bytes) == blake3::Hash::from_bytes(*tag))
    }

    /// The mark of the item whose content address is `hash`.
    pub fn mark(&self, hash: &Hash) -> Mark {
        Mark(*blake3::keyed_hash(&self.key, &hash.0).as_bytes())
    }

    /// Whether `mark` was made by this key for `hash` (compared in constant time).
    pub fn holds(&self, hash: &Hash, mark: &Mark) -> bool {
        blake3::keyed_hash(&self.key, &hash.0) == blake3::Hash::from_bytes(mark.0)
    }

    /// The marks of `hashes`, ready for [`super::Store::put_marks`].
    pub fn marks(&self, hashes: impl IntoIterator<Item = Hash>) -> Vec<(Hash, Mark)> {
        hashes.into_iter().map(|h| (h, self.mark(&h))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_holds_only_for_its_hash_and_its_key() {
        let key = MarkKey::from_identity(&SigningKey::from_seed(&[7; 32]));
        let other = MarkKey::from_identity(&SigningKey::from_seed(&[8; 32]));
        let (a, b) = (Hash([1; 32]), Hash([2; 32]));
        let mark = key.mark(&a);
        assert!(key.holds(&a, &mark));
        assert!(!key.holds(&b, &mark), "bound to the item's address");
        assert!(!other.holds(&a, &mark), "bound to the relay's secret");
        assert_eq!(
            MarkKey::from_identity(&SigningKey::from_seed(&[7; 32])).mark(&a),
            mark,
            "relays sharing an identity make the same marks"
        );
        let device = MarkKey::for_device(&SigningKey::from_seed(&[7; 32]));
        assert!(
            !device.holds(&a, &mark),
            "a device's marks and a relay's differ over one seed (REP-70)"
        );
        assert!(!key.holds(&a, &device.mark(&a)));
    }
}
