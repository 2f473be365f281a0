//! Static authority checks (CAP-5..CAP-10): what an op's proof gives its issuer, decided from
//! the op and its past alone, so every replica reaches the same answer whenever it applies it.

use crate::crypto::hash::Hash;
use crate::crypto::signing::PublicKey;
use crate::identity::SubjectKind;

use super::access::{Access, AgentId};
use super::checker::{Authority, Checker, Info, MAX_CHAIN};
use super::membership::Ix;
use super::op::{Action, AnyVerified, Proof};
use super::validity::{Reason, Refusal, refuse};

impl Checker {
    /// CAP-5..CAP-10 and CAP-20: the static (order-independent) analysis of an op.
    pub(crate) fn analyse(
        &self,
        op: &AnyVerified,
        parents: &[Ix],
    ) -> (Info, Result<(), Refusal>, Box<[Ix]>) {
        let (info, stat, chain) = self.analyse_authority(op, parents);
        match stat.and_then(|()| self.check_parent_scope(op)) {
            Ok(()) => (info, Ok(()), chain),
            Err(refusal) => (info, Err(refusal), Box::new([])),
        }
    }

    fn analyse_authority(
        &self,
        op: &AnyVerified,
        parents: &[Ix],
    ) -> (Info, Result<(), Refusal>, Box<[Ix]>) {
        match op {
            AnyVerified::Genesis(_) => (Info::Genesis, Ok(()), Box::new([])),
            AnyVerified::Auth(v) => {
                let subject = v.body.subject;
                match &v.body.action {
                    // INV-11: an ending grant is authorised and grants as a delegation.
                    Action::Delegate {
                        delegate,
                        access,
                        proof,
                    }
                    | Action::DelegateUntil {
                        delegate,
                        access,
                        proof,
                        ..
                    } => {
                        let result = self
                            .resolve_proof(&v.issuer, &subject, proof, parents)
                            .and_then(|auth| {
                                // CAP-8: never grant more than the issuer holds.
                                if auth.held < *access {
                                    return Err(refuse(
                                        "CAP-8",
                                        Reason::InsufficientAccess {
                                            held: auth.held,
                                            needed: *access,
                                        },
                                    ));
                                }
                                Ok(auth)
                            });
                        match result {
                            Ok(auth) => match self.chain_of(&auth.refs) {
                                Ok(chain) => (
                                    Info::Delegation {
                                        delegate: *delegate,
                                        access: *access,
                                        depth: auth.issuer_depth.saturating_add(1),
                                    },
                                    Ok(()),
                                    chain,
                                ),
                                Err(e) => (
                                    Info::Delegation {
                                        delegate: *delegate,
                                        access: *access,
                                        depth: u32::MAX,
                                    },
                                    Err(e),
                                    Box::new([]),
                                ),
                            },
                            Err(e) => (
                                Info::Delegation {
                                    delegate: *delegate,
                                    access: *access,
                                    depth: u32::MAX,
                                },
                                Err(e),
                                Box::new([]),
                            ),
                        }
                    }
                    Action::Revoke { delegation, proof } => {
                        let result = self
                            .resolve_proof(&v.issuer, &subject, proof, parents)
                            .and_then(|auth| {
                                let target =
                                    self.check_target(&subject, delegation, parents, &auth)?;
                                let chain = self.chain_of(&auth.refs)?;
                                Ok((auth, target, chain))
                            });
                        match result {
                            Ok((auth, target, chain)) => (
                                Info::Revocation {
                                    target: Some(target),
                                    issuer_depth: auth.issuer_depth,
                                    past: Vec::new(),
                                },
                                Ok(()),
                                chain,
                            ),
                            Err(e) => (
                                Info::Revocation {
                                    target: None,
                                    issuer_depth: u32::MAX,
                                    past: Vec::new(),
                                },
                                Err(e),
                                Box::new([]),
                            ),
                        }
                    }
                    Action::Invite { access, proof, .. } => {
                        self.analyse_invite(&v.issuer, &subject, *access, proof, parents)
                    }
                    Action::Redeem {
                        invitation,
                        redeemed_at,
                        proof_of_secret,
                    } => self.analyse_redeem(
                        &v.issuer,
                        &subject,
                        invitation,
                        *redeemed_at,
                        proof_of_secret,
                        parents,
                    ),
                }
            }
            AnyVerified::Content(v) => {
                let subject = v.body.document.0;
                let result = self
                    .resolve_proof(&v.issuer, &subject, &v.body.proof, parents)
                    .and_then(|auth| {
                        // A valid proof puts the subject's genesis in the op's past.
                        if self.subjects.get(&subject).map(|s| s.kind)
                            != Some(SubjectKind::Document)
                        {
                            return Err(refuse("CAP-10", Reason::NotADocument));
                        }
                        // CAP-10: the author holds write.
                        if auth.held < Access::Write {
                            return Err(refuse(
                                "CAP-10",
                                Reason::InsufficientAccess {
                                    held: auth.held,
                                    needed: Access::Write,
                                },
                            ));
                        }
                        self.chain_of(&auth.refs)
                    });
                match result {
                    Ok(chain) => (Info::Content, Ok(()), chain),
                    Err(e) => (Info::Content, Err(e), Box::new([])),
                }
            }
        }
    }

