//! Building invitations and redemptions (`specs/invitations.md` INV-1, INV-3, CAP-19).

use crate::crypto::hash::Hash;
use crate::crypto::signing::PublicKey;
use crate::identity::Device;
use crate::signed::{Op, OpBody, SignError, Verified};

use super::access::Access;
use super::build::BuildError;
use super::checker::Checker;
use super::invite_secret::InviteSecret;
use super::op::{Action, AuthBody, AuthOp};

/// An invitation just created by [`Checker::invite`]: the signed op (applied to the checker;
/// publish it) and the secret to pass to the invitee out of band (never publish it).
#[derive(Debug)]
pub struct NewInvitation {
    /// The invitation op.
    pub op: Verified<AuthOp>,
    /// The secret behind its invitation key (INV-2).
    pub secret: InviteSecret,
}

impl Checker {
    /// INV-1: builds, signs and applies an invitation to `subject` at `access`, expiring at
    /// `expires` (unix seconds) and counting at most `max_uses` redemptions. Its proof is the
    /// device's most senior chain holding `access` (CAP-19), as for a delegation.
    pub fn invite(
        &mut self,
        device: &Device,
        subject: &PublicKey,
        access: Access,
        expires: Option<u64>,
        max_uses: u32,
    ) -> Result<NewInvitation, BuildError> {
        let (proof, refs) = self
            .find_proof_refs(device.id(), subject, access, u32::MAX)
            .ok_or(BuildError::NoAuthority { needed: access })?;
        let must = self.must_include(subject, &refs)?;
        let predecessors = self.pick(
            must,
            self.subject_heads(subject),
            <AuthBody as OpBody>::MAX_PREDECESSORS,
        );
        let secret = InviteSecret::random();
        let body = AuthBody {
            subject: *subject,
            action: Action::Invite {
                invite_key: secret.invite_key(),
                access,
                expires,
                max_uses,
                proof,
            },
            content_heads: Vec::new(),
        };
        let op = self.sign_and_apply(device, predecessors, body)?;
        Ok(NewInvitation { op, secret })
    }

    /// INV-3: builds, signs and applies a redemption of `invitation` (held here) by `device`.
    pub fn redeem(
        &mut self,
        device: &Device,
        invitation: &Hash,
        secret: &InviteSecret,
        redeemed_at: u64,
    ) -> Result<Verified<AuthOp>, BuildError> {
        let subject = self
            .op(invitation)
            .map(super::op::AnyVerified::subject)
            .ok_or(BuildError::NotADelegation(*invitation))?;
        let op = build_redemption(device, &subject, invitation, secret, redeemed_at)?;
        self.apply_verified(op.clone())?;
        Ok(op)
    }
}

/// INV-3: a redemption of `invitation` (on `subject`) by `device`, built without holding the
/// invitation: its only predecessor is the invitation and it records no content heads, so a
/// fresh device builds it from an invite code alone.
pub fn build_redemption(
    device: &Device,
    subject: &PublicKey,
    invitation: &Hash,
    secret: &InviteSecret,
    redeemed_at: u64,
) -> Result<Verified<AuthOp>, SignError> {
    let body = AuthBody {
        subject: *subject,
        action: Action::Redeem {
            invitation: *invitation,
            redeemed_at,
            proof_of_secret: secret.prove(invitation, device.id(), redeemed_at),
        },
        content_heads: Vec::new(),
    };
    Verified::sign(
        Op::new(device.signing_key().public_key(), vec![*invitation], body),
        device.signing_key(),
    )
}
