//! The relay's authorisation from the capability graph (`specs/sync.md` §6, RELAY-n).
//!
//! The relay holds no decryption key: it keeps its own capability checker over the auth items it
//! stores (signed plaintext) and the devices' contact cards, and decides with it.
//!
//! - RELAY-1: an auth op is stored only if it verifies and is valid under the graph (a genesis
//!   is self-certifying); one whose predecessors are missing is refused until they are pushed.
//! - RELAY-2: a content op is stored only if its author holds `write` (it is valid).
//! - RELAY-3: a key-agreement op is stored only if it verifies and its issuer holds `read`;
//!   an init only if the document's genesis names it (`specs/cgka.md` CGKA-25).
//! - RELAY-4: a blob (ciphertext) is stored only if the pusher holds `read` on the document
//!   (writers publish changes, any reader may publish an entry point, REP-5).
//! - RELAY-5: items of a subject are served only to devices holding `pull` on it; a device's
//!   contact card only to itself and to devices sharing a subject with it.
//! - RELAY-6: configured peer relays may pull and push everything (relay-to-relay sync); their
//!   pushes are still verified by RELAY-1..4 when the graph allows it.

use std::collections::BTreeSet;
use std::sync::Mutex;

use keyhive_core::capability::{
    Access, AgentId, AnySigned, Checker, IngestOutcome, PeerTag, PendingLimits, Validity,
};
use keyhive_core::cgka::SignedCgkaOp;
use keyhive_core::encoding::DecodeError;
use keyhive_core::identity::{ContactCard, DocumentId, IndividualId};
use keyhive_core::signed::Signed;

use crate::item::{Item, ItemKind, SubjectId};
use crate::policy::{AccessPolicy, Refusal};
use crate::replica::Directory;
use crate::store::{Store, StoreError};

struct Graph {
    checker: Checker,
    directory: Directory,
}

/// [`AccessPolicy`] backed by a capability checker.
pub struct CapabilityPolicy {
    graph: Mutex<Graph>,
    peers: BTreeSet<IndividualId>,
}

impl CapabilityPolicy {
    /// A policy trusting `peers` (other relays) for RELAY-6.
    pub fn new(peers: impl IntoIterator<Item = IndividualId>) -> Self {
        CapabilityPolicy {
            graph: Mutex::new(Graph {
                checker: Checker::new(PendingLimits::default()),
                directory: Directory::default(),
            }),
            peers: peers.into_iter().collect(),
        }
    }

