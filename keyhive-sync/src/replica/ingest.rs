//! Receiving items: every item goes through the one admission path (ADM-n) before it is
//! applied and stored (REP-2).

use std::collections::{BTreeMap, HashSet};

use keyhive_core::capability::{AnyVerified, PeerTag};
use keyhive_core::cgka::{Cgka, CgkaBody, CgkaOp, Received};
use keyhive_core::crypto::hash::Hash;
use keyhive_core::encoding::{SignedPayload, peek_tag};
use keyhive_core::identity::DocumentId;

use super::{GraphAuthority, Ingested, ItemOutcome, Replica, ReplicaError, op_item};
use crate::admission::{Admitted, Mode, Refusal, apply_rank};
use crate::blob::{Blob, EntryPoint};
use crate::item::{Item, ItemKind, SubjectId};
use crate::store::Store;

/// CGKA-36: where the items of a batch come from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Batch {
    /// Received from a peer (or made here): ops a tree applied after they waited may not be
    /// stored yet.
    Received,
    /// Read back from the store (a replay): everything applied is stored already.
    Stored,
}

impl<S: Store> Replica<S> {
    /// Admits, applies and stores an item received from `from` (ADM-n, REP-2).
    pub fn ingest(&mut self, from: PeerTag, item: &Item) -> Result<Ingested, ReplicaError> {
        self.require_full()?;
        if self.store.contains(&item.hash())? {
            return Ok(Ingested::Duplicate);
        }
        let outcome = self.apply_item(from, item)?;
        match outcome {
            Ingested::Stored => {
                self.accepted += 1;
                self.store.put(std::slice::from_ref(item))?;
                if item.kind() == ItemKind::Auth {
                    self.refresh_cgkas();
                }
            }
            Ingested::Waiting | Ingested::Duplicate => {}
        }
        self.publish_events([item.subject()]);
        Ok(outcome)
    }

    /// Ingests a batch (e.g. one sync round), storing accepted items in one transaction.
    pub fn ingest_all(
        &mut self,
        from: PeerTag,
        mut items: Vec<Item>,
    ) -> Result<Vec<ItemOutcome>, ReplicaError> {
        self.require_full()?;
        items.sort_by_key(apply_rank);
        let touched: Vec<SubjectId> = items.iter().map(Item::subject).collect();
        let mut accepted = Vec::new();
        let mut report = Vec::with_capacity(items.len());
        // ADM-2a: signatures checked ahead on the available cores, applied here in order;
        // CGKA-36: each key agreement replays once for the whole batch.
        self.with_deferred_replay(Batch::Received, |this| {
            this.for_each_checked(&items, true, &HashSet::new(), |this, item, checked| {
                if this.store.contains(&item.hash())? {
                    report.push((item.hash(), Ok(Ingested::Duplicate)));
                    return Ok(());
                }
                let result = this.apply_item_with(from, item, checked);
                if matches!(result, Ok(Ingested::Stored)) {
                    this.accepted += 1;
                    accepted.push(item.clone());
                }
                report.push((item.hash(), result));
                Ok(())
            })
        })?;
        self.store.put(&accepted)?;
        // REP-70: admission verified them; the next open need not.
        self.mark_verified(
            accepted
                .iter()
                .filter(|item| super::carries_signature(item))
                .map(Item::hash)
                .collect(),
        );
        self.refresh_cgkas();
        self.publish_events(touched);
        Ok(report)
    }

    /// CGKA-36: runs `apply` (which applies a batch of items) with every key agreement's
    /// replay deferred, then settles each one the batch touched, once, and stores the ops that
    /// waited in it and were applied. Settles even when `apply` fails part-way. A replay of the
    /// store (`Batch::Stored`) has nothing to store: every op it applied was read from it.
    pub(super) fn with_deferred_replay(
        &mut self,
        batch: Batch,
        apply: impl FnOnce(&mut Self) -> Result<(), ReplicaError>,
    ) -> Result<(), ReplicaError> {
        self.deferred = Some(BTreeMap::new());
        let applied = apply(self);
        let settled = self.settle_deferred(batch);
        applied.and(settled)
    }

