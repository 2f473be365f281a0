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
/// BLAKE3 `derive_key` context for the digest of a collection offer (`specs/sync.md`,
/// SYNC-52).
pub const SYNC_OFFER_DIGEST: &str = "keyhive 2026-12-03 collection offer digest v1";
/// BLAKE3 `derive_key` context: the next path secret up a CGKA update path (CGKA-8).
pub const CGKA_PATH_SECRET: &str = "keyhive 2026-11-21 cgka path secret v1";
/// BLAKE3 `derive_key` context: a CGKA node's X25519 secret key from its path secret (CGKA-8).
pub const CGKA_NODE_KEY: &str = "keyhive 2026-11-21 cgka node key v1";
/// BLAKE3 `derive_key` context: a filled node's secret from its left child's node secret key,
/// when the same fill filled that child (CGKA-27).
pub const CGKA_FILL_CHAIN: &str = "keyhive 2026-12-02 cgka fill chain v1";
/// BLAKE3 `derive_key` context: a positioned fill's commitment to the keys its wraps are for
/// (CGKA-35).
pub const CGKA_FILL_RECIPIENTS: &str = "keyhive 2026-12-02 cgka fill recipients v1";
/// BLAKE3 `derive_key` context: the key wrapping a path secret for one recipient (CGKA-9).
pub const CGKA_PATH_WRAP: &str = "keyhive 2026-11-21 cgka path wrap v1";
/// BLAKE3 `derive_key` context: the epoch root secret from the root node's path secret (CGKA-10).
pub const CGKA_EPOCH_ROOT: &str = "keyhive 2026-11-21 cgka epoch root v1";
/// BLAKE3 `derive_key` context: a content change key from an epoch root and a change reference
/// (CENC-2).
pub const CENC_CHANGE_KEY: &str = "keyhive 2026-11-21 causal encryption change key v1";
/// BLAKE3 `derive_key` context: the key of a change carried inline in its content op, from an
/// epoch root, the document, the epoch, the author and the salt (INL-3).
pub const INLINE_CHANGE_KEY: &str = "keyhive 2026-12-02 inline change key v1";
/// Domain label that starts the associated data of an inline change (INL-4).
pub const INLINE_CHANGE_AD: &str = "keyhive 2026-12-02 inline change associated data v1";
/// BLAKE3 `derive_key` context: a stream payload key from a stream key and its salt (CENC-7).
pub const CENC_STREAM_KEY: &str = "keyhive 2026-11-21 causal encryption stream key v1";
/// Domain string mixed into a stream's key commitment (CENC-7).
pub const CENC_STREAM_COMMITMENT: &str =
    "keyhive 2026-11-21 causal encryption stream commitment v1";
/// BLAKE3 `derive_key` context: the key-store backup key from the Argon2id output (KEYS-4).
pub const KEYSTORE_BACKUP_KEY: &str = "keyhive 2026-11-21 key store backup key v1";
/// BLAKE3 `derive_key` context: the home archive key from the Argon2id output (KEYS-8).
pub const HOME_ARCHIVE_KEY: &str = "keyhive 2026-12-01 home archive key v1";
/// BLAKE3 `derive_key` context: the Ed25519 seed of an invitation key from the invitation
/// secret (`specs/invitations.md` INV-2).
pub const INVITATION_KEY: &str = "keyhive 2026-12-01 invitation key v1";
/// Domain string prefixed to what an invitation key signs to prove knowledge of the secret
/// (`specs/invitations.md` INV-4).
pub const INVITATION_PROOF: &str = "keyhive 2026-12-01 invitation proof of secret v1";

/// Derives 32 bytes from `key_material` under `label` with BLAKE3's key derivation mode.
pub fn derive_key(label: &str, key_material: &[u8]) -> [u8; 32] {
    blake3::derive_key(label, key_material)
}
