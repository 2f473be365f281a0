//! Fill scenarios (CGKA-27..CGKA-31): costs, splitting, and removals of the filler.

use proptest::prelude::*;

use super::op::{CgkaBody, FILL_MAX_BYTES};
use super::tests::{Replica, SMALL_FILL, add_and_broadcast, broadcast, network, shuffle};
use super::*;
use crate::crypto::hash::Hash;
use crate::signed::Signed;

fn wraps(op: &CgkaOp) -> usize {
    match &op.body {
        CgkaBody::Update(path) => path.nodes.iter().map(|n| n.wrapped.len()).sum(),
        CgkaBody::Fill(fill) => fill.nodes.iter().map(|n| n.wrapped.len()).sum(),
        CgkaBody::FillByPosition(fill) => fill.nodes.iter().map(|n| n.wrapped.len()).sum(),
        _ => 0,
    }
}

/// `n` replicas, every one seated by replica 0 one by one, nobody has updated: every inner
/// node is blank.
fn seated_blank(n: usize) -> (Vec<Replica>, StaticAuthority) {
    let (mut rs, auth) = network(n);
    for i in 1..n {
        add_and_broadcast(&mut rs, 0, i, &auth);
    }
    (rs, auth)
}

fn knows(r: &Replica, epoch: &Hash) -> bool {
    r.cgka.epoch_secret(epoch).is_some()
}

/// CGKA-24, CGKA-27: the first re-key after one-by-one adds fills the blank tree, and the
/// re-key after a later remove wraps O(log N) keys, not one per member; the removed device
/// cannot derive it, every other member can.
#[test]
fn fill_makes_the_rekey_after_a_remove_logarithmic() {
    let n = 64;
    let (mut rs, auth) = seated_blank(n);
    assert!(rs[0].cgka.should_fill());
    let key = rs[0].device.signing_key().clone();
    let plan = rs[0].cgka.sync_membership(&auth.members());
    let ops = rs[0].cgka.apply_membership(&key, &plan, &auth).unwrap();
    assert!(ops.len() >= 2);
    let (update, fills) = ops.split_last().unwrap();
    assert!(
        fills
            .iter()
            .all(|op| matches!(op.body, CgkaBody::FillByPosition(_)))
    );
    // 64 leaves: 63 inner nodes, minus the 6 on the filler's path.
    let filled: usize = fills
        .iter()
        .map(|op| match &op.body {
            CgkaBody::FillByPosition(f) => f.nodes.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(filled, 63 - 6);
    assert_eq!(wraps(update), 6, "one wrap per level once filled");
    for op in &ops {
        broadcast(&mut rs, op, &auth);
    }
    let first = update.hash();
    assert!(rs.iter().all(|r| knows(r, &first)));
    assert!(rs.iter().all(|r| r.cgka.tree() == rs[0].cgka.tree()));

    // Revoke a member and re-key through the membership plan (CGKA-23/24).
    let mut auth = auth;
    let gone = 41;
    auth.revoke(&rs[gone].id());
    let plan = rs[0].cgka.sync_membership(&auth.members());
    let ops = rs[0].cgka.apply_membership(&key, &plan, &auth).unwrap();
    assert_eq!(ops.len(), 2, "a remove and an update, no fill");
    let rekey = &ops[1];
    assert!(wraps(rekey) <= 2 * 6, "{} wraps for 6 levels", wraps(rekey));
    for op in &ops {
        broadcast(&mut rs, op, &auth);
    }
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(knows(r, &rekey.hash()), i != gone, "replica {i}");
    }
}

/// CGKA-4, CGKA-27: a fill is cut into ops of at most the size asked for; delivered in a
/// shuffled order (so some arrive before their predecessors) every replica builds the same
/// tree, and the filler's next update is read by everyone.
#[test]
fn fill_ops_fit_the_size_limit_and_converge_in_any_order() {
    let n = 40;
    let (mut rs, auth) = seated_blank(n);
    let key = rs[0].device.signing_key().clone();
    let limit = 4096 + 1500;
    let fills = rs[0].cgka.fill_within(&key, &auth, limit, false).unwrap();
    assert!(fills.len() > 3, "{} ops", fills.len());
    assert!(fills.iter().all(|op| op.as_bytes().len() <= limit));
    let update = rs[0].cgka.update(&key, &auth).unwrap();
    let mut ops: Vec<Vec<u8>> = fills
        .iter()
        .chain([&update])
        .map(|op| op.as_bytes().to_vec())
        .collect();
    for (i, r) in rs.iter_mut().enumerate().skip(1) {
        shuffle(&mut ops, i as u64);
        for bytes in &ops {
            r.cgka
                .receive(Signed::decode(bytes).unwrap(), &auth)
                .unwrap();
        }
    }
    for r in &rs {
        assert_eq!(r.cgka.tree(), rs[0].cgka.tree());
        assert!(knows(r, &update.hash()));
    }
    // The default limit keeps every op within one sync item.
    let (mut rs, auth) = seated_blank(n);
    let key = rs[0].device.signing_key().clone();
    let fills = rs[0].cgka.fill(&key, &auth).unwrap();
    assert_eq!(fills.len(), 1);
    assert!(fills[0].as_bytes().len() <= FILL_MAX_BYTES);
}

/// CGKA-29, CGKA-30: the filler knows the secrets it chose, so removing it blanks every node
/// it filled and every key wrapped for those (another member's update above them): the
/// re-key that follows is unknown to it. Without CGKA-30 the re-key would wrap for keys the
/// filler knows.
#[test]
fn removing_the_filler_blanks_what_it_filled() {
    let n = 16;
    let (mut rs, auth) = seated_blank(n);
    let key0 = rs[0].device.signing_key().clone();
    // The filler keeps the secrets it chose (an honest one does not; CGKA-30 must not rely
    // on that).
    let fills = rs[0]
        .cgka
        .fill_within(&key0, &auth, FILL_MAX_BYTES, true)
        .unwrap();
    let update = rs[0].cgka.update(&key0, &auth).unwrap();
    for op in fills.iter().chain([&update]) {
        broadcast(&mut rs, op, &auth);
    }
    // Member 9 updates: its path wraps for keys the filler chose.
    let key9 = rs[9].device.signing_key().clone();
    let op = rs[9].cgka.update(&key9, &auth).unwrap();
    broadcast(&mut rs, &op, &auth);
    assert!(knows(&rs[0], &op.hash()));
    // Member 5 removes the filler and re-keys.
    let key5 = rs[5].device.signing_key().clone();
    let filler = rs[0].id();
    let remove = rs[5].cgka.remove(&key5, filler, &auth).unwrap();
    broadcast(&mut rs, &remove, &auth);
    let fill_ops: Vec<Hash> = fills.iter().map(|op| op.hash()).collect();
    let tree = rs[5].cgka.tree();
    for node in (1..2 * tree.capacity() - 1).step_by(2) {
        for entry in tree.entries(node) {
            assert!(!fill_ops.contains(&entry.op), "node {node} still filled");
            // Member 9's level-1 node was wrapped for its neighbour's leaf only: untainted.
            assert!(
                entry.op != op.hash() || super::tree::level(node) == 1,
                "member 9's tainted path kept at {node}"
            );
        }
    }
    let rekey = rs[5].cgka.update(&key5, &auth).unwrap();
    broadcast(&mut rs, &rekey, &auth);
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(knows(r, &rekey.hash()), i != 0, "replica {i}");
    }
}

