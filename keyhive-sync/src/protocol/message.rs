//! Protocol messages (`specs/sync.md` §4). The postcard enum tag is the declaration order:
//! never reorder variants; append new ones at the end (SYNC-10).

use keyhive_core::Hash;
use keyhive_core::crypto::prekey::PrekeyPublic;
use keyhive_core::crypto::signing::PublicKey;
use serde::{Deserialize, Serialize};

use crate::item::{SubjectId, WireItem};
use crate::reconcile::{Fingerprint, RangeAnswer, RangeQuery};

/// Correlates a response with its request. Chosen by the requester.
pub type RequestId = u32;

/// Every frame's body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Server -> client, first frame (SYNC-30).
    Challenge(Challenge),
    /// Client -> server, proves possession of the device key (SYNC-31).
    Hello(Hello),
    /// Server -> client, proves the server's key; every later frame is sealed (SYNC-32, SYNC-38).
    Welcome(Welcome),
    /// Either direction: a typed error (SYNC-13).
    Error(ErrorFrame),
    /// Client -> server: store these items (SYNC-40).
    Push {
        /// Request id.
        req: RequestId,
        /// Items.
        items: Vec<WireItem>,
    },
    /// Server -> client: one outcome per pushed item, in order (SYNC-41).
    PushAck {
        /// Request id.
        req: RequestId,
        /// Outcomes.
        outcomes: Vec<PushOutcome>,
    },
    /// Client -> server: send the items with these hashes (SYNC-42).
    Pull {
        /// Request id.
        req: RequestId,
        /// Hashes wanted.
        hashes: Vec<Hash>,
    },
    /// Server -> client: pulled items, possibly over several frames (SYNC-43).
    Items {
        /// Request id.
        req: RequestId,
        /// Items in this frame.
        items: Vec<WireItem>,
        /// Whether this is the last frame of the response.
        last: bool,
    },
    /// Client -> server: offer every subject I may pull (SYNC-50).
    Collection {
        /// Request id.
        req: RequestId,
    },
    /// Server -> client: the offer, possibly over several frames (SYNC-51).
    Offer {
        /// Request id.
        req: RequestId,
        /// Subjects with their root summaries.
        subjects: Vec<SubjectOffer>,
        /// Whether this is the last frame of the response.
        last: bool,
    },
    /// Client -> server: one reconciliation round for a subject (SYNC-22).
    Reconcile {
        /// Request id.
        req: RequestId,
        /// The subject.
        subject: SubjectId,
        /// Range queries.
        queries: Vec<RangeQuery>,
    },
    /// Server -> client: one answer per query, in order (SYNC-22).
    ReconcileReply {
        /// Request id.
        req: RequestId,
        /// Answers.
        answers: Vec<RangeAnswer>,
    },
    /// Client -> server: push me new items of these subjects as they arrive (SYNC-60).
    Subscribe {
        /// Request id.
        req: RequestId,
        /// Subjects.
        subjects: Vec<SubjectId>,
    },
    /// Server -> client: the subjects now subscribed (those the requester may pull).
    Subscribed {
        /// Request id.
        req: RequestId,
        /// Accepted subjects.
        subjects: Vec<SubjectId>,
    },
    /// Server -> client: live items for subscribed subjects (SYNC-61).
    Live {
        /// Items.
        items: Vec<WireItem>,
    },
    /// Client -> server: as `Collection`, unless the offer's digest ([`offer_digest`]) is
    /// `digest`, the one of the offer this client holds (SYNC-52).
    CollectionSince {
        /// Request id.
        req: RequestId,
        /// The digest of the offer the client holds.
        digest: [u8; 32],
    },
    /// Server -> client: the offer's digest is the one `CollectionSince` named (SYNC-52).
    OfferUnchanged {
        /// Request id.
        req: RequestId,
    },
}

impl Message {
    /// The request id a response frame answers, if any.
    pub fn request_id(&self) -> Option<RequestId> {
        match self {
            Message::Error(e) => e.req,
            Message::Push { req, .. }
            | Message::PushAck { req, .. }
            | Message::Pull { req, .. }
            | Message::Items { req, .. }
            | Message::Collection { req }
            | Message::CollectionSince { req, .. }
            | Message::Offer { req, .. }
            | Message::OfferUnchanged { req }
            | Message::Reconcile { req, .. }
            | Message::ReconcileReply { req, .. }
            | Message::Subscribe { req, .. }
            | Message::Subscribed { req, .. } => Some(*req),
            Message::Challenge(_)
            | Message::Hello(_)
            | Message::Welcome(_)
            | Message::Live { .. } => None,
        }
    }

