//! [`Store`] over redb: each call is one transaction (STORE-1).

use std::collections::{BTreeMap, BTreeSet};

use keyhive_core::Hash;
use keyhive_core::crypto::signing::PublicKey;
use redb::ReadableTable;

use super::RedbStore;
use super::records::{
    backend, corrupt, decode_item, decode_summary, encode_item, every_summary, subject_key,
};
use super::schema::{
    ADDRESSES, BY_SUBJECT, ITEMS, MARKS, PEER_OFFERS, PEER_TAKEN, SNAPSHOT, SNAPSHOT_ROW, SUMMARIES,
};
use crate::item::{Item, SubjectId};
use crate::reconcile::summary::Summary;
use crate::store::{AddressKey, AddressUsage, Mark, Store, StoreError};

impl Store for RedbStore {
    fn put(&self, items: &[Item]) -> Result<Vec<bool>, StoreError> {
        self.with_db(|db, path| {
            let txn = db.begin_write().map_err(|e| backend(path, e))?;
            let mut out = Vec::with_capacity(items.len());
            {
                let mut table = txn.open_table(ITEMS).map_err(|e| backend(path, e))?;
                let mut index = txn.open_table(BY_SUBJECT).map_err(|e| backend(path, e))?;
                let mut summaries = txn.open_table(SUMMARIES).map_err(|e| backend(path, e))?;
                let mut touched: BTreeMap<SubjectId, Summary> = BTreeMap::new();
                for item in items {
                    let hash = item.hash();
                    if table.get(&hash.0).map_err(|e| backend(path, e))?.is_some() {
                        out.push(false);
                        continue;
                    }
                    table
                        .insert(&hash.0, encode_item(item).as_slice())
                        .map_err(|e| backend(path, e))?;
                    index
                        .insert(&subject_key(&item.subject(), &hash), ())
                        .map_err(|e| backend(path, e))?;
                    let subject = item.subject();
                    let summary = match touched.get_mut(&subject) {
                        Some(s) => s,
                        None => {
                            let current = match summaries
                                .get(subject.as_bytes())
                                .map_err(|e| backend(path, e))?
                            {
                                Some(v) => decode_summary(v.value(), path)?,
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
                        .map_err(|e| backend(path, e))?;
                }
            }
            // STORE-1: Durability::Immediate (the default) fsyncs before commit returns.
            txn.commit().map_err(|e| backend(path, e))?;
            Ok(out)
        })
    }

    fn get(&self, hash: &Hash) -> Result<Option<Item>, StoreError> {
        self.with_read(|txn, path| {
            let table = txn.open_table(ITEMS).map_err(|e| backend(path, e))?;
            let Some(item) = table.get(&hash.0).map_err(|e| backend(path, e))? else {
                return Ok(None);
            };
            let item = decode_item(item.value(), hash, path)?;
            // STORE-9: the hash covers only the envelope; the subject must agree with the index.
            let index = txn.open_table(BY_SUBJECT).map_err(|e| backend(path, e))?;
            let key = subject_key(&item.subject(), hash);
            if index.get(&key).map_err(|e| backend(path, e))?.is_none() {
                return Err(corrupt(
                    path,
                    "stored subject disagrees with the subject index",
                ));
            }
            Ok(Some(item))
        })
    }

    fn contains(&self, hash: &Hash) -> Result<bool, StoreError> {
        self.with_read(|txn, path| {
            let table = txn.open_table(ITEMS).map_err(|e| backend(path, e))?;
            Ok(table.get(&hash.0).map_err(|e| backend(path, e))?.is_some())
        })
    }

    fn hashes(&self, subject: &SubjectId) -> Result<Vec<Hash>, StoreError> {
        self.with_read(|txn, path| {
            let index = txn.open_table(BY_SUBJECT).map_err(|e| backend(path, e))?;
            let lo = subject_key(subject, &Hash([0; 32]));
            let hi = subject_key(subject, &Hash([0xff; 32]));
            let mut out = Vec::new();
            for entry in index
                .range::<&[u8; 64]>(&lo..=&hi)
                .map_err(|e| backend(path, e))?
            {
                let (key, _) = entry.map_err(|e| backend(path, e))?;
                let mut h = [0u8; 32];
                h.copy_from_slice(&key.value()[32..]);
                out.push(Hash(h));
            }
            Ok(out)
        })
    }

    fn summary(&self, subject: &SubjectId) -> Result<Summary, StoreError> {
        self.with_read(|txn, path| {
            let summaries = txn.open_table(SUMMARIES).map_err(|e| backend(path, e))?;
            match summaries
                .get(subject.as_bytes())
                .map_err(|e| backend(path, e))?
            {
                Some(v) => decode_summary(v.value(), path),
                None => Ok(Summary::default()),
            }
        })
    }

    fn subjects(&self) -> Result<Vec<SubjectId>, StoreError> {
        self.with_read(|txn, path| {
            let summaries = txn.open_table(SUMMARIES).map_err(|e| backend(path, e))?;
            let mut out = Vec::new();
            for entry in summaries.iter().map_err(|e| backend(path, e))? {
                let (key, _) = entry.map_err(|e| backend(path, e))?;
                out.push(SubjectId(PublicKey(*key.value())));
            }
            Ok(out)
        })
    }

    /// STORE-21: one read transaction ([`RedbStore::summaries`]).
    fn summaries(&self) -> Result<Vec<(SubjectId, Summary)>, StoreError> {
        self.with_read(every_summary)
    }

    /// STORE-24: one read transaction.
    fn summaries_of(
        &self,
        subjects: &[SubjectId],
    ) -> Result<Vec<(SubjectId, Summary)>, StoreError> {
        let wanted: BTreeSet<&SubjectId> = subjects.iter().collect();
        self.with_read(|txn, path| {
            let summaries = txn.open_table(SUMMARIES).map_err(|e| backend(path, e))?;
            let mut out = Vec::with_capacity(wanted.len());
            for subject in wanted {
                if let Some(v) = summaries
                    .get(subject.as_bytes())
                    .map_err(|e| backend(path, e))?
                {
                    let summary = decode_summary(v.value(), path)?;
                    if summary.count > 0 {
                        out.push((*subject, summary));
                    }
                }
            }
            Ok(out)
        })
    }

    /// STORE-16: one write transaction over the three tables; a subject whose count reaches
    /// zero loses its summary row, so `subjects` no longer lists it.
    fn remove(&self, hashes: &[Hash]) -> Result<Vec<bool>, StoreError> {
        self.with_db(|db, path| {
            let txn = db.begin_write().map_err(|e| backend(path, e))?;
            let mut out = Vec::with_capacity(hashes.len());
            {
                let mut table = txn.open_table(ITEMS).map_err(|e| backend(path, e))?;
                let mut index = txn.open_table(BY_SUBJECT).map_err(|e| backend(path, e))?;
                let mut summaries = txn.open_table(SUMMARIES).map_err(|e| backend(path, e))?;
                let mut touched: BTreeMap<SubjectId, Summary> = BTreeMap::new();
                for hash in hashes {
                    let Some(removed) = table.remove(&hash.0).map_err(|e| backend(path, e))? else {
                        out.push(false);
                        continue;
                    };
                    let subject = decode_item(removed.value(), hash, path)?.subject();
                    drop(removed);
                    index
                        .remove(&subject_key(&subject, hash))
                        .map_err(|e| backend(path, e))?;
                    let summary = match touched.get_mut(&subject) {
                        Some(s) => s,
                        None => {
                            let current = match summaries
                                .get(subject.as_bytes())
                                .map_err(|e| backend(path, e))?
                            {
                                Some(v) => decode_summary(v.value(), path)?,
                                None => return Err(corrupt(path, "item without a summary")),
                            };
                            touched.entry(subject).or_insert(current)
                        }
                    };
                    summary.remove(hash);
                    out.push(true);
                }
                for (subject, summary) in touched {
                    if summary.count == 0 {
                        summaries
                            .remove(subject.as_bytes())
                            .map_err(|e| backend(path, e))?;
                    } else {
                        summaries
                            .insert(subject.as_bytes(), &summary.to_bytes())
                            .map_err(|e| backend(path, e))?;
                    }
                }
            }
            // STORE-1/16: durable when commit returns, like a put.
            txn.commit().map_err(|e| backend(path, e))?;
            Ok(out)
        })
    }

    /// STORE-17: one write transaction, not fsynced (see the module docs).
    fn put_marks(&self, marks: &[(Hash, Mark)]) -> Result<(), StoreError> {
        if marks.is_empty() {
            return Ok(());
        }
        self.with_lazy_write(|txn, path| {
            let mut table = txn.open_table(MARKS).map_err(|e| backend(path, e))?;
            for (hash, mark) in marks {
                table
                    .insert(&hash.0, &mark.0)
                    .map_err(|e| backend(path, e))?;
            }
            Ok(())
        })
    }

    fn marks(&self) -> Result<Vec<(Hash, Mark)>, StoreError> {
        self.with_read(|txn, path| {
            let Some(table) = optional_table(txn, MARKS, path)? else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for entry in table.iter().map_err(|e| backend(path, e))? {
                let (hash, mark) = entry.map_err(|e| backend(path, e))?;
                out.push((Hash(*hash.value()), Mark(*mark.value())));
            }
            Ok(out)
        })
    }

    /// STORE-19: one write transaction replacing the row, not fsynced (see the module docs).
    fn put_snapshot(&self, snapshot: &[u8]) -> Result<(), StoreError> {
        self.with_lazy_write(|txn, path| {
            let mut table = txn.open_table(SNAPSHOT).map_err(|e| backend(path, e))?;
            table
                .insert(SNAPSHOT_ROW, snapshot)
                .map_err(|e| backend(path, e))?;
            Ok(())
        })
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_read(|txn, path| {
            let Some(table) = optional_table(txn, SNAPSHOT, path)? else {
                return Ok(None);
            };
            let held = table.get(SNAPSHOT_ROW).map_err(|e| backend(path, e))?;
            Ok(held.map(|v| v.value().to_vec()))
        })
    }

    /// STORE-18: one durable write transaction.
    fn put_address_usage(
        &self,
        address: &AddressKey,
        usage: AddressUsage,
    ) -> Result<(), StoreError> {
        self.with_db(|db, path| {
            let txn = db.begin_write().map_err(|e| backend(path, e))?;
            {
                let mut table = txn.open_table(ADDRESSES).map_err(|e| backend(path, e))?;
                table
                    .insert(&address.0, &usage.to_bytes())
                    .map_err(|e| backend(path, e))?;
            }
            txn.commit().map_err(|e| backend(path, e))?;
            Ok(())
        })
    }

    fn address_usage(&self, address: &AddressKey) -> Result<Option<AddressUsage>, StoreError> {
        self.with_read(|txn, path| {
            let Some(table) = optional_table(txn, ADDRESSES, path)? else {
                return Ok(None);
            };
            let held = table.get(&address.0).map_err(|e| backend(path, e))?;
            Ok(held.map(|v| AddressUsage::from_bytes(v.value())))
        })
    }

    /// STORE-22: one write transaction, not fsynced (see the module docs).
    fn put_peer_taken(&self, peer: &[u8; 32], hashes: &[Hash]) -> Result<(), StoreError> {
        if hashes.is_empty() {
            return Ok(());
        }
        self.with_lazy_write(|txn, path| {
            let mut table = txn.open_table(PEER_TAKEN).map_err(|e| backend(path, e))?;
            for hash in hashes {
                table
                    .insert(&peer_key(peer, hash), ())
                    .map_err(|e| backend(path, e))?;
            }
            Ok(())
        })
    }

    fn peer_taken(&self, peer: &[u8; 32]) -> Result<Vec<Hash>, StoreError> {
        self.with_read(|txn, path| {
            let Some(table) = optional_table(txn, PEER_TAKEN, path)? else {
                return Ok(Vec::new());
            };
            let (first, last) = (
                peer_key(peer, &Hash([0; 32])),
                peer_key(peer, &Hash([0xff; 32])),
            );
            let mut out = Vec::new();
            for entry in table
                .range::<&[u8; 64]>(&first..=&last)
                .map_err(|e| backend(path, e))?
            {
                let (key, _) = entry.map_err(|e| backend(path, e))?;
                let mut hash = [0; 32];
                hash.copy_from_slice(&key.value()[32..]);
                out.push(Hash(hash));
            }
            Ok(out)
        })
    }

    /// STORE-23: one write transaction replacing the row, not fsynced (see the module docs).
    fn put_peer_offer(&self, peer: &[u8; 32], offer: &[u8]) -> Result<(), StoreError> {
        self.with_lazy_write(|txn, path| {
            let mut table = txn.open_table(PEER_OFFERS).map_err(|e| backend(path, e))?;
            table.insert(peer, offer).map_err(|e| backend(path, e))?;
            Ok(())
        })
    }

    fn peer_offer(&self, peer: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_read(|txn, path| {
            let Some(table) = optional_table(txn, PEER_OFFERS, path)? else {
                return Ok(None);
            };
            let held = table.get(peer).map_err(|e| backend(path, e))?;
            Ok(held.map(|v| v.value().to_vec()))
        })
    }
}

/// STORE-22: the key of one `peer_taken` row.
fn peer_key(peer: &[u8; 32], hash: &Hash) -> [u8; 64] {
    let mut key = [0; 64];
    key[..32].copy_from_slice(peer);
    key[32..].copy_from_slice(&hash.0);
    key
}

/// A table created by its first write (STORE-17..19, STORE-22, STORE-23): `None` in a store no
/// such write reached yet (or one older than the rule), which then reads as empty.
fn optional_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    table: redb::TableDefinition<K, V>,
    path: &std::path::Path,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, StoreError> {
    match txn.open_table(table) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(backend(path, e)),
    }
}
