//! Issue 12 item 3, with a real relay process: folders as trees. `folder push` sends only what
//! changed (REP-53), deletions and renames travel as metadata records (REP-50, REP-51) that
//! members' `folder pull` applies without losing a local edit, names unsafe on disk are refused
//! here and skipped with a warning when a malicious writer sends them (REP-9, REP-10).

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::{RelayProcess, fails, json, keyhive};
use keyhive_core::capability::{Access, AgentId};
use keyhive_core::identity::{ContactCard, Device, DocumentId};
use keyhive_sync::MemoryStore;
use keyhive_sync::client::Client;
use keyhive_sync::replica::{Replica, ReplicaGate};
use serde_json::Value;

/// SYNC-104: a user with one device shares with nobody, so the relay holds it to the stranger
/// quota (1,000 items / 4 MiB by default); these tests measure bytes on the wire for more than
/// that, so their relay allows it.
fn single_user_quota() -> [&'static std::ffi::OsStr; 2] {
    ["--stranger-quota".as_ref(), "1000000,1000000000".as_ref()]
}

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

/// Alice and Bob know each other and use `relay`; Alice's folder Team, Bob a writer of it.
fn team(dir: &Path, relay: &RelayProcess) -> (PathBuf, PathBuf) {
    let (alice, a) = person(dir, "Alice");
    let (bob, b) = person(dir, "Bob");
    json(&alice, &["contact", "add", &b]);
    json(&bob, &["contact", "add", &a]);
    for home in [&alice, &bob] {
        json(home, &["relay", "add", &relay.url]);
    }
    json(&alice, &["folder", "create", "Team"]);
    json(&alice, &["grant", "Team", "Bob", "--access", "write"]);
    (alice, bob)
}

/// Bytes this home sent to its relays in one `sync`.
fn sync_sent(home: &Path) -> u64 {
    json(home, &["sync"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["bytes_sent"].as_u64().unwrap())
        .sum()
}

fn push(home: &Path, dir: &Path) -> Value {
    json(home, &["folder", "push", "Team", dir.to_str().unwrap()])
}

fn pull(home: &Path, dir: &Path) -> Value {
    json(home, &["folder", "pull", "Team", dir.to_str().unwrap()])
}

/// REP-53: a one-byte edit in a 10 MB folder (100 files x 100 KB) re-encrypts and sends that
/// file only.
#[test]
fn rep53_incremental_push_sends_only_the_changed_file() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &single_user_quota());
    let (alice, _) = person(dir.path(), "Alice");
    json(&alice, &["relay", "add", &relay.url]);
    json(&alice, &["folder", "create", "Team"]);
    let tree = dir.path().join("tree");
    for i in 0..100u32 {
        let sub = tree.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&sub).unwrap();
        let bytes: Vec<u8> = (0..100_000u32)
            .map(|j| (j.wrapping_mul(31) ^ i) as u8)
            .collect();
        std::fs::write(sub.join(format!("f{i}.bin")), bytes).unwrap();
    }
    let first = push(&alice, &tree);
    assert_eq!(first["pushed"].as_array().unwrap().len(), 100);
    let full = sync_sent(&alice);

    let again = push(&alice, &tree);
    assert!(again["pushed"].as_array().unwrap().is_empty(), "{again}");
    assert_eq!(again["unchanged"], 100);
    let nothing = sync_sent(&alice);

    let edited = tree.join("d7/f17.bin");
    let mut bytes = std::fs::read(&edited).unwrap();
    bytes[50_000] ^= 1;
    std::fs::write(&edited, bytes).unwrap();
    let one = push(&alice, &tree);
    let pushed = one["pushed"].as_array().unwrap();
    assert_eq!(pushed.len(), 1, "{one}");
    assert_eq!(pushed[0]["name"], "d7/f17.bin");
    assert_eq!(one["unchanged"], 99);
    let edit = sync_sent(&alice);
    eprintln!(
        "bytes sent: first push of 100 x 100 KB = {full} B; push with nothing changed = {nothing} B; one-byte edit = {edit} B"
    );
    assert!(full > 10_000_000, "{full}");
    // Issue 12 #3: the first push sends the folder once (items in admission order, ADM-n).
    assert!(
        full < 11_000_000,
        "a 10 MB folder's first sync sent {full} B"
    );
    // The edited file's new version (100 KB, sent whole) plus its op: not the folder.
    assert!(edit < 120_000, "a one-byte edit sent {edit} B");
    assert!(nothing < 20_000, "an unchanged folder sent {nothing} B");
    relay.stop();
}

