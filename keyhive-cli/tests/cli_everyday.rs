//! Issue 12, everyday commands. `relay add` reads `ws://host:port` as its `/sync` path and
//! refuses other paths at once; `relay list` and `relay remove`; errors under `--json` are
//! a JSON object on stdout (and the one-line error on stderr).

mod common;

use common::{fails, json, keyhive};
use serde_json::Value;

#[test]
fn relay_add_list_remove_and_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("alice");
    json(&home, &["init", "--name", "Alice"]);

    // As people type it: no path, or a trailing slash, means the relay's /sync path.
    let added = json(&home, &["relay", "add", "ws://127.0.0.1:7420"]);
    assert_eq!(added["relay"], "ws://127.0.0.1:7420/sync");
    let again = json(&home, &["relay", "add", "ws://127.0.0.1:7420/"]);
    assert_eq!(again["added"], false, "the same relay: {again}");
    json(&home, &["relay", "add", "wss://relay.example/sync"]);

    // Anything else is refused before it is stored, in one line.
    for bad in [
        "ws://127.0.0.1:7420/other",
        "http://127.0.0.1:7420/sync",
        "ws:///sync",
        "ws://host/sync?x=1",
    ] {
        let err = fails(&home, &["relay", "add", bad]);
        assert!(
            err.contains("not a relay URL") || err.contains("relays serve"),
            "{err}"
        );
    }

    let listed = json(&home, &["relay", "list"]);
    let urls: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["relay"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        ["ws://127.0.0.1:7420/sync", "wss://relay.example/sync"]
    );
    assert!(listed[0]["id"].is_null(), "pinned only on first sync");

    json(&home, &["relay", "remove", "ws://127.0.0.1:7420"]);
    let listed = json(&home, &["relay", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let err = fails(&home, &["relay", "remove", "ws://127.0.0.1:7420/sync"]);
    assert!(err.contains("not a configured relay"), "{err}");

    // --json: the error is JSON on stdout too.
    let out = keyhive(&home)
        .args(["--json", "relay", "remove", "ws://nowhere:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let value: Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert!(
        value["error"]
            .as_str()
            .unwrap()
            .contains("not a configured relay"),
        "{value}"
    );
    assert!(value["causes"].as_array().is_some_and(|c| !c.is_empty()));
}

/// Issue 12: ids as tables print them (12 hex characters) work wherever a name does, a prefix
/// that fits several ids is refused, and an unknown name suggests a close one.
#[test]
fn id_prefixes_and_did_you_mean() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("alice");
    json(&home, &["init", "--name", "Alice"]);
    let id = json(&home, &["doc", "create", "plan.txt"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = dir.path().join("v1");
    std::fs::write(&file, "v1").unwrap();
    json(&home, &["put", &id[..12], file.to_str().unwrap()]);
    let out = keyhive(&home).args(["get", &id[..12]]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v1");

    let err = fails(&home, &["get", "Plan.txt"]);
    assert!(err.contains("did you mean \"plan.txt\""), "{err}");
    let err = fails(&home, &["get", "zzzzzz"]);
    assert!(!err.contains("did you mean"), "{err}");
}

/// Alice's home, holding Bob's contact card (Bob's home is made beside it).
fn alice_knows_bob(dir: &std::path::Path) -> std::path::PathBuf {
    let (alice, bob) = (dir.join("alice"), dir.join("bob"));
    json(&alice, &["init", "--name", "Alice"]);
    json(&bob, &["init", "--name", "Bob"]);
    let card = json(&bob, &["contact", "export"])["card"]
        .as_str()
        .unwrap()
        .to_owned();
    json(&alice, &["contact", "add", &card]);
    alice
}

/// Issue 12: read-only commands write nothing of ours to the home (they used to re-store every
/// contact card, re-commit the store's schema and re-store replayed ops on open). redb itself
/// still marks its file open and closed and saves its page allocator on close, so
/// `store.redb` is left out of the byte comparison (`strace` shows no other write).
#[test]
fn read_only_commands_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let alice = alice_knows_bob(dir.path());
    json(&alice, &["doc", "create", "plan.txt"]);
    json(&alice, &["grant", "plan.txt", "Bob", "--access", "read"]);
    let file = dir.path().join("v1");
    std::fs::write(&file, "v1").unwrap();
    json(&alice, &["put", "plan.txt", file.to_str().unwrap()]);

    let snapshot = |home: &std::path::Path| -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut out: Vec<_> = std::fs::read_dir(home)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file() && !p.ends_with("store.redb"))
            .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
            .collect();
        out.sort();
        out
    };
    let before = snapshot(&alice);
    for args in [
        vec!["ls"],
        vec!["whoami"],
        vec!["contact", "list"],
        vec!["members", "plan.txt"],
        vec!["why", "plan.txt", "Bob"],
        vec!["log", "plan.txt"],
        vec!["get", "plan.txt"],
        vec!["relay", "list"],
    ] {
        let out = keyhive(&alice).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after = snapshot(&alice);
        let changed: Vec<_> = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b != a)
            .map(|(b, _)| b.0.clone())
            .collect();
        assert!(
            before.len() == after.len() && changed.is_empty(),
            "{args:?} changed {changed:?}"
        );
    }
}