    /// Whether this frame ends the response to its request.
    pub fn is_final(&self) -> bool {
        match self {
            Message::Items { last, .. } | Message::Offer { last, .. } => *last,
            _ => true,
        }
    }
}

/// The server's challenge (SYNC-30).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The server's (relay's or peer's) device key.
    pub server_id: PublicKey,
    /// 32 fresh random bytes, unique to this connection.
    pub server_nonce: [u8; 32],
    /// The server's fresh X25519 key for this connection (SYNC-30, SYNC-38).
    pub server_ephemeral: PrekeyPublic,
}

/// The client's proof (SYNC-31).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The client's device key.
    pub client_id: PublicKey,
    /// 32 fresh random bytes chosen by the client.
    pub client_nonce: [u8; 32],
    /// The client's fresh X25519 key for this connection (SYNC-31, SYNC-38).
    pub client_ephemeral: PrekeyPublic,
    /// Signature (64 bytes) over the client transcript.
    pub signature: Vec<u8>,
}

/// The server's proof (SYNC-32).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Signature (64 bytes) over the server transcript.
    pub signature: Vec<u8>,
}

/// A subject offered in collection sync.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectOffer {
    /// The subject.
    pub subject: SubjectId,
    /// How many items the server holds for it.
    pub count: u64,
    /// The fingerprint of all of them (SYNC-20).
    pub fingerprint: Fingerprint,
}

/// SYNC-52: the digest of a whole collection offer (every frame's subjects, in order):
/// `BLAKE3 derive_key(SYNC_OFFER_DIGEST, n_le64 || n × (subject (32) || count_le64 ||
/// fingerprint (16)))`. Not a secret: a client compares it with the offer it holds.
pub fn offer_digest(subjects: &[SubjectOffer]) -> blake3::Hash {
    let mut h = blake3::Hasher::new_derive_key(keyhive_core::crypto::derive::SYNC_OFFER_DIGEST);
    h.update(&(subjects.len() as u64).to_le_bytes());
    for offer in subjects {
        h.update(offer.subject.0.as_bytes());
        h.update(&offer.count.to_le_bytes());
        h.update(&offer.fingerprint);
    }
    h.finalize()
}

/// SYNC-104: the words every refusal of a stranger's quota (`PushOutcome::Refused`, and the
/// `QuotaExceeded` error frame's detail) contains, so that a client can say what to do.
pub const STRANGER_QUOTA_WORDS: &str = "holds no grant from anyone and used up its quota here";

/// What happened to one pushed item. Never reorder variants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PushOutcome {
    /// Stored durably (SYNC-41).
    Stored,
    /// Already held.
    Duplicate,
    /// Malformed (SYNC-2).
    Invalid,
    /// Refused by the access policy, with a short reason.
    Refused(String),
}

/// A typed error frame (SYNC-13).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// The request this error answers, if any.
    pub req: Option<RequestId>,
    /// The kind of error.
    pub code: ErrorCode,
    /// Human-readable detail (at most [`MAX_ERROR_DETAIL`] bytes).
    pub detail: String,
}

/// Longest error detail sent.
pub const MAX_ERROR_DETAIL: usize = 256;

impl ErrorFrame {
    /// Builds an error frame, truncating the detail.
    pub fn new(req: Option<RequestId>, code: ErrorCode, detail: impl Into<String>) -> Self {
        let mut detail = detail.into();
        if detail.len() > MAX_ERROR_DETAIL {
            let mut cut = MAX_ERROR_DETAIL;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
        }
        ErrorFrame { req, code, detail }
    }
}

/// Error codes. Never reorder variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The frame did not decode (SYNC-11).
    Malformed,
    /// The frame exceeds [`super::frame::MAX_FRAME_LEN`] (SYNC-12).
    Oversize,
    /// The frame's protocol version is not spoken here (SYNC-10).
    UnsupportedVersion,
    /// The handshake failed (SYNC-33).
    HandshakeFailed,
    /// A request arrived before the handshake completed, or a message was out of place.
    Unexpected,
    /// The requester may not pull this subject (SYNC-44).
    Forbidden,
    /// The connection exceeded its rate limit; the request was dropped (SYNC-70).
    RateLimited,
    /// A request exceeded a per-request bound (SYNC-71).
    TooLarge,
    /// The server failed internally (storage).
    Internal,
    /// Live items were dropped for this subscriber; resynchronise (SYNC-62).
    Lagged,
    /// The server is shutting down.
    ShuttingDown,
    /// The server's store cannot be reached for now (e.g. its database is down); nothing of
    /// the request was acknowledged; retry later (SYNC-14).
    Unavailable,
    /// SYNC-104: a stranger's storage quota at this relay is used up; nothing of the request
    /// was stored. Someone must grant the key access before it stores more here.
    QuotaExceeded,
}
