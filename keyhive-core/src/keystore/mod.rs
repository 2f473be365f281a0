//! The device key store: secrets that must survive restarts, in one file only this user can
//! read, and their passphrase-encrypted backup (`specs/encryption.md` §4, KEYS-1..KEYS-6).
//!
//! * [`store`]: the in-memory [`KeyStore`] and its canonical encoding (KEYS-1, KEYS-2).
//! * [`file`](mod@file): atomic, mode-0600 persistence (KEYS-3).
//! * [`journal`]: secrets made durable by appending what changed (KEYS-12).
//! * [`backup`]: Argon2id + XChaCha20-Poly1305 export and import (KEYS-4..KEYS-6).
//! * [`archive`]: the same sealing for a whole device home, made by the app (KEYS-8).

pub mod archive;
pub mod backup;
pub mod file;
pub mod journal;
pub mod store;
#[cfg(test)]
mod vectors;

pub use archive::{MAX_ARCHIVE_LEN, open_archive, seal_archive};
pub use backup::{BackupError, BackupParams, export_backup, import_backup};
pub use file::{FileError, load, save};
pub use journal::Journal;
pub use store::{KeyStore, KeyStoreDecodeError};
