//! Invitations on a replica (`specs/invitations.md` INV-1..INV-10): create one and get its
//! code, redeem a code from a fresh device, list and revoke outstanding invitations.
//!
//! An invitee's device holds nothing of the subject at first: its redemption names the
//! invitation as its only predecessor, so the checker parks it (CAP-4) while the store keeps
//! it, and the next sync pushes it to the relay in the code (INV-9). Once the relay applies
//! it, the device holds the invitation's level and pulls the subject like any member; it is
//! seated in the key agreement when a reader next prepares (REP-3, INV-10).

use keyhive_core::capability::{
    Access, Action, AnySigned, AnyVerified, BuildError, InvitationInfo, PeerTag, Refusal, Validity,
    build_redemption,
};
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::IndividualId;

use super::{Replica, ReplicaError, op_item};
use crate::admission::{Admitted, Mode};
use crate::invite_code::InviteCode;
use crate::item::{Item, SubjectId};
use crate::store::Store;

/// What became of a redemption this device made, as far as this replica knows.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedemptionStatus {
    /// Not applied yet: the invitation (or the subject) has not arrived here.
    Waiting,
    /// Applied and valid: this device holds the level.
    Admitted(Access),
    /// Applied and refused, or admitted and removed since, with the rule (e.g. `INV-5
    /// Expired`, `INV-6 UsedUp`, `CAP-11 Excluded` by the invitation's revocation, `CAP-13
    /// Revoked`).
    Refused(Refusal),
}

impl<S: Store> Replica<S> {
    /// INV-1, INV-8: invites whoever gets the code to `subject` at `access`, until `expires`
    /// (unix seconds), for at most `max_uses` redemptions. Returns the invitation's hash and
    /// its code naming `relay`; sync before passing the code on, so the relay holds the
    /// invitation when the redemption arrives.
    pub fn invite(
        &mut self,
        subject: &PublicKey,
        access: Access,
        expires: Option<u64>,
        max_uses: u32,
        relay: &str,
    ) -> Result<(Hash, InviteCode), ReplicaError> {
        let made =
            self.admission
                .checker
                .invite(&self.device, subject, access, expires, max_uses)?;
        self.store_op(&AnyVerified::Auth(made.op.clone()))?;
        self.publish_events([SubjectId(*subject)]);
        let code = InviteCode {
            relay: relay.to_owned(),
            subject: *subject,
            invitation: made.op.hash(),
            secret: made.secret,
        };
        Ok((made.op.hash(), code))
    }

    /// INV-3: redeems `code` from this device, claiming the time `now` (unix seconds), and
    /// stores the redemption so that the next sync pushes it. Returns the redemption's hash.
    /// Idempotent: if this device already stored a redemption of the invitation, that one is
    /// returned (a second would take a second use, INV-6). To keep a relay's first come
    /// (INV-9), push [`Replica::redemption`] to the code's relay first and redeem only once
    /// the relay took it, as `keyhive join` does.
    pub fn redeem(&mut self, code: &InviteCode, now: u64) -> Result<Hash, ReplicaError> {
        if let Some(existing) = self.own_redemption(code)? {
            return Ok(existing);
        }
        let item = self.redemption(code, now)?;
        let hash = item.hash();
        let applied = matches!(
            self.admission.admit(Mode::Replica, PeerTag::LOCAL, &item)?,
            Admitted::Op { .. }
        );
        self.store_items(vec![item])?;
        if applied {
            self.refresh_cgkas();
        }
        self.publish_events([SubjectId(code.subject)]);
        Ok(hash)
    }

    /// INV-3, INV-9: this device's redemption of `code`: the stored one if there is one, else
    /// one claiming the time `now`, built but not stored. [`Replica::redeem`] with the same
    /// `now` stores exactly these bytes (signatures and proofs are deterministic).
    pub fn redemption(&self, code: &InviteCode, now: u64) -> Result<Item, ReplicaError> {
        if let Some(existing) = self.own_redemption(code)?
            && let Some(item) = self.store.get(&existing)?
        {
            return Ok(item);
        }
        let op = build_redemption(
            &self.device,
            &code.subject,
            &code.invitation,
            &code.secret,
            now,
        )
        .map_err(ReplicaError::Sign)?;
        op_item(&AnyVerified::Auth(op))
    }

