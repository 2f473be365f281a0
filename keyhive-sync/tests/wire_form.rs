//! SYNC-110 (`specs/sync.md` §2): auth ops (`keyhive/auth` v2, and v3, the root form of CAP-24)
//! and content ops (`keyhive/content` v3) travel and rest without their tag, version and
//! subject; the receiver
//! re-inserts them from the item before verifying, so the signature, the op's hash and every
//! predecessor link are those of the full signed bytes. Earlier versions travel in full.

mod replicas;

use std::path::PathBuf;

use keyhive_core::Hash;
use keyhive_core::capability::{Access, AnySigned};
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::wire_form::{AUTH_CODE, AUTH_ROOT_CODE, CONTENT_CODE, WireFormError};
use keyhive_sync::admission::Refusal;
use keyhive_sync::item::ItemError;
use keyhive_sync::replica::ReplicaError;
use keyhive_sync::{Item, ItemKind, RedbStore, Store, SubjectId, WireItem};
use replicas::{R, all_items, card, me, replica, tag};

/// Alice creates a document, grants Bob `write`, and both write once (small changes: inline).
fn history() -> (R, R) {
    let (mut alice, mut bob) = (replica("alice"), replica("bob"));
    let doc = alice.create_document().expect("doc");
    alice.add_contact(card(&bob)).expect("contact");
    alice.grant(&doc.0, me(&bob), Access::Write).expect("grant");
    alice.write(doc, &[1; 150]).expect("write");
    for _ in 0..4 {
        bob.ingest_all(tag(&alice), all_items(&alice))
            .expect("ingest");
    }
    bob.write(doc, &[2; 150]).expect("write");
    (alice, bob)
}

fn compact_items(r: &R) -> Vec<Item> {
    all_items(r)
        .into_iter()
        .filter(|i| {
            matches!(
                i.wire_envelope().first(),
                Some(&AUTH_CODE | &AUTH_ROOT_CODE | &CONTENT_CODE)
            )
        })
        .collect()
}

