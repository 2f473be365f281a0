//! Damaged local stores and closed pipes through the `keyhive` binary: a corrupt or empty home
//! store is a one-line error with exit status 1, never a panic (STORE-6..9), a relay whose
//! stderr is closed keeps serving and stops cleanly (SYNC-99), and a command whose stdout is
//! closed (`keyhive ls | head`) stops quietly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};

use assert_cmd::Command;
use serde_json::Value;

fn keyhive(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("keyhive").unwrap();
    cmd.arg("--home").arg(home).env_remove("KEYHIVE_HOME");
    cmd
}

fn ok(home: &Path, args: &[&str]) -> Value {
    let out = keyhive(home).arg("--json").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// STORE-6..9: every damage to `store.redb` (empty, truncated, flipped bytes, garbage) makes
/// `keyhive ls` fail with exit status 1 and one line naming the file, never status 101.
#[test]
fn corrupt_home_store_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("alice");
    ok(&home, &["init", "--name", "alice"]);
    ok(&home, &["doc", "create", "notes"]);
    let store = home.join("store.redb");
    let original = std::fs::read(&store).unwrap();
    let len = original.len();
    let mut damaged: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("garbage".into(), vec![0x5a; len]),
    ];
    for at in [1, 100, 512, 4096, len / 3, len / 2, len - 1] {
        damaged.push((format!("truncated at {at}"), original[..at].to_vec()));
    }
    for at in (0..len).step_by(len / 12 + 1) {
        let mut bytes = original.clone();
        bytes[at] ^= 0xff;
        damaged.push((format!("byte {at} flipped"), bytes));
    }
    let mut refused = 0;
    for (what, bytes) in &damaged {
        std::fs::write(&store, bytes).unwrap();
        let out = keyhive(&home).arg("ls").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => {}
            Some(1) => {
                refused += 1;
                assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err}");
                assert!(err.starts_with("error: "), "{what}: {err}");
            }
            other => panic!("{what}: exit status {other:?}: {err}"),
        }
    }
    assert!(
        refused >= 9,
        "the empty, garbage and truncated files are refused"
    );
    std::fs::write(&store, b"").unwrap();
    let out = keyhive(&home).arg("ls").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&store.display().to_string()) && err.contains("backup"),
        "names the file and what to do: {err}"
    );
    assert_eq!(std::fs::metadata(&store).unwrap().len(), 0, "not recreated");
}

/// SYNC-99: a relay whose stderr pipe is closed right away starts, serves a sync (which logs)
/// and stops cleanly on SIGTERM instead of exiting with status 101.
#[test]
fn relay_with_closed_stderr_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("keyhive"))
        .args([
            "--json",
            "relay",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(dir.path().join("relay"))
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "relay exited early"
        );
        text.push_str(&line);
        if line.starts_with('}') {
            break;
        }
    }
    let info: Value = serde_json::from_str(&text).unwrap();
    let url = info["url"].as_str().unwrap();

    let home = dir.path().join("alice");
    ok(&home, &["init", "--name", "alice"]);
    ok(&home, &["doc", "create", "notes"]);
    ok(&home, &["relay", "add", url]);
    ok(&home, &["sync"]);
    ok(&home, &["sync"]);

    let pid = child.id().to_string();
    assert!(
        StdCommand::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "relay exit status {status:?}");
}

/// `keyhive ls | head`: a stdout closed before the command writes ends it with status 141
/// (as SIGPIPE would) and nothing on stderr, never a "Broken pipe" panic (status 101).
#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("alice");
    ok(&home, &["init", "--name", "alice"]);
    ok(&home, &["doc", "create", "notes"]);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = StdCommand::new(assert_cmd::cargo::cargo_bin("keyhive"))
        .arg("--home")
        .arg(&home)
        .arg("ls")
        .env_remove("KEYHIVE_HOME")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// LIVE-9: a command on a home whose store another process holds waits for it (saying so once
/// on stderr) instead of failing at once with "in use by another process", and then runs.
#[test]
fn a_command_waits_for_another_holding_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("alice");
    ok(&home, &["init", "--name", "Alice"]);
    ok(&home, &["doc", "create", "first.txt"]);

    // Another process's hold on the store, here this test's own.
    let held = keyhive_sync::RedbStore::open(home.join("store.redb")).unwrap();
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("keyhive"))
        .arg("--home")
        .arg(&home)
        .args(["--json", "doc", "create", "second.txt"])
        .env_remove("KEYHIVE_HOME")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("waiting for another keyhive command using "),
        "{line}"
    );
    drop(held);
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success(), "{rest}");
    let listed = ok(&home, &["ls"]).to_string();
    assert!(listed.contains("second.txt"), "{listed}");
}
