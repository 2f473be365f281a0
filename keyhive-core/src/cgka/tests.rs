//! CGKA scenario and property tests (CGKA-12..CGKA-24).

use std::collections::BTreeMap;

use super::*;
use crate::crypto::hash::Hash;
use crate::crypto::prekey::PrekeyPublic;
use crate::crypto::secret::SymmetricKey;
use crate::identity::{Device, DocumentId, IndividualId};
use crate::signed::Signed;

/// A replica: a device and its view of the document's CGKA.
pub(crate) struct Replica {
    pub device: Device,
    pub cgka: Cgka,
}

impl Replica {
    pub fn id(&self) -> IndividualId {
        self.device.id()
    }
    pub fn prekey(&self) -> PrekeyPublic {
        self.device.prekeys()[0].public()
    }
    /// CGKA-34: the device's seat key (its device key's X25519 form).
    pub fn seat_key(&self) -> PrekeyPublic {
        PrekeyPublic::of_device(&self.id().0).unwrap()
    }
    /// The leaf key of the `i`-th batched seat of a property test: the seat key every other
    /// time (a device-key seat op, CGKA-34), a card prekey otherwise (a batched add, CGKA-33),
    /// so that histories mix both.
    pub fn batch_key(&self, i: usize) -> PrekeyPublic {
        if i.is_multiple_of(4) {
            self.seat_key()
        } else {
            self.prekey()
        }
    }
}

/// `n` replicas of one document; replica 0 created it; everyone is an admin reader.
pub(crate) fn network(n: usize) -> (Vec<Replica>, StaticAuthority) {
    let devices: Vec<Device> = (0..n).map(|_| Device::generate(None)).collect();
    let mut authority = StaticAuthority::new();
    for d in &devices {
        authority.grant_admin(d.id(), d.prekeys()[0].public());
    }
    let document = DocumentId(crate::crypto::signing::SigningKey::generate().public_key());
    let (creator, init) = Cgka::create(document, &devices[0]).unwrap();
    let binding = creator.binding();
    let mut replicas = vec![Replica {
        device: devices[0].clone(),
        cgka: creator,
    }];
    for d in devices.into_iter().skip(1) {
        let signed = Signed::decode(init.as_bytes()).unwrap();
        let cgka = Cgka::from_init(&binding, signed, Some(&d), &authority).unwrap();
        replicas.push(Replica { device: d, cgka });
    }
    (replicas, authority)
}

/// Every op `replica` has applied, decoded again from its bytes as a peer receives them, in an
/// order shuffled by `seed`.
pub(crate) fn shuffled_ops(replica: &Replica, seed: u64) -> Vec<SignedCgkaOp> {
    let mut ops: Vec<Vec<u8>> = replica
        .cgka
        .ops_in_order()
        .map(|op| op.as_bytes().to_vec())
        .collect();
    shuffle(&mut ops, seed);
    ops.iter()
        .map(|bytes| Signed::decode(bytes).unwrap())
        .collect()
}

/// Delivers every op `from` has applied to `to`, in an order shuffled by `seed`.
pub(crate) fn deliver(
    replicas: &mut [Replica],
    from: usize,
    to: usize,
    seed: u64,
    authority: &StaticAuthority,
) {
    if from == to {
        return;
    }
    for op in shuffled_ops(&replicas[from], seed) {
        match replicas[to].cgka.receive(op, authority) {
            Ok(_) => {}
            Err(ReceiveError::ForeignInit) => {}
            Err(e) => panic!("unexpected receive error {e:?}"),
        }
    }
}

/// As [`deliver`], as one batch: replay deferred until the last op (CGKA-36).
pub(crate) fn deliver_batched(
    replicas: &mut [Replica],
    from: usize,
    to: usize,
    seed: u64,
    authority: &StaticAuthority,
) {
    replicas[to].cgka.defer_replay();
    deliver(replicas, from, to, seed, authority);
    replicas[to].cgka.settle(authority);
}

