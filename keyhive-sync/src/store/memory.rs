//! In-memory store (tests, ephemeral peers). Not durable: STORE-1 holds within the process.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use keyhive_core::Hash;

use super::{AddressKey, AddressUsage, Mark, Store, StoreError};
use crate::item::{Item, SubjectId};
use crate::reconcile::summary::Summary;

#[derive(Default)]
struct Inner {
    items: HashMap<Hash, Item>,
    by_subject: BTreeMap<SubjectId, (BTreeSet<Hash>, Summary)>,
    /// STORE-17: admission marks (RELAY-7).
    marks: HashMap<Hash, Mark>,
    /// STORE-18: stranger usage per network address (SYNC-108).
    addresses: HashMap<AddressKey, AddressUsage>,
    /// STORE-19: the relay's start snapshot (RELAY-8).
    snapshot: Option<Vec<u8>>,
    /// STORE-22: per peer, what it took of a removed device's own items (REP-33).
    peer_taken: BTreeSet<([u8; 32], Hash)>,
    /// STORE-23: per peer, the last collection offer it sent (SYNC-53).
    peer_offers: HashMap<[u8; 32], Vec<u8>>,
}

/// A store held in memory.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock means a panic happened while holding it; the maps are only mutated
        // by complete inserts, so the data is still consistent and we keep using it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn put(&self, items: &[Item]) -> Result<Vec<bool>, StoreError> {
        let mut inner = self.lock();
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let hash = item.hash();
            if inner.items.contains_key(&hash) {
                out.push(false);
                continue;
            }
            let entry = inner.by_subject.entry(item.subject()).or_default();
            entry.0.insert(hash);
            entry.1.add(&hash);
            inner.items.insert(hash, item.clone());
            out.push(true);
        }
        Ok(out)
    }

    fn get(&self, hash: &Hash) -> Result<Option<Item>, StoreError> {
        Ok(self.lock().items.get(hash).cloned())
    }

    fn contains(&self, hash: &Hash) -> Result<bool, StoreError> {
        Ok(self.lock().items.contains_key(hash))
    }

    fn hashes(&self, subject: &SubjectId) -> Result<Vec<Hash>, StoreError> {
        Ok(self
            .lock()
            .by_subject
            .get(subject)
            .map(|(set, _)| set.iter().copied().collect())
            .unwrap_or_default())
    }

    fn summary(&self, subject: &SubjectId) -> Result<Summary, StoreError> {
        Ok(self
            .lock()
            .by_subject
            .get(subject)
            .map(|(_, s)| *s)
            .unwrap_or_default())
    }

    fn subjects(&self) -> Result<Vec<SubjectId>, StoreError> {
        Ok(self.lock().by_subject.keys().copied().collect())
    }

    /// STORE-21 under one lock.
    fn summaries(&self) -> Result<Vec<(SubjectId, Summary)>, StoreError> {
        Ok(self
            .lock()
            .by_subject
            .iter()
            .map(|(subject, (_, summary))| (*subject, *summary))
            .collect())
    }

    /// STORE-24 under one lock.
    fn summaries_of(
        &self,
        subjects: &[SubjectId],
    ) -> Result<Vec<(SubjectId, Summary)>, StoreError> {
        let wanted: BTreeSet<&SubjectId> = subjects.iter().collect();
        let inner = self.lock();
        Ok(wanted
            .into_iter()
            .filter_map(|subject| {
                let (_, summary) = inner.by_subject.get(subject)?;
                (summary.count > 0).then_some((*subject, *summary))
            })
            .collect())
    }

    fn remove(&self, hashes: &[Hash]) -> Result<Vec<bool>, StoreError> {
        let mut inner = self.lock();
        let mut out = Vec::with_capacity(hashes.len());
        for hash in hashes {
            let Some(item) = inner.items.remove(hash) else {
                out.push(false);
                continue;
            };
            let subject = item.subject();
            let emptied = match inner.by_subject.get_mut(&subject) {
                Some((set, summary)) => {
                    set.remove(hash);
                    summary.remove(hash);
                    set.is_empty()
                }
                None => false,
            };
            if emptied {
                inner.by_subject.remove(&subject);
            }
            out.push(true);
        }
        Ok(out)
    }

    fn put_marks(&self, marks: &[(Hash, Mark)]) -> Result<(), StoreError> {
        self.lock().marks.extend(marks.iter().copied());
        Ok(())
    }

    fn marks(&self) -> Result<Vec<(Hash, Mark)>, StoreError> {
        Ok(self.lock().marks.iter().map(|(h, m)| (*h, *m)).collect())
    }

    fn put_snapshot(&self, snapshot: &[u8]) -> Result<(), StoreError> {
        self.lock().snapshot = Some(snapshot.to_vec());
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().snapshot.clone())
    }

    fn put_address_usage(
        &self,
        address: &AddressKey,
        usage: AddressUsage,
    ) -> Result<(), StoreError> {
        self.lock().addresses.insert(*address, usage);
        Ok(())
    }

    fn address_usage(&self, address: &AddressKey) -> Result<Option<AddressUsage>, StoreError> {
        Ok(self.lock().addresses.get(address).copied())
    }

    fn put_peer_taken(&self, peer: &[u8; 32], hashes: &[Hash]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner
            .peer_taken
            .extend(hashes.iter().map(|hash| (*peer, *hash)));
        Ok(())
    }

    fn peer_taken(&self, peer: &[u8; 32]) -> Result<Vec<Hash>, StoreError> {
        Ok(self
            .lock()
            .peer_taken
            .range((*peer, Hash([0; 32]))..=(*peer, Hash([0xff; 32])))
            .map(|(_, hash)| *hash)
            .collect())
    }

    fn put_peer_offer(&self, peer: &[u8; 32], offer: &[u8]) -> Result<(), StoreError> {
        self.lock().peer_offers.insert(*peer, offer.to_vec());
        Ok(())
    }

    fn peer_offer(&self, peer: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().peer_offers.get(peer).cloned())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn conformance() {
        super::super::conformance::run_all(super::MemoryStore::new);
    }
}
