//! A replica as the [`AccessPolicy`] of a sync client or peer listener: every received item is
//! verified and applied by the replica itself before it is stored (REP-2), and peers are served
//! what the replica's capability graph lets them pull.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use keyhive_core::capability::{Access, AgentId, PeerTag};
use keyhive_core::identity::IndividualId;

use super::{Ingested, Replica, ReplicaError};
use crate::item::{Item, SubjectId};
use crate::policy::{AccessPolicy, AdmitError, Arrival, Offer, OwnOffer, Refusal, Share};
use crate::store::Store;

/// A replica error as the refusal of one item.
fn refusal_of(e: ReplicaError) -> Refusal {
    match e {
        ReplicaError::Refused(refusal) => refusal,
        e => Refusal::Replica(Arc::new(e)),
    }
}

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
        // RELAY-5, as a relay serves them: a contact card only to its own device and to
        // devices sharing a subject with it (co-members need each other's prekeys to seat
        // each other), this device's own card to anyone it serves; a subject that is neither
        // a known subject nor a known card is never served. Serving every known card would
        // show any peer this device's whole contact list.
        let device = IndividualId(subject.0);
        replica.directory().card(&device).is_some()
            && (device == *requester
                || device == replica.device().id()
                || crate::capability_policy::shares_subject(checker, requester, &device))
    }

    /// Admits, applies and stores the item through the replica. A caller that then stores it
    /// again (a relay connection serving peers, SYNC-41) finds it held (STORE-2) and reports
    /// `Duplicate`; clients use [`AccessPolicy::admit_batch`], which stores once (SYNC-84).
    fn check_push(&self, from: &IndividualId, item: &Item) -> Result<(), Refusal> {
        match self.lock().ingest(PeerTag::from(from.0), item) {
            Ok(Ingested::Stored | Ingested::Duplicate) => Ok(()),
            Ok(Ingested::Waiting) => Err(Refusal::Parked),
            Err(e) => Err(refusal_of(e)),
        }
    }

    /// SYNC-84: the replica admits, applies and stores the batch itself, in one transaction
    /// ([`Replica::ingest_all`], REP-2), so the client does not store it again; `_store` is
    /// the replica's own store. An op parked by the batch and released by a later item of the
    /// same batch is reported stored.
    fn admit_batch(
        &self,
        from: &IndividualId,
        items: Vec<Item>,
        _store: &dyn Store,
    ) -> Result<Vec<(Item, Arrival)>, AdmitError> {
        let by_hash: HashMap<_, _> = items.iter().map(|i| (i.hash(), i.clone())).collect();
        let mut replica = self.lock();
        let report = replica.ingest_all(PeerTag::from(from.0), items)?;
        let mut out = Vec::with_capacity(report.len());
        for (hash, result) in report {
            let arrival = match result {
                Ok(Ingested::Stored) => Arrival::Stored,
                Ok(Ingested::Duplicate) => Arrival::Duplicate,
                Ok(Ingested::Waiting) if replica.store().contains(&hash)? => Arrival::Stored,
                Ok(Ingested::Waiting) => Arrival::Parked,
                Err(e) => Arrival::Refused(refusal_of(e)),
            };
            if let Some(item) = by_hash.get(&hash) {
                out.push((item.clone(), arrival));
            }
        }
        Ok(out)
    }

    /// CAP-21, REP-30: as for a relay, a peer is also served the auth ops of the scope of
    /// what it pulls, and the ops of a subject it was removed from.
    fn share(&self, requester: &IndividualId, subject: &SubjectId) -> Share {
        let replica = self.lock();
        if replica.checker().subject_info(&subject.0).is_some() {
            return crate::capability_policy::share_of(replica.checker(), requester, &subject.0);
        }
        drop(replica);
        if self.may_pull(requester, subject) {
            Share::All
        } else {
            Share::Nothing
        }
    }

    fn removed_from(&self, requester: &IndividualId, subject: &SubjectId) -> bool {
        crate::capability_policy::removed_from(self.lock().checker(), requester, &subject.0)
    }

    /// REP-33: of a subject this device was removed from (or, SYNC-85b, never held and no
    /// longer in the scope of one it pulls), only the ops it authored there and holds valid,
    /// with the ciphertext they name, their held causal past and the key agreement
    /// ([`Replica::own_valid`]). If the store fails reading them, nothing is offered this
    /// time; the next sync asks again.
    ///
    /// SYNC-81a: another device's contact card only while this device shares a subject with
    /// it. A relay serves that card back only then (RELAY-5), so offering it otherwise would
    /// push it again at every sync, and the devices that do share a subject with it hold it.
    fn offers(&self, subject: &SubjectId) -> Offer {
        let replica = self.lock();
        let me = replica.device().id();
        let device = IndividualId(subject.0);
        if device != me
            && replica.directory().card(&device).is_some()
            && replica.checker().subject_info(&subject.0).is_none()
            && !crate::capability_policy::shares_subject(replica.checker(), &me, &device)
        {
            return Offer::Own(OwnOffer::default());
        }
        let checker = replica.checker();
        let agent = AgentId::Individual(me);
        if checker.can(agent, Access::Pull, &subject.0) {
            return Offer::All;
        }
        // SYNC-85b: a subject this device never held (its auth ops came in the scope of one it
        // pulls, CAP-21) is offered whole only while that lasts, as a relay serves it to it
        // only then; afterwards only what it owes there, as of a subject it was removed from.
        if replica.require_unrevoked(&subject.0, Access::Pull).is_ok()
            && (checker.subject_info(&subject.0).is_none()
                || checker.served_subjects(agent).contains(&subject.0))
        {
            return Offer::All;
        }
        Offer::Own(replica.own_valid(&subject.0).unwrap_or_default())
    }

    fn reachable(&self, requester: &IndividualId) -> Vec<SubjectId> {
        let replica = self.lock();
        let checker = replica.checker();
        let mut out: BTreeSet<SubjectId> =
            crate::capability_policy::served_subjects(checker, requester);
        let me = replica.device().id();
        out.extend(
            crate::capability_policy::sharing_devices(checker, requester)
                .into_iter()
                .chain([*requester, me])
                .filter(|device| replica.directory().card(device).is_some())
                .map(|device| SubjectId(device.0)),
        );
        out.into_iter().collect()
    }

    /// SYNC-104 as at a relay: a peer that holds no grant from anyone and created nothing
    /// anyone else holds a grant on stores at most the stranger quota here (a device serving
    /// peers stored whatever any key that completed the handshake pushed).
    fn stranger_subjects(&self, who: &IndividualId) -> Option<Vec<SubjectId>> {
        let replica = self.lock();
        if *who == replica.device().id() {
            return None;
        }
        crate::capability_policy::stranger_subjects(replica.checker(), who)
    }

    /// REP-2b: a device this replica knows: one whose contact card it holds, or one that
    /// reaches something in its graph.
    fn is_device(&self, peer: &IndividualId) -> bool {
        let replica = self.lock();
        *peer != replica.device().id()
            && (replica.directory().card(peer).is_some()
                || !replica
                    .checker()
                    .reachable(AgentId::Individual(*peer))
                    .is_empty())
    }

    /// SYNC-50a: `reachable` lists every subject `may_pull` allows: the subjects a peer
    /// reaches are among its served subjects, and the cards it may pull are listed.
    fn reachable_is_complete(&self, _: &IndividualId) -> bool {
        true
    }
}
