//! Invitations and redemptions in the checker (`specs/invitations.md` INV-1..INV-7): the
//! static analysis of both ops and the use limit, decided in an order every replica shares.

use crate::crypto::hash::Hash;
use crate::crypto::signing::PublicKey;
use crate::identity::IndividualId;

use super::access::{Access, AgentId};
use super::checker::{Checker, Info};
use super::invite_secret::verify_proof;
use super::membership::Ix;
use super::op::{Action, AnySigned, AnyVerified, Proof, ProofOfSecret};
use super::validity::{Reason, Refusal, Validity, refuse};

type Analysis = (Info, Result<(), Refusal>, Box<[Ix]>);

/// An invitation held by the checker, with what its redemptions did so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvitationInfo {
    /// The invitation op's hash (its id).
    pub hash: Hash,
    /// The subject it admits to.
    pub subject: PublicKey,
    /// The inviting device.
    pub issuer: IndividualId,
    /// The level a redemption grants.
    pub access: Access,
    /// Unix seconds after which redemptions are refused (INV-5).
    pub expires: Option<u64>,
    /// The use limit (INV-6).
    pub max_uses: u32,
    /// The devices whose redemptions count now, in use order (INV-6).
    pub redeemed_by: Vec<IndividualId>,
    /// The invitation's own validity (e.g. `CAP-11 Excluded` once its issuer was removed).
    pub validity: Validity,
    /// An effective revocation revoked it (INV-7).
    pub revoked: bool,
    /// Its issuer still holds the level it invites to. A redemption delegates through the
    /// issuer's grant, so once the issuer was removed it grants nothing (CAP-13).
    pub issuer_holds: bool,
}

impl InvitationInfo {
    /// Whether a further redemption could still count: valid, not revoked, its issuer still
    /// holding the level, uses left, and (judged at `now`, unix seconds) not expired.
    pub fn outstanding(&self, now: u64) -> bool {
        self.validity.is_valid()
            && !self.revoked
            && self.issuer_holds
            && (self.redeemed_by.len() as u64) < u64::from(self.max_uses)
            && self.expires.is_none_or(|e| now <= e)
    }
}

impl Checker {
    /// INV-1: an invitation is authorised like a delegation of its level (CAP-6..CAP-8).
    pub(crate) fn analyse_invite(
        &self,
        issuer: &PublicKey,
        subject: &PublicKey,
        access: Access,
        proof: &Proof,
        parents: &[Ix],
    ) -> Analysis {
        let result = self
            .resolve_proof(issuer, subject, proof, parents)
            .and_then(|auth| {
                // CAP-8: never invite at more than the issuer holds.
                if auth.held < access {
                    return Err(refuse(
                        "CAP-8",
                        Reason::InsufficientAccess {
                            held: auth.held,
                            needed: access,
                        },
                    ));
                }
                let chain = self.chain_of(&auth.refs)?;
                Ok((auth.issuer_depth.saturating_add(1), chain))
            });
        match result {
            Ok((depth, chain)) => (Info::Invitation { access, depth }, Ok(()), chain),
            Err(e) => (
                Info::Invitation {
                    access,
                    depth: u32::MAX,
                },
                Err(e),
                Box::new([]),
            ),
        }
    }

    /// INV-3..INV-5: a redemption is a delegation of the invitation's level to its issuer,
    /// one deeper than the invitation, whose chain is the invitation and its chain.
    pub(crate) fn analyse_redeem(
        &self,
        issuer: &PublicKey,
        subject: &PublicKey,
        invitation: &Hash,
        redeemed_at: u64,
        proof_of_secret: &ProofOfSecret,
        parents: &[Ix],
    ) -> Analysis {
        let delegate = AgentId::Individual(IndividualId(*issuer));
        let result = self.check_redeem(
            issuer,
            subject,
            invitation,
            redeemed_at,
            proof_of_secret,
            parents,
        );
        match result {
            Ok((inv, access, depth)) => match self.chain_of(&[inv]) {
                Ok(chain) => (
                    Info::Delegation {
                        delegate,
                        access,
                        depth: depth.saturating_add(1),
                    },
                    Ok(()),
                    chain,
                ),
                Err(e) => (Self::bad_redeem(delegate), Err(e), Box::new([])),
            },
            Err(e) => (Self::bad_redeem(delegate), Err(e), Box::new([])),
        }
    }

