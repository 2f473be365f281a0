//! INL-1..INL-7 (`specs/encryption.md` §1b): a small change travels inside its signed content
//! op, as one item; hostile inline ops are refused with typed errors or stay unreadable; a
//! reader reads inline changes through a relay and a non-member cannot.

mod replicas;

use std::collections::BTreeSet;
use std::sync::Arc;

use keyhive_core::Hash;
use keyhive_core::capability::{
    Access, AgentId, ContentOp, INLINE_MAX_CIPHERTEXT, Payload, PeerTag,
};
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::encoding::{DecodeError, encode_tagged};
use keyhive_core::encryption::{DecryptError, open_inline_with_epoch};
use keyhive_core::identity::{Device, DocumentId};
use keyhive_core::signed::{Signed, Verified};
use keyhive_sync::admission::Refusal;
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::replica::ReplicaError;
use keyhive_sync::{Item, ItemKind, MemoryStore, Relay, RelayConfig, Repo, Store, SubjectId};
use replicas::{R, all_items, card, me, replica, tag};

/// INL-2 target for one 150-byte change by a writer through a delegation, one predecessor:
/// the fields the design needs, measured (`tests/change_size.rs` attributes every byte).
const ONE_ITEM_CEILING: usize = 650;

fn sync(from: &R, to: &mut R) {
    for _ in 0..4 {
        to.ingest_all(tag(from), all_items(from)).expect("ingest");
    }
}

fn hashes(r: &R) -> BTreeSet<Hash> {
    all_items(r).iter().map(Item::hash).collect()
}

/// Alice creates a document and grants Bob `write`; both have written once, and Carol is a
/// reader. Everyone holds everything.
fn three() -> (R, R, R, DocumentId) {
    let (mut alice, mut bob, mut carol) = (replica("alice"), replica("bob"), replica("carol"));
    let doc = alice.create_document().expect("doc");
    alice.add_contact(card(&bob)).expect("contact");
    alice.add_contact(card(&carol)).expect("contact");
    alice.grant(&doc.0, me(&bob), Access::Write).expect("grant");
    alice
        .grant(&doc.0, me(&carol), Access::Read)
        .expect("grant");
    alice.write(doc, &[1; 150]).expect("write");
    sync(&alice, &mut bob);
    bob.write(doc, &[2; 150]).expect("write");
    sync(&bob, &mut alice);
    sync(&alice, &mut carol);
    sync(&bob, &mut carol);
    (alice, bob, carol, doc)
}

fn op_of(r: &R, hash: &Hash) -> Signed<ContentOp> {
    let item = r.store().get(hash).expect("get").expect("held");
    Signed::<ContentOp>::decode(item.envelope()).expect("decode")
}

fn inline_of(op: &ContentOp) -> &keyhive_core::capability::InlineChange {
    match &op.body.payload {
        Payload::Inline(c) => c,
        Payload::Blob { .. } => panic!("an inline change"),
    }
}

#[test]
fn inl2_a_150_byte_change_is_one_item() {
    let (_alice, mut bob, carol, doc) = three();
    let before = hashes(&bob);
    let op = bob.write(doc, &[3; 150]).expect("write");
    let new: Vec<Item> = all_items(&bob)
        .into_iter()
        .filter(|i| !before.contains(&i.hash()))
        .collect();
    assert_eq!(new.len(), 1, "one item: the content op carrying the change");
    assert_eq!(new[0].kind(), ItemKind::Content);
    assert_eq!(new[0].hash(), op);
    let len = new[0].envelope().len();
    assert!(len <= ONE_ITEM_CEILING, "{len} B for a 150 B change");
    // Writers keep the blob path for what does not fit (INL-2).
    let before = hashes(&bob);
    bob.write(doc, &[4; INLINE_MAX_CIPHERTEXT]).expect("write");
    let kinds: Vec<ItemKind> = all_items(&bob)
        .into_iter()
        .filter(|i| !before.contains(&i.hash()))
        .map(|i| i.kind())
        .collect();
    assert_eq!(
        kinds.len(),
        2,
        "a 1 KiB change is an op and a blob: {kinds:?}"
    );
    drop(carol);
}

