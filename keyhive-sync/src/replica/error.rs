//! Errors of replica operations.

use keyhive_core::capability::{BuildError, IngestError};
use keyhive_core::cgka::{CreateError, InitError, ReceiveError};
use keyhive_core::crypto::hash::Hash;
use keyhive_core::encoding::DecodeError;
use keyhive_core::encryption::{EncryptError, StreamError};
use keyhive_core::signed::VerifyError;

use crate::item::ItemError;
use crate::store::StoreError;

/// Why a replica operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// The local store failed.
    #[error("local store: {0}")]
    Store(#[from] StoreError),
    /// An op could not be built (usually: this device lacks the authority).
    #[error("{0}")]
    Build(#[from] BuildError),
    /// An op was refused by the capability checker.
    #[error("op refused: {0}")]
    Ingest(#[from] IngestError),
    /// A key-agreement op could not be made.
    #[error("key agreement: {0}")]
    Cgka(#[from] CreateError),
    /// A key-agreement init was refused.
    #[error("key agreement init refused: {0}")]
    CgkaInit(#[from] InitError),
    /// A key-agreement op was refused.
    #[error("key agreement op refused: {0}")]
    CgkaReceive(#[from] ReceiveError),
    /// Encryption failed.
    #[error("encryption: {0}")]
    Encrypt(#[from] EncryptError),
    /// A stream failed to encrypt, decrypt or read.
    #[error("content stream: {0}")]
    Stream(#[from] StreamError),
    /// Bytes did not decode.
    #[error("malformed data: {0}")]
    Decode(#[from] DecodeError),
    /// A signature did not verify.
    #[error("bad signature: {0}")]
    Signature(#[from] VerifyError),
    /// An item broke the sync layer's limits.
    #[error("item: {0}")]
    Item(#[from] ItemError),
    /// Signing an item made here failed.
    #[error("cannot sign an item")]
    Sign(#[source] keyhive_core::signed::SignError),
    /// The item was refused by the admission rules (ADM-n, REP-20..REP-22).
    #[error("item refused")]
    Refused(#[from] crate::admission::Refusal),
    /// The document or group is not known here.
    #[error("unknown subject {0}")]
    UnknownSubject(String),
    /// This device is not in the document's key agreement, so it cannot encrypt.
    #[error(
        "this device holds no key for document {0}: it has no read access, or nobody has seated it yet"
    )]
    NotSeated(String),
    /// A change's pieces are missing from the local store (sync first).
    #[error("content piece {0} is not in the local store yet: sync first")]
    MissingPiece(Hash),
    /// REP-31: this device's access to the subject was revoked, so it may not write there
    /// (every other replica and relay would refuse the change).
    #[error("this device's access to {subject} was revoked by op {revocation}")]
    Revoked {
        /// The document or group.
        subject: keyhive_core::crypto::signing::PublicKey,
        /// The revocation that removed this device.
        revocation: Hash,
    },
    /// Writing decrypted content failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}
