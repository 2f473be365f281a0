//! The convergent capability checker: stores ops, checks each one's authority (CAP-5..CAP-10),
//! applies revocations (CAP-11..CAP-13) and maintains the membership graph (CAP-14).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use crate::crypto::hash::Hash;
use crate::crypto::signing::PublicKey;
use crate::encoding::DecodeError;
use crate::identity::{IndividualId, SubjectKind};
use crate::signed::{KeyCache, Verified, VerifyError};

use super::access::{Access, AgentId};
use super::membership::{Edges, Ix};
use super::op::{AnySigned, AnyVerified, AuthOp};
use super::pending::{PeerTag, Pending, PendingLimit, PendingLimits, Waiting};
use super::query::QueryCache;
use super::root_form::RootFormOp;
use super::validity::{Reason, Refusal, Validity, refuse};

/// CAP-6: most delegations an op's transitive proof chain may contain.
pub const MAX_CHAIN: usize = 256;

/// What happened to an ingested op.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IngestOutcome {
    /// The op was applied; `released` lists parked ops that it let through, in apply order.
    Applied {
        /// The op's hash.
        hash: Hash,
        /// The op's validity right after applying it (it may change later: CAP-11, CAP-12).
        validity: Validity,
        /// Parked ops applied as a consequence.
        released: Vec<Hash>,
    },
    /// The op waits in the pending set for `missing` (CAP-4).
    Pending {
        /// The op's hash.
        hash: Hash,
        /// Parents not yet held.
        missing: Vec<Hash>,
    },
    /// The op was already held (applied or pending).
    Duplicate {
        /// The op's hash.
        hash: Hash,
    },
}

/// Why an op could not be ingested. Authority failures are not errors: such ops are stored
/// and reported [`Validity::Invalid`], so every replica holds the same set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The bytes are not a canonical op envelope.
    #[error("malformed op")]
    Decode(#[from] DecodeError),
    /// The signature does not verify.
    #[error("bad signature")]
    Signature(#[from] VerifyError),
    /// CAP-4: the pending set is full for this peer, subject or in total; nothing was stored.
    #[error("pending set full ({0:?} limit); the op was dropped, nothing else was lost")]
    PendingFull(PendingLimit),
    /// The store holds the most ops one checker can index.
    #[error("op store is full")]
    StoreFull,
}

/// Facts about a subject (group or document).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectInfo {
    /// Group or document.
    pub kind: SubjectKind,
    /// The root admin (CAP-5).
    pub creator: IndividualId,
    /// Hash of the genesis op.
    pub genesis: Hash,
    /// CAP-5: a second genesis for the same id was seen; the subject is unusable.
    pub conflicted: bool,
}

#[derive(Debug)]
pub(crate) struct SubjectState {
    pub(crate) genesis: Ix,
    pub(crate) kind: SubjectKind,
    pub(crate) creator: IndividualId,
}

#[derive(Debug)]
pub(crate) enum Info {
    Genesis,
    Delegation {
        delegate: AgentId,
        access: Access,
        depth: u32,
    },
    /// INV-1: an invitation (a delegation to an invitation key that grants nothing itself).
    Invitation {
        access: Access,
        depth: u32,
    },
    Revocation {
        target: Option<Ix>,
        issuer_depth: u32,
        past: Vec<u64>,
    },
    Content,
}

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) op: AnyVerified,
    pub(crate) subject: PublicKey,
    pub(crate) parents: Box<[Ix]>,
    pub(crate) height: u32,
    pub(crate) info: Info,
    pub(crate) stat: Result<(), Refusal>,
    /// CAP-11: every delegation the op's authority relies on, transitively (sorted).
    pub(crate) chain: Box<[Ix]>,
    /// CAP-12: the maximal revocations in the op's strict causal past.
    pub(crate) rev_frontier: Box<[Ix]>,
    pub(crate) validity: Validity,
    pub(crate) granting: bool,
}

