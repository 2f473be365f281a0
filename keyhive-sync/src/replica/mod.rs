//! A device's replica: its keys, the capability checker, each document's key agreement and the
//! local item store, kept consistent (`specs/sync.md` §8, rules REP-n).
//!
//! This is the API app developers use without touching the network: every local action signs,
//! checks and stores its ops immediately and returns; the sync client later moves the stored
//! items to relays and peers. Every received item goes through [`Replica::ingest`], which
//! verifies and checks it exactly as a locally made one.
//!
//! - REP-2: items are stored only after they are verified and accepted (auth ops valid or
//!   parked, key-agreement ops authorised, content ops by a writer).
//! - REP-3: before encrypting, a replica makes the document's key agreement match the capability
//!   graph: it removes every device that lost `read` (whoever revoked it), seats every device that
//!   gained it, and updates, so a revoked device cannot read what is written next (REP-4).
//! - REP-5: whoever updates after seating a device publishes an entry point (a content-free
//!   encrypted change under the new epoch naming the current heads and their keys), so a member
//!   added later reads the whole history without anyone writing content for it.

mod authority;
mod content;
mod directory;
mod early;
mod ending;
mod error;
mod events;
mod folder;
mod gate;
mod history;
mod ingest;
mod invite;
mod keeper;
mod orphans;
mod own;
mod scope;
mod signatures;
mod subscription;
mod uncarried;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use keyhive_core::capability::{
    Access, AgentId, AnyVerified, Checker, Explanation, PeerTag, PendingLimits, Validity,
};
use keyhive_core::cgka::Cgka;
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::signing::{PublicKey, SigningKey};
use keyhive_core::identity::{ContactCard, Device, DocumentId, GroupId, IndividualId, SubjectKind};
use keyhive_core::signed::Verified;

pub use authority::GraphAuthority;
pub use content::{ChangeEntry, ChangeStatus, INLINE_MAX, PIECE_LEN};
pub use directory::Directory;
pub use error::ReplicaError;
pub use events::Event;
pub use gate::ReplicaGate;
pub use invite::RedemptionStatus;
pub use keeper::{KeyFile, SecretKeeper};
pub use signatures::SIGNATURE_CHUNK;
pub use subscription::{DEFAULT_CAPACITY, NextEvent, Subscription};

/// SYNC-86: where a replica announces the items it stores locally, e.g. a sync client's
/// outbox (`keyhive_sync::client::Outbox`, feature `net`), whose live links push them at once.
pub trait Announce: Send {
    /// Announces `items`, already stored.
    fn announce(&self, items: &[Item]);
}

use crate::admission::Admission;
use crate::item::{Item, ItemKind, SubjectId};
use crate::store::{MarkKey, Store};
use early::EarlyQueue;

/// One device's local state over a [`Store`].
pub struct Replica<S: Store> {
    device: Device,
    store: S,
    /// The capability graph, contact directory and indexes every received item is admitted
    /// with (ADM-n).
    admission: Admission,
    cgkas: BTreeMap<DocumentId, Cgka>,
    /// Key-agreement ops received before their document's genesis or init (verified, ADM-2),
    /// bounded in count and bytes.
    early_cgka: EarlyQueue,
    /// `Hash::of_content` of a change blob -> its item hash (content ops name changes by the
    /// former, REP-20).
    blobs: HashMap<Hash, Hash>,
    /// What this device opened of each document's history (REP-23).
    history: history::HistoryCache,
    /// Documents whose key agreement matched their readers when last prepared (REP-3).
    prepared: content::Prepared,
    /// Item hashes of each document's entry points (REP-5, REP-22).
    entry_points: HashMap<DocumentId, Vec<Hash>>,
    /// Items accepted from peers since opening (a progress measure for sync rounds).
    accepted: u64,
    /// SYNC-86: where items stored locally are announced for sync links, once connected.
    outbox: Option<Box<dyn Announce>>,
    /// KEYS-11: where this device's key-agreement secrets are made durable before a
    /// key-agreement op made here is stored.
    keeper: Option<Box<dyn SecretKeeper>>,
    /// REP-40: event subscribers and what they were last told.
    events: events::Hub,
    /// REP-60: the subjects a scoped open replayed (`None`: the whole store).
    scope: Option<BTreeSet<SubjectId>>,
    /// ADM-2a: threads checking a batch's signatures ahead of applying it.
    signature_threads: usize,
    /// CGKA-36: while a batch is applied, the documents whose key agreement deferred its
    /// replay, each with whether ops it held waiting were applied (and are to be stored).
    deferred: Option<BTreeMap<DocumentId, bool>>,
    /// REP-70: marks the stored items whose signatures this device verified.
    marks: MarkKey,
    /// REP-70: what the last open replayed.
    opened: OpenStats,
}

