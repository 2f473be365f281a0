//! The AEAD envelope: XChaCha20-Poly1305 with a random 24-byte nonce and an explicit key
//! commitment that is checked before decryption (`specs/encoding.md`, ENC-7).
//!
//! XChaCha20-Poly1305 is not key-committing: a ciphertext can be crafted that opens under two
//! different keys. The commitment `BLAKE3-keyed(key, AEAD_KEY_COMMITMENT || nonce)` binds the
//! envelope to one key; a mismatch is reported as [`OpenError::KeyCommitment`] and the AEAD is
//! not even attempted.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::derive;
use super::secret::SymmetricKey;

/// Bytes of a Poly1305 tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;

/// An encrypted payload: nonce, key commitment and ciphertext (with its tag).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The random 24-byte XChaCha20 nonce (ENC-7.1).
    pub nonce: [u8; 24],
    /// The key commitment (ENC-7.2).
    pub commitment: [u8; 32],
    /// Ciphertext followed by the 16-byte Poly1305 tag.
    #[serde(with = "crate::encoding::byte_vec")]
    pub ciphertext: Vec<u8>,
}

/// Why an envelope could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The envelope was not made with this key (commitment mismatch).
    #[error("key commitment does not match: this envelope was not sealed with this key")]
    KeyCommitment,
    /// The ciphertext, nonce or associated data were altered.
    #[error("ciphertext failed authentication (tampered ciphertext, nonce or header)")]
    Authentication,
}

/// Why sealing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The plaintext exceeds what XChaCha20-Poly1305 can encrypt under one nonce.
    #[error("plaintext too long for one AEAD message")]
    TooLong,
}

fn commitment(key: &SymmetricKey, nonce: &[u8; 24]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_keyed(key.expose());
    hasher.update(derive::AEAD_KEY_COMMITMENT.as_bytes());
    hasher.update(nonce);
    *hasher.finalize().as_bytes()
}

/// Encrypts `plaintext` under `key`, authenticating `associated_data` (ENC-7).
pub fn seal(
    key: &SymmetricKey,
    associated_data: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, SealError> {
    let mut nonce = [0u8; 24];
    rand::Rng::fill_bytes(&mut super::csprng(), &mut nonce);
    seal_with_nonce(key, nonce, associated_data, plaintext)
}

/// Encrypts with a caller-chosen nonce. Only for test vectors and for constructions whose spec
/// derives a unique nonce per key (e.g. chunk counters); reusing a nonce under one key is fatal.
pub fn seal_with_nonce(
    key: &SymmetricKey,
    nonce: [u8; 24],
    associated_data: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, SealError> {
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let ciphertext = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: associated_data,
            },
        )
        .map_err(|_| SealError::TooLong)?;
    Ok(Sealed {
        nonce,
        commitment: commitment(key, &nonce),
        ciphertext,
    })
}

/// Checks the key commitment in constant time, then decrypts and authenticates.
pub fn open(
    key: &SymmetricKey,
    associated_data: &[u8],
    sealed: &Sealed,
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let expected = commitment(key, &sealed.nonce);
    if !bool::from(expected.ct_eq(&sealed.commitment)) {
        return Err(OpenError::KeyCommitment);
    }
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    cipher
        .decrypt(
            &XNonce::from(sealed.nonce),
            Payload {
                msg: &sealed.ciphertext,
                aad: associated_data,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| OpenError::Authentication)
}

/// As [`seal_with_nonce`], encrypting `buffer` in place (no copy of the plaintext).
pub fn seal_in_place(
    key: &SymmetricKey,
    nonce: [u8; 24],
    associated_data: &[u8],
    mut buffer: Vec<u8>,
) -> Result<Sealed, SealError> {
    use chacha20poly1305::aead::AeadInOut;
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    cipher
        .encrypt_in_place(&XNonce::from(nonce), associated_data, &mut buffer)
        .map_err(|_| SealError::TooLong)?;
    Ok(Sealed {
        nonce,
        commitment: commitment(key, &nonce),
        ciphertext: buffer,
    })
}

/// As [`open`], decrypting the envelope's own buffer in place. The commitment is checked
/// first, in constant time (ENC-7).
pub fn open_in_place(
    key: &SymmetricKey,
    associated_data: &[u8],
    sealed: Sealed,
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    use chacha20poly1305::aead::AeadInOut;
    let expected = commitment(key, &sealed.nonce);
    if !bool::from(expected.ct_eq(&sealed.commitment)) {
        return Err(OpenError::KeyCommitment);
    }
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let mut buffer = Zeroizing::new(sealed.ciphertext);
    cipher
        .decrypt_in_place(&XNonce::from(sealed.nonce), associated_data, &mut *buffer)
        .map_err(|_| OpenError::Authentication)?;
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = SymmetricKey::random();
        let sealed = seal(&key, b"ad", b"secret text").unwrap();
        assert_eq!(
            open(&key, b"ad", &sealed).unwrap().as_slice(),
            b"secret text"
        );
        assert_eq!(open(&key, b"ae", &sealed), Err(OpenError::Authentication));

        let mut bad = sealed.clone();
        bad.ciphertext[0] ^= 1;
        assert_eq!(open(&key, b"ad", &bad), Err(OpenError::Authentication));

        let mut bad = sealed.clone();
        bad.nonce[0] ^= 1;
        assert_eq!(open(&key, b"ad", &bad), Err(OpenError::KeyCommitment));

        let mut bad = sealed.clone();
        bad.commitment[31] ^= 1;
        assert_eq!(open(&key, b"ad", &bad), Err(OpenError::KeyCommitment));

        let other = SymmetricKey::random();
        assert_eq!(open(&other, b"ad", &sealed), Err(OpenError::KeyCommitment));
    }
}
