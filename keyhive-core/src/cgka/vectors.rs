//! Test vectors for `specs/cgka.md` (`specs/vectors/cgka.json`), including the fill of
//! CGKA-27. Regenerate with
//! `cargo test -p keyhive-core cgka::vectors::generate -- --ignored`.

use serde_json::{Value, json};

use super::op::{CgkaBody, FillNodes, PositionedFill, Seat};
use super::path::{self, epoch_root, next_secret, node_key};
use super::replay_vectors;
use crate::crypto::hash::Hash;
use crate::crypto::prekey::{PrekeyPublic, PrekeySecret};
use crate::crypto::signing::PublicKey;
use crate::crypto::signing::SigningKey;
use crate::encoding::encode;
use crate::identity::{DocumentId, IndividualId};
use crate::signed::{Op, Verified};

/// CGKA-33: a batched add of two seats, signed by a fixed key (Ed25519 is deterministic).
fn batched_add() -> Value {
    let issuer = SigningKey::from_seed(&[0x88; 32]);
    let mut seats: Vec<Seat> = [0xa1u8, 0xa2]
        .iter()
        .map(|b| Seat {
            device: IndividualId(SigningKey::from_seed(&[*b; 32]).public_key()),
            prekey: PrekeySecret::from_bytes([b ^ 0x10; 32]).public(),
        })
        .collect();
    seats.sort_by_key(|s| s.device);
    let body = CgkaBody::AddMany {
        seats: seats.clone(),
    };
    let op = Verified::sign(
        Op::new(issuer.public_key(), vec![Hash([0x99; 32])], body.clone()),
        &issuer,
    )
    .expect("sign");
    json!({
        "issuer seed": hex::encode([0x88u8; 32]),
        "predecessors": [hex::encode([0x99u8; 32])],
        "seats (device seed a1 / a2, prekey secret b1 / b2; ascending by device)": seats.iter().map(|s| json!({
            "device": hex::encode(s.device.0.as_bytes()),
            "prekey": hex::encode(s.prekey.0),
        })).collect::<Vec<_>>(),
        "postcard(CgkaBody)": hex::encode(encode(&body)),
        "envelope": hex::encode(op.as_bytes()),
        "hash": hex::encode(op.hash().as_bytes()),
    })
}

/// CGKA-34: two devices' seat keys (the X25519 form of their Ed25519 keys), the agreement of
/// one's seat secret with the other's seat key, and a device-key seat op naming both.
fn device_key_seats() -> Value {
    let issuer = SigningKey::from_seed(&[0x88; 32]);
    let keys: Vec<SigningKey> = [0xa1u8, 0xa2]
        .iter()
        .map(|b| SigningKey::from_seed(&[*b; 32]))
        .collect();
    let seat = |k: &SigningKey| PrekeyPublic::of_device(&k.public_key()).expect("seat key");
    let agreed = PrekeySecret::of_device(&keys[0])
        .agree(&seat(&keys[1]))
        .expect("contributory");
    let mut devices: Vec<IndividualId> =
        keys.iter().map(|k| IndividualId(k.public_key())).collect();
    devices.sort();
    let body = CgkaBody::AddDevices {
        devices: devices.clone(),
    };
    let op = Verified::sign(
        Op::new(issuer.public_key(), vec![Hash([0x99; 32])], body.clone()),
        &issuer,
    )
    .expect("sign");
    json!({
        "issuer seed": hex::encode([0x88u8; 32]),
        "predecessors": [hex::encode([0x99u8; 32])],
        "devices (seed a1 / a2)": keys.iter().map(|k| json!({
            "device": hex::encode(k.public_key().as_bytes()),
            "seat key (Montgomery form)": hex::encode(seat(k).0),
        })).collect::<Vec<_>>(),
        "X25519(seat secret of a1, seat key of a2)": hex::encode(*agreed),
        "postcard(CgkaBody) (ascending by device)": hex::encode(encode(&body)),
        "envelope": hex::encode(op.as_bytes()),
        "hash": hex::encode(op.hash().as_bytes()),
    })
}

/// CGKA-35: a positioned fill of node 5 (level 1: its subtree's leftmost leaf is node 4)
/// wrapping its secret for the keys at node 4 (`at` 0) and node 6 (`at` 2), rank 0 each, and
/// the op's commitment to those keys.
fn positioned_fill(document: &DocumentId, left: &PrekeyPublic, right: &PrekeyPublic) -> Value {
    let ephemeral = PrekeySecret::from_bytes([0x66; 32]);
    let targets = [
        path::Target {
            at: 0,
            rank: 0,
            key: *left,
        },
        path::Target {
            at: 2,
            rank: 0,
            key: *right,
        },
    ];
    let (filled, _) = path::fill_node_at(
        document,
        &ephemeral,
        &ephemeral.public(),
        5,
        &[0x77; 32],
        &targets,
    )
    .expect("fill");
    let keys = [*left, *right];
    let recipients =
        path::recipients_commitment(document, &ephemeral.public(), [(5, keys.as_slice())]);
    let fill = PositionedFill {
        ephemeral: ephemeral.public(),
        recipients,
        nodes: vec![filled.clone()],
    };
    json!({
        "ephemeral secret": hex::encode([0x66u8; 32]),
        "node": 5,
        "node secret": hex::encode([0x77u8; 32]),
        "node public": hex::encode(filled.public.0),
        "recipients (at 0 = node 4, at 2 = node 6; rank 0 each)": [hex::encode(left.0), hex::encode(right.0)],
        "commitment": hex::encode(recipients),
        "postcard(PositionedFill)": hex::encode(encode(&fill)),
        "postcard(CgkaBody) (tag 7)": hex::encode(encode(&CgkaBody::FillByPosition(fill))),
    })
}

