//! Convergent capabilities (`specs/capabilities.md`): the signed delegation graph of groups,
//! folders and documents, and the checker that materialises, from the *set* of ops held,
//! every subject's members with effective levels and the validity of every op.
//!
//! - [`op`]: wire types ([`AuthOp`] = `Op<AuthBody>`, [`ContentOp`] = `Op<ContentBody>`).
//! - [`Checker`]: ingest (verify, park or apply), queries (`can`, `members`, `reachable`,
//!   `explain`, `op_validity`) and local builders (`delegate`, `revoke`, `write`).
//!
//! Rule numbers (`CAP-n`) cited in the code refer to `specs/capabilities.md`.

pub mod access;
mod authority;
pub mod build;
pub mod checker;
mod membership;
pub mod op;
pub mod pending;
pub mod query;
mod revocation;
pub mod validity;

pub use access::{Access, AgentId, ParseAccessError};
pub use build::BuildError;
pub use checker::{Checker, IngestError, IngestOutcome, MAX_CHAIN, SubjectInfo};
pub use op::{Action, AnySigned, AnyVerified, AuthBody, AuthOp, ContentBody, ContentOp, Proof};
pub use pending::{PeerTag, PendingLimit, PendingLimits};
pub use query::{DirectMember, Explanation, Link};
pub use validity::{Reason, Refusal, Validity};
