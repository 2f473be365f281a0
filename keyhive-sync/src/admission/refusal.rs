//! Why an item was not admitted: one typed verdict for relays, replicas and peers.

use keyhive_core::capability::{Access, IngestError};
use keyhive_core::encoding::DecodeError;
use keyhive_core::identity::IndividualId;
use keyhive_core::signed::VerifyError;

use crate::item::{ItemKind, SubjectId};

/// Why an item was refused. Each variant names one cause; the rule it enforces is in its doc.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// ADM-1: the item claims one kind but its bytes are another kind's.
    #[error("item sent as {claimed:?} but its bytes are a {actual:?} item")]
    WrongKind {
        /// Kind the sender claimed.
        claimed: ItemKind,
        /// Kind the bytes carry.
        actual: ItemKind,
    },
    /// ADM-1: the item is filed under another subject than the one its bytes name.
    #[error("item filed under {claimed} but its bytes belong to {actual}")]
    WrongSubject {
        /// Subject the sender claimed.
        claimed: SubjectId,
        /// Subject the bytes name.
        actual: SubjectId,
    },
    /// ADM-1: the bytes are not a canonical envelope of any item type.
    #[error("item bytes do not decode")]
    Malformed(#[source] DecodeError),
    /// ADM-2: the signature does not verify (`verify_strict`).
    #[error("item signature does not verify")]
    BadSignature(#[source] VerifyError),
    /// The device lacks the access level the rule requires.
    #[error("{rule}: {who} holds no {needed:?} access on {subject}")]
    NotAuthorised {
        /// Rule number, e.g. `"RELAY-2"`.
        rule: &'static str,
        /// The device.
        who: IndividualId,
        /// Level required.
        needed: Access,
        /// The subject.
        subject: SubjectId,
    },
    /// RELAY-2: the op is held but refused by the capability rules.
    #[error("op refused by the capability rules")]
    InvalidOp(#[source] keyhive_core::capability::Refusal),
    /// ADM-3 (relay) / CAP-3: causal predecessors are not held yet; send them first.
    #[error("{0} causal predecessor(s) are not held yet")]
    MissingPredecessors(usize),
    /// ADM-3: the subject's genesis is not held yet, so nothing of it can be checked.
    #[error("subject {0} is not known yet")]
    UnknownSubject(SubjectId),
    /// REP-20/REP-21: no held op (or change) names this ciphertext yet.
    #[error("no held op names this ciphertext")]
    Unnamed,
    /// CGKA-25: a key-agreement init other than the one the document's genesis names.
    #[error("not the key-agreement init the document's genesis names")]
    ForeignInit(#[source] keyhive_core::cgka::InitBindingError),
    /// ADM-5: a key-agreement removal of a device that never held `read` on the document, so
    /// never held a seat to remove.
    #[error("{device} never held read on {subject}: there is no seat to remove")]
    NeverSeated {
        /// The device the removal names.
        device: IndividualId,
        /// The document.
        subject: SubjectId,
    },
    /// CAP-4 / ADM-4: a bounded queue for not-yet-applicable items is full.
    #[error("queue for items waiting on predecessors is full")]
    QueueFull,
    /// A replica parked the item until its causal predecessors arrive: it is not stored yet, so
    /// the sender should offer it again later.
    #[error("kept waiting for causal predecessors")]
    Parked,
    /// A device replica could not take the item (its key agreement refused it, or its store
    /// failed).
    #[error("the replica could not take the item")]
    Replica(#[source] std::sync::Arc<crate::replica::ReplicaError>),
    /// The capability checker refused to take the op (pending set full, store full).
    #[error("capability checker refused the op")]
    Checker(#[source] IngestError),
    /// SYNC-104: the pushing key is a stranger (it holds no grant from anyone) whose storage
    /// quota at this relay is used up.
    #[error(
        "{who} {} ({items} items, {bytes} bytes)",
        crate::protocol::STRANGER_QUOTA_WORDS
    )]
    QuotaExceeded {
        /// The pushing key.
        who: IndividualId,
        /// The quota's items.
        items: u64,
        /// The quota's bytes.
        bytes: u64,
    },
    /// SYNC-108: strangers pushing from the pusher's network address used up that address's
    /// quota here (whatever their keys).
    #[error(
        "keys that hold no grant from anyone used up the quota of this network address here \
         ({items} items, {bytes} bytes)"
    )]
    AddressQuotaExceeded {
        /// The address quota's items.
        items: u64,
        /// The address quota's bytes.
        bytes: u64,
    },
}

impl Refusal {
    /// Whether ops of *another* subject can lift this refusal: a key-agreement op judged
    /// before the grants that authorise it (CGKA-16..18, CGKA-20, ADM-5; e.g. the seat of a
    /// team member, or the removal of a former one, whose `read` comes through the team's
    /// ops, judged before the team's ops arrived). A sync retries such items once it has
    /// pulled every subject (SYNC-84a).
    pub fn may_lift_with_other_subjects(&self) -> bool {
        use keyhive_core::cgka::ReceiveError;
        match self {
            Refusal::Replica(e) => matches!(
                **e,
                crate::replica::ReplicaError::CgkaReceive(
                    ReceiveError::Unauthorized | ReceiveError::NotSeated(_)
                )
            ),
            // ADM-5: whether a device held `read` (the removed one, or the op's issuer) may
            // come through a team whose ops arrive with another subject: e.g. the removal of
            // a former team member's seat, met before the team's grant to that member.
            Refusal::NeverSeated { .. } | Refusal::NotAuthorised { rule: "ADM-5", .. } => true,
            _ => false,
        }
    }

    /// The name of the cause (the variant's name), for counting refusals by cause.
    pub fn cause(&self) -> &'static str {
        match self {
            Refusal::WrongKind { .. } => "WrongKind",
            Refusal::WrongSubject { .. } => "WrongSubject",
            Refusal::Malformed(_) => "Malformed",
            Refusal::BadSignature(_) => "BadSignature",
            Refusal::NotAuthorised { .. } => "NotAuthorised",
            Refusal::InvalidOp(_) => "InvalidOp",
            Refusal::MissingPredecessors(_) => "MissingPredecessors",
            Refusal::UnknownSubject(_) => "UnknownSubject",
            Refusal::Unnamed => "Unnamed",
            Refusal::ForeignInit(_) => "ForeignInit",
            Refusal::NeverSeated { .. } => "NeverSeated",
            Refusal::QueueFull => "QueueFull",
            Refusal::Parked => "Parked",
            Refusal::Replica(_) => "Replica",
            Refusal::Checker(_) => "Checker",
            Refusal::QuotaExceeded { .. } => "QuotaExceeded",
            Refusal::AddressQuotaExceeded { .. } => "AddressQuotaExceeded",
        }
    }
}
