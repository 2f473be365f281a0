//! The relay's shared store on PostgreSQL (feature `postgres`, `specs/storage.md` STORE-10..14):
//! several stateless relays on one database.
//!
//! - STORE-10: the [`Store`] trait is synchronous and the relay calls it from its tokio worker
//!   threads, so this store never runs a runtime on the caller's thread: it owns a small runtime
//!   of its own (two I/O threads) where every query runs on a bounded pool (deadpool-postgres,
//!   prepared statements cached per connection), and the calling thread waits on a plain channel,
//!   bounded by the operation timeout. Dropping the store shuts that runtime down in the
//!   background, so it may be dropped anywhere, in async code too.
//! - STORE-11: versioned migrations (`schema.rs`) are applied at open, under an advisory lock.
//! - STORE-12: a put is one transaction: the items (`ON CONFLICT DO NOTHING`, STORE-2), the
//!   per-subject summaries (STORE-4) and the change notification commit together or not at
//!   all; any failure is a typed [`PostgresError`] and the relay acknowledges nothing.
//! - STORE-13: puts take one advisory transaction lock before inserting, so `seq` (a
//!   `BIGSERIAL`) grows in commit order: a reader that has seen `seq = n` has seen every item
//!   that will ever commit with a lower `seq`. Relays catch up with `seq > cursor`
//!   ([`Feed`]) and never miss an item committed late. This serialises writers on one database
//!   (each put is one short transaction), the price of a gap-free log.
//! - STORE-14: [`Feed::after`] leaves out the items this handle committed itself (its relay
//!   admitted and fanned them out already), so a relay applies and announces each foreign item
//!   once.

mod error;
mod listen;
mod schema;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use keyhive_core::Hash;
use keyhive_core::crypto::signing::PublicKey;
use tokio::sync::watch;
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use super::{AddressKey, AddressUsage, Mark, Store, StoreError};
use crate::item::{Item, ItemKind, SubjectId, WireItem};
use crate::reconcile::summary::Summary;
use crate::relay::fanout::Feed;

pub use error::PostgresError;
pub use schema::SCHEMA_VERSION;

/// Advisory lock key every put holds until it commits (STORE-13; `'keyhive2'` as an integer).
const WRITE_LOCK: i64 = 0x6b65_7968_6976_6532;

/// The summaries of some subjects (`put` and `remove` update them in their transaction).
const READ_SUMMARIES: &str =
    "SELECT subject, summary FROM keyhive_summaries WHERE subject = ANY($1::bytea[])";

/// [`READ_SUMMARIES`] in subject order (STORE-24).
const READ_SUMMARIES_SORTED: &str = "SELECT subject, summary FROM keyhive_summaries
     WHERE subject = ANY($1::bytea[]) ORDER BY subject";

/// Writes the new summaries of the subjects a transaction touched.
const WRITE_SUMMARIES: &str = "INSERT INTO keyhive_summaries (subject, summary)
     SELECT * FROM unnest($1::bytea[], $2::bytea[])
     ON CONFLICT (subject) DO UPDATE SET summary = EXCLUDED.summary";

