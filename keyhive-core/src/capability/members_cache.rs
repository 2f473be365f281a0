//! Cached member maps kept up to date edge by edge (`specs/capabilities.md` CAP-18a): when a
//! membership edge changes, only the agents below it are re-evaluated, and each map keeps a
//! short log of the agents whose level changed, so that a caller holding an older version
//! (the replica matching a key agreement to the readers, REP-3) can catch up in O(changes).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::crypto::signing::PublicKey;
use crate::identity::SubjectKind;

use super::access::{Access, AgentId, rank};
use super::checker::Checker;

/// Most log entries a map keeps; past it the log restarts (older versions get `None`).
const MAX_LOG: usize = 4_096;

/// One subject's cached member map (`Checker::members`) and what changed in it.
#[derive(Debug)]
pub(crate) struct CachedMembers {
    /// Every agent with access to the subject, with its effective level (CAP-14).
    pub(crate) map: Arc<BTreeMap<AgentId, Access>>,
    /// This state's version: a number the checker never hands out twice.
    pub(crate) version: u64,
    /// The oldest version the log reaches back to (the map's computation from scratch, or
    /// the last restart of the log).
    since: u64,
    /// `(version, agent)`: the agent's level changed (or may have) in the update that made
    /// `version`.
    log: Vec<(u64, AgentId)>,
}

impl CachedMembers {
    /// A map computed from scratch as version `version`.
    pub(crate) fn fresh(map: BTreeMap<AgentId, Access>, version: u64) -> Self {
        CachedMembers {
            map: Arc::new(map),
            version,
            since: version,
            log: Vec::new(),
        }
    }

    /// CAP-18a: the agents whose level may differ from what it was at `version`, or `None`
    /// when the log does not reach back that far (the caller recomputes from the map).
    pub(crate) fn changed_since(&self, version: u64) -> Option<Vec<AgentId>> {
        if version < self.since || version > self.version {
            return None;
        }
        let start = self.log.partition_point(|(v, _)| *v <= version);
        let mut out: Vec<AgentId> = self.log[start..].iter().map(|(_, a)| *a).collect();
        out.sort_unstable();
        out.dedup();
        Some(out)
    }

    fn record(&mut self, version: u64, changed: &[AgentId]) {
        self.version = version;
        if self.log.len() + changed.len() > MAX_LOG {
            self.log.clear();
            self.since = version;
            return;
        }
        self.log.extend(changed.iter().map(|a| (version, *a)));
    }
}

impl Checker {
    /// CAP-18a: brings `cached`, the member map of `subject`, up to date after the membership
    /// edges `changed` (`(subject, member)` pairs) changed, as version `version`.
    ///
    /// Only agents at or below a changed edge's member can change level: any path whose
    /// level changed contains a changed edge, and the part of a path after its last changed
    /// edge is made of current edges. So the agents below the members of the changed edges
    /// that matter here (those leaving `subject` itself or an agent in the map) are taken out
    /// and their widest paths recomputed, starting from the edges that enter them from the
    /// rest of the map, whose levels cannot have changed. The result equals a computation
    /// from scratch (`Edges::reach_down`); `members_cache_tests` checks it against one.
    pub(crate) fn update_members(
        &self,
        subject: PublicKey,
        cached: &mut CachedMembers,
        changed: &[(PublicKey, AgentId)],
        version: u64,
    ) {
        let self_agent = self.kind_of(&subject).map(|k| AgentId::subject(subject, k));
        let roots: Vec<AgentId> = changed
            .iter()
            .filter(|(s, _)| *s == subject || in_map(&cached.map, s))
            .map(|(_, member)| *member)
            .collect();
        if roots.is_empty() {
            return;
        }
        let below = self.below(&roots, self_agent);
        let map = Arc::make_mut(&mut cached.map);
        let old: HashMap<AgentId, Access> = below
            .iter()
            .filter_map(|a| map.remove(a).map(|l| (*a, l)))
            .collect();
        let fresh = self.widest_into(subject, &below, map);
        let mut moved: Vec<AgentId> = below
            .iter()
            .filter(|a| old.get(a) != fresh.get(a))
            .copied()
            .collect();
        moved.sort_unstable();
        map.extend(fresh);
        cached.record(version, &moved);
    }

