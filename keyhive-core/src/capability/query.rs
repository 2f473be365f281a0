//! Queries over the materialised state (CAP-17): `can`, `members`, `reachable`, `explain`,
//! op validity and op listing. Answers come from cached maps; a membership edge change
//! invalidates only the cached answers that depend on it (CAP-18).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::cgka::InitBinding;
use crate::crypto::hash::Hash;
use crate::crypto::signing::PublicKey;
use crate::identity::{DocumentId, IndividualId, SubjectKind};

use super::access::{Access, AgentId};
use super::checker::{Checker, Info, SubjectInfo};
use super::members_cache::CachedMembers;
use super::membership::Ix;
use super::op::AnyVerified;
use super::validity::{Reason, Refusal, Validity, refuse};

/// Most edge changes remembered for selective invalidation; beyond it, everything is dropped.
const MAX_DIRTY: usize = 64;

/// Per-agent and per-subject answers, and the edge changes not yet applied to them.
#[derive(Default, Debug)]
pub(crate) struct QueryCache {
    reach: HashMap<AgentId, Arc<HashMap<PublicKey, Access>>>,
    members: HashMap<PublicKey, CachedMembers>,
    /// CAP-18a: the next member-map version to hand out (never reused).
    next_version: u64,
    dirty: Vec<(PublicKey, AgentId)>,
    all_dirty: bool,
    /// Positive answers of [`Checker::held`] about the past, which later ops never undo.
    held_before: HashSet<(AgentId, Access, PublicKey)>,
    /// Positive answers of [`Checker::ever_granted`], which later ops never undo.
    ever_granted: HashSet<(AgentId, Access, PublicKey)>,
}

impl QueryCache {
    /// CAP-18: the edge `member -> subject` changed.
    pub(crate) fn note_change(&mut self, subject: PublicKey, member: AgentId) {
        if self.all_dirty || (self.reach.is_empty() && self.members.is_empty()) {
            return;
        }
        if self.dirty.len() >= MAX_DIRTY {
            self.all_dirty = true;
            self.dirty.clear();
        } else {
            self.dirty.push((subject, member));
        }
    }

    /// Something global changed (a subject became conflicted).
    pub(crate) fn invalidate_all(&mut self) {
        self.all_dirty = true;
        self.dirty.clear();
        // A conflicted genesis (CAP-5) is the one event that rewrites the past.
        self.held_before.clear();
        self.ever_granted.clear();
    }

    /// A member-map version never handed out before (CAP-18a).
    fn bump(&mut self) -> u64 {
        self.next_version += 1;
        self.next_version
    }
}

/// One step of a proof chain: `member` holds `access` on `subject` through op `op` (a
/// delegation, or the subject's genesis for its creator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The group or document.
    pub subject: PublicKey,
    /// The agent the op names.
    pub member: AgentId,
    /// Level the op grants.
    pub access: Access,
    /// The delegation (or genesis) hash.
    pub op: Hash,
}

/// The answer to [`Checker::explain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Explanation {
    /// Granted: the best path, from the subject down to the agent.
    Granted {
        /// The agent's effective level (at least the level asked).
        level: Access,
        /// Links from the subject down to the agent.
        path: Vec<Link>,
    },
    /// Refused, with the rule and the op that refuses it.
    Refused(Refusal),
}

/// A direct member of a subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectMember {
    /// Best level among the granting ops.
    pub access: Access,
    /// The granting delegations (or the genesis, for the creator).
    pub ops: Vec<Hash>,
}

impl Checker {
    pub(crate) fn kind_of(&self, key: &PublicKey) -> Option<SubjectKind> {
        if self.conflicted.contains(key) {
            return None;
        }
        self.subjects.get(key).map(|s| s.kind)
    }

