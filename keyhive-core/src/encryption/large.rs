//! Large changes: a small manifest change carrying the predecessors and a fresh stream key,
//! and the content streamed under that key (`specs/encryption.md` CENC-10).

use std::io::{Read, Write};

use zeroize::Zeroizing;

use crate::cgka::Cgka;
use crate::crypto::hash::Hash;
use crate::crypto::secret::SymmetricKey;

use super::change::{DecryptError, DecryptedChange, EncryptError, EncryptedChange, encrypt_change};
use super::stream::{StreamError, decrypt_stream, encrypt_stream};

/// Why a large change could not be encrypted or decrypted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LargeChangeError {
    /// The manifest could not be encrypted.
    #[error(transparent)]
    Encrypt(#[from] EncryptError),
    /// The manifest could not be decrypted.
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
    /// The manifest does not hold a 32-byte stream key.
    #[error("manifest does not hold a stream key")]
    Manifest,
    /// Streaming failed.
    #[error(transparent)]
    Stream(#[from] StreamError),
}

/// CENC-10: encrypts `reader` into `writer` as change `change`. Returns the manifest to store
/// beside the stream, and the change key (for successors' predecessor lists).
pub fn encrypt_large_change(
    cgka: &Cgka,
    change: Hash,
    predecessors: &[(Hash, SymmetricKey)],
    reader: impl Read,
    writer: impl Write,
) -> Result<(EncryptedChange, SymmetricKey), LargeChangeError> {
    let stream_key = SymmetricKey::random();
    let (manifest, key) = encrypt_change(cgka, change, predecessors, stream_key.expose())?;
    encrypt_stream(
        &stream_key,
        &manifest.header.associated_data(),
        reader,
        writer,
    )?;
    Ok((manifest, key))
}

/// CENC-10: given the decrypted manifest (opened by epoch or by a successor's key), decrypts
/// the content stream into `writer`.
pub fn decrypt_large_change(
    manifest: &EncryptedChange,
    opened: &DecryptedChange,
    reader: impl Read,
    writer: impl Write,
) -> Result<u64, LargeChangeError> {
    let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(
        opened
            .content
            .as_slice()
            .try_into()
            .map_err(|_| LargeChangeError::Manifest)?,
    );
    let stream_key = SymmetricKey::from_bytes(*bytes);
    Ok(decrypt_stream(
        &stream_key,
        &manifest.header.associated_data(),
        reader,
        writer,
    )?)
}
