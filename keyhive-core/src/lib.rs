//! keyhive-core: identities, canonical signed ops, cryptographic primitives, convergent
//! capabilities, group keys and end-to-end encryption for local-first software.
//!
//! The normative descriptions of every wire type and rule live in the repository's `specs/`
//! directory; rule numbers (e.g. `ENC-3`) cited in comments refer to those documents.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod capability;
pub mod cgka;
pub mod crypto;
pub mod encoding;
pub mod encryption;
pub mod identity;
pub mod keystore;
pub mod signed;
#[cfg(test)]
mod spec_vectors;
pub mod wire_form;

pub use crypto::hash::Hash;
pub use signed::{Signed, Verified};
