//! Authorisation behind a small trait (`specs/sync.md` §6). The integrator implements it with
//! the capability checker; [`MemoryPolicy`] and [`AllowAll`] serve tests and trusted peers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use keyhive_core::identity::IndividualId;

use crate::item::{Item, ItemKind, SubjectId};
use crate::replica::ReplicaError;
use crate::store::{Store, StoreError};

mod offer;
#[cfg(feature = "net")]
pub(crate) mod stranger;

pub use crate::admission::Refusal;
pub use offer::{Answered, Offer, OwnOffer};

/// What became of one received item (SYNC-84).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Arrival {
    /// Admitted and newly stored.
    Stored,
    /// Already held.
    Duplicate,
    /// Admitted but waiting for causal predecessors: not stored, so reconciliation offers it
    /// again until its predecessors arrive (ADM-3, CAP-4).
    Parked,
    /// Refused, with the cause.
    Refused(Refusal),
}

/// How much of a subject a requester is served (SYNC-44, `specs/capabilities.md` CAP-21,
/// REP-30).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Share {
    /// Everything: it may pull the subject.
    All,
    /// Its ops (auth ops and content op headers), no key agreement or ciphertext: it was
    /// removed from the subject and must learn of it (REP-30).
    Ops,
    /// Its auth ops only: the subject is in the scope of something it pulls, e.g. the team
    /// through which a co-writer writes (CAP-21).
    AuthOps,
    /// Nothing: the subject is answered exactly like an unknown one.
    Nothing,
}

impl Share {
    /// Whether an item of `kind` is served under this share.
    pub fn covers(self, kind: ItemKind) -> bool {
        match self {
            Share::All => true,
            Share::Ops => matches!(kind, ItemKind::Auth | ItemKind::Content),
            Share::AuthOps => kind == ItemKind::Auth,
            Share::Nothing => false,
        }
    }
}

