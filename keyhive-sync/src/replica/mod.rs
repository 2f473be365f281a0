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
mod error;
mod gate;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use keyhive_core::capability::{
    Access, AgentId, AnySigned, AnyVerified, Checker, Explanation, IngestOutcome, PeerTag,
    PendingLimits, Validity,
};
use keyhive_core::cgka::{Cgka, SignedCgkaOp};
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::signing::{PublicKey, SigningKey};
use keyhive_core::encoding::DecodeError;
use keyhive_core::identity::{ContactCard, Device, DocumentId, GroupId, IndividualId, SubjectKind};
use keyhive_core::signed::{Signed, Verified};

pub use authority::GraphAuthority;
pub use content::{ChangeEntry, ChangeStatus};
pub use directory::Directory;
pub use error::ReplicaError;
pub use gate::ReplicaGate;

use crate::item::{Item, ItemKind, SubjectId};
use crate::store::Store;

/// One device's local state over a [`Store`].
pub struct Replica<S: Store> {
    device: Device,
    store: S,
    checker: Checker,
    directory: Directory,
    cgkas: BTreeMap<DocumentId, Cgka>,
    /// Key-agreement ops received before their document's init.
    early_cgka: BTreeMap<DocumentId, Vec<SignedCgkaOp>>,
    /// `Hash::of_content` of a blob -> its item hash (content ops name payloads by the former).
    blobs: HashMap<Hash, Hash>,
    /// Items accepted from peers since opening (a progress measure for sync rounds).
    accepted: u64,
}

