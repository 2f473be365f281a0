//! SYNC-64: which auth ops of a subject a live connection is not subscribed to may have just
//! shared that subject with its peer, so that the relay asks its policy about those only.

use keyhive_core::capability::AgentId;
use keyhive_core::identity::IndividualId;

use crate::item::Item;

/// Whether auth op `item` may have just shared its subject with `peer`: a delegation to `peer`
/// itself or to a group or document (whose members may include it). Genesis, content,
/// revocations, invitations, redemptions (their issuer pushed them itself), cards and anything
/// that does not decode do not, so the policy is asked only about grants, never about a
/// stranger's flood of new subjects.
pub(super) fn may_share_with(item: &Item, peer: &IndividualId) -> bool {
    crate::policy::stranger::delegate_of(item.envelope())
        .is_some_and(|delegate| !matches!(delegate, AgentId::Individual(id) if id != *peer))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use keyhive_core::capability::Access;
    use keyhive_core::identity::Device;

    use super::*;
    use crate::item::{ItemKind, SubjectId};
    use crate::replica::Replica;
    use crate::store::{MemoryStore, Store};

    #[test]
    fn only_grants_that_may_reach_the_peer_are_hints() {
        let alice = Device::generate(Some("alice".into()));
        let (bob, carol) = (
            Device::generate(Some("bob".into())),
            Device::generate(Some("carol".into())),
        );
        let mut replica = Replica::open(alice, MemoryStore::new()).unwrap();
        replica.add_contact(bob.contact_card().unwrap()).unwrap();
        let doc = replica.create_document().unwrap();
        let team = replica.create_group().unwrap();
        let to_bob = replica
            .grant(&doc.0, AgentId::Individual(bob.id()), Access::Read)
            .unwrap();
        let to_team = replica
            .grant(&doc.0, AgentId::Group(team), Access::Read)
            .unwrap();
        replica.write(doc, b"content").unwrap();
        let store = replica.store();
        let items: Vec<Item> = store
            .hashes(&SubjectId(doc.0))
            .unwrap()
            .into_iter()
            .filter_map(|h| store.get(&h).unwrap())
            .filter(|i| i.kind() == ItemKind::Auth)
            .collect();
        let hints = |peer: &IndividualId| -> Vec<_> {
            items
                .iter()
                .filter(|i| may_share_with(i, peer))
                .map(Item::hash)
                .collect()
        };
        let mut for_bob = hints(&bob.id());
        for_bob.sort();
        let mut expected = vec![to_bob, to_team];
        expected.sort();
        // The genesis and anything else of the document are not hints.
        assert_eq!(for_bob, expected);
        // Carol is named by neither grant; the team's may include her.
        assert_eq!(hints(&carol.id()), vec![to_team]);
    }
}
