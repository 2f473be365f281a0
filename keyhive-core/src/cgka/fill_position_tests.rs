//! Positioned fills (CGKA-35): the builder's form, tampered commitments and positions, fills
//! concurrent with updates, and fills written before CGKA-35.

use super::op::{CgkaBody, FillNodes, FilledNode, PositionedFill, WrappedSecret, position_node};
use super::tests::{Replica, network, shuffle};
use super::tree::Tree;
use super::*;
use crate::crypto::hash::Hash;
use crate::crypto::prekey::PrekeyPublic;
use crate::signed::{Op, Signed, Verified};

/// `n` replicas, every one seated by replica 0 one by one, nobody has updated: every inner
/// node is blank.
fn seated_blank(n: usize) -> (Vec<Replica>, StaticAuthority) {
    let (mut rs, auth) = network(n);
    for i in 1..n {
        let (id, pk) = (rs[i].id(), rs[i].prekey());
        let key = rs[0].device.signing_key().clone();
        let op = rs[0].cgka.add(&key, id, pk, &auth).unwrap();
        for r in rs.iter_mut() {
            r.cgka
                .receive(Signed::decode(op.as_bytes()).unwrap(), &auth)
                .unwrap();
        }
    }
    (rs, auth)
}

/// Delivers `ops` to every replica but the first, each in its own shuffled order.
fn deliver_shuffled(rs: &mut [Replica], ops: &[&CgkaOp], auth: &StaticAuthority) {
    let mut bytes: Vec<Vec<u8>> = ops.iter().map(|op| op.as_bytes().to_vec()).collect();
    for (i, r) in rs.iter_mut().enumerate().skip(1) {
        shuffle(&mut bytes, 7 * i as u64 + 3);
        for b in &bytes {
            r.cgka.receive(Signed::decode(b).unwrap(), auth).unwrap();
        }
    }
}

/// Inner nodes holding an entry written by `op`.
fn written_by(tree: &Tree, op: &Hash) -> Vec<u32> {
    (1..2 * tree.capacity() - 1)
        .step_by(2)
        .filter(|node| tree.entries(*node).iter().any(|e| e.op == *op))
        .collect()
}

/// The body of a positioned fill op.
fn positioned(op: &CgkaOp) -> PositionedFill {
    match &op.body {
        CgkaBody::FillByPosition(fill) => fill.clone(),
        other => panic!("not a positioned fill: {other:?}"),
    }
}

/// `op` with `body` in place of its own, signed again by its issuer (`replica`'s device).
fn resigned(replica: &Replica, op: &CgkaOp, body: CgkaBody) -> CgkaOp {
    let key = replica.device.signing_key();
    Verified::sign(
        Op::new(key.public_key(), op.predecessors.clone(), body),
        key,
    )
    .unwrap()
}

/// CGKA-35: the builder writes positioned fills; every wrap names a node strictly below its
/// filled node, the commitment is over the keys at those positions in the filler's tree, and
/// every replica, whatever the delivery order, writes every filled node and reads the update
/// that follows.
#[test]
fn cgka35_the_builder_writes_positioned_fills_that_every_replica_applies() {
    let (mut rs, auth) = seated_blank(24);
    let before = rs[1].cgka.tree().clone();
    let key = rs[0].device.signing_key().clone();
    let fills = rs[0]
        .cgka
        .fill_within(&key, &auth, 4096 + 1200, false)
        .unwrap();
    assert!(fills.len() >= 2, "{} ops", fills.len());
    // The first op's commitment, recomputed from the filler's tree before the fill.
    let first = positioned(&fills[0]);
    let mut recipients = Vec::new();
    let mut in_op: std::collections::HashMap<u32, PrekeyPublic> = Default::default();
    for n in &first.nodes {
        let mut keys = Vec::new();
        for w in &n.wrapped {
            let at = position_node(n.node, w.at).unwrap();
            assert!(at != n.node && super::tree::in_subtree(at, n.node));
            let key = match in_op.get(&at) {
                Some(k) => *k,
                None => {
                    let mut held: Vec<PrekeyPublic> =
                        before.entries(at).iter().map(|e| e.public).collect();
                    held.sort_unstable();
                    held[w.rank as usize]
                }
            };
            keys.push(key);
        }
        in_op.insert(n.node, n.public);
        recipients.push((n.node, keys));
    }
    let expected = path::recipients_commitment(
        &rs[0].cgka.document(),
        &first.ephemeral,
        recipients.iter().map(|(n, k)| (*n, k.as_slice())),
    );
    assert_eq!(expected, first.recipients);

    let update = rs[0].cgka.update(&key, &auth).unwrap();
    let ops: Vec<&CgkaOp> = fills.iter().chain([&update]).collect();
    deliver_shuffled(&mut rs, &ops, &auth);
    let filled: usize = fills.iter().map(|f| positioned(f).nodes.len()).sum();
    let written: usize = fills
        .iter()
        .map(|f| written_by(rs[0].cgka.tree(), &f.hash()).len())
        .sum();
    assert_eq!(written, filled, "every filled node is written");
    for r in &rs {
        assert_eq!(r.cgka.tree(), rs[0].cgka.tree());
        assert!(r.cgka.epoch_secret(&update.hash()).is_some());
    }
}

