//! Cryptographic building blocks, composed only from the client's crates.
//!
//! Every derived key has exactly one derivation rule in [`mod@derive`]; see `specs/encoding.md`.

pub mod aead;
pub mod derive;
pub mod hash;
pub mod prekey;
pub mod secret;
pub mod signing;

/// The process-wide cryptographically secure generator used for keys and nonces.
///
/// `rand::rng()` is a ChaCha-based generator reseeded from the operating system.
pub(crate) fn csprng() -> rand::rngs::ThreadRng {
    rand::rng()
}
