//! Set reconciliation (`specs/sync.md` §5): range-based, over the hash keyspace.
pub mod range;
pub mod summary;

pub use range::{Prefix, RangeAnswer, RangeQuery};
pub use summary::{Fingerprint, Summary};
