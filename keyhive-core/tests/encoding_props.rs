//! Property tests for the canonical encoding and signed envelopes (issue 2 acceptance).

use keyhive_core::crypto::aead::Sealed;
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::signing::{PublicKey, SigningKey};
use keyhive_core::encoding::{DecodeError, decode_canonical, encode};
use keyhive_core::identity::{ContactCard, Device, Genesis, IndividualId, SubjectKind};
use keyhive_core::signed::{Op, OpBody, Signed, Verified};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

/// A test op body exercising strings, bytes, options and nested sequences.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Note {
    text: String,
    data: Vec<u8>,
    tags: Vec<(u32, Option<u64>)>,
}

impl OpBody for Note {
    const TAG: &'static str = "keyhive-test/note";
    const VERSION: u8 = 1;
    const MAX_LEN: usize = 8192;
}

fn note() -> impl Strategy<Value = Note> {
    (
        ".{0,40}",
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec((any::<u32>(), any::<Option<u64>>()), 0..8),
    )
        .prop_map(|(text, data, tags)| Note { text, data, tags })
}

fn hashes() -> impl Strategy<Value = Vec<Hash>> {
    proptest::collection::vec(any::<[u8; 32]>().prop_map(Hash), 0..6)
}

fn signed_note(key: &SigningKey, preds: Vec<Hash>, body: Note) -> Verified<Op<Note>> {
    Verified::sign(Op::new(key.public_key(), preds, body), key).expect("sign")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn op_round_trips(preds in hashes(), body in note()) {
        let key = SigningKey::generate();
        let op = signed_note(&key, preds, body);
        let back = Signed::<Op<Note>>::decode(op.as_bytes()).unwrap().verify().unwrap();
        prop_assert_eq!(back.payload(), op.payload());
        prop_assert_eq!(back.hash(), op.hash());
        prop_assert_eq!(back.as_bytes(), op.as_bytes());
    }

    #[test]
    fn any_single_bit_flip_is_rejected(body in note(), bit in any::<prop::sample::Index>()) {
        let key = SigningKey::generate();
        let op = signed_note(&key, vec![Hash([1; 32])], body);
        let mut bytes = op.as_bytes().to_vec();
        let i = bit.index(bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        let accepted = Signed::<Op<Note>>::decode(&bytes).ok().and_then(|s| s.verify().ok());
        prop_assert!(accepted.is_none(), "flipped bit {} accepted", i);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Signed::<Op<Note>>::decode(&bytes).map(|s| s.verify());
        let _ = Signed::<Op<Genesis>>::decode(&bytes).map(|s| s.verify());
        let _ = Signed::<ContactCard>::decode(&bytes).map(|s| s.verify());
        let _ = decode_canonical::<Sealed>(&bytes, 1024);
        let _ = decode_canonical::<Vec<Hash>>(&bytes, 1024);
    }

    #[test]
    fn arbitrary_card_lines_never_panic(line in ".{0,300}") {
        let _ = ContactCard::from_line(&line);
    }

    #[test]
    fn contact_cards_round_trip(name in proptest::option::of("[a-zA-Z0-9 ]{0,60}")) {
        let device = Device::generate(name);
        let card = device.contact_card().unwrap();
        let back = ContactCard::from_line(&ContactCard::to_line(&card)).unwrap();
        prop_assert_eq!(back.payload(), card.payload());
    }

    #[test]
    fn sealed_and_hash_lists_round_trip(nonce in any::<[u8; 24]>(), commitment in any::<[u8; 32]>(),
                                        ciphertext in proptest::collection::vec(any::<u8>(), 0..200),
                                        list in hashes()) {
        let sealed = Sealed { nonce, commitment, ciphertext };
        prop_assert_eq!(decode_canonical::<Sealed>(&encode(&sealed), 1024), Ok(sealed));
        prop_assert_eq!(decode_canonical::<Vec<Hash>>(&encode(&list), 1024), Ok(list));
    }

    #[test]
    fn genesis_round_trips(document in any::<bool>(), init in any::<[u8; 32]>()) {
        let creator = IndividualId(SigningKey::generate().public_key());
        let g = if document {
            Genesis::create_document(creator, |_| Ok::<_, keyhive_core::signed::SignError>((Hash(init), ()))).unwrap().0
        } else {
            Genesis::create_group(creator).unwrap()
        };
        let back = Signed::<Op<Genesis>>::decode(g.as_bytes()).unwrap().verify().unwrap();
        prop_assert_eq!(back.payload(), g.payload());
    }
}

#[test]
fn wrong_signer_cannot_sign() {
    let key = SigningKey::generate();
    let other = PublicKey(SigningKey::generate().public_key().0);
    let op = Op::new(
        other,
        vec![],
        Note {
            text: String::new(),
            data: vec![],
            tags: vec![],
        },
    );
    assert!(Verified::sign(op, &key).is_err());
}

#[test]
fn unsorted_predecessors_rejected_on_decode() {
    let key = SigningKey::generate();
    // Build a valid op, then hand-craft one whose predecessor list is out of order and re-sign.
    let op = Op {
        issuer: key.public_key(),
        predecessors: vec![Hash([2; 32]), Hash([1; 32])],
        body: Note {
            text: "x".into(),
            data: vec![],
            tags: vec![],
        },
    };
    assert!(Verified::sign(op, &key).is_err());
}

#[test]
fn genesis_with_predecessors_is_rejected() {
    let key = SigningKey::generate();
    let creator = IndividualId(key.public_key());
    let op = Op::new(
        key.public_key(),
        vec![Hash([3; 32])],
        Genesis {
            kind: SubjectKind::Group,
            creator,
            key_agreement: None,
        },
    );
    assert!(matches!(
        Verified::sign(op, &key),
        Err(keyhive_core::signed::SignError::Structure(
            DecodeError::InvalidStructure(_)
        ))
    ));
}