/// What opening a replica replayed (REP-70): how many stored items, how many of them were
/// applied without checking their signatures again because this device had marked them,
/// and how many had their signatures checked and were marked now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenStats {
    /// Stored items replayed.
    pub items: usize,
    /// Of those, items holding a valid mark of this device: applied without checking their
    /// signatures again.
    pub marked: usize,
    /// Of those, signed items whose signatures were checked in this open and that are
    /// marked now (a scoped open marks nothing and leaves this 0).
    pub verified: usize,
}

/// REP-70: whether `item` carries a signature this device checks, and so marks: every op,
/// card and key-agreement op, and an entry point (REP-5: a signed item of kind `Blob`);
/// changes and pieces carry none. Entry points were left unmarked and verified again at every
/// open: about 5,000 of them in a home that shared a 2,000-document folder and revoked it.
pub(super) fn carries_signature(item: &Item) -> bool {
    item.kind() != ItemKind::Blob
        || keyhive_core::encoding::peek_tag(item.envelope())
            == Some(<crate::blob::EntryPoint as keyhive_core::encoding::SignedPayload>::TAG)
}

/// REP-70: whether a replay marks the items whose signatures it verified.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Marking {
    /// A full open marks them.
    Verified,
    /// A scoped open stores nothing (REP-63), marks included.
    Nothing,
}

impl<S: Store> std::fmt::Debug for Replica<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("device", &self.device.id())
            .field("ops", &self.admission.checker.len())
            .field("documents", &self.cgkas.len())
            .finish()
    }
}

/// One item's hash and what ingesting it did.
pub type ItemOutcome = (Hash, Result<Ingested, ReplicaError>);

/// What happened to one ingested item.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ingested {
    /// Accepted and stored.
    Stored,
    /// Already held.
    Duplicate,
    /// Accepted but waiting for causal predecessors (kept in memory, stored once applied).
    Waiting,
}

impl<S: Store> Replica<S> {
    /// Opens a replica over `store`, replaying every stored item. The device's own contact card
    /// is (re)published so that others can seat it in key agreements. Pieces that no stored
    /// change lists (left by a streamed write killed midway) are removed first (REP-24); one
    /// replica per store.
    pub fn open(device: Device, store: S) -> Result<Self, ReplicaError> {
        let mut replica = Replica::blank(device, store);
        let items = replica.stored_items()?;
        let census = replica.replay(items, Marking::Verified);
        // REP-24: pieces of a write killed before its manifest was stored are removed before
        // anything is synced (the replay did not apply them: no change lists them).
        replica.collect_orphan_pieces(census)?;
        replica.finish_open()?;
        Ok(replica)
    }

    /// A replica over `store` that has replayed nothing yet.
    fn blank(device: Device, store: S) -> Self {
        let marks = MarkKey::for_device(device.signing_key());
        Replica {
            device,
            store,
            // The local store holds only ops this replica accepted before, so the pending limits
            // must not drop any of them while they are replayed in arbitrary order; they are
            // restored once the replay is done.
            admission: Admission::new(Checker::new(PendingLimits {
                per_peer: usize::MAX,
                per_subject: usize::MAX,
                total: usize::MAX,
            })),
            cgkas: BTreeMap::new(),
            early_cgka: EarlyQueue::default(),
            blobs: HashMap::new(),
            entry_points: HashMap::new(),
            history: history::HistoryCache::default(),
            prepared: content::Prepared::default(),
            accepted: 0,
            outbox: None,
            keeper: None,
            events: events::Hub::default(),
            scope: None,
            signature_threads: signatures::default_threads(),
            deferred: None,
            marks,
            opened: OpenStats::default(),
        }
    }

    /// Every stored item.
    fn stored_items(&self) -> Result<Vec<Item>, ReplicaError> {
        let mut items = Vec::new();
        for subject in self.store.subjects()? {
            for hash in self.store.hashes(&subject)? {
                if let Some(item) = self.store.get(&hash)? {
                    items.push(item);
                }
            }
        }
        Ok(items)
    }

