//! CGKA-38: an update concurrent with its author's removal is still learned by the devices it
//! wrapped secrets for, whichever of the two replays first.

use super::resolver_tests::seated;
use super::tests::Replica;
use super::*;
use crate::signed::Signed;

fn receive(r: &mut Replica, op: &CgkaOp, auth: &StaticAuthority) {
    r.cgka
        .receive(Signed::decode(op.as_bytes()).unwrap(), auth)
        .unwrap();
}

/// Device 2 updates while device 0 concurrently removes it. Device 1 gets both (in both
/// arrival orders), device 0 gets the update after its remove: each learns the update's epoch,
/// so a change device 2 sealed under it stays readable. Replay order between the two is by
/// hash, so the scenario runs on fresh keys until both replay orders were seen.
#[test]
fn an_update_concurrent_with_its_authors_removal_is_learned() {
    let mut seen = [false; 2];
    for round in 0..64 {
        let (mut rs, auth) = seated(3);
        let k2 = rs[2].device.signing_key().clone();
        let update = rs[2].cgka.update(&k2, &auth).unwrap();
        let k0 = rs[0].device.signing_key().clone();
        let gone = rs[2].id();
        let remove = rs[0].cgka.remove(&k0, gone, &auth).unwrap();
        seen[usize::from(remove.hash() < update.hash())] = true;
        let (first, second) = if round % 2 == 0 {
            (&remove, &update)
        } else {
            (&update, &remove)
        };
        receive(&mut rs[1], first, &auth);
        receive(&mut rs[1], second, &auth);
        receive(&mut rs[0], &update, &auth);
        for r in &rs[..2] {
            assert!(
                r.cgka.epoch_secret(&update.hash()).is_some(),
                "round {round}: the removed author's update is learned"
            );
            assert!(!r.cgka.members().contains(&gone), "and its author is gone");
        }
        if seen == [true, true] && round >= 8 {
            return;
        }
    }
    panic!("both replay orders should occur in 64 rounds: {seen:?}");
}
