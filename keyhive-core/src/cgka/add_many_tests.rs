//! CGKA-33: a batched add seats its devices as the same adds one by one would, is checked for
//! structure (CGKA-3), refused on receipt unless every seat is allowed (CGKA-20), and answered
//! seat by seat on replay (CGKA-32).

use super::op::{MAX_SEATS, Seat, check_body};
use super::tests::{Replica, broadcast, network};
use super::*;
use crate::crypto::prekey::PrekeyPublic;
use crate::encoding::DecodeError;
use crate::identity::IndividualId;
use crate::signed::{Op, Signed};

fn seats_of(rs: &[Replica], range: std::ops::Range<usize>) -> Vec<(IndividualId, PrekeyPublic)> {
    range.map(|i| (rs[i].id(), rs[i].prekey())).collect()
}

#[test]
fn cgka33_a_batch_seats_like_one_by_one_adds_and_everyone_reads_the_next_epoch() {
    let n = 9;
    let (mut batched, auth) = network(n);
    let key = batched[0].device.signing_key().clone();
    let seats = seats_of(&batched, 1..n);
    let ops = batched[0].cgka.add_many(&key, &seats, &auth).unwrap();
    assert_eq!(ops.len(), 1, "one signed op for 8 seats");
    assert!(matches!(&ops[0].body, CgkaBody::AddMany { seats } if seats.len() == n - 1));
    for op in &ops {
        broadcast(&mut batched[1..], op, &auth);
    }
    let update = batched[0].cgka.update(&key, &auth).unwrap();
    broadcast(&mut batched[1..], &update, &auth);

    // The same devices added one by one, ascending by device (the batch's order).
    let mut sorted = seats.clone();
    sorted.sort_by_key(|s| s.0);
    let single = Cgka::create(batched[0].cgka.document(), &batched[0].device);
    let (mut alone, _) = single.unwrap();
    for (device, prekey) in &sorted {
        alone.add(&key, *device, *prekey, &auth).unwrap();
    }
    let members: Vec<IndividualId> = batched[0].cgka.members().into_iter().collect();
    assert_eq!(members, alone.members().into_iter().collect::<Vec<_>>());
    for (device, _) in &sorted {
        assert_eq!(
            batched[0].cgka.tree().slot_of(device),
            alone.tree().slot_of(device),
            "a batched seat takes the slot the one-by-one add would"
        );
    }
    let epoch = batched[0].cgka.current_epoch().map(|(h, _)| h);
    assert!(epoch.is_some());
    for r in &batched {
        assert_eq!(r.cgka.current_epoch().map(|(h, _)| h), epoch);
    }
}

#[test]
fn cgka33_the_builder_cuts_batches_at_max_seats_and_a_single_seat_is_an_add() {
    let (mut rs, auth) = network(3);
    let key = rs[0].device.signing_key().clone();
    let one = seats_of(&rs, 1..2);
    let ops = rs[0].cgka.add_many(&key, &one, &auth).unwrap();
    assert!(matches!(ops.as_slice(), [op] if matches!(op.body, CgkaBody::Add { .. })));

    // MAX_SEATS + 1 authorised strangers: two ops, the first full.
    let mut auth = auth;
    let strangers: Vec<(IndividualId, PrekeyPublic)> = (0..=MAX_SEATS)
        .map(|_| {
            let d = crate::identity::Device::generate(None);
            let pk = d.prekeys()[0].public();
            auth.grant_read(d.id(), pk);
            (d.id(), pk)
        })
        .collect();
    let ops = rs[0].cgka.add_many(&key, &strangers, &auth).unwrap();
    let sizes: Vec<usize> = ops.iter().map(|op| op.body.seats().len()).collect();
    assert_eq!(sizes, vec![MAX_SEATS, 1]);
    assert!(
        ops.iter()
            .all(|op| op.as_bytes().len() <= super::op::FILL_MAX_BYTES),
        "each batch fits one sync item"
    );
}

#[test]
fn cgka3_a_batch_is_one_to_max_seats_strictly_ascending_by_device() {
    let (rs, _) = network(3);
    let seat = |i: usize| Seat {
        device: rs[i].id(),
        prekey: rs[i].prekey(),
    };
    let op = |seats: Vec<Seat>| {
        Op::new(
            rs[0].id().0,
            vec![crate::crypto::hash::Hash([1; 32])],
            CgkaBody::AddMany { seats },
        )
    };
    let mut ascending = vec![seat(1), seat(2)];
    ascending.sort_by_key(|s| s.device);
    assert_eq!(check_body(&op(ascending.clone())), Ok(()));
    let descending: Vec<Seat> = ascending.iter().rev().copied().collect();
    let twice = vec![ascending[0], ascending[0]];
    let too_many = vec![ascending[0]; MAX_SEATS + 1];
    for bad in [Vec::new(), descending, twice, too_many] {
        assert!(matches!(
            check_body(&op(bad)),
            Err(DecodeError::InvalidStructure(_))
        ));
    }
}

#[test]
fn cgka20_cgka32_a_batch_is_refused_unless_every_seat_is_allowed_and_replay_answers_per_seat() {
    let (mut rs, auth) = network(4);
    let key = rs[0].device.signing_key().clone();
    let seats = seats_of(&rs, 1..4);
    let ops = rs[0].cgka.add_many(&key, &seats, &auth).unwrap();
    let batch = &ops[0];

    // A replica whose view lacks device 3 refuses the whole op on receipt (CGKA-20).
    let mut narrow = auth.clone();
    narrow.revoke(&rs[3].id());
    let signed = Signed::decode(batch.as_bytes()).unwrap();
    assert!(matches!(
        rs[1].cgka.receive(signed, &narrow),
        Err(ReceiveError::Unauthorized)
    ));

    // Where it was applied, a refresh under that view unseats only device 3 (CGKA-32).
    rs[0].cgka.refresh(&narrow);
    let members = rs[0].cgka.members();
    assert!(members.contains(&rs[1].id()) && members.contains(&rs[2].id()));
    assert!(!members.contains(&rs[3].id()));
    rs[0].cgka.refresh(&auth);
    assert!(rs[0].cgka.members().contains(&rs[3].id()));
}
