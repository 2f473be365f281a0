//! Issue 9, cases 1-4, 6, 9 and 11: a reader, a stranger and a malicious relay attack the one
//! admission path (ADM-n, REP-20..REP-22) of device replicas and of the relay's policy.
//!
//! Each test drives the public library API the way an app or a relay does. The last one
//! delivers the honest items and every attack in random orders, with duplicates, to fresh
//! replicas and checks that every honest replica reads exactly what the authors wrote.

mod common;

use std::collections::BTreeMap;

use common::{R, all_items, me, replica, replica_of, tag};
use keyhive_core::capability::{Access, PeerTag};
use keyhive_core::cgka::{Cgka, CgkaBody};
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::prekey::PrekeySecret;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::encryption::encrypt_change;
use keyhive_core::identity::{Device, DocumentId, IndividualId};
use keyhive_core::signed::{Op, Verified};
use keyhive_sync::admission::Refusal;
use keyhive_sync::blob::Blob;
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::item::ItemKind;
use keyhive_sync::policy::AccessPolicy;
use keyhive_sync::replica::{ChangeStatus, Ingested, ReplicaError};
use keyhive_sync::{Item, Store, SubjectId};
use proptest::prelude::*;

/// One-way sync as a sync loop does it: offer everything, again while progress is made.
fn sync(from: &R, to: &mut R) {
    for _ in 0..4 {
        let before = to.accepted_count();
        to.ingest_all(tag(from), all_items(from)).expect("ingest");
        if to.accepted_count() == before {
            break;
        }
    }
}

fn read(r: &R, doc: DocumentId, op: &Hash) -> Vec<u8> {
    let mut out = Vec::new();
    r.read_change(doc, op, &mut out).expect("readable");
    out
}

