//! Item storage behind one trait (`specs/sync.md` §3), with an in-memory and a redb backend.
//!
//! Every backend passes the same conformance suite (`conformance`, feature `conformance` or
//! tests). Rules: STORE-1 `put` is atomic for the whole batch and durable when it returns `Ok`;
//! STORE-2 items are keyed by their content hash and re-inserting one is a no-op; STORE-3
//! `hashes(subject)` is sorted ascending; STORE-4 `summary(subject)` equals
//! `Summary::of(hashes(subject))`.

use keyhive_core::Hash;

use crate::item::{Item, SubjectId};
use crate::reconcile::summary::Summary;

pub mod memory;
pub mod redb_store;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use memory::MemoryStore;
pub use redb_store::RedbStore;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend reported an I/O or database error.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// Stored bytes do not decode (corruption or a foreign file).
    #[error("stored data is corrupt: {0}")]
    Corrupt(&'static str),
    /// The database was written by a newer (or unknown) schema version.
    #[error("unsupported storage schema version {found} (this build reads {supported})")]
    SchemaVersion {
        /// Version found on disk.
        found: u64,
        /// Version this build reads and writes.
        supported: u64,
    },
}

/// A content-addressed item store partitioned by subject.
///
/// Implementations are synchronous and thread-safe; async callers run them directly (each call
/// is short: one transaction) or on a blocking thread for large batches.
pub trait Store: Send + Sync + 'static {
    /// STORE-1/2: inserts every item in one atomic, durable transaction. Returns, per item,
    /// whether it was new.
    fn put(&self, items: &[Item]) -> Result<Vec<bool>, StoreError>;

    /// The item with this hash, if stored.
    fn get(&self, hash: &Hash) -> Result<Option<Item>, StoreError>;

    /// Whether an item with this hash is stored.
    fn contains(&self, hash: &Hash) -> Result<bool, StoreError>;

    /// STORE-3: the hashes of every item of `subject`, sorted ascending.
    fn hashes(&self, subject: &SubjectId) -> Result<Vec<Hash>, StoreError>;

    /// STORE-4: the incremental summary of `subject`'s hashes (empty if unknown).
    fn summary(&self, subject: &SubjectId) -> Result<Summary, StoreError>;

    /// Every subject with at least one item, sorted ascending.
    fn subjects(&self) -> Result<Vec<SubjectId>, StoreError>;
}

impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn put(&self, items: &[Item]) -> Result<Vec<bool>, StoreError> {
        (**self).put(items)
    }
    fn get(&self, hash: &Hash) -> Result<Option<Item>, StoreError> {
        (**self).get(hash)
    }
    fn contains(&self, hash: &Hash) -> Result<bool, StoreError> {
        (**self).contains(hash)
    }
    fn hashes(&self, subject: &SubjectId) -> Result<Vec<Hash>, StoreError> {
        (**self).hashes(subject)
    }
    fn summary(&self, subject: &SubjectId) -> Result<Summary, StoreError> {
        (**self).summary(subject)
    }
    fn subjects(&self) -> Result<Vec<SubjectId>, StoreError> {
        (**self).subjects()
    }
}
