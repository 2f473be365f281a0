//! Issue 10 acceptance (`specs/capabilities.md` CAP-20..CAP-22): the story of a new user, with
//! the `keyhive` binary and a real relay process. Alice shares `shared.txt` with Bob and keeps
//! `diary.txt` private; her later edits to the shared document reach Bob (they used to wait
//! forever for the diary's ops, which Bob is rightly never served); a document she creates later
//! in a folder shared with Bob appears for him; and Bob learns nothing of the diary, not even its
//! id.

mod common;

use std::path::{Path, PathBuf};

use common::{RelayProcess, json, keyhive};

/// A fresh home with the relay added; returns the home and its contact card line.
fn person(dir: &Path, name: &str, relay: &RelayProcess) -> (PathBuf, String) {
    let home = dir.join(name);
    json(&home, &["init", "--name", name]);
    json(&home, &["relay", "add", &relay.url]);
    let card = json(&home, &["contact", "export"])["card"]
        .as_str()
        .unwrap()
        .to_owned();
    (home, card)
}

fn put(home: &Path, dir: &Path, doc: &str, text: &str) {
    let file = dir.join(format!("{}.in", text.replace(' ', "_")));
    std::fs::write(&file, text).unwrap();
    json(home, &["put", doc, file.to_str().unwrap()]);
}

fn get(home: &Path, doc: &str) -> Option<String> {
    let out = keyhive(home).args(["get", doc]).output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap())
}

/// Every byte of every file under `dir`.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.extend(std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn a_private_document_never_stalls_or_leaks_into_sharing() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, alice_card) = person(dir.path(), "Alice", &relay);
    let (bob, bob_card) = person(dir.path(), "Bob", &relay);
    json(&alice, &["contact", "add", &bob_card]);
    json(&bob, &["contact", "add", &alice_card]);

    json(&alice, &["doc", "create", "shared.txt"]);
    json(&alice, &["grant", "shared.txt", "Bob", "--access", "write"]);
    json(&alice, &["folder", "create", "Projects"]);
    json(&alice, &["grant", "Projects", "Bob", "--access", "read"]);
    put(&alice, dir.path(), "shared.txt", "v1");
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    assert_eq!(get(&bob, "shared.txt").as_deref(), Some("v1"));

    // A document Alice does not share, written to between her shared edits.
    let diary = json(&alice, &["doc", "create", "diary.txt"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    put(&alice, dir.path(), "diary.txt", "dear diary");
    put(&alice, dir.path(), "shared.txt", "v2");
    json(
        &alice,
        &["doc", "create", "later.txt", "--folder", "Projects"],
    );
    put(&alice, dir.path(), "later.txt", "made later");
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    json(&bob, &["sync"]);

    assert_eq!(get(&bob, "shared.txt").as_deref(), Some("v2"));
    assert_eq!(get(&bob, "later.txt").as_deref(), Some("made later"));
    // Nothing waits forever: a further sync receives nothing and parks nothing.
    let again = json(&bob, &["sync"]);
    assert_eq!(again[0]["parked"], 0, "{again}");
    assert_eq!(again[0]["arrived"], 0, "{again}");

    // Bob learns nothing of the diary: not its name, not its id, in anything he lists or holds.
    let listed = json(&bob, &["ls"]).to_string();
    assert!(
        !listed.contains("diary") && !listed.contains(&diary),
        "{listed}"
    );
    assert!(get(&bob, "diary.txt").is_none());
    let id: keyhive_core::crypto::signing::PublicKey = diary.parse().unwrap();
    let held = all_bytes(&bob);
    assert!(
        !held.windows(32).any(|w| w == id.0.as_slice()),
        "Bob's home holds the diary's id"
    );
    relay.stop();
}
