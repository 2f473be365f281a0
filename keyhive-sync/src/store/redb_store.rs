//! The default durable store: redb, one file, ACID, fsync on every commit (STORE-1).
//!
//! Schema version 1 (STORE-5): tables
//! - `meta`: `&str -> u64`, holds `schema_version`;
//! - `items`: `hash[32] -> kind[1] || subject[32] || envelope`;
//! - `by_subject`: `subject[32] || hash[32] -> ()`, giving STORE-3's sorted order;
//! - `summaries`: `subject[32] -> count_le[8] || sum[32]`, maintained in the same transaction.
//!
//! A database with another schema version is refused, never silently rewritten.

use std::collections::BTreeMap;
use std::path::Path;

use keyhive_core::Hash;
use keyhive_core::crypto::signing::PublicKey;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Store, StoreError};
use crate::item::{Item, ItemKind, SubjectId};
use crate::reconcile::summary::Summary;

/// STORE-5: the schema version this build reads and writes.
pub const SCHEMA_VERSION: u64 = 1;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const ITEMS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("items");
const BY_SUBJECT: TableDefinition<&[u8; 64], ()> = TableDefinition::new("by_subject");
const SUMMARIES: TableDefinition<&[u8; 32], &[u8; 40]> = TableDefinition::new("summaries");

fn backend<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Backend(e.into().to_string())
}

/// A store in one redb file.
pub struct RedbStore {
    db: Database,
}

impl RedbStore {
    /// Opens (or creates) the database at `path`, creating tables and checking the schema
    /// version (STORE-5).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        {
            let mut meta = txn.open_table(META).map_err(backend)?;
            let found = meta
                .get("schema_version")
                .map_err(backend)?
                .map(|v| v.value());
            match found {
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION)
                        .map_err(backend)?;
                }
                Some(SCHEMA_VERSION) => {}
                Some(found) => {
                    return Err(StoreError::SchemaVersion {
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
            }
            txn.open_table(ITEMS).map_err(backend)?;
            txn.open_table(BY_SUBJECT).map_err(backend)?;
            txn.open_table(SUMMARIES).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        Ok(RedbStore { db })
    }
}

fn subject_key(subject: &SubjectId, hash: &Hash) -> [u8; 64] {
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(subject.as_bytes());
    key[32..].copy_from_slice(&hash.0);
    key
}

fn encode_item(item: &Item) -> Vec<u8> {
    let mut out = Vec::with_capacity(33 + item.envelope().len());
    out.push(item.kind().code());
    out.extend_from_slice(item.subject().as_bytes());
    out.extend_from_slice(item.envelope());
    out
}

fn decode_item(bytes: &[u8], hash: &Hash) -> Result<Item, StoreError> {
    let (&code, rest) = bytes
        .split_first()
        .ok_or(StoreError::Corrupt("empty item"))?;
    let kind = ItemKind::from_code(code).ok_or(StoreError::Corrupt("unknown item kind"))?;
    if rest.len() < 32 {
        return Err(StoreError::Corrupt("item shorter than its header"));
    }
    let mut subject = [0u8; 32];
    subject.copy_from_slice(&rest[..32]);
    let item = Item::new(kind, SubjectId(PublicKey(subject)), rest[32..].to_vec())
        .map_err(|_| StoreError::Corrupt("stored envelope breaks SYNC-2"))?;
    if item.hash() != *hash {
        return Err(StoreError::Corrupt("stored item does not match its hash"));
    }
    Ok(item)
}

