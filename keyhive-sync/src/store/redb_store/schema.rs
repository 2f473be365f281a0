//! The schema of a redb store (STORE-5) and opening its file (STORE-7, STORE-20).

use std::path::Path;

use redb::{Builder, Database, DatabaseError, ReadableDatabase, ReadableTable, TableDefinition};

use super::Handle;
use super::records::backend;
use crate::store::StoreError;

/// STORE-5: the schema version this build reads and writes.
pub const SCHEMA_VERSION: u64 = 1;

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const ITEMS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("items");
pub(super) const BY_SUBJECT: TableDefinition<&[u8; 64], ()> = TableDefinition::new("by_subject");
pub(super) const SUMMARIES: TableDefinition<&[u8; 32], &[u8; 40]> =
    TableDefinition::new("summaries");
pub(super) const MARKS: TableDefinition<&[u8; 32], &[u8; 32]> = TableDefinition::new("marks");
pub(super) const ADDRESSES: TableDefinition<&[u8; 16], &[u8; 16]> =
    TableDefinition::new("addresses");
pub(super) const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");
/// STORE-22: `peer[32] || hash[32] -> ()`, what a peer took of a removed device's own items.
pub(super) const PEER_TAKEN: TableDefinition<&[u8; 64], ()> = TableDefinition::new("peer_taken");
/// STORE-23: `peer[32] -> offer bytes`, the last collection offer a peer sent (SYNC-53).
pub(super) const PEER_OFFERS: TableDefinition<&[u8; 32], &[u8]> =
    TableDefinition::new("peer_offers");
/// STORE-19: the one row of `snapshot`.
pub(super) const SNAPSHOT_ROW: &str = "relay";

/// STORE-7: creates a new database only where no file exists.
pub(super) fn open_db(path: &Path) -> Result<Database, StoreError> {
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

pub(super) fn init_schema(db: &Database, path: &Path) -> Result<(), StoreError> {
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
pub(super) fn stored_schema(db: &Database, path: &Path) -> Result<Option<u64>, StoreError> {
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

/// STORE-20: opens the existing file at `path` read-only and checks its schema version.
pub(super) fn open_read_only_db(path: &Path) -> Result<Handle, StoreError> {
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
