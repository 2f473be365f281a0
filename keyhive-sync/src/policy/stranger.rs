//! SYNC-104a: which items end a stranger's being one (SYNC-104), so that a device that used up
//! its stranger quota working alone can still share: the relay admits them past the key's
//! quota, and a client told the quota is used up pushes only them for the rest of the session.
//! Only a grant to another device counts: a grant to a group or folder (a document) does not
//! make another device hold a grant by itself, and a device's own folders and groups hold one
//! such grant per document, so counting them let a stranger with many filed documents spend
//! the whole past-quota room on them and re-send them at its paced rate on every sync.

use keyhive_core::capability::{Action, AgentId, AnySigned};
use keyhive_core::identity::IndividualId;
use keyhive_core::wire_form::CompactKind;

use crate::item::{Item, ItemKind, WireItem};

/// SYNC-104a: whether auth op `item` grants its subject to a device other than `peer`: the act
/// that ends a stranger's being one (another device then holds a grant on its subject). Such an
/// item is not held to the key's quota, so that a device which filled its quota working alone
/// can still share; its address's quota (SYNC-108) still applies.
pub(crate) fn grants_to_another_device(item: &Item, peer: &IndividualId) -> bool {
    item.kind() == ItemKind::Auth && envelope_grants_to_another_device(item.envelope(), peer)
}

/// [`grants_to_another_device`] for an item as it arrived (SYNC-110 compact form), before it
/// is taken apart: only auth items are decoded.
pub(crate) fn wire_grants_to_another_device(wire: &WireItem, peer: &IndividualId) -> bool {
    wire.kind == ItemKind::Auth
        && keyhive_core::wire_form::expand(&wire.envelope, &wire.subject.0, CompactKind::Auth)
            .is_ok_and(|full| envelope_grants_to_another_device(&full, peer))
}

fn envelope_grants_to_another_device(envelope: &[u8], peer: &IndividualId) -> bool {
    matches!(delegate_of(envelope), Some(AgentId::Individual(device)) if device != *peer)
}

/// The agent auth op `envelope` delegates its subject to (a grant, with or without an end,
/// also in the creator's root form, CAP-24); `None` for any other op or bytes that do not
/// decode.
pub(crate) fn delegate_of(envelope: &[u8]) -> Option<AgentId> {
    let decoded = AnySigned::decode(envelope).ok()?;
    let action = match &decoded {
        AnySigned::Auth(op) => &op.unverified_payload().body.action,
        AnySigned::RootForm(op) => &op.unverified_body().action,
        _ => return None,
    };
    match action {
        Action::Delegate { delegate, .. } | Action::DelegateUntil { delegate, .. } => {
            Some(*delegate)
        }
        _ => None,
    }
}
