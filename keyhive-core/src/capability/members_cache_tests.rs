//! CAP-18a: the member maps updated edge by edge equal a computation from scratch
//! (`Edges::reach_down`, the oracle) after every step of random grant and revoke sequences
//! over nested groups (cycles included), and each map's change log names every agent whose
//! level moved.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use crate::crypto::signing::PublicKey;
use crate::identity::Device;

use super::access::{Access, AgentId};
use super::checker::Checker;

/// One random step: `(kind, issuer, subject, agent, access)` indices.
type Step = (u8, u8, u8, u8, u8);

/// The member map of `subject` computed from scratch.
fn oracle(c: &Checker, subject: &PublicKey) -> BTreeMap<AgentId, Access> {
    c.edges
        .reach_down(*subject, |k| c.kind_of(k))
        .into_iter()
        .map(|(a, (level, _, _))| (a, level))
        .collect()
}

fn run(steps: &[Step]) {
    let devices: Vec<Device> = (0..6).map(|_| Device::generate(None)).collect();
    let owner = &devices[0];
    let mut c = Checker::default();
    let doc = c.create_document(owner).unwrap().id();
    let mut subjects: Vec<(PublicKey, AgentId)> = vec![(doc.0, AgentId::Document(doc))];
    for _ in 0..3 {
        let g = c.create_group(owner).unwrap().issuer;
        subjects.push((g, AgentId::Group(crate::identity::GroupId(g))));
    }
    let folder = c.create_document(owner).unwrap().id();
    subjects.push((folder.0, AgentId::Document(folder)));
    let agents: Vec<AgentId> = devices
        .iter()
        .map(|d| AgentId::Individual(d.id()))
        .chain(subjects.iter().map(|(_, a)| *a))
        .collect();
    for &(kind, issuer, subject, agent, access) in steps {
        // Warm every map (and some per-agent answers), so that each step updates them.
        let before: Vec<(u64, BTreeMap<AgentId, Access>)> = subjects
            .iter()
            .map(|(s, _)| (c.members_version(s), (*c.members(s)).clone()))
            .collect();
        let agent = agents[agent as usize % agents.len()];
        let _ = c.can(agent, Access::Read, &doc.0);
        let issuer = &devices[issuer as usize % devices.len()];
        let (subject, _) = subjects[subject as usize % subjects.len()];
        if kind % 3 == 2 {
            let _ = c.revoke_member(issuer, &subject, agent);
        } else {
            let _ = c.delegate(issuer, &subject, agent, Access::ALL[access as usize % 4]);
        }
        for ((s, _), (version, old)) in subjects.iter().zip(&before) {
            let now = c.members(s);
            assert_eq!(*now, oracle(&c, s), "CAP-18a: incremental map == rebuild");
            let moved: BTreeSet<AgentId> = old
                .keys()
                .chain(now.keys())
                .filter(|a| old.get(a) != now.get(a))
                .copied()
                .collect();
            if let Some(logged) = c.members_changed_since(s, *version) {
                let logged: BTreeSet<AgentId> = logged.into_iter().collect();
                assert!(
                    moved.is_subset(&logged),
                    "CAP-18a: the log names every change"
                );
            }
            if *version == c.members_version(s) {
                assert!(
                    moved.is_empty(),
                    "CAP-18a: an equal version means equal members"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn incremental_member_maps_equal_a_rebuild(
        steps in proptest::collection::vec(any::<Step>(), 1..40)
    ) {
        run(&steps);
    }
}

/// A revoked device and everything under a revoked group leave the map; the log names
/// exactly them (CAP-18a).
#[test]
fn revoking_a_group_logs_the_agents_below_it() {
    let devices: Vec<Device> = (0..4).map(|_| Device::generate(None)).collect();
    let owner = &devices[0];
    let mut c = Checker::default();
    let doc = c.create_document(owner).unwrap().id();
    let team = crate::identity::GroupId(c.create_group(owner).unwrap().issuer);
    let (bob, carol, dan) = (
        AgentId::Individual(devices[1].id()),
        AgentId::Individual(devices[2].id()),
        AgentId::Individual(devices[3].id()),
    );
    c.delegate(owner, &team.0, bob, Access::Read).unwrap();
    c.delegate(owner, &team.0, carol, Access::Read).unwrap();
    c.delegate(owner, &doc.0, AgentId::Group(team), Access::Write)
        .unwrap();
    c.delegate(owner, &doc.0, dan, Access::Read).unwrap();
    let version = c.members_version(&doc.0);
    c.revoke_member(owner, &doc.0, AgentId::Group(team))
        .unwrap();
    let changed = c.members_changed_since(&doc.0, version).unwrap();
    let mut expected = vec![AgentId::Group(team), bob, carol];
    expected.sort_unstable();
    assert_eq!(changed, expected);
    let members = c.members(&doc.0);
    assert!(members.contains_key(&dan) && !members.contains_key(&bob));
    assert_eq!(*members, oracle(&c, &doc.0));
}