/// How a [`PostgresStore`] connects.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PostgresConfig {
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?options]` (libpq URL syntax; a `host`
    /// option naming a directory selects a Unix socket).
    pub url: String,
    /// Most connections the pool opens (plus one for LISTEN).
    pub pool_size: usize,
    /// Longest wait for a connection (opening one, or a free one from the pool), and for each
    /// operation as a whole.
    pub timeout: Duration,
}

impl PostgresConfig {
    /// Defaults: 8 pooled connections, 10 s timeout.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            pool_size: 8,
            timeout: Duration::from_secs(10),
        }
    }

    /// Replaces the pool size (at least 1).
    pub fn with_pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size.max(1);
        self
    }

    /// Replaces the connection and operation timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// A [`Store`] (and a [`Feed`]) in a PostgreSQL database.
pub struct PostgresStore {
    /// `Some` until dropped (STORE-10).
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pool: Pool,
    timeout: Duration,
    /// STORE-14: `seq`s this handle committed that its feed cursor has not passed yet.
    own: Arc<Mutex<BTreeSet<i64>>>,
    changes: watch::Receiver<u64>,
}

impl PostgresStore {
    /// Connects, applies the migrations (STORE-11) and starts listening for other writers'
    /// commits (SYNC-101). Fails with a typed error if the database cannot be reached within
    /// the timeout.
    pub fn open(config: PostgresConfig) -> Result<Self, StoreError> {
        let mut pg: tokio_postgres::Config = config.url.parse().map_err(PostgresError::Url)?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(config.timeout);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("keyhive-postgres")
            .enable_all()
            .build()
            .map_err(PostgresError::Runtime)?;
        let manager = Manager::from_config(
            pg.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(config.timeout))
            .create_timeout(Some(config.timeout))
            .recycle_timeout(Some(config.timeout))
            .build()
            .map_err(PostgresError::Pool)?;
        let (changed, changes) = watch::channel(0);
        let store = PostgresStore {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            pool,
            timeout: config.timeout,
            own: Arc::new(Mutex::new(BTreeSet::new())),
            changes,
        };
        let pool = store.pool.clone();
        store.block("the schema migration", async move {
            let mut client = pool.get().await.map_err(PostgresError::Unavailable)?;
            schema::migrate(&mut client).await
        })?;
        store.handle.spawn(listen::run(pg, changed));
        Ok(store)
    }

    /// Runs `operation` on the store's runtime and waits for it on this thread (STORE-10):
    /// never enters a runtime here, so it is safe on a tokio worker thread.
    fn block<T: Send + 'static>(
        &self,
        operation: &'static str,
        work: impl Future<Output = Result<T, PostgresError>> + Send + 'static,
    ) -> Result<T, PostgresError> {
        let timeout = self.timeout;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let result =
                tokio::time::timeout(timeout, work)
                    .await
                    .unwrap_or(Err(PostgresError::Timeout {
                        operation,
                        seconds: timeout.as_secs(),
                    }));
            let _ = tx.send(result);
        });
        rx.recv().unwrap_or(Err(PostgresError::Stopped))
    }

    /// Runs one query returning rows, with a cached prepared statement.
    fn query(
        &self,
        operation: &'static str,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<Vec<tokio_postgres::Row>, PostgresError> {
        let pool = self.pool.clone();
        self.block(operation, async move {
            let failed = |source| PostgresError::Query { operation, source };
            let client = pool.get().await.map_err(PostgresError::Unavailable)?;
            let statement = client.prepare_cached(sql).await.map_err(failed)?;
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(Param::as_sql).collect();
            client.query(&statement, &refs).await.map_err(failed)
        })
    }

    fn own(&self) -> MutexGuard<'_, BTreeSet<i64>> {
        lock(&self.own)
    }
}

fn lock(own: &Mutex<BTreeSet<i64>>) -> MutexGuard<'_, BTreeSet<i64>> {
    // Poisoning only follows a panic elsewhere; the set is only ever inserted into or pruned.
    own.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // STORE-10: never blocks, so dropping inside async code cannot panic.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// An owned query parameter (queries run on the store's runtime, not the caller's stack).
enum Param {
    Bytes(Vec<u8>),
    Int(i64),
    BytesArray(Vec<Vec<u8>>),
}

impl Param {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Bytes(b) => b,
            Param::Int(i) => i,
            Param::BytesArray(a) => a,
        }
    }
}

fn corrupt(what: &'static str) -> PostgresError {
    PostgresError::Corrupt { what }
}

fn to_hash(bytes: &[u8]) -> Result<Hash, PostgresError> {
    <[u8; 32]>::try_from(bytes)
        .map(Hash)
        .map_err(|_| corrupt("a hash is not 32 bytes"))
}

fn to_subject(bytes: &[u8]) -> Result<SubjectId, PostgresError> {
    <[u8; 32]>::try_from(bytes)
        .map(|b| SubjectId(PublicKey(b)))
        .map_err(|_| corrupt("a subject is not 32 bytes"))
}

/// A `(subject, summary)` row of `keyhive_summaries`.
fn subject_summary(row: &tokio_postgres::Row) -> Result<(SubjectId, Summary), StoreError> {
    let subject = to_subject(row.get(0))?;
    let summary =
        Summary::from_bytes(row.get::<_, &[u8]>(1)).ok_or_else(|| corrupt("bad summary"))?;
    Ok((subject, summary))
}

/// Rebuilds an item from its columns, checking it against its stored hash.
fn decode_item(
    hash: &[u8],
    kind: i16,
    subject: &[u8],
    envelope: Vec<u8>,
) -> Result<Item, PostgresError> {
    let kind = u8::try_from(kind)
        .ok()
        .and_then(ItemKind::from_code)
        .ok_or_else(|| corrupt("unknown item kind"))?;
    // SYNC-110: the column holds the wire form (compact for auth and content ops of the
    // compact versions, the signed bytes for everything else and for rows written before).
    let item = Item::from_wire(WireItem {
        kind,
        subject: to_subject(subject)?,
        envelope,
    })
    .map_err(|_| corrupt("stored envelope breaks SYNC-2 or SYNC-110"))?;
    if item.hash() != to_hash(hash)? {
        return Err(corrupt("stored item does not match its hash"));
    }
    Ok(item)
}

/// STORE-12/13: the whole put in one transaction under the write lock.
async fn put_batch(
    pool: Pool,
    own: Arc<Mutex<BTreeSet<i64>>>,
    unique: Vec<Item>,
) -> Result<HashSet<Hash>, PostgresError> {
    let failed = |source| PostgresError::Query {
        operation: "a put",
        source,
    };
    let mut client = pool.get().await.map_err(PostgresError::Unavailable)?;
    let write_lock = client
        .prepare_cached("SELECT pg_advisory_xact_lock($1)")
        .await
        .map_err(failed)?;
    let notify = client
        .prepare_cached("SELECT pg_notify($1, '')")
        .await
        .map_err(failed)?;
    let insert = client
        .prepare_cached(
            "INSERT INTO keyhive_items (hash, subject, kind, envelope)
             SELECT h, s, k, e FROM unnest($1::bytea[], $2::bytea[], $3::int2[], $4::bytea[])
                 WITH ORDINALITY AS t(h, s, k, e, n) ORDER BY n
             ON CONFLICT (hash) DO NOTHING RETURNING hash, seq",
        )
        .await
        .map_err(failed)?;
    let read_summaries = client
        .prepare_cached(READ_SUMMARIES)
        .await
        .map_err(failed)?;
    let write_summaries = client
        .prepare_cached(WRITE_SUMMARIES)
        .await
        .map_err(failed)?;
    let hashes: Vec<Vec<u8>> = unique.iter().map(|i| i.hash().0.to_vec()).collect();
    let subjects: Vec<Vec<u8>> = unique
        .iter()
        .map(|i| i.subject().as_bytes().to_vec())
        .collect();
    let kinds: Vec<i16> = unique.iter().map(|i| i16::from(i.kind().code())).collect();
    let wire: Vec<_> = unique.iter().map(Item::wire_envelope).collect();
    let envelopes: Vec<&[u8]> = wire.iter().map(|w| w.as_ref()).collect();

    let txn = client.transaction().await.map_err(failed)?;
    txn.execute(&write_lock, &[&WRITE_LOCK])
        .await
        .map_err(failed)?;
    let inserted = txn
        .query(&insert, &[&hashes, &subjects, &kinds, &envelopes])
        .await
        .map_err(failed)?;
    let mut fresh = HashSet::with_capacity(inserted.len());
    let mut seqs = Vec::with_capacity(inserted.len());
    for row in &inserted {
        fresh.insert(to_hash(row.get::<_, &[u8]>(0))?);
        seqs.push(row.get::<_, i64>(1));
    }
    if fresh.is_empty() {
        // Nothing new: nothing to summarise or announce.
        txn.rollback().await.map_err(failed)?;
        return Ok(fresh);
    }
    let mut touched: BTreeMap<SubjectId, Summary> = BTreeMap::new();
    for item in unique.iter().filter(|i| fresh.contains(&i.hash())) {
        touched.entry(item.subject()).or_default();
    }
    let keys: Vec<Vec<u8>> = touched.keys().map(|s| s.as_bytes().to_vec()).collect();
    for row in txn.query(&read_summaries, &[&keys]).await.map_err(failed)? {
        let subject = to_subject(row.get::<_, &[u8]>(0))?;
        let summary =
            Summary::from_bytes(row.get::<_, &[u8]>(1)).ok_or_else(|| corrupt("bad summary"))?;
        touched.insert(subject, summary);
    }
    for item in unique.iter().filter(|i| fresh.contains(&i.hash())) {
        if let Some(summary) = touched.get_mut(&item.subject()) {
            summary.add(&item.hash());
        }
    }
    let summaries: Vec<Vec<u8>> = touched.values().map(|s| s.to_bytes().to_vec()).collect();
    txn.execute(&write_summaries, &[&keys, &summaries])
        .await
        .map_err(failed)?;
    // SYNC-101: delivered to listeners at commit, never for a rolled-back put.
    txn.execute(&notify, &[&listen::CHANNEL])
        .await
        .map_err(failed)?;
    // STORE-14: recorded before the rows become visible, so this handle's feed never sees them
    // as foreign.
    lock(&own).extend(seqs.iter().copied());
    if let Err(e) = txn.commit().await {
        let mut own = lock(&own);
        for seq in &seqs {
            own.remove(seq);
        }
        return Err(failed(e));
    }
    Ok(fresh)
}

/// STORE-16: the whole removal in one transaction under the write lock (STORE-13), so the
/// summaries stay consistent with concurrent puts; a subject left empty loses its summary row.
async fn remove_batch(pool: Pool, hashes: Vec<Vec<u8>>) -> Result<HashSet<Hash>, PostgresError> {
    let failed = |source| PostgresError::Query {
        operation: "a removal",
        source,
    };
    let mut client = pool.get().await.map_err(PostgresError::Unavailable)?;
    let write_lock = client
        .prepare_cached("SELECT pg_advisory_xact_lock($1)")
        .await
        .map_err(failed)?;
    let delete = client
        .prepare_cached(
            "DELETE FROM keyhive_items WHERE hash = ANY($1::bytea[]) RETURNING hash, subject",
        )
        .await
        .map_err(failed)?;
    let read_summaries = client
        .prepare_cached(READ_SUMMARIES)
        .await
        .map_err(failed)?;
    let write_summaries = client
        .prepare_cached(WRITE_SUMMARIES)
        .await
        .map_err(failed)?;
    let drop_summaries = client
        .prepare_cached("DELETE FROM keyhive_summaries WHERE subject = ANY($1::bytea[])")
        .await
        .map_err(failed)?;
    let txn = client.transaction().await.map_err(failed)?;
    txn.execute(&write_lock, &[&WRITE_LOCK])
        .await
        .map_err(failed)?;
    let deleted = txn.query(&delete, &[&hashes]).await.map_err(failed)?;
    let mut gone = HashSet::with_capacity(deleted.len());
    let mut by_subject: Vec<(SubjectId, Hash)> = Vec::with_capacity(deleted.len());
    for row in &deleted {
        let hash = to_hash(row.get::<_, &[u8]>(0))?;
        gone.insert(hash);
        by_subject.push((to_subject(row.get::<_, &[u8]>(1))?, hash));
    }
    if gone.is_empty() {
        txn.rollback().await.map_err(failed)?;
        return Ok(gone);
    }
    let mut touched: BTreeMap<SubjectId, Option<Summary>> =
        by_subject.iter().map(|(s, _)| (*s, None)).collect();
    let keys: Vec<Vec<u8>> = touched.keys().map(|s| s.as_bytes().to_vec()).collect();
    for row in txn.query(&read_summaries, &[&keys]).await.map_err(failed)? {
        let subject = to_subject(row.get::<_, &[u8]>(0))?;
        let summary =
            Summary::from_bytes(row.get::<_, &[u8]>(1)).ok_or_else(|| corrupt("bad summary"))?;
        touched.insert(subject, Some(summary));
    }
    let mut summaries: BTreeMap<SubjectId, Summary> = BTreeMap::new();
    for (subject, summary) in touched {
        summaries.insert(
            subject,
            summary.ok_or_else(|| corrupt("item without a summary"))?,
        );
    }
    for (subject, hash) in &by_subject {
        if let Some(summary) = summaries.get_mut(subject) {
            summary.remove(hash);
        }
    }
    let (emptied, kept): (Vec<_>, Vec<_>) = summaries.into_iter().partition(|(_, s)| s.count == 0);
    let emptied: Vec<Vec<u8>> = emptied.iter().map(|(s, _)| s.as_bytes().to_vec()).collect();
    let kept_keys: Vec<Vec<u8>> = kept.iter().map(|(s, _)| s.as_bytes().to_vec()).collect();
    let kept_values: Vec<Vec<u8>> = kept.iter().map(|(_, v)| v.to_bytes().to_vec()).collect();
    txn.execute(&write_summaries, &[&kept_keys, &kept_values])
        .await
        .map_err(failed)?;
    txn.execute(&drop_summaries, &[&emptied])
        .await
        .map_err(failed)?;
    txn.commit().await.map_err(failed)?;
    Ok(gone)
}

impl Store for PostgresStore {
    fn put(&self, items: &[Item]) -> Result<Vec<bool>, StoreError> {
        let mut seen = HashSet::with_capacity(items.len());
        let mut first = Vec::with_capacity(items.len());
        let mut unique = Vec::new();
        for item in items {
            let is_first = seen.insert(item.hash());
            first.push(is_first);
            if is_first {
                unique.push(item.clone());
            }
        }
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let (pool, own) = (self.pool.clone(), self.own.clone());
        let fresh = self.block("a put", put_batch(pool, own, unique))?;
        Ok(items
            .iter()
            .zip(first)
            .map(|(item, is_first)| is_first && fresh.contains(&item.hash()))
            .collect())
    }

    fn get(&self, hash: &Hash) -> Result<Option<Item>, StoreError> {
        let rows = self.query(
            "a get",
            "SELECT kind, subject, envelope FROM keyhive_items WHERE hash = $1",
            vec![Param::Bytes(hash.0.to_vec())],
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        Ok(Some(decode_item(
            &hash.0,
            row.get(0),
            row.get(1),
            row.get(2),
        )?))
    }

    fn contains(&self, hash: &Hash) -> Result<bool, StoreError> {
        let rows = self.query(
            "a lookup",
            "SELECT 1 FROM keyhive_items WHERE hash = $1",
            vec![Param::Bytes(hash.0.to_vec())],
        )?;
        Ok(!rows.is_empty())
    }

    fn hashes(&self, subject: &SubjectId) -> Result<Vec<Hash>, StoreError> {
        let rows = self.query(
            "a subject listing",
            "SELECT hash FROM keyhive_items WHERE subject = $1 ORDER BY hash",
            vec![Param::Bytes(subject.as_bytes().to_vec())],
        )?;
        Ok(rows
            .iter()
            .map(|r| to_hash(r.get(0)))
            .collect::<Result<_, _>>()?)
    }

    fn summary(&self, subject: &SubjectId) -> Result<Summary, StoreError> {
        let rows = self.query(
            "a summary",
            "SELECT summary FROM keyhive_summaries WHERE subject = $1",
            vec![Param::Bytes(subject.as_bytes().to_vec())],
        )?;
        match rows.first() {
            None => Ok(Summary::default()),
            Some(row) => Ok(Summary::from_bytes(row.get::<_, &[u8]>(0))
                .ok_or_else(|| corrupt("bad summary"))?),
        }
    }

    fn subjects(&self) -> Result<Vec<SubjectId>, StoreError> {
        let rows = self.query(
            "the subject list",
            "SELECT subject FROM keyhive_summaries ORDER BY subject",
            Vec::new(),
        )?;
        Ok(rows
            .iter()
            .map(|r| to_subject(r.get(0)))
            .collect::<Result<_, _>>()?)
    }

    /// STORE-21 in one query (a relay's collection asked once per subject before).
    fn summaries(&self) -> Result<Vec<(SubjectId, Summary)>, StoreError> {
        let rows = self.query(
            "the summaries",
            "SELECT subject, summary FROM keyhive_summaries ORDER BY subject",
            Vec::new(),
        )?;
        rows.iter().map(subject_summary).collect()
    }

    /// STORE-24 in one query.
    fn summaries_of(
        &self,
        subjects: &[SubjectId],
    ) -> Result<Vec<(SubjectId, Summary)>, StoreError> {
        if subjects.is_empty() {
            return Ok(Vec::new());
        }
        let keys = subjects.iter().map(|s| s.as_bytes().to_vec()).collect();
        let rows = self.query(
            "some summaries",
            READ_SUMMARIES_SORTED,
            vec![Param::BytesArray(keys)],
        )?;
        let mut out: Vec<(SubjectId, Summary)> =
            rows.iter().map(subject_summary).collect::<Result<_, _>>()?;
        out.retain(|(_, summary)| summary.count > 0);
        Ok(out)
    }

    fn remove(&self, hashes: &[Hash]) -> Result<Vec<bool>, StoreError> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Vec<u8>> = hashes.iter().map(|h| h.0.to_vec()).collect();
        let pool = self.pool.clone();
        let gone = self.block("a removal", remove_batch(pool, keys))?;
        // A hash listed twice was removed once: only its first mention reports it.
        let mut seen = HashSet::with_capacity(hashes.len());
        Ok(hashes
            .iter()
            .map(|h| seen.insert(*h) && gone.contains(h))
            .collect())
    }

    /// STORE-17: one statement; a later mark for a hash replaces the earlier one.
    fn put_marks(&self, marks: &[(Hash, Mark)]) -> Result<(), StoreError> {
        if marks.is_empty() {
            return Ok(());
        }
        // One row per hash in a statement (ON CONFLICT may not touch a row twice): the last wins.
        let unique: BTreeMap<Hash, Mark> = marks.iter().copied().collect();
        let hashes = unique.keys().map(|h| h.0.to_vec()).collect();
        let values = unique.values().map(|m| m.0.to_vec()).collect();
        self.query(
            "recording admission marks",
            "INSERT INTO keyhive_marks (hash, mark)
             SELECT * FROM unnest($1::bytea[], $2::bytea[])
             ON CONFLICT (hash) DO UPDATE SET mark = excluded.mark",
            vec![Param::BytesArray(hashes), Param::BytesArray(values)],
        )?;
        Ok(())
    }

    fn marks(&self) -> Result<Vec<(Hash, Mark)>, StoreError> {
        let rows = self.query(
            "reading admission marks",
            "SELECT hash, mark FROM keyhive_marks",
            Vec::new(),
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let hash = to_hash(row.get::<_, &[u8]>(0))?;
            let mark = <[u8; 32]>::try_from(row.get::<_, &[u8]>(1))
                .map_err(|_| corrupt("bad admission mark"))?;
            out.push((hash, Mark(mark)));
        }
        Ok(out)
    }

    /// STORE-19: one statement replacing the row (atomic like every statement).
    fn put_snapshot(&self, snapshot: &[u8]) -> Result<(), StoreError> {
        self.query(
            "recording the relay snapshot",
            "INSERT INTO keyhive_snapshot (name, bytes) VALUES ('relay', $1)
             ON CONFLICT (name) DO UPDATE SET bytes = excluded.bytes",
            vec![Param::Bytes(snapshot.to_vec())],
        )?;
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self.query(
            "reading the relay snapshot",
            "SELECT bytes FROM keyhive_snapshot WHERE name = 'relay'",
            Vec::new(),
        )?;
        Ok(rows.first().map(|row| row.get::<_, &[u8]>(0).to_vec()))
    }

    /// STORE-18: one statement, replacing what was held for the address.
    fn put_address_usage(
        &self,
        address: &AddressKey,
        usage: AddressUsage,
    ) -> Result<(), StoreError> {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.query(
            "recording stranger usage of an address",
            "INSERT INTO keyhive_address_usage (address, items, bytes) VALUES ($1, $2, $3)
             ON CONFLICT (address) DO UPDATE SET items = excluded.items, bytes = excluded.bytes",
            vec![
                Param::Bytes(address.0.to_vec()),
                Param::Int(count(usage.items)),
                Param::Int(count(usage.bytes)),
            ],
        )?;
        Ok(())
    }

    fn address_usage(&self, address: &AddressKey) -> Result<Option<AddressUsage>, StoreError> {
        let rows = self.query(
            "reading stranger usage of an address",
            "SELECT items, bytes FROM keyhive_address_usage WHERE address = $1",
            vec![Param::Bytes(address.0.to_vec())],
        )?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let count = |n: i64| u64::try_from(n).map_err(|_| corrupt("negative address usage"));
        Ok(Some(AddressUsage::new(
            count(row.get(0))?,
            count(row.get(1))?,
        )))
    }

    /// STORE-22: one statement; hashes already recorded for the peer are kept.
    fn put_peer_taken(&self, peer: &[u8; 32], hashes: &[Hash]) -> Result<(), StoreError> {
        if hashes.is_empty() {
            return Ok(());
        }
        let hashes = hashes.iter().map(|h| h.0.to_vec()).collect();
        self.query(
            "recording what a peer took",
            "INSERT INTO keyhive_peer_taken (peer, hash)
             SELECT $1, h FROM unnest($2::bytea[]) AS h
             ON CONFLICT DO NOTHING",
            vec![Param::Bytes(peer.to_vec()), Param::BytesArray(hashes)],
        )?;
        Ok(())
    }

    fn peer_taken(&self, peer: &[u8; 32]) -> Result<Vec<Hash>, StoreError> {
        let rows = self.query(
            "reading what a peer took",
            "SELECT hash FROM keyhive_peer_taken WHERE peer = $1 ORDER BY hash",
            vec![Param::Bytes(peer.to_vec())],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(to_hash(row.get::<_, &[u8]>(0))?);
        }
        Ok(out)
    }

    /// STORE-23: one statement replacing the peer's row.
    fn put_peer_offer(&self, peer: &[u8; 32], offer: &[u8]) -> Result<(), StoreError> {
        self.query(
            "recording a peer's offer",
            "INSERT INTO keyhive_peer_offers (peer, offer) VALUES ($1, $2)
             ON CONFLICT (peer) DO UPDATE SET offer = excluded.offer",
            vec![Param::Bytes(peer.to_vec()), Param::Bytes(offer.to_vec())],
        )?;
        Ok(())
    }

    fn peer_offer(&self, peer: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self.query(
            "reading a peer's offer",
            "SELECT offer FROM keyhive_peer_offers WHERE peer = $1",
            vec![Param::Bytes(peer.to_vec())],
        )?;
        Ok(rows.first().map(|row| row.get::<_, &[u8]>(0).to_vec()))
    }
}

impl Feed for PostgresStore {
    fn head(&self) -> Result<u64, StoreError> {
        let rows = self.query(
            "reading the log head",
            "SELECT COALESCE(MAX(seq), 0) FROM keyhive_items",
            Vec::new(),
        )?;
        let head: i64 = rows.first().map(|r| r.get(0)).unwrap_or(0);
        Ok(u64::try_from(head).map_err(|_| corrupt("negative seq"))?)
    }

    fn after(&self, cursor: u64, limit: usize) -> Result<(Vec<Item>, u64), StoreError> {
        let from = i64::try_from(cursor).map_err(|_| corrupt("seq beyond i64"))?;
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let rows = self.query(
            "a catch-up read",
            "SELECT seq, hash, kind, subject, envelope FROM keyhive_items
             WHERE seq > $1 ORDER BY seq LIMIT $2",
            vec![Param::Int(from), Param::Int(limit)],
        )?;
        let Some(last) = rows.last().map(|r| r.get::<_, i64>(0)) else {
            return Ok((Vec::new(), cursor));
        };
        let mut own = self.own();
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.get(0);
            if own.remove(&seq) {
                continue;
            }
            items.push(decode_item(row.get(1), row.get(2), row.get(3), row.get(4))?);
        }
        // STORE-13: nothing at or below `last` commits later; forget own seqs passed over.
        own.retain(|seq| *seq > last);
        Ok((
            items,
            u64::try_from(last).map_err(|_| corrupt("negative seq"))?,
        ))
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}
