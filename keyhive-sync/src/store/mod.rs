//! Item storage behind one trait (`specs/sync.md` §3), with an in-memory and a redb backend,
//! and (feature `postgres`) a PostgreSQL backend several relays share (STORE-10..STORE-14).
//!
//! Every backend passes the same conformance suite (`conformance`, feature `conformance` or
//! tests). Rules: STORE-1 `put` is atomic for the whole batch and durable when it returns `Ok`;
//! STORE-2 items are keyed by their content hash and re-inserting one is a no-op; STORE-3
//! `hashes(subject)` is sorted ascending; STORE-4 `summary(subject)` equals
//! `Summary::of(hashes(subject))`; STORE-16 `remove` deletes a batch in one atomic, durable
//! transaction, keeping STORE-3/4 (a subject left empty is no longer listed); STORE-17
//! `put_marks` keeps one admission mark per hash (RELAY-7), replacing an earlier one, and
//! `marks` lists them; STORE-18 `put_address_usage` keeps one stranger usage per network address
//! (SYNC-108), replacing an earlier one, and `address_usage` reads it back. Damaged files (STORE-6..STORE-9, [`redb_store`]): every
//! failure is a typed [`StoreError`] naming the file and what to do, never a panic; an empty
//! existing file is refused, never recreated.

use std::path::PathBuf;

use keyhive_core::Hash;

use crate::item::{Item, SubjectId};
use crate::reconcile::summary::Summary;

pub mod marks;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod redb_store;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use marks::{Mark, MarkKey};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresConfig, PostgresError, PostgresStore};
pub use redb_store::RedbStore;

/// Why a storage operation failed.
///
/// Every variant about a file names it and says what to do (STORE-6..STORE-9); none of them is
/// ever a panic: the storage engine's own panics are contained at the boundary (STORE-8).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// STORE-7: the file exists but is empty; it is never silently made a new, empty store.
    #[error(
        "the store {} exists but is empty (truncated?); restore it from a backup, or move it \
         aside to start an empty store and re-sync from your relays",
        path.display()
    )]
    EmptyFile {
        /// The store file.
        path: PathBuf,
    },
    /// STORE-20: a write on a store opened read-only (`RedbStore::open_read_only`); the
    /// commands that open it so only read.
    #[error("the store {} was opened read-only and cannot be written", path.display())]
    ReadOnly {
        /// The store file.
        path: PathBuf,
    },
    /// Another process (or handle) holds the store open.
    #[error("the store {} is in use by another process", path.display())]
    InUse {
        /// The store file.
        path: PathBuf,
    },
    /// The file could not be opened as a store (unreadable, damaged or foreign).
    #[error(
        "cannot open the store {}; if it is damaged, restore it from a backup, or move it \
         aside and re-sync from your relays",
        path.display()
    )]
    Open {
        /// The store file.
        path: PathBuf,
        /// The engine's reason.
        #[source]
        source: redb::DatabaseError,
    },
    /// A read or write transaction failed.
    #[error(
        "the store {} failed a read or write; if this persists, restore it from a backup, or \
         move it aside and re-sync from your relays",
        path.display()
    )]
    Database {
        /// The store file.
        path: PathBuf,
        /// The engine's reason.
        #[source]
        source: Box<redb::Error>,
    },
    /// STORE-8: the storage engine panicked on this file (damaged data); the handle refuses every
    /// later call.
    #[error(
        "the store {} is damaged (the storage engine failed on it); restore it from a backup, \
         or move it aside and re-sync from your relays",
        path.display()
    )]
    Damaged {
        /// The store file.
        path: PathBuf,
    },
    /// STORE-8: an earlier call on this handle found the store damaged; it is not used again.
    #[error("the store {} was found damaged earlier and is no longer used", path.display())]
    Unusable {
        /// The store file.
        path: PathBuf,
    },
    /// Stored bytes do not decode (corruption or a foreign file).
    #[error(
        "the store {} holds corrupt data ({what}); restore it from a backup, or move it aside \
         and re-sync from your relays",
        path.display()
    )]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What did not decode.
        what: &'static str,
    },
    /// STORE-12: the PostgreSQL store failed (database down, a statement failed, timeout); a
    /// put that failed acknowledged nothing.
    #[cfg(feature = "postgres")]
    #[error("the relay's PostgreSQL store failed")]
    Postgres(#[from] postgres::PostgresError),
    /// The database was written by a newer (or unknown) schema version.
    #[error(
        "the store {} has schema version {found} (this build reads {supported}); use a newer \
         keyhive",
        path.display()
    )]
    SchemaVersion {
        /// The store file.
        path: PathBuf,
        /// Version found on disk.
        found: u64,
        /// Version this build reads and writes.
        supported: u64,
    },
}