/// Why [`AccessPolicy::admit_batch`] failed as a whole (one item's refusal is an
/// [`Arrival::Refused`], not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdmitError {
    /// Storing the admitted items failed.
    #[error("cannot store admitted items")]
    Store(#[from] StoreError),
    /// The device replica failed while admitting (its store failed).
    #[error("the replica failed while admitting items")]
    Replica(#[from] ReplicaError),
}

/// Decides what a relay (or client) stores and serves.
///
/// SYNC-44: `may_pull` is checked before serving any item, offer or reconciliation answer.
/// SYNC-45: `check_push` is checked before storing any item. Graph-backed implementations
/// ([`crate::capability_policy::CapabilityPolicy`], [`crate::replica::ReplicaGate`]) run the one
/// admission path ([`crate::admission`], ADM-n), which binds each item's kind and subject to
/// its bytes, so the hash-keyed store (STORE-2) can never be shadowed by a mislabelled copy.
pub trait AccessPolicy: Send + Sync + 'static {
    /// Whether `requester` may pull (fetch ciphertext of) `subject`.
    fn may_pull(&self, requester: &IndividualId, subject: &SubjectId) -> bool;

    /// Whether `item`, received from `from`, may be stored.
    fn check_push(&self, from: &IndividualId, item: &Item) -> Result<(), Refusal>;

    /// SYNC-50: every subject `requester` is served anything of ([`AccessPolicy::share`]),
    /// for collection sync.
    fn reachable(&self, requester: &IndividualId) -> Vec<SubjectId>;

    /// SYNC-50a: whether [`AccessPolicy::reachable`] lists every subject `requester` may pull
    /// ([`AccessPolicy::may_pull`]), so that a relay answers its collection from those
    /// subjects' summaries alone (STORE-24) instead of asking `may_pull` about every subject
    /// it stores. By default it does not: a policy whose `may_pull` allows subjects it cannot
    /// list (a peer relay pulling everything) keeps the scan.
    fn reachable_is_complete(&self, requester: &IndividualId) -> bool {
        let _ = requester;
        false
    }

    /// Called after `items` were durably stored, so a graph-backed policy can apply them.
    fn stored(&self, items: &[Item]) {
        let _ = items;
    }

    /// RELAY-7: called after `items`, which this policy admitted ([`AccessPolicy::check_push`]
    /// passed, signatures checked), were durably stored in `store`, so that a policy that
    /// trusts what it admitted itself can mark them there ([`Store::put_marks`]). By default
    /// nothing is marked.
    fn mark_admitted(&self, store: &dyn Store, items: &[Item]) {
        let _ = (store, items);
    }

    /// RELAY-8: called at a clean shutdown, after every connection closed, so that a policy
    /// that keeps a start snapshot in `store` can bring it up to date. By default nothing.
    fn checkpoint(&self, store: &dyn Store) {
        let _ = store;
    }

    /// ADM-3: called when items this policy admitted could not be stored (the store failed),
    /// so that a graph-backed policy forgets them and acts only on what `store` holds.
    fn not_stored(&self, store: &dyn crate::store::Store) {
        let _ = store;
    }

    /// CAP-21, REP-30: how much of `subject` is served to `requester`. By default
    /// everything if it may pull the subject, its ops if it was removed from it
    /// ([`AccessPolicy::removed_from`]), else nothing. A graph-backed policy also serves the
    /// auth ops of every subject in the scope of one the requester pulls, so that what it is
    /// served is causally closed.
    fn share(&self, requester: &IndividualId, subject: &SubjectId) -> Share {
        if self.may_pull(requester, subject) {
            Share::All
        } else if self.removed_from(requester, subject) {
            Share::Ops
        } else {
            Share::Nothing
        }
    }

    /// RELAY-6: whether `requester` may pull every subject (a peer relay syncing everything),
    /// so that every new subject is live for it too (SYNC-64). By default nobody does.
    fn pulls_everything(&self, requester: &IndividualId) -> bool {
        let _ = requester;
        false
    }

    /// REP-2b: whether `peer`, the server a client with this policy syncs with, is a device
    /// this policy knows (a contact, or a member of something it holds) rather than a relay.
    /// The client then tells it of, reconciles, subscribes to and pushes only what `peer` may
    /// be served ([`AccessPolicy::share`], [`AccessPolicy::may_serve`]), as this device's own
    /// listener would serve it; a relay is pushed everything the client offers. By default no
    /// server is a device.
    fn is_device(&self, peer: &IndividualId) -> bool {
        let _ = peer;
        false
    }

    /// Whether `item` may be served to `requester`: [`AccessPolicy::share`] of its subject
    /// covers its kind.
    fn may_serve(&self, requester: &IndividualId, item: &Item) -> bool {
        self.share(requester, &item.subject()).covers(item.kind())
    }

    /// REP-30: whether `requester`, which may not pull `subject`, was removed from it (it
    /// held `pull` through a path since revoked) and so is served the subject's ops, which
    /// share one causal graph (a revocation names content ops as witnesses), never its
    /// ciphertext or key agreement, so that it learns of its removal.
    fn removed_from(&self, requester: &IndividualId, subject: &SubjectId) -> bool {
        let _ = (requester, subject);
        false
    }

    /// SYNC-104: if `who` is a stranger — it holds no grant from another key (directly or
    /// through a group), and no other key holds a grant on a subject it created — the subjects
    /// it created (its own contact card's included), from which a relay recomputes its usage;
    /// `None` when it is not a stranger. By default nobody is a stranger.
    fn stranger_subjects(&self, who: &IndividualId) -> Option<Vec<SubjectId>> {
        let _ = who;
        None
    }

    /// SYNC-85: what a client offers (reconciles and pushes) of `subject`, which it holds. A
    /// device replica answers [`Offer::Own`] for a subject this device was removed from
    /// (REP-33): only the ops it authored there and holds valid, with the ciphertext they
    /// name, their held causal past and the key agreement ([`OwnOffer`]), since the peer
    /// would refuse what it wrote after the removal and may lack what it wrote before (or its
    /// own leave); empty once it authored nothing valid there.
    fn offers(&self, subject: &SubjectId) -> Offer {
        let _ = subject;
        Offer::All
    }

    /// SYNC-84: admits and stores a batch received from `from`, storing each item exactly
    /// once, and says what became of each. Callers pass items in dependency order
    /// (`admission::apply_rank`); the answer keeps that order.
    ///
    /// Why a batch method rather than `check_push` followed by the caller's `put`: a policy
    /// that is itself a store's owner (a device replica, [`crate::replica::ReplicaGate`])
    /// must apply an item before storing it and stores it as part of applying it (REP-2);
    /// asking it yes/no and then storing again counted every item as a duplicate. The default
    /// is the yes/no path for policies that own no store (a relay's): `check_push` per item,
    /// one `put` of the accepted ones into `store`, then [`AccessPolicy::stored`] for the new
    /// ones. An override stores into its own store, which must be `store`.
    fn admit_batch(
        &self,
        from: &IndividualId,
        items: Vec<Item>,
        store: &dyn Store,
    ) -> Result<Vec<(Item, Arrival)>, AdmitError> {
        let mut out: Vec<(Item, Arrival)> = items
            .into_iter()
            .map(|item| {
                let arrival = match self.check_push(from, &item) {
                    Ok(()) => Arrival::Stored,
                    Err(refusal) => Arrival::Refused(refusal),
                };
                (item, arrival)
            })
            .collect();
        let accepted: Vec<usize> = (0..out.len())
            .filter(|i| matches!(out[*i].1, Arrival::Stored))
            .collect();
        if accepted.is_empty() {
            return Ok(out);
        }
        let batch: Vec<Item> = accepted.iter().map(|i| out[*i].0.clone()).collect();
        let fresh = match store.put(&batch) {
            Ok(fresh) => fresh,
            Err(e) => {
                // ADM-3: forget what was admitted but not stored.
                self.not_stored(store);
                return Err(e.into());
            }
        };
        self.mark_admitted(store, &batch);
        let mut new = Vec::new();
        for (i, is_new) in accepted.into_iter().zip(fresh) {
            if is_new {
                new.push(out[i].0.clone());
            } else {
                out[i].1 = Arrival::Duplicate;
            }
        }
        self.stored(&new);
        Ok(out)
    }
}