/// CGKA-28: a fill concurrent with a membership change writes nothing (whichever replays
/// first), and a fill concurrent with an update that wrote a node first skips that node.
#[test]
fn a_fill_concurrent_with_a_membership_change_is_inert() {
    let n = 12;
    let (mut rs, auth) = seated_blank(n);
    let key0 = rs[0].device.signing_key().clone();
    let key1 = rs[1].device.signing_key().clone();
    let fills = rs[0].cgka.fill(&key0, &auth).unwrap();
    let gone = rs[7].id();
    let remove = rs[1].cgka.remove(&key1, gone, &auth).unwrap();
    for op in fills.iter().chain([&remove]) {
        broadcast(&mut rs, op, &auth);
    }
    let fill_ops: Vec<Hash> = fills.iter().map(|op| op.hash()).collect();
    for r in &rs {
        assert_eq!(r.cgka.tree(), rs[0].cgka.tree());
        let tree = r.cgka.tree();
        for node in (1..2 * tree.capacity() - 1).step_by(2) {
            assert!(tree.entries(node).iter().all(|e| !fill_ops.contains(&e.op)));
        }
    }
}

/// CGKA-3: structural checks of a fill op.
#[test]
fn malformed_fills_are_refused() {
    use super::op::{FillNodes, FilledNode, WrappedSecret, check_body};
    use crate::crypto::prekey::PrekeySecret;
    use crate::signed::Op;
    let wrap = |r: u8| WrappedSecret {
        recipient: PrekeySecret::from_bytes([r; 32]).public(),
        ciphertext: [0; 32],
        tag: [0; 16],
    };
    let node = |node: u32, wrapped: Vec<WrappedSecret>| FilledNode {
        node,
        public: PrekeySecret::from_bytes([9; 32]).public(),
        wrapped,
    };
    let op = |nodes: Vec<FilledNode>| {
        Op::new(
            crate::crypto::signing::SigningKey::generate().public_key(),
            vec![Hash([1; 32])],
            CgkaBody::Fill(FillNodes {
                ephemeral: PrekeySecret::from_bytes([8; 32]).public(),
                nodes,
            }),
        )
    };
    assert!(check_body(&op(vec![node(1, vec![wrap(1)]), node(3, vec![wrap(2)])])).is_ok());
    assert!(check_body(&op(vec![])).is_err(), "empty");
    assert!(
        check_body(&op(vec![node(2, vec![wrap(1)])])).is_err(),
        "a leaf"
    );
    assert!(check_body(&op(vec![node(1, vec![])])).is_err(), "no wraps");
    assert!(
        check_body(&op(vec![node(3, vec![wrap(1)]), node(1, vec![wrap(2)])])).is_err(),
        "parent before child"
    );
    let (a, b) = (wrap(1), wrap(2));
    let (lo, hi) = if a.recipient < b.recipient {
        (a, b)
    } else {
        (b, a)
    };
    assert!(
        check_body(&op(vec![node(1, vec![hi, lo])])).is_err(),
        "unsorted"
    );
}