    fn bad_redeem(delegate: AgentId) -> Info {
        Info::Delegation {
            delegate,
            access: Access::Pull,
            depth: u32::MAX,
        }
    }

    /// The static checks of a redemption; on success (invitation, level, invitation depth).
    fn check_redeem(
        &self,
        issuer: &PublicKey,
        subject: &PublicKey,
        invitation: &Hash,
        redeemed_at: u64,
        proof_of_secret: &ProofOfSecret,
        parents: &[Ix],
    ) -> Result<(Ix, Access, u32), Refusal> {
        let not_invitation = || refuse("INV-3", Reason::NotAnInvitation(*invitation));
        let &inv = self.index.get(invitation).ok_or_else(not_invitation)?;
        let node = &self.nodes[inv as usize];
        let Info::Invitation { access, depth } = node.info else {
            return Err(not_invitation());
        };
        // CAP-3 style: the invitation is a direct parent, so checking it never walks the DAG.
        if node.subject != *subject || !self.in_past_of_parents(inv, parents) {
            return Err(not_invitation());
        }
        if self.conflicted.contains(subject) {
            return Err(refuse("CAP-5", Reason::ConflictingGenesis));
        }
        if node.stat.is_err() {
            return Err(refuse("INV-3", Reason::InvitationInvalid(*invitation)));
        }
        let AnyVerified::Auth(op) = &node.op else {
            return Err(not_invitation());
        };
        let Action::Invite {
            invite_key,
            expires,
            ..
        } = &op.body.action
        else {
            return Err(not_invitation());
        };
        if invite_key == issuer {
            return Err(refuse("INV-4", Reason::WrongDevice));
        }
        let device = IndividualId(*issuer);
        verify_proof(invite_key, invitation, device, redeemed_at, proof_of_secret)
            .map_err(|_| refuse("INV-4", Reason::BadProofOfSecret))?;
        if let Some(expires) = *expires
            && redeemed_at > expires
        {
            return Err(refuse(
                "INV-5",
                Reason::Expired {
                    expires,
                    redeemed_at,
                },
            ));
        }
        Ok((inv, access, depth))
    }

    /// The invitation a statically authorised redemption redeems.
    fn redeemed_invitation(&self, ix: Ix) -> Option<Ix> {
        let node = &self.nodes[ix as usize];
        if node.stat.is_err() {
            return None;
        }
        match &node.op {
            AnyVerified::Auth(op) => match &op.body.action {
                Action::Redeem { invitation, .. } => self.index.get(invitation).copied(),
                _ => None,
            },
            _ => None,
        }
    }

    /// INV-6: records a just applied op if it is an authorised redemption.
    pub(crate) fn track_redemption(&mut self, ix: Ix) {
        if let Some(inv) = self.redeemed_invitation(ix) {
            self.redemptions.entry(inv).or_default().push(ix);
        }
    }

    /// INV-6: records a new op and recounts its invitation's uses; returns the other
    /// redemptions whose standing changed (to re-evaluate with their dependants).
    pub(crate) fn note_redemption(&mut self, ix: Ix) -> Vec<Ix> {
        let Some(inv) = self.redeemed_invitation(ix) else {
            return Vec::new();
        };
        self.redemptions.entry(inv).or_default().push(ix);
        self.recount(inv).into_iter().filter(|r| *r != ix).collect()
    }

    /// INV-6 for every invitation (after a full re-analysis).
    pub(crate) fn recount_uses(&mut self) {
        self.used_up.clear();
        let invitations: Vec<Ix> = self.redemptions.keys().copied().collect();
        for inv in invitations {
            self.recount(inv);
        }
    }

    /// INV-6: orders the invitation's authorised redemptions by (height, hash), which extends
    /// causality (a redemption with another in its past is higher), and marks all but the
    /// first `max_uses` used up. Returns the redemptions whose mark changed.
    fn recount(&mut self, inv: Ix) -> Vec<Ix> {
        let max_uses = self.max_uses(inv);
        let mut list = self.redemptions.get(&inv).cloned().unwrap_or_default();
        list.sort_by_key(|r| (self.nodes[*r as usize].height, self.hash_of(*r)));
        let mut changed = Vec::new();
        for (i, r) in list.iter().enumerate() {
            let over = i as u64 >= u64::from(max_uses);
            let was = self.used_up.contains(r);
            if over != was {
                if over {
                    self.used_up.insert(*r);
                } else {
                    self.used_up.remove(r);
                }
                changed.push(*r);
            }
        }
        changed
    }

