//! Grants that end (`specs/invitations.md` INV-11): building them and finding those whose end
//! has passed, for the devices that revoke them (the causal end).

use crate::crypto::hash::Hash;
use crate::crypto::signing::PublicKey;
use crate::identity::Device;
use crate::signed::{OpBody, Verified};

use super::access::{Access, AgentId};
use super::build::BuildError;
use super::checker::Checker;
use super::op::{Action, AnyVerified, AuthBody, AuthOp};

impl Checker {
    /// INV-11: builds, signs and applies a delegation of `access` on `subject` to `delegate`
    /// that ends at `ends` (unix seconds). Proof and predecessors as for
    /// [`Checker::delegate`] (CAP-19).
    pub fn delegate_until(
        &mut self,
        device: &Device,
        subject: &PublicKey,
        delegate: AgentId,
        access: Access,
        ends: u64,
    ) -> Result<Verified<AuthOp>, BuildError> {
        let (proof, refs) = self
            .find_proof_refs(device.id(), subject, access, u32::MAX)
            .ok_or(BuildError::NoAuthority { needed: access })?;
        let must = self.must_include(subject, &refs)?;
        let predecessors = self.pick(
            must,
            self.subject_heads(subject),
            <AuthBody as OpBody>::MAX_PREDECESSORS,
        );
        let content_heads = self.recorded_content_heads(&[*subject]);
        let body = AuthBody {
            subject: *subject,
            action: Action::DelegateUntil {
                delegate,
                access,
                ends,
                proof,
            },
            content_heads,
        };
        self.sign_and_apply(device, predecessors, body)
    }

    /// INV-11: the grants that still grant although their end is before `now`, as
    /// `(subject, delegation)`, sorted.
    pub fn ended_grants(&self, now: u64) -> Vec<(PublicKey, Hash)> {
        let mut out: Vec<(PublicKey, Hash)> = self
            .nodes
            .iter()
            .filter(|node| node.granting)
            .filter_map(|node| match &node.op {
                AnyVerified::Auth(v) => match v.body.action {
                    Action::DelegateUntil { ends, .. } if ends < now => {
                        Some((node.subject, v.hash()))
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// INV-12: the ended grants of [`Checker::ended_grants`] through which someone may still
    /// read `document`: grants on the document itself, or on a group or folder that is,
    /// directly or transitively, a member of it. While one of them is unrevoked, a change
    /// sealed for `document` reaches its delegate. Conservative: the delegate may also read
    /// by another grant; the caller then waits for a revocation it did not need.
    pub fn ended_grants_reaching(&self, document: &PublicKey, now: u64) -> Vec<(PublicKey, Hash)> {
        let ended = self.ended_grants(now);
        if ended.is_empty() {
            return ended;
        }
        let members = self.members(document);
        ended
            .into_iter()
            .filter(|(subject, _)| {
                subject == document
                    || members.keys().any(|agent| {
                        !matches!(agent, AgentId::Individual(_)) && agent.public_key() == subject
                    })
            })
            .collect()
    }
}
