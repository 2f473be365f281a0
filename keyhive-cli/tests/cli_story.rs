//! CLI acceptance: three `--home` directories and a real relay process on loopback, driven
//! through the `keyhive` binary with `--json` output parsed.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};

use common::{RelayProcess, json, keyhive};
use serde_json::Value;

/// A command that fails with one clear line containing `expect` (and no panic).
fn fails(home: &Path, args: &[&str], expect: &str) {
    let err = common::fails(home, args);
    assert!(err.contains(expect), "{args:?}: {err:?} lacks {expect:?}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"));
}

fn get(home: &Path, doc: &str) -> Option<String> {
    let out = keyhive(home).args(["get", doc]).output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap())
}

struct People {
    alice: PathBuf,
    bob: PathBuf,
    carol: PathBuf,
}

fn people(dir: &Path) -> People {
    let p = People {
        alice: dir.join("alice"),
        bob: dir.join("bob"),
        carol: dir.join("carol"),
    };
    for (home, name) in [(&p.alice, "Alice"), (&p.bob, "Bob"), (&p.carol, "Carol")] {
        json(home, &["init", "--name", name]);
    }
    let card = |h: &Path| {
        json(h, &["contact", "export"])["card"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (a, b, c) = (card(&p.alice), card(&p.bob), card(&p.carol));
    for (home, cards) in [
        (&p.alice, [&b, &c]),
        (&p.bob, [&a, &c]),
        (&p.carol, [&a, &b]),
    ] {
        for card in cards {
            json(home, &["contact", "add", card]);
        }
    }
    p
}

#[test]
fn share_read_revoke_story_with_a_relay_process() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    assert_eq!(relay.id.len(), 64, "relay id in --json output");
    let p = people(dir.path());
    json(&p.alice, &["relay", "add", &relay.url]);
    json(&p.bob, &["relay", "add", &relay.url]);
    json(&p.carol, &["relay", "add", &relay.url]);

    let folder = json(&p.alice, &["folder", "create", "Team"]);
    assert_eq!(folder["kind"], "folder");
    json(&p.alice, &["doc", "create", "plan.txt", "--folder", "Team"]);
    let file = dir.path().join("plan-v1.txt");
    std::fs::write(&file, "plan v1").unwrap();
    json(&p.alice, &["put", "plan.txt", file.to_str().unwrap()]);
    json(&p.alice, &["grant", "Team", "Bob", "--access", "read"]);
    json(&p.alice, &["grant", "Team", "Carol", "--access", "write"]);
    let members = json(&p.alice, &["members", "plan.txt"]);
    let bob_row = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "Bob")
        .unwrap();
    assert_eq!(bob_row["access"], "read");
    assert_eq!(bob_row["via"], "Team");
    let why = json(&p.alice, &["why", "plan.txt", "Bob"]);
    assert_eq!(why["granted"], true);
    json(&p.alice, &["sync"]);

    // Bob sees the folder and the document by their shared names and reads.
    let report = json(&p.bob, &["sync"]);
    assert!(report[0]["pulled"].as_u64().unwrap() > 0);
    let ls = json(&p.bob, &["ls"]);
    let names: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Team") && names.contains(&"plan.txt"),
        "{names:?}"
    );
    assert_eq!(get(&p.bob, "plan.txt").unwrap(), "plan v1");
    fails(
        &p.bob,
        &["put", "plan.txt", file.to_str().unwrap()],
        "cannot write",
    );

    // Carol edits; Bob reads the edit.
    json(&p.carol, &["sync"]);
    std::fs::write(&file, "plan v2").unwrap();
    json(&p.carol, &["put", "plan.txt", file.to_str().unwrap()]);
    json(&p.carol, &["sync"]);
    json(&p.bob, &["sync"]);
    assert_eq!(get(&p.bob, "plan.txt").unwrap(), "plan v2");

    // Alice revokes Bob; Carol learns of it and writes; Bob cannot read the new version.
    json(&p.alice, &["sync"]);
    let revoked = json(&p.alice, &["revoke", "Team", "Bob"]);
    let lost: Vec<&str> = revoked["lost_access"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(lost, ["Bob"], "who lost access: {revoked}");
    let why = json(&p.alice, &["why", "plan.txt", "Bob"]);
    assert_eq!(why["granted"], false);
    assert!(why["rule"].as_str().unwrap().starts_with("CAP-"));
    // Said as a person reads it: whose grant, on what, and who revoked it.
    let revoked = why["revoked"].as_str().unwrap();
    assert!(
        revoked.starts_with("me granted ")
            && revoked.contains(" on Team to Bob ")
            && revoked.contains("; me revoked it (op "),
        "{why}"
    );
    json(&p.alice, &["sync"]);
    json(&p.carol, &["sync"]);
    std::fs::write(&file, "plan v3").unwrap();
    json(&p.carol, &["put", "plan.txt", file.to_str().unwrap()]);
    json(&p.carol, &["sync"]);
    json(&p.bob, &["sync"]);
    assert_ne!(get(&p.bob, "plan.txt").as_deref(), Some("plan v3"));
    json(&p.alice, &["sync"]);
    assert_eq!(get(&p.alice, "plan.txt").unwrap(), "plan v3");
    let log = json(&p.alice, &["log", "plan.txt"]);
    let log = log.as_array().unwrap();
    assert!(log.iter().all(|c| c["validity"] == "valid"));
    // Three versions, no metadata record; each names the one before it as its parent.
    assert_eq!(log.len(), 3, "{log:?}");
    let sizes: Vec<u64> = log.iter().map(|c| c["bytes"].as_u64().unwrap()).collect();
    assert_eq!(sizes, [7, 7, 7], "plan v1, v2, v3: {log:?}");
    for pair in log.windows(2) {
        let parents = pair[1]["parents"].as_array().unwrap();
        assert!(parents.contains(&pair[0]["change"]), "{log:?}");
    }

    relay.stop();
    let mut leaked = Vec::new();
    scan(
        &dir.path().join("relay"),
        &mut leaked,
        &["plan v1", "plan v2", "plan v3"],
    );
    assert!(leaked.is_empty(), "relay data holds plaintext: {leaked:?}");
}