    /// Rebuilds the graph from every auth and content item in `store` (relay start-up).
    pub fn load(&self, store: &dyn Store) -> Result<usize, StoreError> {
        let mut count = 0;
        let mut graph = self.lock();
        let mut items = Vec::new();
        for subject in store.subjects()? {
            for hash in store.hashes(&subject)? {
                if let Some(item) = store.get(&hash)?
                    && matches!(item.kind(), ItemKind::Auth | ItemKind::Content)
                {
                    items.push(item);
                }
            }
        }
        // Stored items were accepted before but come back in hash order, so the pending limits
        // (CAP-4, for peers) are lifted while replaying and restored afterwards.
        graph.checker.set_pending_limits(PendingLimits {
            per_peer: usize::MAX,
            per_subject: usize::MAX,
            total: usize::MAX,
        });
        graph.checker.set_pending_bytes_limit(usize::MAX);
        for item in &items {
            if graph.admit(PeerTag::LOCAL, item).is_ok() {
                count += 1;
            }
        }
        graph.checker.set_pending_limits(PendingLimits::default());
        graph
            .checker
            .set_pending_bytes_limit(keyhive_core::capability::DEFAULT_PENDING_BYTES);
        Ok(count)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Graph> {
        // A poisoned lock only follows a panic elsewhere; the checker stays consistent.
        self.graph
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Graph {
    fn holds(&self, who: &IndividualId, level: Access, subject: &SubjectId) -> bool {
        self.checker
            .can(AgentId::Individual(*who), level, &subject.0)
    }

    /// RELAY-1..4 for one item.
    fn admit(&mut self, from: PeerTag, item: &Item) -> Result<(), Refusal> {
        match item.kind() {
            ItemKind::Auth | ItemKind::Content => self.admit_op(from, item),
            ItemKind::Cgka => {
                let op = SignedCgkaOp::decode(item.envelope())
                    .map_err(|e| Refusal::Invalid(e.to_string()))?
                    .verify()
                    .map_err(|e| Refusal::Invalid(e.to_string()))?;
                let binding = self.checker.key_agreement(&DocumentId(item.subject().0));
                keyhive_core::cgka::check_init(binding.as_ref(), &op)
                    .map_err(|e| Refusal::NotAuthorised(format!("CGKA-25: {e}")))?;
                let issuer = IndividualId(op.issuer);
                if self.holds(&issuer, Access::Read, &item.subject()) {
                    Ok(())
                } else {
                    Err(Refusal::NotAuthorised(format!(
                        "RELAY-3: {issuer} holds no read access on {}",
                        item.subject()
                    )))
                }
            }
            ItemKind::Blob => Ok(()),
        }
    }

    fn admit_op(&mut self, from: PeerTag, item: &Item) -> Result<(), Refusal> {
        let signed = match AnySigned::decode(item.envelope()) {
            Ok(signed) => signed,
            Err(DecodeError::WrongTag { .. }) if item.kind() == ItemKind::Auth => {
                return self.admit_card(item);
            }
            Err(e) => return Err(Refusal::Invalid(e.to_string())),
        };
        // SYNC-45: the item must be filed under the op's own subject and kind.
        let (subject, is_content) = match &signed {
            AnySigned::Genesis(s) => (s.unverified_payload().issuer, false),
            AnySigned::Auth(s) => (s.unverified_payload().body.subject, false),
            AnySigned::Content(s) => (s.unverified_payload().body.document.0, true),
        };
        if subject != item.subject().0 || is_content != (item.kind() == ItemKind::Content) {
            return Err(Refusal::Invalid(
                "item kind or subject does not match its envelope".into(),
            ));
        }
        match self.checker.ingest_signed(from, signed) {
            Ok(IngestOutcome::Applied { hash, .. }) | Ok(IngestOutcome::Duplicate { hash }) => {
                match self.checker.op_validity(&hash) {
                    Some(Validity::Valid) => Ok(()),
                    Some(Validity::Invalid(r)) => Err(Refusal::NotAuthorised(r.to_string())),
                    None => Err(Refusal::Invalid("op is not held".into())),
                }
            }
            Ok(IngestOutcome::Pending { missing, .. }) => Err(Refusal::Invalid(format!(
                "RELAY-1: {} causal predecessor(s) missing; push them first",
                missing.len()
            ))),
            Ok(_) => Err(Refusal::Invalid("op not applied".into())),
            Err(e) => Err(Refusal::Invalid(e.to_string())),
        }
    }

    fn admit_card(&mut self, item: &Item) -> Result<(), Refusal> {
        let card = Signed::<ContactCard>::decode(item.envelope())
            .map_err(|e| Refusal::Invalid(e.to_string()))?
            .verify()
            .map_err(|e| Refusal::Invalid(e.to_string()))?;
        if card.device != item.subject().0 {
            return Err(Refusal::Invalid("card filed under another subject".into()));
        }
        self.directory.insert(card);
        Ok(())
    }

    fn shares_subject(&self, a: &IndividualId, b: &IndividualId) -> bool {
        let theirs = self.checker.reachable(AgentId::Individual(*b));
        self.checker
            .reachable(AgentId::Individual(*a))
            .keys()
            .any(|s| theirs.contains_key(s))
    }
}

impl AccessPolicy for CapabilityPolicy {
    fn may_pull(&self, requester: &IndividualId, subject: &SubjectId) -> bool {
        if self.peers.contains(requester) || requester.0 == subject.0 {
            return true;
        }
        let graph = self.lock();
        if graph.checker.subject_info(&subject.0).is_some() {
            return graph.holds(requester, Access::Pull, subject);
        }
        let device = IndividualId(subject.0);
        graph.directory.card(&device).is_some() && graph.shares_subject(requester, &device)
    }

    fn check_push(&self, from: &IndividualId, item: &Item) -> Result<(), Refusal> {
        let mut graph = self.lock();
        if item.kind() == ItemKind::Blob
            && !self.peers.contains(from)
            && !graph.holds(from, Access::Read, &item.subject())
        {
            return Err(Refusal::NotAuthorised(format!(
                "RELAY-4: {from} holds no read access on {}",
                item.subject()
            )));
        }
        graph.admit(PeerTag::from(from.0), item)
    }

    fn reachable(&self, requester: &IndividualId) -> Vec<SubjectId> {
        let graph = self.lock();
        let mut out: BTreeSet<SubjectId> = BTreeSet::new();
        if self.peers.contains(requester) {
            out.extend(graph.checker.subjects().map(|s| SubjectId(*s)));
            out.extend(graph.directory.cards().map(|c| SubjectId(c.device)));
        } else {
            let reach = graph.checker.reachable(AgentId::Individual(*requester));
            out.extend(reach.keys().map(|s| SubjectId(*s)));
            out.insert(SubjectId(requester.0));
            for card in graph.directory.cards() {
                let device = IndividualId(card.device);
                if graph.shares_subject(requester, &device) {
                    out.insert(SubjectId(card.device));
                }
            }
        }
        out.into_iter().collect()
    }
}
