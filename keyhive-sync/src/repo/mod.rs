//! [`Repo`]: one handle for an app's device, in the spirit of automerge-repo's `Repo`
//! (`specs/replica.md` §7 for its events).
//!
//! A `Repo` owns the device's [`Replica`] (keys, capability checker, key agreements, local
//! store) and its sync [`Client`]. Local actions (create, write, grant, revoke) are signed,
//! checked and stored at once and return; every relay or peer connected with
//! [`Repo::connect`] (or subscribed to this device's [`Repo::listen`]) receives them within
//! milliseconds in the background (SYNC-86), and what
//! arrives from them is verified by the replica before it is stored (REP-2). Apps follow
//! changes through [`Repo::subscribe`] (blocking iterator or async stream) instead of polling.

mod durable;
mod invite;
mod network;
mod peers;

pub use durable::{KEY_FILE, OpenDirError, STORE_FILE};
pub use network::{MAX_ROUNDS, RepoSyncError};

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use keyhive_core::capability::{Access, AgentId};
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::{ContactCard, Device, DocumentId, GroupId, IndividualId, SubjectKind};
use keyhive_core::signed::Verified;

use crate::client::{Client, Link};
use crate::record::{self, GroupProfiles, ProfileError};
use crate::replica::{ChangeEntry, Replica, ReplicaError, ReplicaGate, Subscription};
use crate::store::{MemoryStore, Store};

/// The replica a [`Repo`] drives, over any store.
pub type RepoReplica = Replica<Arc<dyn Store>>;

/// One device of an app: its replica, its store and its links to relays and peers.
///
/// Methods take `&self`: a `Repo` can be shared (e.g. in an `Arc`) between the app's UI code
/// and its async tasks. Its network methods ([`Repo::connect`], [`Repo::sync`],
/// [`Repo::listen`]) need a tokio runtime.
pub struct Repo {
    replica: Arc<Mutex<RepoReplica>>,
    client: Arc<Client>,
    /// Background links, with the URL and the id each must prove.
    links: tokio::sync::Mutex<Vec<(String, Option<PublicKey>, Link)>>,
    /// Listeners serving this device to peers ([`Repo::listen`]).
    listeners: tokio::sync::Mutex<Vec<peers::Listener>>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo").field("device", &self.id()).finish()
    }
}

impl Repo {
    /// Opens `device` over `store`, replaying what the store holds. A durable store such as
    /// [`crate::RedbStore`] keeps the items across restarts, but the device's keys and
    /// key-agreement secrets are then the app's to keep: [`Replica::cgka_secrets`] after every
    /// action, or a [`crate::replica::SecretKeeper`] given to
    /// [`Replica::keep_secrets_with`] (KEYS-11); lost secrets make later changes unreadable.
    ///
    /// A device that must survive restarts is better opened with [`Repo::open_dir`], which
    /// keeps its keys and secrets itself.
    pub fn open(device: Device, store: Arc<dyn Store>) -> Result<Repo, ReplicaError> {
        Ok(Repo::with_replica(Replica::open(device, store)?))
    }

    /// A `Repo` driving `replica`, its sync client over the replica's store.
    fn with_replica(replica: RepoReplica) -> Repo {
        let key = replica.device().signing_key().clone();
        let store = replica.store().clone();
        let replica = Arc::new(Mutex::new(replica));
        let gate = Arc::new(ReplicaGate::new(replica.clone()));
        let client = Client::new(key, store, gate);
        lock(&replica).connect_outbox(client.outbox());
        Repo {
            replica,
            client,
            links: tokio::sync::Mutex::new(Vec::new()),
            listeners: tokio::sync::Mutex::new(Vec::new()),
        }
    }

    /// Opens `device` over a fresh in-memory store (tests, examples, ephemeral devices).
    pub fn in_memory(device: Device) -> Result<Repo, ReplicaError> {
        Repo::open(device, Arc::new(MemoryStore::new()))
    }

    /// This device's id.
    pub fn id(&self) -> IndividualId {
        self.client.id()
    }

    /// This device's signed contact card, for others to [`Repo::add_contact`] (out of band).
    pub fn contact_card(&self) -> Result<Verified<ContactCard>, ReplicaError> {
        self.replica()
            .device()
            .contact_card()
            .map_err(ReplicaError::OwnCard)
    }

    /// Adds another device's contact card, so that it can be granted access and seated.
    pub fn add_contact(&self, card: Verified<ContactCard>) -> Result<(), ReplicaError> {
        self.replica().add_contact(card)
    }

