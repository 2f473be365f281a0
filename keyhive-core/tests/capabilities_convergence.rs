//! Convergence property tests (`specs/capabilities.md` CAP-3, CAP-11..CAP-14): four author
//! replicas produce random histories (grants, revocations, nested groups, cycles, concurrent
//! admins, content ops) with random syncs between them; then four fresh replicas receive the
//! union in random orders and partitions. All must agree on members, levels and the validity
//! of every op, and the invariants must hold. Each device, served only what it may pull
//! (CAP-21) in a random order, applies all of it and agrees too.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use keyhive_core::Hash;
use keyhive_core::capability::{
    Access, AgentId, AnyVerified, Checker, ContentBody, Explanation, PeerTag, Validity,
};
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::{Device, DocumentId, GroupId, SubjectKind};
use keyhive_core::signed::{Op, Verified};
use proptest::prelude::*;

const REPLICAS: usize = 4;
const OBSERVERS: usize = 4;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn shuffle<T>(items: &mut [T], seed: &mut u64) {
    for i in (1..items.len()).rev() {
        let j = (splitmix(seed) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

fn sync(from: &Checker, to: &mut Checker) {
    let ops: Vec<Vec<u8>> = from.ops().map(|o| o.as_bytes().to_vec()).collect();
    for bytes in ops {
        to.ingest(PeerTag::LOCAL, &bytes).unwrap();
    }
}

struct Snapshot {
    members: BTreeMap<PublicKey, BTreeMap<AgentId, Access>>,
    validity: BTreeMap<Hash, Validity>,
}

fn snapshot(c: &Checker, subjects: &[PublicKey], ops: &[Hash]) -> Snapshot {
    Snapshot {
        members: subjects
            .iter()
            .map(|s| (*s, (*c.members(s)).clone()))
            .collect(),
        validity: ops
            .iter()
            .map(|h| (*h, c.op_validity(h).unwrap()))
            .collect(),
    }
}

fn check_invariants(c: &Checker, subjects: &[PublicKey], agents: &[AgentId]) {
    for s in subjects {
        let info = c.subject_info(s).unwrap();
        // CAP-16: the root is always admin: no race leaves a subject without one.
        assert!(c.can(AgentId::Individual(info.creator), Access::Admin, s));
        let members = c.members(s);
        for (agent, level) in members.iter() {
            // Queries agree with each other; every membership has a proof chain (CAP-17).
            assert_eq!(c.level(*agent, s), Some(*level));
            match c.explain(*agent, *level, s) {
                Explanation::Granted { level: l, path } => {
                    assert_eq!(l, *level);
                    assert!(!path.is_empty());
                    assert_eq!(path[0].subject, *s);
                    for link in &path {
                        assert!(c.op_validity(&link.op).unwrap().is_valid());
                    }
                }
                Explanation::Refused(r) => panic!("member refused: {r}"),
            }
        }
        for agent in agents {
            if !members.contains_key(agent) {
                assert!(!c.can(*agent, Access::Pull, s));
                assert!(matches!(
                    c.explain(*agent, Access::Pull, s),
                    Explanation::Refused(_)
                ));
            }
        }
    }
    // Every valid content op's author held write through a chain of valid delegations.
    for op in c.ops() {
        if let AnyVerified::Content(v) = op
            && c.op_validity(&v.hash()).unwrap().is_valid()
            && let keyhive_core::capability::Proof::Via { delegation, .. } = &v.body.proof
        {
            assert!(c.op_validity(delegation).unwrap().is_valid());
        }
    }
}

type Step = (u8, u8, u8, u8, u8);

/// An edit that claims the oldest possible auth state: only the genesis and its proof.
fn back_dated_write(rep: &mut Checker, dev: &Device, subject: PublicKey, z: u8) {
    let Some(proof) = rep.find_proof(dev.id(), &subject, Access::Write, u32::MAX) else {
        return;
    };
    let Some(info) = rep.subject_info(&subject) else {
        return;
    };
    let mut auth_heads = proof.references();
    auth_heads.push(info.genesis);
    auth_heads.sort_unstable();
    auth_heads.dedup();
    let body = ContentBody {
        document: DocumentId(subject),
        auth_heads,
        proof,
        payload: keyhive_core::capability::Payload::Blob {
            hash: Hash::of_content(&[z]),
            len: 1,
        },
    };
    let op = Verified::sign(Op::new(dev.id().0, vec![], body), dev.signing_key()).unwrap();
    rep.apply_verified(op).unwrap();
}

fn run(steps: Vec<Step>, seed: u64) {
    let devices: Vec<Device> = (0..REPLICAS)
        .map(|i| Device::generate(Some(format!("d{i}"))))
        .collect();
    let mut replicas: Vec<Checker> = (0..REPLICAS).map(|_| Checker::default()).collect();
    // Setup: two documents and a folder granted on both, made by d0; d1 owns a person group.
    let doc_a = replicas[0]
        .create_document(&devices[0])
        .unwrap()
        .genesis
        .issuer;
    let doc_b = replicas[0]
        .create_document(&devices[0])
        .unwrap()
        .genesis
        .issuer;
    let folder = replicas[0].create_group(&devices[0]).unwrap().issuer;
    let person = replicas[0].create_group(&devices[1]).unwrap().issuer;
    let _ = replicas[0].delegate(
        &devices[0],
        &doc_a,
        AgentId::Group(GroupId(folder)),
        Access::Admin,
    );
    let _ = replicas[0].delegate(
        &devices[0],
        &doc_b,
        AgentId::Group(GroupId(folder)),
        Access::Write,
    );
    // Concurrent admins at several depths, so that revocations race.
    let setup = [
        (
            0,
            folder,
            AgentId::Individual(devices[1].id()),
            Access::Admin,
        ),
        (
            0,
            doc_a,
            AgentId::Individual(devices[2].id()),
            Access::Admin,
        ),
        (
            0,
            doc_b,
            AgentId::Individual(devices[3].id()),
            Access::Admin,
        ),
        (
            1,
            person,
            AgentId::Individual(devices[2].id()),
            Access::Write,
        ),
        (0, doc_a, AgentId::Group(GroupId(person)), Access::Read),
        (
            1,
            folder,
            AgentId::Individual(devices[3].id()),
            Access::Admin,
        ),
    ];
    for (by, subject, agent, access) in setup {
        replicas[0]
            .delegate(&devices[by], &subject, agent, access)
            .unwrap();
    }
    for i in 1..REPLICAS {
        let (head, tail) = replicas.split_at_mut(i);
        sync(&head[0], &mut tail[0]);
    }
    let mut subjects: Vec<(PublicKey, SubjectKind)> = vec![
        (doc_a, SubjectKind::Document),
        (doc_b, SubjectKind::Document),
        (folder, SubjectKind::Group),
        (person, SubjectKind::Group),
    ];

    for (kind, r, x, y, z) in steps {
        let r = r as usize % REPLICAS;
        let dev = &devices[r];
        let agents: Vec<AgentId> = devices
            .iter()
            .map(|d| AgentId::Individual(d.id()))
            .chain(subjects.iter().map(|(s, k)| AgentId::subject(*s, *k)))
            .collect();
        let (subject, skind) = subjects[x as usize % subjects.len()];
        let rep = &mut replicas[r];
        // Warm the query caches, so that their selective invalidation (CAP-18) is exercised
        // by the final comparison.
        let _ = rep.members(&subject);
        let _ = rep.reachable(agents[y as usize % agents.len()]);
        let _ = rep.can(agents[z as usize % agents.len()], Access::Read, &subject);
        match kind % 8 {
            0..=2 => {
                let agent = agents[y as usize % agents.len()];
                let access = Access::ALL[z as usize % 4];
                let _ = rep.delegate(dev, &subject, agent, access);
            }
            3 | 4 => {
                // Mostly currently granting delegations, sometimes any delegation.
                let targets: Vec<Hash> = if z % 4 == 0 {
                    rep.auth_ops_for(&subject)
                        .filter_map(|op| match op {
                            AnyVerified::Auth(v) => match v.body.action {
                                keyhive_core::capability::Action::Delegate { .. } => Some(v.hash()),
                                _ => None,
                            },
                            _ => None,
                        })
                        .collect()
                } else {
                    rep.direct_members(&subject)
                        .values()
                        .flat_map(|m| m.ops.clone())
                        .filter(|h| matches!(rep.op(h), Some(AnyVerified::Auth(_))))
                        .collect()
                };
                if !targets.is_empty() {
                    let t = targets[y as usize % targets.len()];
                    let _ = rep.revoke(dev, &subject, &t);
                }
            }
            5 => {
                if skind == SubjectKind::Document {
                    if y % 3 == 0 {
                        back_dated_write(rep, dev, subject, z);
                    } else {
                        let _ = rep.write(dev, DocumentId(subject), &[z]);
                    }
                }
            }
            6 => {
                let from = y as usize % REPLICAS;
                if from != r {
                    let (a, b) = if from < r {
                        let (head, tail) = replicas.split_at_mut(r);
                        (&head[from], &mut tail[0])
                    } else {
                        let (head, tail) = replicas.split_at_mut(from);
                        (&tail[0], &mut head[r])
                    };
                    sync(a, b);
                }
            }
            _ => {
                if subjects.len() < 8 {
                    let k = if z % 2 == 0 {
                        SubjectKind::Group
                    } else {
                        SubjectKind::Document
                    };
                    let created = match k {
                        SubjectKind::Group => rep.create_group(dev),
                        SubjectKind::Document => rep.create_document(dev).map(|d| d.genesis),
                    };
                    if let Ok(g) = created {
                        subjects.push((g.issuer, k));
                    }
                }
            }
        }
    }

    // The union of every op, as bytes.
    let mut all: BTreeMap<Hash, Vec<u8>> = BTreeMap::new();
    for rep in &replicas {
        for op in rep.ops() {
            all.entry(op.hash())
                .or_insert_with(|| op.as_bytes().to_vec());
        }
    }
    let hashes: Vec<Hash> = all.keys().copied().collect();
    let subject_keys: Vec<PublicKey> = subjects.iter().map(|(s, _)| *s).collect();
    let agents: Vec<AgentId> = devices
        .iter()
        .map(|d| AgentId::Individual(d.id()))
        .chain(subjects.iter().map(|(s, k)| AgentId::subject(*s, *k)))
        .collect();

    // Observers: random orders and partitions.
    let mut seed = seed;
    let mut observers: Vec<Checker> = Vec::new();
    for k in 0..OBSERVERS {
        let mut order: Vec<&Vec<u8>> = all.values().collect();
        shuffle(&mut order, &mut seed);
        let cut = (splitmix(&mut seed) as usize) % (order.len() + 1);
        let mut obs = Checker::default();
        for bytes in &order[..cut] {
            obs.ingest(PeerTag([k as u8; 32]), bytes).unwrap();
        }
        if let Some(prev) = observers.last()
            && splitmix(&mut seed).is_multiple_of(2)
        {
            sync(prev, &mut obs);
        }
        for bytes in &order[cut..] {
            obs.ingest(PeerTag([k as u8; 32]), bytes).unwrap();
        }
        assert_eq!(obs.pending_len(), 0);
        assert_eq!(obs.len(), all.len());
        observers.push(obs);
    }
    // Authors catch up incrementally, with warm caches.
    for rep in replicas.iter_mut() {
        for a in &agents {
            let _ = rep.reachable(*a);
        }
        for s in &subject_keys {
            let _ = rep.members(s);
        }
        sync(&observers[0], rep);
    }

    let reference = snapshot(&observers[0], &subject_keys, &hashes);
    for c in observers.iter().skip(1).chain(replicas.iter()) {
        let other = snapshot(c, &subject_keys, &hashes);
        assert_eq!(reference.members, other.members, "members diverge");
        assert_eq!(reference.validity, other.validity, "validity diverges");
        for a in &agents {
            let mine: BTreeMap<PublicKey, Access> = observers[0]
                .reachable(*a)
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect();
            let theirs: BTreeMap<PublicKey, Access> =
                c.reachable(*a).iter().map(|(k, v)| (*k, *v)).collect();
            assert_eq!(mine, theirs, "reachable diverges");
        }
        for s in &subject_keys {
            let a: BTreeSet<_> = observers[0].individuals_with(s, Access::Read);
            assert_eq!(a, c.individuals_with(s, Access::Read));
        }
    }
    check_invariants(&observers[0], &subject_keys, &agents);
    for device in &devices {
        partial_replica_agrees(&observers[0], &all, device, &mut seed);
    }
    if std::env::var_os("CAPS_STATS").is_some() {
        let invalid = reference
            .validity
            .values()
            .filter(|v| !v.is_valid())
            .count();
        let revocations = observers[0]
            .ops()
            .filter(|op| {
                matches!(op, AnyVerified::Auth(v)
                    if matches!(v.body.action, keyhive_core::capability::Action::Revoke { .. }))
            })
            .count();
        let members: usize = reference.members.values().map(|m| m.len()).sum();
        eprintln!(
            "ops {} invalid {invalid} revocations {revocations} memberships {members}",
            hashes.len()
        );
    }
}

/// CAP-20, CAP-21: a device served only what it may pull (the auth ops of the scope of
/// every subject it reaches, the content ops of the documents it reaches), in a random
/// order, applies all of it and agrees with a replica holding everything.
fn partial_replica_agrees(
    reference: &Checker,
    all: &BTreeMap<Hash, Vec<u8>>,
    device: &Device,
    seed: &mut u64,
) {
    let me = AgentId::Individual(device.id());
    let served_subjects = reference.served_subjects(me);
    let pulls = reference.reachable(me);
    let mut served: Vec<(Hash, &Vec<u8>)> = all
        .iter()
        .filter(|(hash, _)| {
            let op = reference.op(hash).unwrap();
            match op {
                AnyVerified::Content(_) => pulls.contains_key(&op.subject()),
                _ => served_subjects.contains(&op.subject()),
            }
        })
        .map(|(h, b)| (*h, b))
        .collect();
    shuffle(&mut served, seed);
    let mut partial = Checker::default();
    for (_, bytes) in &served {
        partial.ingest(PeerTag::LOCAL, bytes).unwrap();
    }
    assert_eq!(
        partial.pending_len(),
        0,
        "a served op waits for a parent never served"
    );
    for (hash, _) in &served {
        assert_eq!(
            partial.op_validity(hash),
            reference.op_validity(hash),
            "a partial replica disagrees on validity"
        );
    }
    for subject in pulls.keys() {
        assert_eq!(*partial.members(subject), *reference.members(subject));
        assert_eq!(partial.level(me, subject), reference.level(me, subject));
    }
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
        ),
        8..64,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn replicas_converge(steps in steps(), seed in any::<u64>()) {
        run(steps, seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// The long run: `cargo test -p keyhive-core --release --test capabilities_convergence -- --ignored`.
    #[test]
    #[ignore]
    fn replicas_converge_10k(steps in steps(), seed in any::<u64>()) {
        run(steps, seed);
    }
}