pub(crate) struct Authority {
    pub(crate) held: Access,
    pub(crate) issuer_depth: u32,
    pub(crate) refs: Vec<Ix>,
}

/// The convergent capability checker (see the module documentation).
#[derive(Debug)]
pub struct Checker {
    pub(crate) nodes: Vec<Node>,
    pub(crate) index: HashMap<Hash, Ix>,
    pub(crate) subjects: HashMap<PublicKey, SubjectState>,
    pub(crate) conflicted: HashSet<PublicKey>,
    pub(crate) dependents: HashMap<Ix, Vec<Ix>>,
    pub(crate) revocations: Vec<Ix>,
    /// Effective revocations by the delegation they revoke (CAP-12).
    pub(crate) revoked_by: HashMap<Ix, Vec<Ix>>,
    pub(crate) rev_status: HashMap<Ix, Validity>,
    /// CAP-12: keys lent to revocations by same-subject revocations that build on them.
    pub(crate) rev_priority: HashMap<Ix, (u32, Hash)>,
    pub(crate) edges: Edges,
    pub(crate) pending: Pending,
    keys: KeyCache,
    /// Heads of each subject's auth DAG (its genesis and auth ops with no successor on the
    /// same subject): the predecessors a new op on the subject names (CAP-20).
    pub(crate) auth_heads: HashMap<PublicKey, HashSet<Ix>>,
    /// CAP-21: for each subject, the groups and documents some statically authorised
    /// delegation on it names (never shrinks: a revoked member's history stays in scope).
    pub(crate) delegated_subjects: HashMap<PublicKey, HashSet<PublicKey>>,
    /// CAP-22: for each authorised revocation, the content ops its content heads witness
    /// (the named heads held and their content ancestors), as a bit set over op indices.
    pub(crate) witnesses: HashMap<Ix, Vec<u64>>,
    /// CAP-22: content heads named by held revocations but not held yet.
    pub(crate) awaited_witnesses: HashMap<Hash, Vec<Ix>>,
    pub(crate) content_heads: HashMap<PublicKey, HashSet<Ix>>,
    pub(crate) by_subject: HashMap<PublicKey, Vec<Ix>>,
    pub(crate) cache: RefCell<QueryCache>,
    /// INV-6: statically authorised redemptions of each invitation.
    pub(crate) redemptions: HashMap<Ix, Vec<Ix>>,
    /// INV-6: redemptions past their invitation's use limit.
    pub(crate) used_up: HashSet<Ix>,
    /// Validity changes of held ops `(op, before, after)`, recorded only while enabled
    /// (`Checker::record_validity_changes`) and drained by whoever enabled it.
    pub(crate) validity_changes: Option<Vec<(Hash, Validity, Validity)>>,
}

impl Default for Checker {
    fn default() -> Self {
        Checker::new(PendingLimits::default())
    }
}

impl Checker {
    /// An empty checker with the given pending-set limits.
    pub fn new(limits: PendingLimits) -> Self {
        Checker {
            nodes: Vec::new(),
            index: HashMap::new(),
            subjects: HashMap::new(),
            conflicted: HashSet::new(),
            dependents: HashMap::new(),
            revocations: Vec::new(),
            revoked_by: HashMap::new(),
            rev_status: HashMap::new(),
            rev_priority: HashMap::new(),
            edges: Edges::default(),
            pending: Pending::new(limits),
            keys: KeyCache::default(),
            auth_heads: HashMap::new(),
            delegated_subjects: HashMap::new(),
            witnesses: HashMap::new(),
            awaited_witnesses: HashMap::new(),
            content_heads: HashMap::new(),
            by_subject: HashMap::new(),
            cache: RefCell::new(QueryCache::default()),
            redemptions: HashMap::new(),
            used_up: HashSet::new(),
            validity_changes: None,
        }
    }

    /// CAP-4: changes the count limits of the pending set (e.g. lifted while a relay replays
    /// its own store, restored before it serves peers). Ops already parked stay parked.
    pub fn set_pending_limits(&mut self, limits: PendingLimits) {
        self.pending.limits = limits;
    }

