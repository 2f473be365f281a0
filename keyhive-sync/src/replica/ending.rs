//! Grants that end (`specs/invitations.md` INV-11, INV-12): a grant carries its end; the
//! devices able to revoke it (CAP-9) revoke it on their first sync or write after the end,
//! which re-keys the documents before the next write like any revocation (REP-3); the others
//! do not write where it still reaches.

use keyhive_core::capability::{Access, AgentId, AnyVerified, BuildError};
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::DocumentId;

use super::{Replica, ReplicaError};
use crate::item::SubjectId;
use crate::store::Store;

impl<S: Store> Replica<S> {
    /// INV-11: grants `access` on `subject` to `agent` until `ends` (unix seconds).
    pub fn grant_until(
        &mut self,
        subject: &PublicKey,
        agent: AgentId,
        access: Access,
        ends: u64,
    ) -> Result<Hash, ReplicaError> {
        let op =
            self.admission
                .checker
                .delegate_until(&self.device, subject, agent, access, ends)?;
        self.store_op(&AnyVerified::Auth(op.clone()))?;
        self.refresh_cgkas();
        self.publish_events([SubjectId(*subject)]);
        Ok(op.hash())
    }

    /// INV-11, the causal end: revokes every grant whose end is before `now` and that this
    /// device may revoke (admin, at least as senior, CAP-9); the others are left to devices
    /// that may. Returns the grants revoked.
    pub fn revoke_ended_grants(&mut self, now: u64) -> Result<Vec<Hash>, ReplicaError> {
        let ended = self.admission.checker.ended_grants(now);
        let mut revoked = Vec::with_capacity(ended.len());
        for (subject, grant) in ended {
            match self
                .admission
                .checker
                .revoke(&self.device, &subject, &grant)
            {
                Ok(op) => {
                    self.store_op(&AnyVerified::Auth(op))?;
                    revoked.push(grant);
                }
                Err(BuildError::NoAuthority { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !revoked.is_empty() {
            self.refresh_cgkas();
            self.publish_events([]);
        }
        Ok(revoked)
    }

    /// INV-11, INV-12: run before sealing a change for `document`, with the wall clock as
    /// `now` (unix seconds; the replica itself has no clock). Revokes the expired invitations
    /// and ended grants this device may revoke, then refuses with
    /// [`ReplicaError::GrantEnded`] while an ended grant it may not revoke still reaches
    /// `document`.
    pub fn end_before_writing(
        &mut self,
        document: DocumentId,
        now: u64,
    ) -> Result<(), ReplicaError> {
        self.revoke_expired_invitations(now)?;
        self.revoke_ended_grants(now)?;
        match self
            .admission
            .checker
            .ended_grants_reaching(&document.0, now)
            .first()
        {
            Some(&(subject, grant)) => Err(ReplicaError::GrantEnded { subject, grant }),
            None => Ok(()),
        }
    }
}
