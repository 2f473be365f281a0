//! Issue 11 #4 (small changes stay small): the bytes a relay stores for one 150-byte change
//! written through the public handle ([`Repo`]), with every byte attributed to a field, and
//! the bytes per change when an app writes [`BATCH`] such changes at once.
//!
//! Run with `cargo test -p keyhive-sync --test change_size -- --nocapture` to see the figure
//! and its breakdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use keyhive_core::Hash;
use keyhive_core::capability::{Access, AgentId, ContentOp, Payload};
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::encoding::{SignedPayload, encode};
use keyhive_core::identity::{Device, DocumentId};
use keyhive_core::signed::{OpBody, SIGNATURE_LEN, Signed};
use keyhive_sync::blob::Blob;
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::{Item, ItemKind, MemoryStore, Relay, RelayConfig, Repo, Store};

/// The change an app writes (a small Automerge change is ~150 B).
const CHANGE_LEN: usize = 150;
/// Changes an app writes together in the batched measurement.
const BATCH: usize = 10;
/// Regression ceiling for one 150 B change: one item (INL-1). The target (at most
/// 150 B + the change itself) is NOT met; see the breakdown this test prints for where the
/// bytes go (before INL-1: 718 B in two items).
const CEILING: usize = 600;

fn relay_items(store: &MemoryStore) -> Vec<Item> {
    let mut out = Vec::new();
    for subject in store.subjects().unwrap() {
        for hash in store.hashes(&subject).unwrap() {
            out.extend(store.get(&hash).unwrap());
        }
    }
    out
}

/// Each field of a content op envelope, encoded on its own: (name, bytes).
fn op_fields(item: &Item, content_len: usize) -> Vec<(&'static str, usize)> {
    let op = Signed::<ContentOp>::decode(item.envelope()).unwrap();
    let op = op.unverified_payload();
    // SYNC-110: a content op of the current version travels without its tag, version and
    // document (the item's subject): one code byte stands for the tag and the version.
    let compact = item.wire_len() < item.envelope().len();
    let mut fields = if compact {
        vec![("op wire code (tag + version, SYNC-110)", 1)]
    } else {
        vec![(
            "op tag + version",
            encode(&<keyhive_core::capability::ContentBody as OpBody>::TAG).len() + 1,
        )]
    };
    fields.extend([
        ("op issuer", encode(&op.issuer).len()),
        ("op content predecessors", encode(&op.predecessors).len()),
    ]);
    if !compact {
        fields.push(("op document", encode(&op.body.document).len()));
    }
    fields.extend([
        ("op auth heads", encode(&op.body.auth_heads).len()),
        ("op proof", encode(&op.body.proof).len()),
        ("op payload variant", 1),
    ]);
    match &op.body.payload {
        Payload::Blob { hash, len } => {
            fields.push(("op payload hash", encode(hash).len()));
            fields.push(("op payload length", encode(len).len()));
        }
        Payload::Inline(c) => {
            // INL-5 plaintext: count (1) || count x (reference, key) || content.
            let keys = c.ciphertext.len() - 16 - 1 - content_len;
            fields.extend([
                ("inline epoch", encode(&c.epoch).len()),
                ("inline salt", c.salt.len()),
                ("key commitment", c.commitment.len()),
                (
                    "ciphertext length",
                    encode(&(c.ciphertext.len() as u64)).len(),
                ),
                ("AEAD tag", 16),
                ("predecessor count", 1),
                ("predecessor (reference, key)s", keys),
                ("the content itself", content_len),
            ]);
        }
    }
    fields.push(("op signature", SIGNATURE_LEN));
    fields
}

/// Each field of a change blob holding `content_len` bytes of content, encoded on its own.
fn blob_fields(item: &Item, content_len: usize) -> Vec<(&'static str, usize)> {
    let Blob::Change { change, pieces } = Blob::from_bytes(item.envelope()).unwrap() else {
        panic!("a change blob");
    };
    let ciphertext = change.sealed.ciphertext.len();
    // CENC-3 plaintext: count (4) || count x (reference, key) || body; the body of an inline
    // change is `Body::Inline` (variant byte, length varint, content).
    let body = 1 + encode(&(content_len as u64)).len() + content_len;
    let keys = ciphertext - 16 - 4 - body;
    vec![
        ("blob tag + version", encode(&Blob::TAG).len() + 1),
        ("blob variant", 1),
        ("header document", encode(&change.header.document).len()),
        ("header epoch", encode(&change.header.epoch).len()),
        ("header reference", encode(&change.header.change).len()),
        ("nonce", change.sealed.nonce.len()),
        ("key commitment", change.sealed.commitment.len()),
        ("ciphertext length", encode(&(ciphertext as u64)).len()),
        ("AEAD tag", 16),
        ("predecessor count", 4),
        ("predecessor (reference, key)s", keys),
        ("body framing", body - content_len),
        ("the content itself", content_len),
        ("piece list", encode(&pieces).len()),
    ]
}