    /// Bounds the pending set again and (re)publishes this device's card: the end of every
    /// open.
    fn finish_open(&mut self) -> Result<(), ReplicaError> {
        // From here on ops come from peers: the pending set is bounded again, in count and in
        // bytes (CAP-4).
        let checker = &mut self.admission.checker;
        checker.set_pending_limits(PendingLimits::default());
        checker.set_pending_bytes_limit(keyhive_core::capability::DEFAULT_PENDING_BYTES);
        let card = self.device.contact_card().map_err(ReplicaError::OwnCard)?;
        self.accept_card(card)
    }

    /// Applies stored `items` in dependency order, through admission as when they arrived
    /// but without checking again the signatures of items this device marked (REP-70);
    /// returns what they say about pieces (REP-24). With [`Marking::Verified`], the items whose signatures
    /// were checked here are marked.
    fn replay(&mut self, mut items: Vec<Item>, marking: Marking) -> orphans::PieceCensus {
        items.sort_by_key(crate::admission::replay_rank);
        let mut census = orphans::PieceCensus::default();
        for item in &items {
            census.note(item);
        }
        let trusted = self.marked();
        let marked = items
            .iter()
            .filter(|item| trusted.contains(&item.hash()))
            .count();
        let mut verified = Vec::new();
        let mut waited = Vec::new();
        // Signatures checked ahead on the available cores (ADM-2a); every item is stored, so
        // none is skipped as stored.
        let replayed = self.with_deferred_replay(ingest::Batch::Stored, |this| {
            this.for_each_checked(&items, false, &trusted, |this, item, checked| {
                // Stored items were accepted once; one the current graph no longer authorises
                // (a key-agreement op by a since-revoked device) stays stored but is not
                // applied.
                match this.apply_item_with(PeerTag::LOCAL, item, checked) {
                    // Changes and pieces carry no signature: nothing to mark.
                    Ok(Ingested::Stored)
                        if carries_signature(item) && !trusted.contains(&item.hash()) =>
                    {
                        verified.push(item.hash());
                    }
                    // Applied later in the replay (its parents, genesis or init were stored
                    // after it): judged once the replay is done.
                    Ok(Ingested::Waiting) if !trusted.contains(&item.hash()) => {
                        waited.push((item.kind(), item.subject(), item.hash()));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(item = %item.hash(), error = %e, "stored item not applied on replay");
                    }
                }
                Ok(())
            })
        });
        if let Err(e) = replayed {
            tracing::debug!(error = %e, "replay stopped");
        }
        self.opened = OpenStats {
            items: items.len(),
            marked,
            verified: 0,
        };
        if marking == Marking::Verified {
            verified.extend(
                waited
                    .into_iter()
                    .filter(|(kind, subject, hash)| self.applied(*kind, *subject, hash))
                    .map(|(_, _, hash)| hash),
            );
            self.opened.verified = verified.len();
            self.mark_verified(verified);
        }
        self.refresh_cgkas();
        census
    }

    /// REP-70: whether the op `hash` of `subject` is applied: in the capability graph, or
    /// in its document's key agreement; both hold only ops whose signatures were verified.
    fn applied(&self, kind: ItemKind, subject: SubjectId, hash: &Hash) -> bool {
        match kind {
            ItemKind::Auth | ItemKind::Content => self.admission.checker.op(hash).is_some(),
            ItemKind::Cgka => self
                .cgkas
                .get(&DocumentId(subject.0))
                .is_some_and(|cgka| cgka.contains_op(hash)),
            ItemKind::Blob => false,
        }
    }

    /// REP-70: the stored items this device verified before: those holding a valid mark
    /// under its key. A store that cannot list its marks trusts nothing (all are verified).
    fn marked(&self) -> HashSet<Hash> {
        match self.store.marks() {
            Ok(marks) => marks
                .into_iter()
                .filter(|(hash, mark)| self.marks.holds(hash, mark))
                .map(|(hash, _)| hash)
                .collect(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read admission marks; verifying every item");
                HashSet::new()
            }
        }
    }

    /// REP-70: marks the stored items `hashes`, whose signatures admission just verified. A
    /// failure only costs verifying them again at the next open.
    fn mark_verified(&self, hashes: Vec<Hash>) {
        let marks = self.marks.marks(hashes);
        if marks.is_empty() {
            return;
        }
        if let Err(e) = self.store.put_marks(&marks) {
            tracing::debug!(error = %e, "cannot record admission marks; the next open verifies these items again");
        }
    }

