//! The PostgreSQL store on a real server (issue 14): the conformance suite every backend
//! passes (STORE-1..4), migrations (STORE-11), the commit log two handles share (STORE-13/14),
//! typed errors with the database down and recovery after it restarts (STORE-12), and use from
//! async code (STORE-10).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg;

use keyhive_sync::relay::fanout::Feed;
use keyhive_sync::store::conformance::{run_all, sample_items};
use keyhive_sync::store::{PostgresConfig, PostgresError, PostgresStore};
use keyhive_sync::{Store, StoreError};

#[test]
fn postgres_passes_the_store_conformance_suite() {
    let Some(pg) = pg::Postgres::get() else {
        return;
    };
    run_all(|| pg.store());
}

/// STORE-13/14: a second handle on the same database reads the first one's items in commit
/// order, and not its own.
#[test]
fn handles_read_each_others_commits_in_order_and_not_their_own() {
    let Some(pg) = pg::Postgres::get() else {
        return;
    };
    let url = pg.database();
    let pg_url = url.clone();
    let a = PostgresStore::open(PostgresConfig::new(url.clone())).unwrap();
    let b = PostgresStore::open(PostgresConfig::new(url)).unwrap();
    assert_eq!(b.head().unwrap(), 0);
    let items = sample_items(12, 3);
    a.put(&items[..5]).unwrap();
    b.put(&items[5..8]).unwrap();
    a.put(&items[8..]).unwrap();
    let (seen_by_b, reached) = b.after(0, 100).unwrap();
    let mut want = items[..5].to_vec();
    want.extend_from_slice(&items[8..]);
    assert_eq!(
        seen_by_b, want,
        "b reads a's items in commit order, not its own"
    );
    assert_eq!(reached, b.head().unwrap());
    let (seen_by_a, _) = a.after(0, 100).unwrap();
    assert_eq!(seen_by_a, items[5..8].to_vec());
    assert_eq!(b.after(reached, 100).unwrap(), (Vec::new(), reached));
    // A third handle reads everything; bounded reads resume where they stopped.
    let c = PostgresStore::open(PostgresConfig::new(pg_url)).unwrap();
    let (first, cursor) = c.after(0, 2).unwrap();
    assert_eq!(first.len(), 2);
    let (rest, _) = c.after(cursor, 100).unwrap();
    assert_eq!([first, rest].concat(), items);
}

/// STORE-11: reopening applies nothing twice; a database from a newer build is refused.
#[test]
fn migrations_apply_once_and_a_newer_schema_is_refused() {
    let Some(pg) = pg::Postgres::get() else {
        return;
    };
    let url = pg.database();
    let store = PostgresStore::open(PostgresConfig::new(url.clone())).unwrap();
    store.put(&sample_items(3, 1)).unwrap();
    drop(store);
    let again = PostgresStore::open(PostgresConfig::new(url.clone())).unwrap();
    assert_eq!(again.subjects().unwrap().len(), 1);
    drop(again);
    pg::psql(&url, "INSERT INTO keyhive_schema (version) VALUES (999)");
    match PostgresStore::open(PostgresConfig::new(url)) {
        Err(StoreError::Postgres(PostgresError::SchemaVersion { found, supported })) => {
            assert_eq!(
                (found, supported),
                (999, keyhive_sync::store::postgres::SCHEMA_VERSION)
            );
        }
        Err(other) => panic!("expected a schema version error, got {other}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

/// STORE-10: called on a tokio worker thread and dropped in async code, without panicking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usable_and_droppable_inside_async_code() {
    let Some(pg) = pg::Postgres::get() else {
        return;
    };
    let store = pg.store();
    let items = sample_items(4, 2);
    assert_eq!(store.put(&items).unwrap(), vec![true; 4]);
    assert_eq!(
        store.get(&items[0].hash()).unwrap().as_ref(),
        Some(&items[0])
    );
    drop(store);
}

/// STORE-12: with the server down every call is a typed error (a put acknowledges nothing);
/// after the restart the same handle works again and nothing acknowledged was lost.
#[test]
fn database_down_is_a_typed_error_and_the_store_recovers() {
    let Some(mut pg) = pg::Postgres::private() else {
        return;
    };
    let url = pg.database();
    let store = PostgresStore::open(
        PostgresConfig::new(url).with_timeout(std::time::Duration::from_secs(3)),
    )
    .unwrap();
    let items = sample_items(10, 2);
    assert_eq!(store.put(&items[..5]).unwrap(), vec![true; 5]);
    let server = pg.server().expect("a private server");
    server.stop();
    match store.put(&items[5..]) {
        Err(StoreError::Postgres(e)) => {
            eprintln!(
                "put with the database down: {e}: {:?}",
                std::error::Error::source(&e)
            );
        }
        other => panic!("expected a typed PostgreSQL error, got {other:?}"),
    }
    assert!(matches!(store.subjects(), Err(StoreError::Postgres(_))));
    server.start_again();
    let mut recovered = false;
    for _ in 0..50 {
        if store.contains(&items[0].hash()).is_ok() {
            recovered = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(recovered, "the store recovers once the database is back");
    for item in &items[..5] {
        assert!(
            store.contains(&item.hash()).unwrap(),
            "an acknowledged item was lost"
        );
    }
    for item in &items[5..] {
        assert!(
            !store.contains(&item.hash()).unwrap(),
            "a failed put left an item"
        );
    }
    assert_eq!(
        store.put(&items).unwrap(),
        [vec![false; 5], vec![true; 5]].concat()
    );
}