/// Accepts and serves everything: for a client's own store or a trusted peer.
#[derive(Debug, Default, Clone, Copy)]
pub struct AllowAll;

impl AccessPolicy for AllowAll {
    fn may_pull(&self, _: &IndividualId, _: &SubjectId) -> bool {
        true
    }
    fn pulls_everything(&self, _: &IndividualId) -> bool {
        true
    }
    fn check_push(&self, _: &IndividualId, _: &Item) -> Result<(), Refusal> {
        Ok(())
    }
    fn reachable(&self, _: &IndividualId) -> Vec<SubjectId> {
        Vec::new()
    }
}

#[derive(Default)]
struct Grants {
    pull: BTreeMap<SubjectId, BTreeSet<IndividualId>>,
    write: BTreeMap<SubjectId, BTreeSet<IndividualId>>,
    everything: BTreeSet<IndividualId>,
}

/// An explicit table of who may pull and push what (tests, simple deployments).
#[derive(Default)]
pub struct MemoryPolicy {
    grants: RwLock<Grants>,
}

impl MemoryPolicy {
    /// No grants.
    pub fn new() -> Self {
        Self::default()
    }

    fn write_lock(&self) -> std::sync::RwLockWriteGuard<'_, Grants> {
        // Poisoning only follows a panic in another holder; the sets stay consistent.
        self.grants
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read_lock(&self) -> std::sync::RwLockReadGuard<'_, Grants> {
        self.grants
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lets `who` pull `subject`.
    pub fn grant_pull(&self, who: IndividualId, subject: SubjectId) {
        self.write_lock()
            .pull
            .entry(subject)
            .or_default()
            .insert(who);
    }

    /// Lets `who` pull and push to `subject`.
    pub fn grant_write(&self, who: IndividualId, subject: SubjectId) {
        let mut g = self.write_lock();
        g.pull.entry(subject).or_default().insert(who);
        g.write.entry(subject).or_default().insert(who);
    }

    /// Lets `who` pull and push every subject (e.g. a peer relay).
    pub fn grant_everything(&self, who: IndividualId) {
        self.write_lock().everything.insert(who);
    }

    /// Removes every grant of `who` on `subject`.
    pub fn revoke(&self, who: &IndividualId, subject: &SubjectId) {
        let mut g = self.write_lock();
        if let Some(s) = g.pull.get_mut(subject) {
            s.remove(who);
        }
        if let Some(s) = g.write.get_mut(subject) {
            s.remove(who);
        }
    }
}

impl AccessPolicy for MemoryPolicy {
    fn pulls_everything(&self, requester: &IndividualId) -> bool {
        self.read_lock().everything.contains(requester)
    }

    fn may_pull(&self, requester: &IndividualId, subject: &SubjectId) -> bool {
        let g = self.read_lock();
        g.everything.contains(requester)
            || g.pull.get(subject).is_some_and(|s| s.contains(requester))
    }