pub(crate) fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = (seed >> 33) as usize % (i + 1);
        items.swap(i, j);
    }
}

pub(crate) fn sync_all(replicas: &mut [Replica], seed: u64, authority: &StaticAuthority) {
    let n = replicas.len();
    for round in 0..2 {
        for from in 0..n {
            for to in 0..n {
                deliver(
                    replicas,
                    from,
                    to,
                    seed ^ (round * 1000 + from * 31 + to) as u64,
                    authority,
                );
            }
        }
    }
}

/// Publishes `op` from replica `from` to every other replica.
pub(crate) fn broadcast(replicas: &mut [Replica], op: &CgkaOp, authority: &dyn CgkaAuthority) {
    for r in replicas.iter_mut() {
        let signed = Signed::decode(op.as_bytes()).unwrap();
        r.cgka.receive(signed, authority).unwrap();
    }
}

/// Replica `by` adds replica `who` (seated on its device key, CGKA-34); every replica receives
/// the op, which is returned.
pub(crate) fn add_and_broadcast(
    replicas: &mut [Replica],
    by: usize,
    who: usize,
    authority: &dyn CgkaAuthority,
) -> CgkaOp {
    let (id, prekey) = (replicas[who].id(), replicas[who].prekey());
    let key = replicas[by].device.signing_key().clone();
    let op = replicas[by].cgka.add(&key, id, prekey, authority).unwrap();
    broadcast(replicas, &op, authority);
    op
}

/// Replica `who` updates its path; every replica receives the op, which is returned.
pub(crate) fn update_and_broadcast(
    replicas: &mut [Replica],
    who: usize,
    authority: &dyn CgkaAuthority,
) -> CgkaOp {
    let key = replicas[who].device.signing_key().clone();
    let op = replicas[who].cgka.update(&key, authority).unwrap();
    broadcast(replicas, &op, authority);
    op
}

pub(crate) fn epoch_of(r: &Replica) -> Option<(Hash, SymmetricKey)> {
    r.cgka.current_epoch().map(|(h, k)| (h, k.clone()))
}

#[test]
fn members_agree_on_root_after_update() {
    let (mut rs, auth) = network(5);
    for i in 1..5 {
        add_and_broadcast(&mut rs, 0, i, &auth);
    }
    assert!(rs[0].cgka.must_update_before_encrypt());
    update_and_broadcast(&mut rs, 2, &auth);
    let root = epoch_of(&rs[2]).unwrap();
    for r in &rs {
        assert_eq!(epoch_of(r).as_ref(), Some(&root));
        assert_eq!(r.cgka.tree(), rs[0].cgka.tree());
    }
}

#[test]
fn third_replica_rekeys_after_removal_and_removed_member_is_locked_out() {
    // BRIEF §9.5: A removes B; C, having seen it, writes next: B cannot read.
    let (mut rs, auth) = network(4);
    for i in 1..4 {
        add_and_broadcast(&mut rs, 0, i, &auth);
    }
    update_and_broadcast(&mut rs, 3, &auth);
    assert!(epoch_of(&rs[1]).is_some());
    let b = rs[1].id();
    let key = rs[0].device.signing_key().clone();
    let removal = rs[0].cgka.remove(&key, b, &auth).unwrap();
    // C (replica 2) learns of the removal; it must update before it encrypts.
    let signed = Signed::decode(removal.as_bytes()).unwrap();
    rs[2].cgka.receive(signed, &auth).unwrap();
    assert!(rs[2].cgka.must_update_before_encrypt());
    let key = rs[2].device.signing_key().clone();
    let update = rs[2].cgka.update(&key, &auth).unwrap();
    let (epoch, _) = epoch_of(&rs[2]).unwrap();
    assert_eq!(epoch, update.hash());
    broadcast(&mut rs, &removal, &auth);
    broadcast(&mut rs, &update, &auth);
    assert!(rs[1].cgka.epoch_secret(&epoch).is_none());
    assert!(epoch_of(&rs[1]).is_none());
    for i in [0, 2, 3] {
        assert_eq!(
            rs[i].cgka.epoch_secret(&epoch),
            rs[2].cgka.epoch_secret(&epoch)
        );
    }
}

