//! Folders against people who do not play along, driven as people do: `--home` directories and
//! the `keyhive` binary with a real relay process, plus an in-process device (built on the
//! library, as a modified client would be) for what the stock CLI cannot express.
//!
//! - REP-8: a folder's contents are what the capability graph says (a stranger's or a reader's
//!   document is never in the folder, whatever its metadata claims).
//! - REP-9: names from others are checked before they are printed or used as paths.
//! - REP-10: `folder pull` writes every safe file, skips and reports the others, keeps
//!   same-named documents apart and never writes outside its directory.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::{RelayProcess, json, keyhive};
use keyhive_core::capability::{Access, AgentId};
use keyhive_core::identity::{ContactCard, Device, DocumentId};
use keyhive_sync::MemoryStore;
use keyhive_sync::client::Client;
use keyhive_sync::replica::{Replica, ReplicaGate};
use serde_json::Value;

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

/// A device driven through the library: it writes metadata the stock CLI would refuse.
struct Rogue {
    replica: Arc<Mutex<Replica<Arc<MemoryStore>>>>,
    client: Arc<Client>,
    runtime: tokio::runtime::Runtime,
}

/// The CLI's metadata record (`keyhive-cli/src/records.rs`): tag byte 1, then postcard.
#[derive(Clone, Copy, serde::Serialize)]
enum Kind {
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
    fn new(name: &str) -> Rogue {
        let device = Device::generate(Some(name.into()));
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
        let card = self
            .replica
            .lock()
            .unwrap()
            .device()
            .contact_card()
            .unwrap();
        ContactCard::to_line(&card)
    }

    fn add_contact(&self, line: &str) {
        let card = ContactCard::from_line(line).unwrap();
        self.replica.lock().unwrap().add_contact(card).unwrap();
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

    /// A document of `kind` named `name`, claiming (in its metadata) to be in `folder` and
    /// granting `folder` admin as `doc create --folder` does, holding `content`.
    fn document(&self, name: &str, kind: Kind, folder: DocumentId, content: &[u8]) -> DocumentId {
        let mut r = self.replica.lock().unwrap();
        let doc = r.create_document().unwrap();
        r.grant(&doc.0, AgentId::Document(folder), Access::Admin)
            .unwrap();
        let meta = Meta {
            name: name.to_owned(),
            kind,
            folder: Some(folder),
        };
        let mut bytes = vec![1];
        bytes.extend(keyhive_core::encoding::encode(&meta));
        r.write(doc, &bytes).unwrap();
        let mut file = vec![0];
        file.extend_from_slice(content);
        r.write(doc, &file).unwrap();
        doc
    }
}

fn doc_id(value: &Value) -> DocumentId {
    DocumentId(value["id"].as_str().unwrap().parse().unwrap())
}

/// Every path under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path.clone());
            }
            out.push(
                path.strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    out.sort();
    out
}

/// (a) REP-8: Eve, who is not a member of Team, shares documents with Alice whose metadata
/// claims Team, one named like Alice's real file: Alice's `folder pull Team` writes neither.
#[test]
fn rep8_a_strangers_documents_claiming_the_folder_are_not_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    assert_eq!(relay.id.len(), 64);
    let (alice, alice_card) = person(dir.path(), "Alice");
    json(&alice, &["relay", "add", &relay.url]);
    let team = doc_id(&json(&alice, &["folder", "create", "Team"]));
    json(&alice, &["doc", "create", "plan.txt", "--folder", "Team"]);
    let file = dir.path().join("plan.txt");
    std::fs::write(&file, "the real plan").unwrap();
    json(&alice, &["put", "plan.txt", file.to_str().unwrap()]);
    json(&alice, &["sync"]);

    let eve = Rogue::new("Eve");
    eve.add_contact(&alice_card);
    let mut eves = Vec::new();
    for name in ["plan.txt", "eve.txt"] {
        let doc = eve.document(name, Kind::Document, team, b"eve's bytes");
        eve.replica
            .lock()
            .unwrap()
            .grant(&doc.0, AgentId::Individual(alice_id(&alice)), Access::Read)
            .unwrap();
        eves.push(doc);
    }
    eve.sync(&relay.url);
    json(&alice, &["sync"]);

    // Alice holds and reads Eve's documents: they are shared with her, by name.
    let ls = json(&alice, &["ls"]);
    let listed: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for doc in &eves {
        assert!(listed.contains(&doc.to_string().as_str()), "{ls}");
    }
    let out = dir.path().join("out");
    let pulled = json(&alice, &["folder", "pull", "Team", out.to_str().unwrap()]);
    assert_eq!(tree(&out), ["plan.txt"], "{pulled}");
    assert_eq!(
        std::fs::read_to_string(out.join("plan.txt")).unwrap(),
        "the real plan"
    );
    assert_eq!(pulled["written"].as_array().unwrap().len(), 1);
    assert!(pulled["skipped"].as_array().unwrap().is_empty());
    // `folder ls` lists the same: Eve's claims are not in the folder.
    let listed = json(&alice, &["folder", "ls", "Team"]);
    let entries = listed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{listed}");
    assert_eq!(entries[0]["name"], "plan.txt", "{listed}");
    assert_eq!(entries[0]["access"], "admin", "{listed}");
    relay.stop();
}

