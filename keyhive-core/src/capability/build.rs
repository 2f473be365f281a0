//! Local helpers that build, sign and apply ops for a device, choosing the proof and the
//! causal predecessors automatically (CAP-19), within the subject's scope (CAP-20). The CLI
//! and the sync layer use these.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::cgka::{Cgka, CgkaOp, InitError};
use crate::crypto::hash::Hash;
use crate::crypto::signing::PublicKey;
use crate::identity::{Device, DocumentId, Genesis, IndividualId};
use crate::signed::{Op, OpBody, SignError, Verified};

use super::access::{Access, AgentId};
use super::checker::{Checker, Info, IngestError};
use super::membership::Ix;
use super::op::{
    Action, AuthBody, AuthOp, ContentBody, ContentHeader, ContentOp, MAX_AUTH_HEADS,
    MAX_CONTENT_HEADS, MAX_MEMBERSHIP_LINKS, Payload, Proof,
};
use super::root_form::{sign_root_form, takes_root_form};

/// Why a local op could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The subject is unknown here (its genesis has not been received).
    #[error("unknown subject {0}")]
    UnknownSubject(PublicKey),
    /// The device holds no valid chain giving it the needed level (and seniority).
    #[error("this device holds no {needed} authority on the subject that could do this")]
    NoAuthority {
        /// The level the op needs.
        needed: Access,
    },
    /// The named op is not a delegation on the subject.
    #[error("{0} is not a delegation on this subject")]
    NotADelegation(Hash),
    /// The agent has no granting delegation on the subject.
    #[error("the agent holds no delegation on this subject")]
    NothingToRevoke,
    /// Signing failed.
    #[error("cannot sign")]
    Sign(#[from] SignError),
    /// Applying the op locally failed.
    #[error("cannot apply")]
    Apply(#[from] IngestError),
    /// The new document's key agreement could not be created (GEN-2).
    #[error("cannot create the document's key agreement")]
    KeyAgreement(#[from] InitError),
}

/// A document just created by [`Checker::create_document`]: its genesis (applied to the
/// checker) and its key agreement with the creator seated, whose init op the genesis names
/// (GEN-2, `specs/cgka.md` CGKA-25). Publish the genesis, then the init.
#[derive(Debug)]
pub struct NewDocument {
    /// The document's genesis.
    pub genesis: Verified<Op<Genesis>>,
    /// The document's key agreement, owned by the creating device.
    pub cgka: Cgka,
    /// The key agreement's init op.
    pub init: CgkaOp,
}

impl NewDocument {
    /// The new document's id.
    pub fn id(&self) -> DocumentId {
        DocumentId(self.genesis.issuer)
    }
}

impl Checker {
    /// GEN-1: creates a group whose root admin is `device`, and applies its genesis.
    pub fn create_group(&mut self, device: &Device) -> Result<Verified<Op<Genesis>>, BuildError> {
        let genesis = Genesis::create_group(device.id())?;
        self.apply_verified(genesis.clone())?;
        Ok(genesis)
    }

    /// GEN-1, GEN-2: creates a document whose root admin is `device` together with its key
    /// agreement (`device` seated at leaf 0), and applies the genesis, which names the key
    /// agreement's init (`specs/cgka.md` CGKA-25).
    pub fn create_document(&mut self, device: &Device) -> Result<NewDocument, BuildError> {
        let (genesis, (cgka, init)) = Genesis::create_document(device.id(), |document| {
            let (cgka, init) = Cgka::create(document, device)?;
            Ok::<_, BuildError>((init.hash(), (cgka, init)))
        })?;
        self.apply_verified(genesis.clone())?;
        Ok(NewDocument {
            genesis,
            cgka,
            init,
        })
    }

    /// Builds, signs and applies a delegation of `access` on `subject` to `delegate`.
    pub fn delegate(
        &mut self,
        device: &Device,
        subject: &PublicKey,
        delegate: AgentId,
        access: Access,
    ) -> Result<Verified<AuthOp>, BuildError> {
        let (proof, refs) = self
            .find_proof_refs(device.id(), subject, access, u32::MAX)
            .ok_or(BuildError::NoAuthority { needed: access })?;
        let must = self.must_include(subject, &refs)?;
        let predecessors = self.pick(must, self.subject_heads(subject), AuthOp::MAX_P);
        let content_heads = self.recorded_content_heads(&[*subject]);
        let body = AuthBody {
            subject: *subject,
            action: Action::Delegate {
                delegate,
                access,
                proof,
            },
            content_heads,
        };
        self.sign_and_apply(device, predecessors, body)
    }

    /// Builds, signs and applies a revocation of `delegation` (a delegation on `subject`).
    pub fn revoke(
        &mut self,
        device: &Device,
        subject: &PublicKey,
        delegation: &Hash,
    ) -> Result<Verified<AuthOp>, BuildError> {
        let target = self
            .index
            .get(delegation)
            .copied()
            .filter(|t| self.nodes[*t as usize].subject == *subject)
            .ok_or(BuildError::NotADelegation(*delegation))?;
        let depth = match self.nodes[target as usize].info {
            Info::Delegation { depth, .. } | Info::Invitation { depth, .. } => depth,
            _ => return Err(BuildError::NotADelegation(*delegation)),
        };
        let (proof, refs) = self
            .find_proof_refs(device.id(), subject, Access::Admin, depth)
            .ok_or(BuildError::NoAuthority {
                needed: Access::Admin,
            })?;
        let mut must = self.must_include(subject, &refs)?;
        must.push(target);
        let predecessors = self.pick(must, self.subject_heads(subject), AuthOp::MAX_P);
        // CAP-11, CAP-22: witness the content of every document whose access may flow
        // through the subject, so that what the revoked party wrote before stays valid.
        let mut docs: Vec<PublicKey> = vec![*subject];
        if let Some(kind) = self.subjects.get(subject).map(|s| s.kind) {
            docs.extend(
                self.reachable(AgentId::subject(*subject, kind))
                    .keys()
                    .copied(),
            );
        }
        let content_heads = self.recorded_content_heads(&docs);
        let body = AuthBody {
            subject: *subject,
            action: Action::Revoke {
                delegation: *delegation,
                proof,
            },
            content_heads,
        };
        self.sign_and_apply(device, predecessors, body)
    }

    /// Revokes every granting delegation on `subject` to `agent`, all or none (CAP-19): the
    /// order is planned before anything is signed (`Checker::revocation_order`), so a
    /// device removing itself revokes the delegation its own authority runs through last,
    /// and a member this device cannot remove completely is not removed at all.
    pub fn revoke_member(
        &mut self,
        device: &Device,
        subject: &PublicKey,
        agent: AgentId,
    ) -> Result<Vec<Verified<AuthOp>>, BuildError> {
        let targets = self.delegations_to(subject, agent);
        if targets.is_empty() {
            return Err(BuildError::NothingToRevoke);
        }
        let order = self.revocation_order(device.id(), subject, &targets)?;
        order
            .iter()
            .map(|t| self.revoke(device, subject, t))
            .collect()
    }

    /// CAP-19: an order in which `device` can revoke every one of `targets` (delegations on
    /// `subject`), each with a proof that the revocations before it leave granting, or
    /// `NoAuthority` before anything is built. Greedy: the first target (by hash) after whose
    /// revocation every other one still has a proof, else the first that has one now.
    fn revocation_order(
        &self,
        device: IndividualId,
        subject: &PublicKey,
        targets: &[Hash],
    ) -> Result<Vec<Hash>, BuildError> {
        let no_authority = BuildError::NoAuthority {
            needed: Access::Admin,
        };
        let mut left: Vec<(Hash, Ix, u32)> = Vec::with_capacity(targets.len());
        for t in targets {
            let ix = self
                .index
                .get(t)
                .copied()
                .ok_or(BuildError::NotADelegation(*t))?;
            let depth = match self.nodes[ix as usize].info {
                Info::Delegation { depth, .. } | Info::Invitation { depth, .. } => depth,
                _ => return Err(BuildError::NotADelegation(*t)),
            };
            left.push((*t, ix, depth));
        }
        let can = |depth: u32, gone: &[Ix]| {
            self.find_proof_avoiding(device, subject, Access::Admin, depth, gone)
                .is_some()
        };
        let mut gone: Vec<Ix> = Vec::with_capacity(left.len());
        let mut order = Vec::with_capacity(left.len());
        while !left.is_empty() {
            let leaves_the_rest = |&(_, ix, depth): &(Hash, Ix, u32)| {
                if !can(depth, &gone) {
                    return false;
                }
                let mut after = gone.clone();
                after.push(ix);
                left.iter()
                    .all(|&(_, other, d)| other == ix || can(d, &after))
            };
            let next = left
                .iter()
                .position(leaves_the_rest)
                .or_else(|| left.iter().position(|t| can(t.2, &gone)))
                .ok_or(no_authority.clone())?;
            let (hash, ix, _) = left.remove(next);
            gone.push(ix);
            order.push(hash);
        }
        Ok(order)
    }

    /// Builds, signs and applies a content op naming the change blob `payload` (REP-20).
    pub fn write(
        &mut self,
        device: &Device,
        document: DocumentId,
        payload: &[u8],
    ) -> Result<Verified<ContentOp>, BuildError> {
        let (op, ()) = self.write_with(device, document, |_| {
            Ok::<_, BuildError>((
                Payload::Blob {
                    hash: Hash::of_content(payload),
                    len: payload.len() as u64,
                },
                (),
            ))
        })?;
        Ok(op)
    }

    /// Builds, signs and applies a content op on `document` whose payload `seal` makes from
    /// the op's header (INL-4: an inline change binds the header as associated data), after
    /// the proof and the predecessors are chosen and before the op is signed. Returns the op
    /// and what `seal` returned beside the payload (e.g. the change key).
    pub fn write_with<T, E: From<BuildError>>(
        &mut self,
        device: &Device,
        document: DocumentId,
        seal: impl FnOnce(ContentHeader<'_>) -> Result<(Payload, T), E>,
    ) -> Result<(Verified<ContentOp>, T), E> {
        let subject = document.0;
        let (proof, refs) = self
            .find_proof_refs(device.id(), &subject, Access::Write, u32::MAX)
            .ok_or(BuildError::NoAuthority {
                needed: Access::Write,
            })?;
        let must = self.must_include(&subject, &refs)?;
        let auth_heads = self.pick(must, self.subject_heads(&subject), MAX_AUTH_HEADS);
        let content: Vec<Ix> = self
            .content_heads
            .get(&subject)
            .map(|h| {
                h.iter()
                    .copied()
                    .filter(|ix| self.authorised(*ix))
                    .collect()
            })
            .unwrap_or_default();
        let predecessors = self.pick(Vec::new(), content.into_iter(), ContentOp::MAX_P);
        let issuer = device.signing_key().public_key();
        // `Op::new` sorts and de-duplicates; `pick` already returns them that way, and the
        // header the sealer binds must be exactly what is signed.
        let mut predecessors = predecessors;
        predecessors.sort_unstable();
        predecessors.dedup();
        let (payload, sealed) = seal(ContentHeader {
            issuer: &issuer,
            predecessors: &predecessors,
            document,
            auth_heads: &auth_heads,
            proof: &proof,
        })?;
        let body = ContentBody {
            document,
            auth_heads,
            proof,
            payload,
        };
        let op = Verified::sign(Op::new(issuer, predecessors, body), device.signing_key())
            .map_err(BuildError::from)?;
        self.apply_verified(op.clone()).map_err(BuildError::from)?;
        Ok((op, sealed))
    }

    pub(crate) fn sign_and_apply(
        &mut self,
        device: &Device,
        mut predecessors: Vec<Hash>,
        body: AuthBody,
    ) -> Result<Verified<AuthOp>, BuildError> {
        // CAP-23: the subject's genesis is an implied parent of an auth op: not named (32
        // bytes an op).
        if let Some(state) = self.subjects.get(&body.subject) {
            let genesis = self.nodes[state.genesis as usize].op.hash();
            predecessors.retain(|p| *p != genesis);
        }
        let issuer = device.signing_key().public_key();
        // CAP-24: a `Root` proof by the subject's creator is written in the root form, which
        // omits the issuer (32 bytes an op); any other op in version 2.
        let root = takes_root_form(&body)
            && self.subjects.get(&body.subject).map(|s| s.creator.0) == Some(issuer)
            && !self.conflicted.contains(&body.subject);
        let op = Op::new(issuer, predecessors, body);
        let op = if root {
            sign_root_form(op, device.signing_key())?
        } else {
            Verified::sign(op, device.signing_key())?
        };
        self.apply_verified(op.clone())?;
        Ok(op)
    }

    pub(crate) fn must_include(
        &self,
        subject: &PublicKey,
        refs: &[Ix],
    ) -> Result<Vec<Ix>, BuildError> {
        let state = self
            .subjects
            .get(subject)
            .ok_or(BuildError::UnknownSubject(*subject))?;
        let mut must = vec![state.genesis];
        must.extend_from_slice(refs);
        // A chain ending at a group the device created needs that group's genesis in the
        // op's past (CAP-6): name it directly so checking it is O(1).
        if let Some(last) = refs.last()
            && let Info::Delegation { delegate, .. } = self.nodes[*last as usize].info
            && let Some(end) = delegate.subject_key().and_then(|k| self.subjects.get(k))
        {
            must.push(end.genesis);
        }
        Ok(must)
    }

    /// CAP-20: the heads of `subject`'s own auth DAG, the only ops beyond the proof's that a
    /// new op on it may name as parents.
    pub(crate) fn subject_heads(&self, subject: &PublicKey) -> impl Iterator<Item = Ix> + '_ {
        self.auth_heads
            .get(subject)
            .into_iter()
            .flatten()
            .copied()
            .filter(|ix| self.authorised(*ix))
    }

    /// CAP-19: a builder names as parents only statically authorised ops, which relays store
    /// (RELAY-1/2), so what it builds never waits at a relay for a refused parent.
    fn authorised(&self, ix: Ix) -> bool {
        self.nodes[ix as usize].stat.is_ok()
    }

    /// `must` plus the highest of `pool`, up to `cap` hashes.
    pub(crate) fn pick(
        &self,
        must: Vec<Ix>,
        pool: impl Iterator<Item = Ix>,
        cap: usize,
    ) -> Vec<Hash> {
        let mut chosen: HashSet<Ix> = must.into_iter().collect();
        let mut rest: Vec<Ix> = pool.filter(|p| !chosen.contains(p)).collect();
        rest.sort_by_key(|ix| {
            (
                std::cmp::Reverse(self.nodes[*ix as usize].height),
                self.hash_of(*ix),
            )
        });
        for ix in rest {
            if chosen.len() >= cap {
                break;
            }
            chosen.insert(ix);
        }
        let mut out: Vec<Hash> = chosen.into_iter().map(|ix| self.hash_of(ix)).collect();
        out.sort_unstable();
        out
    }

    pub(crate) fn recorded_content_heads(&self, docs: &[PublicKey]) -> Vec<Hash> {
        let pool: Vec<Ix> = docs
            .iter()
            .collect::<HashSet<_>>()
            .into_iter()
            .filter_map(|d| self.content_heads.get(d))
            .flat_map(|h| h.iter().copied())
            .filter(|ix| self.authorised(*ix))
            .collect();
        self.pick(Vec::new(), pool.into_iter(), MAX_CONTENT_HEADS)
    }

    /// CAP-19: the most senior valid proof giving `device` at least `needed` on `subject`,
    /// with issuer depth at most `max_depth` (a revocation needs the target's depth).
    pub fn find_proof(
        &self,
        device: IndividualId,
        subject: &PublicKey,
        needed: Access,
        max_depth: u32,
    ) -> Option<Proof> {
        self.find_proof_refs(device, subject, needed, max_depth)
            .map(|(proof, _)| proof)
    }

    /// As [`Checker::find_proof`], with the indices of the delegations the proof names.
    pub(crate) fn find_proof_refs(
        &self,
        device: IndividualId,
        subject: &PublicKey,
        needed: Access,
        max_depth: u32,
    ) -> Option<(Proof, Vec<Ix>)> {
        self.find_proof_avoiding(device, subject, needed, max_depth, &[])
    }

    /// As [`Checker::find_proof_refs`], as if the delegations `gone` were revoked: no link of
    /// the proof is one of them or has one in its chain (CAP-13 cascade).
    fn find_proof_avoiding(
        &self,
        device: IndividualId,
        subject: &PublicKey,
        needed: Access,
        max_depth: u32,
        gone: &[Ix],
    ) -> Option<(Proof, Vec<Ix>)> {
        let cut = |ix: Ix| {
            !gone.is_empty()
                && (gone.contains(&ix)
                    || self.nodes[ix as usize]
                        .chain
                        .iter()
                        .any(|c| gone.contains(c)))
        };
        if self.conflicted.contains(subject) {
            return None;
        }
        let state = self.subjects.get(subject)?;
        if state.creator == device {
            return Some((Proof::Root, Vec::new()));
        }
        // Walk up from the device (and the groups it created) through granting delegations of
        // at least `needed`, shortest chains first; every hop into `subject` is a candidate.
        // Cost: the device's upward graph, never the subject's member list.
        let me = AgentId::Individual(device);
        let mut chains: HashMap<AgentId, Vec<Ix>> = HashMap::from([(me, Vec::new())]);
        let mut queue: VecDeque<AgentId> = VecDeque::from([me]);
        if let Some(up) = self.edges.direct_of(&me) {
            let mut created: Vec<AgentId> = up
                .iter()
                .filter(|(_, list)| {
                    list.iter()
                        .any(|(ix, _)| matches!(self.nodes[*ix as usize].info, Info::Genesis))
                })
                .filter_map(|(key, _)| {
                    let kind = self.subjects.get(key)?.kind;
                    (!self.conflicted.contains(key)).then(|| AgentId::subject(*key, kind))
                })
                .collect();
            created.sort_unstable();
            for agent in created {
                chains.insert(agent, Vec::new());
                queue.push_back(agent);
            }
        }
        let mut best: Option<(u32, Hash, usize, Ix, Vec<Ix>)> = None;
        while let Some(agent) = queue.pop_front() {
            let Some(up) = self.edges.direct_of(&agent) else {
                continue;
            };
            let chain = chains.get(&agent).cloned().unwrap_or_default();
            let mut hops: Vec<(Hash, Ix, PublicKey)> = Vec::new();
            for (key, list) in up {
                for (ix, access) in list {
                    if *access >= needed
                        && matches!(self.nodes[*ix as usize].info, Info::Delegation { .. })
                        && !cut(*ix)
                    {
                        hops.push((self.hash_of(*ix), *ix, *key));
                    }
                }
            }
            hops.sort_unstable();
            for (hash, ix, key) in hops {
                if key == *subject {
                    if let Info::Delegation { depth, .. } = self.nodes[ix as usize].info
                        && depth <= max_depth
                    {
                        let candidate = (depth, hash, chain.len(), ix, chain.clone());
                        if best.as_ref().is_none_or(|b| {
                            (candidate.0, candidate.1, candidate.2) < (b.0, b.1, b.2)
                        }) {
                            best = Some(candidate);
                        }
                    }
                    continue;
                }
                if chain.len() >= MAX_MEMBERSHIP_LINKS || self.conflicted.contains(&key) {
                    continue;
                }
                let Some(kind) = self.subjects.get(&key).map(|s| s.kind) else {
                    continue;
                };
                let next = AgentId::subject(key, kind);
                if chains.contains_key(&next) {
                    continue;
                }
                let mut next_chain = Vec::with_capacity(chain.len() + 1);
                next_chain.push(ix);
                next_chain.extend_from_slice(&chain);
                chains.insert(next, next_chain);
                queue.push_back(next);
            }
        }
        let (_, hash, _, ix, links) = best?;
        let mut refs = vec![ix];
        refs.extend_from_slice(&links);
        let membership = links.iter().map(|l| self.hash_of(*l)).collect();
        Some((
            Proof::Via {
                delegation: hash,
                membership,
            },
            refs,
        ))
    }
}

/// Shorthand for an op type's predecessor limit.
trait MaxPredecessors {
    const MAX_P: usize;
}

impl<B: OpBody> MaxPredecessors for Op<B> {
    const MAX_P: usize = B::MAX_PREDECESSORS;
}