#[test]
fn pull_only_peer_cannot_add_itself() {
    // BRIEF §9.1: a peer with only `pull` signs "add me"; every replica refuses it.
    let (mut rs, auth) = network(3);
    let intruder = Device::generate(None);
    let pk = intruder.prekeys()[0].public();
    // The intruder builds the op itself (it can follow the public DAG).
    let init = Signed::decode(rs[0].cgka.ops_in_order().next().unwrap().as_bytes()).unwrap();
    let mut view = Cgka::from_init(&rs[0].cgka.binding(), init, Some(&intruder), &auth).unwrap();
    assert!(matches!(
        view.add(intruder.signing_key(), intruder.id(), pk, &auth),
        Err(CreateError::Unauthorized)
    ));
    // Forged by hand, bypassing the local check.
    let forged = crate::signed::Verified::sign(
        crate::signed::Op::new(
            intruder.signing_key().public_key(),
            vec![rs[0].cgka.init_hash()],
            CgkaBody::Add {
                device: intruder.id(),
                prekey: pk,
            },
        ),
        intruder.signing_key(),
    )
    .unwrap();
    for r in rs.iter_mut() {
        let signed = Signed::decode(forged.as_bytes()).unwrap();
        assert_eq!(
            r.cgka.receive(signed, &auth),
            Err(ReceiveError::Unauthorized)
        );
        assert!(!r.cgka.members().contains(&intruder.id()));
    }
    // An admin adding a device with a prekey that is not the device's is refused too.
    let key = rs[0].device.signing_key().clone();
    let other = rs[1].id();
    assert!(matches!(
        rs[0].cgka.add(&key, other, pk, &auth),
        Err(CreateError::Unauthorized)
    ));
}

#[test]
fn tampered_update_path_is_detected() {
    let (mut rs, auth) = network(3);
    for i in 1..3 {
        add_and_broadcast(&mut rs, 0, i, &auth);
    }
    // Replica 1 sends a path whose wrapped secret does not match the announced keys.
    let key = rs[1].device.signing_key().clone();
    let slot = rs[1].cgka.tree().slot_of(&rs[1].id()).unwrap();
    let mut fresh =
        super::state::fresh_path(rs[1].cgka.tree(), &rs[1].cgka.document(), slot).unwrap();
    let last = fresh.path.nodes.len() - 1;
    fresh.path.nodes[last].public = PrekeyPublic([9; 32]);
    let op = crate::signed::Verified::sign(
        crate::signed::Op::new(
            key.public_key(),
            rs[1].cgka.heads().iter().copied().collect(),
            CgkaBody::Update(fresh.path),
        ),
        &key,
    )
    .unwrap();
    let signed = Signed::decode(op.as_bytes()).unwrap();
    rs[0].cgka.receive(signed, &auth).unwrap();
    assert!(rs[0].cgka.bad_paths().contains(&op.hash()));
    assert!(rs[0].cgka.must_update_before_encrypt());
}

