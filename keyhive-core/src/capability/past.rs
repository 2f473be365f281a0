//! Causal-past helpers of the checker (CAP-3, CAP-12): direct-parent checks, the bit set of a
//! revocation's past, and the revocation frontier of an op.

use super::checker::{Checker, Info};
use super::membership::Ix;

impl Checker {
    /// True iff `x` is `r` or in `r`'s causal past (`r` must be a revocation).
    pub(crate) fn in_past_eq(&self, x: Ix, r: Ix) -> bool {
        if x == r {
            return true;
        }
        if x > r {
            return false;
        }
        match &self.nodes[r as usize].info {
            Info::Revocation { past, .. } => bit(past, x),
            _ => false,
        }
    }

    /// CAP-3: is `a` one of `parents` (sorted)? Every op a proof or revocation names must be
    /// a direct parent, so that checking it is O(log parents) and never walks the DAG.
    pub(crate) fn in_past_of_parents(&self, a: Ix, parents: &[Ix]) -> bool {
        parents.binary_search(&a).is_ok()
    }

    /// The causal past of revocation `ix` as a bit set over op indices.
    pub(crate) fn compute_past(&self, ix: Ix) -> Vec<u64> {
        let mut past = vec![0u64; (ix as usize) / 64 + 1];
        let mut stack: Vec<Ix> = self.nodes[ix as usize].parents.to_vec();
        while let Some(n) = stack.pop() {
            if bit(&past, n) {
                continue;
            }
            set_bit(&mut past, n);
            let node = &self.nodes[n as usize];
            if let Info::Revocation { past: other, .. } = &node.info
                && !other.is_empty()
            {
                for (w, o) in past.iter_mut().zip(other.iter()) {
                    *w |= *o;
                }
                continue;
            }
            stack.extend(node.parents.iter().copied().filter(|p| !bit(&past, *p)));
        }
        past
    }

    /// CAP-12: the maximal revocations among the parents and their pasts.
    pub(crate) fn frontier_of(&self, parents: &[Ix]) -> Box<[Ix]> {
        let mut cand: Vec<Ix> = Vec::new();
        for &p in parents {
            let node = &self.nodes[p as usize];
            if matches!(node.info, Info::Revocation { .. }) && node.stat.is_ok() {
                cand.push(p);
            } else {
                cand.extend_from_slice(&node.rev_frontier);
            }
        }
        if cand.len() <= 1 {
            return cand.into_boxed_slice();
        }
        cand.sort_unstable();
        cand.dedup();
        let maximal: Vec<Ix> = cand
            .iter()
            .copied()
            .filter(|&a| !cand.iter().any(|&b| b != a && self.in_past_eq(a, b)))
            .collect();
        maximal.into_boxed_slice()
    }
}

pub(crate) fn bit(set: &[u64], i: Ix) -> bool {
    set.get(i as usize / 64)
        .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
}

pub(crate) fn set_bit(set: &mut [u64], i: Ix) {
    if let Some(w) = set.get_mut(i as usize / 64) {
        *w |= 1u64 << (i % 64);
    }
}
