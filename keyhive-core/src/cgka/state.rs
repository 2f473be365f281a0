//! A document's CGKA: the op DAG, its deterministic replay into a [`Tree`], and the local
//! device's secrets (`specs/cgka.md` §4–§6, CGKA-12..CGKA-22, CGKA-26).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::crypto::hash::Hash;
use crate::crypto::prekey::{PrekeyPublic, PrekeySecret};
use crate::crypto::secret::SymmetricKey;
use crate::crypto::signing::SigningKey;
use crate::encoding::DecodeError;
use crate::identity::{Device, DocumentId, IndividualId};
use crate::signed::{KeyCache, Op, OpBody, SignError, Verified, VerifyError};

use super::authority::CgkaAuthority;
use super::binding::{InitBinding, InitBindingError};
use super::op::{
    CgkaBody, CgkaOp, FILL_MAX_BYTES, FillNodes, SignedCgkaOp, UpdatePath, check_body,
};
use super::path::{self, PathError};
use super::tree::{Entry, Tree};

/// Most ops held while waiting for missing predecessors (CGKA-21).
pub const MAX_PENDING: usize = 4096;
/// Most unauthorised ops held in quarantine (CGKA-20).
pub const MAX_QUARANTINE: usize = 1024;

/// What happened to a received op.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received {
    /// Applied (and any pending ops it unblocked).
    Applied,
    /// Already known.
    Duplicate,
    /// Waiting for these predecessors.
    Pending(Vec<Hash>),
}