fn refusal(result: Result<Ingested, ReplicaError>) -> Refusal {
    match result {
        Err(ReplicaError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The plaintext of an inline change as `Body::Inline` encodes it (postcard: variant 0, length,
/// bytes), so a forgery is as convincing as it can be.
fn inline_body(content: &[u8]) -> Vec<u8> {
    assert!(content.len() < 0x80);
    let mut out = vec![0, content.len() as u8];
    out.extend_from_slice(content);
    out
}

/// The change blob an honest item list holds for `op`'s change, decoded.
fn change_blob_of(items: &[Item]) -> Vec<(Item, Blob)> {
    items
        .iter()
        .filter(|i| i.kind() == ItemKind::Blob)
        .filter_map(|i| match Blob::from_bytes(i.envelope()) {
            Ok(b @ Blob::Change { .. }) => Some((i.clone(), b)),
            _ => None,
        })
        .collect()
}

/// Alice (admin) shares a document: Bob writes, Carol and Mallory read. Eve is a stranger.
struct World {
    alice: R,
    bob: R,
    carol: R,
    mallory: R,
    eve: R,
    doc: DocumentId,
    /// Content op -> what its author wrote.
    written: BTreeMap<Hash, Vec<u8>>,
}

fn world() -> World {
    let mut alice = replica("alice");
    let mut bob = replica("bob");
    let mut carol = replica("carol");
    let mut mallory = replica("mallory");
    let eve = replica("eve");
    let doc = alice.create_document().expect("doc");
    for other in [&bob, &carol, &mallory] {
        alice
            .add_contact(other.device().contact_card().expect("card"))
            .expect("contact");
    }
    alice.grant(&doc.0, me(&bob), Access::Write).expect("grant");
    alice
        .grant(&doc.0, me(&carol), Access::Read)
        .expect("grant");
    alice
        .grant(&doc.0, me(&mallory), Access::Read)
        .expect("grant");
    let mut written = BTreeMap::new();
    // Over the inline limit (INL-2): these changes travel as blobs, the form the cases below
    // attack (inline changes: keyhive-sync `tests/inline_changes.rs`).
    let pad = |text: &[u8]| [text, &[b' '; 1100][..]].concat();
    let a1 = alice
        .write(doc, &pad(b"pay 10 EUR to carol"))
        .expect("write");
    written.insert(a1, pad(b"pay 10 EUR to carol"));
    sync(&alice, &mut bob);
    let b1 = bob.write(doc, &pad(b"bob's notes")).expect("write");
    written.insert(b1, pad(b"bob's notes"));
    sync(&bob, &mut alice);
    sync(&alice, &mut carol);
    sync(&alice, &mut mallory);
    World {
        alice,
        bob,
        carol,
        mallory,
        eve,
        doc,
        written,
    }
}

/// Case 1: Mallory (read only) re-encrypts other content under Alice's change reference and the
/// document key; the forgery would read as Alice's change if blobs were found by reference.
fn reader_forgery(w: &World) -> Vec<Item> {
    let cgka = w.mallory.cgka(&w.doc).expect("mallory is seated");
    change_blob_of(&all_items(&w.alice))
        .into_iter()
        .map(|(_, blob)| {
            let Blob::Change { change, .. } = blob else {
                unreachable!("filtered above")
            };
            let (forged, _) = encrypt_change(
                cgka,
                change.header.change,
                &[],
                &inline_body(b"pay 9999 EUR to mallory"),
            )
            .expect("mallory holds the epoch key");
            let bytes = Blob::Change {
                change: forged,
                pieces: Vec::new(),
            }
            .to_bytes();
            Item::new(ItemKind::Blob, SubjectId(w.doc.0), bytes).expect("item")
        })
        .collect()
}

/// Case 2: Eve (a stranger) copies a change's header with junk ciphertext.
fn stranger_junk(w: &World) -> Vec<Item> {
    change_blob_of(&all_items(&w.alice))
        .into_iter()
        .map(|(_, blob)| {
            let Blob::Change { mut change, .. } = blob else {
                unreachable!("filtered above")
            };
            change.sealed = keyhive_core::crypto::aead::Sealed {
                nonce: [7; 24],
                commitment: [0; 32],
                ciphertext: vec![0; 48],
            };
            let bytes = Blob::Change {
                change,
                pieces: Vec::new(),
            }
            .to_bytes();
            Item::new(ItemKind::Blob, SubjectId(w.doc.0), bytes).expect("item")
        })
        .collect()
}

/// Cases 5 and 7: Mallory (read) signs a second init for Alice's document; Mallory and Eve (a
/// stranger) sign removals of devices that hold no seat, and Eve one of Bob.
fn key_agreement_attacks(w: &World) -> Vec<Item> {
    let (_, init) = Cgka::create(w.doc, w.mallory.device()).expect("init");
    let mut out = vec![
        Item::new(ItemKind::Cgka, SubjectId(w.doc.0), init.as_bytes().to_vec()).expect("item"),
    ];
    let heads: Vec<Hash> = w
        .mallory
        .cgka(&w.doc)
        .expect("seated")
        .heads()
        .iter()
        .copied()
        .collect();
    let remove = |author: &Device, device: IndividualId| {
        let op = Op::new(author.id().0, heads.clone(), CgkaBody::Remove { device });
        let op = Verified::sign(op, author.signing_key()).expect("sign");
        Item::new(ItemKind::Cgka, SubjectId(w.doc.0), op.as_bytes().to_vec()).expect("item")
    };
    for _ in 0..3 {
        out.push(remove(w.mallory.device(), Device::generate(None).id()));
        out.push(remove(w.eve.device(), Device::generate(None).id()));
    }
    out.push(remove(w.eve.device(), w.bob.device().id()));
    out
}

/// Cases 3 and 4: a malicious relay relabels honest items (every op as a blob, content ops as
/// auth, key-agreement ops under another subject).
fn relabelled(items: &[Item], other: SubjectId) -> Vec<Item> {
    let mut out = Vec::new();
    for i in items {
        let env = i.envelope().to_vec();
        let subject = i.subject();
        match i.kind() {
            ItemKind::Auth | ItemKind::Content => {
                out.push(Item::new(ItemKind::Blob, subject, env.clone()).expect("item"));
                out.push(Item::new(ItemKind::Blob, other, env.clone()).expect("item"));
                if i.kind() == ItemKind::Content {
                    out.push(Item::new(ItemKind::Auth, subject, env).expect("item"));
                }
            }
            ItemKind::Cgka => out.push(Item::new(ItemKind::Cgka, other, env).expect("item")),
            ItemKind::Blob => out.push(Item::new(ItemKind::Auth, subject, env).expect("item")),
        }
    }
    out
}

#[test]
fn case1_reader_cannot_forge_a_writers_change() {
    let w = world();
    let forged = reader_forgery(&w);
    assert!(!forged.is_empty());
    // Forgery first, then the honest items: refused, and Alice's words are what Carol reads.
    let mut dave = replica_of(w.carol.device().clone());
    for f in &forged {
        assert!(matches!(
            refusal(dave.ingest(tag(&w.mallory), f)),
            Refusal::Unnamed
        ));
    }
    sync(&w.alice, &mut dave);
    for f in &forged {
        assert!(matches!(
            refusal(dave.ingest(tag(&w.mallory), f)),
            Refusal::Unnamed
        ));
    }
    for (op, content) in &w.written {
        assert_eq!(&read(&dave, w.doc, op), content);
    }
    // The relay's policy refuses the forgery from a reader too.
    let policy = CapabilityPolicy::new([]);
    admit_all(&policy, &w.alice);
    let mallory_id = w.mallory.device().id();
    for f in &forged {
        assert!(matches!(
            policy.check_push(&mallory_id, f),
            Err(Refusal::Unnamed)
        ));
    }
}

#[test]
fn case2_stranger_cannot_hide_a_change() {
    let w = world();
    let junk = stranger_junk(&w);
    let mut dave = replica_of(w.carol.device().clone());
    for j in &junk {
        assert!(matches!(
            refusal(dave.ingest(tag(&w.eve), j)),
            Refusal::Unnamed
        ));
    }
    sync(&w.alice, &mut dave);
    for (op, content) in &w.written {
        assert_eq!(&read(&dave, w.doc, op), content);
    }
    let policy = CapabilityPolicy::new([]);
    admit_all(&policy, &w.alice);
    for j in &junk {
        assert!(policy.check_push(&w.eve.device().id(), j).is_err());
    }
}

#[test]
fn case3_a_revocation_sent_as_a_blob_cannot_swallow_the_revocation() {
    let mut w = world();
    let revocations = w.alice.revoke(&w.doc.0, me(&w.mallory)).expect("revoke");
    let items = all_items(&w.alice);
    let revocation_items: Vec<&Item> = items
        .iter()
        .filter(|i| revocations.contains(&i.hash()))
        .collect();
    assert!(!revocation_items.is_empty());
    let eve_doc = {
        let mut eve = replica_of(w.eve.device().clone());
        eve.create_document().expect("doc")
    };
    let mut dave = replica_of(w.carol.device().clone());
    for r in &revocation_items {
        for subject in [r.subject(), SubjectId(eve_doc.0)] {
            let as_blob = Item::new(ItemKind::Blob, subject, r.envelope().to_vec()).expect("item");
            assert!(matches!(
                refusal(dave.ingest(tag(&w.mallory), &as_blob)),
                Refusal::WrongKind { .. } | Refusal::WrongSubject { .. }
            ));
        }
    }
    sync(&w.alice, &mut dave);
    let mallory_id = w.mallory.device().id();
    assert!(
        !dave
            .devices_with(&w.doc.0, Access::Read)
            .contains(&mallory_id),
        "the real revocation applied"
    );
    // Carol, having the revocation, writes: Mallory cannot read it.
    sync(&w.alice, &mut w.carol);
    let _ = &w.bob;
    sync(&w.alice, &mut w.bob);
    let after = w.bob.write(w.doc, b"after mallory left").expect("write");
    sync(&w.bob, &mut w.mallory);
    let mut out = Vec::new();
    assert!(w.mallory.read_change(w.doc, &after, &mut out).is_err());
    // At the relay, the same bytes filed as a blob of Eve's own document are refused.
    let policy = CapabilityPolicy::new([]);
    for r in &revocation_items {
        let as_blob =
            Item::new(ItemKind::Blob, SubjectId(eve_doc.0), r.envelope().to_vec()).expect("item");
        assert!(matches!(
            policy.check_push(&w.eve.device().id(), &as_blob),
            Err(Refusal::WrongKind { .. } | Refusal::WrongSubject { .. })
        ));
    }
}

#[test]
fn case4_kind_is_checked_against_the_bytes() {
    let w = world();
    let mut dave = replica("dave");
    for i in all_items(&w.alice) {
        let claimed = match i.kind() {
            ItemKind::Content => ItemKind::Auth,
            ItemKind::Auth => ItemKind::Content,
            ItemKind::Cgka => ItemKind::Blob,
            ItemKind::Blob => ItemKind::Cgka,
        };
        let wrong = Item::new(claimed, i.subject(), i.envelope().to_vec()).expect("item");
        assert!(matches!(
            refusal(dave.ingest(tag(&w.alice), &wrong)),
            Refusal::WrongKind { .. }
        ));
    }
    assert_eq!(
        dave.store().subjects().expect("subjects").len(),
        1,
        "only its own card"
    );
}

#[test]
fn case6_key_agreement_ops_are_verified_before_they_wait() {
    let w = world();
    let mut dave = replica("dave");
    let unknown = SubjectId(SigningKey::generate().public_key());
    for i in all_items(&w.alice)
        .into_iter()
        .filter(|i| i.kind() == ItemKind::Cgka)
    {
        let mut env = i.envelope().to_vec();
        let last = env.len() - 1;
        env[last] ^= 1;
        // Under an unknown document (it would wait) and under its own (not yet known here).
        for subject in [unknown, i.subject()] {
            let forged = Item::new(ItemKind::Cgka, subject, env.clone()).expect("item");
            let r = dave.ingest(tag(&w.eve), &forged);
            assert!(
                matches!(
                    r,
                    Err(ReplicaError::Refused(
                        Refusal::BadSignature(_) | Refusal::WrongSubject { .. }
                    ))
                ),
                "{r:?}"
            );
        }
    }
}

#[test]
fn case9_relay_never_enforces_a_grant_it_did_not_store() {
    let mut alice = replica("alice");
    let bob = replica("bob");
    let carol = replica("carol");
    let doc = alice.create_document().expect("doc");
    let first = alice.grant(&doc.0, me(&bob), Access::Read).expect("grant");
    let second = alice
        .grant(&doc.0, me(&carol), Access::Read)
        .expect("grant");
    let items = all_items(&alice);
    let by_hash = |h: &Hash| items.iter().find(|i| i.hash() == *h).expect("held").clone();
    let policy = CapabilityPolicy::new([]);
    let alice_id = alice.device().id();
    for i in items
        .iter()
        .filter(|i| i.kind() == ItemKind::Auth && i.hash() != first && i.hash() != second)
    {
        policy.check_push(&alice_id, i).expect("genesis and cards");
    }
    // Carol's grant names Bob's as a predecessor: refused, and not kept aside.
    assert!(matches!(
        policy.check_push(&alice_id, &by_hash(&second)),
        Err(Refusal::MissingPredecessors(1))
    ));
    policy
        .check_push(&alice_id, &by_hash(&first))
        .expect("bob's grant");
    let carol_id: IndividualId = carol.device().id();
    assert!(
        !policy.may_pull(&carol_id, &SubjectId(doc.0)),
        "a refused grant is never enforced"
    );
    policy
        .check_push(&alice_id, &by_hash(&second))
        .expect("offered again");
    assert!(policy.may_pull(&carol_id, &SubjectId(doc.0)));
}

#[test]
fn case11_cards_with_sixteen_prekeys_are_admitted_everywhere() {
    let prekeys = (0..16).map(|_| PrekeySecret::generate()).collect();
    let device = Device::from_parts(SigningKey::generate(), prekeys, Some("many".into()));
    let card = device.contact_card().expect("CARD-2 allows 16");
    let item = Item::new(
        ItemKind::Auth,
        SubjectId(device.id().0),
        card.as_bytes().to_vec(),
    )
    .expect("item");
    let mut dave = replica("dave");
    assert_eq!(
        dave.ingest(PeerTag::from(device.id().0), &item)
            .expect("admitted"),
        Ingested::Stored
    );
    let policy = CapabilityPolicy::new([]);
    policy
        .check_push(&device.id(), &item)
        .expect("relay admits it");
    assert!(policy.may_pull(&device.id(), &SubjectId(device.id().0)));
}

/// Pushes every item of `from` to the relay policy in dependency order, as a client would.
fn admit_all(policy: &CapabilityPolicy, from: &R) {
    let id = from.device().id();
    let mut items = all_items(from);
    // Offered again while progress is made, as a sync loop does (a relay never parks, ADM-3).
    loop {
        let before = items.len();
        items.retain(|i| policy.check_push(&id, i).is_err());
        if items.is_empty() || items.len() == before {
            break;
        }
    }
    assert!(items.is_empty(), "honest items are all admitted: {items:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Honest items and every attack above, shuffled and duplicated, delivered to a fresh
    /// replica of Carol in rounds (refused items offered again, as sync does): she reads exactly
    /// what the authors wrote, and every change is valid.
    #[test]
    fn honest_replicas_read_exactly_the_authors_content(seed in any::<u64>()) {
        let w = world();
        let honest: Vec<Item> = all_items(&w.alice)
            .into_iter()
            .chain(all_items(&w.bob))
            .collect();
        let mut delivered: Vec<(PeerTag, Item)> = Vec::new();
        for i in &honest {
            delivered.push((tag(&w.alice), i.clone()));
        }
        for i in reader_forgery(&w) {
            delivered.push((tag(&w.mallory), i));
        }
        for i in stranger_junk(&w) {
            delivered.push((tag(&w.eve), i));
        }
        let other = SubjectId(SigningKey::generate().public_key());
        for i in relabelled(&honest, other) {
            delivered.push((tag(&w.eve), i));
        }
        let attacks = key_agreement_attacks(&w);
        for i in &attacks {
            delivered.push((tag(&w.mallory), i.clone()));
        }
        let mut rng = seed;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut carol = replica_of(w.carol.device().clone());
        for _round in 0..6 {
            let mut batch = delivered.clone();
            for i in (1..batch.len()).rev() {
                let j = (next() % (i as u64 + 1)) as usize;
                batch.swap(i, j);
            }
            for (from, item) in batch {
                let _ = carol.ingest(from, &item);
            }
        }
        let changes = carol.changes(w.doc).expect("changes");
        prop_assert_eq!(changes.len(), w.written.len());
        for c in &changes {
            prop_assert_eq!(&c.status, &ChangeStatus::Valid);
            prop_assert_eq!(&read(&carol, w.doc, &c.op), &w.written[&c.op]);
        }
        // One key agreement, the one Alice's genesis names; no attack was stored or applied.
        let cgka = carol.cgka(&w.doc).expect("carol runs the document's key agreement");
        prop_assert_eq!(cgka.init_hash(), w.alice.cgka(&w.doc).expect("alice").init_hash());
        prop_assert_eq!(cgka.members(), w.alice.cgka(&w.doc).expect("alice").members());
        for a in &attacks {
            prop_assert!(!carol.store().contains(&a.hash()).expect("store"));
        }

    }
}