fn alice_id(home: &Path) -> keyhive_core::identity::IndividualId {
    keyhive_core::identity::IndividualId(
        json(home, &["whoami"])["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    )
}

/// (b) REP-8: a read-only member of Team cannot put a document in Team: the stock CLI refuses
/// `doc create --folder Team`, and granting Team access to the document (which the stock CLI
/// does allow: it shares the document) does not place it, for anyone. A writer's document is
/// placed, and leaves Team when the writer's access is revoked.
#[test]
fn rep8_a_readers_document_is_not_in_the_folder_for_anyone() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, a) = person(dir.path(), "Alice");
    let (bob, b) = person(dir.path(), "Bob");
    let (carol, c) = person(dir.path(), "Carol");
    for (home, cards) in [(&alice, [&b, &c]), (&bob, [&a, &c]), (&carol, [&a, &b])] {
        json(home, &["relay", "add", &relay.url]);
        for card in cards {
            json(home, &["contact", "add", card]);
        }
    }
    json(&alice, &["folder", "create", "Team"]);
    json(&alice, &["doc", "create", "plan.txt", "--folder", "Team"]);
    let file = dir.path().join("f.txt");
    std::fs::write(&file, "plan").unwrap();
    json(&alice, &["put", "plan.txt", file.to_str().unwrap()]);
    json(&alice, &["grant", "Team", "Bob", "--access", "read"]);
    json(&alice, &["grant", "Team", "Carol", "--access", "write"]);
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    json(&carol, &["sync"]);

    let out = keyhive(&bob)
        .args(["doc", "create", "bobs.txt", "--folder", "Team"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a reader placed a document in Team");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs write (REP-8)"), "{err}");
    json(&bob, &["doc", "create", "bobs.txt"]);
    json(&bob, &["grant", "bobs.txt", "Team", "--access", "admin"]);
    std::fs::write(&file, "bob's").unwrap();
    json(&bob, &["put", "bobs.txt", file.to_str().unwrap()]);
    json(&carol, &["doc", "create", "carols.txt", "--folder", "Team"]);
    std::fs::write(&file, "carol's").unwrap();
    json(&carol, &["put", "carols.txt", file.to_str().unwrap()]);
    json(&bob, &["sync"]);
    json(&carol, &["sync"]);
    for home in [&alice, &bob, &carol, &alice] {
        json(home, &["sync"]);
    }

    for (who, home) in [("alice", &alice), ("bob", &bob), ("carol", &carol)] {
        let out = dir.path().join(format!("out-{who}"));
        json(home, &["folder", "pull", "Team", out.to_str().unwrap()]);
        assert_eq!(tree(&out), ["carols.txt", "plan.txt"], "{who}");
    }
    // Alice can still open Bob's document (it is shared with Team's members), by name.
    std::fs::remove_file(&file).unwrap();
    let got = keyhive(&alice).args(["get", "bobs.txt"]).output().unwrap();
    assert_eq!(got.stdout, b"bob's");

    // Carol's write on Team is revoked: her document leaves Team.
    json(&alice, &["revoke", "Team", "Carol"]);
    let out = dir.path().join("after-revoke");
    json(&alice, &["folder", "pull", "Team", out.to_str().unwrap()]);
    assert_eq!(tree(&out), ["plan.txt"]);
    relay.stop();
}

