//! `specs/replica.md` REP-3a through the device API: after random grants and revocations
//! (devices and a group, nested, at every level, one device without a contact card, a card
//! arriving late), every write leaves the document's key agreement seating exactly the devices
//! a plan from the whole member map names (every device holding `read`: since CGKA-34 a device
//! is seated on its device key, with or without a card), although
//! `prepare` planned only from the agents whose level changed; and a folder revocation removes
//! the member from every document of the folder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use keyhive_core::capability::{Access, AgentId};
use keyhive_core::identity::{Device, DocumentId, IndividualId};
use keyhive_sync::MemoryStore;
use keyhive_sync::replica::Replica;
use proptest::prelude::*;

/// `(kind, subject, agent, access)` indices of one step.
type Step = (u8, u8, u8, u8);

/// The oracle: the devices holding `read` on `doc` (a full-map plan; CGKA-34 seats a device
/// on its device key, so a card arriving late changes nothing).
fn expected(alice: &Replica<MemoryStore>, doc: DocumentId) -> BTreeSet<IndividualId> {
    alice
        .devices_with(&doc.0, Access::Read)
        .into_iter()
        .collect()
}

fn run(steps: &[Step]) {
    let mut alice = Replica::open(Device::generate(None), MemoryStore::new()).unwrap();
    let doc = alice.create_document().unwrap();
    let team = alice.create_group().unwrap();
    let devices: Vec<Device> = (0..6).map(|_| Device::generate(None)).collect();
    // The last device's card arrives only at a step of kind 7.
    for d in &devices[..5] {
        alice.add_contact(d.contact_card().unwrap()).unwrap();
    }
    let agents: Vec<AgentId> = devices
        .iter()
        .map(|d| AgentId::Individual(d.id()))
        .chain([AgentId::Group(team)])
        .collect();
    let subjects = [doc.0, team.0];
    alice.write(doc, b"first").unwrap();
    for &(kind, subject, agent, access) in steps {
        let subject = subjects[subject as usize % subjects.len()];
        let agent = agents[agent as usize % agents.len()];
        match kind % 8 {
            0..=3 => {
                let _ = alice.grant(&subject, agent, Access::ALL[access as usize % 4]);
            }
            4..=6 => {
                let _ = alice.revoke(&subject, agent);
            }
            _ => {
                let last = devices.last().unwrap();
                alice.add_contact(last.contact_card().unwrap()).unwrap();
            }
        }
        alice.write(doc, b"after the step").unwrap();
        let seated = alice.cgka(&doc).unwrap().members();
        assert_eq!(
            seated,
            expected(&alice, doc),
            "REP-3a: incremental plan == full plan"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_write_seats_exactly_the_readers(
        steps in proptest::collection::vec(any::<Step>(), 1..16)
    ) {
        run(&steps);
    }
}

/// A member revoked from a folder leaves the key agreement of every document in it at the
/// next write to each (REP-8 placement, REP-3a plan from the changes).
#[test]
fn a_folder_revocation_reaches_every_document() {
    let mut alice = Replica::open(Device::generate(None), MemoryStore::new()).unwrap();
    let folder = alice.create_document().unwrap();
    let bob = Device::generate(None);
    let carol = Device::generate(None);
    alice.add_contact(bob.contact_card().unwrap()).unwrap();
    alice.add_contact(carol.contact_card().unwrap()).unwrap();
    let docs: Vec<DocumentId> = (0..5).map(|_| alice.create_document().unwrap()).collect();
    for d in &docs {
        alice
            .grant(&d.0, AgentId::Document(folder), Access::Read)
            .unwrap();
    }
    for m in [&bob, &carol] {
        alice
            .grant(&folder.0, AgentId::Individual(m.id()), Access::Read)
            .unwrap();
    }
    for d in &docs {
        alice.write(*d, b"seat").unwrap();
        assert!(alice.cgka(d).unwrap().members().contains(&bob.id()));
    }
    alice
        .revoke(&folder.0, AgentId::Individual(bob.id()))
        .unwrap();
    for d in &docs {
        alice.write(*d, b"re-key").unwrap();
        let seated = alice.cgka(d).unwrap().members();
        assert!(!seated.contains(&bob.id()) && seated.contains(&carol.id()));
    }
}
