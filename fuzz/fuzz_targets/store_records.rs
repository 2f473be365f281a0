//! What storage and the wire hold: items of every kind, blobs and reconciliation summaries.
#![no_main]

use keyhive_core::crypto::signing::PublicKey;
use keyhive_sync::blob::Blob;
use keyhive_sync::reconcile::Summary;
use keyhive_sync::{Item, ItemKind, SubjectId, WireItem};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Blob::from_bytes(data);
    let _ = Summary::from_bytes(data);
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let kind = match kind % 4 {
        0 => ItemKind::Auth,
        1 => ItemKind::Cgka,
        2 => ItemKind::Content,
        _ => ItemKind::Blob,
    };
    let subject = SubjectId(PublicKey([1; 32]));
    let _ = Item::new(kind, subject, rest.to_vec());
    // SYNC-110: a stored or received envelope is in its wire form; whatever expands has
    // exactly one wire form, the bytes it came from.
    let wire = WireItem {
        kind,
        subject,
        envelope: rest.to_vec(),
    };
    if let Ok(item) = Item::from_wire(wire.clone()) {
        assert_eq!(item.to_wire(), wire, "one wire form per item");
        assert_eq!(item.wire_len(), rest.len());
    }
});
