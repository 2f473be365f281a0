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

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use keyhive_core::Hash;
use keyhive_core::crypto::signing::PublicKey;
use redb::{
    Builder, Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, TableDefinition,
};

use super::{AddressKey, AddressUsage, Mark, Store, StoreError};
use crate::item::{Item, ItemKind, SubjectId, WireItem};
use crate::reconcile::summary::Summary;

/// STORE-5: the schema version this build reads and writes.
pub const SCHEMA_VERSION: u64 = 1;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const ITEMS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("items");
const BY_SUBJECT: TableDefinition<&[u8; 64], ()> = TableDefinition::new("by_subject");
const SUMMARIES: TableDefinition<&[u8; 32], &[u8; 40]> = TableDefinition::new("summaries");
const MARKS: TableDefinition<&[u8; 32], &[u8; 32]> = TableDefinition::new("marks");
const ADDRESSES: TableDefinition<&[u8; 16], &[u8; 16]> = TableDefinition::new("addresses");
const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");
/// STORE-19: the one row of `snapshot`.
const SNAPSHOT_ROW: &str = "relay";

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

/// STORE-7: creates a new database only where no file exists.
fn open_db(path: &Path) -> Result<Database, StoreError> {
    let open_error = |source: DatabaseError| match source {
        DatabaseError::DatabaseAlreadyOpen => StoreError::InUse {
            path: path.to_path_buf(),
        },
        source => StoreError::Open {
            path: path.to_path_buf(),
            source,
        },
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() == 0 => Err(StoreError::EmptyFile {
            path: path.to_path_buf(),
        }),
        Ok(_) => Builder::new().open(path).map_err(open_error),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| open_error(DatabaseError::Storage(e.into())))?;
            Builder::new().create_file(file).map_err(open_error)
        }
        Err(e) => Err(open_error(DatabaseError::Storage(e.into()))),
    }
}

