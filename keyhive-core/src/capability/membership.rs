//! The membership graph of granting delegations and widest-path effective access
//! (`specs/capabilities.md` CAP-13, CAP-14).

use std::collections::{BTreeMap, HashMap};

use crate::crypto::signing::PublicKey;
use crate::identity::SubjectKind;

use super::access::{Access, AgentId, rank};

/// Node index in the checker's op arena.
pub(crate) type Ix = u32;

/// One granting edge: `member` holds `access` on `subject` through the op `via`.
type EdgeList = Vec<(Ix, Access)>;

/// Direct membership edges in both directions, from currently granting delegations and
/// subject roots (CAP-13). `add` and `remove` report whether an edge changed, so that the
/// checker can invalidate the query caches that depend on it (CAP-18).
#[derive(Default, Debug)]
pub(crate) struct Edges {
    down: HashMap<PublicKey, HashMap<AgentId, EdgeList>>,
    up: HashMap<AgentId, HashMap<PublicKey, EdgeList>>,
}

fn best(list: &EdgeList) -> Option<Access> {
    list.iter().map(|(_, a)| *a).max()
}

impl Edges {
    pub(crate) fn add(
        &mut self,
        subject: PublicKey,
        member: AgentId,
        via: Ix,
        access: Access,
    ) -> bool {
        let down = self
            .down
            .entry(subject)
            .or_default()
            .entry(member)
            .or_default();
        if down.iter().any(|(ix, _)| *ix == via) {
            return false;
        }
        down.push((via, access));
        self.up
            .entry(member)
            .or_default()
            .entry(subject)
            .or_default()
            .push((via, access));
        true
    }

    pub(crate) fn remove(&mut self, subject: PublicKey, member: AgentId, via: Ix) -> bool {
        let mut changed = false;
        if let Some(members) = self.down.get_mut(&subject)
            && let Some(list) = members.get_mut(&member)
        {
            let before = list.len();
            list.retain(|(ix, _)| *ix != via);
            changed = list.len() != before;
            if list.is_empty() {
                members.remove(&member);
            }
        }
        if let Some(subjects) = self.up.get_mut(&member)
            && let Some(list) = subjects.get_mut(&subject)
        {
            list.retain(|(ix, _)| *ix != via);
            if list.is_empty() {
                subjects.remove(&subject);
            }
        }
        changed
    }

    /// The subjects `member` is a direct member of, with the granting ops behind each.
    pub(crate) fn direct_of(&self, member: &AgentId) -> Option<&HashMap<PublicKey, EdgeList>> {
        self.up.get(member)
    }

    /// Direct members of `subject` with the granting ops behind each.
    pub(crate) fn direct(&self, subject: &PublicKey) -> Option<&HashMap<AgentId, EdgeList>> {
        self.down.get(subject)
    }

    /// CAP-14: every subject `agent` reaches, with its effective level: the widest path
    /// (best over paths of the minimum along each path). Cycles are safe: a level only ever
    /// rises, at most four times per subject.
    pub(crate) fn reach_up(
        &self,
        agent: AgentId,
        kind_of: impl Fn(&PublicKey) -> Option<SubjectKind>,
    ) -> HashMap<PublicKey, Access> {
        let mut best_of: HashMap<PublicKey, Access> = HashMap::new();
        let mut buckets: [Vec<PublicKey>; 4] = Default::default();
        let relax = |best_of: &mut HashMap<PublicKey, Access>,
                     buckets: &mut [Vec<PublicKey>; 4],
                     s: PublicKey,
                     level: Access| {
            match best_of.get(&s) {
                Some(old) if *old >= level => return,
                _ => {}
            }
            best_of.insert(s, level);
            buckets[rank(level)].push(s);
        };
        if let Some(subjects) = self.up.get(&agent) {
            for (s, list) in subjects {
                if let Some(level) = best(list) {
                    relax(&mut best_of, &mut buckets, *s, level);
                }
            }
        }
        for r in (0..4).rev() {
            while let Some(s) = buckets[r].pop() {
                let level = Access::ALL[r];
                if best_of.get(&s).copied() != Some(level) {
                    continue;
                }
                let Some(kind) = kind_of(&s) else { continue };
                let as_agent = AgentId::subject(s, kind);
                if as_agent == agent {
                    continue;
                }
                if let Some(subjects) = self.up.get(&as_agent) {
                    for (s2, list) in subjects {
                        if let Some(l2) = best(list) {
                            relax(&mut best_of, &mut buckets, *s2, l2.min(level));
                        }
                    }
                }
            }
        }
        best_of.remove(agent.public_key());
        best_of
    }

    /// CAP-14: every agent that reaches `subject` (transitively through groups), with its
    /// effective level, and for each the edge (op, parent subject) its best path ends with.
    pub(crate) fn reach_down(
        &self,
        subject: PublicKey,
        kind_of: impl Fn(&PublicKey) -> Option<SubjectKind>,
    ) -> BTreeMap<AgentId, (Access, Ix, PublicKey)> {
        let mut best_of: BTreeMap<AgentId, (Access, Ix, PublicKey)> = BTreeMap::new();
        let mut buckets: [Vec<AgentId>; 4] = Default::default();
        let self_agent = kind_of(&subject).map(|k| AgentId::subject(subject, k));
        let push_members = |best_of: &mut BTreeMap<AgentId, (Access, Ix, PublicKey)>,
                            buckets: &mut [Vec<AgentId>; 4],
                            from: PublicKey,
                            cap: Access| {
            let Some(members) = self.down.get(&from) else {
                return;
            };
            for (member, list) in members {
                if Some(*member) == self_agent {
                    continue;
                }
                let Some((via, level)) = list.iter().max_by_key(|(ix, a)| (*a, u32::MAX - ix))
                else {
                    continue;
                };
                let level = (*level).min(cap);
                match best_of.get(member) {
                    Some((old, _, _)) if *old >= level => continue,
                    _ => {}
                }
                best_of.insert(*member, (level, *via, from));
                buckets[rank(level)].push(*member);
            }
        };
        push_members(&mut best_of, &mut buckets, subject, Access::Admin);
        for r in (0..4).rev() {
            while let Some(agent) = buckets[r].pop() {
                let level = Access::ALL[r];
                if best_of.get(&agent).map(|e| e.0) != Some(level) {
                    continue;
                }
                if let Some(key) = agent.subject_key()
                    && kind_of(key).map(|k| AgentId::subject(*key, k)) == Some(agent)
                {
                    push_members(&mut best_of, &mut buckets, *key, level);
                }
            }
        }
        best_of
    }
}