    fn settle_deferred(&mut self, batch: Batch) -> Result<(), ReplicaError> {
        let Some(deferred) = self.deferred.take() else {
            return Ok(());
        };
        for (document, unblocked) in deferred {
            if let Ok((cgka, authority, _)) = self.cgka_with_authority(document) {
                cgka.settle(&authority);
            }
            if unblocked && batch == Batch::Received {
                self.store_unblocked_cgka(document)?;
            }
        }
        Ok(())
    }

    /// Admits and applies one item; the caller stores it when the answer is `Stored`.
    pub(super) fn apply_item(
        &mut self,
        from: PeerTag,
        item: &Item,
    ) -> Result<Ingested, ReplicaError> {
        self.apply_item_with(from, item, false)
    }

    /// As [`Replica::apply_item`]; `signatures_checked` when `verify_strict` already held for
    /// every signature of these exact bytes (ADM-2a), so admission does not check them again.
    pub(super) fn apply_item_with(
        &mut self,
        from: PeerTag,
        item: &Item,
        signatures_checked: bool,
    ) -> Result<Ingested, ReplicaError> {
        let admitted = if signatures_checked {
            self.admission
                .admit_signatures_checked(Mode::Replica, from, item)?
        } else {
            self.admission.admit(Mode::Replica, from, item)?
        };
        match admitted {
            Admitted::Op { released } => {
                self.store_released(&released)?;
                if let Some(AnyVerified::Genesis(_)) = self.admission.checker.op(&item.hash()) {
                    self.drain_early(DocumentId(item.subject().0))?;
                }
                Ok(Ingested::Stored)
            }
            Admitted::Parked => Ok(Ingested::Waiting),
            Admitted::Duplicate => Ok(Ingested::Duplicate),
            Admitted::Card { .. } => Ok(Ingested::Stored),
            Admitted::KeyAgreement(op) => self.apply_cgka(item, op),
            Admitted::EarlyKeyAgreement(_) => self.queue_early(item),
            Admitted::Ciphertext => {
                self.index_ciphertext(item);
                Ok(Ingested::Stored)
            }
        }
    }

    /// Remembers where a change's ciphertext (REP-20) or an entry point (REP-22) is stored.
    pub(super) fn index_ciphertext(&mut self, item: &Item) {
        if item.kind() != ItemKind::Blob {
            return;
        }
        match peek_tag(item.envelope()) {
            Some(EntryPoint::TAG) => {
                let list = self
                    .entry_points
                    .entry(DocumentId(item.subject().0))
                    .or_default();
                if !list.contains(&item.hash()) {
                    list.push(item.hash());
                }
            }
            Some(Blob::TAG) => {
                if let Ok(Blob::Change { .. }) = Blob::from_bytes(item.envelope()) {
                    self.blobs
                        .insert(Hash::of_content(item.envelope()), item.hash());
                }
            }
            _ => {}
        }
    }

