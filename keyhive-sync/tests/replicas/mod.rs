//! Shared helpers for replica-level tests (no network): opening replicas, listing what a
//! replica stores, and reading a document.

// Every test binary compiles this module but uses only part of it.
#![allow(dead_code)]

use keyhive_core::capability::{AgentId, PeerTag};
use keyhive_core::identity::{ContactCard, Device, DocumentId};
use keyhive_core::signed::Verified;
use keyhive_sync::replica::Replica;
use keyhive_sync::{Item, MemoryStore, Store};

/// A replica on an in-memory store.
pub type R = Replica<MemoryStore>;

/// A replica of a fresh device named `name`.
pub fn replica(name: &str) -> R {
    replica_with(name, MemoryStore::new())
}

/// A replica of a fresh device named `name`, on `store`.
pub fn replica_with<S: Store>(name: &str, store: S) -> Replica<S> {
    Replica::open(Device::generate(Some(name.into())), store).expect("open")
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

/// The peer tag items from `r` arrive under.
pub fn tag<S: Store>(r: &Replica<S>) -> PeerTag {
    PeerTag::from(r.device().id().0)
}

/// `r`'s device as a capability agent.
pub fn me<S: Store>(r: &Replica<S>) -> AgentId {
    AgentId::Individual(r.device().id())
}

/// `r`'s device's contact card.
pub fn card<S: Store>(r: &Replica<S>) -> Verified<ContactCard> {
    r.device().contact_card().expect("card")
}

/// The latest change of `doc` that `r` can read.
pub fn read<S: Store>(r: &Replica<S>, doc: DocumentId) -> Option<Vec<u8>> {
    let op = r.latest_readable(doc).expect("latest readable")?;
    let mut out = Vec::new();
    r.read_change(doc, &op, &mut out).expect("read");
    Some(out)
}
