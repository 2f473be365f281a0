//! Issue 12 #5, "read-only commands write nothing" (`specs/replica.md` REP-63, REP-68): every
//! read-only command (`ls`, `get`, `log`, `members`, `why`, `status`, `whoami`, `contact
//! list`, `relay list`, with and without `--json`, answering and refusing) leaves every file of
//! the home as it was: the same names, bytes and modification times (nanoseconds), with no new
//! file. No tracing tool is needed: the home is compared before and after each run.
//!
//! The item store `store.redb` included: `get`, `log`, `members` and `why` open it read-only
//! on their scoped paths (`specs/sync.md` STORE-20, `RedbStore::open_read_only`), and `ls`,
//! `status`, `whoami`, `contact list` and `relay list` read only its summaries
//! (`RedbStore::read_summaries`), so redb does not even mark the file open and closed.
//!
//! One exception, tested here: the name index, a cache (REP-68): a read-only command that
//! finds it absent or stale replays the whole store (a full, read-write open) and writes
//! `names.index` again; its stored items (every subject's count and hash sum, STORE-4) are
//! unchanged. The next run writes nothing at all.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use common::{RelayProcess, card, json, keyhive};

/// Every file under `home` (relative path), with its bytes and modification time.
fn snapshot(home: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![home.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                dirs.push(entry.path());
            } else {
                let rel = entry.path().strip_prefix(home).unwrap().to_path_buf();
                files.insert(
                    rel,
                    (
                        std::fs::read(entry.path()).unwrap(),
                        meta.modified().unwrap(),
                    ),
                );
            }
        }
    }
    files
}

/// The files whose bytes or modification time differ, or that appeared or went.
fn changed(
    before: &BTreeMap<PathBuf, (Vec<u8>, SystemTime)>,
    after: &BTreeMap<PathBuf, (Vec<u8>, SystemTime)>,
) -> Vec<String> {
    let mut names: Vec<&PathBuf> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| before.get(*n) != after.get(*n))
        .map(|n| n.display().to_string())
        .collect()
}

/// Every subject's item count and hash sum (STORE-4), read without writing.
fn items(
    home: &Path,
) -> Vec<(
    keyhive_sync::item::SubjectId,
    keyhive_sync::reconcile::summary::Summary,
)> {
    keyhive_sync::RedbStore::read_summaries(home.join("store.redb")).unwrap()
}

/// Runs `args` on `home`; returns whether it succeeded and the files it changed (the store
/// only when its items changed, or when `store_too` and its bytes or time changed: a full
/// open, which only a missing or stale name index calls for, marks it open and closed).
fn touched(home: &Path, args: &[&str], store_too: bool) -> (bool, Vec<String>) {
    let (before, stored) = (snapshot(home), items(home));
    let out = keyhive(home).args(args).output().unwrap();
    let mut files = changed(&before, &snapshot(home));
    if !store_too && items(home) == stored {
        files.retain(|f| f != "store.redb");
    }
    (out.status.success(), files)
}