fn refusal(result: Result<impl std::fmt::Debug, ReplicaError>) -> Refusal {
    match result {
        Err(ReplicaError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn sync110_ops_travel_without_tag_version_and_subject_and_keep_their_hash() {
    let (alice, bob) = history();
    let (mut auth, mut root, mut content) = (0, 0, 0);
    for item in all_items(&alice).into_iter().chain(all_items(&bob)) {
        let wire = item.to_wire();
        let saved = item.envelope().len() - wire.envelope.len();
        match wire.envelope.first() {
            Some(&AUTH_CODE) => {
                auth += 1;
                assert_eq!(item.kind(), ItemKind::Auth);
                assert_eq!(
                    saved,
                    13 + 1 + 32 - 1,
                    "tag 13, version 1, subject 32, code 1"
                );
            }
            // CAP-24: alice's grant, in the root form (no issuer in the signed bytes either).
            Some(&AUTH_ROOT_CODE) => {
                root += 1;
                assert_eq!(item.kind(), ItemKind::Auth);
                assert_eq!(saved, 13 + 1 + 32 - 1);
            }
            Some(&CONTENT_CODE) => {
                content += 1;
                assert_eq!(item.kind(), ItemKind::Content);
                assert_eq!(saved, 16 + 1 + 32 - 1);
            }
            _ => assert_eq!(saved, 0, "{item:?} travels as it is"),
        }
        assert_eq!(item.wire_len(), wire.envelope.len());
        assert_eq!(item.clone().into_wire(), wire);
        let back = Item::from_wire(wire).expect("expands");
        assert_eq!(back.hash(), item.hash(), "the hash is of the signed bytes");
        assert_eq!(back.envelope(), item.envelope());
        assert_eq!(item.hash(), Hash::of_signed(item.envelope()));
    }
    assert!(
        root >= 1 && content >= 2,
        "auth {auth}, root {root}, content {content}"
    );

    // A fresh replica reads the history from its wire form alone.
    let mut carol = replica("carol");
    let wire: Vec<Item> = all_items(&bob)
        .iter()
        .map(|i| Item::from_wire(i.to_wire()).expect("expands"))
        .collect();
    for _ in 0..4 {
        carol.ingest_all(tag(&bob), wire.clone()).expect("ingest");
    }
    for item in &wire {
        assert!(carol.store().contains(&item.hash()).expect("contains"));
    }
}

#[test]
fn sync110_an_op_sent_under_another_subject_or_kind_is_refused() {
    let (alice, _bob) = history();
    let other = SubjectId(PublicKey(
        keyhive_core::crypto::signing::SigningKey::generate()
            .public_key()
            .0,
    ));
    let items = compact_items(&alice);
    assert!(!items.is_empty());
    for item in items {
        let mut dave = replica("dave");
        let wire = item.to_wire();
        // Another subject: the expanded bytes are not the ones signed.
        let moved = Item::from_wire(WireItem {
            subject: other,
            ..wire.clone()
        })
        .expect("a well-formed compact envelope");
        assert_ne!(moved.hash(), item.hash());
        if wire.envelope[0] == AUTH_ROOT_CODE {
            // CAP-24: a root form waits for the other subject's genesis (whose creator it
            // would be checked under); it is never stored.
            dave.ingest(tag(&alice), &moved).expect("parked");
            assert!(!dave.store().contains(&moved.hash()).expect("contains"));
        } else {
            assert!(
                matches!(
                    refusal(dave.ingest(tag(&alice), &moved)),
                    Refusal::BadSignature(_)
                ),
                "{item:?} under another subject"
            );
        }
        // Another kind: the bytes say what they are (ADM-1).
        let claimed = match item.kind() {
            ItemKind::Auth => ItemKind::Content,
            _ => ItemKind::Auth,
        };
        let relabelled = Item::from_wire(WireItem {
            kind: claimed,
            ..wire.clone()
        })
        .expect("expands");
        // (The code is read only in an item of its kind: elsewhere the bytes are taken as
        // they are and name no tag.)
        assert!(matches!(
            refusal(dave.ingest(tag(&alice), &relabelled)),
            Refusal::WrongKind { .. } | Refusal::Malformed(_)
        ));
        // Another code: the body does not decode as the other op type.
        let mut recoded = wire.clone();
        recoded.envelope[0] = if recoded.envelope[0] == CONTENT_CODE {
            AUTH_CODE
        } else {
            CONTENT_CODE
        };
        if let Ok(recoded) = Item::from_wire(recoded) {
            assert!(matches!(
                refusal(dave.ingest(tag(&alice), &recoded)),
                Refusal::Malformed(_) | Refusal::WrongKind { .. }
            ));
        }
        // The full form of a compact version could travel two ways: refused.
        let full = WireItem {
            envelope: item.envelope().to_vec(),
            ..wire
        };
        assert!(matches!(
            Item::from_wire(full),
            Err(ItemError::WireForm(WireFormError::NotCompact { .. }))
        ));
    }
}

#[test]
fn sync110_a_version_1_auth_op_still_decodes_to_the_same_hash_and_travels_in_full() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/vectors/capabilities.json");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vectors")).expect("json");
    let (mut seen, mut compact, mut root) = (0, 0, 0);
    for case in file["cases"].as_array().expect("cases") {
        for op in case["ops"].as_array().into_iter().flatten() {
            let Some(hex) = op.as_str().or_else(|| op["envelope"].as_str()) else {
                continue;
            };
            let bytes = hex::decode(hex).expect("hex");
            let signed = match AnySigned::decode(&bytes) {
                Ok(AnySigned::Auth(signed)) => signed,
                // CAP-24: the `root_form` case's version-3 ops travel compact, code 0xA3.
                Ok(AnySigned::RootForm(op)) => {
                    assert_eq!(bytes[13], 3);
                    assert_eq!(op.hash(), Hash::of_signed(&bytes));
                    let subject = SubjectId(op.unverified_body().subject);
                    let item = Item::new(ItemKind::Auth, subject, bytes.clone()).expect("item");
                    assert_eq!(item.wire_envelope()[0], AUTH_ROOT_CODE);
                    let back = Item::from_wire(item.to_wire()).expect("expands");
                    assert_eq!(back.hash(), op.hash());
                    root += 1;
                    continue;
                }
                _ => continue,
            };
            // `keyhive/auth` (12 bytes) then the version byte.
            assert_eq!(signed.format_version(), bytes[13]);
            assert_eq!(signed.hash(), Hash::of_signed(&bytes));
            let subject = SubjectId(signed.unverified_payload().body.subject);
            let item = Item::new(ItemKind::Auth, subject, bytes.clone()).expect("item");
            let back = Item::from_wire(item.to_wire()).expect("expands");
            assert_eq!(back.hash(), signed.hash());
            if bytes[13] == 1 {
                assert_eq!(
                    item.wire_envelope().as_ref(),
                    bytes.as_slice(),
                    "v1: in full"
                );
                seen += 1;
            } else {
                assert_eq!(item.wire_envelope()[0], AUTH_CODE, "v2: compact");
                compact += 1;
            }
        }
    }
    assert!(seen > 10, "{seen} version-1 auth ops");
    assert!(
        compact >= 1,
        "the regenerated `cascade` case holds version-2 ops"
    );
    assert!(root >= 4, "the `root_form` case holds version-3 ops");
}

#[test]
fn sync110_a_store_keeps_the_wire_form_and_reads_it_back() {
    let dir = tempfile::tempdir().expect("dir");
    let (alice, _bob) = history();
    let items = all_items(&alice);
    {
        let store = RedbStore::open(dir.path().join("s.redb")).expect("open");
        store.put(&items).expect("put");
    }
    let store = RedbStore::open(dir.path().join("s.redb")).expect("reopen");
    for item in &items {
        let back = store.get(&item.hash()).expect("get").expect("held");
        assert_eq!(back.envelope(), item.envelope());
        assert_eq!(back.hash(), item.hash());
    }
    let compact = compact_items(&alice).len();
    assert!(compact > 0);
}
