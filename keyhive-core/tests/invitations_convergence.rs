//! Convergence property test for invitations (`specs/invitations.md` INV-6, INV-7, with
//! `specs/capabilities.md` CAP-3, CAP-11..CAP-13): three author replicas (the root, a
//! co-admin at depth 1 and an invitee-side replica) create invitations with random use limits
//! and expiries, redeem them from fresh devices (often concurrently, some late, some building
//! on redemptions they saw), revoke invitations and the co-admin, and write on redeemed
//! access, with random syncs between them. Then four observers receive the union in random
//! orders: all agree on the validity (with reason) of every op and on the members, no
//! invitation counts more redemptions than its limit, and a single-use invitation redeemed
//! concurrently admits exactly one device.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use keyhive_core::Hash;
use keyhive_core::capability::{
    Access, Action, AgentId, AnyVerified, AuthBody, Checker, InviteSecret, PeerTag, Validity,
    build_redemption,
};
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::{Device, DocumentId};
use keyhive_core::signed::{Op, Verified};
use proptest::prelude::*;

const AUTHORS: usize = 3;
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

type Step = (u8, u8, u8, u8);

struct Invitation {
    hash: Hash,
    secret: InviteSecret,
}

/// A redemption that also names, as predecessors, the redemptions of the same invitation the
/// replica holds (so it is causally after them, INV-6).
fn redeem_after_seen(rep: &mut Checker, dev: &Device, doc: PublicKey, inv: &Invitation, at: u64) {
    let mut preds = vec![inv.hash];
    for op in rep.ops() {
        if let AnyVerified::Auth(v) = op
            && matches!(v.body.action, Action::Redeem { invitation, .. } if invitation == inv.hash)
        {
            preds.push(v.hash());
        }
    }
    preds.sort_unstable();
    preds.dedup();
    let body = AuthBody {
        subject: doc,
        action: Action::Redeem {
            invitation: inv.hash,
            redeemed_at: at,
            proof_of_secret: inv.secret.prove(&inv.hash, dev.id(), at),
        },
        content_heads: Vec::new(),
    };
    let op = Verified::sign(Op::new(dev.id().0, preds, body), dev.signing_key()).unwrap();
    rep.apply_verified(op).unwrap();
}