    /// CAP-4: changes the bound on envelope bytes parked in the pending set.
    pub fn set_pending_bytes_limit(&mut self, bytes: usize) {
        self.pending.bytes_limit = bytes;
    }

    /// How many op signatures this checker verified itself (`verify_strict`). Ops the
    /// caller checked (ADM-2a) or trusted on a mark (RELAY-7, REP-70) and applied with
    /// [`Checker::ingest_verified`] or [`Checker::apply_verified`] are not counted.
    pub fn signatures_verified(&self) -> u64 {
        self.keys.checked()
    }

    /// Decodes, verifies (`verify_strict`) and applies or parks an op envelope.
    pub fn ingest(&mut self, peer: PeerTag, bytes: &[u8]) -> Result<IngestOutcome, IngestError> {
        let signed = AnySigned::decode(bytes)?;
        self.ingest_signed(peer, signed)
    }

    /// As [`Checker::ingest`] for an already decoded envelope.
    pub fn ingest_signed(
        &mut self,
        peer: PeerTag,
        signed: AnySigned,
    ) -> Result<IngestOutcome, IngestError> {
        let hash = signed.hash();
        if self.index.contains_key(&hash) || self.pending.contains(&hash) {
            return Ok(IngestOutcome::Duplicate { hash });
        }
        let verified = match signed {
            AnySigned::Genesis(s) => AnyVerified::Genesis(s.verify_cached(&mut self.keys)?),
            AnySigned::Auth(s) => AnyVerified::Auth(s.verify_cached(&mut self.keys)?),
            AnySigned::Content(s) => AnyVerified::Content(s.verify_cached(&mut self.keys)?),
            AnySigned::RootForm(r) => match self.verify_root_form(r)? {
                Ok(v) => AnyVerified::Auth(v),
                Err(r) => return self.park_root_form(peer, r),
            },
        };
        self.admit(peer, verified)
    }

    /// CAP-24: `op` with its issuer, the creator its subject's genesis names, when that
    /// genesis is held and the subject has no second genesis (CAP-5); any other op as it is.
    /// For applying an op whose signature the caller checked before (RELAY-7): the answer is
    /// still unverified.
    pub fn resolve_root_form(&self, op: AnySigned) -> AnySigned {
        match op {
            AnySigned::RootForm(r) => {
                let subject = r.unverified_body().subject;
                match self.subjects.get(&subject) {
                    Some(state) if !self.conflicted.contains(&subject) => {
                        AnySigned::Auth(r.with_issuer(state.creator.0))
                    }
                    _ => AnySigned::RootForm(r),
                }
            }
            other => other,
        }
    }

    /// CAP-24: the keys a root-form op of `subject` may be signed by: the creator its genesis
    /// names, or with two geneses (CAP-5) the creator each names; none while no genesis is
    /// held.
    fn root_signers(&self, subject: &PublicKey) -> Vec<PublicKey> {
        let Some(state) = self.subjects.get(subject) else {
            return Vec::new();
        };
        if !self.conflicted.contains(subject) {
            return vec![state.creator.0];
        }
        let mut creators: Vec<PublicKey> = self
            .by_subject
            .get(subject)
            .into_iter()
            .flatten()
            .filter_map(|ix| match &self.nodes[*ix as usize].op {
                AnyVerified::Genesis(g) => Some(g.body.creator.0),
                _ => None,
            })
            .collect();
        creators.sort_unstable();
        creators.dedup();
        creators
    }

    /// CAP-24: verifies a root-form op under its subject's creator (`Ok(Err(op))`: the
    /// genesis is not held, so the op has no signer yet).
    fn verify_root_form(
        &mut self,
        op: RootFormOp,
    ) -> Result<Result<Verified<AuthOp>, RootFormOp>, IngestError> {
        let signers = self.root_signers(&op.unverified_body().subject);
        let Some((last, others)) = signers.split_last() else {
            return Ok(Err(op));
        };
        for signer in others {
            if let Ok(v) = op
                .clone()
                .with_issuer(*signer)
                .verify_cached(&mut self.keys)
            {
                return Ok(Ok(v));
            }
        }
        Ok(Ok(op.with_issuer(*last).verify_cached(&mut self.keys)?))
    }

