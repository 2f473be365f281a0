//! A replica as the [`AccessPolicy`] of a sync client or peer listener: every received item is
//! verified and applied by the replica itself before it is stored (REP-2), and peers are served
//! what the replica's capability graph lets them pull.

use std::sync::{Arc, Mutex, MutexGuard};

use keyhive_core::capability::{Access, AgentId, PeerTag};
use keyhive_core::identity::IndividualId;

use super::{Ingested, Replica, ReplicaError};
use crate::item::{Item, SubjectId};
use crate::policy::{AccessPolicy, Refusal};
use crate::store::Store;

/// Shares a replica between the application and its sync links.
pub struct ReplicaGate<S: Store> {
    replica: Arc<Mutex<Replica<S>>>,
}

impl<S: Store> ReplicaGate<S> {
    /// Wraps a shared replica.
    pub fn new(replica: Arc<Mutex<Replica<S>>>) -> Self {
        ReplicaGate { replica }
    }

    fn lock(&self) -> MutexGuard<'_, Replica<S>> {
        // A poisoned lock only follows a panic in another holder.
        self.replica
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<S: Store> AccessPolicy for ReplicaGate<S> {
    fn may_pull(&self, requester: &IndividualId, subject: &SubjectId) -> bool {
        let replica = self.lock();
        let checker = replica.checker();
        if checker.subject_info(&subject.0).is_some() {
            return checker.can(AgentId::Individual(*requester), Access::Pull, &subject.0);
        }
        // Contact cards are public keys and a name, which peers need to seat each other; a
        // subject that is neither a known subject nor a known card is never served.
        replica.directory().card(&IndividualId(subject.0)).is_some()
    }

    fn check_push(&self, from: &IndividualId, item: &Item) -> Result<(), Refusal> {
        match self.lock().ingest(PeerTag::from(from.0), item) {
            Ok(Ingested::Stored | Ingested::Duplicate) => Ok(()),
            Ok(Ingested::Waiting) => Err(Refusal::Parked),
            Err(ReplicaError::Refused(refusal)) => Err(refusal),
            Err(e) => Err(Refusal::Replica(std::sync::Arc::new(e))),
        }
    }

    fn reachable(&self, requester: &IndividualId) -> Vec<SubjectId> {
        let replica = self.lock();
        let mut out: Vec<SubjectId> = replica
            .checker()
            .reachable(AgentId::Individual(*requester))
            .keys()
            .map(|s| SubjectId(*s))
            .collect();
        out.extend(replica.directory().cards().map(|c| SubjectId(c.device)));
        out.sort();
        out.dedup();
        out
    }
}
