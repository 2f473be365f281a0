//! A device as the sync tests drive it: a replica behind a `ReplicaGate`, its store and its
//! sync client, synced with a relay until quiet.
// Each test file uses a different part of this shared module.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use keyhive_core::Hash;
use keyhive_core::identity::{Device, DocumentId, IndividualId};
use keyhive_sync::client::{Client, SyncReport};
use keyhive_sync::replica::{Replica, ReplicaGate};
use keyhive_sync::{Item, MemoryStore, Store, SubjectId};

/// A replica shared between the test and its sync client.
pub type Shared = Arc<Mutex<Replica<Arc<MemoryStore>>>>;

/// One device.
pub struct Peer {
    pub replica: Shared,
    pub store: Arc<MemoryStore>,
    pub client: Arc<Client>,
}

impl Peer {
    pub fn new(name: &str) -> Peer {
        let device = Device::generate(Some(name.into()));
        let key = device.signing_key().clone();
        let store = Arc::new(MemoryStore::new());
        let replica = Arc::new(Mutex::new(Replica::open(device, store.clone()).unwrap()));
        let gate = Arc::new(ReplicaGate::new(replica.clone()));
        let client = Client::new(key, store.clone(), gate);
        Peer {
            replica,
            store,
            client,
        }
    }

    pub fn id(&self) -> IndividualId {
        self.replica.lock().unwrap().device().id()
    }

    pub fn items(&self, subject: SubjectId) -> Vec<Item> {
        self.store
            .hashes(&subject)
            .unwrap()
            .iter()
            .map(|h| self.store.get(h).unwrap().unwrap())
            .collect()
    }

    pub fn count(&self, subject: SubjectId) -> usize {
        self.store.hashes(&subject).unwrap().len()
    }

    pub fn holds(&self, hash: &Hash) -> bool {
        self.store.contains(hash).unwrap()
    }

    /// Syncs with `url` until quiet; returns what all rounds did.
    pub async fn sync(&self, url: &str) -> SyncReport {
        self.replica.lock().unwrap().prepare_all().unwrap();
        let session = self.client.connect(url).await.unwrap();
        let mut total = SyncReport::default();
        for _ in 0..8 {
            let r = self.client.sync_once(&session).await.unwrap();
            total.merge(&r);
            let rekeyed = !self
                .replica
                .lock()
                .unwrap()
                .prepare_all()
                .unwrap()
                .is_empty();
            if r.pulled == 0 && !rekeyed && r.refused + r.rejected + r.parked == 0 {
                break;
            }
        }
        total
    }

    /// The latest change of `doc` this device can read.
    pub fn read(&self, doc: DocumentId) -> Option<Vec<u8>> {
        let replica = self.replica.lock().unwrap();
        let op = replica.latest_readable(doc).ok()??;
        let mut out = Vec::new();
        replica.read_change(doc, &op, &mut out).ok()?;
        Some(out)
    }
}
