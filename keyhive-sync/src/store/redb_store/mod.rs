//! The default durable store: redb, one file, ACID, fsync on every commit (STORE-1).
//!
//! Schema version 1 (STORE-5): tables
//! - `meta`: `&str -> u64`, holds `schema_version`;
//! - `items`: `hash[32] -> kind[1] || subject[32] || envelope`;
//! - `by_subject`: `subject[32] || hash[32] -> ()`, giving STORE-3's sorted order;
//! - `summaries`: `subject[32] -> count_le[8] || sum[32]`, maintained in the same transaction;
//! - `marks` (STORE-17, RELAY-7; created by the first `put_marks`, so a store without it is the
//!   same version 1): `hash[32] -> mark[32]`, committed without fsync (a lost mark only costs a
//!   verification at the next start; the next durable commit persists it).
//! - `addresses` (STORE-18, SYNC-108; created by the first `put_address_usage`, same version 1):
//!   `address[16] -> items_le[8] || bytes_le[8]`, committed durably.
//! - `snapshot` (STORE-19, RELAY-8; created by the first `put_snapshot`, same version 1):
//!   `"relay" -> bytes`, one row replaced whole, committed without fsync like the marks.
//!
//! A database with another schema version is refused, never silently rewritten.
//!
//! Damaged files (STORE-6..STORE-9): only a missing file creates a new store; an existing empty
//! file is refused ([`StoreError::EmptyFile`]). redb 4 has no way to open a damaged file without
//! risk of panicking (its repair runs inside `open`, and reads of damaged pages hit assertions),
//! so every call into redb — open, each transaction and the final drop — runs under
//! [`std::panic::catch_unwind`]. A contained panic becomes [`StoreError::Damaged`] naming the
//! file, and the handle then refuses every later call ([`StoreError::Unusable`]) and is never
//! touched again, not even by its drop. The engine's panic message still reaches the process's
//! panic hook; the CLI silences those from redb.
//!
//! STORE-15: after an I/O failure (a full disk) redb refuses every later call with
//! `PreviousIo` until the database is reopened; the store reopens it at once (and, if that
//! fails, at its next call), so writes succeed again once space is free, without a restart.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Database, ReadableDatabase};

use super::StoreError;
use crate::item::SubjectId;
use crate::reconcile::summary::Summary;

mod records;
mod schema;
mod store_impl;

use records::{backend, every_summary};
pub use schema::SCHEMA_VERSION;
use schema::{init_schema, open_db, open_read_only_db};

/// Opens (or creates) the database behind a store; called again to reopen it (STORE-15).
type Opener = Box<dyn Fn(&Path) -> Result<Handle, StoreError> + Send + Sync>;

/// The open database: read-write, or read-only (`specs/sync.md` STORE-20).
enum Handle {
    Write(Database),
    Read(redb::ReadOnlyDatabase),
}

impl Handle {
    fn begin_read(&self) -> Result<redb::ReadTransaction, redb::TransactionError> {
        match self {
            Handle::Write(db) => db.begin_read(),
            Handle::Read(db) => db.begin_read(),
        }
    }
}

/// A store in one redb file.
pub struct RedbStore {
    /// `Some` while open; `None` after a reopen failed (the next call tries again) and once
    /// dropped. Never used again once `broken` is set.
    db: RwLock<Option<Handle>>,
    opener: Opener,
    path: PathBuf,
    /// STORE-8: set when redb panicked inside a call on this handle.
    broken: AtomicBool,
}

/// Runs `f` (which calls into redb) and turns a panic into [`StoreError::Damaged`] (STORE-8).
fn contain<T>(path: &Path, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(StoreError::Damaged {
            path: path.to_path_buf(),
        })
    })
}