/// Why a received op was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The op breaks a structural rule (CGKA-3, CGKA-4).
    #[error("malformed cgka op")]
    Structure(#[from] DecodeError),
    /// The signature does not verify.
    #[error("cgka op signature invalid")]
    Signature(#[from] VerifyError),
    /// An init other than the one this CGKA started from: the document's genesis names
    /// exactly one (CGKA-2, CGKA-25).
    #[error("cgka init op is not the one this document's genesis names")]
    ForeignInit,
    /// The capability graph does not authorise this op (CGKA-16..18).
    #[error("cgka op not authorised by the capability graph")]
    Unauthorized,
    /// A remove of a device that is not seated in the tree the op was made against (its
    /// causal past): it would change nothing (CGKA-26).
    #[error("cgka remove names {0}, which is not seated in the tree the op was made against")]
    NotSeated(IndividualId),
    /// Too many ops are waiting for predecessors (CGKA-21).
    #[error("too many cgka ops waiting for predecessors")]
    PendingFull,
}

/// Why a local op could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// This CGKA has no local device, or the signing key is not the local device's.
    #[error("the signing key is not this cgka's local device")]
    NotOwner,
    /// The local device has no leaf in the tree.
    #[error("the local device is not a member of this cgka")]
    NotMember,
    /// The capability graph does not authorise the op.
    #[error("op not authorised by the capability graph")]
    Unauthorized,
    /// A remove of a device that is not seated: it would change nothing (CGKA-26).
    #[error("{0} is not seated in this cgka")]
    NotSeated(IndividualId),
    /// Signing failed.
    #[error("signing failed")]
    Sign(#[from] SignError),
    /// Building the path failed (a low-order key in the tree).
    #[error("building the update path failed")]
    Path(#[from] PathError),
}

/// Why a CGKA could not be started from a genesis op.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The creating device has no prekey to seat itself with.
    #[error("the creating device has no prekey")]
    NoPrekey,
    /// The op is not the init the document's genesis names (CGKA-25).
    #[error("not this document's cgka init")]
    Binding(#[source] InitBindingError),
    /// Structure or signature check failed.
    #[error("invalid init op")]
    Receive(#[source] ReceiveError),
    /// The capability graph does not authorise the creator.
    #[error("cgka init not authorised")]
    Unauthorized,
    /// Signing failed.
    #[error("signing failed")]
    Sign(#[from] SignError),
}

/// Which already-replayed ops are in the causal past of the op being replayed.
enum Past {
    /// Every op replayed so far.
    All,
    /// Every op replayed so far except these (the ones concurrent with it).
    AllExcept(HashSet<Hash>),
}

impl Past {
    /// Whether `hash`, an op replayed before this one, is in its causal past.
    fn contains(&self, hash: &Hash) -> bool {
        match self {
            Past::All => true,
            Past::AllExcept(concurrent) => !concurrent.contains(hash),
        }
    }
}

/// The local device's secrets in one CGKA, for the key store (KEYS-2).
#[derive(Clone, Default)]
pub struct CgkaSecrets {
    /// Node and leaf secret keys, as raw X25519 scalars.
    pub node_keys: Vec<Zeroizing<[u8; 32]>>,
    /// Epoch root secrets by update op.
    pub epochs: Vec<(Hash, SymmetricKey)>,
}

impl core::fmt::Debug for CgkaSecrets {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "CgkaSecrets({} node keys, {} epochs, <redacted>)",
            self.node_keys.len(),
            self.epochs.len()
        )
    }
}

/// Decompressed issuer keys, so repeated issuers skip point decompression. A clone starts
/// empty (it is only a cache).
#[derive(Default, Debug)]
struct IssuerKeys(KeyCache);

impl Clone for IssuerKeys {
    fn clone(&self) -> Self {
        IssuerKeys::default()
    }
}

/// One document's CGKA as seen by one replica.
#[derive(Clone)]
pub struct Cgka {
    document: DocumentId,
    init: Hash,
    creator: IndividualId,
    owner: Option<IndividualId>,
    ops: HashMap<Hash, Arc<CgkaOp>>,
    order: Vec<Hash>,
    position: HashMap<Hash, usize>,
    heads: BTreeSet<Hash>,
    structural: Vec<Hash>,
    /// Keys superseded during replay: where they were and which update replaced them.
    superseded: HashMap<PrekeyPublic, (u32, Hash)>,
    /// The same keys by node, so a membership change can forget those on its path.
    superseded_at: HashMap<u32, Vec<PrekeyPublic>>,
    /// CGKA-29: for each tainted key written during replay, the devices that may know its
    /// secret without being seated below its node (absent: none).
    taint: HashMap<PrekeyPublic, Vec<IndividualId>>,
    /// The same, by device, so that removing a device finds the keys it may know (CGKA-30).
    tainted_by: HashMap<IndividualId, Vec<PrekeyPublic>>,
    tree: Tree,
    pending: BTreeMap<Hash, Arc<CgkaOp>>,
    waiting: HashMap<Hash, Vec<Hash>>,
    quarantine: BTreeMap<Hash, Arc<CgkaOp>>,
    secrets: HashMap<PrekeyPublic, PrekeySecret>,
    epochs: HashMap<Hash, SymmetricKey>,
    bad_paths: BTreeSet<Hash>,
    issuer_keys: IssuerKeys,
    /// CGKA-32: the authority's answer for every add and remove as the tree applied it.
    verdicts: HashMap<Hash, bool>,
    /// CGKA-32: the answers a refresh asks again while the authority's allowed-adds stamp
    /// stands: every remove, and every add that was refused.
    recheck: HashSet<Hash>,
    /// CGKA-32: the authority's allowed-adds stamp when every add's answer was last taken.
    adds_stamp: Option<[u64; 2]>,
    /// Bumped whenever the tree or the epoch secrets may have changed.
    generation: u64,
}

impl core::fmt::Debug for Cgka {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Cgka")
            .field("document", &self.document)
            .field("owner", &self.owner)
            .field("ops", &self.ops.len())
            .field("members", &self.tree.member_count())
            .field("secrets", &"<redacted>")
            .finish()
    }
}

impl Cgka {
    /// Creates a document's CGKA with `creator` at leaf 0 (CGKA-2). Returns the CGKA and the
    /// signed init op to publish.
    pub fn create(document: DocumentId, creator: &Device) -> Result<(Self, CgkaOp), InitError> {
        let prekey = creator
            .prekeys()
            .first()
            .map(PrekeySecret::public)
            .ok_or(InitError::NoPrekey)?;
        let op = Verified::sign(
            Op::new(
                creator.signing_key().public_key(),
                Vec::new(),
                CgkaBody::Init { document, prekey },
            ),
            creator.signing_key(),
        )?;
        let cgka = Self::start(document, Arc::new(op.clone()), Some(creator));
        Ok((cgka, op))
    }

    /// Starts a replica from a received init op, which must be the one the document's
    /// genesis names, issued by its creator (`binding`, CGKA-25). `owner` is the local device,
    /// if it is to hold secrets (a relay passes `None`).
    pub fn from_init(
        binding: &InitBinding,
        init: SignedCgkaOp,
        owner: Option<&Device>,
        authority: &dyn CgkaAuthority,
    ) -> Result<Self, InitError> {
        check_body(init.unverified_payload())
            .map_err(|e| InitError::Receive(ReceiveError::Structure(e)))?;
        let init = init
            .verify()
            .map_err(|e| InitError::Receive(ReceiveError::Signature(e)))?;
        binding.check(&init).map_err(InitError::Binding)?;
        let CgkaBody::Init { prekey, .. } = &init.body else {
            return Err(InitError::Binding(InitBindingError::NotInit));
        };
        let creator = IndividualId(init.issuer);
        if !authority.may_add(&creator, &creator, prekey) {
            return Err(InitError::Unauthorized);
        }
        Ok(Self::start(binding.document, Arc::new(init), owner))
    }

    fn start(document: DocumentId, init: Arc<CgkaOp>, owner: Option<&Device>) -> Self {
        let hash = init.hash();
        let mut cgka = Cgka {
            document,
            init: hash,
            creator: IndividualId(init.issuer),
            owner: owner.map(Device::id),
            ops: HashMap::new(),
            order: Vec::new(),
            position: HashMap::new(),
            heads: BTreeSet::new(),
            structural: Vec::new(),
            superseded: HashMap::new(),
            superseded_at: HashMap::new(),
            taint: HashMap::new(),
            tainted_by: HashMap::new(),
            tree: Tree::default(),
            pending: BTreeMap::new(),
            waiting: HashMap::new(),
            quarantine: BTreeMap::new(),
            secrets: HashMap::new(),
            epochs: HashMap::new(),
            bad_paths: BTreeSet::new(),
            issuer_keys: IssuerKeys::default(),
            verdicts: HashMap::new(),
            recheck: HashSet::new(),
            adds_stamp: None,
            generation: 0,
        };
        if let Some(device) = owner {
            for prekey in device.prekeys() {
                cgka.secrets.insert(prekey.public(), prekey.clone());
            }
        }
        cgka.ops.insert(hash, init);
        cgka.order.push(hash);
        cgka.position.insert(hash, 0);
        cgka.apply(hash, &AllowAll);
        cgka
    }

    /// The document this CGKA belongs to.
    pub fn document(&self) -> DocumentId {
        self.document
    }

    /// The hash of the init op.
    pub fn init_hash(&self) -> Hash {
        self.init
    }

    /// The binding this CGKA was started from: its document, the init's issuer (the
    /// document's creator) and the init's hash, as the document's genesis names them (CGKA-25).
    pub fn binding(&self) -> InitBinding {
        InitBinding {
            document: self.document,
            creator: self.creator,
            init: self.init,
        }
    }

    /// The local device, if any.
    pub fn owner(&self) -> Option<IndividualId> {
        self.owner
    }

    /// The materialised public tree.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Current members (seated devices).
    pub fn members(&self) -> BTreeSet<IndividualId> {
        self.tree.members().keys().copied().collect()
    }

    /// Heads of the op DAG.
    pub fn heads(&self) -> &BTreeSet<Hash> {
        &self.heads
    }

    /// Every applied op, in replay order (CGKA-12).
    pub fn ops_in_order(&self) -> impl Iterator<Item = &CgkaOp> {
        self.order
            .iter()
            .filter_map(|h| self.ops.get(h).map(|op| op.as_ref()))
    }

    /// Number of applied ops.
    pub fn op_count(&self) -> usize {
        self.order.len()
    }

    /// Total bytes of every applied op's envelope (the CGKA history).
    pub fn history_bytes(&self) -> usize {
        self.ops.values().map(|op| op.as_bytes().len()).sum()
    }

    /// Updates whose path this replica could not read because it was malformed (CGKA-11).
    pub fn bad_paths(&self) -> &BTreeSet<Hash> {
        &self.bad_paths
    }

    /// The agreed epoch: the update whose key sits alone at the root, and its root secret if
    /// this device could derive it (CGKA-19).
    pub fn current_epoch(&self) -> Option<(Hash, &SymmetricKey)> {
        match self.tree.entries(self.tree.root()) {
            [only] => self.epochs.get(&only.op).map(|key| (only.op, key)),
            _ => None,
        }
    }

    /// True when this device may not encrypt until it issues an update: the root is blank
    /// (after an add or remove, including a revocation), in conflict, or unknown (CGKA-19).
    pub fn must_update_before_encrypt(&self) -> bool {
        self.current_epoch().is_none()
    }

    /// How many epoch secrets this device has learned (grows as updates arrive); readers use
    /// it to tell when changes that did not open before may open now.
    pub fn epoch_count(&self) -> usize {
        self.epochs.len()
    }

    /// The root secret of a past or present epoch this device learned (CGKA-10).
    pub fn epoch_secret(&self, epoch: &Hash) -> Option<&SymmetricKey> {
        self.epochs.get(epoch)
    }

    /// A counter that changes whenever the tree or this device's epoch secrets may have
    /// changed, so that callers can cache what they derive from them (membership plans).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Receives an op from the network or disk (CGKA-20, CGKA-21).
    pub fn receive(
        &mut self,
        op: SignedCgkaOp,
        authority: &dyn CgkaAuthority,
    ) -> Result<Received, ReceiveError> {
        let hash = op.hash();
        if self.ops.contains_key(&hash) {
            return Ok(Received::Duplicate);
        }
        // Still parked: not applied yet, so not to be stored yet either (CGKA-21, CGKA-26).
        if let Some(parked) = self.pending.get(&hash) {
            return Ok(Received::Pending(self.missing(parked)));
        }
        check_body(op.unverified_payload())?;
        let op = Arc::new(op.verify_cached(&mut self.issuer_keys.0)?);
        if matches!(op.body, CgkaBody::Init { .. }) {
            return Err(ReceiveError::ForeignInit);
        }
        let refusal = if !authorised(&op, authority) {
            Some(ReceiveError::Unauthorized)
        } else if self.missing(&op).is_empty() {
            self.removes_nobody(&op, authority)
                .map(ReceiveError::NotSeated)
        } else {
            // CGKA-26 is checked once the predecessors are here (`release`).
            None
        };
        if let Some(refusal) = refusal {
            self.refuse(op, authority)?;
            return Err(refusal);
        }
        self.quarantine.remove(&hash);
        self.admit(op, authority)?;
        if self.ops.contains_key(&hash) {
            return Ok(Received::Applied);
        }
        let missing = self
            .pending
            .get(&hash)
            .map(|op| self.missing(op))
            .unwrap_or_default();
        Ok(Received::Pending(missing))
    }

    /// Holds a refused op (CGKA-20): in quarantine, or in the DAG at once if a parked op
    /// already names it (replay then judges it like any other op).
    fn refuse(
        &mut self,
        op: Arc<CgkaOp>,
        authority: &dyn CgkaAuthority,
    ) -> Result<(), ReceiveError> {
        let hash = op.hash();
        if self.waiting.contains_key(&hash) {
            return self.admit(op, authority);
        }
        self.hold_in_quarantine(hash, op);
        Ok(())
    }

    /// Holds a refused op in the bounded quarantine, evicting the oldest (CGKA-20).
    fn hold_in_quarantine(&mut self, hash: Hash, op: Arc<CgkaOp>) {
        if self.quarantine.len() >= MAX_QUARANTINE {
            self.quarantine.pop_first();
        }
        self.quarantine.insert(hash, op);
    }

    /// CGKA-26: for a remove whose predecessors are all applied, the removed device if it is
    /// not seated in the tree the op was made against, i.e. after replaying (CGKA-12) only the
    /// op's causal past under `authority`. `None` for any other op. The answer depends on the
    /// op and its past alone, so every replica gives the same one whatever else it holds.
    fn removes_nobody(&self, op: &CgkaOp, authority: &dyn CgkaAuthority) -> Option<IndividualId> {
        let CgkaBody::Remove { device } = &op.body else {
            return None;
        };
        (!self.seated_after(&op.predecessors, device, authority)).then_some(*device)
    }

    /// Whether `device` is seated after replaying the causal past of `predecessors` (all
    /// applied). When they include every head that past is everything applied, so the tree
    /// answers. Otherwise the past is walked and its membership ops about `device` are folded
    /// in replay order (the replay order restricted to a causally closed set is that set's own
    /// replay order): an authorised init or add seats, an authorised remove unseats.
    fn seated_after(
        &self,
        predecessors: &[Hash],
        device: &IndividualId,
        authority: &dyn CgkaAuthority,
    ) -> bool {
        if self
            .heads
            .iter()
            .all(|h| predecessors.binary_search(h).is_ok())
        {
            return self.tree.slot_of(device).is_some();
        }
        let mut past = HashSet::new();
        let mut stack = predecessors.to_vec();
        while let Some(h) = stack.pop() {
            if past.insert(h)
                && let Some(op) = self.ops.get(&h)
            {
                stack.extend(op.predecessors.iter().copied());
            }
        }
        let mut seated = false;
        for op in self
            .order
            .iter()
            .filter(|h| past.contains(*h))
            .filter_map(|h| self.ops.get(h))
        {
            let issuer = IndividualId(op.issuer);
            match &op.body {
                CgkaBody::Init { .. } if issuer == *device => seated = true,
                CgkaBody::Add { device: d, prekey }
                    if d == device && authority.may_add(&issuer, d, prekey) =>
                {
                    seated = true;
                }
                CgkaBody::Remove { device: d }
                    if d == device && authority.may_remove(&issuer, d) =>
                {
                    seated = false;
                }
                _ => {}
            }
        }
        seated
    }

    fn missing(&self, op: &CgkaOp) -> Vec<Hash> {
        op.predecessors
            .iter()
            .filter(|p| !self.ops.contains_key(p))
            .copied()
            .collect()
    }

    /// Applies `op` if its predecessors are present, else parks it (CGKA-21). A quarantined op
    /// that a parked op names is admitted too (it stays subject to the replay-time check,
    /// CGKA-20). Ops waiting on a predecessor are indexed by it, so each arrival only looks at
    /// the ops it unblocks.
    fn admit(
        &mut self,
        op: Arc<CgkaOp>,
        authority: &dyn CgkaAuthority,
    ) -> Result<(), ReceiveError> {
        let mut work = vec![op];
        while let Some(op) = work.pop() {
            let hash = op.hash();
            if self.ops.contains_key(&hash) || self.pending.contains_key(&hash) {
                continue;
            }
            let missing = self.missing(&op);
            if missing.is_empty() {
                self.insert(op, authority);
                self.release(hash, authority);
                continue;
            }
            if self.pending.len() >= MAX_PENDING {
                return Err(ReceiveError::PendingFull);
            }
            for m in &missing {
                self.waiting.entry(*m).or_default().push(hash);
            }
            self.pending.insert(hash, op);
            for m in missing {
                if let Some(q) = self.quarantine.remove(&m) {
                    work.push(q);
                }
            }
        }
        Ok(())
    }

    /// Applies the parked ops that `arrived` unblocks, transitively.
    fn release(&mut self, arrived: Hash, authority: &dyn CgkaAuthority) {
        let mut stack = vec![arrived];
        while let Some(h) = stack.pop() {
            for w in self.waiting.remove(&h).unwrap_or_default() {
                let ready = self
                    .pending
                    .get(&w)
                    .is_some_and(|op| self.missing(op).is_empty());
                if ready && let Some(op) = self.pending.remove(&w) {
                    // CGKA-26: a parked remove that removes nobody goes to quarantine unless
                    // a parked op already names it (as `receive` does once it is ready).
                    if self.removes_nobody(&op, authority).is_some()
                        && !self.waiting.contains_key(&w)
                    {
                        self.hold_in_quarantine(w, op);
                        continue;
                    }
                    self.insert(op, authority);
                    stack.push(w);
                }
            }
        }
    }

    fn insert(&mut self, op: Arc<CgkaOp>, authority: &dyn CgkaAuthority) {
        let hash = op.hash();
        let appendable = self
            .heads
            .iter()
            .all(|h| op.predecessors.binary_search(h).is_ok())
            || {
                let last = op
                    .predecessors
                    .iter()
                    .filter_map(|p| self.position.get(p))
                    .max()
                    .copied()
                    .unwrap_or(0);
                self.order[last + 1..].iter().all(|h| *h < hash)
            };
        self.ops.insert(hash, op);
        if appendable {
            self.position.insert(hash, self.order.len());
            self.order.push(hash);
            self.apply(hash, authority);
        } else {
            self.rebuild(authority);
        }
    }

    /// Makes the tree reflect `authority` (CGKA-12, CGKA-20, CGKA-32). Call whenever the
    /// capability graph changes.
    ///
    /// Replay is a function of the ops, their order and the authority's answer on each add and
    /// remove (updates and fills ask nothing), so this replays from scratch only when one of
    /// those answers changed since the tree applied it. It asks again every remove and every
    /// refused add; the adds it allowed only when the authority gives no allowed-adds stamp
    /// or a different one than when they were last asked
    /// ([`CgkaAuthority::allowed_adds_stamp`]). A revocation through the device API thus costs
    /// one question per remove and per refused add, not a replay of the whole history.
    pub fn refresh(&mut self, authority: &dyn CgkaAuthority) {
        if self.answers_changed(authority) {
            self.rebuild(authority);
        }
    }

    /// CGKA-32: whether `authority` now answers some add or remove otherwise than the tree
    /// applied it.
    fn answers_changed(&mut self, authority: &dyn CgkaAuthority) -> bool {
        let differs = |hash: &Hash| {
            self.ops
                .get(hash)
                .is_some_and(|op| verdict_of(op, authority) != self.verdicts.get(hash).copied())
        };
        let stamp = authority.allowed_adds_stamp();
        if stamp.is_some() && stamp == self.adds_stamp {
            return self.recheck.iter().any(differs);
        }
        let changed = self.verdicts.keys().any(differs);
        if !changed {
            self.adds_stamp = stamp;
        }
        changed
    }

    /// Replays every op from scratch (what [`Cgka::refresh`] does when an answer changed);
    /// tests compare it with the refresh.
    #[cfg(test)]
    pub(crate) fn replay_from_scratch(&mut self, authority: &dyn CgkaAuthority) {
        self.rebuild(authority);
    }

    fn rebuild(&mut self, authority: &dyn CgkaAuthority) {
        self.verdicts.clear();
        self.recheck.clear();
        self.adds_stamp = authority.allowed_adds_stamp();
        self.generation += 1;
        self.order = topological_order(&self.ops);
        self.position = self
            .order
            .iter()
            .enumerate()
            .map(|(i, h)| (*h, i))
            .collect();
        self.tree = Tree::default();
        self.heads.clear();
        self.structural.clear();
        self.superseded.clear();
        self.superseded_at.clear();
        self.taint.clear();
        self.tainted_by.clear();
        let order = self.order.clone();
        for hash in order {
            if hash == self.init {
                self.apply(hash, &AllowAll);
            } else {
                self.apply(hash, authority);
            }
        }
    }

    /// The replayed ops that are not in `op`'s causal past, found by walking back from the
    /// current heads and from `op`'s predecessors in descending replay position, marking what
    /// each reaches, and stopping once every open path is known to lead into `op`'s past.
    /// Cost: the part of the DAG between them, not the whole history.
    fn concurrent_with(&self, op: &CgkaOp) -> HashSet<Hash> {
        const FROM_HEADS: u8 = 1;
        const IN_PAST: u8 = 2;
        let mut flags: HashMap<Hash, u8> = HashMap::new();
        let mut queue: BinaryHeap<(usize, Hash)> = BinaryHeap::new();
        let mut open = 0usize; // queued nodes not (yet) known to be in the past
        let mark = |hash: Hash,
                    flag: u8,
                    flags: &mut HashMap<Hash, u8>,
                    queue: &mut BinaryHeap<(usize, Hash)>,
                    open: &mut usize| {
            let Some(&pos) = self.position.get(&hash) else {
                return;
            };
            match flags.get_mut(&hash) {
                Some(existing) => {
                    if *existing & IN_PAST == 0 && flag & IN_PAST != 0 {
                        *open -= 1;
                    }
                    *existing |= flag;
                }
                None => {
                    flags.insert(hash, flag);
                    queue.push((pos, hash));
                    if flag & IN_PAST == 0 {
                        *open += 1;
                    }
                }
            }
        };
        for p in &op.predecessors {
            mark(*p, IN_PAST, &mut flags, &mut queue, &mut open);
        }
        for h in &self.heads {
            mark(*h, FROM_HEADS, &mut flags, &mut queue, &mut open);
        }
        let mut concurrent = HashSet::new();
        while open > 0 {
            let Some((_, hash)) = queue.pop() else {
                break;
            };
            let flag = flags.get(&hash).copied().unwrap_or(0);
            if flag & IN_PAST == 0 {
                open -= 1;
                concurrent.insert(hash);
            }
            if let Some(node) = self.ops.get(&hash) {
                for parent in &node.predecessors {
                    mark(*parent, flag, &mut flags, &mut queue, &mut open);
                }
            }
        }
        concurrent
    }

    /// Test-only cross-check of [`Cgka::concurrent_with`] against a full ancestor walk.
    #[cfg(test)]
    fn check_concurrent(&self, op: &CgkaOp, concurrent: &HashSet<Hash>) {
        let mut past = HashSet::new();
        let mut stack: Vec<Hash> = op.predecessors.clone();
        while let Some(h) = stack.pop() {
            if past.insert(h)
                && let Some(parent) = self.ops.get(&h)
            {
                stack.extend(parent.predecessors.iter().copied());
            }
        }
        let applied = &self.order[..self
            .order
            .iter()
            .position(|h| *h == op.hash())
            .unwrap_or(self.order.len())];
        let expected: HashSet<Hash> = applied
            .iter()
            .filter(|h| !past.contains(h))
            .copied()
            .collect();
        assert_eq!(
            &expected, concurrent,
            "concurrent_with disagrees with a full walk"
        );
    }

    /// Applies one op at the end of the replay (CGKA-12..CGKA-15).
    fn apply(&mut self, hash: Hash, authority: &dyn CgkaAuthority) {
        let Some(op) = self.ops.get(&hash).cloned() else {
            return;
        };
        let past = if self
            .heads
            .iter()
            .all(|h| op.predecessors.binary_search(h).is_ok())
        {
            Past::All
        } else {
            let concurrent = self.concurrent_with(&op);
            #[cfg(test)]
            self.check_concurrent(&op, &concurrent);
            Past::AllExcept(concurrent)
        };
        self.generation += 1;
        let verdict = verdict_of(&op, authority);
        if let Some(allowed) = verdict {
            // CGKA-32: an allowed add is asked again only when the allowed-adds stamp moves.
            self.verdicts.insert(hash, allowed);
            if allowed && matches!(op.body, CgkaBody::Add { .. }) {
                self.recheck.remove(&hash);
            } else {
                self.recheck.insert(hash);
            }
        }
        let issuer = IndividualId(op.issuer);
        match &op.body {
            CgkaBody::Init { prekey, .. } => {
                let entry = Entry {
                    op: hash,
                    public: *prekey,
                };
                if self.tree.seat(issuer, entry).is_some() {
                    self.structural.push(hash);
                }
            }
            CgkaBody::Add { device, prekey } => {
                if verdict == Some(true) {
                    let entry = Entry {
                        op: hash,
                        public: *prekey,
                    };
                    if let Some(slot) = self.tree.seat(*device, entry) {
                        self.structural_change(hash, &past, slot);
                    }
                }
            }
            CgkaBody::Remove { device } => {
                if verdict == Some(true)
                    && let Some(slot) = self.tree.unseat(device)
                {
                    self.structural_change(hash, &past, slot);
                    self.blank_tainted(device);
                }
            }
            CgkaBody::Update(update) => self.apply_update(hash, issuer, update, &past),
            CgkaBody::Fill(fill) => self.apply_fill(hash, issuer, fill, &past),
        }
        for p in &op.predecessors {
            self.heads.remove(p);
        }
        self.heads.insert(hash);
    }

    /// CGKA-12: a membership change invalidates every inner key written concurrently with it.
    /// Keys superseded on the changed slot's path are forgotten too: a device removed from
    /// below them may know them, so no later update may use them as targets (CGKA-15 (c)).
    fn structural_change(&mut self, hash: Hash, past: &Past, slot: u32) {
        if let Past::AllExcept(concurrent) = past {
            self.tree.retain_inner(|op| !concurrent.contains(op));
        }
        for node in self.tree.direct_path(slot) {
            for key in self.superseded_at.remove(&node).unwrap_or_default() {
                self.superseded.remove(&key);
            }
        }
        self.structural.push(hash);
    }

    /// CGKA-15: writes an update's keys; inner keys only if no membership change is
    /// concurrent with it.
    fn apply_update(&mut self, hash: Hash, issuer: IndividualId, update: &UpdatePath, past: &Past) {
        let Some(slot) = self.tree.slot_of(&issuer) else {
            return;
        };
        let nodes = self.tree.direct_path(slot);
        let Some(leaf) = update.nodes.first() else {
            return;
        };
        let superseded = |h: &Hash| past.contains(h);
        let inner_valid = self.no_concurrent_change(past)
            && nodes.len() == update.nodes.len()
            && self.wraps_stay_inside(&nodes, update, past);

        let mut dropped = self
            .tree
            .write(
                nodes[0],
                Entry {
                    op: hash,
                    public: leaf.public,
                },
                superseded,
            )
            .into_iter()
            .map(|e| (nodes[0], e))
            .collect::<Vec<_>>();
        if inner_valid {
            // CGKA-29: path node `j` is known to whoever holds a key its path secret was
            // wrapped for at a level below `j`.
            let mut taint: Vec<IndividualId> = Vec::new();
            for (j, (node, path_node)) in nodes.iter().zip(&update.nodes).enumerate().skip(1) {
                for w in &update.nodes[j - 1].wrapped {
                    if let Some(t) = self.taint.get(&w.recipient) {
                        taint.extend(t.iter().copied());
                    }
                }
                taint.sort_unstable();
                taint.dedup();
                let gone = self.tree.write(
                    *node,
                    Entry {
                        op: hash,
                        public: path_node.public,
                    },
                    superseded,
                );
                dropped.extend(gone.into_iter().map(|e| (*node, e)));
                self.set_taint(path_node.public, &taint);
            }
        }
        for (node, entry) in dropped {
            self.superseded.insert(entry.public, (node, hash));
            self.superseded_at
                .entry(node)
                .or_default()
                .push(entry.public);
        }
        if self.owner.is_some() && self.owner != Some(issuer) {
            self.learn(hash, update);
        }
    }

    /// CGKA-15 (a), CGKA-28: whether every membership change applied so far is in the past.
    fn no_concurrent_change(&self, past: &Past) -> bool {
        match past {
            Past::All => true,
            Past::AllExcept(concurrent) => !self.structural.iter().any(|h| concurrent.contains(h)),
        }
    }

    /// CGKA-29: records the devices that may know `key`'s secret without being seated below
    /// its node.
    fn set_taint(&mut self, key: PrekeyPublic, taint: &[IndividualId]) {
        if taint.is_empty() {
            return;
        }
        for device in taint {
            self.tainted_by.entry(*device).or_default().push(key);
        }
        self.taint.insert(key, taint.to_vec());
    }

    /// CGKA-30: an effective remove of `device` also drops every inner key it may know
    /// without being seated below it (the keys it filled and the keys wrapped for those), and
    /// forgets such keys among the superseded ones (CGKA-15 (c)).
    fn blank_tainted(&mut self, device: &IndividualId) {
        let Some(keys) = self.tainted_by.remove(device) else {
            return;
        };
        let keys: HashSet<PrekeyPublic> = keys.into_iter().collect();
        self.tree.drop_inner_keys(&keys);
        for key in &keys {
            self.superseded.remove(key);
        }
    }

    /// CGKA-28: writes a fill's nodes, in order, each only if it is a blank inner node off
    /// the issuer's path, its key is new, and every key it wraps for is held strictly below
    /// it (or was superseded there by an op concurrent with the fill); none if a membership
    /// change is concurrent with the fill.
    fn apply_fill(&mut self, hash: Hash, issuer: IndividualId, fill: &FillNodes, past: &Past) {
        let Some(slot) = self.tree.slot_of(&issuer) else {
            return;
        };
        if self.no_concurrent_change(past) {
            let own: HashSet<u32> = self.tree.direct_path(slot).into_iter().collect();
            for filled in &fill.nodes {
                let node = filled.node;
                let fits = self.tree.is_inner_below_root(node)
                    && !own.contains(&node)
                    && self.tree.entries(node).is_empty()
                    && self.tree.locate(&filled.public).is_none()
                    && !self.superseded.contains_key(&filled.public)
                    && filled
                        .wrapped
                        .iter()
                        .all(|w| self.below(&w.recipient, node, past));
                if !fits {
                    continue;
                }
                let mut taint = vec![issuer];
                for w in &filled.wrapped {
                    if let Some(t) = self.taint.get(&w.recipient) {
                        taint.extend(t.iter().copied());
                    }
                }
                taint.sort_unstable();
                taint.dedup();
                let entry = Entry {
                    op: hash,
                    public: filled.public,
                };
                if self.tree.fill(node, entry) {
                    self.set_taint(filled.public, &taint);
                }
            }
        }
        if self.owner.is_some() && self.owner != Some(issuer) {
            self.learn_fill(hash, fill);
        }
    }

    /// CGKA-28: `key` is held strictly below `node` in this replica's tree, or was superseded
    /// there by an op concurrent with the one being applied (and not forgotten since).
    fn below(&self, key: &PrekeyPublic, node: u32, past: &Past) -> bool {
        let strictly_below = |at: u32| at != node && super::tree::in_subtree(at, node);
        self.tree.locate(key).is_some_and(strictly_below)
            || self
                .superseded
                .get(key)
                .is_some_and(|(at, by)| strictly_below(*at) && !past.contains(by))
    }

    /// CGKA-31: learns the secret of every filled node wrapped for a key this device holds,
    /// in order (a node's secret opens its parent's wrap). A wrong secret marks the fill bad.
    fn learn_fill(&mut self, hash: Hash, fill: &FillNodes) {
        if self.bad_paths.contains(&hash) {
            return;
        }
        for filled in &fill.nodes {
            if self.secrets.contains_key(&filled.public) {
                continue;
            }
            let secrets = &self.secrets;
            match path::read_filled(&self.document, &fill.ephemeral, filled, |pk| {
                secrets.get(pk).cloned()
            }) {
                Ok(Some(key)) => {
                    self.secrets.insert(filled.public, key);
                }
                Ok(None) => {}
                Err(_) => {
                    self.bad_paths.insert(hash);
                    return;
                }
            }
        }
    }

    /// CGKA-15: every key the update wrapped a secret for at level `i` is a key now held at or
    /// below the sibling of path node `i` in this replica's tree, or one there that an update
    /// concurrent with this one superseded. So no device that is not seated here (e.g. one the
    /// author's capability view admitted and this one did not) can know the update's inner
    /// secrets.
    fn wraps_stay_inside(&self, nodes: &[u32], update: &UpdatePath, past: &Past) -> bool {
        nodes.iter().zip(&update.nodes).all(|(node, path_node)| {
            if path_node.wrapped.is_empty() {
                return true;
            }
            if *node == self.tree.root() {
                return false;
            }
            let sibling = super::tree::sibling(*node);
            path_node.wrapped.iter().all(|w| {
                self.tree
                    .locate(&w.recipient)
                    .is_some_and(|at| super::tree::in_subtree(at, sibling))
                    || self.superseded.get(&w.recipient).is_some_and(|(at, by)| {
                        super::tree::in_subtree(*at, sibling) && !past.contains(by)
                    })
            })
        })
    }

    /// CGKA-11: learns an update's path secrets if one is wrapped for a key this device holds.
    fn learn(&mut self, hash: Hash, update: &UpdatePath) {
        if self.epochs.contains_key(&hash) || self.bad_paths.contains(&hash) {
            return;
        }
        let secrets = &self.secrets;
        match path::read(&self.document, update, |pk| secrets.get(pk).cloned()) {
            Ok(Some(learned)) => {
                let first = update.nodes.len() - learned.node_keys.len();
                for (node, key) in update.nodes[first..].iter().zip(learned.node_keys) {
                    self.secrets.insert(node.public, key);
                }
                self.epochs
                    .insert(hash, path::epoch_root(&self.document, &learned.root_secret));
            }
            Ok(None) => {}
            Err(_) => {
                self.bad_paths.insert(hash);
            }
        }
    }

    /// The predecessors of a local op: the heads, at most `MAX_PREDECESSORS` of them (CGKA-4).
    /// With more heads (e.g. a flood of concurrent ops) each new op merges that many, so the
    /// head count still falls op by op.
    fn own_predecessors(&self) -> Vec<Hash> {
        self.heads
            .iter()
            .take(CgkaBody::MAX_PREDECESSORS)
            .copied()
            .collect()
    }

    fn sign_and_apply(
        &mut self,
        key: &SigningKey,
        body: CgkaBody,
        authority: &dyn CgkaAuthority,
    ) -> Result<CgkaOp, CreateError> {
        let op = Verified::sign(
            Op::new(key.public_key(), self.own_predecessors(), body),
            key,
        )?;
        self.insert(Arc::new(op.clone()), authority);
        Ok(op)
    }

    fn check_owner(&self, key: &SigningKey) -> Result<IndividualId, CreateError> {
        let id = IndividualId(key.public_key());
        if self.owner != Some(id) {
            return Err(CreateError::NotOwner);
        }
        Ok(id)
    }

    /// Adds `device` with leaf key `prekey` (CGKA-13, CGKA-16).
    pub fn add(
        &mut self,
        key: &SigningKey,
        device: IndividualId,
        prekey: PrekeyPublic,
        authority: &dyn CgkaAuthority,
    ) -> Result<CgkaOp, CreateError> {
        let me = self.check_owner(key)?;
        if !authority.may_add(&me, &device, &prekey) {
            return Err(CreateError::Unauthorized);
        }
        self.sign_and_apply(key, CgkaBody::Add { device, prekey }, authority)
    }

    /// Removes `device`, which must be seated (CGKA-14, CGKA-17, CGKA-26).
    pub fn remove(
        &mut self,
        key: &SigningKey,
        device: IndividualId,
        authority: &dyn CgkaAuthority,
    ) -> Result<CgkaOp, CreateError> {
        let me = self.check_owner(key)?;
        if !authority.may_remove(&me, &device) {
            return Err(CreateError::Unauthorized);
        }
        if !self.seated_after(&self.own_predecessors(), &device, authority) {
            return Err(CreateError::NotSeated(device));
        }
        self.sign_and_apply(key, CgkaBody::Remove { device }, authority)
    }

    /// Issues a key update: a fresh leaf key and path to the root, wrapped for the resolution
    /// of every copath node (CGKA-15). Afterwards this device knows the new epoch's root.
    pub fn update(
        &mut self,
        key: &SigningKey,
        authority: &dyn CgkaAuthority,
    ) -> Result<CgkaOp, CreateError> {
        let me = self.check_owner(key)?;
        let slot = self.tree.slot_of(&me).ok_or(CreateError::NotMember)?;
        let fresh = fresh_path(&self.tree, &self.document, slot)?;
        let op = Verified::sign(
            Op::new(
                key.public_key(),
                self.own_predecessors(),
                CgkaBody::Update(fresh.path.clone()),
            ),
            key,
        )?;
        let hash = op.hash();
        for (node, sk) in fresh.path.nodes.iter().zip(fresh.node_keys) {
            self.secrets.insert(node.public, sk);
        }
        self.epochs
            .insert(hash, path::epoch_root(&self.document, &fresh.root_secret));
        self.insert(Arc::new(op.clone()), authority);
        Ok(op)
    }

    /// Fills the blank inner nodes off this device's path whose children resolve to two or
    /// more keys (CGKA-27), so that later updates wrap one key per level there. Returns the
    /// ops to publish in order (none if nothing is blank), each encoded in at most
    /// [`FILL_MAX_BYTES`] so that it fits one sync item.
    pub fn fill(
        &mut self,
        key: &SigningKey,
        authority: &dyn CgkaAuthority,
    ) -> Result<Vec<CgkaOp>, CreateError> {
        self.fill_within(key, authority, FILL_MAX_BYTES, false)
    }

    /// As [`Cgka::fill`] with ops of at most `max_bytes`; with `keep`, the filler keeps the
    /// secrets it chose (what a dishonest filler could do: tests use it, with small ops, to
    /// check that CGKA-30 shuts such a filler out once removed).
    pub(crate) fn fill_within(
        &mut self,
        key: &SigningKey,
        authority: &dyn CgkaAuthority,
        max_bytes: usize,
        keep: bool,
    ) -> Result<Vec<CgkaOp>, CreateError> {
        let me = self.check_owner(key)?;
        let slot = self.tree.slot_of(&me).ok_or(CreateError::NotMember)?;
        let bodies = fill_bodies(&self.tree, &self.document, slot, max_bytes)?;
        let mut ops = Vec::with_capacity(bodies.len());
        for (body, secrets) in bodies {
            if keep {
                self.secrets
                    .extend(secrets.into_iter().map(|k| (k.public(), k)));
            }
            ops.push(self.sign_and_apply(key, CgkaBody::Fill(body), authority)?);
        }
        Ok(ops)
    }

    /// The number of keys an update by this device would wrap its path secrets for now (the
    /// X25519 count of CGKA-15), or `None` if it is not seated.
    pub fn update_cost(&self) -> Option<usize> {
        let me = self.owner?;
        let slot = self.tree.slot_of(&me)?;
        let root = self.tree.root();
        Some(
            self.tree
                .direct_path(slot)
                .into_iter()
                .filter(|n| *n != root)
                .map(|n| self.tree.resolution(super::tree::sibling(n)).len())
                .sum(),
        )
    }

    /// The local device's secrets, for the key store (KEYS-2).
    pub fn export_secrets(&self) -> CgkaSecrets {
        let mut node_keys: Vec<Zeroizing<[u8; 32]>> =
            self.secrets.values().map(PrekeySecret::to_bytes).collect();
        node_keys.sort_unstable_by(|a, b| a.as_slice().cmp(b.as_slice()));
        let mut epochs: Vec<(Hash, SymmetricKey)> =
            self.epochs.iter().map(|(h, k)| (*h, k.clone())).collect();
        epochs.sort_unstable_by_key(|(h, _)| *h);
        CgkaSecrets { node_keys, epochs }
    }

    /// Restores secrets exported by [`Cgka::export_secrets`], then replays (KEYS-2).
    pub fn import_secrets(&mut self, secrets: &CgkaSecrets, authority: &dyn CgkaAuthority) {
        for raw in &secrets.node_keys {
            let key = PrekeySecret::from_bytes(**raw);
            self.secrets.insert(key.public(), key);
        }
        for (hash, key) in &secrets.epochs {
            self.epochs.insert(*hash, key.clone());
        }
        self.bad_paths.clear();
        self.rebuild(authority);
    }

    /// Bytes of secret state held for the local device (node keys and epoch roots).
    pub fn secret_bytes(&self) -> usize {
        self.secrets.len() * 64 + self.epochs.len() * 64
    }
}

/// Builds a fresh update path for the device at `slot` against `tree` (CGKA-15).
pub fn fresh_path(
    tree: &Tree,
    document: &DocumentId,
    slot: u32,
) -> Result<path::FreshPath, PathError> {
    let nodes = tree.direct_path(slot);
    let resolutions: Vec<Vec<PrekeyPublic>> = nodes
        .iter()
        .map(|node| {
            if *node == tree.root() {
                Vec::new()
            } else {
                tree.resolution(super::tree::sibling(*node))
            }
        })
        .collect();
    let mut leaf_secret = Zeroizing::new([0u8; 32]);
    rand::Rng::fill_bytes(&mut rand::rng(), &mut *leaf_secret);
    path::generate(document, leaf_secret, &resolutions)
}

/// Room left in a fill op for everything but its nodes: the envelope (issuer, up to 64
/// predecessors, tags, signature) and the ephemeral key, rounded up.
const FILL_ENVELOPE_ROOM: usize = 4096;

/// An upper bound on the encoded size of a filled node with `wraps` wrapped secrets.
fn filled_node_len(wraps: usize) -> usize {
    5 + 32 + 5 + 80 * wraps
}

/// CGKA-27: the fill ops' bodies for the device at `slot`: every blank inner node off its
/// direct path whose children resolve (counting the nodes filled so far) to two or more keys
/// gets a fresh secret wrapped for them, level by level from the leaves up, cut into bodies
/// of at most `max_bytes` encoded (with the envelope), each with its own one-time key.
fn fill_bodies(
    tree: &Tree,
    document: &DocumentId,
    slot: u32,
    max_bytes: usize,
) -> Result<Vec<(FillNodes, Vec<PrekeySecret>)>, PathError> {
    let own: HashSet<u32> = tree.direct_path(slot).into_iter().collect();
    let budget = max_bytes.saturating_sub(FILL_ENVELOPE_ROOM).max(1);
    let nodes = 2 * tree.capacity() - 1;
    // The resolution of each inner node as it will be once the fills so far are applied.
    let mut resolved: HashMap<u32, Vec<PrekeyPublic>> = HashMap::new();
    let mut bodies = Vec::new();
    let mut ephemeral = PrekeySecret::generate();
    let mut current = FillNodes {
        ephemeral: ephemeral.public(),
        nodes: Vec::new(),
    };
    let mut keys_chosen = Vec::new();
    let mut used = 0usize;
    for level in 1..=tree.depth() {
        let mut node = (1u32 << level) - 1;
        while node < nodes {
            let here = tree.entries(node);
            if !here.is_empty() {
                resolved.insert(node, here.iter().map(|e| e.public).collect());
            } else {
                let (l, r) = super::tree::children(node);
                let mut keys = Vec::new();
                for child in [l, r] {
                    if child % 2 == 0 {
                        keys.extend(tree.entries(child).iter().map(|e| e.public));
                    } else if let Some(below) = resolved.remove(&child) {
                        keys.extend(below);
                    }
                }
                if own.contains(&node) || node == tree.root() || keys.len() < 2 {
                    resolved.insert(node, keys);
                } else {
                    let len = filled_node_len(keys.len());
                    if used + len > budget && !current.nodes.is_empty() {
                        ephemeral = PrekeySecret::generate();
                        let full = std::mem::replace(
                            &mut current,
                            FillNodes {
                                ephemeral: ephemeral.public(),
                                nodes: Vec::new(),
                            },
                        );
                        bodies.push((full, std::mem::take(&mut keys_chosen)));
                        used = 0;
                    }
                    let mut secret = Zeroizing::new([0u8; 32]);
                    rand::Rng::fill_bytes(&mut rand::rng(), &mut *secret);
                    let (filled, chosen) = path::fill_node(
                        document,
                        &ephemeral,
                        &current.ephemeral,
                        node,
                        &secret,
                        &keys,
                    )?;
                    resolved.insert(node, vec![filled.public]);
                    current.nodes.push(filled);
                    keys_chosen.push(chosen);
                    used += len;
                }
            }
            node += 1u32 << (level + 1);
        }
    }
    if !current.nodes.is_empty() {
        bodies.push((current, keys_chosen));
    }
    Ok(bodies)
}

/// The authority's answer that replay depends on: `may_add` for an add, `may_remove` for a
/// remove, nothing for other ops.
fn verdict_of(op: &CgkaOp, authority: &dyn CgkaAuthority) -> Option<bool> {
    let issuer = IndividualId(op.issuer);
    match &op.body {
        CgkaBody::Add { device, prekey } => Some(authority.may_add(&issuer, device, prekey)),
        CgkaBody::Remove { device } => Some(authority.may_remove(&issuer, device)),
        CgkaBody::Init { .. } | CgkaBody::Update(_) | CgkaBody::Fill(_) => None,
    }
}

fn authorised(op: &CgkaOp, authority: &dyn CgkaAuthority) -> bool {
    let issuer = IndividualId(op.issuer);
    match &op.body {
        CgkaBody::Init { .. } => false,
        CgkaBody::Add { device, prekey } => authority.may_add(&issuer, device, prekey),
        CgkaBody::Remove { device } => authority.may_remove(&issuer, device),
        CgkaBody::Update(_) | CgkaBody::Fill(_) => authority.is_member(&issuer),
    }
}

/// CGKA-12: the replay order, Kahn's algorithm taking the smallest hash among ready ops.
fn topological_order(ops: &HashMap<Hash, Arc<CgkaOp>>) -> Vec<Hash> {
    let mut indegree: HashMap<Hash, usize> = HashMap::with_capacity(ops.len());
    let mut children: HashMap<Hash, Vec<Hash>> = HashMap::new();
    for (hash, op) in ops {
        let known = op
            .predecessors
            .iter()
            .filter(|p| ops.contains_key(p))
            .count();
        indegree.insert(*hash, known);
        for p in &op.predecessors {
            children.entry(*p).or_default().push(*hash);
        }
    }
    let mut ready: BinaryHeap<Reverse<Hash>> = indegree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(h, _)| Reverse(*h))
        .collect();
    let mut out = Vec::with_capacity(ops.len());
    while let Some(Reverse(hash)) = ready.pop() {
        out.push(hash);
        for child in children.get(&hash).into_iter().flatten() {
            if let Some(d) = indegree.get_mut(child) {
                *d -= 1;
                if *d == 0 {
                    ready.push(Reverse(*child));
                }
            }
        }
    }
    out
}

/// The authority used for the init op, which is authorised when the CGKA is started.
struct AllowAll;

impl CgkaAuthority for AllowAll {
    fn may_add(&self, _: &IndividualId, _: &IndividualId, _: &PrekeyPublic) -> bool {
        true
    }
    fn may_remove(&self, _: &IndividualId, _: &IndividualId) -> bool {
        true
    }
    fn is_member(&self, _: &IndividualId) -> bool {
        true
    }
    fn prekey_of(&self, _: &IndividualId) -> Option<PrekeyPublic> {
        None
    }
}
