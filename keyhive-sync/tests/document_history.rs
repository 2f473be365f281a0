//! `keyhive_sync::record::DocumentHistory` on two writers' replicas, without a network:
//! renames (REP-50), removals that an unseen edit outlives (REP-51), and concurrent versions
//! kept as several file heads (REP-52), the same on every replica.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod replicas;

use keyhive_core::capability::Access;
use keyhive_core::identity::DocumentId;
use keyhive_sync::record::{
    ChangeRecord, DocumentHistory, Metadata, MetadataKind, MetadataUpdate, file_record,
};
use replicas::{R, all_items, card, me, replica, tag};

/// One-way sync: `to` ingests everything `from` stores.
fn push(from: &R, to: &mut R) {
    for (hash, result) in to.ingest_all(tag(from), all_items(from)).unwrap() {
        result.unwrap_or_else(|e| panic!("{hash}: {e}"));
    }
}

/// Alice creates a named document and shares it with Bob as a writer; both hold it.
fn shared_document() -> (R, R, DocumentId) {
    let (mut alice, mut bob) = (replica("alice"), replica("bob"));
    let doc = alice.create_document().unwrap();
    let meta = Metadata {
        name: "notes.txt".into(),
        kind: MetadataKind::Document,
        folder: None,
    };
    alice.write(doc, &meta.to_record()).unwrap();
    alice.add_contact(card(&bob)).unwrap();
    alice.grant(&doc.0, me(&bob), Access::Write).unwrap();
    alice.write(doc, &file_record(b"v1")).unwrap();
    push(&alice, &mut bob);
    (alice, bob, doc)
}

fn history(r: &R, doc: DocumentId) -> DocumentHistory {
    DocumentHistory::load(r, doc).unwrap()
}

fn file_of(r: &R, doc: DocumentId, change: &keyhive_sync::record::HistoryChange) -> Vec<u8> {
    let mut out = Vec::new();
    r.read_change(doc, &change.op, &mut out).unwrap();
    out
}

#[test]
fn rep50_the_last_rename_in_causal_order_names_the_document_everywhere() {
    let (mut alice, mut bob, doc) = shared_document();
    alice
        .write(
            doc,
            &MetadataUpdate::Rename {
                name: "a.txt".into(),
            }
            .to_record(),
        )
        .unwrap();
    bob.write(
        doc,
        &MetadataUpdate::Rename {
            name: "b.txt".into(),
        }
        .to_record(),
    )
    .unwrap();
    push(&alice, &mut bob);
    push(&bob, &mut alice);
    let (a, b) = (history(&alice, doc), history(&bob, doc));
    let name = a.metadata().unwrap().name;
    assert!(name == "a.txt" || name == "b.txt", "{name}");
    assert_eq!(b.metadata().unwrap().name, name, "both replicas agree");
    assert!(!a.metadata().unwrap().removed);
    assert!(
        a.changes
            .iter()
            .filter(|c| matches!(c.record, ChangeRecord::Update(_)))
            .count()
            == 2
    );
}

#[test]
fn rep51_a_removal_stands_only_over_every_edit_it_saw() {
    let (mut alice, mut bob, doc) = shared_document();
    // Bob edits while Alice, who has not seen the edit, removes the document.
    bob.write(doc, &file_record(b"bob's edit")).unwrap();
    alice
        .write(doc, &MetadataUpdate::Remove.to_record())
        .unwrap();
    assert!(history(&alice, doc).metadata().unwrap().removed);
    push(&bob, &mut alice);
    push(&alice, &mut bob);
    for r in [&alice, &bob] {
        assert!(
            !history(r, doc).metadata().unwrap().removed,
            "the unseen edit keeps it"
        );
    }
    // Removed again by a writer who saw every edit: removed on both.
    bob.write(doc, &MetadataUpdate::Remove.to_record()).unwrap();
    push(&bob, &mut alice);
    for r in [&alice, &bob] {
        let meta = history(r, doc).metadata().unwrap();
        assert!(meta.removed);
        assert_eq!(meta.name, "notes.txt");
    }
}

#[test]
fn rep52_concurrent_versions_are_all_kept_as_file_heads() {
    let (mut alice, mut bob, doc) = shared_document();
    assert_eq!(history(&alice, doc).file_heads().len(), 1);
    alice.write(doc, &file_record(b"alice's")).unwrap();
    bob.write(doc, &file_record(b"bob's")).unwrap();
    push(&alice, &mut bob);
    push(&bob, &mut alice);
    let mut seen = Vec::new();
    for r in [&alice, &bob] {
        let h = history(r, doc);
        let heads: Vec<Vec<u8>> = h.file_heads().iter().map(|c| file_of(r, doc, c)).collect();
        assert_eq!(heads.len(), 2, "both versions kept");
        seen.push(heads);
    }
    assert_eq!(seen[0], seen[1], "same heads, same order, on both replicas");
    let mut sorted = seen[0].clone();
    sorted.sort();
    assert_eq!(sorted, vec![file_record(b"alice's"), file_record(b"bob's")]);
    // A write that saw both merges them into one head.
    alice.write(doc, &file_record(b"merged")).unwrap();
    let h = history(&alice, doc);
    let heads = h.file_heads();
    assert_eq!(heads.len(), 1);
    assert_eq!(file_of(&alice, doc, heads[0]), file_record(b"merged"));
}

#[test]
fn a_document_whose_first_change_is_not_metadata_has_none() {
    let mut alice = replica("alice");
    let doc = alice.create_document().unwrap();
    alice.write(doc, &file_record(b"x")).unwrap();
    alice
        .write(
            doc,
            &MetadataUpdate::Rename {
                name: "late".into(),
            }
            .to_record(),
        )
        .unwrap();
    let h = history(&alice, doc);
    assert_eq!(h.metadata(), None);
    assert_eq!(
        h.changes[1].record,
        ChangeRecord::Update(MetadataUpdate::Rename {
            name: "late".into()
        })
    );
    // An unknown record type is kept as `Other`, never guessed at (REC-5).
    alice.write(doc, &[0x7f, 1, 2]).unwrap();
    assert_eq!(history(&alice, doc).changes[2].record, ChangeRecord::Other);
}