/// Issue 12 #3: a large file crosses the wire once: its ops and change before its pieces, the
/// ops parents first (`admission::apply_order`), so the relay refuses nothing and nothing is
/// sent again (it used to send a 50 MB file twice).
#[test]
fn a_large_file_is_sent_once() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &single_user_quota());
    let (alice, _) = person(dir.path(), "Alice");
    json(&alice, &["relay", "add", &relay.url]);
    let file = dir.path().join("big.bin");
    let size: u32 = 50 * 1024 * 1024;
    let bytes: Vec<u8> = (0..size)
        .map(|j| (j.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &bytes).unwrap();
    json(&alice, &["doc", "create", "big.bin"]);
    json(&alice, &["put", "big.bin", file.to_str().unwrap()]);
    let sent = sync_sent(&alice);
    eprintln!(
        "bytes sent for a {size} B file: {sent} B ({:.3}x)",
        sent as f64 / f64::from(size)
    );
    assert!(sent > u64::from(size), "{sent}");
    assert!(
        sent * 10 < u64::from(size) * 11,
        "a {size} B file's sync sent {sent} B"
    );
    relay.stop();
}

/// REP-50, REP-51, REP-53: deletions and renames propagate; a member's pull deletes only
/// files unchanged since the last sync and keeps edited ones; `doc rm` and `doc rename`.
#[test]
fn rep50_rep51_deletions_and_renames_propagate() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, bob) = team(dir.path(), &relay);
    let a_dir = dir.path().join("a");
    std::fs::create_dir_all(a_dir.join("docs")).unwrap();
    for (name, text) in [
        ("gone.txt", "delete me"),
        ("kept.txt", "bob edits me"),
        ("docs/old.txt", "move me"),
        ("stay.txt", "stay"),
    ] {
        std::fs::write(a_dir.join(name), text).unwrap();
    }
    push(&alice, &a_dir);
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    let b_dir = dir.path().join("b");
    pull(&bob, &b_dir);
    std::fs::write(b_dir.join("kept.txt"), "bob's unpushed edit").unwrap();

    std::fs::remove_file(a_dir.join("gone.txt")).unwrap();
    std::fs::remove_file(a_dir.join("kept.txt")).unwrap();
    std::fs::create_dir_all(a_dir.join("archive")).unwrap();
    std::fs::rename(a_dir.join("docs/old.txt"), a_dir.join("archive/new.txt")).unwrap();
    let pushed = push(&alice, &a_dir);
    assert!(pushed["pushed"].as_array().unwrap().is_empty(), "{pushed}");
    assert_eq!(pushed["renamed"][0]["from"], "docs/old.txt", "{pushed}");
    assert_eq!(pushed["renamed"][0]["to"], "archive/new.txt", "{pushed}");
    let mut removed: Vec<&str> = pushed["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    removed.sort();
    assert_eq!(removed, ["gone.txt", "kept.txt"]);
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);

    let pulled = pull(&bob, &b_dir);
    assert!(!b_dir.join("gone.txt").exists(), "{pulled}");
    assert!(!b_dir.join("docs/old.txt").exists(), "{pulled}");
    assert_eq!(
        std::fs::read_to_string(b_dir.join("archive/new.txt")).unwrap(),
        "move me"
    );
    assert_eq!(
        std::fs::read_to_string(b_dir.join("kept.txt")).unwrap(),
        "bob's unpushed edit",
        "a local edit is never deleted"
    );
    assert_eq!(
        std::fs::read_to_string(b_dir.join("stay.txt")).unwrap(),
        "stay"
    );
    assert!(
        pulled["kept_local"].to_string().contains("kept.txt"),
        "{pulled}"
    );

    // `ls` lists removed documents as such; their names no longer resolve.
    let ls = json(&bob, &["ls"]);
    let gone = ls
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "gone.txt")
        .unwrap();
    assert_eq!(gone["kind"], "removed", "{ls}");
    // Its name no longer answers, and the error says why and how to reach it (before: only
    // "unknown name", beside `ls` listing that very name as removed).
    let err = fails(&bob, &["get", "gone.txt"]);
    let id = gone["id"].as_str().unwrap();
    assert!(
        err.contains("\"gone.txt\" was removed") && err.contains(&id[..12]),
        "{err}"
    );
    let out = dir.path().join("gone-by-id.txt");
    let read = json(&bob, &["get", &id[..12], "--out", out.to_str().unwrap()]);
    assert!(read.is_object(), "{read}");

    // `doc rename` and `doc rm` by hand, pulled by the other side.
    json(&bob, &["doc", "rename", "stay.txt", "notes/stay.txt"]);
    json(&bob, &["doc", "rm", "archive/new.txt"]);
    for bad in [
        "a/../../etc/passwd",
        "/etc/passwd",
        "CON",
        "docs/aux.txt",
        "x.",
        "x ",
        "a//b",
    ] {
        let err = fails(&bob, &["doc", "rename", "notes/stay.txt", bad]);
        assert!(err.contains("invalid name"), "{bad}: {err}");
        let err = fails(&bob, &["doc", "create", bad, "--folder", "Team"]);
        assert!(err.contains("invalid name"), "{bad}: {err}");
    }
    json(&bob, &["sync"]);
    json(&alice, &["sync"]);
    pull(&alice, &a_dir);
    assert!(!a_dir.join("stay.txt").exists());
    assert!(!a_dir.join("archive/new.txt").exists());
    assert_eq!(
        std::fs::read_to_string(a_dir.join("notes/stay.txt")).unwrap(),
        "stay"
    );
    // A file Alice deletes while Bob edits it concurrently: the edit keeps the document.
    let shared = json(&alice, &["doc", "create", "race.txt", "--folder", "Team"]);
    let file = dir.path().join("race.txt");
    std::fs::write(&file, "v1").unwrap();
    json(&alice, &["put", "race.txt", file.to_str().unwrap()]);
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    json(&alice, &["doc", "rm", shared["id"].as_str().unwrap()]);
    std::fs::write(&file, "v2 by bob").unwrap();
    json(&bob, &["put", "race.txt", file.to_str().unwrap()]);
    for home in [&alice, &bob, &alice] {
        json(home, &["sync"]);
    }
    let got = keyhive(&alice).args(["get", "race.txt"]).output().unwrap();
    assert_eq!(
        got.stdout,
        b"v2 by bob",
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    relay.stop();
}

