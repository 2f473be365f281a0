//! What storage and the wire hold: items of every kind, blobs and reconciliation summaries.
#![no_main]

use keyhive_core::crypto::signing::PublicKey;
use keyhive_sync::blob::Blob;
use keyhive_sync::reconcile::Summary;
use keyhive_sync::{Item, ItemKind, SubjectId};
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
    let _ = Item::new(kind, SubjectId(PublicKey([1; 32])), rest.to_vec());
});