    /// A redemption of the code's invitation by this device, among the stored items of its
    /// subject (a fresh device holds only that one).
    fn own_redemption(&self, code: &InviteCode) -> Result<Option<Hash>, ReplicaError> {
        for hash in self.store.hashes(&SubjectId(code.subject))? {
            let Some(item) = self.store.get(&hash)? else {
                continue;
            };
            if let Ok(AnySigned::Auth(op)) = AnySigned::decode(item.envelope()) {
                let payload = op.unverified_payload();
                if payload.issuer == self.device.id().0
                    && matches!(payload.body.action, Action::Redeem { invitation, .. } if invitation == code.invitation)
                {
                    return Ok(Some(hash));
                }
            }
        }
        Ok(None)
    }

    /// What became of a redemption (see [`RedemptionStatus`]).
    pub fn redemption_status(&self, redemption: &Hash) -> RedemptionStatus {
        let checker = &self.admission.checker;
        match checker.op_validity(redemption) {
            None => RedemptionStatus::Waiting,
            Some(Validity::Invalid(refusal)) => RedemptionStatus::Refused(refusal),
            Some(Validity::Valid) => {
                let subject = checker.op(redemption).map(AnyVerified::subject);
                let me = keyhive_core::capability::AgentId::Individual(self.device.id());
                let Some(subject) = subject else {
                    return RedemptionStatus::Waiting;
                };
                match checker.level(me, &subject) {
                    Some(level) => RedemptionStatus::Admitted(level),
                    // Valid but granting nothing: revoked since (CAP-13), or used up.
                    None => match checker.explain(me, Access::Pull, &subject) {
                        keyhive_core::capability::Explanation::Refused(r) => {
                            RedemptionStatus::Refused(r)
                        }
                        keyhive_core::capability::Explanation::Granted { .. } => {
                            RedemptionStatus::Waiting
                        }
                    },
                }
            }
        }
    }

    /// The invitations held on every known subject, oldest first per subject.
    pub fn invitations(&self) -> Vec<InvitationInfo> {
        let checker = &self.admission.checker;
        let mut subjects: Vec<PublicKey> = checker.subjects().copied().collect();
        subjects.sort();
        subjects
            .iter()
            .flat_map(|s| checker.invitations(s))
            .collect()
    }

    /// INV-7: revokes an invitation (an ordinary revocation, CAP-9): it admits nobody from
    /// now on, and whoever it admitted loses that access (CAP-13).
    pub fn revoke_invitation(&mut self, invitation: &Hash) -> Result<Hash, ReplicaError> {
        let checker = &self.admission.checker;
        let subject = checker
            .op(invitation)
            .map(AnyVerified::subject)
            .ok_or(BuildError::NotADelegation(*invitation))?;
        let op = self
            .admission
            .checker
            .revoke(&self.device, &subject, invitation)?;
        self.store_op(&AnyVerified::Auth(op.clone()))?;
        self.refresh_cgkas();
        self.publish_events([SubjectId(subject)]);
        Ok(op.hash())
    }

    /// INV-5: the causal end of expiry. Revokes every invitation this device issued that
    /// expired before `now` and is still valid and unrevoked, so that a redemption back-dated
    /// by someone holding the secret but made after this revocation is excluded (CAP-11).
    /// Invitations it may not revoke (it lacks admin, CAP-9) are left to INV-5. Returns the
    /// invitations revoked.
    pub fn revoke_expired_invitations(&mut self, now: u64) -> Result<Vec<Hash>, ReplicaError> {
        let me = IndividualId(self.device.id().0);
        let expired: Vec<Hash> = self
            .invitations()
            .into_iter()
            .filter(|i| {
                i.issuer == me
                    && i.validity.is_valid()
                    && !i.revoked
                    && i.expires.is_some_and(|e| e < now)
            })
            .map(|i| i.hash)
            .collect();
        let mut revoked = Vec::with_capacity(expired.len());
        for invitation in expired {
            match self.revoke_invitation(&invitation) {
                Ok(_) => revoked.push(invitation),
                // An inviter without admin cannot revoke (CAP-9): INV-5 alone judges it.
                Err(ReplicaError::Build(BuildError::NoAuthority { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(revoked)
    }
}