    /// `roots` and every agent below them through current edges (any agent naming a subject
    /// is followed, whatever its kind: a superset is harmless), never `self_agent`.
    fn below(&self, roots: &[AgentId], self_agent: Option<AgentId>) -> HashSet<AgentId> {
        let mut seen: HashSet<AgentId> = HashSet::new();
        let mut queue: VecDeque<AgentId> = VecDeque::new();
        for r in roots {
            if Some(*r) != self_agent && seen.insert(*r) {
                queue.push_back(*r);
            }
        }
        while let Some(agent) = queue.pop_front() {
            let Some(key) = agent.subject_key() else {
                continue;
            };
            for member in self.edges.direct(key).into_iter().flat_map(|d| d.keys()) {
                if Some(*member) != self_agent && seen.insert(*member) {
                    queue.push_back(*member);
                }
            }
        }
        seen
    }

    /// The widest-path levels (CAP-14) of the agents in `region` (closed downwards), given
    /// the levels in `rest` of every agent of `subject`'s member map outside it. Agents the
    /// subject no longer reaches are left out.
    fn widest_into(
        &self,
        subject: PublicKey,
        region: &HashSet<AgentId>,
        rest: &BTreeMap<AgentId, Access>,
    ) -> HashMap<AgentId, Access> {
        let mut best_of: HashMap<AgentId, Access> = HashMap::new();
        let mut buckets: [Vec<AgentId>; 4] = Default::default();
        let relax = |best_of: &mut HashMap<AgentId, Access>,
                     buckets: &mut [Vec<AgentId>; 4],
                     agent: AgentId,
                     level: Access| {
            if best_of.get(&agent).is_some_and(|old| *old >= level) {
                return;
            }
            best_of.insert(agent, level);
            buckets[rank(level)].push(agent);
        };
        // Entry edges: from the subject itself, or from an expanded agent outside the region.
        for agent in region {
            let Some(ups) = self.edges.direct_of(agent) else {
                continue;
            };
            for (parent, list) in ups {
                let Some(edge) = list.iter().map(|(_, a)| *a).max() else {
                    continue;
                };
                let cap = if *parent == subject {
                    Some(Access::Admin)
                } else {
                    self.expanded(parent)
                        .filter(|p| !region.contains(p))
                        .and_then(|p| rest.get(&p).copied())
                };
                if let Some(cap) = cap {
                    relax(&mut best_of, &mut buckets, *agent, edge.min(cap));
                }
            }
        }
        for r in (0..4).rev() {
            while let Some(agent) = buckets[r].pop() {
                let level = Access::ALL[r];
                if best_of.get(&agent) != Some(&level) {
                    continue;
                }
                let Some(key) = agent.subject_key() else {
                    continue;
                };
                if self.expanded(key) != Some(agent) {
                    continue;
                }
                for (member, list) in self.edges.direct(key).into_iter().flatten() {
                    if !region.contains(member) {
                        continue;
                    }
                    let Some(edge) = list.iter().map(|(_, a)| *a).max() else {
                        continue;
                    };
                    relax(&mut best_of, &mut buckets, *member, edge.min(level));
                }
            }
        }
        best_of
    }

    /// The agent whose members `Edges::reach_down` follows for subject `key` (none for a
    /// conflicted or unknown subject).
    fn expanded(&self, key: &PublicKey) -> Option<AgentId> {
        self.kind_of(key).map(|k| AgentId::subject(*key, k))
    }
}

/// Whether `map` holds subject `key` as a group or a document.
fn in_map(map: &BTreeMap<AgentId, Access>, key: &PublicKey) -> bool {
    map.contains_key(&AgentId::subject(*key, SubjectKind::Group))
        || map.contains_key(&AgentId::subject(*key, SubjectKind::Document))
}
