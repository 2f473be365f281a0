//! Authorisation behind a small trait (`specs/sync.md` §6). The integrator implements it with
//! the capability checker; [`MemoryPolicy`] and [`AllowAll`] serve tests and trusted peers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use keyhive_core::identity::IndividualId;

use crate::item::{Item, SubjectId};

/// Why an item was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The author or pusher lacks the needed access (e.g. `write` for content).
    #[error("not authorised: {0}")]
    NotAuthorised(String),
    /// The envelope fails kind-specific validation (signature, structure, unknown auth chain).
    #[error("invalid item: {0}")]
    Invalid(String),
}

/// Decides what a relay (or client) stores and serves.
///
/// SYNC-44: `may_pull` is checked before serving any item, offer or reconciliation answer.
/// SYNC-45: `check_push` is checked before storing any item: implementations verify the
/// envelope's signature and kind-specific validity (auth op valid under the graph, content
/// author holds `write`, CGKA op authorised), since only they know the payload types.
pub trait AccessPolicy: Send + Sync + 'static {
    /// Whether `requester` may pull (fetch ciphertext of) `subject`.
    fn may_pull(&self, requester: &IndividualId, subject: &SubjectId) -> bool;

    /// Whether `item`, received from `from`, may be stored.
    fn check_push(&self, from: &IndividualId, item: &Item) -> Result<(), Refusal>;

    /// SYNC-50: every subject `requester` may pull, for collection sync.
    fn reachable(&self, requester: &IndividualId) -> Vec<SubjectId>;

    /// Called after `items` were durably stored, so a graph-backed policy can apply them.
    fn stored(&self, items: &[Item]) {
        let _ = items;
    }
}

/// Accepts and serves everything: for a client's own store or a trusted peer.
#[derive(Debug, Default, Clone, Copy)]
pub struct AllowAll;

impl AccessPolicy for AllowAll {
    fn may_pull(&self, _: &IndividualId, _: &SubjectId) -> bool {
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
            Err(Refusal::NotAuthorised(format!(
                "{from} may not write to {}",
                item.subject()
            )))
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
}
