//! CGKA-36: a batch of received ops replays once, and ends in exactly the state that
//! receiving the same ops one by one gives. (Every replay from a checkpoint is checked against
//! a replay from the init in test builds: `state/checkpoint.rs`.) (The random-order property test is
//! `tests.rs::random_concurrent_histories_converge`, which delivers half its batches so.)

use std::collections::BTreeMap;

use super::tests::{Replica, broadcast, deliver, network};
use super::*;
use crate::crypto::hash::Hash;
use crate::signed::Signed;

/// Five members who each update concurrently, round after round, syncing among themselves
/// between rounds, then one of them updates last; a sixth, seated at the start, receives
/// nothing more.
fn concurrent_rounds(rounds: usize) -> (Vec<Replica>, StaticAuthority) {
    let (mut rs, auth) = network(6);
    let devices: Vec<_> = rs[1..].iter().map(Replica::id).collect();
    let key = rs[0].device.signing_key().clone();
    for op in rs[0].cgka.add_devices(&key, &devices, &auth).unwrap() {
        broadcast(&mut rs, &op, &auth);
    }
    let op = rs[0].cgka.update(&key, &auth).unwrap();
    broadcast(&mut rs, &op, &auth);
    for round in 0..rounds {
        for r in rs.iter_mut().take(5) {
            let key = r.device.signing_key().clone();
            r.cgka.update(&key, &auth).unwrap();
        }
        for from in 0..5 {
            for to in 0..5 {
                deliver(
                    &mut rs,
                    from,
                    to,
                    (round * 31 + from * 7 + to) as u64,
                    &auth,
                );
            }
        }
    }
    // One last update agrees on a root again.
    let op = rs[0].cgka.update(&key, &auth).unwrap();
    for r in rs.iter_mut().take(5).skip(1) {
        r.cgka
            .receive(Signed::decode(op.as_bytes()).unwrap(), &auth)
            .unwrap();
    }
    (rs, auth)
}

/// `ops` in an order that has every predecessor first but, among ops at the same depth,
/// puts larger hashes first: each such op after the first sorts before one already applied,
/// which costs a replay when received alone (CGKA-12).
fn out_of_replay_order(ops: Vec<CgkaOp>) -> Vec<CgkaOp> {
    let mut depth: BTreeMap<Hash, usize> = BTreeMap::new();
    for op in &ops {
        let d = op
            .predecessors
            .iter()
            .filter_map(|p| depth.get(p))
            .max()
            .map_or(0, |d| d + 1);
        depth.insert(op.hash(), d);
    }
    let mut ops = ops;
    ops.sort_by_key(|op| (depth[&op.hash()], std::cmp::Reverse(op.hash())));
    ops
}

fn receive_all(cgka: &mut Cgka, ops: &[CgkaOp], auth: &StaticAuthority) {
    for op in ops {
        let signed = Signed::decode(op.as_bytes()).unwrap();
        assert_eq!(cgka.receive(signed, auth), Ok(Received::Applied));
    }
}

#[test]
fn a_batch_replays_once_and_ends_where_op_by_op_receipt_ends() {
    let (rs, auth) = concurrent_rounds(4);
    let known = rs[5].cgka.op_count();
    let ops: Vec<CgkaOp> = rs[0].cgka.ops_in_order().skip(known).cloned().collect();
    let ops = out_of_replay_order(ops);
    let n = ops.len() as u64;

    let mut one_by_one = rs[5].cgka.clone();
    let before = one_by_one.generation();
    receive_all(&mut one_by_one, &ops, &auth);
    let eager_steps = one_by_one.generation() - before;

    let mut batched = rs[5].cgka.clone();
    let before = batched.generation();
    batched.defer_replay();
    receive_all(&mut batched, &ops, &auth);
    assert_eq!(batched.op_count(), one_by_one.op_count());
    assert!(ops.iter().all(|op| batched.contains_op(&op.hash())));
    batched.settle(&auth);
    let batched_steps = batched.generation() - before;

    // Same tree, heads, order and agreed epoch as op by op, and as the authors themselves.
    assert_eq!(batched.tree(), one_by_one.tree());
    assert_eq!(batched.tree(), rs[0].cgka.tree());
    assert_eq!(batched.heads(), one_by_one.heads());
    let order = |c: &Cgka| c.ops_in_order().map(CgkaOp::hash).collect::<Vec<_>>();
    assert_eq!(order(&batched), order(&one_by_one));
    let epoch = |c: &Cgka| c.current_epoch().map(|(h, k)| (h, k.clone()));
    assert!(epoch(&batched).is_some());
    assert_eq!(epoch(&batched), epoch(&one_by_one));
    assert_eq!(epoch(&batched), epoch(&rs[0].cgka));
    // Op by op, most arrivals replayed (from a checkpoint near the end); the batch applied
    // each op at most twice (appended before the first out-of-order arrival, then one replay).
    let total = batched.op_count() as u64;
    assert!(batched_steps <= n + total + 1, "{batched_steps} steps");
    assert!(
        eager_steps > batched_steps,
        "{eager_steps} steps: not out of order"
    );
}

#[test]
fn making_a_local_op_mid_batch_replays_first() {
    let (mut rs, auth) = concurrent_rounds(2);
    let known = rs[5].cgka.op_count();
    let ops: Vec<CgkaOp> = rs[0].cgka.ops_in_order().skip(known).cloned().collect();
    let ops = out_of_replay_order(ops);
    rs[5].cgka.defer_replay();
    receive_all(&mut rs[5].cgka, &ops, &auth);
    // The update is made against the tree of every op received, not a stale one.
    let key = rs[5].device.signing_key().clone();
    let op = rs[5].cgka.update(&key, &auth).unwrap();
    rs[5].cgka.settle(&auth);
    let heads: Vec<Hash> = rs[0].cgka.heads().iter().copied().collect();
    assert_eq!(op.predecessors, heads);
    let signed = Signed::decode(op.as_bytes()).unwrap();
    rs[0].cgka.receive(signed, &auth).unwrap();
    assert_eq!(rs[0].cgka.tree(), rs[5].cgka.tree());
    assert_eq!(epoch_hash(&rs[0]), Some(op.hash()));
    assert_eq!(epoch_hash(&rs[5]), Some(op.hash()));
}

fn epoch_hash(r: &Replica) -> Option<Hash> {
    r.cgka.current_epoch().map(|(h, _)| h)
}
