//! Hostile inits and removes (issue 9 items 5 and 7): CGKA-17, CGKA-25, CGKA-26.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::tests::{Replica, broadcast, network, shuffle};
use super::*;
use crate::capability::Checker;
use crate::crypto::hash::Hash;
use crate::crypto::prekey::PrekeyPublic;
use crate::identity::{Device, DocumentId, IndividualId};
use crate::signed::{Op, Signed, Verified};

/// An authority like the replica's (`keyhive-sync` REP-1): seats are judged by who ever held
/// `read` (a revocation does not make an earlier add inert), removes and updates by who holds
/// it now.
#[derive(Clone, Default)]
struct Historical {
    ever: StaticAuthority,
    now: StaticAuthority,
}

impl Historical {
    fn grant_admin(&mut self, device: IndividualId, prekey: PrekeyPublic) {
        self.ever.grant_admin(device, prekey);
        self.now.grant_admin(device, prekey);
    }

    fn grant_read(&mut self, device: IndividualId, prekey: PrekeyPublic) {
        self.ever.grant_read(device, prekey);
        self.now.grant_read(device, prekey);
    }

    fn revoke(&mut self, device: &IndividualId) {
        self.now.revoke(device);
    }
}

impl CgkaAuthority for Historical {
    fn may_add(&self, adder: &IndividualId, device: &IndividualId, prekey: &PrekeyPublic) -> bool {
        self.ever.may_add(adder, device, prekey)
    }
    fn may_remove(&self, remover: &IndividualId, device: &IndividualId) -> bool {
        self.now.may_remove(remover, device)
    }
    fn is_member(&self, device: &IndividualId) -> bool {
        self.now.is_member(device)
    }
    fn prekey_of(&self, device: &IndividualId) -> Option<PrekeyPublic> {
        self.now.prekey_of(device)
    }
}

/// Signs `body` as `device` on top of `predecessors`, bypassing every local check (what a
/// hostile peer can always do).
fn forge(device: &Device, predecessors: &[Hash], body: CgkaBody) -> CgkaOp {
    let mut predecessors = predecessors.to_vec();
    predecessors.sort_unstable();
    Verified::sign(
        Op::new(device.signing_key().public_key(), predecessors, body),
        device.signing_key(),
    )
    .unwrap()
}

fn signed(op: &CgkaOp) -> SignedCgkaOp {
    Signed::decode(op.as_bytes()).unwrap()
}

fn applied(cgka: &Cgka) -> BTreeSet<Hash> {
    cgka.ops_in_order().map(CgkaOp::hash).collect()
}

/// CGKA-25: a document created through the checker has a genesis naming its init; only that
/// init starts a replica, whoever else signs an init for the document.
#[test]
fn only_the_init_the_genesis_names_starts_a_replica() {
    let alice = Device::generate(None);
    let bob = Device::generate(None);
    let mut checker = Checker::default();
    let created = checker.create_document(&alice).unwrap();
    let doc = created.id();
    let binding = checker.key_agreement(&doc).unwrap();
    assert_eq!(binding, created.cgka.binding());
    assert_eq!(binding.init, created.init.hash());
    assert_eq!(binding.creator, alice.id());
    let mut authority = StaticAuthority::new();
    authority.grant_admin(alice.id(), alice.prekeys()[0].public());
    authority.grant_read(bob.id(), bob.prekeys()[0].public());

    // A reader's init for the document, and a second one by the creator (on a card prekey:
    // `Cgka::create` seats on the device key, CGKA-34, so it would sign the same init again).
    let (_, by_reader) = Cgka::create(doc, &bob).unwrap();
    let by_creator = forge(
        &alice,
        &[],
        CgkaBody::Init {
            document: doc,
            prekey: alice.prekeys()[0].public(),
        },
    );
    assert_ne!(by_creator.hash(), binding.init);
    for forged in [&by_reader, &by_creator] {
        assert!(matches!(
            Cgka::from_init(&binding, signed(forged), Some(&bob), &authority),
            Err(InitError::Binding(InitBindingError::NotNamed { .. }))
        ));
        assert!(matches!(
            check_init(Some(&binding), forged),
            Err(InitBindingError::NotNamed { .. })
        ));
    }
    // Without the genesis no init is accepted; non-init ops are not an init's business.
    assert_eq!(
        check_init(None, &created.init),
        Err(InitBindingError::GenesisUnknown)
    );
    let mut bob_view =
        Cgka::from_init(&binding, signed(&created.init), Some(&bob), &authority).unwrap();
    assert_eq!(check_init(Some(&binding), &created.init), Ok(()));
    // Once started, any other init is refused (CGKA-2).
    for forged in [&by_reader, &by_creator] {
        assert_eq!(
            bob_view.receive(signed(forged), &authority),
            Err(ReceiveError::ForeignInit)
        );
    }
    let add = forge(
        &alice,
        &[binding.init],
        CgkaBody::Add {
            device: bob.id(),
            prekey: bob.prekeys()[0].public(),
        },
    );
    assert_eq!(check_init(Some(&binding), &add), Ok(()));
    assert_eq!(
        binding.check(&add),
        Err(InitBindingError::NotInit),
        "an add is not an init"
    );
    // A binding naming an init its creator did not issue, or another document, refuses it.
    let wrong_creator = InitBinding {
        init: by_reader.hash(),
        ..binding
    };
    assert_eq!(
        wrong_creator.check(&by_reader),
        Err(InitBindingError::NotCreator { issuer: bob.id() })
    );
    let other = DocumentId(crate::crypto::signing::SigningKey::generate().public_key());
    let elsewhere = InitBinding {
        document: other,
        ..binding
    };
    assert!(matches!(
        elsewhere.check(&created.init),
        Err(InitBindingError::WrongDocument { .. })
    ));
}