    /// What opening this replica replayed, and how much of it this device had verified
    /// before (REP-70).
    pub fn open_stats(&self) -> OpenStats {
        self.opened
    }

    /// Items accepted from peers since the replica was opened. Sync loops use it to tell
    /// whether another round can make progress (items refused for want of a predecessor or a
    /// grant are offered again and accepted once those arrive).
    pub fn accepted_count(&self) -> u64 {
        self.accepted
    }

    /// This device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The capability checker (read-only queries: `can`, `members`, `explain`, ...).
    pub fn checker(&self) -> &Checker {
        &self.admission.checker
    }

    /// Known contact cards.
    pub fn directory(&self) -> &Directory {
        &self.admission.directory
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The key agreement of `document`, if known.
    pub fn cgka(&self, document: &DocumentId) -> Option<&Cgka> {
        self.cgkas.get(document)
    }

    /// Every document's key-agreement secrets this device holds, for the key store.
    pub fn cgka_secrets(
        &self,
    ) -> impl Iterator<Item = (DocumentId, keyhive_core::cgka::CgkaSecrets)> + '_ {
        self.cgkas.iter().map(|(d, c)| (*d, c.export_secrets()))
    }

    /// Restores key-agreement secrets saved earlier (after [`Replica::open`]).
    pub fn import_cgka_secrets(
        &mut self,
        secrets: impl IntoIterator<Item = (DocumentId, keyhive_core::cgka::CgkaSecrets)>,
    ) {
        for (document, s) in secrets {
            if let Some(cgka) = self.cgkas.get_mut(&document) {
                let authority = GraphAuthority {
                    checker: &self.admission.checker,
                    directory: &self.admission.directory,
                    document: document.0,
                };
                cgka.import_secrets(&s, &authority);
            }
        }
        let documents: Vec<SubjectId> = self.cgkas.keys().map(|d| SubjectId(d.0)).collect();
        self.publish_events(documents);
    }

    // ----- local actions -----

    /// Publishes a contact card received out of band (e.g. `contact add`), so that this replica
    /// and its peers can seat that device once it is granted `read`.
    pub fn add_contact(&mut self, card: Verified<ContactCard>) -> Result<(), ReplicaError> {
        self.accept_card(card)
    }

    fn accept_card(&mut self, card: Verified<ContactCard>) -> Result<(), ReplicaError> {
        let item = Item::new(
            ItemKind::Auth,
            SubjectId(card.device),
            card.as_bytes().to_vec(),
        )?;
        // A card already stored is not written again (opening a home re-adds every contact,
        // and a read-only command must not touch the disk).
        if !self.store.contains(&item.hash())? {
            self.store_items(vec![item])?;
        }
        if self.admission.directory.insert(card) {
            self.refresh_cgkas();
        }
        Ok(())
    }

    /// Creates a group (a person's devices, a team).
    pub fn create_group(&mut self) -> Result<GroupId, ReplicaError> {
        let genesis = self.admission.checker.create_group(&self.device)?;
        self.store_op(&AnyVerified::Genesis(genesis.clone()))?;
        self.publish_events([]);
        Ok(GroupId(genesis.issuer))
    }

    /// Creates a document (also used for folders, whose content is their metadata) and its key
    /// agreement with this device seated.
    pub fn create_document(&mut self) -> Result<DocumentId, ReplicaError> {
        // GEN-2: the genesis names the key agreement's init (CGKA-25).
        let created = self.admission.checker.create_document(&self.device)?;
        let document = created.id();
        self.store_op(&AnyVerified::Genesis(created.genesis))?;
        let init = created.init;
        self.cgkas.insert(document, created.cgka);
        self.store_items(vec![Item::new(
            ItemKind::Cgka,
            SubjectId(document.0),
            init.as_bytes().to_vec(),
        )?])?;
        self.publish_events([]);
        Ok(document)
    }

    /// Grants `access` on `subject` to `agent` (a device, group, folder or document).
    pub fn grant(
        &mut self,
        subject: &PublicKey,
        agent: AgentId,
        access: Access,
    ) -> Result<Hash, ReplicaError> {
        let op = self
            .admission
            .checker
            .delegate(&self.device, subject, agent, access)?;
        self.store_op(&AnyVerified::Auth(op.clone()))?;
        self.refresh_cgkas();
        self.publish_events([]);
        Ok(op.hash())
    }