#[test]
fn membership_sync_matches_capabilities() {
    let (mut rs, mut auth) = network(4);
    let key = rs[0].device.signing_key().clone();
    let target = auth.members();
    let plan = rs[0].cgka.sync_membership(&target);
    assert_eq!(plan.add.len(), 3);
    let ops = rs[0].cgka.apply_membership(&key, &plan, &auth).unwrap();
    for op in &ops {
        broadcast(&mut rs, op, &auth);
    }
    assert!(!rs[0].cgka.must_update_before_encrypt());
    // Revoke replica 3; replica 2 (an admin, but any reader would do) acts on it.
    let revoked = rs[3].id();
    assert!(!rs[2].cgka.must_rekey(&auth));
    auth.revoke(&revoked);
    // The capability graph changed: this replica may not encrypt until it acts on it.
    assert!(rs[2].cgka.must_rekey(&auth));
    assert_eq!(rs[2].cgka.revoked_members(&auth), vec![revoked]);
    let plan = rs[2].cgka.sync_membership(&auth.members());
    assert_eq!(plan.remove, vec![revoked]);
    let key2 = rs[2].device.signing_key().clone();
    let ops = rs[2].cgka.apply_membership(&key2, &plan, &auth).unwrap();
    assert_eq!(ops.len(), 2);
    for op in &ops {
        for r in rs.iter_mut() {
            let _ = r
                .cgka
                .receive(Signed::decode(op.as_bytes()).unwrap(), &auth);
        }
    }
    let (epoch, _) = epoch_of(&rs[2]).unwrap();
    assert!(!rs[2].cgka.must_rekey(&auth));
    assert!(rs[3].cgka.epoch_secret(&epoch).is_none());
    assert_eq!(epoch_of(&rs[0]).map(|e| e.0), Some(epoch));
}

#[test]
fn secrets_export_import_restores_epochs() {
    let (mut rs, auth) = network(3);
    for i in 1..3 {
        add_and_broadcast(&mut rs, 0, i, &auth);
    }
    update_and_broadcast(&mut rs, 1, &auth);
    let exported = rs[2].cgka.export_secrets();
    let init = Signed::decode(rs[2].cgka.ops_in_order().next().unwrap().as_bytes()).unwrap();
    // A restarted device without its CGKA secrets (fresh prekey-only view) ...
    let mut fresh =
        Cgka::from_init(&rs[2].cgka.binding(), init, Some(&rs[2].device), &auth).unwrap();
    for op in rs[2].cgka.ops_in_order() {
        let _ = fresh.receive(Signed::decode(op.as_bytes()).unwrap(), &auth);
    }
    fresh.import_secrets(&exported, &auth);
    let restored = fresh.current_epoch().map(|(h, k)| (h, k.clone()));
    assert!(restored.is_some());
    assert_eq!(restored, epoch_of(&rs[2]));
}

/// Ops of about three filled nodes: a fill spans several ops in the property tests.
pub(crate) const SMALL_FILL: usize = 4096 + 700;

#[test]
fn target_membership_plan_is_exact() {
    let (rs, auth) = network(3);
    let mut target = BTreeMap::new();
    target.insert(rs[1].id(), rs[1].prekey());
    let plan = rs[0].cgka.sync_membership(&target);
    assert_eq!(plan.remove, vec![rs[0].id()]);
    assert_eq!(plan.add, vec![(rs[1].id(), rs[1].prekey())]);
    let _ = auth;
}

fn seated(n: usize) -> (Vec<Replica>, StaticAuthority) {
    let (mut rs, auth) = network(n);
    for i in 1..n {
        add_and_broadcast(&mut rs, 0, i, &auth);
    }
    update_and_broadcast(&mut rs, 0, &auth);
    (rs, auth)
}

#[test]
fn concurrent_updates_leave_conflict_keys_until_next_update() {
    let (mut rs, auth) = seated(4);
    let k1 = rs[1].device.signing_key().clone();
    let k2 = rs[2].device.signing_key().clone();
    let u1 = rs[1].cgka.update(&k1, &auth).unwrap();
    let u2 = rs[2].cgka.update(&k2, &auth).unwrap();
    broadcast(&mut rs, &u1, &auth);
    broadcast(&mut rs, &u2, &auth);
    let root = rs[0].cgka.tree().root();
    assert_eq!(
        rs[0].cgka.tree().entries(root).len(),
        2,
        "conflict keys at the root"
    );
    for r in &rs {
        assert!(r.cgka.must_update_before_encrypt());
        assert_eq!(r.cgka.tree(), rs[0].cgka.tree());
    }
    let k3 = rs[3].device.signing_key().clone();
    let u3 = rs[3].cgka.update(&k3, &auth).unwrap();
    broadcast(&mut rs, &u3, &auth);
    let agreed = epoch_of(&rs[3]).unwrap();
    for r in &rs {
        assert_eq!(epoch_of(r).as_ref(), Some(&agreed));
    }
}