fn init_schema(db: &Database, path: &Path) -> Result<(), StoreError> {
    // A store that already has its schema needs no write transaction, so opening it for a
    // read-only command commits nothing (redb still marks the file open and closed).
    if let Some(found) = stored_schema(db, path)? {
        if found != SCHEMA_VERSION {
            return Err(StoreError::SchemaVersion {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        return Ok(());
    }
    let txn = db.begin_write().map_err(|e| backend(path, e))?;
    {
        let mut meta = txn.open_table(META).map_err(|e| backend(path, e))?;
        let found = meta
            .get("schema_version")
            .map_err(|e| backend(path, e))?
            .map(|v| v.value());
        match found {
            None => {
                meta.insert("schema_version", SCHEMA_VERSION)
                    .map_err(|e| backend(path, e))?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(found) => {
                return Err(StoreError::SchemaVersion {
                    path: path.to_path_buf(),
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
        }
        txn.open_table(ITEMS).map_err(|e| backend(path, e))?;
        txn.open_table(BY_SUBJECT).map_err(|e| backend(path, e))?;
        txn.open_table(SUMMARIES).map_err(|e| backend(path, e))?;
    }
    txn.commit().map_err(|e| backend(path, e))?;
    Ok(())
}

/// The schema version of a store whose tables all exist, or `None` for a new store.
fn stored_schema(db: &Database, path: &Path) -> Result<Option<u64>, StoreError> {
    let txn = db.begin_read().map_err(|e| backend(path, e))?;
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(backend(path, e)),
    };
    let found = meta
        .get("schema_version")
        .map_err(|e| backend(path, e))?
        .map(|v| v.value());
    let Some(found) = found else {
        return Ok(None);
    };
    for exists in [
        txn.open_table(ITEMS).map(|_| ()),
        txn.open_table(BY_SUBJECT).map(|_| ()),
        txn.open_table(SUMMARIES).map(|_| ()),
    ] {
        match exists {
            Ok(()) => {}
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(backend(path, e)),
        }
    }
    Ok(Some(found))
}

fn backend(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    StoreError::Database {
        path: path.to_path_buf(),
        source: Box::new(e.into()),
    }
}

fn corrupt(path: &Path, what: &'static str) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        what,
    }
}

fn subject_key(subject: &SubjectId, hash: &Hash) -> [u8; 64] {
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(subject.as_bytes());
    key[32..].copy_from_slice(&hash.0);
    key
}

fn encode_item(item: &Item) -> Vec<u8> {
    // SYNC-110: the envelope rests in its wire form.
    let wire = item.wire_envelope();
    let mut out = Vec::with_capacity(33 + wire.len());
    out.push(item.kind().code());
    out.extend_from_slice(item.subject().as_bytes());
    out.extend_from_slice(&wire);
    out
}

fn decode_item(bytes: &[u8], hash: &Hash, path: &Path) -> Result<Item, StoreError> {
    let (&code, rest) = bytes
        .split_first()
        .ok_or_else(|| corrupt(path, "empty item"))?;
    let kind = ItemKind::from_code(code).ok_or_else(|| corrupt(path, "unknown item kind"))?;
    if rest.len() < 32 {
        return Err(corrupt(path, "item shorter than its header"));
    }
    let mut subject = [0u8; 32];
    subject.copy_from_slice(&rest[..32]);
    // SYNC-110: the wire form (records written before it hold the signed bytes, which
    // `from_wire` takes as they are).
    let item = Item::from_wire(WireItem {
        kind,
        subject: SubjectId(PublicKey(subject)),
        envelope: rest[32..].to_vec(),
    })
    .map_err(|_| corrupt(path, "stored envelope breaks SYNC-2 or SYNC-110"))?;
    if item.hash() != *hash {
        return Err(corrupt(path, "stored item does not match its hash"));
    }
    Ok(item)
}

fn decode_summary(bytes: &[u8; 40], path: &Path) -> Result<Summary, StoreError> {
    Summary::from_bytes(bytes).ok_or_else(|| corrupt(path, "bad summary"))
}

/// Every subject's summary in `txn`, sorted by subject.
fn every_summary(
    txn: &redb::ReadTransaction,
    path: &Path,
) -> Result<Vec<(SubjectId, Summary)>, StoreError> {
    let summaries = txn.open_table(SUMMARIES).map_err(|e| backend(path, e))?;
    let mut out = Vec::new();
    for entry in summaries.iter().map_err(|e| backend(path, e))? {
        let (key, value) = entry.map_err(|e| backend(path, e))?;
        let summary = decode_summary(value.value(), path)?;
        out.push((SubjectId(PublicKey(*key.value())), summary));
    }
    Ok(out)
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

/// STORE-20: opens the existing file at `path` read-only and checks its schema version.
fn open_read_only_db(path: &Path) -> Result<Handle, StoreError> {
    let db = redb::ReadOnlyDatabase::open(path).map_err(|source| match source {
        DatabaseError::DatabaseAlreadyOpen => StoreError::InUse {
            path: path.to_path_buf(),
        },
        source => StoreError::Open {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let found = {
        let txn = db.begin_read().map_err(|e| backend(path, e))?;
        let meta = txn.open_table(META).map_err(|e| backend(path, e))?;
        meta.get("schema_version")
            .map_err(|e| backend(path, e))?
            .map(|v| v.value())
    };
    if found != Some(SCHEMA_VERSION) {
        return Err(StoreError::SchemaVersion {
            path: path.to_path_buf(),
            found: found.unwrap_or(0),
            supported: SCHEMA_VERSION,
        });
    }
    Ok(Handle::Read(db))
}

impl Store for RedbStore {
    fn put(&self, items: &[Item]) -> Result<Vec<bool>, StoreError> {
        self.with_db(|db, path| {
            let txn = db.begin_write().map_err(|e| backend(path, e))?;
            let mut out = Vec::with_capacity(items.len());
            {
                let mut table = txn.open_table(ITEMS).map_err(|e| backend(path, e))?;
                let mut index = txn.open_table(BY_SUBJECT).map_err(|e| backend(path, e))?;
                let mut summaries = txn.open_table(SUMMARIES).map_err(|e| backend(path, e))?;
                let mut touched: BTreeMap<SubjectId, Summary> = BTreeMap::new();
                for item in items {
                    let hash = item.hash();
                    if table.get(&hash.0).map_err(|e| backend(path, e))?.is_some() {
                        out.push(false);
                        continue;
                    }
                    table
                        .insert(&hash.0, encode_item(item).as_slice())
                        .map_err(|e| backend(path, e))?;
                    index
                        .insert(&subject_key(&item.subject(), &hash), ())
                        .map_err(|e| backend(path, e))?;
                    let subject = item.subject();
                    let summary = match touched.get_mut(&subject) {
                        Some(s) => s,
                        None => {
                            let current = match summaries
                                .get(subject.as_bytes())
                                .map_err(|e| backend(path, e))?
                            {
                                Some(v) => decode_summary(v.value(), path)?,
                                None => Summary::default(),
                            };
                            touched.entry(subject).or_insert(current)
                        }
                    };
                    summary.add(&hash);
                    out.push(true);
                }
                for (subject, summary) in touched {
                    summaries
                        .insert(subject.as_bytes(), &summary.to_bytes())
                        .map_err(|e| backend(path, e))?;
                }
            }
            // STORE-1: Durability::Immediate (the default) fsyncs before commit returns.
            txn.commit().map_err(|e| backend(path, e))?;
            Ok(out)
        })
    }

    fn get(&self, hash: &Hash) -> Result<Option<Item>, StoreError> {
        self.with_read(|txn, path| {
            let table = txn.open_table(ITEMS).map_err(|e| backend(path, e))?;
            let Some(item) = table.get(&hash.0).map_err(|e| backend(path, e))? else {
                return Ok(None);
            };
            let item = decode_item(item.value(), hash, path)?;
            // STORE-9: the hash covers only the envelope; the subject must agree with the index.
            let index = txn.open_table(BY_SUBJECT).map_err(|e| backend(path, e))?;
            let key = subject_key(&item.subject(), hash);
            if index.get(&key).map_err(|e| backend(path, e))?.is_none() {
                return Err(corrupt(
                    path,
                    "stored subject disagrees with the subject index",
                ));
            }
            Ok(Some(item))
        })
    }

    fn contains(&self, hash: &Hash) -> Result<bool, StoreError> {
        self.with_read(|txn, path| {
            let table = txn.open_table(ITEMS).map_err(|e| backend(path, e))?;
            Ok(table.get(&hash.0).map_err(|e| backend(path, e))?.is_some())
        })
    }

    fn hashes(&self, subject: &SubjectId) -> Result<Vec<Hash>, StoreError> {
        self.with_read(|txn, path| {
            let index = txn.open_table(BY_SUBJECT).map_err(|e| backend(path, e))?;
            let lo = subject_key(subject, &Hash([0; 32]));
            let hi = subject_key(subject, &Hash([0xff; 32]));
            let mut out = Vec::new();
            for entry in index
                .range::<&[u8; 64]>(&lo..=&hi)
                .map_err(|e| backend(path, e))?
            {
                let (key, _) = entry.map_err(|e| backend(path, e))?;
                let mut h = [0u8; 32];
                h.copy_from_slice(&key.value()[32..]);
                out.push(Hash(h));
            }
            Ok(out)
        })
    }

    fn summary(&self, subject: &SubjectId) -> Result<Summary, StoreError> {
        self.with_read(|txn, path| {
            let summaries = txn.open_table(SUMMARIES).map_err(|e| backend(path, e))?;
            match summaries
                .get(subject.as_bytes())
                .map_err(|e| backend(path, e))?
            {
                Some(v) => decode_summary(v.value(), path),
                None => Ok(Summary::default()),
            }
        })
    }

    fn subjects(&self) -> Result<Vec<SubjectId>, StoreError> {
        self.with_read(|txn, path| {
            let summaries = txn.open_table(SUMMARIES).map_err(|e| backend(path, e))?;
            let mut out = Vec::new();
            for entry in summaries.iter().map_err(|e| backend(path, e))? {
                let (key, _) = entry.map_err(|e| backend(path, e))?;
                out.push(SubjectId(PublicKey(*key.value())));
            }
            Ok(out)
        })
    }

    /// STORE-21: one read transaction ([`RedbStore::summaries`]).
    fn summaries(&self) -> Result<Vec<(SubjectId, Summary)>, StoreError> {
        self.with_read(every_summary)
    }

    /// STORE-16: one write transaction over the three tables; a subject whose count reaches
    /// zero loses its summary row, so `subjects` no longer lists it.
    fn remove(&self, hashes: &[Hash]) -> Result<Vec<bool>, StoreError> {
        self.with_db(|db, path| {
            let txn = db.begin_write().map_err(|e| backend(path, e))?;
            let mut out = Vec::with_capacity(hashes.len());
            {
                let mut table = txn.open_table(ITEMS).map_err(|e| backend(path, e))?;
                let mut index = txn.open_table(BY_SUBJECT).map_err(|e| backend(path, e))?;
                let mut summaries = txn.open_table(SUMMARIES).map_err(|e| backend(path, e))?;
                let mut touched: BTreeMap<SubjectId, Summary> = BTreeMap::new();
                for hash in hashes {
                    let Some(removed) = table.remove(&hash.0).map_err(|e| backend(path, e))? else {
                        out.push(false);
                        continue;
                    };
                    let subject = decode_item(removed.value(), hash, path)?.subject();
                    drop(removed);
                    index
                        .remove(&subject_key(&subject, hash))
                        .map_err(|e| backend(path, e))?;
                    let summary = match touched.get_mut(&subject) {
                        Some(s) => s,
                        None => {
                            let current = match summaries
                                .get(subject.as_bytes())
                                .map_err(|e| backend(path, e))?
                            {
                                Some(v) => decode_summary(v.value(), path)?,
                                None => return Err(corrupt(path, "item without a summary")),
                            };
                            touched.entry(subject).or_insert(current)
                        }
                    };
                    summary.remove(hash);
                    out.push(true);
                }
                for (subject, summary) in touched {
                    if summary.count == 0 {
                        summaries
                            .remove(subject.as_bytes())
                            .map_err(|e| backend(path, e))?;
                    } else {
                        summaries
                            .insert(subject.as_bytes(), &summary.to_bytes())
                            .map_err(|e| backend(path, e))?;
                    }
                }
            }
            // STORE-1/16: durable when commit returns, like a put.
            txn.commit().map_err(|e| backend(path, e))?;
            Ok(out)
        })
    }

    /// STORE-17: one write transaction, not fsynced (see the module docs).
    fn put_marks(&self, marks: &[(Hash, Mark)]) -> Result<(), StoreError> {
        if marks.is_empty() {
            return Ok(());
        }
        self.with_db(|db, path| {
            let mut txn = db.begin_write().map_err(|e| backend(path, e))?;
            txn.set_durability(Durability::None)
                .map_err(|e| backend(path, e))?;
            {
                let mut table = txn.open_table(MARKS).map_err(|e| backend(path, e))?;
                for (hash, mark) in marks {
                    table
                        .insert(&hash.0, &mark.0)
                        .map_err(|e| backend(path, e))?;
                }
            }
            txn.commit().map_err(|e| backend(path, e))?;
            Ok(())
        })
    }

    fn marks(&self) -> Result<Vec<(Hash, Mark)>, StoreError> {
        self.with_read(|txn, path| {
            let table = match txn.open_table(MARKS) {
                Ok(t) => t,
                // A store no relay marked yet (or one older than STORE-17).
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(backend(path, e)),
            };
            let mut out = Vec::new();
            for entry in table.iter().map_err(|e| backend(path, e))? {
                let (hash, mark) = entry.map_err(|e| backend(path, e))?;
                out.push((Hash(*hash.value()), Mark(*mark.value())));
            }
            Ok(out)
        })
    }

    /// STORE-19: one write transaction replacing the row, not fsynced (see the module docs).
    fn put_snapshot(&self, snapshot: &[u8]) -> Result<(), StoreError> {
        self.with_db(|db, path| {
            let mut txn = db.begin_write().map_err(|e| backend(path, e))?;
            txn.set_durability(Durability::None)
                .map_err(|e| backend(path, e))?;
            {
                let mut table = txn.open_table(SNAPSHOT).map_err(|e| backend(path, e))?;
                table
                    .insert(SNAPSHOT_ROW, snapshot)
                    .map_err(|e| backend(path, e))?;
            }
            txn.commit().map_err(|e| backend(path, e))?;
            Ok(())
        })
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_read(|txn, path| {
            let table = match txn.open_table(SNAPSHOT) {
                Ok(t) => t,
                // No relay snapshot written yet (or a store older than STORE-19).
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(backend(path, e)),
            };
            let held = table.get(SNAPSHOT_ROW).map_err(|e| backend(path, e))?;
            Ok(held.map(|v| v.value().to_vec()))
        })
    }

    /// STORE-18: one durable write transaction.
    fn put_address_usage(
        &self,
        address: &AddressKey,
        usage: AddressUsage,
    ) -> Result<(), StoreError> {
        self.with_db(|db, path| {
            let txn = db.begin_write().map_err(|e| backend(path, e))?;
            {
                let mut table = txn.open_table(ADDRESSES).map_err(|e| backend(path, e))?;
                table
                    .insert(&address.0, &usage.to_bytes())
                    .map_err(|e| backend(path, e))?;
            }
            txn.commit().map_err(|e| backend(path, e))?;
            Ok(())
        })
    }

    fn address_usage(&self, address: &AddressKey) -> Result<Option<AddressUsage>, StoreError> {
        self.with_read(|txn, path| {
            let table = match txn.open_table(ADDRESSES) {
                Ok(t) => t,
                // No stranger stored anything yet (or a store older than STORE-18).
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(backend(path, e)),
            };
            let held = table.get(&address.0).map_err(|e| backend(path, e))?;
            Ok(held.map(|v| AddressUsage::from_bytes(v.value())))
        })
    }
}

#[cfg(test)]
#[path = "redb_disk_full_tests.rs"]
mod disk_full_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance() {
        let dir = tempfile::tempdir().expect("tempdir");
        let counter = std::sync::atomic::AtomicUsize::new(0);
        super::super::conformance::run_all(|| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            RedbStore::open(dir.path().join(format!("db{n}.redb"))).expect("open")
        });
    }

    /// STORE-4 (all subjects): `summaries` lists every subject with its summary, equal to
    /// `subjects` and `summary` one by one, and follows puts and removals.
    #[test]
    fn summaries_list_every_subject() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open(dir.path().join("s.redb")).expect("open");
        assert!(store.summaries().expect("summaries").is_empty());
        let items = super::super::conformance::sample_items(9, 3);
        store.put(&items).expect("put");
        let listed = store.summaries().expect("summaries");
        let subjects = store.subjects().expect("subjects");
        assert_eq!(listed.iter().map(|(s, _)| *s).collect::<Vec<_>>(), subjects);
        for (subject, summary) in &listed {
            assert_eq!(*summary, store.summary(subject).expect("summary"));
        }
        let before = listed.clone();
        store.remove(&[items[0].hash()]).expect("remove");
        let after = store.summaries().expect("summaries");
        assert_ne!(after, before);
        // Read-only, from the file: refused while this handle holds it, equal once closed,
        // and the file is not written.
        let path = dir.path().join("s.redb");
        assert!(RedbStore::read_summaries(&path).is_err());
        drop(store);
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(RedbStore::read_summaries(&path).expect("read only"), after);
        assert_eq!(std::fs::read(&path).expect("read"), bytes);
        assert!(RedbStore::read_summaries(dir.path().join("absent.redb")).is_err());
    }

    /// STORE-20: a read-only handle reads what a read-write one wrote (the read part of the
    /// conformance suite), refuses every write with `ReadOnly`, and leaves the file's bytes
    /// and modification time as they were; it is refused while a writer holds the file and
    /// on a missing file, which it does not create.
    #[test]
    fn read_only_reads_everything_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let items = super::super::conformance::sample_items(12, 3);
        let address = AddressKey([7; 16]);
        let writer = RedbStore::open(&path).expect("open");
        writer.put(&items).expect("put");
        writer
            .put_marks(&[(items[0].hash(), Mark([3; 32]))])
            .expect("marks");
        writer.put_snapshot(b"snap").expect("snapshot");
        writer
            .put_address_usage(&address, AddressUsage::new(2, 20))
            .expect("usage");
        assert!(matches!(
            RedbStore::open_read_only(&path),
            Err(StoreError::InUse { .. })
        ));
        drop(writer);
        let bytes = std::fs::read(&path).expect("read");
        let modified = std::fs::metadata(&path)
            .expect("meta")
            .modified()
            .expect("mtime");
        std::thread::sleep(std::time::Duration::from_millis(20));
        {
            let written = RedbStore::open_read_only(&path).expect("read only");
            let reader = RedbStore::open_read_only(&path).expect("two readers");
            super::super::conformance::reads_agree(&written, &reader, &items);
            assert_eq!(
                reader.summaries().expect("summaries"),
                written.summaries().expect("summaries")
            );
            let refused = |r: Result<(), StoreError>| {
                assert!(matches!(r, Err(StoreError::ReadOnly { .. })), "{r:?}");
            };
            refused(
                reader
                    .put(&super::super::conformance::sample_items(13, 1)[12..])
                    .map(drop),
            );
            refused(reader.remove(&[items[0].hash()]).map(drop));
            refused(reader.put_marks(&[(items[1].hash(), Mark([4; 32]))]));
            refused(reader.put_snapshot(b"other"));
            refused(reader.put_address_usage(&address, AddressUsage::new(9, 9)));
            assert_eq!(
                reader.subjects().expect("subjects"),
                written.subjects().expect("subjects")
            );
        }
        assert_eq!(std::fs::read(&path).expect("read"), bytes);
        assert_eq!(
            std::fs::metadata(&path)
                .expect("meta")
                .modified()
                .expect("mtime"),
            modified
        );
        // The read-write handle reads the same as the read-only ones did.
        let writer = RedbStore::open(&path).expect("open");
        let reader_after = writer.summaries().expect("summaries");
        assert_eq!(reader_after.len(), 3);
        assert_eq!(
            writer.address_usage(&address).expect("usage"),
            Some(AddressUsage::new(2, 20))
        );
        drop(writer);
        let absent = dir.path().join("absent.redb");
        assert!(RedbStore::open_read_only(&absent).is_err());
        assert!(!absent.exists());
    }

    #[test]
    fn reopen_keeps_data_and_refuses_other_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let items = super::super::conformance::sample_items(5, 2);
        {
            let store = RedbStore::open(&path).expect("open");
            store.put(&items).expect("put");
        }
        {
            let store = RedbStore::open(&path).expect("reopen");
            for item in &items {
                assert_eq!(store.get(&item.hash()).expect("get").as_ref(), Some(item));
            }
            store
                .with_db(|db, _| {
                    let txn = db.begin_write().expect("txn");
                    txn.open_table(META)
                        .expect("meta")
                        .insert("schema_version", 99)
                        .expect("insert");
                    txn.commit().expect("commit");
                    Ok(())
                })
                .expect("write");
        }
        assert!(matches!(
            RedbStore::open(&path),
            Err(StoreError::SchemaVersion { found: 99, .. })
        ));
    }

    /// What one corrupted file did: how far `exercise` got.
    #[derive(Debug, Default)]
    struct Outcomes {
        opened: usize,
        refused: usize,
        damaged: usize,
    }

    /// Opens `path` and runs every read and a write on it, then drops the handle. Returns
    /// whether it opened and whether any call reported the engine panic (STORE-8).
    fn exercise(path: &Path, items: &[Item]) -> (bool, bool) {
        let store = match RedbStore::open(path) {
            Ok(store) => store,
            Err(StoreError::Damaged { .. }) => return (false, true),
            Err(_) => return (false, false),
        };
        let mut damaged = false;
        let mut note = |r: Result<(), StoreError>| {
            if damaged {
                assert!(
                    matches!(r, Err(StoreError::Unusable { .. })),
                    "a handle found damaged was used again"
                );
                return;
            }
            match r {
                Err(StoreError::Damaged { .. }) => damaged = true,
                Err(StoreError::Unusable { .. }) => panic!("Unusable without Damaged"),
                _ => {}
            }
        };
        for item in items {
            note(store.get(&item.hash()).map(|got| {
                if let Some(got) = got {
                    assert_eq!(&got, item, "a read returned another item");
                }
            }));
            note(store.contains(&item.hash()).map(drop));
        }
        for subject in 1..=3u8 {
            let subject = SubjectId(PublicKey([subject; 32]));
            note(store.hashes(&subject).map(drop));
            note(store.summary(&subject).map(drop));
        }
        note(store.subjects().map(drop));
        let extra = super::super::conformance::sample_items(items.len() + 3, 3);
        note(store.put(&extra[items.len()..]).map(drop));
        note(store.subjects().map(drop));
        drop(store);
        (true, damaged)
    }

    /// STORE-6..8: every corruption of a store file (empty, truncated at many offsets, one
    /// byte flipped at many offsets, random garbage) gives an error or a working store, and no
    /// panic ever escapes `open`, the reads, the write or the drop.
    #[test]
    fn corrupt_files_never_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let template = dir.path().join("template.redb");
        let items = super::super::conformance::sample_items(300, 3);
        {
            let store = RedbStore::open(&template).expect("open");
            for chunk in items.chunks(50) {
                store.put(chunk).expect("put");
            }
        }
        let original = std::fs::read(&template).expect("read");
        let len = original.len();
        let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
        let mut offsets: Vec<usize> = (0..4096).step_by(61).collect();
        offsets.extend((0..len).step_by(len / 150 + 1));
        offsets.extend([len - 1, len / 2, 4096, 8192]);
        for &at in &offsets {
            if at < len {
                cases.push((format!("truncated at {at}"), original[..at].to_vec()));
                let mut flipped = original.clone();
                flipped[at] ^= 0xff;
                cases.push((format!("byte {at} flipped"), flipped));
            }
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for size in [1usize, 16, 512, 4096, 65_536, len] {
            let garbage: Vec<u8> = (0..size)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            cases.push((format!("{size} random bytes"), garbage));
        }
        let mut outcomes = Outcomes::default();
        for (n, (what, bytes)) in cases.iter().enumerate() {
            let path = dir.path().join(format!("case{n}.redb"));
            std::fs::write(&path, bytes).expect("write");
            let run = std::panic::catch_unwind(AssertUnwindSafe(|| exercise(&path, &items)));
            let (opened, damaged) = run.unwrap_or_else(|_| panic!("{what}: a panic escaped"));
            outcomes.opened += usize::from(opened);
            outcomes.refused += usize::from(!opened);
            outcomes.damaged += usize::from(damaged);
            std::fs::remove_file(&path).expect("remove");
        }
        eprintln!("{} cases: {outcomes:?}", cases.len());
        assert!(outcomes.refused > 0 && outcomes.opened > 0);
    }

    /// STORE-7: an existing empty file is refused, naming the file; a missing one is created.
    #[test]
    fn empty_file_is_refused_not_recreated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.redb");
        std::fs::write(&path, b"").expect("write");
        match RedbStore::open(&path) {
            Err(e @ StoreError::EmptyFile { .. }) => {
                assert!(e.to_string().contains(&path.display().to_string()));
            }
            other => panic!("expected EmptyFile, got {:?}", other.map(|_| ())),
        }
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 0);
        let fresh = dir.path().join("new.redb");
        RedbStore::open(&fresh).expect("a missing file creates a store");
    }

    /// STORE-8: a panic inside a redb call is `Damaged`, and the handle then refuses every call
    /// (`Unusable`) and is dropped without touching redb again.
    #[test]
    fn a_contained_panic_retires_the_handle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let store = RedbStore::open(&path).expect("open");
        let items = super::super::conformance::sample_items(2, 1);
        store.put(&items).expect("put");
        let engine_panic =
            store.with_db(|_, _| -> Result<(), StoreError> { panic!("simulated engine panic") });
        assert!(matches!(engine_panic, Err(StoreError::Damaged { .. })));
        assert!(matches!(
            store.get(&items[0].hash()),
            Err(StoreError::Unusable { .. })
        ));
        assert!(matches!(
            store.put(&items),
            Err(StoreError::Unusable { .. })
        ));
        drop(store);
    }
}
