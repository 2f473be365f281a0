//! One encrypted change (`specs/encryption.md` §1, CENC-1..CENC-5).

use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

use zeroize::{Zeroize, Zeroizing};

use crate::cgka::Cgka;
use crate::crypto::aead::{self, OpenError, Sealed};
use crate::crypto::derive;
use crate::crypto::hash::Hash;
use crate::crypto::secret::SymmetricKey;
use crate::encoding::{DecodeError, decode_canonical, encode};
use crate::identity::DocumentId;

/// Largest encoded [`EncryptedChange`] accepted (CENC-5): 16 MiB. Larger content streams.
pub const MAX_CHANGE_LEN: usize = 16 << 20;
/// Most predecessor keys one change may carry (CENC-3).
pub const MAX_PREDECESSORS: usize = 1024;

/// The public header of an encrypted change; authenticated as associated data (CENC-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeHeader {
    /// The document.
    pub document: DocumentId,
    /// The CGKA update whose epoch root the key is bound to.
    pub epoch: Hash,
    /// The change's own reference (e.g. its content-op hash).
    pub change: Hash,
}

/// An encrypted change as stored and sent (CENC-1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedChange {
    /// The public header.
    pub header: ChangeHeader,
    /// The sealed plaintext (CENC-3).
    pub sealed: Sealed,
}

impl EncryptedChange {
    /// The canonical wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes canonical wire bytes (CENC-5).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_canonical(bytes, MAX_CHANGE_LEN)
    }
}

/// CENC-3: the plaintext layout, fixed and therefore canonical:
/// `count (u32 LE) || count × (reference (32) || key (32)) || content`.
/// The buffer has room for the AEAD tag, so in-place sealing never reallocates (which would
/// leave a plaintext copy in freed memory).
fn encode_plaintext(predecessors: &[(Hash, SymmetricKey)], content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 64 * predecessors.len() + content.len() + 16);
    out.extend_from_slice(&(predecessors.len() as u32).to_le_bytes());
    for (reference, key) in predecessors {
        out.extend_from_slice(reference.as_bytes());
        out.extend_from_slice(key.expose());
    }
    out.extend_from_slice(content);
    out
}

type DecodedPlaintext = (Vec<(Hash, SymmetricKey)>, Zeroizing<Vec<u8>>);

fn decode_plaintext(mut plain: Zeroizing<Vec<u8>>) -> Result<DecodedPlaintext, DecodeError> {
    let Some((count, rest)) = plain.split_first_chunk::<4>() else {
        return Err(DecodeError::Truncated);
    };
    let count = u32::from_le_bytes(*count) as usize;
    if count > MAX_PREDECESSORS {
        return Err(DecodeError::InvalidStructure("too many predecessors"));
    }
    let Some((keys, _content)) = rest.split_at_checked(count * 64) else {
        return Err(DecodeError::Truncated);
    };
    let predecessors = predecessor_keys(keys);
    // Drop the header in place; the content stays in the decrypted buffer.
    plain.drain(..4 + count * 64);
    Ok((predecessors, plain))
}

/// The (reference, key) pairs of a decrypted change header, 64 bytes each (CENC and INL-5).
pub(crate) fn predecessor_keys(keys: &[u8]) -> Vec<(Hash, SymmetricKey)> {
    keys.chunks_exact(64)
        .map(|pair| {
            let mut reference = [0u8; 32];
            let mut key = Zeroizing::new([0u8; 32]);
            reference.copy_from_slice(&pair[..32]);
            key.copy_from_slice(&pair[32..]);
            (Hash(reference), SymmetricKey::from_bytes(*key))
        })
        .collect()
}

/// A decrypted change.
pub struct DecryptedChange {
    /// The change's key (keep it to name this change as a predecessor).
    pub key: SymmetricKey,
    /// Predecessors' references and keys.
    pub predecessors: Vec<(Hash, SymmetricKey)>,
    /// The plaintext content.
    pub content: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for DecryptedChange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "DecryptedChange({} predecessors, {} bytes, <redacted>)",
            self.predecessors.len(),
            self.content.len()
        )
    }
}

/// Why a change could not be encrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptError {
    /// The CGKA has no agreed root this device knows (a removal or concurrent updates since
    /// the last update): issue an update first (CGKA-19, CENC-4).
    #[error("the group key must be updated before encrypting")]
    MustUpdate,
    /// Too many predecessors.
    #[error("{0} predecessors exceed the limit of {MAX_PREDECESSORS}")]
    TooManyPredecessors(usize),
    /// The content is too large for one change; stream it.
    #[error("content too large for one change; use the streaming API")]
    TooLarge,
}

/// Why a change could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// This device never learned the root secret of the change's epoch.
    #[error("unknown epoch {0}: this device never held its root secret")]
    UnknownEpoch(Hash),
    /// The change belongs to another document.
    #[error("change belongs to another document")]
    WrongDocument,
    /// The key commitment does not match: wrong key, or a tampered nonce or commitment.
    #[error("key commitment mismatch: wrong key, or tampered nonce or commitment")]
    KeyCommitment,
    /// Authentication failed: tampered ciphertext or header.
    #[error("authentication failed: tampered ciphertext or header")]
    Authentication,
    /// The decrypted plaintext is malformed.
    #[error("malformed change plaintext: {0}")]
    Plaintext(DecodeError),
    /// The content op names a blob: its change is not inline (INL-1).
    #[error("the content op carries no inline change")]
    NotInline,
}

