//! ADM-1: what an item is, derived from its bytes alone (dispatch on the domain tag, ENC-11).

use keyhive_core::capability::{AnySigned, AuthBody, ContentBody};
use keyhive_core::cgka::op::check_body;
use keyhive_core::cgka::{CgkaBody, SignedCgkaOp};
use keyhive_core::encoding::{DecodeError, SignedPayload, peek_tag};
use keyhive_core::identity::{ContactCard, Genesis};
use keyhive_core::signed::{OpBody, Signed};

use super::Refusal;
use crate::blob::{Blob, EntryPoint};
use crate::item::{Item, ItemKind, SubjectId};

/// A decoded item, signature not yet checked.
#[derive(Debug)]
pub(crate) enum Envelope {
    /// A genesis, delegation, revocation or content op.
    Op(AnySigned),
    /// A device's contact card.
    Card(Signed<ContactCard>),
    /// A key-agreement op (structure checked, CGKA-3/4).
    Cgka(SignedCgkaOp),
    /// A change or piece.
    Blob(Blob),
    /// A signed entry point.
    EntryPoint(Signed<EntryPoint>),
}

/// ADM-1: decodes `item` by its domain tag and requires the kind and subject it was sent
/// under to be the ones its bytes carry, so the same bytes can never be admitted twice under
/// different kinds or subjects (and storage keyed by hash alone cannot be shadowed).
pub(crate) fn classify(item: &Item) -> Result<Envelope, Refusal> {
    let bytes = item.envelope();
    let malformed = Refusal::Malformed;
    let (envelope, kind, subject) = match peek_tag(bytes) {
        Some(<AuthBody as OpBody>::TAG)
        | Some(<ContentBody as OpBody>::TAG)
        | Some(<Genesis as OpBody>::TAG) => {
            let op = AnySigned::decode(bytes).map_err(malformed)?;
            let kind = match op {
                AnySigned::Content(_) => ItemKind::Content,
                _ => ItemKind::Auth,
            };
            let subject = op.subject();
            (Envelope::Op(op), kind, subject)
        }
        Some(ContactCard::TAG) => {
            let card = Signed::<ContactCard>::decode(bytes).map_err(malformed)?;
            let subject = card.unverified_payload().device;
            (Envelope::Card(card), ItemKind::Auth, subject)
        }
        Some(<CgkaBody as OpBody>::TAG) => {
            let op = SignedCgkaOp::decode(bytes).map_err(malformed)?;
            check_body(op.unverified_payload()).map_err(malformed)?;
            // Only an init names its document; other key-agreement ops are tied to it by
            // their predecessors (ADM-6), checked at admission.
            let subject = match &op.unverified_payload().body {
                CgkaBody::Init { document, .. } => document.0,
                _ => item.subject().0,
            };
            (Envelope::Cgka(op), ItemKind::Cgka, subject)
        }
        Some(Blob::TAG) => {
            let blob = Blob::from_bytes(bytes).map_err(malformed)?;
            let subject = blob.document().0;
            (Envelope::Blob(blob), ItemKind::Blob, subject)
        }
        Some(EntryPoint::TAG) => {
            let entry = Signed::<EntryPoint>::decode(bytes).map_err(malformed)?;
            let subject = entry.unverified_payload().change.header.document.0;
            (Envelope::EntryPoint(entry), ItemKind::Blob, subject)
        }
        _ => {
            return Err(Refusal::Malformed(DecodeError::WrongTag {
                expected: "the domain tag of a keyhive item",
            }));
        }
    };
    if kind != item.kind() {
        return Err(Refusal::WrongKind {
            claimed: item.kind(),
            actual: kind,
        });
    }
    if SubjectId(subject) != item.subject() {
        return Err(Refusal::WrongSubject {
            claimed: item.subject(),
            actual: SubjectId(subject),
        });
    }
    Ok(envelope)
}

/// The order a batch is admitted in: the capability graph (auth and content ops share one
/// causal DAG), then key agreement, then changes, entry points and pieces, so that whatever
/// names an item is admitted before it.
pub fn apply_rank(item: &Item) -> u8 {
    match item.kind() {
        ItemKind::Auth | ItemKind::Content => 0,
        ItemKind::Cgka => 1,
        ItemKind::Blob => match Blob::from_bytes(item.envelope()) {
            Ok(Blob::Piece { .. }) => 3,
            _ => 2,
        },
    }
}