/// (c) REP-9, REP-10: a writer of Team (an in-process device: the stock CLI refuses these
/// names) creates documents named `""`, `a/../../etc/passwd`, `x\0y`, `\x1b[31mred`, two
/// named `dup.txt`, one under a directory that is a symbolic link on Alice's disk, and one
/// good one. Alice's `ls` prints the bad names escaped; her `folder pull` writes the good files
/// and both duplicates (apart), skips and reports the others, exits non-zero, and nothing is
/// written outside the target directory.
#[test]
fn rep9_rep10_bad_names_are_skipped_and_escaped_and_the_rest_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, alice_card) = person(dir.path(), "Alice");
    json(&alice, &["relay", "add", &relay.url]);
    let team = doc_id(&json(&alice, &["folder", "create", "Team"]));
    let dave = Rogue::new("Dave");
    dave.add_contact(&alice_card);
    json(&alice, &["contact", "add", &dave.card(), "--name", "Dave"]);
    json(&alice, &["grant", "Team", "Dave", "--access", "write"]);
    json(&alice, &["sync"]);
    dave.sync(&relay.url);

    let bad = ["", "a/../../etc/passwd", "x\0y", "\x1b[31mred"];
    for name in bad {
        dave.document(name, Kind::Document, team, b"attacker bytes");
    }
    let dups = [
        dave.document("dup.txt", Kind::Document, team, b"one"),
        dave.document("dup.txt", Kind::Document, team, b"two"),
    ];
    dave.document("link/inside.txt", Kind::Document, team, b"through the link");
    dave.document("good.txt", Kind::Document, team, b"good");
    // A sub-folder is not a file: it is neither written nor reported.
    dave.document("sub", Kind::Folder, team, b"");
    dave.sync(&relay.url);
    json(&alice, &["sync"]);

    // `ls` (human and JSON) never prints a control character from a peer's name.
    let ls = keyhive(&alice).arg("ls").output().unwrap();
    assert!(ls.status.success());
    assert!(
        !ls.stdout.iter().any(|b| *b == 0x1b || *b == 0),
        "raw control characters in `ls`: {:?}",
        String::from_utf8_lossy(&ls.stdout)
    );
    let text = String::from_utf8_lossy(&ls.stdout);
    for shown in [
        "(unnamed)",
        r#""x\0y""#,
        r#""\u{1b}[31mred""#,
        "a/../../etc/passwd",
    ] {
        assert!(text.contains(shown), "`ls` lacks {shown}: {text}");
    }
    let ls = json(&alice, &["ls"]);
    assert!(
        ls.as_array()
            .unwrap()
            .iter()
            .all(|r| !r["name"].as_str().unwrap().contains(['\0', '\x1b']))
    );
    let red = ls
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == r#""\u{1b}[31mred""#)
        .unwrap();
    assert!(
        red["name_problem"]
            .as_str()
            .unwrap()
            .contains("control character")
    );

    // A symbolic link in the target directory pointing outside it.
    let out = dir.path().join("out");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("link")).unwrap();
    let before = tree(dir.path());

    let run = keyhive(&alice)
        .args(["--json", "folder", "pull", "Team"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!run.status.success(), "skipped documents must be reported");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("5 document(s) of the folder were skipped"),
        "{err}"
    );
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    let written: Vec<&str> = report["written"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    let dup_paths: Vec<String> = dups
        .iter()
        .map(|d| format!("dup.txt~{}", &d.to_string()[..12]))
        .collect();
    let mut expected = vec!["good.txt", &dup_paths[0], &dup_paths[1]];
    expected.sort();
    assert_eq!(written, expected);
    assert_eq!(report["conflicts"].as_array().unwrap().len(), 2);
    let skipped = report["skipped"].as_array().unwrap();
    let reasons: Vec<(&str, &str)> = skipped
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["reason"].as_str().unwrap()))
        .collect();
    for (name, reason) in [
        ("(unnamed)", "empty"),
        ("a/../../etc/passwd", "\"..\""),
        (r#""x\0y""#, "control character"),
        (r#""\u{1b}[31mred""#, "control character"),
        ("link/inside.txt", "symbolic link"),
    ] {
        assert!(
            reasons
                .iter()
                .any(|(n, r)| *n == name && r.contains(reason)),
            "{name} not skipped for {reason}: {reasons:?}"
        );
    }
    assert!(
        skipped
            .iter()
            .all(|s| s["document"].as_str().unwrap().len() == 64)
    );

    assert_eq!(std::fs::read(out.join("good.txt")).unwrap(), b"good");
    let mut dup_bytes: Vec<Vec<u8>> = dup_paths
        .iter()
        .map(|p| std::fs::read(out.join(p)).unwrap())
        .collect();
    dup_bytes.sort();
    assert_eq!(dup_bytes, [b"one".to_vec(), b"two".to_vec()]);
    assert!(
        !out.join("dup.txt").exists(),
        "neither duplicate takes the name"
    );
    // Nothing appeared anywhere but the three files inside `out`.
    let mut now = tree(dir.path());
    // The home records what it pulled (REP-53); the relay has its own directory.
    now.retain(|p| {
        !before.contains(p) && !p.starts_with("relay") && p != "Alice/folder-state.json"
    });
    let mut new_files: Vec<String> = expected.iter().map(|p| format!("out/{p}")).collect();
    new_files.sort();
    assert_eq!(now, new_files);
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none());

    // The human report names each skipped document escaped, with its id and reason.
    let run = keyhive(&alice)
        .args(["folder", "pull", "Team"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.stderr.iter().any(|b| *b == 0x1b || *b == 0), "{err}");
    assert!(
        err.contains(r#"skipped "\u{1b}[31mred" (document "#),
        "{err}"
    );
    relay.stop();
}