/// One step of a sequential history: every op is delivered to every replica at once.
#[derive(Debug, Clone)]
enum Step {
    Fill(usize),
    Update(usize),
    Remove(usize, usize),
    Add(usize, usize),
}

fn step(n: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (0..n).prop_map(Step::Fill),
        3 => (0..n).prop_map(Step::Update),
        2 => (0..n, 0..n).prop_map(|(a, t)| Step::Remove(a, t)),
        1 => (0..n, 0..n).prop_map(|(a, t)| Step::Add(a, t)),
    ]
}

fn run_steps(n: usize, steps: &[Step]) -> Result<(), TestCaseError> {
    let (mut rs, auth) = seated_blank(n);
    let seated = |rs: &[Replica], i: usize| rs[0].cgka.members().contains(&rs[i].id());
    for s in steps {
        let ops = match *s {
            Step::Fill(a) if seated(&rs, a) => {
                let key = rs[a].device.signing_key().clone();
                rs[a]
                    .cgka
                    .fill_within(&key, &auth, SMALL_FILL, true)
                    .unwrap()
            }
            Step::Update(a) if seated(&rs, a) => {
                let key = rs[a].device.signing_key().clone();
                vec![rs[a].cgka.update(&key, &auth).unwrap()]
            }
            Step::Remove(a, t) if a != t && seated(&rs, a) && seated(&rs, t) => {
                let key = rs[a].device.signing_key().clone();
                let id = rs[t].id();
                vec![rs[a].cgka.remove(&key, id, &auth).unwrap()]
            }
            Step::Add(a, t) if seated(&rs, a) && !seated(&rs, t) => {
                let key = rs[a].device.signing_key().clone();
                let (id, pk) = (rs[t].id(), rs[t].prekey());
                // CGKA-33: every other add seats the next replica too, in one batched op.
                let next = (t + 1) % rs.len();
                // CGKA-34: half of those batches seat both on their device keys.
                if t % 2 == 0 && next != a && !seated(&rs, next) {
                    let seats = [
                        (id, rs[t].batch_key(t)),
                        (rs[next].id(), rs[next].batch_key(t)),
                    ];
                    rs[a].cgka.add_many(&key, &seats, &auth).unwrap()
                } else {
                    vec![rs[a].cgka.add(&key, id, pk, &auth).unwrap()]
                }
            }
            _ => Vec::new(),
        };
        for op in &ops {
            for r in rs.iter_mut() {
                let signed = Signed::decode(op.as_bytes()).unwrap();
                match r.cgka.receive(signed, &auth) {
                    Ok(_) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("receive: {e:?}"))),
                }
            }
            if matches!(op.body, CgkaBody::Update(_)) {
                for i in 0..n {
                    prop_assert_eq!(rs[i].cgka.tree(), rs[0].cgka.tree());
                    prop_assert_eq!(
                        knows(&rs[i], &op.hash()),
                        seated(&rs, i),
                        "replica {} seated {} after {:?}",
                        i,
                        seated(&rs, i),
                        s
                    );
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    /// CGKA-27..CGKA-31: in sequential histories of fills (cut into small ops), updates,
    /// removes and adds among 10 devices, all seated by one-by-one adds, every update is
    /// derived by exactly the devices seated when it was made: a removed device (the filler
    /// included) never derives a later epoch, and fills never keep a member out.
    #[test]
    fn removed_devices_never_derive_later_epochs(steps in prop::collection::vec(step(10), 5..40)) {
        run_steps(10, &steps)?;
    }
}

/// CGKA-27 (fill chain), CGKA-31: in one fill op, a node whose left child the op filled
/// derives its secret from that child's key and wraps it only for its right child's
/// resolution: 64 blank leaves cost 32 · 2 wraps at level 1 (minus the filler's own node) and
/// one wrap per node above it, about 1.5 wraps per member instead of 2; every member still
/// reads the update that follows, and a member that is removed cannot read the next one.
#[test]
fn a_chained_fill_wraps_each_upper_node_once_and_everyone_reads_through_the_chain() {
    let n = 64;
    let (mut rs, auth) = seated_blank(n);
    let key = rs[0].device.signing_key().clone();
    let plan = rs[0].cgka.sync_membership(&auth.members());
    let ops = rs[0].cgka.apply_membership(&key, &plan, &auth).unwrap();
    let (update, fills) = ops.split_last().unwrap();
    assert_eq!(fills.len(), 1, "one op: every chain stays inside it");
    let CgkaBody::FillByPosition(fill) = &fills[0].body else {
        panic!("a fill");
    };
    let listed: std::collections::HashSet<u32> = fill.nodes.iter().map(|n| n.node).collect();
    for node in &fill.nodes {
        let (l, r) = super::tree::children(node.node);
        if listed.contains(&l) {
            assert!(
                node.wrapped.iter().all(|w| {
                    let at = super::op::position_node(node.node, w.at);
                    at.is_some_and(|a| super::tree::in_subtree(a, r))
                }),
                "a chained node wraps only for its right child's resolution"
            );
        }
    }
    // Level 1: 31 nodes off the filler's path, two leaves each; above: 26 nodes, one wrap
    // each (a chained node's right child is filled, or is a single key).
    assert_eq!(wraps(&fills[0]), 31 * 2 + 26);
    for op in &ops {
        broadcast(&mut rs, op, &auth);
    }
    assert!(rs.iter().all(|r| knows(r, &update.hash())));

    let mut auth = auth;
    let gone = 22;
    auth.revoke(&rs[gone].id());
    let plan = rs[0].cgka.sync_membership(&auth.members());
    let ops = rs[0].cgka.apply_membership(&key, &plan, &auth).unwrap();
    for op in &ops {
        broadcast(&mut rs, op, &auth);
    }
    let rekey = ops.last().unwrap();
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(knows(r, &rekey.hash()), i != gone, "replica {i}");
    }
}

/// CGKA-31: a node at a chained position whose secret is not the chain's (a fill made before
/// the chain, wrapped for both children) is read by its wraps; a chained one by the chain.
#[test]
fn a_node_that_is_not_chained_falls_back_to_its_wraps() {
    use crate::crypto::prekey::PrekeySecret;
    let document = rs_document();
    let e = PrekeySecret::generate();
    let left = PrekeySecret::generate();
    let leaf = PrekeySecret::generate();
    let recipients = [left.public(), leaf.public()];
    let lookup = |pk: &crate::crypto::prekey::PrekeyPublic| {
        [&left, &leaf]
            .into_iter()
            .find(|k| k.public() == *pk)
            .cloned()
    };
    let (old_style, key) =
        path::fill_node(&document, &e, &e.public(), 3, &[9; 32], &recipients).unwrap();
    let read = path::read_filled(
        &document,
        &e.public(),
        &old_style,
        Some(&left.public()),
        lookup,
    );
    assert_eq!(read.unwrap().map(|k| k.public()), Some(key.public()));

    let chained = path::chain_secret(&left);
    let (new_style, key) =
        path::fill_node(&document, &e, &e.public(), 3, &chained, &[leaf.public()]).unwrap();
    let only_left =
        |pk: &crate::crypto::prekey::PrekeyPublic| (left.public() == *pk).then(|| left.clone());
    let read = path::read_filled(
        &document,
        &e.public(),
        &new_style,
        Some(&left.public()),
        only_left,
    );
    assert_eq!(read.unwrap().map(|k| k.public()), Some(key.public()));
}

fn rs_document() -> crate::identity::DocumentId {
    crate::identity::DocumentId(crate::crypto::signing::SigningKey::generate().public_key())
}
