//! CGKA-34: devices seated on their device keys. A device-key seat op names devices only, the
//! leaf key is the X25519 form of the device key, a device with no contact card (no prekey at
//! all) reads the next epoch with the secret half of its signing key, its first update replaces
//! that leaf, and the seat secret never goes to the key store.

use std::collections::BTreeSet;

use super::op::{MAX_SEATS, check_body};
use super::tests::network;
use super::*;
use crate::crypto::prekey::{PrekeyPublic, PrekeySecret};
use crate::crypto::signing::{PublicKey, SigningKey};
use crate::encoding::DecodeError;
use crate::identity::{Device, IndividualId};
use crate::signed::{Op, Signed, Verified};

fn signed(op: &CgkaOp) -> SignedCgkaOp {
    Signed::decode(op.as_bytes()).unwrap()
}

/// A device with no prekey: it has no contact card to publish, only its device key.
fn cardless() -> Device {
    Device::from_parts(SigningKey::generate(), Vec::new(), None)
}

#[test]
fn cgka34_a_cardless_device_is_seated_on_its_device_key_and_reads_until_its_first_update() {
    let alice = Device::generate(None);
    let bob = cardless();
    let mut auth = StaticAuthority::new();
    auth.grant_admin(alice.id(), alice.prekeys()[0].public());
    auth.grant_read_device(bob.id());
    let document = crate::identity::DocumentId(SigningKey::generate().public_key());
    let (mut a, init) = Cgka::create(document, &alice).unwrap();
    // The creator is seated on its device key too (CGKA-2, CGKA-34).
    let alice_seat = PrekeyPublic::of_device(&alice.id().0).unwrap();
    assert!(matches!(&init.body, CgkaBody::Init { prekey, .. } if *prekey == alice_seat));

    let key = alice.signing_key().clone();
    let plan = a.sync_membership(&auth.members());
    let bob_seat = PrekeyPublic::of_device(&bob.id().0).unwrap();
    assert_eq!(plan.add, vec![(bob.id(), bob_seat)]);
    let ops = a.apply_membership(&key, &plan, &auth).unwrap();
    assert!(
        matches!(&ops[0].body, CgkaBody::AddDevices { devices } if devices == &vec![bob.id()]),
        "the seat op names the device only"
    );
    // The prekey (32 bytes) less than an add naming one, for a one-byte seat count.
    let with_prekey = Verified::sign(
        Op::new(
            key.public_key(),
            ops[0].predecessors.clone(),
            CgkaBody::Add {
                device: bob.id(),
                prekey: bob_seat,
            },
        ),
        &key,
    )
    .unwrap();
    assert_eq!(with_prekey.as_bytes().len() - ops[0].as_bytes().len(), 31);

    // Bob, with no prekey and no card, reads the epoch from the secret half of his device key.
    let binding = a.binding();
    let mut b = Cgka::from_init(&binding, signed(&init), Some(&bob), &auth).unwrap();
    for op in &ops {
        b.receive(signed(op), &auth).unwrap();
    }
    let slot = b.tree().slot_of(&bob.id()).unwrap();
    assert_eq!(b.tree().entries(2 * slot)[0].public, bob_seat);
    let epoch = a.current_epoch().map(|(h, k)| (h, k.clone()));
    assert!(epoch.is_some());
    assert_eq!(b.current_epoch().map(|(h, k)| (h, k.clone())), epoch);

    // His first update replaces the leaf; Alice reads his epoch.
    let update = b.update(bob.signing_key(), &auth).unwrap();
    a.receive(signed(&update), &auth).unwrap();
    assert_ne!(b.tree().entries(2 * slot)[0].public, bob_seat);
    assert_eq!(
        a.current_epoch().map(|(h, _)| h),
        Some(update.hash()),
        "the creator reads the cardless member's update"
    );
    assert_eq!(
        a.current_epoch().map(|(_, k)| k.clone()),
        b.current_epoch().map(|(_, k)| k.clone())
    );

    // The seat secret (the signing scalar) is never exported; a restart derives it again.
    let exported = b.export_secrets();
    let scalar = PrekeySecret::of_device(bob.signing_key()).to_bytes();
    assert!(exported.node_keys.iter().all(|k| **k != *scalar));
    let mut again = Cgka::from_init(&binding, signed(&init), Some(&bob), &auth).unwrap();
    for op in ops.iter().chain([&update]) {
        again.receive(signed(op), &auth).unwrap();
    }
    again.import_secrets(&exported, &auth);
    assert_eq!(
        again
            .epoch_secret(&ops.last().unwrap().hash())
            .map(|k| k.expose().to_vec()),
        a.epoch_secret(&ops.last().unwrap().hash())
            .map(|k| k.expose().to_vec())
    );
}