impl StoreError {
    /// SYNC-14: whether the store cannot be reached for now (its database is down or did not
    /// answer in time), as opposed to a damaged or refused store: the relay then answers
    /// `Unavailable` and the request can be retried.
    pub fn is_unavailable(&self) -> bool {
        match self {
            #[cfg(feature = "postgres")]
            StoreError::Postgres(e) => e.is_unavailable(),
            _ => false,
        }
    }
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

    /// STORE-21: every subject with at least one item, sorted ascending, with its summary
    /// (STORE-4), as [`Store::subjects`] and [`Store::summary`] of each would answer. A backend
    /// with transactions reads them in one (a relay answers `Collection`, SYNC-50, with it);
    /// the default asks for each summary in turn.
    fn summaries(&self) -> Result<Vec<(SubjectId, Summary)>, StoreError> {
        self.subjects()?
            .into_iter()
            .map(|subject| Ok((subject, self.summary(&subject)?)))
            .collect()
    }

    /// STORE-24: the summaries (STORE-4) of the listed subjects that hold at least one item,
    /// sorted ascending and without repeats, as [`Store::summary`] of each would answer; a
    /// subject without items is left out. A relay answers `Collection` (SYNC-50) with it when
    /// its policy lists every subject the requester may pull, so the answer costs what the
    /// requester reaches, not what the relay holds. A backend with transactions reads them in
    /// one; the default asks for each summary in turn.
    fn summaries_of(
        &self,
        subjects: &[SubjectId],
    ) -> Result<Vec<(SubjectId, Summary)>, StoreError> {
        let wanted: std::collections::BTreeSet<&SubjectId> = subjects.iter().collect();
        let mut out = Vec::with_capacity(wanted.len());
        for subject in wanted {
            let summary = self.summary(subject)?;
            if summary.count > 0 {
                out.push((*subject, summary));
            }
        }
        Ok(out)
    }

    /// STORE-16: deletes every listed item in one atomic, durable transaction, updating the
    /// subject index and summaries with it (STORE-3/4; a subject left without items is no
    /// longer listed by [`Store::subjects`]). Returns, per hash, whether it was held; a hash not
    /// held (or listed twice) is a no-op. Used by a device replica to collect the pieces of an
    /// interrupted write (REP-24); relays never delete.
    fn remove(&self, hashes: &[Hash]) -> Result<Vec<bool>, StoreError>;

    /// STORE-17: records one admission mark per listed hash (RELAY-7), replacing any mark
    /// held for it. The item need not be stored (a mark of an absent item is never read).
    /// Marks only spare verification, so a backend may commit them without waiting for the
    /// disk: one lost in a crash is made again at the next start. The default keeps none
    /// (every start then verifies everything); every backend of this crate keeps them.
    fn put_marks(&self, marks: &[(Hash, Mark)]) -> Result<(), StoreError> {
        let _ = marks;
        Ok(())
    }

    /// STORE-17: every admission mark held, in no particular order.
    fn marks(&self) -> Result<Vec<(Hash, Mark)>, StoreError> {
        Ok(Vec::new())
    }

    /// STORE-19: replaces the relay's start snapshot (RELAY-8 in `specs/replica.md`: opaque
    /// bytes the relay authenticates itself) with `snapshot`, atomically: a reader sees the
    /// old bytes or the new ones, never a mix. Like marks it need not be durable: a lost or
    /// stale snapshot only costs replaying more of the store at the next start. The default
    /// keeps none (every start then replays the whole store).
    fn put_snapshot(&self, snapshot: &[u8]) -> Result<(), StoreError> {
        let _ = snapshot;
        Ok(())
    }

    /// STORE-19: the snapshot last recorded by [`Store::put_snapshot`], if any.
    fn snapshot(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }

    /// STORE-18: records what strangers pushing from one network address stored at this relay
    /// (SYNC-108), replacing what was held for it, durably when it returns `Ok`, so that a
    /// restart does not give the address a fresh budget. The default keeps nothing; every
    /// backend of this crate keeps it.
    fn put_address_usage(
        &self,
        address: &AddressKey,
        usage: AddressUsage,
    ) -> Result<(), StoreError> {
        let _ = (address, usage);
        Ok(())
    }

    /// STORE-18: what [`Store::put_address_usage`] last recorded for `address`.
    fn address_usage(&self, address: &AddressKey) -> Result<Option<AddressUsage>, StoreError> {
        let _ = address;
        Ok(None)
    }

