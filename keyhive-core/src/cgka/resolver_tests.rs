//! CGKA-37: the resolver of a root conflict among concurrent updates.

use proptest::prelude::*;

use super::tests::{Replica, broadcast, network, shuffle};
use super::*;
use crate::identity::IndividualId;
use crate::signed::Signed;

/// `n` replicas, every device seated and the root agreed.
pub(super) fn seated(n: usize) -> (Vec<Replica>, StaticAuthority) {
    let (mut rs, auth) = network(n);
    let key = rs[0].device.signing_key().clone();
    let seats: Vec<_> = rs[1..].iter().map(|r| (r.id(), r.prekey())).collect();
    for op in rs[0].cgka.add_many(&key, &seats, &auth).unwrap() {
        broadcast(&mut rs[1..], &op, &auth);
    }
    let op = rs[0].cgka.update(&key, &auth).unwrap();
    broadcast(&mut rs[1..], &op, &auth);
    (rs, auth)
}

/// Each replica in `updaters` issues an update before seeing the others'; every replica then
/// receives all of them in its own order (drawn from `seed`). Returns the updates.
fn concurrent_updates(
    rs: &mut [Replica],
    updaters: &[usize],
    seed: u64,
    auth: &StaticAuthority,
) -> Vec<CgkaOp> {
    let updates: Vec<CgkaOp> = updaters
        .iter()
        .map(|&i| {
            let key = rs[i].device.signing_key().clone();
            rs[i].cgka.update(&key, auth).unwrap()
        })
        .collect();
    for (j, r) in rs.iter_mut().enumerate() {
        let mut order = updates.clone();
        shuffle(&mut order, seed ^ (j as u64 * 0x9e37));
        for op in order {
            let _ = r.cgka.receive(Signed::decode(op.as_bytes()).unwrap(), auth);
        }
    }
    updates
}

fn expected_resolver(updates: &[CgkaOp]) -> IndividualId {
    let greatest = updates.iter().max_by_key(|op| op.hash()).unwrap();
    IndividualId(greatest.issuer)
}

#[test]
fn an_agreed_or_blank_root_has_no_resolver() {
    let (mut rs, auth) = seated(3);
    assert!(rs.iter().all(|r| r.cgka.conflict_resolver().is_none()));
    // A remove blanks the root: everyone re-keys as before (REP-3), no resolver.
    let key = rs[0].device.signing_key().clone();
    let gone = rs[2].id();
    let op = rs[0].cgka.remove(&key, gone, &auth).unwrap();
    broadcast(&mut rs[1..], &op, &auth);
    assert!(rs[0].cgka.must_update_before_encrypt());
    assert!(rs.iter().all(|r| r.cgka.conflict_resolver().is_none()));
}

#[test]
fn the_resolver_is_the_issuer_of_the_greatest_root_update_and_its_update_ends_the_conflict() {
    let (mut rs, auth) = seated(4);
    let updates = concurrent_updates(&mut rs, &[1, 2, 3], 7, &auth);
    let resolver = expected_resolver(&updates);
    for r in &rs {
        assert!(
            r.cgka.must_update_before_encrypt(),
            "the root is in conflict"
        );
        assert_eq!(r.cgka.conflict_resolver(), Some(resolver));
    }
    let at = rs.iter().position(|r| r.id() == resolver).unwrap();
    let key = rs[at].device.signing_key().clone();
    let op = rs[at].cgka.update(&key, &auth).unwrap();
    for (i, r) in rs.iter_mut().enumerate() {
        if i != at {
            r.cgka
                .receive(Signed::decode(op.as_bytes()).unwrap(), &auth)
                .unwrap();
        }
    }
    let agreed = rs[at].cgka.current_epoch().map(|(h, _)| h).unwrap();
    for r in &rs {
        assert_eq!(r.cgka.conflict_resolver(), None);
        assert_eq!(r.cgka.current_epoch().map(|(h, _)| h), Some(agreed));
    }
}

#[test]
fn a_removed_issuer_is_no_resolver() {
    let (mut rs, auth) = seated(4);
    let updates = concurrent_updates(&mut rs, &[1, 2], 3, &auth);
    let resolver = expected_resolver(&updates);
    // The resolver is removed: the remove blanks the root, so nobody is left waiting for it.
    let key = rs[0].device.signing_key().clone();
    let op = rs[0].cgka.remove(&key, resolver, &auth).unwrap();
    for r in rs[1..].iter_mut() {
        let _ = r
            .cgka
            .receive(Signed::decode(op.as_bytes()).unwrap(), &auth);
    }
    for r in rs.iter().filter(|r| r.id() != resolver) {
        assert_eq!(r.cgka.conflict_resolver(), None);
        assert!(r.cgka.must_update_before_encrypt());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// CGKA-37: whatever the order each replica receives concurrent updates in, every replica
    /// names the same resolver, the issuer of the greatest update.
    #[test]
    fn replicas_agree_on_the_resolver_in_any_delivery_order(
        mask in 3u8..16,
        seed in any::<u64>(),
    ) {
        let (mut rs, auth) = seated(4);
        let updaters: Vec<usize> = (0..4).filter(|i| mask & (1 << i) != 0).collect();
        prop_assume!(updaters.len() >= 2);
        let updates = concurrent_updates(&mut rs, &updaters, seed, &auth);
        let resolver = expected_resolver(&updates);
        for r in &rs {
            prop_assert_eq!(r.cgka.conflict_resolver(), Some(resolver));
            prop_assert_eq!(r.cgka.tree(), rs[0].cgka.tree());
        }
    }
}
