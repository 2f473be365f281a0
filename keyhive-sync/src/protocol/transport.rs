//! The sealed transport after the handshake (SYNC-38, SYNC-39).
//!
//! Every frame after `Welcome`, in both directions, travels as
//! `ChaCha20-Poly1305(key = this direction's session key, nonce = 0x00000000 || counter as
//! u64 big-endian, aad = SEALED_FRAME_AAD, plaintext = the SYNC-10 frame)`. The counter starts
//! at 0 in each direction and is never sent: each side knows which frame it expects next, so a
//! replayed, reordered, dropped-then-resumed or injected frame fails authentication and the
//! receiver closes the connection (SYNC-39).

use core::fmt;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use zeroize::Zeroizing;

/// Bytes of the Poly1305 tag appended to every sealed frame.
pub const TAG_LEN: usize = 16;

/// SYNC-38: associated data of every sealed frame (versioned, domain-separated).
pub const SEALED_FRAME_AAD: &[u8] = b"keyhive 2026-12-01 sync sealed frame v1";

/// Why a frame could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// 2^64 frames were sent in this direction: the counter would repeat (SYNC-38).
    #[error("send counter exhausted; the session must be re-established")]
    CounterExhausted,
    /// The frame is too long for one AEAD message.
    #[error("frame too long to seal")]
    TooLong,
}

/// Why a received frame was rejected. Any of these ends the connection (SYNC-39).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The frame was not sealed with this direction's key at the expected counter: tampered,
    /// injected, replayed, reordered, or a frame before it was dropped (SYNC-39).
    #[error("sealed frame {expected} failed authentication")]
    Authentication {
        /// The counter the receiver expected.
        expected: u64,
    },
    /// 2^64 frames were received in this direction (SYNC-38).
    #[error("receive counter exhausted; the session must be re-established")]
    CounterExhausted,
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::from(n)
}

/// Seals the frames one side sends (SYNC-38). Owns the direction's key and counter.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    counter: u64,
}

impl Sealer {
    /// A sealer for a fresh direction (counter 0).
    pub(crate) fn new(key: &Zeroizing<[u8; 32]>) -> Self {
        Sealer {
            cipher: ChaCha20Poly1305::new((&**key).into()),
            counter: 0,
        }
    }

    /// Seals `frame` in place under the next counter value (SYNC-38). The counter advances
    /// only when sealing succeeds, so a nonce is never used twice.
    pub fn seal(&mut self, mut frame: Vec<u8>) -> Result<Vec<u8>, SealError> {
        let next = self
            .counter
            .checked_add(1)
            .ok_or(SealError::CounterExhausted)?;
        self.cipher
            .encrypt_in_place(&nonce(self.counter), SEALED_FRAME_AAD, &mut frame)
            .map_err(|_| SealError::TooLong)?;
        self.counter = next;
        Ok(frame)
    }

    /// Frames sealed so far.
    pub fn counter(&self) -> u64 {
        self.counter
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealer(counter={}, key=<redacted>)", self.counter)
    }
}

/// Opens the frames one side receives (SYNC-39). Owns the direction's key and counter.
pub struct Opener {
    cipher: ChaCha20Poly1305,
    counter: u64,
}

impl Opener {
    /// An opener for a fresh direction (counter 0).
    pub(crate) fn new(key: &Zeroizing<[u8; 32]>) -> Self {
        Opener {
            cipher: ChaCha20Poly1305::new((&**key).into()),
            counter: 0,
        }
    }

    /// Opens the next frame (SYNC-39): it must be sealed under exactly the next counter value.
    /// On failure the caller must close the connection; the counter does not advance.
    pub fn open(&mut self, mut sealed: Vec<u8>) -> Result<Vec<u8>, OpenError> {
        let next = self
            .counter
            .checked_add(1)
            .ok_or(OpenError::CounterExhausted)?;
        self.cipher
            .decrypt_in_place(&nonce(self.counter), SEALED_FRAME_AAD, &mut sealed)
            .map_err(|_| OpenError::Authentication {
                expected: self.counter,
            })?;
        self.counter = next;
        Ok(sealed)
    }

    /// Frames opened so far.
    pub fn counter(&self) -> u64 {
        self.counter
    }
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Opener(counter={}, key=<redacted>)", self.counter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Sealer, Opener) {
        let key = Zeroizing::new([7u8; 32]);
        (Sealer::new(&key), Opener::new(&key))
    }

    /// SYNC-38/39: round trip, then tampering, replay, reordering and a dropped frame are all
    /// refused, and a refusal does not advance the counter.
    #[test]
    fn tamper_replay_reorder_and_drop_are_refused() {
        let (mut s, mut o) = pair();
        let f0 = s.seal(b"frame zero".to_vec()).unwrap();
        let f1 = s.seal(b"frame one".to_vec()).unwrap();
        let f2 = s.seal(b"frame two".to_vec()).unwrap();
        assert_eq!(f0.len(), b"frame zero".len() + TAG_LEN);
        // Reordered: frame 1 first.
        assert_eq!(
            o.open(f1.clone()),
            Err(OpenError::Authentication { expected: 0 })
        );
        // Tampered.
        let mut bad = f0.clone();
        bad[0] ^= 1;
        assert_eq!(o.open(bad), Err(OpenError::Authentication { expected: 0 }));
        assert_eq!(o.open(f0.clone()).unwrap(), b"frame zero");
        // Replayed.
        assert_eq!(
            o.open(f0.clone()),
            Err(OpenError::Authentication { expected: 1 })
        );
        // Frame 1 dropped: frame 2 does not open at counter 1.
        assert_eq!(
            o.open(f2.clone()),
            Err(OpenError::Authentication { expected: 1 })
        );
        assert_eq!(o.open(f1).unwrap(), b"frame one");
        assert_eq!(o.open(f2).unwrap(), b"frame two");
        assert_eq!((s.counter(), o.counter()), (3, 3));
    }

    /// SYNC-38: keys are per direction, so a frame reflected back to its sender does not open.
    #[test]
    fn other_key_and_truncation_are_refused() {
        let (mut s, _) = pair();
        let mut other = Opener::new(&Zeroizing::new([8u8; 32]));
        let f = s.seal(b"x".to_vec()).unwrap();
        assert!(other.open(f.clone()).is_err());
        let (_, mut o) = pair();
        assert!(o.open(f[..TAG_LEN - 1].to_vec()).is_err());
        assert!(o.open(Vec::new()).is_err());
        assert!(format!("{s:?}{o:?}").contains("redacted"));
    }

    /// SYNC-38: the counter never wraps, so no nonce is reused.
    #[test]
    fn exhausted_counter_refuses_instead_of_wrapping() {
        let (mut s, mut o) = pair();
        s.counter = u64::MAX;
        o.counter = u64::MAX;
        assert_eq!(s.seal(vec![1]), Err(SealError::CounterExhausted));
        assert_eq!(o.open(vec![0; 17]), Err(OpenError::CounterExhausted));
    }
}
