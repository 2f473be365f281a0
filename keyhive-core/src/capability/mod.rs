//! Convergent capabilities (`specs/capabilities.md`): the signed delegation graph of groups,
//! folders and documents, and the checker that materialises, from the *set* of ops held,
//! every subject's members with effective levels and the validity of every op.
//!
//! - [`op`]: wire types ([`AuthOp`] = `Op<AuthBody>`, [`ContentOp`] = `Op<ContentBody>`).
//! - [`Checker`]: ingest (verify, park or apply), queries (`can`, `members`, `reachable`,
//!   `explain`, `op_validity`) and local builders (`delegate`, `revoke`, `write`).
//!
//! Rule numbers (`CAP-n`) cited in the code refer to `specs/capabilities.md`.
//!
//! ```
//! use keyhive_core::capability::{Access, AgentId, Checker, Explanation, PeerTag};
//! use keyhive_core::identity::{Device, GroupId};
//!
//! let alice = Device::generate(Some("alice".into()));
//! let bob = Device::generate(Some("bob".into()));
//! let mut mine = Checker::default();
//! let folder = mine.create_group(&alice)?.issuer;
//! let doc = mine.create_document(&alice)?.genesis.issuer;
//! mine.delegate(&alice, &doc, AgentId::Group(GroupId(folder)), Access::Write)?;
//! let grant = mine.delegate(&alice, &folder, AgentId::Individual(bob.id()), Access::Read)?;
//! assert!(mine.can(AgentId::Individual(bob.id()), Access::Read, &doc));
//!
//! // Another replica ingests the same ops (in any order) and agrees.
//! let mut theirs = Checker::default();
//! for op in mine.ops() {
//!     theirs.ingest(PeerTag::LOCAL, op.as_bytes())?;
//! }
//! assert_eq!(*theirs.members(&doc), *mine.members(&doc));
//!
//! // Revoking the folder grant removes Bob from every document in the folder.
//! mine.revoke(&alice, &folder, &grant.hash())?;
//! assert!(matches!(
//!     mine.explain(AgentId::Individual(bob.id()), Access::Read, &doc),
//!     Explanation::Refused(_)
//! ));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod access;
mod authority;
pub mod build;
pub mod checker;
mod delivery;
mod grant_end;
mod invitation;
mod invite_build;
mod invite_secret;
mod members_cache;
#[cfg(test)]
mod members_cache_tests;
mod membership;
pub mod op;
mod past;
pub mod pending;
pub mod query;
mod revocation;
pub mod root_form;
pub mod validity;

pub use access::{Access, AgentId, ParseAccessError};
pub use build::{BuildError, NewDocument};
pub use checker::{Checker, IngestError, IngestOutcome, MAX_CHAIN, SubjectInfo};
pub use invitation::InvitationInfo;
pub use invite_build::{NewInvitation, build_redemption};
pub use invite_secret::InviteSecret;
pub use op::{
    Action, AnySigned, AnyVerified, AuthBody, AuthOp, ContentBody, ContentHeader, ContentOp,
    INLINE_MAX_CIPHERTEXT, INLINE_SALT_LEN, InlineChange, Payload, Proof, ProofOfSecret,
};
pub use pending::{DEFAULT_PENDING_BYTES, PeerTag, PendingLimit, PendingLimits};
pub use query::{DirectMember, Explanation, Link};
pub use root_form::{ROOT_FORM_VERSION, RootFormOp};
pub use validity::{Reason, Refusal, Validity};