/// CGKA-35: a fill whose commitment or positions were tampered with (and signed again by
/// its issuer) is inert on every replica, whatever the delivery order: nothing written, no
/// error, no split; the honest op is written (so the check can fail).
#[test]
fn cgka35_a_tampered_commitment_or_position_makes_the_fill_inert_everywhere() {
    let (mut rs, auth) = seated_blank(8);
    let key = rs[0].device.signing_key().clone();
    let fills = rs[0].cgka.fill(&key, &auth).unwrap();
    assert_eq!(fills.len(), 1);
    let honest = positioned(&fills[0]);

    let mut commitment = honest.clone();
    commitment.recipients[0] ^= 1;
    // A leaf holds one key: rank 1 names nothing.
    let mut rank = honest.clone();
    let level1 = rank
        .nodes
        .iter_mut()
        .find(|n| super::tree::level(n.node) == 1)
        .unwrap();
    level1.wrapped[0].rank = 1;
    // A chained node wraps once, for its right child's resolution: point it at another node
    // below it that holds a key (one of the right child's leaves), keeping CGKA-3's order.
    let mut moved = honest.clone();
    let chained = moved
        .nodes
        .iter_mut()
        .find(|n| super::tree::level(n.node) == 2 && n.wrapped.len() == 1)
        .unwrap();
    let right = super::tree::children(chained.node).1;
    let leftmost = chained.node - 3;
    assert_eq!(
        chained.wrapped[0].at,
        right - leftmost,
        "wraps its right child"
    );
    chained.wrapped[0].at = right + 1 - leftmost;

    for (name, body) in [
        ("commitment", commitment),
        ("rank", rank),
        ("position", moved),
    ] {
        let tampered = resigned(&rs[0], &fills[0], CgkaBody::FillByPosition(body));
        let mut copies: Vec<Cgka> = rs.iter().skip(1).map(|r| r.cgka.clone()).collect();
        for (i, cgka) in copies.iter_mut().enumerate() {
            let signed = Signed::decode(tampered.as_bytes()).unwrap();
            assert_eq!(
                cgka.receive(signed, &auth),
                Ok(Received::Applied),
                "{name}: replica {i}"
            );
            assert!(
                written_by(cgka.tree(), &tampered.hash()).is_empty(),
                "{name}: replica {i} wrote a tampered fill"
            );
            cgka.replay_from_scratch(&auth);
            assert!(written_by(cgka.tree(), &tampered.hash()).is_empty());
        }
        assert!(
            copies.iter().all(|c| c.tree() == copies[0].tree()),
            "{name}"
        );
    }
    // The honest op, to the same replicas: written.
    deliver_shuffled(&mut rs, &[&fills[0]], &auth);
    let written = written_by(rs[1].cgka.tree(), &fills[0].hash());
    assert_eq!(written.len(), honest.nodes.len());
}

