//! Streaming encryption of large content in 64 KiB chunks (`specs/encryption.md` §3,
//! CENC-7..CENC-10), after age's STREAM construction.
//!
//! Layout: `magic "KHS1" (4) || salt (16) || commitment (32) || chunk*`. Each chunk is up to
//! [`CHUNK_LEN`] plaintext bytes sealed with XChaCha20-Poly1305 under the payload key
//! `derive_key(CENC_STREAM_KEY, key || salt)`, nonce `counter (u64 BE) || last (1) || 0^15`,
//! and the caller's associated data. Memory is two chunk buffers, whatever the size.

use std::io::{self, Read, Write};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::crypto::derive::{self, derive_key};
use crate::crypto::secret::SymmetricKey;

/// Plaintext bytes per chunk (CENC-8).
pub const CHUNK_LEN: usize = 64 * 1024;
const TAG_LEN: usize = 16;
const MAGIC: &[u8; 4] = b"KHS1";
/// Bytes of the stream header.
pub const HEADER_LEN: usize = 4 + 16 + 32;

/// Why a stream could not be encrypted or decrypted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// Reading or writing failed.
    #[error("i/o error")]
    Io(#[from] io::Error),
    /// The header is not a keyhive stream header.
    #[error("not a keyhive stream (bad magic or short header)")]
    BadHeader,
    /// The stream was not made with this key (or its header was altered) (CENC-7).
    #[error("key commitment does not match: wrong key or tampered header")]
    KeyCommitment,
    /// A chunk failed authentication: tampered, reordered or truncated (CENC-9).
    #[error("chunk {0} failed authentication (tampered, reordered or truncated stream)")]
    Authentication(u64),
    /// The stream ends without a final chunk (CENC-9).
    #[error("stream truncated: no final chunk")]
    Truncated,
    /// An empty final chunk after a non-empty stream (CENC-9).
    #[error("empty final chunk after data")]
    EmptyFinalChunk,
    /// More chunks than a 64-bit counter can number.
    #[error("stream too long")]
    TooLong,
}

fn payload_key(key: &SymmetricKey, salt: &[u8; 16]) -> Zeroizing<[u8; 32]> {
    let mut material = Zeroizing::new([0u8; 48]);
    material[..32].copy_from_slice(key.expose());
    material[32..].copy_from_slice(salt);
    Zeroizing::new(derive_key(derive::CENC_STREAM_KEY, &*material))
}

fn commitment(payload_key: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(payload_key);
    h.update(derive::CENC_STREAM_COMMITMENT.as_bytes());
    *h.finalize().as_bytes()
}

/// CENC-8: the nonce of chunk `counter`.
pub fn chunk_nonce(counter: u64, last: bool) -> [u8; 24] {
    let mut nonce = [0u8; 24];
    nonce[..8].copy_from_slice(&counter.to_be_bytes());
    nonce[8] = u8::from(last);
    nonce
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Encrypts everything `reader` yields into `writer` (CENC-7, CENC-8). Returns the plaintext
/// length.
pub fn encrypt_stream(
    key: &SymmetricKey,
    associated_data: &[u8],
    reader: impl Read,
    writer: impl Write,
) -> Result<u64, StreamError> {
    let mut salt = [0u8; 16];
    rand::Rng::fill_bytes(&mut crate::crypto::csprng(), &mut salt);
    encrypt_stream_with_salt(key, salt, associated_data, reader, writer)
}

/// As [`encrypt_stream`] with a caller-chosen salt: for test vectors only.
pub(crate) fn encrypt_stream_with_salt(
    key: &SymmetricKey,
    salt: [u8; 16],
    associated_data: &[u8],
    mut reader: impl Read,
    mut writer: impl Write,
) -> Result<u64, StreamError> {
    let pk = payload_key(key, &salt);
    writer.write_all(MAGIC)?;
    writer.write_all(&salt)?;
    writer.write_all(&commitment(&pk))?;
    let cipher = XChaCha20Poly1305::new((&*pk).into());
    let mut current = Zeroizing::new(vec![0u8; CHUNK_LEN]);
    let mut next = Zeroizing::new(vec![0u8; CHUNK_LEN]);
    let mut len = read_full(&mut reader, &mut current)?;
    let mut counter: u64 = 0;
    let mut total: u64 = 0;
    loop {
        let ahead = if len == CHUNK_LEN {
            read_full(&mut reader, &mut next)?
        } else {
            0
        };
        let last = ahead == 0;
        let sealed = cipher
            .encrypt(
                &XNonce::from(chunk_nonce(counter, last)),
                Payload {
                    msg: &current[..len],
                    aad: associated_data,
                },
            )
            .map_err(|_| StreamError::TooLong)?;
        writer.write_all(&sealed)?;
        total += len as u64;
        if last {
            break;
        }
        std::mem::swap(&mut current, &mut next);
        len = ahead;
        counter = counter.checked_add(1).ok_or(StreamError::TooLong)?;
    }
    writer.flush()?;
    Ok(total)
}

/// Decrypts a stream into `writer`, chunk by chunk (CENC-9). Each chunk is authenticated
/// before it is written; a truncated stream is detected at its end, so on error discard
/// what was written. Returns the plaintext length.
pub fn decrypt_stream(
    key: &SymmetricKey,
    associated_data: &[u8],
    mut reader: impl Read,
    mut writer: impl Write,
) -> Result<u64, StreamError> {
    let mut header = [0u8; HEADER_LEN];
    if read_full(&mut reader, &mut header)? != HEADER_LEN || &header[..4] != MAGIC {
        return Err(StreamError::BadHeader);
    }
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&header[4..20]);
    let pk = payload_key(key, &salt);
    if !bool::from(commitment(&pk).ct_eq(&header[20..])) {
        return Err(StreamError::KeyCommitment);
    }
    let cipher = XChaCha20Poly1305::new((&*pk).into());
    let full = CHUNK_LEN + TAG_LEN;
    let mut current = vec![0u8; full];
    let mut next = vec![0u8; full];
    let mut len = read_full(&mut reader, &mut current)?;
    let mut counter: u64 = 0;
    let mut total: u64 = 0;
    loop {
        if len < TAG_LEN {
            return Err(StreamError::Truncated);
        }
        let ahead = if len == full {
            read_full(&mut reader, &mut next)?
        } else {
            0
        };
        let last = ahead == 0;
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    &XNonce::from(chunk_nonce(counter, last)),
                    Payload {
                        msg: &current[..len],
                        aad: associated_data,
                    },
                )
                .map_err(|_| StreamError::Authentication(counter))?,
        );
        if last && plain.is_empty() && counter > 0 {
            return Err(StreamError::EmptyFinalChunk);
        }
        writer.write_all(&plain)?;
        total += plain.len() as u64;
        if last {
            break;
        }
        std::mem::swap(&mut current, &mut next);
        len = ahead;
        counter = counter.checked_add(1).ok_or(StreamError::TooLong)?;
    }
    writer.flush()?;
    Ok(total)
}
