//! Set reconciliation (`specs/sync.md` §5): range-based, over the hash keyspace.
pub mod summary;