#[test]
fn member_added_concurrently_with_a_removal_receives_the_next_secret() {
    // BRIEF §9.8 (p2panda #807).
    let (mut rs, auth) = network(5);
    for i in 1..4 {
        add_and_broadcast(&mut rs, 0, i, &auth);
    }
    update_and_broadcast(&mut rs, 0, &auth);
    // Replica 0 removes 1 while replica 2 concurrently adds 4.
    let key = rs[0].device.signing_key().clone();
    let id1 = rs[1].id();
    let removal = rs[0].cgka.remove(&key, id1, &auth).unwrap();
    let k2 = rs[2].device.signing_key().clone();
    let (id4, pk4) = (rs[4].id(), rs[4].prekey());
    let add = rs[2].cgka.add(&k2, id4, pk4, &auth).unwrap();
    for r in rs.iter_mut() {
        for op in [&add, &removal] {
            let _ = r
                .cgka
                .receive(Signed::decode(op.as_bytes()).unwrap(), &auth);
        }
    }
    let k3 = rs[3].device.signing_key().clone();
    let update = rs[3].cgka.update(&k3, &auth).unwrap();
    broadcast(&mut rs, &update, &auth);
    let agreed = epoch_of(&rs[3]).unwrap();
    assert_eq!(epoch_of(&rs[4]).as_ref(), Some(&agreed));
    assert_eq!(epoch_of(&rs[2]).as_ref(), Some(&agreed));
    assert!(rs[1].cgka.epoch_secret(&agreed.0).is_none());
}

#[test]
fn update_in_full_tree_costs_log_n_wraps() {
    // Join pattern: each member updates once after being added; the tree has no blanks.
    let (mut rs, auth) = network(16);
    for i in 1..16 {
        add_and_broadcast(&mut rs, 0, i, &auth);
        update_and_broadcast(&mut rs, i, &auth);
    }
    let key = rs[5].device.signing_key().clone();
    let op = rs[5].cgka.update(&key, &auth).unwrap();
    let CgkaBody::Update(path) = &op.body else {
        panic!("not an update")
    };
    let wraps: usize = path.nodes.iter().map(|n| n.wrapped.len()).sum();
    assert_eq!(path.nodes.len(), 5);
    assert_eq!(wraps, 4, "one wrap per level in a tree without blanks");
}