fn scan(dir: &Path, found: &mut Vec<String>, needles: &[&str]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            scan(&path, found, needles);
            continue;
        }
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        for n in needles {
            if bytes.windows(n.len()).any(|w| w == n.as_bytes()) {
                found.push(format!("{}: {n}", path.display()));
            }
        }
    }
}

#[test]
fn folder_push_and_pull_with_nested_files_and_a_50_mib_file() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let p = people(dir.path());
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    std::fs::write(src.join("top.txt"), "top").unwrap();
    std::fs::write(src.join("a/b/deep.txt"), "deep").unwrap();
    let big: Vec<u8> = (0..50u32 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(src.join("a/big.bin"), &big).unwrap();

    json(&p.alice, &["folder", "create", "Share"]);
    let pushed = json(
        &p.alice,
        &["folder", "push", "Share", src.to_str().unwrap()],
    );
    assert_eq!(pushed["pushed"].as_array().unwrap().len(), 3);
    assert!(pushed["skipped"].as_array().unwrap().is_empty());
    json(&p.alice, &["grant", "Share", "Bob", "--access", "read"]);
    json(&p.alice, &["sync", "--relay", &relay.url]);
    json(&p.bob, &["sync", "--relay", &relay.url]);
    let out = dir.path().join("out");
    let pulled = json(&p.bob, &["folder", "pull", "Share", out.to_str().unwrap()]);
    assert_eq!(pulled["written"].as_array().unwrap().len(), 3);
    assert!(pulled["skipped"].as_array().unwrap().is_empty());
    assert_eq!(std::fs::read(out.join("top.txt")).unwrap(), b"top");
    assert_eq!(std::fs::read(out.join("a/b/deep.txt")).unwrap(), b"deep");
    assert!(
        std::fs::read(out.join("a/big.bin")).unwrap() == big,
        "50 MiB file differs"
    );

    // Pushing again records new versions of the same documents.
    std::fs::write(src.join("top.txt"), "top v2").unwrap();
    let again = json(
        &p.alice,
        &["folder", "push", "Share", src.to_str().unwrap()],
    );
    assert!(
        again["pushed"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["created"] == false)
    );
    relay.stop();
}

#[test]
fn clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    fails(&home, &["ls"], "no identity");
    json(&home, &["init", "--name", "Solo"]);
    fails(&home, &["get", "nothing"], "unknown name");
    fails(
        &home,
        &["grant", "nothing", "me", "--access", "read"],
        "unknown name",
    );
    json(&home, &["folder", "create", "F"]);
    fails(
        &home,
        &["grant", "F", "stranger", "--access", "read"],
        "unknown agent",
    );
    let out = keyhive(&home)
        .args(["grant", "F", "me", "--access", "owner"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("owner"));
    fails(
        &home,
        &["sync", "--relay", "ws://127.0.0.1:9/sync"],
        "cannot reach relay",
    );
    fails(&home, &["sync"], "no relay");
    fails(&home, &["relay", "add", "http://x"], "not a relay URL");
    fails(
        &home,
        &["doc", "create", "d", "--folder", "missing"],
        "unknown name",
    );
}

#[test]
fn groups_carry_access_to_their_members() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let p = people(dir.path());
    let group = json(&p.alice, &["group", "create", "Editors"]);
    assert_eq!(group["kind"], "group");
    json(&p.alice, &["grant", "Editors", "Bob", "--access", "write"]);
    json(&p.alice, &["doc", "create", "notes"]);
    json(
        &p.alice,
        &["grant", "notes", "Editors", "--access", "write"],
    );
    let why = json(&p.alice, &["why", "notes", "Bob", "--access", "write"]);
    assert_eq!(why["granted"], true);
    assert_eq!(
        why["path"].as_array().unwrap().len(),
        2,
        "notes -> Editors -> Bob"
    );
    json(&p.alice, &["sync", "--relay", &relay.url]);
    json(&p.bob, &["sync", "--relay", &relay.url]);
    let file = dir.path().join("n.txt");
    std::fs::write(&file, "bob's note").unwrap();
    json(&p.bob, &["put", "notes", file.to_str().unwrap()]);
    json(&p.bob, &["sync", "--relay", &relay.url]);
    json(&p.alice, &["sync", "--relay", &relay.url]);
    assert_eq!(get(&p.alice, "notes").unwrap(), "bob's note");
    relay.stop();
}

#[test]
fn demo_runs_the_whole_story() {
    let dir = tempfile::tempdir().unwrap();
    let out = keyhive(&dir.path().join("unused"))
        .args(["--json", "demo"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert!(report["steps"].as_array().unwrap().len() > 10);
}

#[test]
fn help_lists_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = keyhive(dir.path()).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for command in [
        "init", "whoami", "contact", "group", "folder", "doc", "ls", "grant", "revoke", "members",
        "why", "put", "get", "log", "sync", "relay", "demo",
    ] {
        assert!(
            help.contains(&format!("  {command}")),
            "--help lacks {command}"
        );
    }
    let out = keyhive(dir.path())
        .args(["relay", "serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("--listen") && help.contains("--data"));
}
