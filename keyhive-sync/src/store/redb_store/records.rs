//! How items and summaries rest in a redb store, and the errors its calls map to.

use std::path::Path;

use keyhive_core::Hash;
use keyhive_core::crypto::signing::PublicKey;
use redb::ReadableTable;

use super::schema::SUMMARIES;
use crate::item::{Item, ItemKind, SubjectId, WireItem};
use crate::reconcile::summary::Summary;
use crate::store::StoreError;

pub(super) fn backend(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    StoreError::Database {
        path: path.to_path_buf(),
        source: Box::new(e.into()),
    }
}

pub(super) fn corrupt(path: &Path, what: &'static str) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        what,
    }
}

pub(super) fn subject_key(subject: &SubjectId, hash: &Hash) -> [u8; 64] {
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(subject.as_bytes());
    key[32..].copy_from_slice(&hash.0);
    key
}

pub(super) fn encode_item(item: &Item) -> Vec<u8> {
    // SYNC-110: the envelope rests in its wire form.
    let wire = item.wire_envelope();
    let mut out = Vec::with_capacity(33 + wire.len());
    out.push(item.kind().code());
    out.extend_from_slice(item.subject().as_bytes());
    out.extend_from_slice(&wire);
    out
}

pub(super) fn decode_item(bytes: &[u8], hash: &Hash, path: &Path) -> Result<Item, StoreError> {
    let (&code, rest) = bytes
        .split_first()
        .ok_or_else(|| corrupt(path, "empty item"))?;
    let kind = ItemKind::from_code(code).ok_or_else(|| corrupt(path, "unknown item kind"))?;
    if rest.len() < 32 {
        return Err(corrupt(path, "item shorter than its header"));
    }
    let mut subject = [0u8; 32];
    subject.copy_from_slice(&rest[..32]);
    // SYNC-110: the wire form (records written before it hold the signed bytes, which
    // `from_wire` takes as they are).
    let item = Item::from_wire(WireItem {
        kind,
        subject: SubjectId(PublicKey(subject)),
        envelope: rest[32..].to_vec(),
    })
    .map_err(|_| corrupt(path, "stored envelope breaks SYNC-2 or SYNC-110"))?;
    if item.hash() != *hash {
        return Err(corrupt(path, "stored item does not match its hash"));
    }
    Ok(item)
}

pub(super) fn decode_summary(bytes: &[u8; 40], path: &Path) -> Result<Summary, StoreError> {
    Summary::from_bytes(bytes).ok_or_else(|| corrupt(path, "bad summary"))
}

/// Every subject's summary in `txn`, sorted by subject.
pub(super) fn every_summary(
    txn: &redb::ReadTransaction,
    path: &Path,
) -> Result<Vec<(SubjectId, Summary)>, StoreError> {
    let summaries = txn.open_table(SUMMARIES).map_err(|e| backend(path, e))?;
    let mut out = Vec::new();
    for entry in summaries.iter().map_err(|e| backend(path, e))? {
        let (key, value) = entry.map_err(|e| backend(path, e))?;
        let summary = decode_summary(value.value(), path)?;
        out.push((SubjectId(PublicKey(*key.value())), summary));
    }
    Ok(out)
}