    /// STORE-22: records that the peer whose id is `peer` took (stored or already held) the
    /// items `hashes` that this device offered of a subject it was removed from (REP-33: the
    /// peer does not show a removed device which of them it holds). Hashes already recorded
    /// are a no-op. Like marks it need not be durable: a lost record only makes the device push
    /// those items once more. The default keeps none (every new client then pushes them again).
    fn put_peer_taken(&self, peer: &[u8; 32], hashes: &[Hash]) -> Result<(), StoreError> {
        let _ = (peer, hashes);
        Ok(())
    }

    /// STORE-22: every hash [`Store::put_peer_taken`] recorded for `peer`, ascending.
    fn peer_taken(&self, peer: &[u8; 32]) -> Result<Vec<Hash>, StoreError> {
        let _ = peer;
        Ok(Vec::new())
    }

    /// STORE-23: replaces what is kept of the last collection offer the peer with id `peer`
    /// sent (SYNC-53: bytes the client encodes, opaque to the store), atomically. Like marks it
    /// need not be durable: a lost or older offer only costs downloading the whole one. The
    /// default keeps none.
    fn put_peer_offer(&self, peer: &[u8; 32], offer: &[u8]) -> Result<(), StoreError> {
        let _ = (peer, offer);
        Ok(())
    }

    /// STORE-23: what [`Store::put_peer_offer`] last recorded for `peer`.
    fn peer_offer(&self, peer: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = peer;
        Ok(None)
    }
}

/// STORE-18, SYNC-108: a network address as a relay counts it, in 16 bytes: an IPv4 address as
/// its IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), an IPv6 address as its /64 prefix followed
/// by eight zero bytes (so the two never collide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressKey(pub [u8; 16]);

/// STORE-18: what strangers from one address stored at a relay (SYNC-104, SYNC-108).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AddressUsage {
    /// Items stored.
    pub items: u64,
    /// Envelope bytes stored.
    pub bytes: u64,
}

impl AddressUsage {
    /// A usage of `items` items and `bytes` bytes.
    pub fn new(items: u64, bytes: u64) -> Self {
        AddressUsage { items, bytes }
    }

    /// The 16-byte record backends store: `items_le[8] || bytes_le[8]`.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.items.to_le_bytes());
        out[8..].copy_from_slice(&self.bytes.to_le_bytes());
        out
    }

    /// Reads [`AddressUsage::to_bytes`] back.
    pub fn from_bytes(bytes: &[u8; 16]) -> Self {
        let mut items = [0u8; 8];
        let mut size = [0u8; 8];
        items.copy_from_slice(&bytes[..8]);
        size.copy_from_slice(&bytes[8..]);
        AddressUsage {
            items: u64::from_le_bytes(items),
            bytes: u64::from_le_bytes(size),
        }
    }
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
    fn summaries(&self) -> Result<Vec<(SubjectId, Summary)>, StoreError> {
        (**self).summaries()
    }
    fn summaries_of(
        &self,
        subjects: &[SubjectId],
    ) -> Result<Vec<(SubjectId, Summary)>, StoreError> {
        (**self).summaries_of(subjects)
    }
    fn remove(&self, hashes: &[Hash]) -> Result<Vec<bool>, StoreError> {
        (**self).remove(hashes)
    }
    fn put_marks(&self, marks: &[(Hash, Mark)]) -> Result<(), StoreError> {
        (**self).put_marks(marks)
    }
    fn marks(&self) -> Result<Vec<(Hash, Mark)>, StoreError> {
        (**self).marks()
    }
    fn put_snapshot(&self, snapshot: &[u8]) -> Result<(), StoreError> {
        (**self).put_snapshot(snapshot)
    }
    fn snapshot(&self) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).snapshot()
    }
    fn put_address_usage(
        &self,
        address: &AddressKey,
        usage: AddressUsage,
    ) -> Result<(), StoreError> {
        (**self).put_address_usage(address, usage)
    }
    fn address_usage(&self, address: &AddressKey) -> Result<Option<AddressUsage>, StoreError> {
        (**self).address_usage(address)
    }
    fn put_peer_taken(&self, peer: &[u8; 32], hashes: &[Hash]) -> Result<(), StoreError> {
        (**self).put_peer_taken(peer, hashes)
    }
    fn peer_taken(&self, peer: &[u8; 32]) -> Result<Vec<Hash>, StoreError> {
        (**self).peer_taken(peer)
    }
    fn put_peer_offer(&self, peer: &[u8; 32], offer: &[u8]) -> Result<(), StoreError> {
        (**self).put_peer_offer(peer, offer)
    }
    fn peer_offer(&self, peer: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).peer_offer(peer)
    }
}