    /// Subscribes to this device's events from now on: changes that became readable,
    /// validity, membership and access changes (REP-40..REP-46). The subscription is a
    /// blocking `Iterator` and an async `Stream`.
    pub fn subscribe(&self) -> Subscription {
        self.replica().subscribe()
    }

    /// Creates a document with this device as its admin.
    pub fn create_document(&self) -> Result<DocumentId, ReplicaError> {
        self.replica().create_document()
    }

    /// Creates a group (a person's devices, a team).
    pub fn create_group(&self) -> Result<GroupId, ReplicaError> {
        self.replica().create_group()
    }

    /// REC-8, REC-9: creates a group named `name` for every member: the group, and its profile
    /// document holding the name (encrypted; the group holds `write` on it, so its members read
    /// the name and its admins rename it). Pushed to every link at once.
    pub fn create_named_group(&self, name: &str) -> Result<GroupId, ProfileError> {
        let mut replica = self.replica();
        let group = replica.create_group()?;
        record::create_profile(&mut replica, group, name)?;
        Ok(group)
    }

    /// REC-10: renames `group` for every member (this device must be an admin of it).
    pub fn name_group(&self, group: GroupId, name: &str) -> Result<DocumentId, ProfileError> {
        let mut replica = self.replica();
        let profiles = GroupProfiles::load(&replica)?;
        record::name_group(&mut replica, &profiles, group, name)
    }

    /// REC-9, REC-10: the shared names of the groups this device can read a profile of, and
    /// which documents are profile documents.
    pub fn group_names(&self) -> Result<GroupProfiles, ReplicaError> {
        GroupProfiles::load(&self.replica())
    }

    /// Writes `content` as a new change of `document`; returns its content op hash (the
    /// change's id in events and [`Repo::read`]). Pushed to every link at once. First, by
    /// this device's clock, it revokes the invitations and grants that ended and that it may
    /// revoke (INV-5, INV-11), and refuses with [`ReplicaError::GrantEnded`] while an ended
    /// grant it may not revoke still reaches `document` (INV-12).
    pub fn write(&self, document: DocumentId, content: &[u8]) -> Result<Hash, ReplicaError> {
        let mut replica = self.replica();
        replica.end_before_writing(document, unix_now())?;
        replica.write(document, content)
    }

    /// The plaintext of `change` of `document`.
    pub fn read(&self, document: DocumentId, change: &Hash) -> Result<Vec<u8>, ReplicaError> {
        let mut out = Vec::new();
        self.replica().read_change(document, change, &mut out)?;
        Ok(out)
    }

    /// Every change of `document`, in causal order, with validity and readability.
    pub fn changes(&self, document: DocumentId) -> Result<Vec<ChangeEntry>, ReplicaError> {
        self.replica().changes(document)
    }

    /// Grants `access` on `subject` (a group or document) to `agent`, and seats devices
    /// that gained `read` in the key agreements at once (REP-3, REP-5), so they read the
    /// history without waiting for a write. The grant is stored even if seating then fails
    /// (the error says why); the next write or [`Repo::sync`] seats them.
    pub fn grant(
        &self,
        subject: &PublicKey,
        agent: AgentId,
        access: Access,
    ) -> Result<Hash, ReplicaError> {
        let mut replica = self.replica();
        let op = replica.grant(subject, agent, access)?;
        replica.prepare_all()?;
        Ok(op)
    }

    /// Revokes every delegation on `subject` naming `agent`, and re-keys the documents the
    /// removed devices could read, so they cannot read what is written next (REP-3, REP-4).
    /// The revocation is stored even if re-keying then fails; the next write re-keys.
    pub fn revoke(&self, subject: &PublicKey, agent: AgentId) -> Result<Vec<Hash>, ReplicaError> {
        let mut replica = self.replica();
        let ops = replica.revoke(subject, agent)?;
        replica.prepare_all()?;
        Ok(ops)
    }

    /// Subjects this device can reach, with its level on each.
    pub fn reachable(&self) -> Vec<(PublicKey, Access, SubjectKind)> {
        self.replica().reachable()
    }

    /// Locks the replica for anything else ([`Replica::explain`], streamed writes, ...).
    /// Keep the guard briefly: links wait for it to store what they receive.
    pub fn replica(&self) -> MutexGuard<'_, RepoReplica> {
        lock(&self.replica)
    }

    /// The sync client (link status, one-shot sessions).
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }
}

fn lock(replica: &Mutex<RepoReplica>) -> MutexGuard<'_, RepoReplica> {
    // A poisoned lock only follows a panic in another holder.
    replica.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Unix seconds by this device's clock (0 if the clock is before 1970): the time INV-5 and
/// INV-11 judge ends by.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