/// INL-2 for streamed writes (`keyhive put` streams every file): a stream that ends within
/// `INLINE_MAX` is written as `write` writes it, so a 150-byte file is one item, not a
/// content op, a manifest and a piece; a longer stream is still written in pieces. Both read
/// back whole on another replica.
#[test]
fn inl2_a_small_stream_is_one_item_and_a_large_one_is_pieces() {
    let (_alice, mut bob, mut carol, doc) = three();
    let new_since = |r: &R, before: &BTreeSet<Hash>| -> Vec<Item> {
        all_items(r)
            .into_iter()
            .filter(|i| !before.contains(&i.hash()))
            .collect()
    };
    let before = hashes(&bob);
    let small = bob
        .write_stream(doc, std::io::Cursor::new(vec![5u8; 150]))
        .expect("write");
    let new = new_since(&bob, &before);
    assert_eq!(new.len(), 1, "a 150 B stream is one item");
    assert!(matches!(
        op_of(&bob, &small).unverified_payload().body.payload,
        Payload::Inline(_)
    ));
    let large_len = keyhive_sync::replica::INLINE_MAX + 1;
    let before = hashes(&bob);
    let large = bob
        .write_stream(doc, std::io::Cursor::new(vec![6u8; large_len]))
        .expect("write");
    let kinds: Vec<ItemKind> = new_since(&bob, &before).iter().map(Item::kind).collect();
    assert!(
        kinds.len() >= 3 && kinds.iter().filter(|k| **k == ItemKind::Blob).count() >= 2,
        "a stream past INLINE_MAX is an op, a manifest and pieces: {kinds:?}"
    );
    sync(&bob, &mut carol);
    let mut read = Vec::new();
    carol
        .read_change(doc, &small, &mut read)
        .expect("read small");
    assert_eq!(read, vec![5u8; 150]);
    let mut read = Vec::new();
    carol
        .read_change(doc, &large, &mut read)
        .expect("read large");
    assert_eq!(read.len(), large_len);
}

#[test]
fn inl4_a_ciphertext_moved_into_another_op_does_not_open() {
    let (mut alice, bob, mut carol, doc) = three();
    let mine = alice.write(doc, b"alice's secret").expect("write");
    // Bob, a writer, re-signs Alice's ciphertext (epoch, salt, commitment and all) in an op of
    // his own: the relay and readers admit it (a valid write), but it opens for nobody.
    let alices = op_of(&alice, &mine);
    let mut forged: ContentOp = op_of(&bob, &bob.changes(doc).expect("changes")[1].op)
        .unverified_payload()
        .clone();
    forged.body.payload = alices.unverified_payload().body.payload.clone();
    let forged = Verified::sign(forged, bob.device().signing_key()).expect("sign");
    sync(&alice, &mut carol);
    let item = Item::new(
        ItemKind::Content,
        SubjectId(doc.0),
        forged.as_bytes().to_vec(),
    )
    .expect("item");
    carol
        .ingest(tag(&bob), &item)
        .expect("a valid op is admitted");
    let cgka = carol.cgka(&doc).expect("carol is seated");
    assert_eq!(
        open_inline_with_epoch(cgka, &forged).map(|_| ()),
        Err(DecryptError::KeyCommitment),
        "INL-3: the key is bound to the author"
    );
    // Alice moving her own ciphertext into another op of hers (same author, epoch and salt,
    // so the same key) fails authentication: the header is the associated data (INL-4).
    let mut moved: ContentOp = alices.unverified_payload().clone();
    moved.predecessors.clear();
    let moved = Verified::sign(moved, alice.device().signing_key()).expect("sign");
    assert_eq!(
        open_inline_with_epoch(cgka, &moved).map(|_| ()),
        Err(DecryptError::Authentication),
        "INL-4: the header is the associated data"
    );
    let listed = carol.changes(doc).expect("changes");
    let entry = listed
        .iter()
        .find(|c| c.op == forged.hash())
        .expect("listed");
    assert_eq!(entry.length, None, "unreadable");
    assert!(matches!(
        carol.read_change(doc, &forged.hash(), Vec::new()),
        Err(ReplicaError::Unreadable { .. })
    ));
    // Alice's own change still reads.
    let mut out = Vec::new();
    carol.read_change(doc, &mine, &mut out).expect("read");
    assert_eq!(out, b"alice's secret");
    // The same swap without re-signing fails the signature.
    let mut swapped = bob
        .store()
        .get(&bob.changes(doc).expect("changes")[1].op)
        .expect("get")
        .expect("held")
        .envelope()
        .to_vec();
    let theirs = inline_of(alices.unverified_payload()).ciphertext.clone();
    let ours =
        inline_of(op_of(&bob, &bob.changes(doc).expect("changes")[1].op).unverified_payload())
            .ciphertext
            .clone();
    let at = swapped
        .windows(ours.len())
        .position(|w| w == ours.as_slice())
        .expect("ciphertext in the envelope");
    if theirs.len() == ours.len() {
        swapped[at..at + ours.len()].copy_from_slice(&theirs);
        let item = Item::new(ItemKind::Content, SubjectId(doc.0), swapped).expect("item");
        assert!(matches!(
            carol.ingest(tag(&bob), &item),
            Err(ReplicaError::Refused(Refusal::BadSignature(_)))
        ));
    }
}

