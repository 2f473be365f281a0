//! REP-70: a device replica marks each stored item whose signatures it verified (keyed BLAKE3
//! of the item's address, under a key derived from the device's signing key), and a later open
//! applies marked items without checking their signatures again. Every other admission rule
//! still applies to them, and an item without a valid mark of this device (altered on disk, or
//! carrying a mark made under any other key) is checked as before.

mod replicas;

use std::sync::Arc;

use keyhive_core::Hash;
use keyhive_core::capability::Access;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::identity::DocumentId;
use keyhive_sync::replica::Replica;
use keyhive_sync::store::MarkKey;
use keyhive_sync::{Item, ItemKind, MemoryStore, Store};
use replicas::{all_items, card, me, read, replica_with, tag};

type R = Replica<Arc<MemoryStore>>;

fn replica(name: &str) -> R {
    replica_with(name, Arc::new(MemoryStore::new()))
}

/// One-way sync: `to` ingests everything `from` stores.
fn push(from: &R, to: &mut R) {
    for (hash, result) in to.ingest_all(tag(from), all_items(from)).expect("ingest") {
        result.unwrap_or_else(|e| panic!("{hash}: {e}"));
    }
}

/// `r`'s device opened again over `store`, with the key-agreement secrets it holds (as the
/// CLI restores them from its key store).
fn reopen_over(r: &R, store: Arc<MemoryStore>) -> R {
    let secrets: Vec<_> = r.cgka_secrets().collect();
    let mut again = Replica::open(r.device().clone(), store).expect("open");
    again.import_cgka_secrets(secrets);
    again
}

fn reopen(r: &R) -> R {
    reopen_over(r, Arc::clone(r.store()))
}

/// Items that carry a signature (every kind but changes and pieces).
fn signed(r: &R) -> usize {
    all_items(r)
        .iter()
        .filter(|i| i.kind() != ItemKind::Blob)
        .count()
}

/// Alice shares a document with Bob as a writer; both write. Bob's store holds what he took
/// from Alice (checked as it arrived) and what he made himself.
fn story() -> (R, R, DocumentId) {
    let (mut alice, mut bob) = (replica("alice"), replica("bob"));
    let doc = alice.create_document().expect("doc");
    alice.add_contact(card(&bob)).expect("card");
    alice.grant(&doc.0, me(&bob), Access::Write).expect("grant");
    alice.write(doc, b"from alice").expect("write");
    push(&alice, &mut bob);
    bob.write(doc, b"from bob").expect("write");
    push(&bob, &mut alice);
    (alice, bob, doc)
}

#[test]
fn rep70_a_device_checks_each_stored_signature_once_across_opens() {
    let (_alice, bob, doc) = story();
    let first = reopen(&bob);
    let stats = first.open_stats();
    assert_eq!(stats.items, all_items(&bob).len(), "{stats:?}");
    // What Bob took from Alice was marked as it arrived; what he made himself is checked
    // once, at this open, and marked.
    assert!(stats.marked > 0 && stats.verified > 0, "{stats:?}");
    assert_eq!(stats.marked + stats.verified, signed(&bob), "{stats:?}");

    let second = reopen(&first);
    let stats = second.open_stats();
    assert_eq!(stats.marked, signed(&bob), "{stats:?}");
    assert_eq!(stats.verified, 0, "{stats:?}");
    assert_eq!(read(&second, doc), Some(b"from bob".to_vec()));
    let validity = |r: &R| {
        let mut ops: Vec<String> = r
            .checker()
            .ops_for(&doc.0)
            .map(|op| format!("{} {:?}", op.hash(), r.checker().op_validity(&op.hash())))
            .collect();
        ops.sort();
        ops
    };
    assert_eq!(validity(&second), validity(&bob));
}

/// A copy of `r`'s store and marks with `original` replaced by `forged`, plus `marks`.
fn doctored(
    r: &R,
    original: &Hash,
    forged: &Item,
    marks: &[(Hash, keyhive_sync::store::Mark)],
) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let mut items: Vec<Item> = all_items(r)
        .into_iter()
        .filter(|i| i.hash() != *original)
        .collect();
    items.push(forged.clone());
    store.put(&items).expect("put");
    store
        .put_marks(&r.store().marks().expect("marks"))
        .expect("marks");
    store.put_marks(marks).expect("marks");
    store
}