    /// CAP-4, CAP-24: parks a root-form op whose genesis is not held, unverified, until the
    /// genesis (and every parent it names) is applied; its signature is checked then.
    fn park_root_form(
        &mut self,
        peer: PeerTag,
        op: RootFormOp,
    ) -> Result<IngestOutcome, IngestError> {
        let hash = op.hash();
        let mut missing: Vec<Hash> = op
            .predecessors()
            .iter()
            .filter(|p| !self.index.contains_key(*p))
            .copied()
            .collect();
        missing.push(implied_genesis_key(&op.unverified_body().subject));
        missing.sort_unstable();
        missing.dedup();
        self.pending
            .park(
                Waiting::RootForm(op),
                peer,
                missing.iter().copied().collect(),
            )
            .map_err(IngestError::PendingFull)?;
        Ok(IngestOutcome::Pending { hash, missing })
    }

    /// As [`Checker::ingest_signed`] for an op whose signature the caller already checked with
    /// `verify_strict` (ENC-4) on these exact bytes, e.g. on another core before a batch is
    /// applied in order: the op is applied or parked for `peer` exactly as if it were verified
    /// here.
    pub fn ingest_verified(
        &mut self,
        peer: PeerTag,
        op: impl Into<AnyVerified>,
    ) -> Result<IngestOutcome, IngestError> {
        self.admit(peer, op.into())
    }

    /// Applies (or parks) an op whose signature is already checked, e.g. one signed here.
    pub fn apply_verified(
        &mut self,
        op: impl Into<AnyVerified>,
    ) -> Result<IngestOutcome, IngestError> {
        self.admit(PeerTag::LOCAL, op.into())
    }

    fn admit(&mut self, peer: PeerTag, op: AnyVerified) -> Result<IngestOutcome, IngestError> {
        let hash = op.hash();
        if self.index.contains_key(&hash) || self.pending.contains(&hash) {
            return Ok(IngestOutcome::Duplicate { hash });
        }
        // CAP-3: an op is applied only once all its parents are.
        let parents = op.parents();
        let mut missing: Vec<Hash> = parents
            .iter()
            .filter(|p| !self.index.contains_key(*p))
            .copied()
            .collect();
        // CAP-23: and once its subject's genesis is, when that is an implied parent; it waits
        // under a key no op hashes to, released when a genesis of the subject is applied.
        if let Some(subject) = op.implied_genesis()
            && !self.subjects.contains_key(&subject)
        {
            missing.push(implied_genesis_key(&subject));
            missing.sort_unstable();
        }
        if !missing.is_empty() {
            // `parents()` is sorted and de-duplicated, so `missing` is too.
            self.pending
                .park(
                    Waiting::Verified(op),
                    peer,
                    missing.iter().copied().collect(),
                )
                .map_err(IngestError::PendingFull)?;
            return Ok(IngestOutcome::Pending { hash, missing });
        }
        let mut queue = release_keys(&op);
        self.apply_ready(op)?;
        let mut released = Vec::new();
        while let Some(h) = queue.pop() {
            for (ready, _) in self.pending.release(&h) {
                let ready = match ready {
                    Waiting::Verified(op) => op,
                    // CAP-24: its genesis is held now; one whose signature fails under the
                    // creator is dropped like any op with a bad signature.
                    Waiting::RootForm(op) => match self.verify_root_form(op) {
                        Ok(Ok(v)) => AnyVerified::Auth(v),
                        _ => continue,
                    },
                };
                let h2 = ready.hash();
                queue.extend(release_keys(&ready));
                self.apply_ready(ready)?;
                released.push(h2);
            }
        }
        let validity = self
            .index
            .get(&hash)
            .map(|ix| self.nodes[*ix as usize].validity.clone())
            .unwrap_or(Validity::Valid);
        Ok(IngestOutcome::Applied {
            hash,
            validity,
            released,
        })
    }