impl From<OpenError> for DecryptError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::KeyCommitment => DecryptError::KeyCommitment,
            _ => DecryptError::Authentication,
        }
    }
}

impl ChangeHeader {
    /// CENC-1: the associated data: `document (32) || epoch (32) || change (32)`.
    pub fn associated_data(&self) -> [u8; 96] {
        let mut out = [0u8; 96];
        out[..32].copy_from_slice(self.document.public_key().as_bytes());
        out[32..64].copy_from_slice(self.epoch.as_bytes());
        out[64..].copy_from_slice(self.change.as_bytes());
        out
    }
}

/// The BLAKE3 hasher keyed for [`derive::CENC_CHANGE_KEY`], made once: cloning it skips
/// re-hashing the context string and yields exactly `blake3::derive_key`'s output.
static CHANGE_KEY_HASHER: LazyLock<blake3::Hasher> =
    LazyLock::new(|| blake3::Hasher::new_derive_key(derive::CENC_CHANGE_KEY));

/// CENC-2: the change key, bound one-way to the epoch root and the header (and so to the
/// change's own reference): `derive_key(CENC_CHANGE_KEY, root || associated data)`.
pub fn change_key(epoch_root: &SymmetricKey, header: &ChangeHeader) -> SymmetricKey {
    let mut hasher = CHANGE_KEY_HASHER.clone();
    hasher.update(epoch_root.expose());
    hasher.update(&header.associated_data());
    let key = SymmetricKey::from_bytes(*hasher.finalize().as_bytes());
    hasher.zeroize();
    key
}

/// Encrypts a change under the CGKA's current epoch (CENC-4). Returns the encrypted change
/// and its key (to pass as a predecessor key of later changes).
pub fn encrypt_change(
    cgka: &Cgka,
    change: Hash,
    predecessors: &[(Hash, SymmetricKey)],
    content: &[u8],
) -> Result<(EncryptedChange, SymmetricKey), EncryptError> {
    let (epoch, root) = cgka.current_epoch().ok_or(EncryptError::MustUpdate)?;
    encrypt_with_epoch(cgka.document(), epoch, root, change, predecessors, content)
}

/// Encrypts under an explicit epoch root (CENC-1..CENC-3).
pub fn encrypt_with_epoch(
    document: DocumentId,
    epoch: Hash,
    epoch_root: &SymmetricKey,
    change: Hash,
    predecessors: &[(Hash, SymmetricKey)],
    content: &[u8],
) -> Result<(EncryptedChange, SymmetricKey), EncryptError> {
    let mut nonce = [0u8; 24];
    rand::Rng::fill_bytes(&mut crate::crypto::csprng(), &mut nonce);
    seal_change(
        document,
        epoch,
        epoch_root,
        change,
        predecessors,
        content,
        nonce,
    )
}

/// As [`encrypt_with_epoch`] with a caller-chosen nonce: for test vectors only.
pub(crate) fn seal_change(
    document: DocumentId,
    epoch: Hash,
    epoch_root: &SymmetricKey,
    change: Hash,
    predecessors: &[(Hash, SymmetricKey)],
    content: &[u8],
    nonce: [u8; 24],
) -> Result<(EncryptedChange, SymmetricKey), EncryptError> {
    if predecessors.len() > MAX_PREDECESSORS {
        return Err(EncryptError::TooManyPredecessors(predecessors.len()));
    }
    let header = ChangeHeader {
        document,
        epoch,
        change,
    };
    let key = change_key(epoch_root, &header);
    let encoded = encode_plaintext(predecessors, content);
    if encoded.len() > MAX_CHANGE_LEN {
        return Err(EncryptError::TooLarge);
    }
    // The buffer is moved into the envelope and encrypted in place: no plaintext copy is
    // left behind to wipe.
    let sealed = aead::seal_in_place(&key, nonce, &header.associated_data(), encoded)
        .map_err(|_| EncryptError::TooLarge)?;
    Ok((EncryptedChange { header, sealed }, key))
}

/// Decrypts with the root secret of the change's epoch, which `cgka` must hold (CENC-4).
pub fn decrypt_with_epoch(
    cgka: &Cgka,
    change: &EncryptedChange,
) -> Result<DecryptedChange, DecryptError> {
    if change.header.document != cgka.document() {
        return Err(DecryptError::WrongDocument);
    }
    let root = cgka
        .epoch_secret(&change.header.epoch)
        .ok_or(DecryptError::UnknownEpoch(change.header.epoch))?;
    decrypt_with_key(&change_key(root, &change.header), change)
}

/// Decrypts with a change key learned from a successor's plaintext (CENC-6). The key
/// commitment is checked before decryption (ENC-7).
pub fn decrypt_with_key(
    key: &SymmetricKey,
    change: &EncryptedChange,
) -> Result<DecryptedChange, DecryptError> {
    let plain = aead::open_in_place(key, &change.header.associated_data(), change.sealed.clone())?;
    let (predecessors, content) = decode_plaintext(plain).map_err(DecryptError::Plaintext)?;
    Ok(DecryptedChange {
        key: key.clone(),
        predecessors,
        content,
    })
}
