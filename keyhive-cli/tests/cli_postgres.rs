//! `keyhive relay serve --store postgres://...` (issue 14): two relay processes sharing one
//! identity and one PostgreSQL database; Alice shares through one, Bob reads through the
//! other, then is refused through both after the revocation (SYNC-100).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "../../keyhive-sync/tests/pg/mod.rs"]
mod pg;

use std::ffi::OsStr;
use std::path::Path;

use common::{RelayProcess, json, keyhive};

fn get(home: &Path, doc: &str) -> Option<String> {
    let out = keyhive(home).args(["get", doc]).output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap())
}

#[test]
fn two_relay_processes_on_one_database_serve_one_story() {
    let Some(pg) = pg::Postgres::get() else {
        return;
    };
    let url = pg.database();
    let dir = tempfile::tempdir().unwrap();
    let store = [OsStr::new("--store"), OsStr::new(&url)];
    let a = RelayProcess::start(&dir.path().join("ra"), &store);
    // Relays behind one address share one identity (devices pin it, SYNC-34).
    std::fs::create_dir_all(dir.path().join("rb")).unwrap();
    std::fs::copy(
        dir.path().join("ra").join("relay.key"),
        dir.path().join("rb").join("relay.key"),
    )
    .unwrap();
    let b = RelayProcess::start(&dir.path().join("rb"), &store);
    assert_eq!(a.id, b.id);

    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    for (home, name) in [(&alice, "Alice"), (&bob, "Bob")] {
        json(home, &["init", "--name", name]);
    }
    let card = |h: &Path| {
        json(h, &["contact", "export"])["card"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (alice_card, bob_card) = (card(&alice), card(&bob));
    json(&alice, &["contact", "add", &bob_card]);
    json(&bob, &["contact", "add", &alice_card]);
    json(&alice, &["doc", "create", "plan.txt"]);
    let file = dir.path().join("v1.txt");
    std::fs::write(&file, "v1").unwrap();
    json(&alice, &["put", "plan.txt", file.to_str().unwrap()]);
    json(&alice, &["grant", "plan.txt", "Bob", "--access", "read"]);
    json(&alice, &["sync", "--relay", &a.url]);
    json(&bob, &["sync", "--relay", &b.url]);
    assert_eq!(get(&bob, "plan.txt").as_deref(), Some("v1"));

    // The revocation goes through A; the next change is not served to Bob through B.
    json(&alice, &["revoke", "plan.txt", "Bob"]);
    std::fs::write(&file, "v2").unwrap();
    json(&alice, &["put", "plan.txt", file.to_str().unwrap()]);
    json(&alice, &["sync", "--relay", &a.url]);
    json(&bob, &["sync", "--relay", &b.url]);
    json(&bob, &["sync", "--relay", &a.url]);
    assert_ne!(get(&bob, "plan.txt").as_deref(), Some("v2"));
    a.stop();
    b.stop();
}
