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

/// `get --out PATH` replaces a regular file atomically, through a symbolic link to its target
/// (the link stays), and writes into anything else that exists (a FIFO here, a device such as
/// `/dev/null`) instead of replacing it. Before, run as root, `get --out /dev/null` renamed a
/// regular file over the device node; a FIFO or a link was replaced the same way.
#[cfg(unix)]
#[test]
fn get_out_writes_into_a_fifo_and_through_a_link_never_replacing_them() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("alice");
    json(&home, &["init", "--name", "alice"]);
    json(&home, &["doc", "create", "todo.txt"]);
    let file = dir.path().join("in.txt");
    std::fs::write(&file, "the bytes").unwrap();
    json(&home, &["put", "todo.txt", file.to_str().unwrap()]);

    // The link first: before the fix the FIFO's reader would wait forever, not fail.
    let target = dir.path().join("target.txt");
    std::fs::write(&target, "old").unwrap();
    let link = dir.path().join("link.txt");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    json(&home, &["get", "todo.txt", "--out", link.to_str().unwrap()]);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"the bytes");

    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    json(&home, &["get", "todo.txt", "--out", fifo.to_str().unwrap()]);
    assert_eq!(reader.join().unwrap(), b"the bytes");
    let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(
        std::os::unix::fs::FileTypeExt::is_fifo(&kind),
        "still a FIFO"
    );

    let err = fails(
        &home,
        &["get", "todo.txt", "--out", dir.path().to_str().unwrap()],
    );
    assert!(err.contains("is a directory"), "{err}");
}
