//! Causal encryption of document content (`specs/encryption.md`).
//!
//! * [`change`]: one change under a key bound to a CGKA epoch root and the change's own
//!   reference; the plaintext carries its predecessors' references and keys (CENC-1..CENC-5).
//! * [`history`]: walking back from any readable change through predecessor keys, so a member
//!   added later reads the whole earlier history (CENC-6).
//! * [`stream`]: content in 64 KiB chunks with bounded memory (CENC-7..CENC-9).
//! * [`large`]: a large change as a manifest change plus a stream (CENC-10).

pub mod change;
pub mod history;
pub mod inline;
pub mod large;
pub mod stream;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;

pub use change::{
    ChangeHeader, DecryptError, DecryptedChange, EncryptError, EncryptedChange, change_key,
    decrypt_with_epoch, decrypt_with_key, encrypt_change, encrypt_with_epoch,
};
pub use history::{HistoryError, decrypt_history};
pub use inline::{
    inline_ciphertext_len, open_inline_with_epoch, open_inline_with_key, seal_inline,
};
pub use large::{LargeChangeError, decrypt_large_change, encrypt_large_change};
pub use stream::{CHUNK_LEN, StreamError, decrypt_stream, encrypt_stream};