    /// CAP-9: the revoked op is a delegation on the same subject in the revocation's past,
    /// the revoker holds admin, and is at least as senior as the delegation.
    fn check_target(
        &self,
        subject: &PublicKey,
        delegation: &Hash,
        parents: &[Ix],
        auth: &Authority,
    ) -> Result<Ix, Refusal> {
        if auth.held < Access::Admin {
            return Err(refuse(
                "CAP-9",
                Reason::InsufficientAccess {
                    held: auth.held,
                    needed: Access::Admin,
                },
            ));
        }
        let bad = || refuse("CAP-9", Reason::BadTarget(*delegation));
        let &target = self.index.get(delegation).ok_or_else(bad)?;
        let node = &self.nodes[target as usize];
        // INV-7: an invitation is revoked like a delegation.
        let depth = match node.info {
            Info::Delegation { depth, .. } | Info::Invitation { depth, .. } => depth,
            _ => return Err(bad()),
        };
        if node.subject != *subject || !self.in_past_of_parents(target, parents) {
            return Err(bad());
        }
        if auth.issuer_depth > depth {
            return Err(refuse(
                "CAP-9",
                Reason::Seniority {
                    issuer_depth: auth.issuer_depth,
                    target_depth: depth,
                },
            ));
        }
        Ok(target)
    }

    /// CAP-11: the transitive chain of delegations behind `refs`.
    pub(crate) fn chain_of(&self, refs: &[Ix]) -> Result<Box<[Ix]>, Refusal> {
        let mut chain: Vec<Ix> = Vec::with_capacity(refs.len());
        for &r in refs {
            chain.push(r);
            chain.extend_from_slice(&self.nodes[r as usize].chain);
        }
        chain.sort_unstable();
        chain.dedup();
        if chain.len() > MAX_CHAIN {
            return Err(refuse("CAP-6", Reason::ProofTooLong));
        }
        Ok(chain.into_boxed_slice())
    }

    /// CAP-6: resolves a proof to the authority it gives `issuer` on `subject`.
    pub(crate) fn resolve_proof(
        &self,
        issuer: &PublicKey,
        subject: &PublicKey,
        proof: &Proof,
        parents: &[Ix],
    ) -> Result<Authority, Refusal> {
        // Every check below depends only on the op's past, never on what else is held, so
        // that all replicas give the same reason (CAP-3).
        match proof {
            Proof::Root => {
                let Some(state) = self.subjects.get(subject) else {
                    return Err(refuse("CAP-5", Reason::UnknownSubject));
                };
                if self.conflicted.contains(subject) {
                    return Err(refuse("CAP-5", Reason::ConflictingGenesis));
                }
                if !self.in_past_of_parents(state.genesis, parents) {
                    return Err(refuse("CAP-5", Reason::UnknownSubject));
                }
                if state.creator.0 != *issuer {
                    return Err(refuse("CAP-6", Reason::NotRoot));
                }
                Ok(Authority {
                    held: Access::Admin,
                    issuer_depth: 0,
                    refs: Vec::new(),
                })
            }
            Proof::Via {
                delegation,
                membership,
            } => {
                let (first, first_subject, mut agent, mut held, depth) =
                    self.proof_link(delegation, parents)?;
                if first_subject != *subject {
                    return Err(refuse("CAP-6", Reason::ProofWrongSubject(*delegation)));
                }
                let mut refs = vec![first];
                for m in membership {
                    let (mix, msubject, next, level, _) = self.proof_link(m, parents)?;
                    // The link must be a delegation on the group the previous link named.
                    let expected = self
                        .subjects
                        .get(&msubject)
                        .map(|s| AgentId::subject(msubject, s.kind));
                    if expected != Some(agent) {
                        return Err(refuse("CAP-6", Reason::ProofWrongSubject(*m)));
                    }
                    held = held.min(level);
                    agent = next;
                    refs.push(mix);
                }
                let ends_at_issuer = match agent {
                    AgentId::Individual(id) => id.0 == *issuer,
                    other => other.subject_key().is_some_and(|key| {
                        self.subjects.get(key).is_some_and(|s| {
                            !self.conflicted.contains(key)
                                && s.creator.0 == *issuer
                                && AgentId::subject(*key, s.kind) == other
                                && self.in_past_of_parents(s.genesis, parents)
                        })
                    }),
                };
                if !ends_at_issuer {
                    return Err(refuse("CAP-6", Reason::BrokenMembership));
                }
                Ok(Authority {
                    held,
                    issuer_depth: depth,
                    refs,
                })
            }
        }
    }

    /// One delegation named by a proof: (index, subject, delegate, access, depth).
    fn proof_link(
        &self,
        hash: &Hash,
        parents: &[Ix],
    ) -> Result<(Ix, PublicKey, AgentId, Access, u32), Refusal> {
        let not_in_past = || refuse("CAP-6", Reason::ProofNotInPast(*hash));
        let &ix = self.index.get(hash).ok_or_else(not_in_past)?;
        let node = &self.nodes[ix as usize];
        let Info::Delegation {
            delegate,
            access,
            depth,
        } = node.info
        else {
            return Err(not_in_past());
        };
        if !self.in_past_of_parents(ix, parents) {
            return Err(not_in_past());
        }
        if self.conflicted.contains(&node.subject) {
            return Err(refuse("CAP-5", Reason::ConflictingGenesis));
        }
        if node.stat.is_err() {
            return Err(refuse("CAP-6", Reason::ProofInvalid(*hash)));
        }
        Ok((ix, node.subject, delegate, access, depth))
    }
}
