//! Why a PostgreSQL store operation failed (STORE-12): typed, never a panic, and never an
//! acknowledgement of an item that was not committed.

/// A failure of the PostgreSQL store. Each variant says what to do; the database's own reason is
/// the [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The `postgres://` URL does not parse.
    #[error("the PostgreSQL URL is not valid (expected postgres://USER@HOST:PORT/DATABASE)")]
    Url(#[source] tokio_postgres::Error),
    /// The store's own runtime (its I/O threads) could not be started.
    #[error("cannot start the PostgreSQL store's I/O threads")]
    Runtime(#[source] std::io::Error),
    /// The connection pool could not be built from the configuration.
    #[error("cannot build the PostgreSQL connection pool from this configuration")]
    Pool(#[source] deadpool_postgres::BuildError),
    /// STORE-12: no connection to the database could be had (server down, unreachable, refused
    /// the login, or the pool stayed exhausted past its wait timeout). Nothing was committed;
    /// the relay answers `Internal` and acknowledges nothing, and retries on the next request.
    #[error(
        "the PostgreSQL database is unavailable; check that the server runs and accepts this \
         relay's connections"
    )]
    Unavailable(#[source] deadpool_postgres::PoolError),
    /// STORE-12: a statement failed or the connection broke during `operation`. A failed write
    /// was rolled back (or its commit is unknown and its items are not acknowledged).
    #[error("the PostgreSQL database failed during {operation}")]
    Query {
        /// What the store was doing.
        operation: &'static str,
        /// The database's reason.
        #[source]
        source: tokio_postgres::Error,
    },
    /// STORE-12: `operation` did not finish within the store's operation timeout.
    #[error(
        "the PostgreSQL database did not answer {operation} within {seconds} s; check the \
         server's load and the network"
    )]
    Timeout {
        /// What the store was doing.
        operation: &'static str,
        /// The timeout.
        seconds: u64,
    },
    /// The store's I/O threads stopped (the store is being dropped).
    #[error("the PostgreSQL store is shut down")]
    Stopped,
    /// STORE-11: the database holds a newer schema than this build knows.
    #[error(
        "the PostgreSQL database has keyhive schema version {found} (this build knows up to \
         {supported}); use a newer keyhive"
    )]
    SchemaVersion {
        /// Highest version recorded in the database.
        found: i32,
        /// Highest version this build applies.
        supported: i32,
    },
    /// Stored bytes do not decode (a foreign writer or corruption).
    #[error(
        "the PostgreSQL database holds corrupt keyhive data ({what}); restore it from a backup"
    )]
    Corrupt {
        /// What did not decode.
        what: &'static str,
    },
}

impl PostgresError {
    /// SYNC-14: the database cannot be reached for now (down, unreachable, broken connection,
    /// no answer in time): a retry may succeed. A bad URL, a newer schema or corrupt data will
    /// not heal by waiting.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            PostgresError::Unavailable(_)
                | PostgresError::Query { .. }
                | PostgresError::Timeout { .. }
        )
    }
}