/// CGKA-35: a fill concurrent with an update that supersedes a key it wraps for is still
/// applied on every replica, in whichever order the two replay: positions are resolved in
/// the tree the fill was made against (the update's key is not the fill's recipient), so only
/// the nodes the update itself wrote are skipped (CGKA-28).
#[test]
fn cgka35_a_fill_concurrent_with_an_update_still_applies() {
    let mut update_first_seen = false;
    for trial in 0..24 {
        let (mut rs, auth) = seated_blank(8);
        let key0 = rs[0].device.signing_key().clone();
        let key5 = rs[5].device.signing_key().clone();
        let fills = rs[0].cgka.fill(&key0, &auth).unwrap();
        let update = rs[5].cgka.update(&key5, &auth).unwrap();
        let mut everyone: Vec<&CgkaOp> = fills.iter().collect();
        everyone.push(&update);
        for r in rs.iter_mut() {
            for op in &everyone {
                r.cgka
                    .receive(Signed::decode(op.as_bytes()).unwrap(), &auth)
                    .unwrap();
            }
        }
        let order: Vec<Hash> = rs[1].cgka.ops_in_order().map(|op| op.hash()).collect();
        let at = |h: Hash| order.iter().position(|o| *o == h).unwrap();
        update_first_seen |= at(update.hash()) < at(fills[0].hash());
        let tree = rs[1].cgka.tree();
        let on_path: std::collections::HashSet<u32> = tree
            .direct_path(tree.slot_of(&rs[5].id()).unwrap())
            .into_iter()
            .collect();
        let off_path: Vec<u32> = positioned(&fills[0])
            .nodes
            .iter()
            .map(|n| n.node)
            .filter(|n| !on_path.contains(n))
            .collect();
        let written = written_by(tree, &fills[0].hash());
        for node in &off_path {
            assert!(
                written.contains(node),
                "trial {trial}: node {node} not written"
            );
        }
        assert!(rs.iter().all(|r| r.cgka.tree() == rs[0].cgka.tree()));
        if update_first_seen && trial >= 3 {
            return;
        }
    }
    panic!("the update never replayed before the fill");
}

/// CGKA-1, CGKA-35: a fill written before CGKA-35 (recipients named in full, tag 4) still
/// decodes and replays: the same fill in both forms gives the same keys at the same nodes.
#[test]
fn cgka35_fills_written_before_it_still_replay() {
    let (mut rs, auth) = seated_blank(8);
    let before = rs[1].cgka.tree().clone();
    let key = rs[0].device.signing_key().clone();
    let fills = rs[0].cgka.fill(&key, &auth).unwrap();
    let fill = positioned(&fills[0]);
    let mut in_op: std::collections::HashMap<u32, PrekeyPublic> = Default::default();
    let nodes = fill
        .nodes
        .iter()
        .map(|n| {
            let mut wrapped: Vec<WrappedSecret> = n
                .wrapped
                .iter()
                .map(|w| {
                    let at = position_node(n.node, w.at).unwrap();
                    let recipient = in_op.get(&at).copied().unwrap_or_else(|| {
                        let mut held: Vec<PrekeyPublic> =
                            before.entries(at).iter().map(|e| e.public).collect();
                        held.sort_unstable();
                        held[w.rank as usize]
                    });
                    WrappedSecret {
                        recipient,
                        ciphertext: w.ciphertext,
                        tag: w.tag,
                    }
                })
                .collect();
            wrapped.sort_by_key(|w| w.recipient);
            in_op.insert(n.node, n.public);
            FilledNode {
                node: n.node,
                public: n.public,
                wrapped,
            }
        })
        .collect();
    let old = resigned(
        &rs[0],
        &fills[0],
        CgkaBody::Fill(FillNodes {
            ephemeral: fill.ephemeral,
            nodes,
        }),
    );
    assert!(old.as_bytes().len() > fills[0].as_bytes().len());
    // Replicas 1..4 get the positioned form, 4..8 the old one.
    for (i, r) in rs.iter_mut().enumerate().skip(1) {
        let op = if i < 4 { &fills[0] } else { &old };
        r.cgka
            .receive(Signed::decode(op.as_bytes()).unwrap(), &auth)
            .unwrap();
    }
    let keys = |tree: &Tree| -> Vec<(u32, Vec<PrekeyPublic>)> {
        (1..2 * tree.capacity() - 1)
            .step_by(2)
            .map(|n| (n, tree.entries(n).iter().map(|e| e.public).collect()))
            .collect()
    };
    assert_eq!(
        written_by(rs[5].cgka.tree(), &old.hash()).len(),
        fill.nodes.len()
    );
    assert_eq!(keys(rs[1].cgka.tree()), keys(rs[5].cgka.tree()));
}

