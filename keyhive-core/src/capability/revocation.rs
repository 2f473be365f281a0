//! CAP-12: which revocations are effective, and the incremental re-evaluation that follows.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use crate::crypto::hash::Hash;

/// CAP-12 decision order: (lent key, own key), smallest first.
type Priority = ((u32, Hash), (u32, Hash));

use super::checker::{Checker, Info};
use super::membership::Ix;
use super::validity::Validity;

impl Checker {
    /// The CAP-12 priority key of a revocation: (issuer depth, hash).
    fn rev_key(&self, r: Ix) -> (u32, Hash) {
        let depth = match self.nodes[r as usize].info {
            Info::Revocation { issuer_depth, .. } => issuer_depth,
            _ => u32::MAX,
        };
        (depth, self.hash_of(r))
    }

    /// CAP-12: a revocation's place in the decision order: the smallest key among itself
    /// and the revocations on the same subject that have it in their past (so a senior's
    /// revocation lends its priority to the revocations it builds on), then its own key.
    fn priority(&self, r: Ix) -> Priority {
        let own = self.rev_key(r);
        let lent = self.rev_priority.get(&r).copied().unwrap_or(own);
        (lent.min(own), own)
    }

    /// CAP-12: lends the key of `r`, a newly applied authorised revocation, to every
    /// revocation on the same subject in its past.
    pub(crate) fn lend_priority(&mut self, r: Ix) {
        let key = self.rev_key(r);
        let subject = self.nodes[r as usize].subject;
        let ancestors: Vec<Ix> = self
            .revocations
            .iter()
            .copied()
            .filter(|a| {
                *a != r && self.nodes[*a as usize].subject == subject && self.in_past_eq(*a, r)
            })
            .collect();
        for a in ancestors {
            let slot = self.rev_priority.entry(a).or_insert(key);
            *slot = (*slot).min(key);
        }
    }

    /// CAP-12: recomputes the effective revocations, then refreshes every op whose chain
    /// touches a delegation whose revokers changed, plus `seeds`.
    pub(crate) fn recompute_effective(&mut self, seeds: &[Ix]) {
        // CAP-12: decide revocations in an order that extends causality, taking among those
        // whose past revocations are all decided the one with the smallest priority (its
        // key, lowered by same-subject descendants). The order of the revocations of a
        // causally closed union of whole subjects (what a device is served, CAP-21) does not
        // depend on revocations outside it, so partial replicas agree with full ones.
        let members: HashSet<Ix> = self.revocations.iter().copied().collect();
        let mut waiting_on: HashMap<Ix, usize> = HashMap::with_capacity(members.len());
        let mut unblocks: HashMap<Ix, Vec<Ix>> = HashMap::new();
        let mut ready: BinaryHeap<Reverse<(Priority, Ix)>> = BinaryHeap::new();
        for &r in &self.revocations {
            let before: Vec<Ix> = self.nodes[r as usize]
                .rev_frontier
                .iter()
                .copied()
                .filter(|a| members.contains(a))
                .collect();
            if before.is_empty() {
                ready.push(Reverse((self.priority(r), r)));
            } else {
                waiting_on.insert(r, before.len());
                for a in before {
                    unblocks.entry(a).or_default().push(r);
                }
            }
        }
        let mut revoked_by: HashMap<Ix, Vec<Ix>> = HashMap::new();
        let mut status: HashMap<Ix, Validity> = HashMap::with_capacity(members.len());
        while let Some(Reverse((_, x))) = ready.pop() {
            let validity = self.evaluate(x, &revoked_by);
            if validity.is_valid()
                && let Info::Revocation {
                    target: Some(t), ..
                } = self.nodes[x as usize].info
            {
                revoked_by.entry(t).or_default().push(x);
            }
            status.insert(x, validity);
            for &next in unblocks.get(&x).into_iter().flatten() {
                if let Some(n) = waiting_on.get_mut(&next) {
                    *n -= 1;
                    if *n == 0 {
                        ready.push(Reverse((self.priority(next), next)));
                    }
                }
            }
        }
        for list in revoked_by.values_mut() {
            list.sort_unstable();
        }

        // Delegations whose set of effective revokers changed.
        let mut changed: Vec<Ix> = Vec::new();
        for (t, list) in &revoked_by {
            if self.revoked_by.get(t) != Some(list) {
                changed.push(*t);
            }
        }
        for t in self.revoked_by.keys() {
            if !revoked_by.contains_key(t) {
                changed.push(*t);
            }
        }
        let mut status_changed: Vec<Ix> = status
            .iter()
            .filter(|(r, v)| self.rev_status.get(r) != Some(*v))
            .map(|(r, _)| *r)
            .collect();
        self.revoked_by = revoked_by;
        self.rev_status = status;

        // Everything whose chain runs through a changed delegation (cascade, CAP-11/13).
        let mut affected: HashSet<Ix> = HashSet::new();
        let mut queue: Vec<Ix> = changed;
        queue.append(&mut status_changed);
        queue.extend_from_slice(seeds);
        while let Some(x) = queue.pop() {
            if !affected.insert(x) {
                continue;
            }
            if let Some(deps) = self.dependents.get(&x) {
                queue.extend(deps.iter().copied().filter(|d| !affected.contains(d)));
            }
        }
        let mut affected: Vec<Ix> = affected.into_iter().collect();
        affected.sort_unstable();
        for x in affected {
            self.refresh(x);
        }
    }
}
