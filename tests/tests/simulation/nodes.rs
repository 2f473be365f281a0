//! The nodes of the simulated system: a device (replica over a store that survives crashes, and
//! the key store its key-agreement secrets are saved to) and a relay (a store and the
//! `CapabilityPolicy` a relay runs over it).

use std::sync::{Arc, Mutex, MutexGuard};

use keyhive_core::cgka::CgkaSecrets;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::identity::{Device, DocumentId, IndividualId};
use keyhive_sync::MemoryStore;
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::replica::{Replica, ReplicaGate};

/// A device replica shared with its gate.
pub type Shared = Arc<Mutex<Replica<Arc<MemoryStore>>>>;

/// One device: its keys, its store (which survives a crash), its replica and its key store.
pub struct DeviceNode {
    pub device: Device,
    pub store: Arc<MemoryStore>,
    pub replica: Shared,
    /// Key-agreement secrets as the key store last saved them (after every step).
    key_store: Vec<(DocumentId, CgkaSecrets)>,
}

impl DeviceNode {
    pub(super) fn new(name: &str) -> DeviceNode {
        let device = Device::generate(Some(name.into()));
        let store = Arc::new(MemoryStore::new());
        let replica = Replica::open(device.clone(), store.clone()).expect("open a replica");
        DeviceNode {
            device,
            store,
            replica: Arc::new(Mutex::new(replica)),
            key_store: Vec::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Replica<Arc<MemoryStore>>> {
        self.replica.lock().expect("replica lock")
    }

    pub fn id(&self) -> IndividualId {
        self.device.id()
    }

    pub fn gate(&self) -> ReplicaGate<Arc<MemoryStore>> {
        ReplicaGate::new(self.replica.clone())
    }

    pub(super) fn save_keys(&mut self) {
        let saved = self.lock().cgka_secrets().collect();
        self.key_store = saved;
    }

    /// Crash and restart: the replica is reopened over the same store and the saved keys.
    pub(super) fn restart(&mut self) {
        let mut replica =
            Replica::open(self.device.clone(), self.store.clone()).expect("reopen a replica");
        replica.import_cgka_secrets(self.key_store.clone());
        self.replica = Arc::new(Mutex::new(replica));
    }
}

/// One relay: its identity, store and capability policy.
pub struct RelayNode {
    pub id: IndividualId,
    pub store: Arc<MemoryStore>,
    pub policy: CapabilityPolicy,
}

impl RelayNode {
    pub(super) fn new() -> RelayNode {
        RelayNode {
            id: IndividualId(SigningKey::generate().public_key()),
            store: Arc::new(MemoryStore::new()),
            policy: CapabilityPolicy::new([]),
        }
    }

    /// Crash and restart: the policy is rebuilt from the store (relay start-up).
    pub(super) fn restart(&mut self) {
        self.policy = CapabilityPolicy::new([]);
        self.policy
            .load(&*self.store)
            .expect("load the relay's policy");
    }
}