#[test]
fn op_depending_on_an_unauthorised_op_is_applied_but_the_unauthorised_op_stays_inert() {
    // CGKA-15, CGKA-20: replica 1's capability view (wrongly, or before a revocation arrived)
    // lets an intruder in; replica 0's does not. Replica 0 accepts replica 1's next update
    // (it depends on the intruder's add) but not its inner keys, which the intruder can read.
    let (mut rs, strict) = network(3);
    for i in 1..3 {
        let (id, pk) = (rs[i].id(), rs[i].prekey());
        let key0 = rs[0].device.signing_key().clone();
        let op = rs[0].cgka.add(&key0, id, pk, &strict).unwrap();
        broadcast(&mut rs, &op, &strict);
    }
    let intruder = Device::generate(None);
    let ipk = intruder.prekeys()[0].public();
    let mut lax = strict.clone();
    lax.grant_admin(intruder.id(), ipk);
    let forged = crate::signed::Verified::sign(
        crate::signed::Op::new(
            intruder.signing_key().public_key(),
            rs[1].cgka.heads().iter().copied().collect(),
            CgkaBody::Add {
                device: intruder.id(),
                prekey: ipk,
            },
        ),
        intruder.signing_key(),
    )
    .unwrap();
    rs[1]
        .cgka
        .receive(Signed::decode(forged.as_bytes()).unwrap(), &lax)
        .unwrap();
    assert!(rs[1].cgka.members().contains(&intruder.id()));
    assert_eq!(
        rs[1].cgka.tree().capacity(),
        4,
        "same tree shape on both sides"
    );
    let key1 = rs[1].device.signing_key().clone();
    let update = rs[1].cgka.update(&key1, &lax).unwrap();

    // The intruder, following the DAG with the lax view, reads the update's root.
    let init = Signed::decode(rs[0].cgka.ops_in_order().next().unwrap().as_bytes()).unwrap();
    let mut spy = Cgka::from_init(&rs[0].cgka.binding(), init, Some(&intruder), &lax).unwrap();
    for op in rs[1].cgka.ops_in_order() {
        let _ = spy.receive(Signed::decode(op.as_bytes()).unwrap(), &lax);
    }
    assert!(spy.epoch_secret(&update.hash()).is_some());

    assert_eq!(
        rs[0]
            .cgka
            .receive(Signed::decode(forged.as_bytes()).unwrap(), &strict),
        Err(ReceiveError::Unauthorized)
    );
    assert_eq!(
        rs[0]
            .cgka
            .receive(Signed::decode(update.as_bytes()).unwrap(), &strict),
        Ok(Received::Applied)
    );
    assert!(!rs[0].cgka.members().contains(&intruder.id()));
    // Its path was wrapped for a key replica 0 never seated: inner keys discarded, so replica
    // 0 will not encrypt under an epoch the intruder knows.
    assert!(rs[0].cgka.must_update_before_encrypt());
    rs[1].cgka.refresh(&strict);
    assert_eq!(rs[0].cgka.tree(), rs[1].cgka.tree());
    assert_eq!(rs[0].cgka.heads(), rs[1].cgka.heads());
    assert!(rs[1].cgka.must_update_before_encrypt());
}

#[test]
fn ops_arriving_in_reverse_order_are_all_applied() {
    let (mut rs, auth) = network(3);
    let key0 = rs[0].device.signing_key().clone();
    let mut ops = Vec::new();
    for i in 1..3 {
        let (id, pk) = (rs[i].id(), rs[i].prekey());
        ops.push(rs[0].cgka.add(&key0, id, pk, &auth).unwrap());
    }
    ops.push(rs[0].cgka.update(&key0, &auth).unwrap());
    for op in ops.iter().rev() {
        let _ = rs[2]
            .cgka
            .receive(Signed::decode(op.as_bytes()).unwrap(), &auth)
            .unwrap();
    }
    assert_eq!(rs[2].cgka.tree(), rs[0].cgka.tree());
    assert_eq!(epoch_of(&rs[2]), epoch_of(&rs[0]));
}

#[test]
fn update_after_a_removal_stays_logarithmic() {
    // 32 members joined one by one (each updated once); one is removed; the next update
    // wraps at most two secrets per level (the removed leaf's blank path splits one level's
    // resolution per level below it).
    let (mut rs, auth) = network(32);
    for i in 1..32 {
        add_and_broadcast(&mut rs, 0, i, &auth);
        update_and_broadcast(&mut rs, i, &auth);
    }
    let key = rs[0].device.signing_key().clone();
    let id = rs[20].id();
    let op = rs[0].cgka.remove(&key, id, &auth).unwrap();
    broadcast(&mut rs, &op, &auth);
    let op = update_and_broadcast(&mut rs, 3, &auth);
    let CgkaBody::Update(path) = &op.body else {
        panic!("not an update")
    };
    let wraps: usize = path.nodes.iter().map(|n| n.wrapped.len()).sum();
    assert_eq!(path.nodes.len(), 6);
    assert!(wraps <= 2 * 5, "{wraps} wraps for 5 levels");
    let agreed = epoch_of(&rs[3]).unwrap();
    for (i, r) in rs.iter().enumerate() {
        if i == 20 {
            assert!(r.cgka.epoch_secret(&agreed.0).is_none());
        } else {
            assert_eq!(epoch_of(r).as_ref(), Some(&agreed));
        }
    }
}