/// The ops of the removal scenario and which of them every replica must refuse.
struct RemovalScenario {
    init: CgkaOp,
    binding: InitBinding,
    /// Accepted everywhere, in creation order.
    accepted: Vec<CgkaOp>,
    /// Refused everywhere, with the refusal expected once their predecessors are present.
    refused: Vec<(CgkaOp, ReceiveError)>,
    authority: Historical,
    devices: Vec<Device>,
}

/// Replica 0 and 1 are admins, 2 and 3 readers; 3 is then revoked. Legitimate: 0 removes 3,
/// and 2 (a reader acting on the revocation) concurrently removes 3 too, then 0 re-keys.
/// Refused: reader 2 removes a stranger who was never seated (CGKA-26); admin 1, having seen
/// 0's removal, removes 3 again (CGKA-26); a stranger removes a stranger (CGKA-17).
fn removal_scenario() -> RemovalScenario {
    let (mut rs, _) = network(4);
    let mut auth = Historical::default();
    for (i, r) in rs.iter().enumerate() {
        if i < 2 {
            auth.grant_admin(r.id(), r.prekey());
        } else {
            auth.grant_read(r.id(), r.prekey());
        }
    }
    let init = rs[0].cgka.ops_in_order().next().unwrap().clone();
    let binding = rs[0].cgka.binding();
    let mut accepted = Vec::new();
    let key0 = rs[0].device.signing_key().clone();
    for i in 1..4 {
        let (id, pk) = (rs[i].id(), rs[i].prekey());
        let op = rs[0].cgka.add(&key0, id, pk, &auth).unwrap();
        broadcast(&mut rs, &op, &auth);
        accepted.push(op);
    }
    let target = rs[3].id();
    // Before the revocation a reader may not remove another reader (CGKA-17).
    let key2 = rs[2].device.signing_key().clone();
    assert_eq!(
        rs[2].cgka.remove(&key2, target, &auth).unwrap_err(),
        CreateError::Unauthorized
    );
    auth.revoke(&target);
    let r1 = rs[0].cgka.remove(&key0, target, &auth).unwrap();
    let r2 = rs[2].cgka.remove(&key2, target, &auth).unwrap();
    let stranger = Device::generate(None);
    let n1 = forge(
        &rs[2].device,
        &rs[2].cgka.heads().iter().copied().collect::<Vec<_>>(),
        CgkaBody::Remove {
            device: stranger.id(),
        },
    );
    rs[1].cgka.receive(signed(&r1), &auth).unwrap();
    let key1 = rs[1].device.signing_key().clone();
    assert_eq!(
        rs[1].cgka.remove(&key1, target, &auth).unwrap_err(),
        CreateError::NotSeated(target),
        "the local builder refuses a remove that changes nothing"
    );
    let n2 = forge(
        &rs[1].device,
        &rs[1].cgka.heads().iter().copied().collect::<Vec<_>>(),
        CgkaBody::Remove { device: target },
    );
    let x1 = forge(
        &Device::generate(None),
        &[r1.hash()],
        CgkaBody::Remove {
            device: stranger.id(),
        },
    );
    rs[0].cgka.receive(signed(&r2), &auth).unwrap();
    let rekey = rs[0].cgka.update(&key0, &auth).unwrap();
    accepted.extend([r1, r2, rekey]);
    RemovalScenario {
        init,
        binding,
        accepted,
        refused: vec![
            (n1, ReceiveError::NotSeated(stranger.id())),
            (n2, ReceiveError::NotSeated(target)),
            (x1, ReceiveError::Unauthorized),
        ],
        authority: auth,
        devices: rs.into_iter().map(|r| r.device).collect(),
    }
}