impl<S: Store> std::fmt::Debug for Replica<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("device", &self.device.id())
            .field("ops", &self.checker.len())
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
    /// is (re)published so that others can seat it in key agreements.
    pub fn open(device: Device, store: S) -> Result<Self, ReplicaError> {
        let mut replica = Replica {
            device,
            store,
            // The local store holds only ops this replica accepted before, so the pending limits
            // must not drop any of them while they are replayed in arbitrary order; they are
            // restored once the replay is done.
            checker: Checker::new(PendingLimits {
                per_peer: usize::MAX,
                per_subject: usize::MAX,
                total: usize::MAX,
            }),
            directory: Directory::default(),
            cgkas: BTreeMap::new(),
            early_cgka: BTreeMap::new(),
            blobs: HashMap::new(),
            accepted: 0,
        };
        replica.replay()?;
        // From here on ops come from peers: the pending set is bounded again (CAP-4).
        replica.checker.set_pending_limits(PendingLimits::default());
        let card = replica.device.contact_card().map_err(|e| {
            ReplicaError::UnknownSubject(format!("cannot sign own contact card: {e}"))
        })?;
        replica.accept_card(card)?;
        Ok(replica)
    }

    fn replay(&mut self) -> Result<(), ReplicaError> {
        let mut items = Vec::new();
        for subject in self.store.subjects()? {
            for hash in self.store.hashes(&subject)? {
                if let Some(item) = self.store.get(&hash)? {
                    items.push(item);
                }
            }
        }
        items.sort_by_key(|i| apply_rank(i.kind()));
        for item in &items {
            // Stored items were accepted once; one the current graph no longer authorises (a
            // key-agreement op by a since-revoked device) stays stored but is not applied.
            if let Err(e) = self.apply_item(PeerTag::LOCAL, item) {
                tracing::debug!(item = %item.hash(), error = %e, "stored item not applied on replay");
            }
        }
        self.refresh_cgkas();
        Ok(())
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
        &self.checker
    }

    /// Known contact cards.
    pub fn directory(&self) -> &Directory {
        &self.directory
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
                    checker: &self.checker,
                    directory: &self.directory,
                    document: document.0,
                };
                cgka.import_secrets(&s, &authority);
            }
        }
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
        self.store.put(std::slice::from_ref(&item))?;
        if self.directory.insert(card) {
            self.refresh_cgkas();
        }
        Ok(())
    }

    /// Creates a group (a person's devices, a team).
    pub fn create_group(&mut self) -> Result<GroupId, ReplicaError> {
        let genesis = self.checker.create_group(&self.device)?;
        self.store_op(&AnyVerified::Genesis(genesis.clone()))?;
        Ok(GroupId(genesis.issuer))
    }

    /// Creates a document (also used for folders, whose content is their metadata) and its key
    /// agreement with this device seated.
    pub fn create_document(&mut self) -> Result<DocumentId, ReplicaError> {
        // GEN-2: the genesis names the key agreement's init (CGKA-25).
        let created = self.checker.create_document(&self.device)?;
        let document = created.id();
        self.store_op(&AnyVerified::Genesis(created.genesis))?;
        let init = created.init;
        self.cgkas.insert(document, created.cgka);
        self.store_items(vec![Item::new(
            ItemKind::Cgka,
            SubjectId(document.0),
            init.as_bytes().to_vec(),
        )?])?;
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
            .checker
            .delegate(&self.device, subject, agent, access)?;
        self.store_op(&AnyVerified::Auth(op.clone()))?;
        self.refresh_cgkas();
        Ok(op.hash())
    }

    /// Revokes every delegation on `subject` naming `agent`.
    pub fn revoke(
        &mut self,
        subject: &PublicKey,
        agent: AgentId,
    ) -> Result<Vec<Hash>, ReplicaError> {
        let ops = self.checker.revoke_member(&self.device, subject, agent)?;
        for op in &ops {
            self.store_op(&AnyVerified::Auth(op.clone()))?;
        }
        self.refresh_cgkas();
        Ok(ops.iter().map(Verified::hash).collect())
    }

    /// Explains why `agent` does or does not hold `level` on `subject`.
    pub fn explain(&self, agent: AgentId, level: Access, subject: &PublicKey) -> Explanation {
        self.checker.explain(agent, level, subject)
    }

    /// Subjects this device can reach, with its level on each.
    pub fn reachable(&self) -> Vec<(PublicKey, Access, SubjectKind)> {
        let me = AgentId::Individual(self.device.id());
        let mut out: Vec<_> = self
            .checker
            .reachable(me)
            .iter()
            .filter_map(|(s, a)| self.checker.subject_info(s).map(|i| (*s, *a, i.kind)))
            .collect();
        out.sort();
        out
    }

    // ----- ingest -----

    /// Verifies, checks and stores an item received from `from` (REP-2).
    pub fn ingest(&mut self, from: PeerTag, item: &Item) -> Result<Ingested, ReplicaError> {
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
        Ok(outcome)
    }

    /// Ingests a batch (e.g. one sync round), storing accepted items in one transaction.
    pub fn ingest_all(
        &mut self,
        from: PeerTag,
        mut items: Vec<Item>,
    ) -> Result<Vec<ItemOutcome>, ReplicaError> {
        items.sort_by_key(|i| apply_rank(i.kind()));
        let mut accepted = Vec::new();
        let mut report = Vec::with_capacity(items.len());
        for item in items {
            if self.store.contains(&item.hash())? {
                report.push((item.hash(), Ok(Ingested::Duplicate)));
                continue;
            }
            let result = self.apply_item(from, &item);
            if matches!(result, Ok(Ingested::Stored)) {
                accepted.push(item.clone());
            }
            report.push((item.hash(), result));
        }
        self.store.put(&accepted)?;
        self.refresh_cgkas();
        Ok(report)
    }

    fn apply_item(&mut self, from: PeerTag, item: &Item) -> Result<Ingested, ReplicaError> {
        match item.kind() {
            ItemKind::Auth => self.apply_auth(from, item),
            ItemKind::Content => self.apply_auth(from, item),
            ItemKind::Cgka => self.apply_cgka(item),
            ItemKind::Blob => {
                self.blobs
                    .insert(Hash::of_content(item.envelope()), item.hash());
                Ok(Ingested::Stored)
            }
        }
    }

    fn apply_auth(&mut self, from: PeerTag, item: &Item) -> Result<Ingested, ReplicaError> {
        match AnySigned::decode(item.envelope()) {
            Ok(signed) => {
                if signed_subject(&signed) != item.subject().0 {
                    return Err(ReplicaError::Decode(DecodeError::InvalidStructure(
                        "item subject does not match the op",
                    )));
                }
                match self.checker.ingest_signed(from, signed)? {
                    IngestOutcome::Applied { released, .. } => {
                        self.store_released(&released)?;
                        Ok(Ingested::Stored)
                    }
                    IngestOutcome::Pending { .. } => Ok(Ingested::Waiting),
                    IngestOutcome::Duplicate { .. } => Ok(Ingested::Duplicate),
                    _ => Ok(Ingested::Waiting),
                }
            }
            Err(DecodeError::WrongTag { .. }) if item.kind() == ItemKind::Auth => {
                let card = Signed::<ContactCard>::decode(item.envelope())?.verify()?;
                if card.device != item.subject().0 {
                    return Err(ReplicaError::Decode(DecodeError::InvalidStructure(
                        "card item subject is not the card's device",
                    )));
                }
                self.directory.insert(card);
                Ok(Ingested::Stored)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn apply_cgka(&mut self, item: &Item) -> Result<Ingested, ReplicaError> {
        let op = SignedCgkaOp::decode(item.envelope())?;
        let document = DocumentId(item.subject().0);
        let is_init = matches!(
            op.unverified_payload().body,
            keyhive_core::cgka::CgkaBody::Init { .. }
        );
        let authority = GraphAuthority {
            checker: &self.checker,
            directory: &self.directory,
            document: document.0,
        };
        // CGKA-25: the only init is the one the held genesis names; any other is refused. Before
        // the genesis arrives an init waits with the other early ops.
        if let (true, Some(binding)) = (is_init, self.checker.key_agreement(&document)) {
            if let Some(cgka) = self.cgkas.get(&document) {
                return if cgka.init_hash() == op.hash() {
                    Ok(Ingested::Duplicate)
                } else {
                    Err(keyhive_core::cgka::ReceiveError::ForeignInit.into())
                };
            }
            let cgka = Cgka::from_init(&binding, op, Some(&self.device), &authority)?;
            self.cgkas.insert(document, cgka);
            for early in self.early_cgka.remove(&document).unwrap_or_default() {
                // One refused early op (e.g. a second init, CGKA-25) must not drop the rest.
                if let Err(e) = self.receive_cgka(document, early) {
                    tracing::debug!(%document, error = %e, "early key-agreement op refused");
                }
            }
            return Ok(Ingested::Stored);
        }
        if !self.cgkas.contains_key(&document) {
            let total: usize = self.early_cgka.values().map(Vec::len).sum();
            let queue = self.early_cgka.entry(document).or_default();
            if queue.len() >= MAX_EARLY_CGKA || total >= MAX_EARLY_CGKA_TOTAL {
                return Err(ReplicaError::UnknownSubject(format!(
                    "{document}: too many key-agreement ops before the document's init"
                )));
            }
            queue.push(op);
            return Ok(Ingested::Waiting);
        }
        self.receive_cgka(document, op)
    }

    /// The document's key agreement, the authority that checks its ops, and this device's
    /// signing key (split borrows of the replica's fields).
    fn cgka_with_authority(
        &mut self,
        document: DocumentId,
    ) -> Result<(&mut Cgka, GraphAuthority<'_>, &SigningKey), ReplicaError> {
        let Replica {
            cgkas,
            checker,
            directory,
            device,
            ..
        } = self;
        let cgka = cgkas
            .get_mut(&document)
            .ok_or_else(|| ReplicaError::UnknownSubject(document.to_string()))?;
        let authority = GraphAuthority {
            checker,
            directory,
            document: document.0,
        };
        Ok((cgka, authority, device.signing_key()))
    }

    fn receive_cgka(
        &mut self,
        document: DocumentId,
        op: SignedCgkaOp,
    ) -> Result<Ingested, ReplicaError> {
        let (cgka, authority, _) = self.cgka_with_authority(document)?;
        // Only applied ops are stored: one still waiting for predecessors is offered again by
        // the next sync round and stored once it applies (REP-2).
        match cgka.receive(op, &authority)? {
            keyhive_core::cgka::Received::Applied => Ok(Ingested::Stored),
            keyhive_core::cgka::Received::Duplicate => Ok(Ingested::Duplicate),
            _ => Ok(Ingested::Waiting),
        }
    }

    /// Stores ops that the checker released from its pending set (they were parked, not
    /// stored, when they arrived).
    fn store_released(&mut self, released: &[Hash]) -> Result<(), ReplicaError> {
        let items = released
            .iter()
            .filter_map(|h| self.checker.op(h))
            .map(op_item)
            .collect::<Result<Vec<_>, _>>()?;
        if !items.is_empty() {
            self.store.put(&items)?;
        }
        Ok(())
    }

    /// REP-3 bookkeeping: replays every key agreement under the current capability graph.
    fn refresh_cgkas(&mut self) {
        for (document, cgka) in &mut self.cgkas {
            let authority = GraphAuthority {
                checker: &self.checker,
                directory: &self.directory,
                document: document.0,
            };
            cgka.refresh(&authority);
        }
    }

    fn store_op(&mut self, op: &AnyVerified) -> Result<(), ReplicaError> {
        self.store_items(vec![op_item(op)?])
    }

    fn store_items(&mut self, items: Vec<Item>) -> Result<(), ReplicaError> {
        for item in &items {
            if item.kind() == ItemKind::Blob {
                self.blobs
                    .insert(Hash::of_content(item.envelope()), item.hash());
            }
        }
        self.store.put(&items)?;
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
            if !self.checker.can(me, Access::Read, &document.0) {
                continue;
            }
            let before = self.cgkas.get(&document).map(Cgka::op_count);
            self.prepare(document)?;
            if self.cgkas.get(&document).map(Cgka::op_count) != before {
                changed.push(document);
            }
        }
        Ok(changed)
    }

    /// Validity of any op this replica holds.
    pub fn validity(&self, hash: &Hash) -> Option<Validity> {
        self.checker.op_validity(hash)
    }

    /// Devices currently holding at least `level` on `subject`.
    pub fn devices_with(&self, subject: &PublicKey, level: Access) -> BTreeSet<IndividualId> {
        self.checker.individuals_with(subject, level)
    }
}

/// Items are applied in dependency order: the capability graph first (auth and content ops
/// share one causal DAG: a delegation may follow content it saw), then key agreement (whose
/// ops are authorised by that graph), then blobs.
fn apply_rank(kind: ItemKind) -> u8 {
    match kind {
        ItemKind::Auth | ItemKind::Content => 0,
        ItemKind::Cgka => 1,
        ItemKind::Blob => 2,
    }
}

/// Most key-agreement ops held for a document whose init has not arrived.
const MAX_EARLY_CGKA: usize = 4096;
/// Most such ops held over all documents, so unknown documents cannot fill memory.
const MAX_EARLY_CGKA_TOTAL: usize = 16_384;

fn signed_subject(signed: &AnySigned) -> PublicKey {
    match signed {
        AnySigned::Genesis(s) => s.unverified_payload().issuer,
        AnySigned::Auth(s) => s.unverified_payload().body.subject,
        AnySigned::Content(s) => s.unverified_payload().body.document.0,
    }
}

/// The store item for a verified op.
pub fn op_item(op: &AnyVerified) -> Result<Item, ReplicaError> {
    let kind = match op {
        AnyVerified::Content(_) => ItemKind::Content,
        _ => ItemKind::Auth,
    };
    Ok(Item::new(
        kind,
        SubjectId(op.subject()),
        op.as_bytes().to_vec(),
    )?)
}
