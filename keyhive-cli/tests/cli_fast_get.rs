//! REP-60..REP-63 through the CLI: `keyhive get ID` (or a unique id prefix) opens the home
//! scoped to that document, and answers exactly as `get NAME`, which opens it fully; ids that
//! are not a document's get the messages of a full open.

mod common;

use std::path::Path;

use common::{fails, json, keyhive};

fn stdout(home: &Path, args: &[&str]) -> Vec<u8> {
    let out = keyhive(home).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn rep61_get_by_id_reads_as_a_full_open() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("alice");
    json(&home, &["init", "--name", "alice"]);
    let folder = json(&home, &["folder", "create", "Notes"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let doc = json(&home, &["doc", "create", "todo.txt", "--folder", "Notes"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = json(&home, &["doc", "create", "other.txt"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let group = json(&home, &["group", "create", "Team"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = dir.path().join("todo.txt");
    std::fs::write(&file, "first").unwrap();
    let first = json(&home, &["put", "todo.txt", file.to_str().unwrap()])["change"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(&file, "second").unwrap();
    json(&home, &["put", &doc, file.to_str().unwrap()]);
    std::fs::write(dir.path().join("o.txt"), "other").unwrap();
    json(
        &home,
        &["put", &other, dir.path().join("o.txt").to_str().unwrap()],
    );

    // The same bytes by name (full open), by id and by prefix (scoped).
    let by_name = stdout(&home, &["get", "todo.txt"]);
    assert_eq!(by_name, b"second");
    assert_eq!(stdout(&home, &["get", &doc]), by_name);
    assert_eq!(stdout(&home, &["get", &doc[..12]]), by_name);
    assert_eq!(stdout(&home, &["get", &other]), b"other");
    assert_eq!(
        stdout(&home, &["get", &doc, "--change", &first[..8]]),
        b"first"
    );

    // The same JSON report, written to a file.
    let out = dir.path().join("out.txt");
    let out_arg = out.to_str().unwrap();
    let full = json(&home, &["get", "todo.txt", "--out", out_arg]);
    let scoped = json(&home, &["get", &doc, "--out", out_arg]);
    assert_eq!(full, scoped);
    assert_eq!(std::fs::read(&out).unwrap(), b"second");

    // A folder is a document: readable by id (it holds only its metadata record, as by name).
    assert_eq!(
        fails(&home, &["get", &folder]),
        fails(&home, &["get", "Notes"]).replace("Notes", &folder)
    );
    // Not a document: the full open's messages.
    assert!(fails(&home, &["get", &group]).contains("is a group, not a document"));
    let unknown = "ab".repeat(32);
    assert!(fails(&home, &["get", &unknown]).contains("no group, folder or document"));
}