fn compute() -> Value {
    let document = DocumentId(PublicKey([0x22; 32]));
    let leaf = zeroize::Zeroizing::new([0x11u8; 32]);
    let s1 = next_secret(&leaf);
    let s2 = next_secret(&s1);
    let recipient = PrekeySecret::from_bytes([0x33; 32]);
    let sender = node_key(&leaf);
    let wrapped = path::wrap(&document, &sender, &recipient.public(), &s1).expect("wrap");
    let other = PrekeySecret::from_bytes([0x44; 32]);
    let fresh = path::generate(
        &document,
        zeroize::Zeroizing::new([0x55; 32]),
        &[
            vec![recipient.public()],
            vec![other.public(), recipient.public()],
            vec![],
        ],
    )
    .expect("generate");
    let ephemeral = PrekeySecret::from_bytes([0x66; 32]);
    let (filled, filled_key) = path::fill_node(
        &document,
        &ephemeral,
        &ephemeral.public(),
        5,
        &[0x77; 32],
        &[other.public(), recipient.public()],
    )
    .expect("fill");
    let fill = FillNodes {
        ephemeral: ephemeral.public(),
        nodes: vec![filled.clone()],
    };
    let chained = node_key(&path::chain_secret(&filled_key));
    json!({
        "description": "keyhive CGKA vectors (specs/cgka.md CGKA-8..CGKA-10, CGKA-15, CGKA-27, CGKA-33, CGKA-34, CGKA-35). Hex.",
        "document": hex::encode(document.public_key().as_bytes()),
        "path_secrets": {
            "CGKA-8 leaf secret": hex::encode(*leaf),
            "next(leaf)": hex::encode(*s1),
            "next(next(leaf))": hex::encode(*s2),
            "node public(leaf)": hex::encode(node_key(&leaf).public().0),
            "node public(next(leaf))": hex::encode(node_key(&s1).public().0),
        },
        "CGKA-9 wrap": {
            "sender node secret": "node_key(leaf secret)",
            "recipient secret": hex::encode([0x33u8; 32]),
            "recipient public": hex::encode(recipient.public().0),
            "secret": hex::encode(*s1),
            "ciphertext": hex::encode(wrapped.ciphertext),
            "tag": hex::encode(wrapped.tag),
        },
        "CGKA-10 epoch root": {
            "root path secret": hex::encode(*s2),
            "epoch root": hex::encode(epoch_root(&document, &s2).expose()),
        },
        "CGKA-15 update path": {
            "leaf secret": hex::encode([0x55u8; 32]),
            "resolutions": [
                [hex::encode(recipient.public().0)],
                [hex::encode(other.public().0), hex::encode(recipient.public().0)],
                []
            ],
            "postcard(UpdatePath)": hex::encode(encode(&fresh.path)),
            "root path secret": hex::encode(*fresh.root_secret),
        },
        "CGKA-27 fill": {
            "ephemeral secret": hex::encode([0x66u8; 32]),
            "node": 5,
            "node secret": hex::encode([0x77u8; 32]),
            "node public": hex::encode(filled.public.0),
            "recipients": [hex::encode(recipient.public().0), hex::encode(other.public().0)],
            "wraps (ascending by recipient)": filled.wrapped.iter().map(|w| json!({
                "recipient": hex::encode(w.recipient.0),
                "ciphertext": hex::encode(w.ciphertext),
                "tag": hex::encode(w.tag),
            })).collect::<Vec<_>>(),
            "postcard(FillNodes)": hex::encode(encode(&fill)),
        },
        "CGKA-27 fill chain": {
            "left child node secret": "node_key(node secret of CGKA-27 fill)",
            "chained path secret": hex::encode(*path::chain_secret(&filled_key)),
            "chained node public": hex::encode(chained.public().0),
        },
        "CGKA-33 batched add": batched_add(),
        "CGKA-35 positioned fill": positioned_fill(&document, &recipient.public(), &other.public()),
        "CGKA-34 device-key seats": device_key_seats(),
    })
}

#[test]
#[ignore = "writes specs/vectors/cgka.json"]
fn generate() {
    let mut vectors = compute();
    // The replay scenario (random op bytes, checked by replay) is kept as it is.
    if let Some(scenario) = crate::spec_vectors::read("cgka.json").get(replay_vectors::KEY) {
        vectors[replay_vectors::KEY] = scenario.clone();
    }
    crate::spec_vectors::write("cgka.json", &vectors);
}

#[test]
fn vectors_match_spec_file() {
    let mut stored = crate::spec_vectors::read("cgka.json");
    if let Some(map) = stored.as_object_mut() {
        map.remove(replay_vectors::KEY);
    }
    assert_eq!(
        stored,
        compute(),
        "specs/vectors/cgka.json differs from this implementation"
    );
}