    fn apply_cgka(&mut self, item: &Item, op: CgkaOp) -> Result<Ingested, ReplicaError> {
        let document = DocumentId(item.subject().0);
        if matches!(op.body, CgkaBody::Init { .. }) {
            if self.cgkas.contains_key(&document) {
                return Ok(Ingested::Duplicate);
            }
            // Admission (ADM-5) only passes an init once the genesis naming it is held.
            let Some(binding) = self.admission.checker.key_agreement(&document) else {
                return self.queue_early(item);
            };
            let authority = GraphAuthority {
                checker: &self.admission.checker,
                directory: &self.admission.directory,
                document: document.0,
            };
            // ADM-2: admission checked the signature (or this device did before, REP-70); the
            // tree checks the init's binding and structure as it starts.
            let cgka = match Cgka::from_verified_init(&binding, op, Some(&self.device), &authority)
            {
                Ok(cgka) => cgka,
                Err(e) => {
                    self.admission.forget_key_agreement(&item.hash());
                    return Err(e.into());
                }
            };
            self.cgkas.insert(document, cgka);
            self.drain_early(document)?;
            return Ok(Ingested::Stored);
        }
        if !self.cgkas.contains_key(&document) {
            self.admission.forget_key_agreement(&item.hash());
            return self.queue_early(item);
        }
        let deferring = self.deferred.is_some();
        let (cgka, authority, _) = self.cgka_with_authority(document)?;
        if deferring {
            cgka.defer_replay();
        }
        // Only applied ops are stored: one still waiting for predecessors stays in the tree and
        // is stored when an op that arrives later unblocks it (REP-2, SYNC-84).
        let before = cgka.op_count();
        // ADM-2: admission checked the signature; the tree applies its own rules.
        let received = cgka.receive_verified(op, &authority);
        let unblocked = cgka.op_count() > before + 1;
        if let Some(deferred) = &mut self.deferred {
            // CGKA-36: stored once the batch's replay has put them in order.
            *deferred.entry(document).or_default() |= unblocked;
        }
        match received {
            Ok(Received::Applied) => {
                if unblocked && !deferring {
                    self.store_unblocked_cgka(document)?;
                }
                Ok(Ingested::Stored)
            }
            // The tree holds it, but this replica did not store it (its callers check): it
            // was applied after it waited (for a predecessor, or as a refused op a waiting op
            // named), so store it now; one still waiting stays unstored.
            Ok(Received::Duplicate) => {
                let hash = item.hash();
                if self
                    .cgkas
                    .get(&document)
                    .is_some_and(|c| c.contains_op(&hash))
                {
                    Ok(Ingested::Stored)
                } else {
                    self.admission.forget_key_agreement(&hash);
                    Ok(Ingested::Waiting)
                }
            }
            Ok(_) => {
                // Admitted afresh when offered again (the tree answers `Duplicate` then).
                self.admission.forget_key_agreement(&item.hash());
                Ok(Ingested::Waiting)
            }
            Err(e) => {
                self.admission.forget_key_agreement(&item.hash());
                Err(e.into())
            }
        }
    }

    /// Stores the key-agreement ops of `document` that its tree applied but this replica has
    /// not stored: ops that waited in the tree for predecessors and were unblocked by the op
    /// just applied (which its caller stores).
    fn store_unblocked_cgka(&mut self, document: DocumentId) -> Result<(), ReplicaError> {
        let Some(cgka) = self.cgkas.get(&document) else {
            return Ok(());
        };
        let mut missing = Vec::new();
        for op in cgka.ops_in_order() {
            let item = Item::new(
                ItemKind::Cgka,
                SubjectId(document.0),
                op.as_bytes().to_vec(),
            )?;
            if !self.store.contains(&item.hash())? {
                missing.push(item);
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        for item in &missing {
            self.admission.note_local(item);
        }
        self.store.put(&missing)?;
        Ok(())
    }

    fn queue_early(&mut self, item: &Item) -> Result<Ingested, ReplicaError> {
        if self
            .early_cgka
            .push(DocumentId(item.subject().0), item.clone())
        {
            Ok(Ingested::Waiting)
        } else {
            Err(Refusal::QueueFull.into())
        }
    }

    /// Applies the key-agreement ops that waited for `document`'s genesis or init, storing
    /// those that apply now.
    fn drain_early(&mut self, document: DocumentId) -> Result<(), ReplicaError> {
        for item in self.early_cgka.take(&document) {
            // ADM-2: every queued op's signature held when it was queued (admission checks it
            // before answering an early op, and before any op reaches the key agreement).
            match self.apply_item_with(PeerTag::LOCAL, &item, true) {
                // Replaying the store on open drains ops it already holds: no write then.
                Ok(Ingested::Stored) if !self.store.contains(&item.hash())? => {
                    self.store.put(std::slice::from_ref(&item))?;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(item = %item.hash(), error = %e, "early key-agreement op refused");
                }
            }
        }
        Ok(())
    }

    /// Stores ops that the checker released from its pending set (they were parked, not
    /// stored, when they arrived).
    fn store_released(&mut self, released: &[Hash]) -> Result<(), ReplicaError> {
        let mut items = Vec::with_capacity(released.len());
        for op in released.iter().filter_map(|h| self.admission.checker.op(h)) {
            // Replaying the store on open releases ops it already holds: no write then.
            if !self.store.contains(&op.hash())? {
                items.push(op_item(op)?);
            }
        }
        if !items.is_empty() {
            self.store.put(&items)?;
        }
        Ok(())
    }
}