/// Delivers every op of `s` to a fresh replica owned by `device`, in the order `seed` picks,
/// twice (the second pass re-offers what was refused or quarantined).
fn replay_scenario(s: &RemovalScenario, device: &Device, seed: u64) -> Replica {
    let mut cgka =
        Cgka::from_init(&s.binding, signed(&s.init), Some(device), &s.authority).unwrap();
    let mut ops: Vec<&CgkaOp> = s
        .accepted
        .iter()
        .chain(s.refused.iter().map(|(op, _)| op))
        .collect();
    for pass in 0..2u64 {
        shuffle(&mut ops, seed ^ pass);
        for op in &ops {
            let _ = cgka.receive(signed(op), &s.authority);
        }
    }
    Replica {
        device: device.clone(),
        cgka,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// CGKA-17, CGKA-26: whatever order the ops arrive in, every replica accepts the same
    /// removes, refuses the same no-op and unauthorised ones with the same error, and ends with
    /// the same tree, in which the revoked device is gone and the re-key is the agreed epoch.
    #[test]
    fn removal_verdicts_do_not_depend_on_arrival_order(seeds in prop::array::uniform3(any::<u64>())) {
        let s = removal_scenario();
        let expected: BTreeSet<Hash> = std::iter::once(s.init.hash())
            .chain(s.accepted.iter().map(CgkaOp::hash))
            .collect();
        let rekey = s.accepted.last().unwrap().hash();
        let mut trees = Vec::new();
        // Devices 1 and 2 stay members and did not issue the re-key, so they learn it.
        for (owner, seed) in [1, 2, 1].into_iter().zip(seeds) {
            let mut r = replay_scenario(&s, &s.devices[owner], seed);
            prop_assert_eq!(applied(&r.cgka), expected.clone());
            for (op, error) in &s.refused {
                prop_assert_eq!(r.cgka.receive(signed(op), &s.authority), Err(error.clone()));
            }
            prop_assert!(!r.cgka.members().contains(&s.devices[3].id()));
            prop_assert_eq!(r.cgka.current_epoch().map(|(h, _)| h), Some(rekey));
            trees.push(r.cgka.tree().clone());
        }
        prop_assert!(trees.windows(2).all(|w| w[0] == w[1]));
        // The revoked device, even given every op, never learns the re-key.
        let locked_out = replay_scenario(&s, &s.devices[3], seeds[0]);
        prop_assert!(locked_out.cgka.epoch_secret(&rekey).is_none());
    }
}

/// CGKA-17: a reader (not an admin) may carry out a revocation; the removal applies
/// everywhere and the reader's re-key reaches every member but the removed device.
#[test]
fn a_reader_removes_a_revoked_device_and_rekeys() {
    let (mut rs, _) = network(3);
    let mut auth = Historical::default();
    auth.grant_admin(rs[0].id(), rs[0].prekey());
    for r in &rs[1..] {
        auth.grant_read(r.id(), r.prekey());
    }
    let key0 = rs[0].device.signing_key().clone();
    for i in 1..3 {
        let (id, pk) = (rs[i].id(), rs[i].prekey());
        let op = rs[0].cgka.add(&key0, id, pk, &auth).unwrap();
        broadcast(&mut rs, &op, &auth);
    }
    let gone = rs[2].id();
    auth.revoke(&gone);
    let key1 = rs[1].device.signing_key().clone();
    let removal = rs[1].cgka.remove(&key1, gone, &auth).unwrap();
    broadcast(&mut rs, &removal, &auth);
    let update = rs[1].cgka.update(&key1, &auth).unwrap();
    broadcast(&mut rs, &update, &auth);
    assert!(!rs[0].cgka.members().contains(&gone));
    assert_eq!(
        rs[0].cgka.current_epoch().map(|(h, k)| (h, k.clone())),
        rs[1].cgka.current_epoch().map(|(h, k)| (h, k.clone()))
    );
    assert_eq!(rs[0].cgka.current_epoch().unwrap().0, update.hash());
    assert!(rs[2].cgka.epoch_secret(&update.hash()).is_none());
    // The removed device, no longer a reader, may not remove anyone (CGKA-17).
    let key2 = rs[2].device.signing_key().clone();
    let other = rs[0].id();
    assert_eq!(
        rs[2].cgka.remove(&key2, other, &auth).unwrap_err(),
        CreateError::Unauthorized
    );
}

/// CGKA-26: a remove parked for a missing predecessor is judged once that arrives: a no-op
/// one is then not applied, and re-offering it gives the typed refusal.
#[test]
fn a_parked_no_op_remove_is_refused_when_its_past_arrives() {
    let (mut rs, auth) = network(2);
    let key0 = rs[0].device.signing_key().clone();
    let (id, pk) = (rs[1].id(), rs[1].prekey());
    let add = rs[0].cgka.add(&key0, id, pk, &auth).unwrap();
    let stranger = IndividualId(crate::crypto::signing::SigningKey::generate().public_key());
    let noop = forge(
        &rs[0].device,
        &[add.hash()],
        CgkaBody::Remove { device: stranger },
    );
    assert!(matches!(
        rs[1].cgka.receive(signed(&noop), &auth),
        Ok(Received::Pending(_))
    ));
    assert_eq!(
        rs[1].cgka.receive(signed(&add), &auth),
        Ok(Received::Applied)
    );
    assert!(!applied(&rs[1].cgka).contains(&noop.hash()));
    assert_eq!(
        rs[1].cgka.receive(signed(&noop), &auth),
        Err(ReceiveError::NotSeated(stranger))
    );
    assert_eq!(applied(&rs[1].cgka), applied(&rs[0].cgka));
}

/// CGKA-26 on replay: a remove that one replica admitted while its view seated the device
/// (here: it wrongly trusted an intruder's add) and that the others refused must not unseat a
/// concurrent, authorised re-add once every replica shares the same view. Found by
/// `divergent_views_with_fills_never_leak_an_epoch` (CI, 2026-12-02): the lax replica's tree
/// lost the device, the others kept it. Hash order decides whether the remove replays after
/// the re-add, so this repeats until that order occurred.
#[test]
fn a_remove_admitted_under_another_view_does_not_unseat_a_concurrent_add() {
    let mut remove_replayed_last = 0;
    for _ in 0..64 {
        // 0 (lax) trusts intruder 2; 1 (strict) does not; 3 is the device added twice.
        let (mut rs, lax) = network(4);
        let mut strict = lax.clone();
        strict.revoke(&rs[2].id());
        let (target, target_pk) = (rs[3].id(), rs[3].prekey());
        let key2 = rs[2].device.signing_key().clone();
        let intruder_add = rs[2].cgka.add(&key2, target, target_pk, &lax).unwrap();
        rs[0].cgka.receive(signed(&intruder_add), &lax).unwrap();
        let key0 = rs[0].device.signing_key().clone();
        let remove = rs[0].cgka.remove(&key0, target, &lax).unwrap();
        let key1 = rs[1].device.signing_key().clone();
        let add = rs[1].cgka.add(&key1, target, target_pk, &strict).unwrap();

        rs[0].cgka.refresh(&strict);
        rs[0].cgka.receive(signed(&add), &strict).unwrap();
        assert_eq!(
            rs[1].cgka.receive(signed(&intruder_add), &strict),
            Err(ReceiveError::Unauthorized)
        );
        assert_eq!(
            rs[1].cgka.receive(signed(&remove), &strict),
            Err(ReceiveError::NotSeated(target))
        );

        let order: Vec<Hash> = applied_in_order(&rs[0].cgka);
        let at = |h: Hash| order.iter().position(|x| *x == h);
        if at(remove.hash()) > at(add.hash()) {
            remove_replayed_last += 1;
        }
        assert!(rs[0].cgka.members().contains(&target));
        assert_eq!(rs[0].cgka.tree(), rs[1].cgka.tree());
        if remove_replayed_last > 0 && at(remove.hash()) < at(add.hash()) {
            return;
        }
    }
    panic!("the remove never replayed on both sides of the concurrent add");
}

fn applied_in_order(cgka: &Cgka) -> Vec<Hash> {
    cgka.ops_in_order().map(CgkaOp::hash).collect()
}