/// CGKA-35 with CGKA-15 (c): a filler whose capability view admits an intruder wraps for the
/// intruder's leaf key; a replica that refuses the intruder's add seats the next device on
/// that leaf instead, so the position resolves to another key there. The commitment does
/// not match and that replica writes nothing of the fill: it never writes a node whose
/// secret was wrapped for a key it does not hold below it. The filler itself writes it all.
#[test]
fn cgka35_a_position_that_resolves_to_another_key_under_a_stricter_view_is_inert() {
    let (mut rs, lax) = network(5);
    let intruder = rs[4].id();
    let mut strict = lax.clone();
    strict.revoke(&intruder);
    let key0 = rs[0].device.signing_key().clone();
    let mut ops = Vec::new();
    // Slots 1 and 2 for replicas 1 and 3, then the intruder (slot 3 where it is admitted),
    // then replica 2 (slot 4 there, slot 3 where the intruder's add is inert).
    for i in [1, 3, 4, 2] {
        let (id, pk) = (rs[i].id(), rs[i].prekey());
        ops.push(rs[0].cgka.add(&key0, id, pk, &lax).unwrap());
    }
    let fills = rs[0].cgka.fill(&key0, &lax).unwrap();
    ops.extend(fills.iter().cloned());
    for op in &ops {
        match rs[1]
            .cgka
            .receive(Signed::decode(op.as_bytes()).unwrap(), &strict)
        {
            Ok(_) | Err(ReceiveError::Unauthorized) => {}
            Err(e) => panic!("unexpected receive error {e:?}"),
        }
    }
    let strict_tree = rs[1].cgka.tree();
    assert!(!rs[1].cgka.members().contains(&intruder));
    assert_eq!(strict_tree.slot_of(&rs[2].id()), Some(3));
    // The filler's level-1 node above slots 2 and 3 wraps for the intruder's leaf.
    let node5 = positioned(&fills[0])
        .nodes
        .into_iter()
        .find(|n| n.node == 5)
        .unwrap();
    assert!(node5.wrapped.iter().any(|w| w.at == 2 && w.rank == 0));
    assert!(
        strict_tree.entries(6).len() == 1,
        "another key at that position"
    );
    assert!(!written_by(rs[0].cgka.tree(), &fills[0].hash()).is_empty());
    assert!(written_by(strict_tree, &fills[0].hash()).is_empty());
}