    /// Applies an op whose parents are all held.
    fn apply_ready(&mut self, op: AnyVerified) -> Result<(), IngestError> {
        let ix = Ix::try_from(self.nodes.len()).map_err(|_| IngestError::StoreFull)?;
        if ix == Ix::MAX {
            return Err(IngestError::StoreFull);
        }
        let hash = op.hash();
        let mut parents: Vec<Ix> = Vec::new();
        for p in op.parents() {
            // Every parent is held: `admit` checked, or `release` counted them down.
            if let Some(&pix) = self.index.get(&p) {
                parents.push(pix);
            }
        }
        // CAP-23: the implied genesis is a parent like a named one (held: `admit` checked).
        if let Some(state) = op.implied_genesis().and_then(|s| self.subjects.get(&s)) {
            parents.push(state.genesis);
        }
        parents.sort_unstable();
        parents.dedup();
        let height = parents
            .iter()
            .map(|p| self.nodes[*p as usize].height)
            .max()
            .map_or(0, |h| h.saturating_add(1));
        let subject = op.subject();
        let (info, stat, chain) = self.analyse(&op, &parents);
        let rev_frontier = self.frontier_of(&parents);
        // Only authorised revocations take part in CAP-12 (a forged one costs nothing more).
        let is_revocation = matches!(info, Info::Revocation { .. }) && stat.is_ok();
        self.nodes.push(Node {
            op,
            subject,
            parents: parents.into_boxed_slice(),
            height,
            info,
            stat,
            chain,
            rev_frontier,
            validity: Validity::Valid,
            granting: false,
        });
        self.index.insert(hash, ix);
        self.by_subject.entry(subject).or_default().push(ix);
        self.update_heads(ix);
        self.note_delegated_subject(ix);
        if let Ok(()) = &self.nodes[ix as usize].stat {
            let refs = self.proof_refs(ix);
            for r in refs {
                self.dependents.entry(r).or_default().push(ix);
            }
        }
        match &self.nodes[ix as usize].op {
            AnyVerified::Genesis(_) => self.register_genesis(ix),
            _ if is_revocation => {
                let past = self.compute_past(ix);
                if let Info::Revocation { past: slot, .. } = &mut self.nodes[ix as usize].info {
                    *slot = past;
                }
                self.record_witness(ix);
                self.lend_priority(ix);
                self.revocations.push(ix);
                self.recompute_effective(&[ix]);
            }
            _ => {
                // INV-6: a new redemption may push others past the use limit.
                let spent = self.note_redemption(ix);
                self.refresh(ix);
                if !spent.is_empty() {
                    self.recompute_effective(&spent);
                }
            }
        }
        if let Some(revocations) = self.awaited_witnesses.remove(&hash) {
            self.witness_arrived(subject, &revocations);
        }
        Ok(())
    }

    /// The delegations directly named by an op's proof, as indices.
    fn proof_refs(&self, ix: Ix) -> Vec<Ix> {
        let refs = match &self.nodes[ix as usize].op {
            AnyVerified::Auth(v) => v.body.action.references(),
            AnyVerified::Content(v) => v.body.proof.references(),
            AnyVerified::Genesis(_) => return Vec::new(),
        };
        refs.iter()
            .filter_map(|h| self.index.get(h).copied())
            .collect()
    }

    fn update_heads(&mut self, ix: Ix) {
        let node = &self.nodes[ix as usize];
        match &node.op {
            AnyVerified::Genesis(_) => {
                self.auth_heads.entry(node.subject).or_default().insert(ix);
            }
            AnyVerified::Auth(v) => {
                let heads = self.auth_heads.entry(node.subject).or_default();
                for p in &v.predecessors {
                    if let Some(pix) = self.index.get(p) {
                        heads.remove(pix);
                    }
                }
                heads.insert(ix);
            }
            AnyVerified::Content(v) => {
                let heads = self.content_heads.entry(v.body.document.0).or_default();
                for p in &v.predecessors {
                    if let Some(pix) = self.index.get(p) {
                        heads.remove(pix);
                    }
                }
                heads.insert(ix);
            }
        }
    }