impl Store for RedbStore {
    fn put(&self, items: &[Item]) -> Result<Vec<bool>, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let mut out = Vec::with_capacity(items.len());
        {
            let mut table = txn.open_table(ITEMS).map_err(backend)?;
            let mut index = txn.open_table(BY_SUBJECT).map_err(backend)?;
            let mut summaries = txn.open_table(SUMMARIES).map_err(backend)?;
            let mut touched: BTreeMap<SubjectId, Summary> = BTreeMap::new();
            for item in items {
                let hash = item.hash();
                if table.get(&hash.0).map_err(backend)?.is_some() {
                    out.push(false);
                    continue;
                }
                table
                    .insert(&hash.0, encode_item(item).as_slice())
                    .map_err(backend)?;
                index
                    .insert(&subject_key(&item.subject(), &hash), ())
                    .map_err(backend)?;
                let subject = item.subject();
                let summary = match touched.get_mut(&subject) {
                    Some(s) => s,
                    None => {
                        let current = match summaries.get(subject.as_bytes()).map_err(backend)? {
                            Some(v) => Summary::from_bytes(v.value())
                                .ok_or(StoreError::Corrupt("bad summary"))?,
                            None => Summary::default(),
                        };
                        touched.entry(subject).or_insert(current)
                    }
                };
                summary.add(&hash);
                out.push(true);
            }
            for (subject, summary) in touched {
                summaries
                    .insert(subject.as_bytes(), &summary.to_bytes())
                    .map_err(backend)?;
            }
        }
        // STORE-1: Durability::Immediate (the default) fsyncs before commit returns.
        txn.commit().map_err(backend)?;
        Ok(out)
    }

    fn get(&self, hash: &Hash) -> Result<Option<Item>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(ITEMS).map_err(backend)?;
        match table.get(&hash.0).map_err(backend)? {
            Some(v) => decode_item(v.value(), hash).map(Some),
            None => Ok(None),
        }
    }

    fn contains(&self, hash: &Hash) -> Result<bool, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(ITEMS).map_err(backend)?;
        Ok(table.get(&hash.0).map_err(backend)?.is_some())
    }

    fn hashes(&self, subject: &SubjectId) -> Result<Vec<Hash>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let index = txn.open_table(BY_SUBJECT).map_err(backend)?;
        let lo = subject_key(subject, &Hash([0; 32]));
        let hi = subject_key(subject, &Hash([0xff; 32]));
        let mut out = Vec::new();
        for entry in index.range::<&[u8; 64]>(&lo..=&hi).map_err(backend)? {
            let (key, _) = entry.map_err(backend)?;
            let mut h = [0u8; 32];
            h.copy_from_slice(&key.value()[32..]);
            out.push(Hash(h));
        }
        Ok(out)
    }

    fn summary(&self, subject: &SubjectId) -> Result<Summary, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let summaries = txn.open_table(SUMMARIES).map_err(backend)?;
        match summaries.get(subject.as_bytes()).map_err(backend)? {
            Some(v) => Summary::from_bytes(v.value()).ok_or(StoreError::Corrupt("bad summary")),
            None => Ok(Summary::default()),
        }
    }

    fn subjects(&self) -> Result<Vec<SubjectId>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let summaries = txn.open_table(SUMMARIES).map_err(backend)?;
        let mut out = Vec::new();
        for entry in summaries.iter().map_err(backend)? {
            let (key, _) = entry.map_err(backend)?;
            out.push(SubjectId(PublicKey(*key.value())));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance() {
        let dir = tempfile::tempdir().expect("tempdir");
        let counter = std::sync::atomic::AtomicUsize::new(0);
        super::super::conformance::run_all(|| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            RedbStore::open(dir.path().join(format!("db{n}.redb"))).expect("open")
        });
    }

    #[test]
    fn reopen_keeps_data_and_refuses_other_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let items = super::super::conformance::sample_items(5, 2);
        {
            let store = RedbStore::open(&path).expect("open");
            store.put(&items).expect("put");
        }
        {
            let store = RedbStore::open(&path).expect("reopen");
            for item in &items {
                assert_eq!(store.get(&item.hash()).expect("get").as_ref(), Some(item));
            }
            let txn = store.db.begin_write().expect("txn");
            txn.open_table(META)
                .expect("meta")
                .insert("schema_version", 99)
                .expect("insert");
            txn.commit().expect("commit");
        }
        assert!(matches!(
            RedbStore::open(&path),
            Err(StoreError::SchemaVersion { found: 99, .. })
        ));
    }
}