    /// The query cache with every noted edge change applied (CAP-18, CAP-18a): a cached
    /// `reachable(x)` is dropped when `x` is the changed member or reaches it; a cached
    /// `members(t)` is updated in place when `t` is the changed subject or has it as a
    /// (transitive) member.
    fn fresh_cache(&self) -> std::cell::RefMut<'_, QueryCache> {
        let mut cache = self.cache.borrow_mut();
        if cache.all_dirty {
            cache.reach.clear();
            cache.members.clear();
            cache.all_dirty = false;
            return cache;
        }
        if cache.dirty.is_empty() {
            return cache;
        }
        let dirty = std::mem::take(&mut cache.dirty);
        cache.reach.retain(|agent, map| {
            !dirty.iter().any(|(_, member)| {
                member == agent || member.subject_key().is_some_and(|k| map.contains_key(k))
            })
        });
        let subjects: Vec<PublicKey> = cache.members.keys().copied().collect();
        for subject in subjects {
            let version = cache.bump();
            if let Some(cached) = cache.members.get_mut(&subject) {
                self.update_members(subject, cached, &dirty, version);
            }
        }
        cache
    }

    /// The cached member map of `subject`, computed from scratch if not cached.
    fn cached_members<'c>(
        &self,
        cache: &'c mut QueryCache,
        subject: &PublicKey,
    ) -> &'c CachedMembers {
        if !cache.members.contains_key(subject) {
            let computed: BTreeMap<AgentId, Access> = self
                .edges
                .reach_down(*subject, |k| self.kind_of(k))
                .into_iter()
                .map(|(a, (level, _, _))| (a, level))
                .collect();
            let version = cache.bump();
            cache
                .members
                .insert(*subject, CachedMembers::fresh(computed, version));
        }
        &cache.members[subject]
    }

    /// Every subject `agent` can reach, with its effective level (for relays: what it may pull).
    pub fn reachable(&self, agent: AgentId) -> Arc<HashMap<PublicKey, Access>> {
        let mut cache = self.fresh_cache();
        if let Some(found) = cache.reach.get(&agent) {
            return Arc::clone(found);
        }
        let computed = Arc::new(self.edges.reach_up(agent, |k| self.kind_of(k)));
        cache.reach.insert(agent, Arc::clone(&computed));
        computed
    }

    /// `agent`'s effective level on `subject` (CAP-14), if any.
    pub fn level(&self, agent: AgentId, subject: &PublicKey) -> Option<Access> {
        let mut cache = self.fresh_cache();
        if let Some(found) = cache.reach.get(&agent) {
            return found.get(subject).copied();
        }
        let computed = Arc::new(self.edges.reach_up(agent, |k| self.kind_of(k)));
        let level = computed.get(subject).copied();
        cache.reach.insert(agent, computed);
        level
    }

    /// Whether `agent` holds at least `level` on `subject` now, or held it through a path an
    /// effective revocation has cut since (`explain` refuses with `Revoked` or `Excluded`): what
    /// decides whether its key-agreement history and entry points stay admissible. A path once
    /// held stays held whatever arrives later (only a conflicted genesis, CAP-5, rewrites it),
    /// so positive answers are cached and a removed member costs one `explain`, not one per
    /// question.
    pub fn held(&self, agent: AgentId, level: Access, subject: &PublicKey) -> bool {
        if self.can(agent, level, subject) {
            return true;
        }
        let key = (agent, level, *subject);
        if self.cache.borrow().held_before.contains(&key) {
            return true;
        }
        let held = match self.explain(agent, level, subject) {
            Explanation::Granted { .. } => true,
            Explanation::Refused(r) => {
                matches!(r.reason, Reason::Revoked { .. } | Reason::Excluded { .. })
            }
        };
        if held {
            self.cache.borrow_mut().held_before.insert(key);
        }
        held
    }

    /// How many subjects are conflicted (CAP-5). It only grows, and a new conflict is the one
    /// event that can turn a positive answer of [`Checker::ever_granted`] or [`Checker::held`]
    /// negative: while this count stands, those answers stand (CGKA-32 relies on it).
    pub fn conflicted_count(&self) -> u64 {
        self.conflicted.len() as u64
    }

    /// Does `agent` hold at least `level` on `subject`?
    pub fn can(&self, agent: AgentId, level: Access, subject: &PublicKey) -> bool {
        self.level(agent, subject).is_some_and(|held| held >= level)
    }

    /// Every agent with access to `subject`, direct and transitive, with effective levels.
    pub fn members(&self, subject: &PublicKey) -> Arc<BTreeMap<AgentId, Access>> {
        let mut cache = self.fresh_cache();
        Arc::clone(&self.cached_members(&mut cache, subject).map)
    }

    /// CAP-18a: the version of `subject`'s member map now. Versions are never reused, so an
    /// equal version means the same members; pass an older one to
    /// [`Checker::members_changed_since`].
    pub fn members_version(&self, subject: &PublicKey) -> u64 {
        let mut cache = self.fresh_cache();
        self.cached_members(&mut cache, subject).version
    }

    /// CAP-18a: the agents whose level on `subject` may differ from what it was when
    /// [`Checker::members_version`] returned `version` (ascending; an agent may appear whose
    /// level changed and changed back), or `None` when that is no longer known (the map was
    /// computed afresh since, e.g. after more than 64 edge changes between queries): the
    /// caller then compares whole maps.
    pub fn members_changed_since(&self, subject: &PublicKey, version: u64) -> Option<Vec<AgentId>> {
        let mut cache = self.fresh_cache();
        self.cached_members(&mut cache, subject)
            .changed_since(version)
    }

    /// The direct members of `subject` and the ops granting each.
    pub fn direct_members(&self, subject: &PublicKey) -> BTreeMap<AgentId, DirectMember> {
        let mut out = BTreeMap::new();
        if let Some(direct) = self.edges.direct(subject) {
            for (agent, list) in direct {
                let Some(access) = list.iter().map(|(_, a)| *a).max() else {
                    continue;
                };
                let mut ops: Vec<Hash> = list.iter().map(|(ix, _)| self.hash_of(*ix)).collect();
                ops.sort_unstable();
                out.insert(*agent, DirectMember { access, ops });
            }
        }
        out
    }

    /// The devices holding at least `level` on `subject`, transitively (the CGKA membership).
    pub fn individuals_with(&self, subject: &PublicKey, level: Access) -> BTreeSet<IndividualId> {
        self.members(subject)
            .iter()
            .filter_map(|(agent, held)| match agent {
                AgentId::Individual(id) if *held >= level => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// The currently granting delegations on `subject` whose delegate is `agent` (to revoke).
    pub fn delegations_to(&self, subject: &PublicKey, agent: AgentId) -> Vec<Hash> {
        let mut out: Vec<Hash> = self
            .edges
            .direct(subject)
            .and_then(|d| d.get(&agent))
            .map(|list| {
                list.iter()
                    .filter(|(ix, _)| {
                        matches!(self.nodes[*ix as usize].info, Info::Delegation { .. })
                    })
                    .map(|(ix, _)| self.hash_of(*ix))
                    .collect()
            })
            .unwrap_or_default();
        out.sort_unstable();
        out
    }

    /// Whether `agent` took part in `subject` itself: a statically authorised delegation on
    /// `subject` names it (granting or revoked since), or it issued a statically authorised
    /// op on `subject`. What
    /// a removed member must show before it is served the subject's ops (REP-30): unlike a
    /// membership reached through a group, this cannot be acquired by joining the group
    /// after the group lost the subject.
    pub fn took_part(&self, agent: AgentId, subject: &PublicKey) -> bool {
        let ops = self
            .by_subject
            .get(subject)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        ops.iter().any(|&ix| {
            let node = &self.nodes[ix as usize];
            let named = matches!(node.info, Info::Delegation { delegate, .. } if delegate == agent)
                && node.stat.is_ok();
            // Only what its rules let it issue: a relay's graph keeps ops it refused as
            // statically unauthorised (RELAY-1/2) without storing them, and an op anyone can
            // sign must not make its signer a removed member (simulation seed 34025: a revoked
            // device pushed an unauthorised write and was then served the document's ops).
            let issued = node.stat.is_ok()
                && match (&node.op, agent) {
                    (AnyVerified::Genesis(_), _) => false,
                    (AnyVerified::Auth(op), AgentId::Individual(id)) => op.issuer == id.0,
                    (AnyVerified::Content(op), AgentId::Individual(id)) => op.issuer == id.0,
                    _ => false,
                };
            named || issued
        })
    }

    /// ADM-5: whether `agent` was ever given `level` on `subject`: it created `subject`, or a
    /// path of statically authorised delegations (each of at least `level`, revoked, excluded
    /// or used up since or not) leads from `subject` down to it. Unlike [`Checker::held`] this
    /// only grows as ops arrive, so every replica and relay admits the same key-agreement ops
    /// and entry points whatever order the capability ops reached it in.
    pub fn ever_granted(&self, agent: AgentId, level: Access, subject: &PublicKey) -> bool {
        let key = (agent, level, *subject);
        if self.cache.borrow().ever_granted.contains(&key) {
            return true;
        }
        // The path search walks down from `subject` (a few delegations), where `can` first
        // computes everything `agent` reaches, again after every delegation applied: a relay
        // replaying a home's key-agreement ops spent 85 % of its start there. `can` still
        // answers what no delegation path gives (a redemption).
        let granted =
            self.granted_by_some_path(agent, level, subject) || self.can(agent, level, subject);
        if granted {
            self.cache.borrow_mut().ever_granted.insert(key);
        }
        granted
    }

    fn granted_by_some_path(&self, agent: AgentId, level: Access, subject: &PublicKey) -> bool {
        let mut seen: HashSet<PublicKey> = HashSet::new();
        let mut queue: VecDeque<PublicKey> = VecDeque::from([*subject]);
        while let Some(s) = queue.pop_front() {
            if !seen.insert(s) {
                continue;
            }
            if self.created(agent, &s) {
                return true;
            }
            for &ix in self.by_subject.get(&s).map(Vec::as_slice).unwrap_or(&[]) {
                let node = &self.nodes[ix as usize];
                let Info::Delegation {
                    delegate, access, ..
                } = node.info
                else {
                    continue;
                };
                if node.stat.is_err() || access < level {
                    continue;
                }
                if delegate == agent {
                    return true;
                }
                if let Some(key) = delegate.subject_key() {
                    queue.push_back(*key);
                }
            }
        }
        false
    }

    /// CAP-13: whether `agent` created `subject` (its genesis, which nothing revokes, is not
    /// conflicted).
    fn created(&self, agent: AgentId, subject: &PublicKey) -> bool {
        self.subject_info(subject)
            .is_some_and(|info| !info.conflicted && AgentId::Individual(info.creator) == agent)
    }

    /// CAP-17: why `agent` does or does not hold `level` on `subject`.
    pub fn explain(&self, agent: AgentId, level: Access, subject: &PublicKey) -> Explanation {
        if self.kind_of(subject).is_none() {
            let reason = if self.conflicted.contains(subject) {
                Reason::ConflictingGenesis
            } else {
                Reason::UnknownSubject
            };
            return Explanation::Refused(refuse("CAP-5", reason));
        }
        let tree = self.edges.reach_down(*subject, |k| self.kind_of(k));
        if let Some((held, _, _)) = tree.get(&agent) {
            if *held < level {
                return Explanation::Refused(refuse(
                    "CAP-14",
                    Reason::Insufficient { held: *held },
                ));
            }
            let mut path = Vec::new();
            let mut current = agent;
            for _ in 0..=tree.len() {
                let Some((_, via, from)) = tree.get(&current) else {
                    break;
                };
                let access = match self.nodes[*via as usize].info {
                    Info::Delegation { access, .. } => access,
                    _ => Access::Admin,
                };
                path.push(Link {
                    subject: *from,
                    member: current,
                    access,
                    op: self.hash_of(*via),
                });
                if from == subject {
                    break;
                }
                match self.kind_of(from) {
                    Some(kind) => current = AgentId::subject(*from, kind),
                    None => break,
                }
            }
            path.reverse();
            return Explanation::Granted { level: *held, path };
        }
        match self.revoked_path(agent, subject) {
            Some((revocation, delegation)) => Explanation::Refused(refuse(
                "CAP-13",
                Reason::Revoked {
                    revocation,
                    delegation,
                },
            )),
            None => match self.spent_redemption(agent, subject) {
                Some(refusal) => Explanation::Refused(refusal),
                None => Explanation::Refused(refuse("CAP-14", Reason::NotAMember)),
            },
        }
    }

    /// A path of authorised (but possibly revoked) delegations from `subject` to `agent`,
    /// reduced to the revocation that cuts it.
    fn revoked_path(&self, agent: AgentId, subject: &PublicKey) -> Option<(Hash, Hash)> {
        let mut seen: HashSet<PublicKey> = HashSet::new();
        let mut queue: VecDeque<PublicKey> = VecDeque::from([*subject]);
        let mut cut: Option<(Hash, Hash)> = None;
        while let Some(s) = queue.pop_front() {
            if !seen.insert(s) {
                continue;
            }
            for &ix in self.by_subject.get(&s).map(Vec::as_slice).unwrap_or(&[]) {
                let node = &self.nodes[ix as usize];
                let Info::Delegation { delegate, .. } = node.info else {
                    continue;
                };
                if node.stat.is_err() {
                    continue;
                }
                if !node.granting
                    && let Some(pair) = self.revoker_of(ix)
                {
                    if self.held_until_cut(ix, delegate, agent) && cut.is_none_or(|c| pair < c) {
                        cut = Some(pair);
                    }
                    continue;
                }
                if delegate == agent {
                    continue;
                }
                if let Some(key) = delegate.subject_key() {
                    queue.push_back(*key);
                }
            }
        }
        cut
    }

    fn revoker_of(&self, ix: Ix) -> Option<(Hash, Hash)> {
        let node = &self.nodes[ix as usize];
        std::iter::once(&ix)
            .chain(node.chain.iter())
            .filter_map(|p| {
                self.revoked_by.get(p).and_then(|rs| {
                    rs.iter()
                        .map(|r| (self.hash_of(*r), self.hash_of(*p)))
                        .min()
                })
            })
            .min()
    }

    /// CAP-13, REP-30: whether `agent` held what the revoked delegation `ix` (to `delegate`)
    /// passed on before the revocations that cut it: `ix` and a path of statically authorised
    /// delegations from `delegate` down to `agent` none of which has one of those revocations
    /// in its causal past. A device that joined a group only after the group lost a document
    /// never held the document, so it is not a removed member of it.
    fn held_until_cut(&self, ix: Ix, delegate: AgentId, agent: AgentId) -> bool {
        let cuts: Vec<Ix> = std::iter::once(&ix)
            .chain(self.nodes[ix as usize].chain.iter())
            .filter_map(|p| self.revoked_by.get(p))
            .flatten()
            .copied()
            .collect();
        let before_cuts = |x: Ix| !cuts.iter().any(|&r| self.has_in_past(x, r));
        if !before_cuts(ix) {
            return false;
        }
        if delegate == agent {
            return true;
        }
        let Some(start) = delegate.subject_key() else {
            return false;
        };
        let mut seen: HashSet<PublicKey> = HashSet::new();
        let mut queue: VecDeque<PublicKey> = VecDeque::from([*start]);
        while let Some(s) = queue.pop_front() {
            if !seen.insert(s) {
                continue;
            }
            // CAP-13: a subject's creator holds it through its genesis, which nothing revokes.
            if self.created(agent, &s) {
                return true;
            }
            for &link in self.by_subject.get(&s).map(Vec::as_slice).unwrap_or(&[]) {
                let node = &self.nodes[link as usize];
                let Info::Delegation { delegate: next, .. } = node.info else {
                    continue;
                };
                if node.stat.is_err() || !before_cuts(link) {
                    continue;
                }
                if next == agent {
                    return true;
                }
                if let Some(key) = next.subject_key() {
                    queue.push_back(*key);
                }
            }
        }
        false
    }

    /// Whether revocation `r` is in the strict causal past of `x` (through the maximal
    /// revocations `x` builds on, CAP-12).
    fn has_in_past(&self, x: Ix, r: Ix) -> bool {
        self.nodes[x as usize]
            .rev_frontier
            .iter()
            .any(|&f| self.in_past_eq(r, f))
    }

    /// CAP-5..CAP-10, CAP-20: whether a held op is statically authorised (a verdict that no
    /// later op changes). A statically authorised op may still be excluded now (CAP-11); a
    /// relay stores it all the same, since valid ops may name it as a parent (RELAY-2).
    pub fn static_refusal(&self, hash: &Hash) -> Option<Result<(), Refusal>> {
        self.index
            .get(hash)
            .map(|ix| self.nodes[*ix as usize].stat.clone())
    }

    /// CAP-11/12: the current validity of a held op.
    pub fn op_validity(&self, hash: &Hash) -> Option<Validity> {
        self.index
            .get(hash)
            .map(|ix| self.nodes[*ix as usize].validity.clone())
    }

    /// Starts (or stops, discarding what was recorded) recording the validity changes of held
    /// ops, for [`Checker::drain_validity_changes`]. Off by default: nothing is kept.
    pub fn record_validity_changes(&mut self, on: bool) {
        self.validity_changes = on.then(Vec::new);
    }

    /// The validity changes of held ops since the last drain, in the order they happened, as
    /// `(op, before, after)`. An op being applied is not listed (its first validity is not a
    /// change; [`IngestOutcome::Applied`](super::IngestOutcome::Applied) reports it). Empty
    /// unless recording is on.
    pub fn drain_validity_changes(&mut self) -> Vec<(Hash, Validity, Validity)> {
        self.validity_changes
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// CAP-13: for a held delegation, whether it currently grants (it may be a valid op that
    /// was revoked, directly or through its chain). `None` for other ops and unknown hashes.
    pub fn grants(&self, hash: &Hash) -> Option<bool> {
        let node = &self.nodes[*self.index.get(hash)? as usize];
        matches!(node.info, Info::Delegation { .. }).then_some(node.granting)
    }

    /// A held op.
    pub fn op(&self, hash: &Hash) -> Option<&AnyVerified> {
        self.index.get(hash).map(|ix| &self.nodes[*ix as usize].op)
    }

    /// The exact envelope bytes of a held op (to serve it to peers).
    pub fn op_bytes(&self, hash: &Hash) -> Option<&[u8]> {
        self.op(hash).map(AnyVerified::as_bytes)
    }

    /// Is the op applied (not merely pending)?
    pub fn contains(&self, hash: &Hash) -> bool {
        self.index.contains_key(hash)
    }

    /// Number of applied ops.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when no op is applied.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every applied op, in an order where parents come first.
    pub fn ops(&self) -> impl Iterator<Item = &AnyVerified> {
        self.nodes.iter().map(|n| &n.op)
    }

    /// The ops applied after the first `seen` (`ops().skip(seen)` without walking the first
    /// `seen`: a caller that remembers how far it read pays only for what is new).
    pub fn ops_since(&self, seen: usize) -> impl Iterator<Item = &AnyVerified> {
        self.nodes.get(seen..).unwrap_or(&[]).iter().map(|n| &n.op)
    }

    /// The ops of one subject (genesis, auth and, for documents, content), parents first.
    pub fn ops_for(&self, subject: &PublicKey) -> impl Iterator<Item = &AnyVerified> {
        self.ops_for_since(subject, 0)
    }

    /// The ops of one subject after its first `seen` (`ops_for(subject).skip(seen)` in time
    /// proportional to what is new, REP-23).
    pub fn ops_for_since(
        &self,
        subject: &PublicKey,
        seen: usize,
    ) -> impl Iterator<Item = &AnyVerified> {
        self.by_subject
            .get(subject)
            .and_then(|ixs| ixs.get(seen..))
            .unwrap_or(&[])
            .iter()
            .map(|ix| &self.nodes[*ix as usize].op)
    }

    /// The genesis and auth ops of one subject, parents first.
    pub fn auth_ops_for(&self, subject: &PublicKey) -> impl Iterator<Item = &AnyVerified> {
        self.ops_for(subject)
            .filter(|op| !matches!(op, AnyVerified::Content(_)))
    }

    /// Facts about a subject.
    pub fn subject_info(&self, subject: &PublicKey) -> Option<SubjectInfo> {
        self.subjects.get(subject).map(|s| SubjectInfo {
            kind: s.kind,
            creator: s.creator,
            genesis: self.hash_of(s.genesis),
            conflicted: self.conflicted.contains(subject),
        })
    }

    /// GEN-2, `specs/cgka.md` CGKA-25: the key-agreement init that `document`'s genesis names,
    /// with the document's creator; `None` if the genesis is not held, is not a document's, or
    /// is conflicted (CAP-5).
    pub fn key_agreement(&self, document: &DocumentId) -> Option<InitBinding> {
        let state = self.subjects.get(&document.0)?;
        if self.conflicted.contains(&document.0) {
            return None;
        }
        let AnyVerified::Genesis(genesis) = &self.nodes[state.genesis as usize].op else {
            return None;
        };
        Some(InitBinding {
            document: *document,
            creator: genesis.body.creator,
            init: genesis.body.key_agreement?,
        })
    }

    /// Every known subject id.
    pub fn subjects(&self) -> impl Iterator<Item = &PublicKey> {
        self.subjects.keys()
    }

    /// Current heads of `subject`'s auth DAG (its genesis and auth ops with no successor on
    /// the same subject): what a new op on it names as predecessors (CAP-20).
    pub fn auth_heads(&self, subject: &PublicKey) -> Vec<Hash> {
        let mut out: Vec<Hash> = self
            .auth_heads
            .get(subject)
            .into_iter()
            .flatten()
            .map(|ix| self.hash_of(*ix))
            .collect();
        out.sort_unstable();
        out
    }

    /// Current heads of a document's content DAG.
    pub fn content_heads(&self, document: &PublicKey) -> Vec<Hash> {
        let mut out: Vec<Hash> = self
            .content_heads
            .get(document)
            .map(|h| h.iter().map(|ix| self.hash_of(*ix)).collect())
            .unwrap_or_default();
        out.sort_unstable();
        out
    }

    /// Number of ops waiting in the pending set.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Hashes pending ops wait for (to request from peers).
    pub fn missing(&self) -> Vec<Hash> {
        self.pending.missing()
    }

    /// The subjects of the ops waiting in the pending set.
    pub fn pending_subjects(&self) -> BTreeSet<PublicKey> {
        self.pending.subjects()
    }
}