fn run(steps: Vec<Step>, seed: u64) {
    let root = Device::generate(Some("root".into()));
    let admin = Device::generate(Some("admin".into()));
    let invitees: Vec<Device> = (0..6)
        .map(|i| Device::generate(Some(format!("i{i}"))))
        .collect();
    let mut reps: Vec<Checker> = (0..AUTHORS).map(|_| Checker::default()).collect();
    let doc = reps[0].create_document(&root).unwrap().genesis.issuer;
    let admin_grant = reps[0]
        .delegate(&root, &doc, AgentId::Individual(admin.id()), Access::Admin)
        .unwrap()
        .hash();
    let (first, rest) = reps.split_at_mut(1);
    for r in rest.iter_mut() {
        sync(&first[0], r);
    }
    let mut invitations: Vec<Invitation> = Vec::new();
    let mut single_use_concurrent: Vec<(Hash, Vec<Hash>)> = Vec::new();
    let mut seed_state = seed;
    for (kind, a, b, c) in steps {
        let r = (a as usize) % AUTHORS;
        match kind % 8 {
            // Invite (root on replica 0, the co-admin elsewhere).
            0 | 1 => {
                let who = if r == 0 { &root } else { &admin };
                let expires = (b % 3 != 0).then_some(u64::from(b));
                let uses = u32::from(c % 3) + 1;
                if let Ok(made) = reps[r].invite(who, &doc, Access::Write, expires, uses) {
                    invitations.push(Invitation {
                        hash: made.op.hash(),
                        secret: made.secret,
                    });
                }
            }
            // Redeem from an invitee, concurrently (only the invitation as parent).
            2 | 3 => {
                if invitations.is_empty() {
                    continue;
                }
                let inv = &invitations[(b as usize) % invitations.len()];
                let dev = &invitees[(c as usize) % invitees.len()];
                if reps[r].contains(&inv.hash) {
                    let op =
                        build_redemption(dev, &doc, &inv.hash, &inv.secret, u64::from(c)).unwrap();
                    reps[r].apply_verified(op).unwrap();
                }
            }
            // Redeem after the redemptions this replica has seen.
            4 => {
                if invitations.is_empty() {
                    continue;
                }
                let inv = &invitations[(b as usize) % invitations.len()];
                let dev = &invitees[(c as usize) % invitees.len()];
                if reps[r].contains(&inv.hash) {
                    redeem_after_seen(&mut reps[r], dev, doc, inv, u64::from(c) / 2);
                }
            }
            // Revoke an invitation, or (rarely) the co-admin: a cascade through its invitations.
            5 => {
                let who = if r == 0 { &root } else { &admin };
                if c % 4 == 0 && r == 0 {
                    let _ = reps[0].revoke(&root, &doc, &admin_grant);
                } else if !invitations.is_empty() {
                    let inv = invitations[(b as usize) % invitations.len()].hash;
                    if reps[r].contains(&inv) {
                        let _ = reps[r].revoke(who, &doc, &inv);
                    }
                }
            }
            // An invitee who holds write on this replica writes.
            6 => {
                let dev = &invitees[(c as usize) % invitees.len()];
                let _ = reps[r].write(dev, DocumentId(doc), &[b]);
            }
            // Sync one replica into another.
            _ => {
                let to = (b as usize) % AUTHORS;
                if to != r {
                    let ops: Vec<Vec<u8>> = reps[r].ops().map(|o| o.as_bytes().to_vec()).collect();
                    for bytes in ops {
                        reps[to].ingest(PeerTag::LOCAL, &bytes).unwrap();
                    }
                }
            }
        }
    }
    // A single-use invitation redeemed concurrently by two devices on two replicas.
    if let Ok(made) = reps[0].invite(&root, &doc, Access::Read, None, 1) {
        let h = made.op.hash();
        let (x, y) = (&invitees[0], &invitees[1]);
        let rx = build_redemption(x, &doc, &h, &made.secret, 1).unwrap();
        let mut other = Checker::default();
        sync(&reps[0], &mut other);
        let ry = build_redemption(y, &doc, &h, &made.secret, 1).unwrap();
        reps[0].apply_verified(rx.clone()).unwrap();
        other.apply_verified(ry.clone()).unwrap();
        reps[1]
            .ingest(PeerTag::LOCAL, other.op_bytes(&ry.hash()).unwrap())
            .ok();
        single_use_concurrent.push((h, vec![rx.hash(), ry.hash()]));
        sync(&other, &mut reps[2]);
    }

    // The union, delivered to observers in random orders.
    let mut all: BTreeMap<Hash, Vec<u8>> = BTreeMap::new();
    for rep in &reps {
        for op in rep.ops() {
            all.insert(op.hash(), op.as_bytes().to_vec());
        }
    }
    let hashes: Vec<Hash> = all.keys().copied().collect();
    let mut reference: Option<(BTreeMap<Hash, Validity>, BTreeMap<AgentId, Access>)> = None;
    for _ in 0..OBSERVERS {
        let mut order: Vec<&Vec<u8>> = all.values().collect();
        shuffle(&mut order, &mut seed_state);
        let mut obs = Checker::default();
        for bytes in order {
            obs.ingest(PeerTag::LOCAL, bytes).unwrap();
        }
        assert_eq!(obs.pending_len(), 0);
        let validity: BTreeMap<Hash, Validity> = hashes
            .iter()
            .map(|h| (*h, obs.op_validity(h).unwrap()))
            .collect();
        let members = (*obs.members(&doc)).clone();
        check_limits(&obs, &doc);
        for (inv, reds) in &single_use_concurrent {
            let valid = reds
                .iter()
                .filter(|r| obs.op_validity(r).unwrap().is_valid())
                .count();
            let revoked = obs
                .invitations(&doc)
                .iter()
                .any(|i| i.hash == *inv && !i.validity.is_valid());
            assert!(
                valid == 1 || (revoked && valid == 0),
                "single-use invitation admitted {valid} devices"
            );
        }
        match &reference {
            None => reference = Some((validity, members)),
            Some((v, m)) => {
                assert_eq!(&validity, v, "observers disagree on validity");
                assert_eq!(&members, m, "observers disagree on members");
            }
        }
    }
    // Every author replica, once it holds the union, agrees too.
    if let Some((v, m)) = &reference {
        for rep in &mut reps {
            for bytes in all.values() {
                rep.ingest(PeerTag::LOCAL, bytes).unwrap();
            }
            for h in &hashes {
                assert_eq!(rep.op_validity(h).as_ref(), v.get(h));
            }
            assert_eq!(&*rep.members(&doc), m);
        }
    }
}

/// INV-6: no invitation counts more valid redemptions than its limit.
fn check_limits(c: &Checker, doc: &PublicKey) {
    for inv in c.invitations(doc) {
        assert!(inv.redeemed_by.len() as u64 <= u64::from(inv.max_uses));
        let valid = c
            .ops()
            .filter(|op| match op {
                AnyVerified::Auth(v) => {
                    matches!(v.body.action, Action::Redeem { invitation, .. } if invitation == inv.hash)
                }
                _ => false,
            })
            .filter(|op| c.op_validity(&op.hash()) == Some(Validity::Valid))
            .count();
        assert!(valid as u64 <= u64::from(inv.max_uses));
    }
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()), 8..64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn invitations_converge(steps in steps(), seed in any::<u64>()) {
        run(steps, seed);
    }
}