    fn register_genesis(&mut self, ix: Ix) {
        let AnyVerified::Genesis(g) = &self.nodes[ix as usize].op else {
            return;
        };
        let subject = g.issuer;
        let kind = g.body.kind;
        let creator = g.body.creator;
        if self.subjects.contains_key(&subject) {
            // CAP-5: two geneses for one id (the creator kept the throw-away key).
            self.conflicted.insert(subject);
            self.cache.get_mut().invalidate_all();
            self.recompute_all();
            return;
        }
        self.subjects.insert(
            subject,
            SubjectState {
                genesis: ix,
                kind,
                creator,
            },
        );
        self.refresh(ix);
    }

    /// Re-analyses and re-evaluates every op, in causal (index) order. Used only when a
    /// subject becomes conflicted (CAP-5), which changes the static analysis of its ops.
    fn recompute_all(&mut self) {
        let all: Vec<Ix> = (0..self.nodes.len())
            .filter_map(|i| Ix::try_from(i).ok())
            .collect();
        self.dependents.clear();
        self.redemptions.clear();
        for &ix in &all {
            let node = &self.nodes[ix as usize];
            let (info, stat, chain) = self.analyse(&node.op, &node.parents);
            let node = &mut self.nodes[ix as usize];
            node.info = info;
            node.stat = stat;
            node.chain = chain;
            let frontier = self.frontier_of(&self.nodes[ix as usize].parents);
            self.nodes[ix as usize].rev_frontier = frontier;
            let node = &self.nodes[ix as usize];
            if node.stat.is_ok() {
                let authorised_revocation = matches!(node.info, Info::Revocation { .. });
                for r in self.proof_refs(ix) {
                    self.dependents.entry(r).or_default().push(ix);
                }
                if authorised_revocation {
                    let past = self.compute_past(ix);
                    if let Info::Revocation { past: slot, .. } = &mut self.nodes[ix as usize].info {
                        *slot = past;
                    }
                }
            }
        }
        self.revocations = all
            .iter()
            .copied()
            .filter(|ix| {
                let node = &self.nodes[*ix as usize];
                matches!(node.info, Info::Revocation { .. }) && node.stat.is_ok()
            })
            .collect();
        for &ix in &all {
            self.track_redemption(ix);
        }
        self.recount_uses();
        self.rev_status.clear();
        self.rev_priority.clear();
        for r in self.revocations.clone() {
            self.lend_priority(r);
        }
        self.recompute_effective(&all);
    }

    /// Recomputes validity and membership edges of one op from the current effective
    /// revocations.
    pub(crate) fn refresh(&mut self, ix: Ix) {
        // CAP-12: a revocation's validity is decided in priority order, not afterwards.
        let validity = match (&self.nodes[ix as usize].info, self.rev_status.get(&ix)) {
            (Info::Revocation { .. }, Some(v)) => v.clone(),
            _ => self.evaluate(ix, &self.revoked_by),
        };
        let granting = self.compute_granting(ix);
        // The op being applied has no validity to change yet (it is the newest node).
        let held = (ix as usize) + 1 < self.nodes.len();
        let node = &mut self.nodes[ix as usize];
        if held
            && node.validity != validity
            && let Some(journal) = &mut self.validity_changes
        {
            journal.push((node.op.hash(), node.validity.clone(), validity.clone()));
        }
        node.validity = validity;
        if node.granting != granting {
            node.granting = granting;
            let subject = node.subject;
            let edge = match (&node.info, &node.op) {
                (
                    Info::Delegation {
                        delegate, access, ..
                    },
                    _,
                ) => Some((*delegate, *access)),
                (Info::Genesis, AnyVerified::Genesis(g)) => {
                    Some((AgentId::Individual(g.body.creator), Access::Admin))
                }
                _ => None,
            };
            if let Some((member, access)) = edge {
                let changed = if granting {
                    self.edges.add(subject, member, ix, access)
                } else {
                    self.edges.remove(subject, member, ix)
                };
                if changed {
                    // CAP-18: drop only the cached answers this edge can affect.
                    self.cache.get_mut().note_change(subject, member);
                }
            }
        }
    }