/// A device driven through the library: it writes names the stock CLI refuses.
struct Rogue {
    replica: Arc<Mutex<Replica<Arc<MemoryStore>>>>,
    client: Arc<Client>,
    runtime: tokio::runtime::Runtime,
}

/// The CLI's metadata record (`keyhive-cli/src/records.rs`): tag byte 1, then postcard.
#[derive(serde::Serialize)]
enum Kind {
    #[allow(dead_code)]
    Folder,
    Document,
}

#[derive(serde::Serialize)]
struct Meta {
    name: String,
    kind: Kind,
    folder: Option<DocumentId>,
}

impl Rogue {
    fn new() -> Rogue {
        let device = Device::generate(Some("Mallory".into()));
        let key = device.signing_key().clone();
        let store = Arc::new(MemoryStore::new());
        let replica = Arc::new(Mutex::new(Replica::open(device, store.clone()).unwrap()));
        let gate = Arc::new(ReplicaGate::new(replica.clone()));
        Rogue {
            client: Client::new(key, store, gate),
            replica,
            runtime: tokio::runtime::Runtime::new().unwrap(),
        }
    }

    fn card(&self) -> String {
        ContactCard::to_line(
            &self
                .replica
                .lock()
                .unwrap()
                .device()
                .contact_card()
                .unwrap(),
        )
    }

