//! Derivation labels: one domain-separated label per derived value (`specs/encoding.md` §3).
//!
//! Labels follow BLAKE3's `derive_key` guidance: globally unique, hard-coded, and carrying the
//! application, a date and a purpose. Changing any label is a wire-format change.

/// BLAKE3 `derive_key` context for the content hash of a signed envelope (ENC-5).
pub const SIGNED_HASH: &str = "keyhive 2026-11-21 signed envelope hash v1";
/// Domain string mixed into the AEAD key commitment (ENC-7).
pub const AEAD_KEY_COMMITMENT: &str = "keyhive 2026-11-21 aead key commitment v1";
/// BLAKE3 `derive_key` context for a plain content hash of opaque bytes (ENC-6).
pub const CONTENT_HASH: &str = "keyhive 2026-11-21 content hash v1";

/// BLAKE3 `derive_key` context for a sync range fingerprint (`specs/sync.md`, SYNC-20).
pub const SYNC_RANGE_FINGERPRINT: &str = "keyhive 2026-11-21 sync range fingerprint v1";

/// Derives 32 bytes from `key_material` under `label` with BLAKE3's key derivation mode.
pub fn derive_key(label: &str, key_material: &[u8]) -> [u8; 32] {
    blake3::derive_key(label, key_material)
}