    /// Revokes every delegation on `subject` naming `agent`.
    pub fn revoke(
        &mut self,
        subject: &PublicKey,
        agent: AgentId,
    ) -> Result<Vec<Hash>, ReplicaError> {
        let ops = self
            .admission
            .checker
            .revoke_member(&self.device, subject, agent)?;
        for op in &ops {
            self.store_op(&AnyVerified::Auth(op.clone()))?;
        }
        self.refresh_cgkas();
        self.publish_events([]);
        Ok(ops.iter().map(Verified::hash).collect())
    }

    /// Explains why `agent` does or does not hold `level` on `subject`.
    pub fn explain(&self, agent: AgentId, level: Access, subject: &PublicKey) -> Explanation {
        self.admission.checker.explain(agent, level, subject)
    }

    /// REP-31: fails with [`ReplicaError::Revoked`] when this device lacks `level` on
    /// `subject` because a revocation removed it (other refusals are left to the operation,
    /// which reports them its own way).
    pub fn require_unrevoked(
        &self,
        subject: &PublicKey,
        level: Access,
    ) -> Result<(), ReplicaError> {
        let me = AgentId::Individual(self.device.id());
        // `can` is cached; `explain` walks the subject's members, so only a refusal runs it.
        if self.admission.checker.can(me, level, subject) {
            return Ok(());
        }
        match self.admission.checker.explain(me, level, subject) {
            Explanation::Refused(keyhive_core::capability::Refusal {
                reason: keyhive_core::capability::Reason::Revoked { revocation, .. },
                ..
            }) => Err(ReplicaError::Revoked {
                subject: *subject,
                revocation,
            }),
            _ => Ok(()),
        }
    }

    /// Subjects this device can reach, with its level on each.
    pub fn reachable(&self) -> Vec<(PublicKey, Access, SubjectKind)> {
        let me = AgentId::Individual(self.device.id());
        let mut out: Vec<_> = self
            .admission
            .checker
            .reachable(me)
            .iter()
            .filter_map(|(s, a)| {
                self.admission
                    .checker
                    .subject_info(s)
                    .map(|i| (*s, *a, i.kind))
            })
            .collect();
        out.sort();
        out
    }

    /// The document's key agreement, the authority that checks its ops, and this device's
    /// signing key (split borrows of the replica's fields).
    fn cgka_with_authority(
        &mut self,
        document: DocumentId,
    ) -> Result<(&mut Cgka, GraphAuthority<'_>, &SigningKey), ReplicaError> {
        let Replica {
            cgkas,
            admission,
            device,
            ..
        } = self;
        let (checker, directory) = (&admission.checker, &admission.directory);
        let cgka = cgkas
            .get_mut(&document)
            .ok_or(ReplicaError::UnknownSubject(document))?;
        let authority = GraphAuthority {
            checker,
            directory,
            document: document.0,
        };
        Ok((cgka, authority, device.signing_key()))
    }

    /// REP-3 bookkeeping: replays every key agreement under the current capability graph.
    fn refresh_cgkas(&mut self) {
        for (document, cgka) in &mut self.cgkas {
            let authority = GraphAuthority {
                checker: &self.admission.checker,
                directory: &self.admission.directory,
                document: document.0,
            };
            cgka.refresh(&authority);
        }
    }

    /// Stores an op this device just signed (and applied), recording what it names without
    /// decoding it again.
    fn store_op(&mut self, op: &AnyVerified) -> Result<(), ReplicaError> {
        let item = op_item(op)?;
        // REP-63: a scoped replica stores nothing it makes.
        self.require_full()?;
        self.admission.note_local_op(op);
        self.put_local(vec![item])
    }

    /// Stores items made on this device (already checked as they were built), recording what
    /// they name so that later items referring to them are admitted (ADM-n, REP-20..REP-22).
    fn store_items(&mut self, items: Vec<Item>) -> Result<(), ReplicaError> {
        // REP-63: a scoped replica stores nothing it makes.
        self.require_full()?;
        for item in &items {
            self.admission.note_local(item);
            self.index_ciphertext(item);
        }
        self.put_local(items)
    }