/// CGKA-35 with CGKA-28, CGKA-31: a fill concurrent with a remove of a device it wraps for
/// is written nowhere, yet still read: the filler's update on top of it (made before the
/// filler learned of the remove) wraps for the fill's keys, and a member below them that
/// received the remove first derives that update's epoch, though the remove, replayed before
/// the fill, emptied a leaf the fill names (its positions are resolved in a replay of its
/// causal past alone).
#[test]
fn cgka35_a_fill_made_inert_by_a_concurrent_remove_is_still_read() {
    for trial in 0..32 {
        let (mut rs, auth) = seated_blank(8);
        let key0 = rs[0].device.signing_key().clone();
        let key1 = rs[1].device.signing_key().clone();
        let fills = rs[0].cgka.fill(&key0, &auth).unwrap();
        let update = rs[0].cgka.update(&key0, &auth).unwrap();
        let gone = rs[7].id();
        let remove = rs[1].cgka.remove(&key1, gone, &auth).unwrap();
        if remove.hash() > fills[0].hash() {
            continue; // the remove must replay before the fill
        }
        // Everyone but the filler gets the remove first; the filler had not seen it.
        for (i, r) in rs.iter_mut().enumerate() {
            let ops: Vec<&CgkaOp> = if i == 0 {
                vec![&remove]
            } else {
                fills.iter().chain([&update]).collect()
            };
            let ops = if i == 0 {
                ops
            } else {
                [&remove].into_iter().chain(ops).collect()
            };
            for op in ops {
                r.cgka
                    .receive(Signed::decode(op.as_bytes()).unwrap(), &auth)
                    .unwrap();
            }
        }
        let fill = positioned(&fills[0]);
        let names_gone_leaf = fill.nodes.iter().any(|n| {
            n.wrapped
                .iter()
                .any(|w| position_node(n.node, w.at) == Some(14))
        });
        assert!(
            names_gone_leaf,
            "the fill wraps for the removed device's leaf"
        );
        for (i, r) in rs.iter().enumerate() {
            assert!(written_by(r.cgka.tree(), &fills[0].hash()).is_empty());
            assert_eq!(r.cgka.tree(), rs[0].cgka.tree());
            if i != 7 {
                assert!(
                    r.cgka.epoch_secret(&update.hash()).is_some(),
                    "trial {trial}: replica {i} cannot read the update"
                );
            }
        }
        return;
    }
    panic!("the remove never replayed before the fill");
}

/// CGKA-3, CGKA-35: structural checks of a positioned fill: 1 to 65,536 inner nodes in
/// (level, index) order, each with wraps strictly ascending by `(at, rank)`, each `at`
/// naming a node strictly below the filled node.
#[test]
fn cgka3_malformed_positioned_fills_are_refused() {
    use super::op::{PositionedNode, PositionedSecret, check_body};
    use crate::crypto::prekey::PrekeySecret;
    let wrap = |at: u32, rank: u32| PositionedSecret {
        at,
        rank,
        ciphertext: [0; 32],
        tag: [0; 16],
    };
    let node = |node: u32, wrapped: Vec<PositionedSecret>| PositionedNode {
        node,
        public: PrekeySecret::from_bytes([9; 32]).public(),
        wrapped,
    };
    let op = |nodes: Vec<PositionedNode>| {
        Op::new(
            crate::crypto::signing::SigningKey::generate().public_key(),
            vec![Hash([1; 32])],
            CgkaBody::FillByPosition(PositionedFill {
                ephemeral: PrekeySecret::from_bytes([8; 32]).public(),
                recipients: [0; 32],
                nodes,
            }),
        )
    };
    // Node 3 (level 2): its subtree is nodes 0..=6, offsets 0..=6 but not 3 (itself).
    let ok = op(vec![
        node(1, vec![wrap(0, 0), wrap(2, 0)]),
        node(3, vec![wrap(1, 0), wrap(5, 0), wrap(5, 1), wrap(6, 0)]),
    ]);
    assert!(check_body(&ok).is_ok());
    assert!(check_body(&op(vec![])).is_err(), "empty");
    assert!(
        check_body(&op(vec![node(2, vec![wrap(0, 0)])])).is_err(),
        "a leaf"
    );
    assert!(check_body(&op(vec![node(1, vec![])])).is_err(), "no wraps");
    assert!(
        check_body(&op(vec![
            node(3, vec![wrap(0, 0)]),
            node(1, vec![wrap(0, 0)])
        ]))
        .is_err(),
        "parent before child"
    );
    assert!(
        check_body(&op(vec![node(1, vec![wrap(2, 0), wrap(0, 0)])])).is_err(),
        "unsorted"
    );
    assert!(
        check_body(&op(vec![node(1, vec![wrap(0, 0), wrap(0, 0)])])).is_err(),
        "a position twice"
    );
    assert!(
        check_body(&op(vec![node(1, vec![wrap(1, 0)])])).is_err(),
        "the filled node itself"
    );
    assert!(
        check_body(&op(vec![node(3, vec![wrap(7, 0)])])).is_err(),
        "outside the subtree"
    );
    assert_eq!(position_node(3, 6), Some(6));
    assert_eq!(position_node(11, 0), Some(8));
    assert_eq!(position_node((1 << 31) - 1, u32::MAX), None);
}
