//! Issue 12 #5 acceptance (`specs/encryption.md` KEYS-8, KEYS-9): `keyhive backup` then
//! `keyhive restore` on a fresh home, with a real relay process, reads every document again:
//! Alice's own, one shared with her, one in a folder, and a version written after the backup.

mod common;

use std::path::{Path, PathBuf};

use common::{RelayProcess, json, keyhive};
use serde_json::Value;

const PASSPHRASE: &str = "correct horse battery staple";

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

fn get(home: &Path, doc: &str) -> String {
    let out = keyhive(home).args(["get", doc]).output().unwrap();
    assert!(
        out.status.success(),
        "get {doc}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `keyhive --json ARGS` with the passphrase in the environment.
fn with_passphrase(home: &Path, phrase: &str, args: &[&str]) -> (bool, Value, String) {
    let out = keyhive(home)
        .env("KEYHIVE_PASSPHRASE", phrase)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), value, err)
}

#[test]
fn a_restored_home_reads_every_document_again() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, alice_card) = person(dir.path(), "Alice", &relay);
    let (bob, bob_card) = person(dir.path(), "Bob", &relay);
    json(&alice, &["contact", "add", &bob_card]);
    json(&bob, &["contact", "add", &alice_card]);

    json(&alice, &["doc", "create", "diary.txt"]);
    put(&alice, dir.path(), "diary.txt", "only mine");
    json(&alice, &["folder", "create", "Projects"]);
    json(
        &alice,
        &["doc", "create", "plan.txt", "--folder", "Projects"],
    );
    put(&alice, dir.path(), "plan.txt", "the plan");
    json(&bob, &["doc", "create", "from-bob.txt"]);
    json(
        &bob,
        &["grant", "from-bob.txt", "Alice", "--access", "read"],
    );
    put(&bob, dir.path(), "from-bob.txt", "bob v1");
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    json(&alice, &["sync"]);
    assert_eq!(get(&alice, "from-bob.txt"), "bob v1");

    let file = dir.path().join("alice.keyhive-backup");
    let file_arg = file.to_str().unwrap();
    let (ok, made, err) = with_passphrase(&alice, PASSPHRASE, &["backup", file_arg]);
    assert!(ok, "{err}");
    assert!(made["items"].as_u64().unwrap() > 0, "{made}");
    println!(
        "backup of Alice's home: {} bytes, {} items",
        made["bytes"], made["items"]
    );
    let sealed = std::fs::read(&file).unwrap();
    assert!(!sealed.windows(9).any(|w| w == b"only mine"));
    assert!(!sealed.windows(5).any(|w| w == b"Alice"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "backup mode {mode:o}");
    }

    // Bob writes after the backup: the restored home gets it by syncing.
    put(&bob, dir.path(), "from-bob.txt", "bob v2");
    json(&bob, &["sync"]);

    let fresh = dir.path().join("Alice-restored");
    let (ok, _, err) = with_passphrase(&fresh, "wrong passphrase", &["restore", file_arg]);
    assert!(!ok);
    assert!(err.contains("wrong passphrase"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!fresh.join("device.key").exists());

    let (ok, restored, err) = with_passphrase(&fresh, PASSPHRASE, &["restore", file_arg]);
    assert!(ok, "{err}");
    assert_eq!(restored["items"], made["items"], "{restored}");
    assert_eq!(
        json(&fresh, &["whoami"])["id"],
        json(&alice, &["whoami"])["id"]
    );
    // Before any sync: everything that was held reads again, names and contacts included.
    assert_eq!(get(&fresh, "diary.txt"), "only mine");
    assert_eq!(get(&fresh, "plan.txt"), "the plan");
    assert_eq!(get(&fresh, "from-bob.txt"), "bob v1");
    json(&fresh, &["sync"]);
    assert_eq!(get(&fresh, "from-bob.txt"), "bob v2");

    // A home that holds a device is never overwritten.
    let (ok, _, err) = with_passphrase(&bob, PASSPHRASE, &["restore", file_arg]);
    assert!(!ok);
    assert!(err.contains("already holds a device"), "{err}");
    relay.stop();
}
