//! The watcher's hold on the home: the opened store and replica, shared with its sync client,
//! and released whole when another command borrows the store (LIVE-3).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::Result;
use keyhive_core::identity::{DocumentId, GroupId};
use keyhive_core::keystore::KeyStore;
use keyhive_sync::client::Client;
use keyhive_sync::replica::{Replica, ReplicaGate, Subscription};
use keyhive_sync::{RedbStore, Store};

use crate::contacts::ContactBook;
use crate::device_store;
use crate::home::Home;
use crate::names::LocalNames;
use crate::output::Output;
use crate::session::Session;

/// The replica type of a home.
pub type HomeReplica = Replica<Arc<RedbStore>>;

/// The home, opened by the watcher.
pub struct Opened {
    home: Home,
    keys: KeyStore,
    /// What `device.key` holds now.
    keys_saved: device_store::Saved,
    /// The replica, shared with the client's gate.
    pub replica: Arc<Mutex<HomeReplica>>,
    gate: Arc<ReplicaGate<Arc<RedbStore>>>,
    /// The sync client over the store (its gate verifies every received item, REP-2).
    pub client: Arc<Client>,
    /// The replica's events since the store was opened (REP-40).
    pub events: Subscription,
    /// Contacts, to name authors.
    pub contacts: ContactBook,
    /// Local group names.
    pub names: LocalNames,
    /// The person group this device belongs to (PERSON-1), to name its other devices.
    pub person: Option<GroupId>,
    /// REC-10: every profile document this device reads, with its group; read when the store
    /// is opened (and again after dropped events), then kept up to date by the changes that
    /// arrive.
    pub profiles: Mutex<Option<BTreeMap<DocumentId, GroupId>>>,
    /// REC-10: the shared name of every group named while this watcher ran, kept after this
    /// device can no longer read it (a revocation), so that the lines saying so name it.
    pub group_names: Mutex<BTreeMap<GroupId, String>>,
}

impl Opened {
    /// Opens the home's store and replica (replaying the store), seats and re-keys what
    /// changed while it was lent (REP-3), and subscribes to its events.
    pub fn open(home: &Home, out: Output) -> Result<Self> {
        let mut s = Session::open(home.clone(), out)?;
        s.replica.prepare_all()?;
        s.save()?;
        let events = s.replica.subscribe();
        // REC-10: read while this device can, so that a revocation arriving later is printed
        // with the group's name and its profile document is not printed at all.
        let shared = keyhive_sync::record::GroupProfiles::load(&s.replica).unwrap_or_default();
        let group_names: BTreeMap<GroupId, String> =
            shared.names.into_iter().map(|(g, n)| (g, n.name)).collect();
        let Session {
            keys,
            store,
            replica,
            contacts,
            names,
            person,
            ..
        } = s;
        let replica = Arc::new(Mutex::new(replica));
        let gate = Arc::new(ReplicaGate::new(replica.clone()));
        let client = crate::relays::client(
            home,
            keys.device().signing_key().clone(),
            store as Arc<dyn Store>,
            gate.clone(),
        )?;
        Ok(Opened {
            home: home.clone(),
            // `Session::save` above wrote (or found on disk) exactly these keys.
            keys_saved: device_store::Saved::of(&keys),
            keys,
            replica,
            gate,
            client,
            events,
            contacts,
            names,
            person,
            profiles: Mutex::new(Some(shared.documents)),
            group_names: Mutex::new(group_names),
        })
    }

    /// The replica, locked.
    pub fn lock(&self) -> MutexGuard<'_, HomeReplica> {
        // A poisoned lock only follows a panic in another holder.
        self.replica.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The replica as the policy that admits received items (REP-2).
    pub fn gate(&self) -> &dyn keyhive_sync::AccessPolicy {
        self.gate.as_ref()
    }

    /// Persists the key-agreement secrets learned since opening (the store is durable).
    pub fn save(&mut self) -> Result<()> {
        let secrets: Vec<_> = self.lock().cgka_secrets().collect();
        for (document, s) in secrets {
            self.keys.set_cgka_secrets(document, s);
        }
        self.keys_saved.save(&self.home, &self.keys)
    }

    /// Saves and closes the store (every handle on it is dropped here), so another process
    /// may open it.
    pub fn close(mut self) -> Result<()> {
        self.save()
    }
}