    fn sync(&self, url: &str) {
        self.runtime.block_on(async {
            self.replica.lock().unwrap().prepare_all().unwrap();
            let session = self.client.connect(url).await.unwrap();
            for _ in 0..8 {
                let before = self.replica.lock().unwrap().accepted_count();
                let r = self.client.sync_once(&session).await.unwrap();
                let mut replica = self.replica.lock().unwrap();
                let rekeyed = !replica.prepare_all().unwrap().is_empty();
                if replica.accepted_count() == before && !rekeyed && r.refused + r.rejected == 0 {
                    break;
                }
            }
        });
    }

    /// A document named `name` placed in `folder` (as `doc create --folder` does) holding
    /// `content`.
    fn document(&self, name: &str, folder: DocumentId, content: &[u8]) {
        let mut r = self.replica.lock().unwrap();
        let doc = r.create_document().unwrap();
        r.grant(&doc.0, AgentId::Document(folder), Access::Admin)
            .unwrap();
        let meta = Meta {
            name: name.to_owned(),
            kind: Kind::Document,
            folder: Some(folder),
        };
        let mut bytes = vec![1];
        bytes.extend(keyhive_core::encoding::encode(&meta));
        r.write(doc, &bytes).unwrap();
        let mut file = vec![0];
        file.extend_from_slice(content);
        r.write(doc, &file).unwrap();
    }
}

