//! A document's CGKA: the op DAG, its deterministic replay into a [`Tree`], and the local
//! device's secrets (`specs/cgka.md` §4–§6, CGKA-12..CGKA-22, CGKA-26).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::crypto::digest_map::{DigestMap, DigestSet};
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
    CgkaBody, CgkaOp, FILL_MAX_BYTES, FillNodes, FilledNode, MAX_SEATS, PositionedFill,
    PositionedNode, Seat, SignedCgkaOp, UpdatePath, WrappedSecret, check_body, position_node,
};
use super::path::{self, PathError};
use super::tree::{Entry, Tree};

mod build;
mod checkpoint;
mod receive;
mod replay;

pub use build::fresh_path;

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
    /// The creating device has no key to seat itself with (its device key has no X25519
    /// form, CGKA-34).
    #[error("the creating device has no seat key")]
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
    AllExcept(DigestSet),
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

/// A key an update replaced during replay (CGKA-15 (c), CGKA-28, CGKA-35).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Superseded {
    /// The node it was at.
    node: u32,
    /// The update that replaced it.
    by: Hash,
    /// The op that had written it.
    op: Hash,
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
    ops: DigestMap<Arc<CgkaOp>>,
    order: Vec<Hash>,
    position: DigestMap<usize>,
    heads: BTreeSet<Hash>,
    structural: Vec<Hash>,
    /// Keys superseded during replay: where they were, which update replaced them and which
    /// op had written them.
    superseded: HashMap<PrekeyPublic, Superseded>,
    /// The same keys by node, so a membership change can forget those on its path.
    superseded_at: HashMap<u32, Vec<PrekeyPublic>>,
    /// CGKA-29: for each tainted key written during replay, the devices that may know its
    /// secret without being seated below its node (absent: none).
    taint: HashMap<PrekeyPublic, Vec<IndividualId>>,
    /// The same, by device, so that removing a device finds the keys it may know (CGKA-30).
    tainted_by: HashMap<IndividualId, Vec<PrekeyPublic>>,
    tree: Tree,
    pending: BTreeMap<Hash, Arc<CgkaOp>>,
    waiting: DigestMap<Vec<Hash>>,
    quarantine: BTreeMap<Hash, Arc<CgkaOp>>,
    secrets: HashMap<PrekeyPublic, PrekeySecret>,
    /// Node secrets imported from the key store whose public halves are not derived yet: a
    /// scalar multiplication each, done only once a lookup needs them (`index_secrets`), so
    /// opening a document whose epochs are all known derives none.
    unindexed: Vec<Zeroizing<[u8; 32]>>,
    epochs: DigestMap<SymmetricKey>,
    bad_paths: BTreeSet<Hash>,
    issuer_keys: IssuerKeys,
    /// CGKA-32: the authority's answer for every add and remove as the tree applied it.
    verdicts: DigestMap<Vec<bool>>,
    /// CGKA-32: the answers a refresh asks again while the authority's allowed-adds stamp
    /// stands: every remove, and every add that was refused.
    recheck: DigestSet,
    /// CGKA-32: the authority's allowed-adds stamp when every add's answer was last taken.
    adds_stamp: Option<[u64; 2]>,
    /// Bumped whenever the tree or the epoch secrets may have changed.
    generation: u64,
    /// CGKA-34: the leaf key of every device a device-key seat op names (its device key's
    /// X25519 form, `None` if it has none), converted once.
    leaf_keys: HashMap<IndividualId, Option<PrekeyPublic>>,
    /// CGKA-34: the local device's own seat key, whose secret is its signing scalar: held to
    /// unwrap, never exported to the key store (the device key is stored on its own).
    own_seat: Option<PrekeyPublic>,
    /// CGKA-36: replays are deferred until [`Cgka::settle`].
    deferring: bool,
    /// CGKA-36: an op was applied out of replay order while deferring: `order`, `position`,
    /// `heads` and the tree describe the ops before it until the next replay.
    stale: bool,
    /// CGKA-36: the replay state near the end of the order, to replay from.
    checkpoint: Option<checkpoint::Checkpoint>,
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
    /// Creates a document's CGKA with `creator` at leaf 0, seated on its device key (CGKA-2,
    /// CGKA-34). Returns the CGKA and the signed init op to publish.
    pub fn create(document: DocumentId, creator: &Device) -> Result<(Self, CgkaOp), InitError> {
        let prekey = PrekeyPublic::of_device(&creator.signing_key().public_key())
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
        Self::from_verified_init(binding, init, owner, authority)
    }

    /// As [`Cgka::from_init`] for an init whose signature the caller already checked
    /// (`verify_strict`, e.g. at admission, ADM-2): every other rule applies alike.
    pub fn from_verified_init(
        binding: &InitBinding,
        init: CgkaOp,
        owner: Option<&Device>,
        authority: &dyn CgkaAuthority,
    ) -> Result<Self, InitError> {
        check_body(&init).map_err(|e| InitError::Receive(ReceiveError::Structure(e)))?;
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
            ops: DigestMap::default(),
            order: Vec::new(),
            position: DigestMap::default(),
            heads: BTreeSet::new(),
            structural: Vec::new(),
            superseded: HashMap::new(),
            superseded_at: HashMap::new(),
            taint: HashMap::new(),
            tainted_by: HashMap::new(),
            tree: Tree::default(),
            pending: BTreeMap::new(),
            waiting: DigestMap::default(),
            quarantine: BTreeMap::new(),
            secrets: HashMap::new(),
            unindexed: Vec::new(),
            epochs: DigestMap::default(),
            bad_paths: BTreeSet::new(),
            issuer_keys: IssuerKeys::default(),
            verdicts: DigestMap::default(),
            recheck: DigestSet::default(),
            adds_stamp: None,
            generation: 0,
            leaf_keys: HashMap::new(),
            own_seat: None,
            deferring: false,
            stale: false,
            checkpoint: None,
        };
        if let Some(device) = owner {
            for prekey in device.prekeys() {
                cgka.secrets.insert(prekey.public(), prekey.clone());
            }
            // CGKA-34: the device key's X25519 form is this device's seat key.
            let seat = device.seat();
            cgka.own_seat = Some(seat.public());
            cgka.secrets.insert(seat.public(), seat.clone());
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

    /// The applied op with hash `hash`.
    pub fn op(&self, hash: &Hash) -> Option<&CgkaOp> {
        self.ops.get(hash).map(|op| op.as_ref())
    }

    /// Number of applied ops.
    pub fn op_count(&self) -> usize {
        self.ops.len()
    }

    /// Whether `hash` is an applied op (one still waiting for predecessors is not).
    pub fn contains_op(&self, hash: &Hash) -> bool {
        self.ops.contains_key(hash)
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
}

impl Cgka {
    /// The devices `body` seats with their leaf keys ([`CgkaBody::seats`]), device-key seats
    /// taken from the cache of converted device keys when there (CGKA-34).
    pub(super) fn seats_of(&self, body: &CgkaBody) -> Vec<(IndividualId, Option<PrekeyPublic>)> {
        match body {
            CgkaBody::AddDevices { devices } => devices
                .iter()
                .map(|d| {
                    let key = match self.leaf_keys.get(d) {
                        Some(known) => *known,
                        None => PrekeyPublic::of_device(&d.0),
                    };
                    (*d, key)
                })
                .collect(),
            other => other.seats(),
        }
    }

    /// CGKA-34: converts (once) the device keys an op seats devices on, so that replays and
    /// refreshes do not decompress them again.
    pub(super) fn learn_leaf_keys(&mut self, body: &CgkaBody) {
        if let CgkaBody::AddDevices { devices } = body {
            for d in devices {
                self.leaf_keys
                    .entry(*d)
                    .or_insert_with(|| PrekeyPublic::of_device(&d.0));
            }
        }
    }

    /// The authority's answer that replay depends on: `may_add` for an add, `may_remove` for
    /// a remove, nothing for other ops. A batched add gets one answer per seat, in its order
    /// (CGKA-33); a device-key seat with no X25519 form is refused (CGKA-34).
    pub(super) fn verdict_of(
        &self,
        op: &CgkaOp,
        authority: &dyn CgkaAuthority,
    ) -> Option<Vec<bool>> {
        let issuer = IndividualId(op.issuer);
        match &op.body {
            CgkaBody::Add { .. } | CgkaBody::AddMany { .. } | CgkaBody::AddDevices { .. } => Some(
                self.seats_of(&op.body)
                    .into_iter()
                    .map(|(device, key)| seat_allowed(&op.body, &issuer, &device, key, authority))
                    .collect(),
            ),
            CgkaBody::Remove { device } => Some(vec![authority.may_remove(&issuer, device)]),
            CgkaBody::Init { .. }
            | CgkaBody::Update(_)
            | CgkaBody::Fill(_)
            | CgkaBody::FillByPosition(_) => None,
        }
    }

    /// CGKA-20: whether `op` is authorised on receipt. A batched add is received only if
    /// every seat is allowed (replay still answers per seat, CGKA-33).
    pub(super) fn authorised(&self, op: &CgkaOp, authority: &dyn CgkaAuthority) -> bool {
        let issuer = IndividualId(op.issuer);
        match &op.body {
            CgkaBody::Init { .. } => false,
            CgkaBody::Remove { device } => authority.may_remove(&issuer, device),
            CgkaBody::Update(_) | CgkaBody::Fill(_) | CgkaBody::FillByPosition(_) => {
                authority.may_update(&issuer)
            }
            CgkaBody::Add { .. } | CgkaBody::AddMany { .. } | CgkaBody::AddDevices { .. } => self
                .verdict_of(op, authority)
                .is_some_and(|answers| answers.iter().all(|a| *a)),
        }
    }
}

/// CGKA-16, CGKA-34: the authority's answer for one seat of an add (`key` its leaf key): a
/// device-key seat needs a seat key and `may_seat`, any other `may_add` with its prekey.
pub(super) fn seat_allowed(
    body: &CgkaBody,
    issuer: &IndividualId,
    device: &IndividualId,
    key: Option<PrekeyPublic>,
    authority: &dyn CgkaAuthority,
) -> bool {
    match (body, key) {
        (_, None) => false,
        (CgkaBody::AddDevices { .. }, Some(_)) => authority.may_seat(issuer, device),
        (_, Some(key)) => authority.may_add(issuer, device, &key),
    }
}

/// CGKA-12: the replay order, Kahn's algorithm taking the smallest hash among ready ops.
fn topological_order(ops: &DigestMap<Arc<CgkaOp>>) -> Vec<Hash> {
    let mut indegree: DigestMap<usize> =
        DigestMap::with_capacity_and_hasher(ops.len(), Default::default());
    let mut children: DigestMap<Vec<Hash>> = DigestMap::default();
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