/// Issue 12: `contact rename` and `contact remove`.
#[test]
fn contacts_are_renamed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let alice = alice_knows_bob(dir.path());
    let renamed = json(&alice, &["contact", "rename", "Bob", "Robert"]);
    assert_eq!(renamed["old"], "Bob");
    json(&alice, &["doc", "create", "plan.txt"]);
    json(&alice, &["grant", "plan.txt", "Robert", "--access", "read"]);
    let err = fails(&alice, &["grant", "plan.txt", "Bob", "--access", "read"]);
    // The card still says "Bob": the refusal names the contact it now answers to.
    assert!(err.contains("(your contact \"Robert\")"), "{err}");

    json(&alice, &["contact", "remove", "Robert"]);
    assert_eq!(json(&alice, &["contact", "list"]), serde_json::json!([]));
    let err = fails(&alice, &["contact", "remove", "Robert"]);
    assert!(err.contains("no contact"), "{err}");
}

/// `get` says why there is nothing to write (nothing written yet, as against no access), and a
/// folder is refused by `put` and `get` with where its files are, instead of a change being
/// written into the folder itself.
#[test]
fn get_says_why_it_has_nothing_and_a_folder_is_not_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("alice");
    json(&home, &["init", "--name", "Alice"]);
    json(&home, &["doc", "create", "empty.txt"]);
    let err = fails(&home, &["get", "empty.txt"]);
    assert!(
        err.contains("nothing was written to empty.txt yet"),
        "{err}"
    );

    json(&home, &["folder", "create", "Team"]);
    let file = dir.path().join("f.txt");
    std::fs::write(&file, "x").unwrap();
    for args in [
        vec!["put", "Team", file.to_str().unwrap()],
        vec!["get", "Team"],
    ] {
        let err = fails(&home, &args);
        assert!(err.contains("\"Team\" is a folder"), "{args:?}: {err}");
    }
    // Nothing was written into the folder.
    let log = json(&home, &["log", "Team"]);
    assert_eq!(log, serde_json::json!([]), "{log}");
}

/// A name already borne in the same place is refused on creation and rename (both would then
/// answer only to their ids); the same name in another folder is fine.
#[test]
fn a_name_taken_in_the_same_place_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("alice");
    json(&home, &["init", "--name", "Alice"]);
    json(&home, &["folder", "create", "Team"]);
    json(&home, &["folder", "create", "Home"]);
    json(&home, &["doc", "create", "plan.txt", "--folder", "Team"]);
    json(&home, &["doc", "create", "draft.txt", "--folder", "Team"]);
    let err = fails(&home, &["doc", "create", "plan.txt", "--folder", "Team"]);
    assert!(
        err.contains("a document named plan.txt already exists in folder Team"),
        "{err}"
    );
    let err = fails(&home, &["doc", "rename", "draft.txt", "plan.txt"]);
    assert!(err.contains("already exists in folder Team"), "{err}");
    let err = fails(&home, &["folder", "create", "Team"]);
    assert!(
        err.contains("a folder named Team already exists at the top level"),
        "{err}"
    );
    // Elsewhere, and renaming to its own name, are fine.
    json(&home, &["doc", "create", "plan.txt", "--folder", "Home"]);
    json(&home, &["doc", "rename", "draft.txt", "draft.txt"]);
    let ls = json(&home, &["ls"]);
    let plans = ls
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "plan.txt")
        .count();
    assert_eq!(plans, 2, "{ls}");
}

/// A subject is not granted to itself, and revoking an agent that holds no grant says so in
/// words naming both.
#[test]
fn grant_to_itself_and_revoke_of_nothing_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("alice");
    json(&home, &["init", "--name", "Alice"]);
    json(&home, &["folder", "create", "Team"]);
    let err = fails(&home, &["grant", "Team", "Team", "--access", "read"]);
    assert!(err.contains("cannot grant Team to itself"), "{err}");
    let err = fails(&home, &["revoke", "Team", "me"]);
    assert!(err.contains("me holds no grant on Team to revoke"), "{err}");
}

/// The same grant again writes nothing: it says the agent already holds that level by this
/// device's grant and names that op (`unchanged` in `--json`). Before, each repeat wrote one
/// more delegation granting nothing new, and `revoke` then had one more op to write. A
/// different level, or the same level after a revocation, is a new grant.
#[test]
fn the_same_grant_twice_writes_one_op() {
    let dir = tempfile::tempdir().unwrap();
    let alice = alice_knows_bob(dir.path());
    json(&alice, &["doc", "create", "plan.txt"]);
    let first = json(&alice, &["grant", "plan.txt", "Bob", "--access", "read"]);
    assert_eq!(first["unchanged"], false, "{first}");
    let again = json(&alice, &["grant", "plan.txt", "Bob", "--access", "read"]);
    assert_eq!(again["unchanged"], true, "{again}");
    assert_eq!(again["op"], first["op"], "{again}");
    let text = keyhive(&alice)
        .args(["grant", "plan.txt", "Bob", "--access", "read"])
        .output()
        .unwrap();
    assert!(text.status.success(), "{text:?}");
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("Bob already holds read on plan.txt by this device's grant"),
        "{text}"
    );
    let members = json(&alice, &["members", "plan.txt"]).to_string();
    assert!(members.contains("Bob"), "{members}");
    let upgraded = json(&alice, &["grant", "plan.txt", "Bob", "--access", "write"]);
    assert_eq!(upgraded["unchanged"], false, "{upgraded}");
    let revoked = json(&alice, &["revoke", "plan.txt", "Bob"]);
    assert_eq!(
        revoked["ops"].as_array().map(Vec::len),
        Some(2),
        "{revoked}"
    );
    let regranted = json(&alice, &["grant", "plan.txt", "Bob", "--access", "read"]);
    assert_eq!(regranted["unchanged"], false, "{regranted}");
    assert_ne!(regranted["op"], first["op"]);
}