    fn check_push(&self, from: &IndividualId, item: &Item) -> Result<(), Refusal> {
        let g = self.read_lock();
        if g.everything.contains(from)
            || g.write
                .get(&item.subject())
                .is_some_and(|s| s.contains(from))
        {
            Ok(())
        } else {
            Err(Refusal::NotAuthorised {
                rule: "SYNC-45",
                who: *from,
                needed: keyhive_core::capability::Access::Write,
                subject: item.subject(),
            })
        }
    }

    fn reachable(&self, requester: &IndividualId) -> Vec<SubjectId> {
        let g = self.read_lock();
        let all = g.everything.contains(requester);
        let mut out: BTreeSet<SubjectId> = g
            .pull
            .iter()
            .filter(|(_, who)| all || who.contains(requester))
            .map(|(s, _)| *s)
            .collect();
        if all {
            out.extend(g.write.keys().copied());
        }
        out.into_iter().collect()
    }

    /// SYNC-50a: a grant names its subject, so `reachable` lists every subject pulled,
    /// except for a device granted everything.
    fn reachable_is_complete(&self, requester: &IndividualId) -> bool {
        !self.read_lock().everything.contains(requester)
    }
}

/// Feeds every stored item to `policy.stored` in batches of at most `batch` items, subject by
/// subject, auth items of each subject first (SYNC-46). A relay calls this on start so a
/// graph-backed policy rebuilds its state from the store. Returns the number of items fed.
pub fn replay_into(
    store: &dyn crate::store::Store,
    policy: &dyn AccessPolicy,
    batch: usize,
) -> Result<usize, crate::store::StoreError> {
    let batch = batch.max(1);
    let mut fed = 0;
    for subject in store.subjects()? {
        let mut auth = Vec::new();
        let mut rest = Vec::new();
        for hash in store.hashes(&subject)? {
            let Some(item) = store.get(&hash)? else {
                continue;
            };
            if item.kind() == crate::item::ItemKind::Auth {
                auth.push(item);
            } else {
                rest.push(item);
            }
            if auth.len() + rest.len() >= batch {
                fed += flush(policy, &mut auth, &mut rest);
            }
        }
        fed += flush(policy, &mut auth, &mut rest);
    }
    Ok(fed)
}

fn flush(policy: &dyn AccessPolicy, auth: &mut Vec<Item>, rest: &mut Vec<Item>) -> usize {
    let n = auth.len() + rest.len();
    if !auth.is_empty() {
        policy.stored(auth);
        auth.clear();
    }
    if !rest.is_empty() {
        policy.stored(rest);
        rest.clear();
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, Store};

    #[derive(Default)]
    struct Counting(std::sync::Mutex<Vec<usize>>);

    impl AccessPolicy for Counting {
        fn may_pull(&self, _: &IndividualId, _: &SubjectId) -> bool {
            false
        }
        fn check_push(&self, _: &IndividualId, _: &Item) -> Result<(), Refusal> {
            Ok(())
        }
        fn reachable(&self, _: &IndividualId) -> Vec<SubjectId> {
            Vec::new()
        }
        fn stored(&self, items: &[Item]) {
            self.0.lock().expect("not poisoned").push(items.len());
        }
    }

    #[test]
    fn replay_feeds_every_item_in_bounded_batches() {
        let store = MemoryStore::new();
        store
            .put(&crate::store::conformance::sample_items(50, 3))
            .expect("put");
        let policy = Counting::default();
        assert_eq!(replay_into(&store, &policy, 8).expect("replay"), 50);
        let batches = policy.0.lock().expect("not poisoned").clone();
        assert_eq!(batches.iter().sum::<usize>(), 50);
        assert!(batches.iter().all(|b| *b <= 8));
    }

    #[test]
    fn memory_policy_grants_and_revokes() {
        let p = MemoryPolicy::new();
        let who = IndividualId(keyhive_core::crypto::signing::PublicKey([3; 32]));
        let s = SubjectId(keyhive_core::crypto::signing::PublicKey([4; 32]));
        assert!(!p.may_pull(&who, &s));
        p.grant_pull(who, s);
        assert!(p.may_pull(&who, &s));
        assert_eq!(p.reachable(&who), vec![s]);
        p.revoke(&who, &s);
        assert!(!p.may_pull(&who, &s));
        assert!(p.reachable(&who).is_empty());
    }
}