    /// Stores items made on this device whose names its caller has recorded (after
    /// [`Replica::require_full`]), announcing the new ones (SYNC-86). KEYS-11: the secrets of
    /// every document a key-agreement op among them belongs to are kept first.
    fn put_local(&mut self, items: Vec<Item>) -> Result<(), ReplicaError> {
        if let Some(keeper) = &mut self.keeper {
            let documents: BTreeSet<DocumentId> = items
                .iter()
                .filter(|i| i.kind() == ItemKind::Cgka)
                .map(|i| DocumentId(i.subject().0))
                .collect();
            let secrets: Vec<_> = documents
                .into_iter()
                .filter_map(|d| Some((d, self.cgkas.get(&d)?.export_secrets())))
                .collect();
            if !secrets.is_empty() {
                keeper.keep(secrets).map_err(ReplicaError::KeepSecrets)?;
            }
        }
        let fresh = self.store.put(&items)?;
        if let Some(outbox) = &self.outbox {
            let new: Vec<Item> = items
                .into_iter()
                .zip(fresh)
                .filter_map(|(item, is_new)| is_new.then_some(item))
                .collect();
            outbox.announce(&new);
        }
        Ok(())
    }

    /// KEYS-11: from now on, hands `keeper` a document's key-agreement secrets before storing
    /// a key-agreement op made on this device there. The secrets held before (replayed, or
    /// imported from the keeper's own store) are not written again. Without a keeper the
    /// secrets are the caller's to save ([`Replica::cgka_secrets`]).
    pub fn keep_secrets_with(&mut self, keeper: impl SecretKeeper + 'static) {
        self.keeper = Some(Box::new(keeper));
    }

    /// SYNC-86: announces every item this replica stores locally from now on (writes, grants,
    /// revocations, key agreement, entry points, cards) through `outbox`, so that a client's
    /// live links push it at once.
    pub fn connect_outbox(&mut self, outbox: impl Announce + 'static) {
        self.outbox = Some(Box::new(outbox));
    }

    /// SYNC-86: announces stored items by hash (pieces of a streamed change, which are
    /// stored before the change that lists them and announced after it).
    fn announce_stored(&self, hashes: &[Hash]) -> Result<(), ReplicaError> {
        if let Some(outbox) = &self.outbox {
            for hash in hashes {
                if let Some(item) = self.store.get(hash)? {
                    outbox.announce(std::slice::from_ref(&item));
                }
            }
        }
        Ok(())
    }

    /// REP-3 for every document this device can read: seat new readers, remove devices that
    /// lost access and re-key. Run after sharing changes and before syncing out, so that new
    /// members get keys without waiting for a write. Returns the documents it re-keyed.
    pub fn prepare_all(&mut self) -> Result<Vec<DocumentId>, ReplicaError> {
        let me = AgentId::Individual(self.device.id());
        let documents: Vec<DocumentId> = self.cgkas.keys().copied().collect();
        let mut changed = Vec::new();
        for document in documents {
            if !self.admission.checker.can(me, Access::Read, &document.0) {
                continue;
            }
            // INV-10: a device not seated yet waits for a seated reader, who holds the keys and
            // publishes an entry point (REP-5); seating itself would pre-empt that seat and
            // leave it unable to read the history. (Its first write still seats it.)
            let id = self.device.id();
            if self
                .cgkas
                .get(&document)
                .is_some_and(|c| !c.members().contains(&id))
            {
                continue;
            }
            let before = self.cgkas.get(&document).map(Cgka::op_count);
            self.prepare_synced(document)?;
            if self.cgkas.get(&document).map(Cgka::op_count) != before {
                changed.push(document);
            }
        }
        Ok(changed)
    }

    /// Validity of any op this replica holds.
    pub fn validity(&self, hash: &Hash) -> Option<Validity> {
        self.admission.checker.op_validity(hash)
    }

    /// Devices currently holding at least `level` on `subject`.
    pub fn devices_with(&self, subject: &PublicKey, level: Access) -> BTreeSet<IndividualId> {
        self.admission.checker.individuals_with(subject, level)
    }
}

/// The store item for a verified op.
pub fn op_item(op: &AnyVerified) -> Result<Item, ReplicaError> {
    let kind = match op {
        AnyVerified::Content(_) => ItemKind::Content,
        _ => ItemKind::Auth,
    };
    Ok(Item::of_verified(
        kind,
        SubjectId(op.subject()),
        op.as_bytes().to_vec(),
        op.hash(),
    )?)
}
