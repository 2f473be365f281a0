//! Helpers shared by the cross-crate tests: replica-level shortcuts, a device `Peer` that syncs
//! through a relay, and a relay on loopback.

// Every test binary compiles this module but uses only part of it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use keyhive_core::capability::{AgentId, PeerTag};
use keyhive_core::identity::{ContactCard, Device, DocumentId};
use keyhive_core::signed::Verified;
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::client::Client;
use keyhive_sync::relay::{Relay, RelayConfig, RelayHandle};
use keyhive_sync::replica::{Replica, ReplicaGate};
use keyhive_sync::{Item, ItemKind, MemoryStore, RedbStore, Store};

/// A replica on an in-memory store.
pub type R = Replica<MemoryStore>;

/// A replica of a fresh device named `name`.
pub fn replica(name: &str) -> R {
    replica_of(Device::generate(Some(name.into())))
}

/// A replica of `device` on an empty store.
pub fn replica_of(device: Device) -> R {
    Replica::open(device, MemoryStore::new()).expect("open")
}

/// Every item `r` stores, subject by subject.
pub fn all_items<S: Store>(r: &Replica<S>) -> Vec<Item> {
    let store = r.store();
    let mut out = Vec::new();
    for s in store.subjects().expect("subjects") {
        for h in store.hashes(&s).expect("hashes") {
            out.push(store.get(&h).expect("get").expect("held"));
        }
    }
    out
}

/// Every auth item `r` stores (the capability graph and contact cards).
pub fn auth_items<S: Store>(r: &Replica<S>) -> Vec<Item> {
    all_items(r)
        .into_iter()
        .filter(|item| item.kind() == ItemKind::Auth)
        .collect()
}

/// The peer tag items from `r` arrive under.
pub fn tag<S: Store>(r: &Replica<S>) -> PeerTag {
    PeerTag::from(r.device().id().0)
}

/// `r`'s device as a capability agent.
pub fn me<S: Store>(r: &Replica<S>) -> AgentId {
    AgentId::Individual(r.device().id())
}

/// A replica shared with its sync client.
pub type Shared = Arc<Mutex<Replica<Arc<MemoryStore>>>>;

/// A device: its replica and a sync client whose gate is that replica.
pub struct Peer {
    pub replica: Shared,
    pub client: Arc<Client>,
}

impl Peer {
    pub fn new(name: &str) -> Peer {
        let device = Device::generate(Some(name.into()));
        let key = device.signing_key().clone();
        let store = Arc::new(MemoryStore::new());
        let replica = Arc::new(Mutex::new(Replica::open(device, store.clone()).unwrap()));
        let gate = Arc::new(ReplicaGate::new(replica.clone()));
        let client = Client::new(key, store, gate);
        Peer { replica, client }
    }

    pub fn device(&self) -> Device {
        self.replica.lock().unwrap().device().clone()
    }

    pub fn id(&self) -> AgentId {
        AgentId::Individual(self.device().id())
    }

    pub fn card(&self) -> Verified<ContactCard> {
        self.device().contact_card().unwrap()
    }

    /// Syncs with the relay at `url`, again while it makes progress (at most 8 rounds).
    pub async fn sync(&self, url: &str) {
        self.replica.lock().unwrap().prepare_all().unwrap();
        let session = self.client.connect(url).await.unwrap();
        for _ in 0..8 {
            let before = self.replica.lock().unwrap().accepted_count();
            let r = self.client.sync_once(&session).await.unwrap();
            let mut replica = self.replica.lock().unwrap();
            let rekeyed = !replica.prepare_all().unwrap().is_empty();
            if replica.accepted_count() == before && !rekeyed && r.refused + r.rejected == 0 {
                break;
            }
        }
    }

    /// The latest change of `doc` this peer can read.
    pub fn read(&self, doc: DocumentId) -> Option<Vec<u8>> {
        let replica = self.replica.lock().unwrap();
        let op = replica.latest_readable(doc).unwrap()?;
        let mut out = Vec::new();
        replica.read_change(doc, &op, &mut out).unwrap();
        Some(out)
    }

    pub fn write(&self, doc: DocumentId, content: &[u8]) {
        self.replica.lock().unwrap().write(doc, content).unwrap();
    }

    pub fn holds(&self, item: &Item) -> bool {
        self.replica
            .lock()
            .unwrap()
            .store()
            .contains(&item.hash())
            .unwrap()
    }

    /// Every auth item (geneses, delegations, contact cards) this peer stores.
    pub fn auth_items(&self) -> Vec<Item> {
        auth_items(&*self.replica.lock().unwrap())
    }
}

/// A relay on loopback with a capability policy, storing in `dir/relay.redb`.
pub async fn relay(dir: &std::path::Path) -> (RelayHandle, Arc<RedbStore>) {
    let store = Arc::new(RedbStore::open(dir.join("relay.redb")).unwrap());
    let policy = Arc::new(CapabilityPolicy::new([]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let key = Device::generate(None).signing_key().clone();
    let handle = Relay::serve(listener, store.clone(), policy, RelayConfig::new(key)).unwrap();
    (handle, store)
}
