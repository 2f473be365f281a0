//! Invitations through a [`Repo`] (`specs/invitations.md`): the replica's invitation methods,
//! with what they store pushed at once by the repo's links (SYNC-86).

use keyhive_core::capability::{Access, InvitationInfo};
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::signing::PublicKey;

use super::Repo;
use crate::invite_code::InviteCode;
use crate::replica::{RedemptionStatus, ReplicaError};

impl Repo {
    /// INV-1, INV-8: invites whoever gets the returned code to `subject` at `access`, until
    /// `expires` (unix seconds), for at most `max_uses` devices; the code names `relay`.
    /// Connect to that relay before passing the code on, so it holds the invitation (INV-9).
    pub fn invite(
        &self,
        subject: &PublicKey,
        access: Access,
        expires: Option<u64>,
        max_uses: u32,
        relay: &str,
    ) -> Result<(Hash, InviteCode), ReplicaError> {
        self.replica()
            .invite(subject, access, expires, max_uses, relay)
    }

    /// INV-3: redeems `code` from this device at `now` (unix seconds); connect to
    /// `code.relay` to deliver it. Idempotent per invitation.
    pub fn redeem(&self, code: &InviteCode, now: u64) -> Result<Hash, ReplicaError> {
        self.replica().redeem(code, now)
    }

    /// What became of a redemption made here.
    pub fn redemption_status(&self, redemption: &Hash) -> RedemptionStatus {
        self.replica().redemption_status(redemption)
    }

    /// The invitations this device sees.
    pub fn invitations(&self) -> Vec<InvitationInfo> {
        self.replica().invitations()
    }

    /// INV-7: revokes an invitation and re-keys what the devices it admitted could read
    /// (REP-3); the revocation is stored even if re-keying then fails.
    pub fn revoke_invitation(&self, invitation: &Hash) -> Result<Hash, ReplicaError> {
        let mut replica = self.replica();
        let op = replica.revoke_invitation(invitation)?;
        replica.prepare_all()?;
        Ok(op)
    }
}