    fn touches_conflict(&self, ix: Ix) -> bool {
        if self.conflicted.is_empty() {
            return false;
        }
        let node = &self.nodes[ix as usize];
        self.conflicted.contains(&node.subject)
            || node
                .chain
                .iter()
                .any(|c| self.conflicted.contains(&self.nodes[*c as usize].subject))
    }

    /// CAP-11: validity of `ix` against the effective revocations `revoked_by`.
    pub(crate) fn evaluate(&self, ix: Ix, revoked_by: &HashMap<Ix, Vec<Ix>>) -> Validity {
        let node = &self.nodes[ix as usize];
        if let Err(refusal) = &node.stat {
            return Validity::Invalid(refusal.clone());
        }
        if self.touches_conflict(ix) {
            return Validity::Invalid(refuse("CAP-5", Reason::ConflictingGenesis));
        }
        if let Some(refusal) = self.spent(ix) {
            return Validity::Invalid(refusal);
        }
        let mut worst: Option<(Hash, Hash)> = None;
        if !revoked_by.is_empty() {
            for &p in node.chain.iter() {
                let Some(revokers) = revoked_by.get(&p) else {
                    continue;
                };
                for &r in revokers {
                    if !self.in_past_eq(ix, r) && !self.witnessed(ix, r) {
                        let pair = (self.hash_of(r), self.hash_of(p));
                        if worst.is_none_or(|w| pair < w) {
                            worst = Some(pair);
                        }
                    }
                }
            }
        }
        match worst {
            Some((revocation, delegation)) => Validity::Invalid(refuse(
                "CAP-11",
                Reason::Excluded {
                    revocation,
                    delegation,
                },
            )),
            None => Validity::Valid,
        }
    }

    /// CAP-13: a delegation grants iff it is authorised, its subject is not conflicted, and
    /// neither it nor any delegation in its chain is revoked by an effective revocation.
    /// A genesis grants its creator admin (CAP-5) unless conflicted.
    fn compute_granting(&self, ix: Ix) -> bool {
        let node = &self.nodes[ix as usize];
        match node.info {
            Info::Genesis => !self.conflicted.contains(&node.subject),
            Info::Delegation { .. } => {
                node.stat.is_ok()
                    && !self.touches_conflict(ix)
                    && self.spent(ix).is_none()
                    && !self.revoked_by.contains_key(&ix)
                    && !node.chain.iter().any(|c| self.revoked_by.contains_key(c))
            }
            _ => false,
        }
    }

    pub(crate) fn hash_of(&self, ix: Ix) -> Hash {
        self.nodes[ix as usize].op.hash()
    }
}

/// CAP-23: the pending-set key an op with an implied genesis waits under while its subject's
/// genesis is not held: a hash no envelope has (the bytes are not an envelope of any type).
fn implied_genesis_key(subject: &PublicKey) -> Hash {
    let mut bytes = b"keyhive implied genesis of ".to_vec();
    bytes.extend_from_slice(subject.as_bytes());
    Hash::of_signed(&bytes)
}

/// The pending-set keys applying `op` releases: its hash, and for a genesis the key of the
/// ops waiting for their subject's genesis (CAP-23).
fn release_keys(op: &AnyVerified) -> Vec<Hash> {
    match op {
        AnyVerified::Genesis(g) => vec![op.hash(), implied_genesis_key(&g.issuer)],
        _ => vec![op.hash()],
    }
}