    fn max_uses(&self, inv: Ix) -> u32 {
        match &self.nodes[inv as usize].op {
            AnyVerified::Auth(op) => match op.body.action {
                Action::Invite { max_uses, .. } => max_uses,
                _ => 0,
            },
            _ => 0,
        }
    }

    /// INV-6: the refusal of an op that is, or whose chain runs through, a used-up
    /// redemption.
    pub(crate) fn spent(&self, ix: Ix) -> Option<Refusal> {
        if self.used_up.is_empty() {
            return None;
        }
        let node = &self.nodes[ix as usize];
        let hit = std::iter::once(&ix)
            .chain(node.chain.iter())
            .find(|c| self.used_up.contains(c))?;
        let inv = self.redeemed_invitation(*hit)?;
        Some(refuse(
            "INV-6",
            Reason::UsedUp {
                invitation: self.hash_of(inv),
                max_uses: self.max_uses(inv),
            },
        ))
    }

    /// INV-9: if `op` redeems an invitation held here whose uses the statically authorised
    /// redemptions held here already take, the `INV-6` refusal to give the redeemer that
    /// pushes it (a relay keeps first come for redeemers; see specs/invitations.md).
    pub fn redemption_over_limit(&self, op: &AnySigned) -> Option<Refusal> {
        let AnySigned::Auth(signed) = op else {
            return None;
        };
        let Action::Redeem { invitation, .. } = signed.unverified_payload().body.action else {
            return None;
        };
        let &inv = self.index.get(&invitation)?;
        let max_uses = self.max_uses(inv);
        let taken = self.redemptions.get(&inv).map_or(0, Vec::len);
        (taken as u64 >= u64::from(max_uses)).then(|| {
            refuse(
                "INV-6",
                Reason::UsedUp {
                    invitation,
                    max_uses,
                },
            )
        })
    }

    /// INV-6, CAP-17: the refusal of `agent`'s redemption on `subject` that lost to the use
    /// limit, if that is all it holds there (explain names it instead of `NotAMember`).
    pub(crate) fn spent_redemption(&self, agent: AgentId, subject: &PublicKey) -> Option<Refusal> {
        self.by_subject
            .get(subject)?
            .iter()
            .filter(|ix| {
                matches!(self.nodes[**ix as usize].info, Info::Delegation { delegate, .. } if delegate == agent)
                    && self.used_up.contains(ix)
            })
            .find_map(|ix| self.spent(*ix))
    }

    fn issuer_of(&self, ix: Ix) -> PublicKey {
        match &self.nodes[ix as usize].op {
            AnyVerified::Genesis(v) => v.issuer,
            AnyVerified::Auth(v) => v.issuer,
            AnyVerified::Content(v) => v.issuer,
        }
    }

    /// The invitations held on `subject`, oldest first (by height, then hash).
    pub fn invitations(&self, subject: &PublicKey) -> Vec<InvitationInfo> {
        let mut out: Vec<(u32, InvitationInfo)> = Vec::new();
        for &ix in self
            .by_subject
            .get(subject)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            let node = &self.nodes[ix as usize];
            let (Info::Invitation { access, .. }, AnyVerified::Auth(op)) = (&node.info, &node.op)
            else {
                continue;
            };
            let Action::Invite {
                expires, max_uses, ..
            } = op.body.action
            else {
                continue;
            };
            let mut counted: Vec<Ix> = self
                .redemptions
                .get(&ix)
                .into_iter()
                .flatten()
                .copied()
                .filter(|r| !self.used_up.contains(r))
                .collect();
            counted.sort_by_key(|r| (self.nodes[*r as usize].height, self.hash_of(*r)));
            out.push((
                node.height,
                InvitationInfo {
                    hash: self.hash_of(ix),
                    subject: *subject,
                    issuer: IndividualId(op.issuer),
                    access: *access,
                    expires,
                    max_uses,
                    redeemed_by: counted
                        .iter()
                        .map(|r| IndividualId(self.issuer_of(*r)))
                        .collect(),
                    validity: node.validity.clone(),
                    revoked: self.revoked_by.contains_key(&ix),
                    issuer_holds: self.can(
                        AgentId::Individual(IndividualId(op.issuer)),
                        *access,
                        subject,
                    ),
                },
            ));
        }
        out.sort_by_key(|(height, info)| (*height, info.hash));
        out.into_iter().map(|(_, info)| info).collect()
    }
}