#[test]
fn inl1_truncated_non_canonical_and_oversized_inline_ops_are_refused() {
    let (_alice, mut bob, mut carol, doc) = three();
    let op = bob.write(doc, &[5; 150]).expect("write");
    let envelope = bob
        .store()
        .get(&op)
        .expect("get")
        .expect("held")
        .envelope()
        .to_vec();
    let refused = |carol: &mut R, bytes: Vec<u8>| -> DecodeError {
        let item = Item::new(ItemKind::Content, SubjectId(doc.0), bytes);
        let item = match item {
            Ok(item) => item,
            Err(e) => panic!("the item layer let it through to admission: {e}"),
        };
        match carol.ingest(PeerTag::from(bob_key(&bob)), &item) {
            Err(ReplicaError::Refused(Refusal::Malformed(e))) => e,
            other => panic!("refused as malformed, got {other:?}"),
        }
    };
    // Truncated: one byte of the ciphertext missing (the signature then ends early).
    let mut truncated = envelope.clone();
    truncated.remove(truncated.len() - 65);
    assert!(matches!(
        refused(&mut carol, truncated),
        DecodeError::Malformed(_) | DecodeError::TrailingBytes(_)
    ));
    // Non-canonical: the ciphertext's length written as an overlong varint.
    let signed = Signed::<ContentOp>::decode(&envelope).expect("decode");
    let c = inline_of(signed.unverified_payload());
    let len = c.ciphertext.len();
    let payload = encode_tagged(signed.unverified_payload());
    let short = keyhive_core::encoding::encode(&(len as u64));
    let at = payload.len() - len - short.len();
    assert_eq!(&payload[at..at + short.len()], short.as_slice());
    let mut long = short.clone();
    if long.len() == 1 {
        long = vec![long[0] | 0x80, 0x00];
    } else {
        let last = long.len() - 1;
        long[last] |= 0x80;
        long.push(0x00);
    }
    let mut non_canonical = payload[..at].to_vec();
    non_canonical.extend_from_slice(&long);
    non_canonical.extend_from_slice(&payload[at + short.len()..]);
    non_canonical.extend_from_slice(&bob.device().signing_key().sign(&non_canonical));
    assert_eq!(
        refused(&mut carol, non_canonical),
        DecodeError::NonCanonical
    );
    // An inline ciphertext over the limit, correctly signed: a structural refusal.
    let mut big = signed.unverified_payload().clone();
    if let Payload::Inline(c) = &mut big.body.payload {
        c.ciphertext = vec![0; INLINE_MAX_CIPHERTEXT + 1];
    }
    let mut bytes = encode_tagged(&big);
    bytes.extend_from_slice(&bob.device().signing_key().sign(&bytes));
    assert!(matches!(
        refused(&mut carol, bytes),
        DecodeError::InvalidStructure(_)
    ));
    // A content op of a version this build does not know.
    let mut future = encode_tagged(signed.unverified_payload());
    let version_at = 1 + "keyhive/content".len();
    assert_eq!(future[version_at], 3, "writers write version 3 (SYNC-110)");
    future[version_at] = 4;
    future.extend_from_slice(&bob.device().signing_key().sign(&future));
    assert!(matches!(
        refused(&mut carol, future),
        DecodeError::UnsupportedVersion { found: 4, .. }
    ));
}

fn bob_key(bob: &R) -> keyhive_core::crypto::signing::PublicKey {
    bob.device().id().0
}

/// End to end through a relay: Bob writes a small change (one item), Carol, a reader, reads
/// it after a sync; Dave, who holds nothing on the document, gets nothing to read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inl1_a_reader_reads_an_inline_change_through_a_relay_and_a_stranger_cannot() {
    let store = Arc::new(MemoryStore::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let relay = Relay::serve(
        listener,
        store.clone(),
        Arc::new(CapabilityPolicy::new([])),
        RelayConfig::new(SigningKey::generate()),
    )
    .expect("relay");
    let [alice, bob, carol, dave] = ["alice", "bob", "carol", "dave"]
        .map(|n| Repo::in_memory(Device::generate(Some(n.into()))).expect("repo"));
    let doc = alice.create_document().expect("doc");
    alice
        .add_contact(bob.contact_card().expect("card"))
        .expect("contact");
    alice
        .add_contact(carol.contact_card().expect("card"))
        .expect("contact");
    alice
        .grant(&doc.0, AgentId::Individual(bob.id()), Access::Write)
        .expect("grant");
    alice
        .grant(&doc.0, AgentId::Individual(carol.id()), Access::Read)
        .expect("grant");
    alice.write(doc, b"first").expect("write");
    for repo in [&alice, &bob, &carol, &dave] {
        repo.connect(relay.url(), Some(relay.id())).await;
        repo.sync().await.expect("sync");
    }
    let before: BTreeSet<Hash> = relay_hashes(&store);
    let change = bob.write(doc, b"a small automerge change").expect("write");
    bob.sync().await.expect("sync");
    let new: Vec<Hash> = relay_hashes(&store).difference(&before).copied().collect();
    assert_eq!(
        new,
        vec![change],
        "the relay stored one item for the change"
    );
    carol.sync().await.expect("sync");
    assert_eq!(
        carol.read(doc, &change).expect("carol reads"),
        b"a small automerge change"
    );
    dave.sync().await.expect("sync");
    assert!(dave.read(doc, &change).is_err(), "a stranger reads nothing");
    assert!(dave.changes(doc).map(|c| c.is_empty()).unwrap_or(true));
    for repo in [alice, bob, carol, dave] {
        repo.shutdown().await.expect("shutdown");
    }
    relay.shutdown().await.expect("shutdown");
}

fn relay_hashes(store: &MemoryStore) -> BTreeSet<Hash> {
    let mut out = BTreeSet::new();
    for subject in store.subjects().expect("subjects") {
        out.extend(store.hashes(&subject).expect("hashes"));
    }
    out
}
