//! Validity of ops and the reasons an op is refused (`specs/capabilities.md`).

use crate::crypto::hash::Hash;

use super::access::Access;

/// Whether an op counts, in the current state of the checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Validity {
    /// The op is authorised and not excluded by any effective revocation.
    Valid,
    /// The op does not count; `rule` is the spec rule that refuses it.
    Invalid(Refusal),
}

impl Validity {
    /// True for [`Validity::Valid`].
    pub fn is_valid(&self) -> bool {
        matches!(self, Validity::Valid)
    }
}

/// A refusal: the rule number of `specs/capabilities.md` and what broke it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Rule number, e.g. `"CAP-11"`.
    pub rule: &'static str,
    /// What broke the rule.
    pub reason: Reason,
}

impl std::error::Error for Refusal {}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.rule, self.reason)
    }
}

/// Why an op or a query is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// The subject's genesis is not in the op's causal past.
    #[error("the subject's genesis is not in the op's causal past")]
    UnknownSubject,
    /// Two different geneses claim the same subject id.
    #[error("two different geneses claim this subject id")]
    ConflictingGenesis,
    /// A root proof by a device that is not the subject's creator.
    #[error("the issuer is not the subject's creator")]
    NotRoot,
    /// A proof names an op that is not a delegation in the op's causal past.
    #[error("proof names {0}, which is not a delegation in the op's causal past")]
    ProofNotInPast(Hash),
    /// A proof delegation is on another subject than required.
    #[error("proof delegation {0} is on the wrong subject")]
    ProofWrongSubject(Hash),
    /// A proof delegation is itself statically invalid.
    #[error("proof delegation {0} is itself invalid")]
    ProofInvalid(Hash),
    /// The membership chain does not end at the issuer.
    #[error("the proof's membership chain does not lead to the issuer")]
    BrokenMembership,
    /// The proof's transitive chain is longer than allowed.
    #[error("the proof chain is too long")]
    ProofTooLong,
    /// The issuer's authority is below what the op needs.
    #[error("issuer holds {held} but the op needs {needed}")]
    InsufficientAccess {
        /// Level the proof gives.
        held: Access,
        /// Level required.
        needed: Access,
    },
    /// CAP-20: a parent of the op lies outside its subject's scope, so devices that may pull
    /// the subject could wait for it forever.
    #[error("parent {0} lies outside the op's subject scope")]
    ParentOutOfScope(Hash),
    /// A revocation names something that is not a delegation on its subject in its past.
    #[error("revoked op {0} is not a delegation on this subject in the revocation's past")]
    BadTarget(Hash),
    /// CAP-9 seniority: the revoker is less senior than the delegation it revokes.
    #[error(
        "revoker depth {issuer_depth} is less senior than the revoked delegation (depth {target_depth})"
    )]
    Seniority {
        /// Issuer's depth.
        issuer_depth: u32,
        /// Target's depth.
        target_depth: u32,
    },
    /// A content op on a subject that is not a document.
    #[error("content ops are only allowed on documents")]
    NotADocument,
    /// CAP-11: an effective revocation of a delegation in the op's chain excludes the op.
    #[error(
        "delegation {delegation} in the op's chain was revoked by {revocation}, which did not see the op"
    )]
    Excluded {
        /// The effective revocation.
        revocation: Hash,
        /// The revoked delegation in the chain.
        delegation: Hash,
    },
    /// INV-3: a redemption's invitation is not an invitation on its subject among its direct
    /// predecessors.
    #[error("{0} is not an invitation on this subject among the redemption's predecessors")]
    NotAnInvitation(Hash),
    /// INV-3: the redeemed invitation is itself statically invalid.
    #[error("invitation {0} is itself invalid")]
    InvitationInvalid(Hash),
    /// INV-4: the proof of secret does not verify for this invitation, device and time (a
    /// redemption observed and re-signed by another device ends here).
    #[error("the proof of secret does not verify for this invitation, device and time")]
    BadProofOfSecret,
    /// INV-4: the redeeming device is the invitation key itself.
    #[error("the redeeming device is the invitation key itself")]
    WrongDevice,
    /// INV-5: the redemption claims a time after the invitation's expiry.
    #[error("redeemed at {redeemed_at}, after the invitation expired at {expires}")]
    Expired {
        /// The invitation's expiry (unix seconds).
        expires: u64,
        /// The time the redemption claims (unix seconds).
        redeemed_at: u64,
    },
    /// INV-6: the invitation's uses were taken by redemptions ordered before this one.
    #[error("invitation {invitation} allows {max_uses} use(s), taken by earlier redemptions")]
    UsedUp {
        /// The invitation.
        invitation: Hash,
        /// Its use limit.
        max_uses: u32,
    },
    /// Query: the agent has no path to the subject.
    #[error("the agent is not a member of the subject")]
    NotAMember,
    /// Query: the agent's best path gives a lower level.
    #[error("the agent holds only {held}")]
    Insufficient {
        /// Best level held.
        held: Access,
    },
    /// Query: a path existed but a delegation on it was revoked.
    #[error("delegation {delegation} on the agent's path was revoked by {revocation}")]
    Revoked {
        /// The revocation.
        revocation: Hash,
        /// The revoked delegation.
        delegation: Hash,
    },
}

pub(crate) fn refuse(rule: &'static str, reason: Reason) -> Refusal {
    Refusal { rule, reason }
}