#[test]
fn rep70_an_altered_item_is_checked_whatever_mark_it_carries() {
    let (_alice, bob, doc) = story();
    let bob = reopen(&bob);
    let original = all_items(&bob)
        .into_iter()
        .find(|i| i.kind() == ItemKind::Content && i.subject().0 == doc.0)
        .expect("a content op");
    // One flipped signature bit: the bytes, so the address, differ from those Bob marked.
    let mut bytes = original.envelope().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let forged = Item::new(original.kind(), original.subject(), bytes).expect("item");
    assert_ne!(forged.hash(), original.hash());

    let other_device = MarkKey::for_device(&SigningKey::generate());
    let bobs_key_as_a_relay = MarkKey::from_identity(bob.device().signing_key());
    for (what, marks) in [
        ("no mark", Vec::new()),
        (
            "Bob's mark of the original moved to it",
            vec![(
                forged.hash(),
                MarkKey::for_device(bob.device().signing_key()).mark(&original.hash()),
            )],
        ),
        ("another device's mark", other_device.marks([forged.hash()])),
        (
            "a relay mark under Bob's key",
            bobs_key_as_a_relay.marks([forged.hash()]),
        ),
    ] {
        let store = doctored(&bob, &original.hash(), &forged, &marks);
        let opened = reopen_over(&bob, store);
        assert!(
            opened.checker().op(&forged.hash()).is_none(),
            "{what}: the forged op was refused"
        );
        let stats = opened.open_stats();
        assert_eq!(stats.marked, signed(&bob) - 1, "{what}: {stats:?}");
        assert_eq!(stats.verified, 0, "{what}: {stats:?}");
    }
}

/// CAP-24, REP-70: a root-form grant (its issuer implied by the genesis) replayed before its
/// subject's genesis waited unverified and had its signature checked when the genesis came,
/// though its mark said it was checked before: stored items replay in address order, so about
/// half of a home's root grants did. A replay now applies every genesis first.
#[test]
fn rep70_marked_root_form_ops_are_not_checked_again() {
    let (mut alice, bob) = (replica("alice"), replica("bob"));
    alice.add_contact(card(&bob)).expect("card");
    for _ in 0..12 {
        let doc = alice.create_document().expect("doc");
        alice.grant(&doc.0, me(&bob), Access::Read).expect("grant");
    }
    let root_forms = all_items(&alice)
        .iter()
        .filter(|i| {
            matches!(
                keyhive_core::capability::AnySigned::decode(i.envelope()),
                Ok(keyhive_core::capability::AnySigned::RootForm(_))
            )
        })
        .count();
    assert!(root_forms >= 12, "the grants are root forms: {root_forms}");
    // The first open checks and marks what Alice wrote herself; the second trusts the marks.
    let second = reopen(&reopen(&alice));
    assert_eq!(second.open_stats().marked, signed(&alice));
    assert_eq!(
        second.checker().signatures_verified(),
        0,
        "no signature is checked again on an open of marked items"
    );
}

/// REP-5, REP-70: an entry point is a signed item of kind `Blob`; it was never marked, so every
/// open verified every entry point again (about 5,000 in a home that shared a 2,000-document
/// folder and then revoked it). It is marked like any signed item now.
#[test]
fn rep70_entry_points_are_marked_like_ops() {
    use keyhive_core::encoding::{SignedPayload, peek_tag};
    use keyhive_sync::blob::EntryPoint;
    let (mut alice, bob) = (replica("alice"), replica("bob"));
    alice.add_contact(card(&bob)).expect("card");
    let doc = alice.create_document().expect("doc");
    alice.write(doc, b"before bob").expect("write");
    // Bob is seated after the change: Alice publishes an entry point carrying its key.
    alice.grant(&doc.0, me(&bob), Access::Read).expect("grant");
    alice.prepare_all().expect("prepare");
    let entry_points = all_items(&alice)
        .iter()
        .filter(|i| peek_tag(i.envelope()) == Some(EntryPoint::TAG))
        .count();
    assert!(entry_points > 0, "an entry point was published");

    let second = reopen(&reopen(&alice));
    let stats = second.open_stats();
    assert_eq!(stats.marked, signed(&alice) + entry_points, "{stats:?}");
    assert_eq!(stats.verified, 0, "{stats:?}");
}