/// REP-9, REP-10: a malicious writer's `a/../../etc/passwd` (and Windows-reserved or
/// trailing-dot names) are skipped with a warning on a member's pull; the good files are
/// written and nothing lands outside the directory.
#[test]
fn rep9_a_malicious_writers_path_is_skipped_and_the_rest_written() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, bob) = team(dir.path(), &relay);
    let team_id: DocumentId = DocumentId(
        json(&alice, &["ls"])
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "Team")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    );
    let mallory = Rogue::new();
    json(
        &alice,
        &["contact", "add", &mallory.card(), "--name", "Mallory"],
    );
    json(&alice, &["grant", "Team", "Mallory", "--access", "write"]);
    let a_dir = dir.path().join("a");
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::write(a_dir.join("good.txt"), "good").unwrap();
    push(&alice, &a_dir);
    json(&alice, &["sync"]);
    mallory.sync(&relay.url);
    for name in ["a/../../etc/passwd", "CON", "trailing."] {
        mallory.document(name, team_id, b"root::0:0::/:/bin/sh");
    }
    mallory.document("also-good.txt", team_id, b"fine");
    mallory.sync(&relay.url);
    json(&bob, &["sync"]);

    let b_dir = dir.path().join("deep/b");
    let run = keyhive(&bob)
        .args(["folder", "pull", "Team"])
        .arg(&b_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    eprintln!("{stderr}");
    assert!(stderr.contains("skipped a/../../etc/passwd"), "{stderr}");
    assert!(stderr.contains("reserved on Windows"), "{stderr}");
    assert!(stderr.contains("ends with a dot"), "{stderr}");
    assert!(
        stderr.contains("3 document(s) of the folder were skipped"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(b_dir.join("good.txt")).unwrap(),
        "good"
    );
    assert_eq!(
        std::fs::read_to_string(b_dir.join("also-good.txt")).unwrap(),
        "fine"
    );
    let mut written: Vec<String> = std::fs::read_dir(&b_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, ["also-good.txt", "good.txt"]);
    assert!(!dir.path().join("etc").exists() && !dir.path().join("deep/etc").exists());
    relay.stop();
}

/// Issue 16 #4: two files whose names are different invalid UTF-8 are not merged into one
/// document by a lossy conversion: both are skipped with the reason; the rest is pushed.
#[cfg(unix)]
#[test]
fn non_utf8_file_names_are_skipped_not_merged() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let dir = tempfile::tempdir().unwrap();
    let (alice, _) = person(dir.path(), "Alice");
    json(&alice, &["folder", "create", "Team"]);
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join(OsStr::from_bytes(b"caf\xe9.txt")), b"latin-1").unwrap();
    std::fs::write(tree.join(OsStr::from_bytes(b"caf\xff.txt")), b"other").unwrap();
    std::fs::write(tree.join("plain.txt"), b"fine").unwrap();
    // The push reports the skipped files and fails (exit code), having pushed the rest.
    let out = keyhive(&alice)
        .args(["--json", "folder", "push", "Team", tree.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pushed = report["pushed"].as_array().unwrap();
    assert_eq!(pushed.len(), 1, "{report}");
    assert_eq!(pushed[0]["name"], "plain.txt");
    let skipped = report["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2, "{report}");
    assert!(
        skipped
            .iter()
            .all(|s| s["reason"].as_str().unwrap().contains("not valid UTF-8")),
        "{report}"
    );
}

/// Symbolic links and pipes under a pushed directory are not files a folder shares: each is
/// reported with what it is (`ignored` in `--json`, "not pushed" on stderr), the push succeeds,
/// and the link's target is not read through it.
#[cfg(unix)]
#[test]
fn links_and_pipes_are_reported_not_pushed() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, _) = person(dir.path(), "Alice");
    json(&alice, &["folder", "create", "Team"]);
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("plain.txt"), b"fine").unwrap();
    let outside = dir.path().join("secret.txt");
    std::fs::write(&outside, b"not for the folder").unwrap();
    std::os::unix::fs::symlink(&outside, tree.join("link.txt")).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(tree.join("pipe"))
        .status()
        .unwrap();
    assert!(fifo.success());

    let out = keyhive(&alice)
        .args(["--json", "folder", "push", "Team", tree.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pushed = report["pushed"].as_array().unwrap();
    assert_eq!(pushed.len(), 1, "{report}");
    assert_eq!(pushed[0]["name"], "plain.txt");
    let ignored: Vec<(&str, &str)> = report["ignored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(ignored.len(), 2, "{report}");
    assert_eq!(ignored[0].0, "link.txt");
    assert!(ignored[0].1.contains("symbolic link"), "{report}");
    assert_eq!(ignored[1].0, "pipe");
    assert!(ignored[1].1.contains("not a regular file"), "{report}");
    // As a person reads it.
    let text = keyhive(&alice)
        .args(["folder", "push", "Team", tree.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(text.status.success(), "{text:?}");
    let err = String::from_utf8(text.stderr).unwrap();
    assert!(
        err.contains("not pushed \"link.txt\": a symbolic link"),
        "{err}"
    );
}

/// A document renamed with `doc rename` on the device that pushes the directory: the next
/// pushes leave the file alone (pending a pull) instead of pushing it as a new document, and
/// the pull then renames the file on disk.
#[test]
fn a_rename_made_here_is_not_pushed_back_as_a_new_document() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, _) = person(dir.path(), "Alice");
    json(&alice, &["folder", "create", "Team"]);
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("a.md"), "A").unwrap();
    std::fs::write(tree.join("b.md"), "B").unwrap();
    push(&alice, &tree);
    json(&alice, &["doc", "rename", "b.md", "c.md"]);
    for _ in 0..2 {
        let report = push(&alice, &tree);
        assert_eq!(report["pushed"], serde_json::json!([]), "{report}");
        assert_eq!(report["pending_pull"][0]["name"], "b.md", "{report}");
    }
    let names: Vec<String> = json(&alice, &["ls"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !names.contains(&"b.md".to_owned()),
        "no second document: {names:?}"
    );
    pull(&alice, &tree);
    assert!(!tree.join("b.md").exists());
    assert_eq!(std::fs::read_to_string(tree.join("c.md")).unwrap(), "B");
}

/// The `KEYHIVE_DEBUG=WORD` lines of one run of `keyhive ARGS`, which must succeed.
fn traced(home: &Path, word: &str, args: &[&str]) -> Vec<String> {
    let out = keyhive(home)
        .env("KEYHIVE_DEBUG", word)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{args:?}: {stderr}");
    let prefix = format!("{word}: ");
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .map(str::to_owned)
        .collect()
}

fn metadata_reads(home: &Path, args: &[&str]) -> Vec<String> {
    traced(home, "metadata", args)
}

/// KEYS-12: `folder push` of many new files writes the whole key store once, at its end; the
/// secrets of each new document are appended to its journal before its ops are stored
/// (KEYS-11). Before, the key store was written whole for every document created (and once
/// more by its key-agreement op), so each file cost the size of the key store. Every document
/// is still readable after a restart (a new process, which reads the key store file).
#[test]
fn a_folder_push_writes_the_key_store_once() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, _) = person(dir.path(), "Alice");
    json(&alice, &["folder", "create", "Team"]);
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    for i in 0..30 {
        std::fs::write(files.join(format!("f{i}.txt")), format!("file {i}")).unwrap();
    }
    let writes = traced(
        &alice,
        "keys",
        &["folder", "push", "Team", files.to_str().unwrap()],
    );
    assert_eq!(writes, ["key store saved whole"]);
    assert!(
        !alice.join("device.key.journal").exists(),
        "saved whole at the end: nothing left in the journal"
    );
    let pulled = dir.path().join("pulled");
    json(
        &alice,
        &["folder", "pull", "Team", pulled.to_str().unwrap()],
    );
    for i in 0..30 {
        assert_eq!(
            std::fs::read_to_string(pulled.join(format!("f{i}.txt"))).unwrap(),
            format!("file {i}")
        );
    }
}