/// Alice's home: two contacts, a group, a folder with a document written twice, a grant and
/// a revocation, a relay (running), synced.
fn home(dir: &Path, relay: &RelayProcess) -> (PathBuf, String) {
    let (alice, bob, carol) = (dir.join("alice"), dir.join("bob"), dir.join("carol"));
    for (home, name) in [(&alice, "Alice"), (&bob, "Bob"), (&carol, "Carol")] {
        json(home, &["init", "--name", name]);
        json(home, &["relay", "add", &relay.url]);
    }
    json(&alice, &["contact", "add", &card(&bob), "--name", "Bob"]);
    json(
        &alice,
        &["contact", "add", &card(&carol), "--name", "Carol"],
    );
    json(&alice, &["group", "create", "Team"]);
    json(&alice, &["grant", "Team", "Bob", "--access", "write"]);
    json(&alice, &["folder", "create", "Docs"]);
    let plan = json(&alice, &["doc", "create", "plan.txt", "--folder", "Docs"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = dir.join("plan.txt");
    for text in ["v1", "v2"] {
        std::fs::write(&file, text).unwrap();
        json(&alice, &["put", "plan.txt", file.to_str().unwrap()]);
    }
    json(&alice, &["grant", "Docs", "Team", "--access", "read"]);
    json(&alice, &["grant", "Docs", "Carol", "--access", "read"]);
    json(&alice, &["revoke", "Docs", "Carol"]);
    json(&alice, &["sync"]);
    json(&alice, &["ls"]);
    (alice, plan)
}

/// The read-only commands, each answering and each refusing.
fn read_only(plan: &str) -> Vec<Vec<String>> {
    let owned = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    let mut all = Vec::new();
    for args in [
        owned(&["ls"]),
        owned(&["get", "plan.txt"]),
        owned(&["get", plan]),
        owned(&["get", &plan[..12]]),
        owned(&["get", "plan.tx"]),
        owned(&["log", "plan.txt"]),
        owned(&["log", "Team"]),
        owned(&["members", "Docs"]),
        owned(&["members", "Dcos"]),
        owned(&["folder", "ls", "Docs"]),
        owned(&["folder", "ls", "Dcos"]),
        owned(&["why", "plan.txt", "Bob"]),
        owned(&["why", "Docs", "Carol"]),
        owned(&["why", "Docs", "Bobby"]),
        owned(&["status"]),
        owned(&["whoami"]),
        owned(&["contact", "list"]),
        owned(&["relay", "list"]),
    ] {
        let mut json = vec!["--json".to_owned()];
        json.extend(args.iter().cloned());
        all.push(args);
        all.push(json);
    }
    all
}

/// Issue 12 #5: with the name index current, no read-only command changes any file, the
/// item store's bytes and modification time included (STORE-20).
#[test]
fn read_only_commands_change_no_file_of_the_home() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, plan) = home(dir.path(), &relay);
    let mut refused = 0;
    for args in read_only(&plan) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, files) = touched(&alice, &args, true);
        refused += usize::from(!ok);
        assert!(files.is_empty(), "{args:?} changed {files:?}");
    }
    // The refusals (an unknown name, a group given to `log`...) were exercised too.
    assert_eq!(refused, 10);
    relay.stop();
}

/// REP-68: a read-only command that finds the name index absent or stale replays the whole
/// store and writes the index again, and nothing else; the next one writes nothing.
#[test]
fn a_read_only_command_rewrites_only_a_missing_or_stale_name_index() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, _) = home(dir.path(), &relay);
    let index = alice.join("names.index");
    let current = std::fs::read(&index).unwrap();
    for args in [
        &["ls"][..],
        &["get", "plan.txt"],
        &["members", "Docs"],
        &["why", "plan.txt", "Bob"],
        &["status"],
    ] {
        std::fs::remove_file(&index).unwrap();
        let (ok, files) = touched(&alice, args, false);
        assert!(ok, "{args:?}");
        assert_eq!(files, ["names.index"], "{args:?}");
        assert_eq!(std::fs::read(&index).unwrap(), current, "{args:?}");
        let (_, files) = touched(&alice, args, true);
        assert!(files.is_empty(), "{args:?} changed {files:?}");
    }
    // Stale: an index bound to other content (here: to an older store).
    let old = std::fs::read(&index).unwrap();
    let bob = dir.path().join("bob");
    json(&bob, &["sync"]);
    json(&bob, &["group", "create", "Crew"]);
    json(&bob, &["contact", "add", &card(&alice), "--name", "Alice"]);
    json(&bob, &["grant", "Crew", "Alice", "--access", "read"]);
    json(&bob, &["sync"]);
    json(&alice, &["sync"]);
    std::fs::write(&index, &old).unwrap();
    let (ok, files) = touched(&alice, &["ls"], false);
    assert!(ok);
    assert_eq!(files, ["names.index"]);
    assert_ne!(std::fs::read(&index).unwrap(), old);
    let (_, files) = touched(&alice, &["ls"], true);
    assert!(files.is_empty(), "{files:?}");
    relay.stop();
}
