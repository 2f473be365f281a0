//! STORE-11: versioned migrations, applied in order at start under an advisory lock, so that
//! several relays starting at once on one database migrate it exactly once.

use deadpool_postgres::Object;

use super::error::PostgresError;

/// Advisory lock key held while migrating (`'keyhive1'` as an integer).
const MIGRATION_LOCK: i64 = 0x6b65_7968_6976_6531;

/// Every migration, version `i + 1` at index `i`. Never edit one that shipped: append.
const MIGRATIONS: &[&str] = &[
    // 1: items keyed by hash (STORE-2) with their commit position `seq` (STORE-13), the
    // per-subject index giving STORE-3's order, and the per-subject summaries (STORE-4).
    "CREATE TABLE keyhive_items (
         seq      BIGSERIAL PRIMARY KEY,
         hash     BYTEA    NOT NULL UNIQUE CHECK (length(hash) = 32),
         subject  BYTEA    NOT NULL CHECK (length(subject) = 32),
         kind     SMALLINT NOT NULL,
         envelope BYTEA    NOT NULL
     );
     CREATE INDEX keyhive_items_by_subject ON keyhive_items (subject, hash);
     CREATE TABLE keyhive_summaries (
         subject BYTEA PRIMARY KEY CHECK (length(subject) = 32),
         summary BYTEA NOT NULL CHECK (length(summary) = 40)
     );",
    // 2: admission marks (STORE-17, RELAY-7), one per item hash.
    "CREATE TABLE keyhive_marks (
         hash BYTEA PRIMARY KEY CHECK (length(hash) = 32),
         mark BYTEA NOT NULL CHECK (length(mark) = 32)
     );",
    // 3: stranger usage per network address (STORE-18, SYNC-108).
    "CREATE TABLE keyhive_address_usage (
         address BYTEA  PRIMARY KEY CHECK (length(address) = 16),
         items   BIGINT NOT NULL CHECK (items >= 0),
         bytes   BIGINT NOT NULL CHECK (bytes >= 0)
     );",
    // 4: the relay's start snapshot (STORE-19, RELAY-8), one row replaced whole.
    "CREATE TABLE keyhive_snapshot (
         name  TEXT  PRIMARY KEY,
         bytes BYTEA NOT NULL
     );",
    // 5: what a peer took of a removed device's own items (STORE-22, REP-33).
    "CREATE TABLE keyhive_peer_taken (
         peer BYTEA NOT NULL CHECK (length(peer) = 32),
         hash BYTEA NOT NULL CHECK (length(hash) = 32),
         PRIMARY KEY (peer, hash)
     );",
    // 6: the last collection offer a peer sent (STORE-23, SYNC-53), one row per peer.
    "CREATE TABLE keyhive_peer_offers (
         peer  BYTEA PRIMARY KEY CHECK (length(peer) = 32),
         offer BYTEA NOT NULL
     );",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Applies every migration the database lacks, in one transaction; refuses a database whose
/// schema is newer than this build (STORE-11).
pub(super) async fn migrate(client: &mut Object) -> Result<(), PostgresError> {
    let failed = |source| PostgresError::Query {
        operation: "the schema migration",
        source,
    };
    let txn = client.transaction().await.map_err(failed)?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(failed)?;
    txn.batch_execute(
        "CREATE TABLE IF NOT EXISTS keyhive_schema (
             version    INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(failed)?;
    let found: i32 = txn
        .query_one("SELECT COALESCE(MAX(version), 0) FROM keyhive_schema", &[])
        .await
        .map_err(failed)?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(PostgresError::SchemaVersion {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, sql) in (1i32..).zip(MIGRATIONS.iter()).skip(found.max(0) as usize) {
        txn.batch_execute(sql).await.map_err(failed)?;
        txn.execute(
            "INSERT INTO keyhive_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(failed)?;
    }
    txn.commit().await.map_err(failed)
}
