//! Cryptographic building blocks, composed only from the client's crates.
//!
//! Every derived key has exactly one derivation rule in [`mod@derive`]; see `specs/encoding.md`.

pub mod aead;
pub mod derive;
pub(crate) mod digest_map;
pub mod hash;
pub mod prekey;
pub mod rng;
pub mod secret;
pub mod signing;

pub use rng::csprng;
