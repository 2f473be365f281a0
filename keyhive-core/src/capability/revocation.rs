//! CAP-12: which revocations are effective, and the incremental re-evaluation that follows.

use std::collections::{HashMap, HashSet};

use super::checker::{Checker, Info};
use super::membership::Ix;
use super::validity::Validity;

impl Checker {
    /// The CAP-12 priority key of a revocation: (issuer depth, hash).
    fn rev_key(&self, r: Ix) -> (u32, crate::crypto::hash::Hash) {
        let depth = match self.nodes[r as usize].info {
            Info::Revocation { issuer_depth, .. } => issuer_depth,
            _ => u32::MAX,
        };
        (depth, self.hash_of(r))
    }

    /// CAP-12: recomputes the effective revocations, then refreshes every op whose chain
    /// touches a delegation whose revokers changed, plus `seeds`.
    pub(crate) fn recompute_effective(&mut self, seeds: &[Ix]) {
        let mut order: Vec<Ix> = self.revocations.clone();
        order.sort_by_cached_key(|r| self.rev_key(*r));
        let rank: HashMap<Ix, usize> = order.iter().enumerate().map(|(i, r)| (*r, i)).collect();

        let mut processed: HashSet<Ix> = HashSet::with_capacity(order.len());
        let mut revoked_by: HashMap<Ix, Vec<Ix>> = HashMap::new();
        let mut status: HashMap<Ix, Validity> = HashMap::with_capacity(order.len());
        let mut stack: Vec<(Ix, bool)> = Vec::new();
        for &start in &order {
            stack.push((start, false));
            while let Some((x, expanded)) = stack.pop() {
                if processed.contains(&x) {
                    continue;
                }
                if expanded {
                    processed.insert(x);
                    let validity = self.evaluate(x, &revoked_by);
                    if validity.is_valid()
                        && let Info::Revocation {
                            target: Some(t), ..
                        } = self.nodes[x as usize].info
                    {
                        revoked_by.entry(t).or_default().push(x);
                    }
                    status.insert(x, validity);
                    continue;
                }
                stack.push((x, true));
                // Priority inheritance: the maximal revocations of x's past go first, in
                // key order (smallest key on top of the stack).
                let mut before: Vec<Ix> = self.nodes[x as usize]
                    .rev_frontier
                    .iter()
                    .copied()
                    .filter(|a| !processed.contains(a))
                    .collect();
                before.sort_by_key(|a| std::cmp::Reverse(rank.get(a).copied()));
                stack.extend(before.into_iter().map(|a| (a, false)));
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