#[test]
fn cgka34_a_device_key_with_no_x25519_form_is_never_seated() {
    let (mut rs, mut auth) = network(3);
    let key = rs[0].device.signing_key().clone();
    // The identity point (small order) and a string that is no point: both granted `read`.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = IndividualId(PublicKey(identity));
    let not_a_point = (0u8..=255)
        .map(|b| IndividualId(PublicKey([b; 32])))
        .find(|d| d.0.verifying_key().is_err())
        .unwrap();
    for d in [weak, not_a_point] {
        auth.grant_read_device(d);
        assert!(matches!(
            rs[0].cgka.add_devices(&key, &[d], &auth),
            Err(CreateError::Unauthorized)
        ));
    }
    // A forged seat op naming one of them with a valid device is refused whole on receipt
    // (CGKA-20) and, admitted as a dependency, seats only the valid device (CGKA-33).
    let good = rs[1].id();
    let mut devices = vec![weak, good];
    devices.sort();
    let forged = Verified::sign(
        Op::new(
            key.public_key(),
            rs[0].cgka.heads().iter().copied().collect(),
            CgkaBody::AddDevices { devices },
        ),
        &key,
    )
    .unwrap();
    assert_eq!(
        rs[2].cgka.receive(signed(&forged), &auth),
        Err(ReceiveError::Unauthorized)
    );
    let child = Verified::sign(
        Op::new(
            key.public_key(),
            vec![forged.hash()],
            CgkaBody::AddDevices {
                devices: vec![rs[2].id()],
            },
        ),
        &key,
    )
    .unwrap();
    assert_eq!(
        rs[2].cgka.receive(signed(&child), &auth),
        Ok(Received::Applied)
    );
    let members: BTreeSet<IndividualId> = rs[2].cgka.members();
    let expected: BTreeSet<IndividualId> = rs.iter().map(|r| r.id()).collect();
    assert_eq!(
        members, expected,
        "the valid seat of the forged op is taken"
    );
    assert!(!members.contains(&weak));
}

#[test]
fn cgka3_device_key_seats_are_one_to_max_seats_strictly_ascending() {
    let key = SigningKey::generate();
    let check = |devices: Vec<IndividualId>| {
        check_body(&Op::new(
            key.public_key(),
            vec![crate::crypto::hash::Hash([1; 32])],
            CgkaBody::AddDevices { devices },
        ))
    };
    let mut ids: Vec<IndividualId> = (0..3)
        .map(|_| IndividualId(SigningKey::generate().public_key()))
        .collect();
    ids.sort();
    assert_eq!(check(ids.clone()), Ok(()));
    assert!(matches!(
        check(Vec::new()),
        Err(DecodeError::InvalidStructure(_))
    ));
    assert!(matches!(
        check(vec![ids[1], ids[0]]),
        Err(DecodeError::InvalidStructure(_))
    ));
    assert!(matches!(
        check(vec![ids[0], ids[0]]),
        Err(DecodeError::InvalidStructure(_))
    ));
    let too_many: Vec<IndividualId> = (0..=MAX_SEATS as u32)
        .map(|i| {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&i.to_be_bytes());
            IndividualId(PublicKey(b))
        })
        .collect();
    assert!(matches!(
        check(too_many),
        Err(DecodeError::InvalidStructure(_))
    ));
}