/// `folder push` of many new files reads each written document's metadata once, not every
/// document's once per file written: before, each new document made the next one read the
/// metadata of the whole home again (1,000 files into a home of 2,400 documents took 25 ms a
/// file, growing with the home; a home of 5 documents 8 ms a file).
#[test]
fn a_folder_push_reads_the_homes_metadata_a_bounded_number_of_times() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, _) = person(dir.path(), "Alice");
    json(&alice, &["folder", "create", "Team"]);
    let files = dir.path().join("files");
    for (batch, count) in [("a", 20), ("b", 20)] {
        let sub = files.join(batch);
        std::fs::create_dir_all(&sub).unwrap();
        for i in 0..count {
            std::fs::write(sub.join(format!("{batch}{i}.txt")), format!("{batch} {i}")).unwrap();
        }
        let reads = metadata_reads(&alice, &["folder", "push", "Team", files.to_str().unwrap()]);
        let full = reads.iter().filter(|r| r.starts_with("read every")).count();
        let single = reads.iter().filter(|r| *r == "read 1 document").count();
        // Once, to write the name index; what the folder held came from the index the last
        // command wrote (REP-65).
        assert_eq!(full, 1, "{batch}: {reads:#?}");
        assert!(
            reads.iter().any(|r| r == "taken from the name index"),
            "{batch}: {reads:#?}"
        );
        assert_eq!(single, count, "{batch}: {reads:#?}");
    }
    let listed = json(&alice, &["ls"]);
    assert_eq!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "document")
            .count(),
        40,
        "{listed}"
    );
}

