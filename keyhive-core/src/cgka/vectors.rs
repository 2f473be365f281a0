//! Test vectors for `specs/cgka.md` (`specs/vectors/cgka.json`), including the fill of
//! CGKA-27. Regenerate with
//! `cargo test -p keyhive-core cgka::vectors::generate -- --ignored`.

use serde_json::{Value, json};

use super::op::FillNodes;
use super::path::{self, epoch_root, next_secret, node_key};
use super::replay_vectors;
use crate::crypto::prekey::PrekeySecret;
use crate::crypto::signing::PublicKey;
use crate::encoding::encode;
use crate::identity::DocumentId;

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
    let (filled, _) = path::fill_node(
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
    json!({
        "description": "keyhive CGKA vectors (specs/cgka.md CGKA-8..CGKA-10, CGKA-15, CGKA-27). Hex.",
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
        }
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