impl RedbStore {
    /// Opens the database at `path`, or creates it if no file exists there (STORE-7), creating
    /// tables and checking the schema version (STORE-5). A damaged, empty or foreign file is an
    /// error naming the file, never a panic (STORE-6, STORE-8).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(
            path.as_ref(),
            Box::new(|path| open_db(path).map(Handle::Write)),
        )
    }

    /// STORE-20: opens the existing store at `path` read-only (redb's `ReadOnlyDatabase`):
    /// reads answer as on a read-write handle, every write is refused with
    /// [`StoreError::ReadOnly`], and the file is never written, not even redb's open and
    /// closed marks, so a command that only reads leaves it byte for byte as it was. Refused
    /// (and the caller opens the store as usual) when the file is absent (nothing is
    /// created), in use by a writer, of another schema version, or was not closed cleanly.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let opener: Opener = Box::new(open_read_only_db);
        let db = contain(&path, || opener(&path))?;
        Ok(RedbStore {
            db: RwLock::new(Some(db)),
            opener,
            path,
            broken: AtomicBool::new(false),
        })
    }

    /// [`RedbStore::open`] through `opener`, which is also what reopens it (STORE-15).
    fn open_with(path: &Path, opener: Opener) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        let db = contain(&path, || opener(&path))?;
        let store = RedbStore {
            db: RwLock::new(Some(db)),
            opener,
            path,
            broken: AtomicBool::new(false),
        };
        store.with_db(init_schema)?;
        Ok(store)
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs one redb write under STORE-8 (see [`RedbStore::with_handle`]); refused on a
    /// read-only handle (STORE-20).
    fn with_db<T>(
        &self,
        f: impl FnOnce(&Database, &Path) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_handle(|handle, path| match handle {
            Handle::Write(db) => f(db, path),
            Handle::Read(_) => Err(StoreError::ReadOnly {
                path: path.to_path_buf(),
            }),
        })
    }

    /// Runs `f` in one write transaction committed without fsync (`Durability::None`): for
    /// what only saves work when kept (marks, the relay snapshot, what peers took and offered;
    /// the next durable commit persists it).
    fn with_lazy_write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction, &Path) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.with_db(|db, path| {
            let mut txn = db.begin_write().map_err(|e| backend(path, e))?;
            txn.set_durability(redb::Durability::None)
                .map_err(|e| backend(path, e))?;
            f(&txn, path)?;
            txn.commit().map_err(|e| backend(path, e))
        })
    }

    /// Runs one redb read transaction under STORE-8, on either kind of handle.
    fn with_read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction, &Path) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_handle(|handle, path| {
            let txn = handle.begin_read().map_err(|e| backend(path, e))?;
            f(&txn, path)
        })
    }

    /// Runs one redb operation under STORE-8: refuses a handle found damaged, and marks it so
    /// when redb panics.
    fn with_handle<T>(
        &self,
        f: impl FnOnce(&Handle, &Path) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let unusable = || StoreError::Unusable {
            path: self.path.clone(),
        };
        if self.broken.load(Ordering::Acquire) {
            return Err(unusable());
        }
        if self.slot().is_none() {
            // STORE-15: an earlier reopen failed; try again before giving up on this call.
            self.reopen()?;
        }
        let result = {
            let slot = self.slot();
            let db = slot.as_ref().ok_or_else(unusable)?;
            contain(&self.path, || f(db, &self.path))
        };
        match &result {
            Err(StoreError::Damaged { .. }) => self.broken.store(true, Ordering::Release),
            Err(StoreError::Database { source, .. })
                if matches!(**source, redb::Error::Io(_) | redb::Error::PreviousIo) =>
            {
                // STORE-15: redb refuses every later call after one I/O failure (a full disk)
                // until the database is reopened; reopen now, so that the store works again
                // once the cause is gone. This call's failure stands (nothing was committed).
                if let Err(e) = self.reopen() {
                    tracing::warn!(error = %e, "cannot reopen the store after an I/O error; retrying on the next call");
                }
            }
            _ => {}
        }
        result
    }

    fn slot(&self) -> std::sync::RwLockReadGuard<'_, Option<Handle>> {
        // A poisoned lock only follows a contained panic, which marks the handle broken.
        self.db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// STORE-15: closes the database (if open) and opens it again through the opener.
    fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = self
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(db) = slot.take()
            && catch_unwind(AssertUnwindSafe(move || drop(db))).is_err()
        {
            self.broken.store(true, Ordering::Release);
            return Err(StoreError::Damaged {
                path: self.path.clone(),
            });
        }
        let db = contain(&self.path, || (self.opener)(&self.path));
        if matches!(db, Err(StoreError::Damaged { .. })) {
            self.broken.store(true, Ordering::Release);
        }
        *slot = Some(db?);
        Ok(())
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        let slot = self
            .db
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(db) = slot.take() {
            if self.broken.load(Ordering::Acquire) {
                // STORE-8: a database redb panicked on is not touched again, not even to close it
                // (its file lock is released when the process exits).
                std::mem::forget(db);
            } else {
                // A panic while closing leaves nothing to report to: the data was committed.
                let _ = catch_unwind(AssertUnwindSafe(move || drop(db)));
            }
        }
    }
}

impl RedbStore {
    /// STORE-4 for every subject at once: each subject with at least one item and its summary,
    /// sorted by subject, read in one transaction (a consistent snapshot). A device binds
    /// what it derived from a full replay to this list (the CLI's name index, `specs/replica.md`
    /// REP-64).
    pub fn summaries(&self) -> Result<Vec<(SubjectId, Summary)>, StoreError> {
        self.with_read(every_summary)
    }

    /// [`RedbStore::summaries`] of the store file at `path`, opened read-only (redb's
    /// `ReadOnlyDatabase`): nothing is written or synced, not even redb's open and closed
    /// marks, so a command that only checks the store against what it derived earlier (the
    /// CLI's name index, REP-66) costs no disk write. Fails (and the caller opens the store
    /// as usual) when the file is absent, in use by a writer, of another schema version, or
    /// was not closed cleanly.
    pub fn read_summaries(path: impl AsRef<Path>) -> Result<Vec<(SubjectId, Summary)>, StoreError> {
        Self::open_read_only(path)?.summaries()
    }
}

#[cfg(test)]
mod disk_full_tests;

#[cfg(test)]
mod tests;