/// (name, kind, access) of each entry of `folder ls FOLDER --json`.
fn folder_ls(home: &Path, folder: &str) -> Vec<(String, String, String)> {
    let listed = json(home, &["folder", "ls", folder]);
    listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["kind"].as_str().unwrap().to_owned(),
                e["access"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect()
}

/// `folder ls` lists what a folder holds as its members see it: the documents under the
/// paths `folder pull` writes (same-named ones as `NAME~ID12`, REP-10), the folders granted
/// to it, each with the viewer's level; not a removed document (REP-51), not one placed
/// elsewhere. Before, nothing listed a folder's contents: `ls` is flat.
#[test]
fn folder_ls_lists_what_a_member_pulls() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, bob) = team(dir.path(), &relay);
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    // Bob names a document plan.txt while Alice pushes her plan.txt (REP-10).
    json(&bob, &["doc", "create", "plan.txt", "--folder", "Team"]);
    let bobs_plan = dir.path().join("bobs-plan.txt");
    std::fs::write(&bobs_plan, "bob's plan").unwrap();
    json(&bob, &["put", "plan.txt", bobs_plan.to_str().unwrap()]);
    let files = dir.path().join("files");
    std::fs::create_dir_all(files.join("notes")).unwrap();
    std::fs::write(files.join("plan.txt"), "plan").unwrap();
    std::fs::write(files.join("old.txt"), "old").unwrap();
    std::fs::write(files.join("notes/monday.md"), "monday").unwrap();
    push(&alice, &files);
    json(&alice, &["doc", "rm", "old.txt"]);
    json(&alice, &["doc", "create", "elsewhere.txt"]);
    json(&alice, &["folder", "create", "Archive"]);
    json(&alice, &["grant", "Archive", "Team", "--access", "read"]);
    for home in [&alice, &bob, &alice, &bob] {
        json(home, &["sync"]);
    }

    let seen = folder_ls(&bob, "Team");
    let names: Vec<&str> = seen.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names.len(), 4, "{seen:?}");
    assert_eq!(
        names.iter().filter(|n| n.starts_with("plan.txt~")).count(),
        2,
        "{seen:?}"
    );
    assert!(
        seen.contains(&("Archive".to_owned(), "folder".to_owned(), "read".to_owned())),
        "{seen:?}"
    );
    // Bob writes Alice's documents through the folder and is the admin of his own.
    let mut plans: Vec<&str> = seen
        .iter()
        .filter(|(name, _, _)| name.starts_with("plan.txt~"))
        .map(|(_, _, access)| access.as_str())
        .collect();
    plans.sort();
    assert_eq!(plans, ["admin", "write"], "{seen:?}");
    assert!(
        seen.contains(&(
            "notes/monday.md".to_owned(),
            "document".to_owned(),
            "write".to_owned()
        )),
        "{seen:?}"
    );
    // Alice sees the same entries, as their admin for her own.
    let alices: Vec<String> = folder_ls(&alice, "Team").into_iter().map(|e| e.0).collect();
    let mut bobs: Vec<String> = seen.into_iter().map(|e| e.0).collect();
    bobs.sort();
    let mut sorted = alices.clone();
    sorted.sort();
    assert_eq!(sorted, bobs);

    // The pull writes exactly the listed documents.
    let out = dir.path().join("out");
    let pulled = pull(&bob, &out);
    assert_eq!(pulled["written"].as_array().unwrap().len(), 3, "{pulled}");

    let err = fails(&alice, &["folder", "ls", "elsewhere.txt"]);
    assert!(err.contains("is not a folder"), "{err}");

    // Bob removed: he still lists and pulls what he received, and both say he was removed.
    assert!(json(&bob, &["folder", "ls", "Team"])["revoked"].is_null());
    json(&alice, &["revoke", "Team", "Bob"]);
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    assert!(json(&bob, &["folder", "ls", "Team"])["revoked"].is_string());
    assert!(pull(&bob, &out)["revoked"].is_string());
    relay.stop();
}