/// Writes `content` as one change of `document` on `repo`, syncs, and returns the bytes the
/// relay stored for it and their attribution.
async fn write_and_measure(
    repo: &Repo,
    store: &MemoryStore,
    document: DocumentId,
    content: &[u8],
) -> (usize, usize, Vec<(&'static str, usize)>) {
    let before: BTreeSet<Hash> = relay_items(store).iter().map(Item::hash).collect();
    repo.write(document, content).unwrap();
    repo.sync().await.unwrap();
    let new: Vec<Item> = relay_items(store)
        .into_iter()
        .filter(|i| !before.contains(&i.hash()))
        .collect();
    let items = new.len();
    let mut fields = Vec::new();
    for item in &new {
        match item.kind() {
            ItemKind::Content => fields.extend(op_fields(item, content.len())),
            ItemKind::Blob => fields.extend(blob_fields(item, content.len())),
            other => panic!("a write stored an unexpected {other:?} item"),
        }
    }
    // What the relay stores and serves: the wire form (SYNC-110).
    (new.iter().map(Item::wire_len).sum(), items, fields)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_bytes_per_150_byte_change() {
    let store = Arc::new(MemoryStore::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = Relay::serve(
        listener,
        store.clone(),
        Arc::new(CapabilityPolicy::new([])),
        RelayConfig::new(SigningKey::generate()),
    )
    .unwrap();
    let alice = Repo::in_memory(Device::generate(Some("alice".into()))).unwrap();
    let bob = Repo::in_memory(Device::generate(Some("bob".into()))).unwrap();
    let doc = alice.create_document().unwrap();
    alice.add_contact(bob.contact_card().unwrap()).unwrap();
    alice
        .grant(&doc.0, AgentId::Individual(bob.id()), Access::Write)
        .unwrap();
    // A steady document: both devices wrote before, so the change has one predecessor.
    alice.write(doc, &[1; CHANGE_LEN]).unwrap();
    for repo in [&alice, &bob] {
        repo.connect(relay.url(), Some(relay.id())).await;
        repo.sync().await.unwrap();
    }
    bob.write(doc, &[2; CHANGE_LEN]).unwrap();
    bob.sync().await.unwrap();

    // Measured: a change by Bob, a writer through a delegation (as most writers are).
    let (stored, items, fields) = write_and_measure(&bob, &store, doc, &[3; CHANGE_LEN]).await;
    println!(
        "relay bytes for one {CHANGE_LEN} B change: {stored} B in {items} item(s) ({} B overhead)",
        stored - CHANGE_LEN
    );
    assert_eq!(items, 1, "INL-1: a small change is one item");
    for (name, len) in &fields {
        println!("  {len:>4} B  {name}");
    }
    let attributed: usize = fields.iter().map(|(_, n)| n).sum();
    assert_eq!(
        attributed, stored,
        "every stored byte is attributed to a field"
    );
    assert!(
        stored <= CEILING,
        "{stored} B exceed the {CEILING}-byte ceiling"
    );

    // The same overhead carries several changes when an app writes them together (Automerge
    // loads concatenated changes): per change, within the bound from BATCH on.
    let batch = vec![4; BATCH * CHANGE_LEN];
    let (stored, _, _) = write_and_measure(&bob, &store, doc, &batch).await;
    let per_change = stored / BATCH;
    println!(
        "relay bytes for {BATCH} {CHANGE_LEN} B changes in one write: {stored} B, \
         {per_change} B per change"
    );
    assert!(
        per_change <= 2 * CHANGE_LEN,
        "{per_change} B per change in a batch of {BATCH}"
    );
    // The figures for larger changes: 1 KiB and 10 KiB (blob path, INL-2).
    for len in [1024, 10 * 1024] {
        let (stored, items, _) = write_and_measure(&bob, &store, doc, &vec![5; len]).await;
        println!(
            "relay bytes for one {len} B change: {stored} B in {items} item(s) ({} B overhead)",
            stored - len
        );
        assert_eq!(
            items, 2,
            "a change over the inline limit is an op and a blob"
        );
    }
    alice.shutdown().await.unwrap();
    bob.shutdown().await.unwrap();
    relay.shutdown().await.unwrap();
}
