//! Errors of replica operations.

use keyhive_core::capability::{BuildError, IngestError};
use keyhive_core::cgka::{CreateError, InitError, ReceiveError};
use keyhive_core::crypto::hash::Hash;
use keyhive_core::encoding::DecodeError;
use keyhive_core::encryption::{EncryptError, StreamError};
use keyhive_core::identity::DocumentId;
use keyhive_core::signed::VerifyError;

use crate::item::ItemError;
use crate::store::StoreError;

/// Why a replica operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// The local store failed.
    #[error("local store failed")]
    Store(#[from] StoreError),
    /// An op could not be built (usually: this device lacks the authority).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// An op was refused by the capability checker.
    #[error("op refused by the capability checker")]
    Ingest(#[from] IngestError),
    /// A key-agreement op could not be made.
    #[error("key-agreement op could not be made")]
    Cgka(#[from] CreateError),
    /// A key-agreement init was refused.
    #[error("key-agreement init refused")]
    CgkaInit(#[from] InitError),
    /// A key-agreement op was refused.
    #[error("key-agreement op refused")]
    CgkaReceive(#[from] ReceiveError),
    /// Encryption failed.
    #[error("encryption failed")]
    Encrypt(#[from] EncryptError),
    /// A stream failed to encrypt, decrypt or read.
    #[error("content stream failed")]
    Stream(#[from] StreamError),
    /// Bytes did not decode.
    #[error("malformed data")]
    Decode(#[from] DecodeError),
    /// A signature did not verify.
    #[error("signature does not verify")]
    Signature(#[from] VerifyError),
    /// An item broke the sync layer's limits.
    #[error("item breaks the sync limits")]
    Item(#[from] ItemError),
    /// Signing an item made here failed.
    #[error("cannot sign an item")]
    Sign(#[source] keyhive_core::signed::SignError),
    /// The item was refused by the admission rules (ADM-n, REP-20..REP-22).
    #[error("item refused")]
    Refused(#[from] crate::admission::Refusal),
    /// The document or group is not known here.
    #[error("unknown subject {0}")]
    UnknownSubject(DocumentId),
    /// This device is not in the document's key agreement, so it cannot encrypt.
    #[error(
        "this device holds no key for document {0}: it has no read access, or nobody has seated it yet"
    )]
    NotSeated(DocumentId),
    /// This device cannot open the change (it was encrypted before this device was seated and
    /// no key to it has arrived yet, or its ciphertext has not arrived).
    #[error("change {change} of document {document} is not readable on this device (yet)")]
    Unreadable {
        /// The document.
        document: DocumentId,
        /// The content op.
        change: Hash,
    },
    /// KEYS-11: this device's key-agreement secrets could not be kept, so the key-agreement
    /// op that needs them was not stored.
    #[error("cannot keep this device's key-agreement secrets")]
    KeepSecrets(#[source] keyhive_core::keystore::FileError),
    /// This device's own contact card could not be signed.
    #[error("cannot sign this device's contact card")]
    OwnCard(#[source] keyhive_core::identity::ContactCardError),
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
    /// INV-12: a grant through which someone reads the document ended but is not revoked,
    /// and this device may not revoke it: a change sealed now would reach its grantee.
    #[error(
        "grant {grant} on {subject} ended but is not revoked yet; a change written now would \
         reach its grantee until an admin revokes it (INV-12)"
    )]
    GrantEnded {
        /// The subject of the ended grant (the document, or a group or folder that is a
        /// member of it).
        subject: keyhive_core::crypto::signing::PublicKey,
        /// The ended delegation.
        grant: Hash,
    },
    /// REP-63: this replica was opened for a few subjects (to read them) and neither ingests
    /// items nor stores what it would make: open it fully to write or sync.
    #[error(
        "this replica was opened to read {subjects} subject(s) only: open it fully to write or sync"
    )]
    Scoped {
        /// How many subjects its scope holds.
        subjects: usize,
    },
    /// Writing decrypted content failed.
    #[error("writing content failed")]
    Io(#[from] std::io::Error),
}
