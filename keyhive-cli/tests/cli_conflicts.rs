//! Issue 12 item 2, with a real relay process: concurrent changes to one document are all
//! kept (REP-52). `get` says there is a conflict and names each side, `get --change ID`
//! fetches each, and `folder pull` writes the other side as a conflict copy (REP-54) and never
//! overwrites a local edit that was not pushed (REP-53).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{RelayProcess, json, keyhive};

/// A fresh home with a device named `name`; returns its home and contact card line.
fn person(dir: &Path, name: &str) -> (PathBuf, String) {
    let home = dir.join(name);
    json(&home, &["init", "--name", name]);
    let card = json(&home, &["contact", "export"])["card"]
        .as_str()
        .unwrap()
        .to_owned();
    (home, card)
}

fn put(home: &Path, doc: &str, file: &Path, text: &str) {
    std::fs::write(file, text).unwrap();
    json(home, &["put", doc, file.to_str().unwrap()]);
}

/// Every file name under `dir` (one level down from it, in `sub`), sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn rep52_concurrent_offline_puts_keep_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, a) = person(dir.path(), "Alice");
    let (bob, b) = person(dir.path(), "Bob");
    json(&alice, &["contact", "add", &b]);
    json(&bob, &["contact", "add", &a]);
    for home in [&alice, &bob] {
        json(home, &["relay", "add", &relay.url]);
    }
    json(&alice, &["folder", "create", "Notes"]);
    json(
        &alice,
        &["doc", "create", "notes/todo.txt", "--folder", "Notes"],
    );
    let scratch = dir.path().join("scratch.txt");
    put(&alice, "notes/todo.txt", &scratch, "milk\n");
    json(&alice, &["grant", "Notes", "Bob", "--access", "write"]);
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    let bob_dir = dir.path().join("bob-notes");
    json(
        &bob,
        &["folder", "pull", "Notes", bob_dir.to_str().unwrap()],
    );
    let bob_file = bob_dir.join("notes/todo.txt");
    assert_eq!(std::fs::read_to_string(&bob_file).unwrap(), "milk\n");

    // Both edit while offline, then sync.
    put(&alice, "notes/todo.txt", &scratch, "milk\neggs (alice)\n");
    put(&bob, "notes/todo.txt", &scratch, "milk\nbread (bob)\n");
    for home in [&alice, &bob, &alice] {
        json(home, &["sync"]);
    }
    let versions: BTreeSet<String> = ["milk\neggs (alice)\n", "milk\nbread (bob)\n"]
        .map(str::to_owned)
        .into();

    for (who, home) in [("alice", &alice), ("bob", &bob)] {
        // `get` writes one version and says there are two, with how to fetch each.
        let got = keyhive(home)
            .args(["get", "notes/todo.txt"])
            .output()
            .unwrap();
        assert!(got.status.success());
        let stderr = String::from_utf8_lossy(&got.stderr);
        assert!(
            stderr.contains("has 2 concurrent versions"),
            "{who}: {stderr}"
        );
        assert!(versions.contains(&String::from_utf8(got.stdout).unwrap()));
        assert!(
            stderr.contains("`keyhive put notes/todo.txt FILE` with the merged version"),
            "{who}: {stderr}"
        );
        let out = dir.path().join(format!("{who}-get.txt"));
        let report = json(
            home,
            &["get", "notes/todo.txt", "--out", out.to_str().unwrap()],
        );
        assert_eq!(report["conflict"], true, "{report}");
        let heads = report["heads"].as_array().unwrap();
        assert_eq!(heads.len(), 2, "{report}");
        let authors: BTreeSet<&str> = heads
            .iter()
            .map(|h| h["author"].as_str().unwrap())
            .collect();
        let expected: BTreeSet<&str> = if who == "alice" {
            ["me", "Bob"].into()
        } else {
            ["Alice", "me"].into()
        };
        assert_eq!(authors, expected, "{report}");
        // `get --change PREFIX` fetches each side; the note names the same prefixes.
        let mut fetched = BTreeSet::new();
        for head in heads {
            let prefix = &head["change"].as_str().unwrap()[..12];
            assert!(stderr.contains(&format!("--change {prefix}")), "{stderr}");
            let got = keyhive(home)
                .args(["get", "notes/todo.txt", "--change", prefix])
                .output()
                .unwrap();
            assert!(
                got.status.success(),
                "{}",
                String::from_utf8_lossy(&got.stderr)
            );
            fetched.insert(String::from_utf8(got.stdout).unwrap());
        }
        assert_eq!(fetched, versions, "{who}");
    }
    // A reader is told of the conflict too, but not to resolve it with a put it may not make.
    let (carol, c) = person(dir.path(), "Carol");
    json(&alice, &["contact", "add", &c]);
    json(&alice, &["grant", "Notes", "Carol", "--access", "read"]);
    json(&alice, &["sync"]);
    json(&carol, &["relay", "add", &relay.url]);
    json(&carol, &["sync"]);
    let got = keyhive(&carol)
        .args(["get", "notes/todo.txt"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&got.stderr);
    assert!(got.status.success(), "{stderr}");
    assert!(stderr.contains("has 2 concurrent versions"), "{stderr}");
    assert!(
        stderr.contains("a writer of notes/todo.txt resolves it")
            && !stderr.contains("keyhive put"),
        "{stderr}"
    );

    let err = common::fails(&alice, &["get", "notes/todo.txt", "--change", "zzzz"]);
    assert!(err.contains("not a change id"), "{err}");

    // Alice pulls into a fresh directory: one version under the name, the other beside it.
    let alice_dir = dir.path().join("alice-notes");
    let pulled = json(
        &alice,
        &["folder", "pull", "Notes", alice_dir.to_str().unwrap()],
    );
    let copies = pulled["conflict_copies"].as_array().unwrap();
    assert_eq!(copies.len(), 1, "{pulled}");
    let copy = copies[0]["copy"].as_str().unwrap();
    assert!(
        copy.starts_with("notes/todo.conflict-") && copy.ends_with(".txt"),
        "{copy}"
    );
    let files = names_in(&alice_dir.join("notes"));
    assert_eq!(files.len(), 2, "{files:?}");
    let written: BTreeSet<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(alice_dir.join("notes").join(f)).unwrap())
        .collect();
    assert_eq!(written, versions);

    // Bob edited his pulled copy and did not push it: his pull keeps it and writes the
    // incoming versions beside it.
    std::fs::write(&bob_file, "milk\nbread (bob)\nunpushed\n").unwrap();
    let run = keyhive(&bob)
        .args(["folder", "pull", "Notes"])
        .arg(&bob_dir)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("warning: kept notes/todo.txt"), "{stderr}");
    // The summary counts the copies and the kept file (it said "Pulled 0 file(s)" only).
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("conflict copies") && stdout.contains("1 kept with local edits"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&bob_file).unwrap(),
        "milk\nbread (bob)\nunpushed\n"
    );
    let files = names_in(&bob_dir.join("notes"));
    assert_eq!(files.len(), 3, "{files:?}");
    let copies: BTreeSet<String> = files
        .iter()
        .filter(|f| f.contains(".conflict-"))
        .map(|f| std::fs::read_to_string(bob_dir.join("notes").join(f)).unwrap())
        .collect();
    assert_eq!(copies, versions);
    // Pulling again changes nothing and still keeps the edit.
    let again = json(
        &bob,
        &["folder", "pull", "Notes", bob_dir.to_str().unwrap()],
    );
    assert!(again["written"].as_array().unwrap().is_empty(), "{again}");
    assert_eq!(names_in(&bob_dir.join("notes")).len(), 3);

    // Bob resolves: he pushes his merged file (conflict copies stay local), and the document
    // has one head again for both.
    std::fs::write(&bob_file, "milk\neggs\nbread\n").unwrap();
    let pushed = json(
        &bob,
        &["folder", "push", "Notes", bob_dir.to_str().unwrap()],
    );
    assert_eq!(pushed["pushed"].as_array().unwrap().len(), 1, "{pushed}");
    json(&bob, &["sync"]);
    json(&alice, &["sync"]);
    let got = keyhive(&alice)
        .args(["get", "notes/todo.txt"])
        .output()
        .unwrap();
    assert_eq!(got.stdout, b"milk\neggs\nbread\n");
    assert!(!String::from_utf8_lossy(&got.stderr).contains("conflict"));
    relay.stop();
}
