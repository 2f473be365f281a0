//! Causally closed delivery (`specs/capabilities.md` §8, CAP-20..CAP-22).
//!
//! A device must be able to apply every op it is served, and must be served nothing of a
//! subject it may not pull. Both hold because an op's parents never leave its subject's
//! *scope* (CAP-20): the subject itself and the groups and documents its delegations name,
//! transitively (CAP-21). A relay serves each device the auth ops of the scope of every
//! subject it may pull, which is closed under parents by construction. Content heads that a
//! revocation records across documents are witnesses, not parents (CAP-22), so they never
//! pull another document's ops into the closure.

use std::collections::{BTreeSet, HashSet, VecDeque};

use crate::crypto::hash::Hash;
use crate::crypto::signing::PublicKey;

use super::access::AgentId;
use super::checker::{Checker, Info};
use super::membership::Ix;
use super::op::AnyVerified;
use super::past::{bit, set_bit};
use super::validity::{Reason, Refusal, refuse};

impl Checker {
    /// CAP-20: every parent of `op` (a statically authorised op on `subject`) lies in its
    /// subject's scope: an auth op's predecessors and a content op's auth heads are genesis
    /// or auth ops of the same subject, delegations its proof names, or the genesis of a
    /// group or document such a delegation names; a content op's predecessors are content
    /// ops of the same document.
    pub(crate) fn check_parent_scope(&self, op: &AnyVerified) -> Result<(), Refusal> {
        let (subject, auth_parents, content_parents, references) = match op {
            AnyVerified::Genesis(_) => return Ok(()),
            AnyVerified::Auth(v) => (
                v.body.subject,
                v.predecessors.as_slice(),
                &[][..],
                v.body.action.references(),
            ),
            AnyVerified::Content(v) => (
                v.body.document.0,
                v.body.auth_heads.as_slice(),
                v.predecessors.as_slice(),
                v.body.proof.references(),
            ),
        };
        let refs: Vec<Ix> = references
            .iter()
            .filter_map(|h| self.index.get(h).copied())
            .collect();
        let named: HashSet<PublicKey> = refs
            .iter()
            .filter_map(|r| match self.nodes[*r as usize].info {
                Info::Delegation { delegate, .. } => delegate.subject_key().copied(),
                _ => None,
            })
            .collect();
        let out_of_scope = |hash: &Hash| refuse("CAP-20", Reason::ParentOutOfScope(*hash));
        for hash in auth_parents {
            let &p = self.index.get(hash).ok_or_else(|| out_of_scope(hash))?;
            let node = &self.nodes[p as usize];
            let allowed = match node.info {
                Info::Content => false,
                Info::Genesis => node.subject == subject || named.contains(&node.subject),
                _ => node.subject == subject || refs.contains(&p),
            };
            if !allowed {
                return Err(out_of_scope(hash));
            }
        }
        for hash in content_parents {
            let &p = self.index.get(hash).ok_or_else(|| out_of_scope(hash))?;
            let node = &self.nodes[p as usize];
            if !matches!(node.info, Info::Content) || node.subject != subject {
                return Err(out_of_scope(hash));
            }
        }
        Ok(())
    }

    /// CAP-21: remembers the group or document a statically authorised delegation names.
    pub(crate) fn note_delegated_subject(&mut self, ix: Ix) {
        let node = &self.nodes[ix as usize];
        if node.stat.is_err() {
            return;
        }
        if let Info::Delegation { delegate, .. } = node.info
            && let Some(key) = delegate.subject_key()
        {
            self.delegated_subjects
                .entry(node.subject)
                .or_default()
                .insert(*key);
        }
    }

    /// CAP-21: the scope of `subject`: itself and, transitively, every group or document a
    /// statically authorised delegation on a subject of the scope names (granting or not).
    pub fn scope(&self, subject: &PublicKey) -> BTreeSet<PublicKey> {
        let mut out = BTreeSet::from([*subject]);
        let mut queue = VecDeque::from([*subject]);
        while let Some(next) = queue.pop_front() {
            for below in self.delegated_subjects.get(&next).into_iter().flatten() {
                if out.insert(*below) {
                    queue.push_back(*below);
                }
            }
        }
        out
    }

    /// CAP-21: every subject whose auth ops `agent` is served: the scope of each subject it
    /// holds at least `pull` on. Its content, key agreement and ciphertext are served only
    /// for the subjects it may pull itself.
    pub fn served_subjects(&self, agent: AgentId) -> BTreeSet<PublicKey> {
        let mut out: BTreeSet<PublicKey> = self.reachable(agent).keys().copied().collect();
        let mut queue: VecDeque<PublicKey> = out.iter().copied().collect();
        while let Some(next) = queue.pop_front() {
            for below in self.delegated_subjects.get(&next).into_iter().flatten() {
                if out.insert(*below) {
                    queue.push_back(*below);
                }
            }
        }
        out
    }

    /// CAP-22: records what revocation `r`'s content heads witness, and which of them it
    /// still waits for.
    pub(crate) fn record_witness(&mut self, r: Ix) {
        let AnyVerified::Auth(v) = &self.nodes[r as usize].op else {
            return;
        };
        let mut witness = vec![0u64; self.nodes.len() / 64 + 1];
        let mut stack: Vec<Ix> = Vec::new();
        let mut awaited: Vec<Hash> = Vec::new();
        for head in &v.body.content_heads {
            match self.index.get(head) {
                Some(&h) => stack.push(h),
                None => awaited.push(*head),
            }
        }
        while let Some(n) = stack.pop() {
            let node = &self.nodes[n as usize];
            if bit(&witness, n) || !matches!(node.info, Info::Content) {
                continue;
            }
            set_bit(&mut witness, n);
            if let AnyVerified::Content(c) = &node.op {
                stack.extend(c.predecessors.iter().filter_map(|p| self.index.get(p)));
            }
        }
        for head in awaited {
            let waiting = self.awaited_witnesses.entry(head).or_default();
            if !waiting.contains(&r) {
                waiting.push(r);
            }
        }
        self.witnesses.insert(r, witness);
    }

    /// CAP-22: a content head of `document` that some held revocations named has arrived:
    /// widen their witness and re-evaluate the document's content ops their targets hit.
    pub(crate) fn witness_arrived(&mut self, document: PublicKey, revocations: &[Ix]) {
        for &r in revocations {
            self.record_witness(r);
            let Info::Revocation {
                target: Some(target),
                ..
            } = self.nodes[r as usize].info
            else {
                continue;
            };
            let hit: Vec<Ix> = self
                .by_subject
                .get(&document)
                .into_iter()
                .flatten()
                .copied()
                .filter(|ix| {
                    let n = &self.nodes[*ix as usize];
                    matches!(n.info, Info::Content) && n.chain.binary_search(&target).is_ok()
                })
                .collect();
            for ix in hit {
                self.refresh(ix);
            }
        }
    }

    /// CAP-22: is `x` a content op that revocation `r` witnesses?
    pub(crate) fn witnessed(&self, x: Ix, r: Ix) -> bool {
        matches!(self.nodes[x as usize].info, Info::Content)
            && self.witnesses.get(&r).is_some_and(|w| bit(w, x))
    }
}
