//! Issue 12 item 7: transcripts pin what people see.
//!
//! - `tests/cmd/*.toml` (trycmd): the help text of every command.
//! - `tests/transcripts/everyday.txt` (snapbox): the human output and errors of an everyday
//!   session on two homes, in order: identities, contacts, a shared document, reads, the log,
//!   members and why, a revocation, a group named and renamed, and the errors people hit (unknown names with a
//!   suggestion, a relay URL without its sync path, a malformed card, an unsafe name). Ids,
//!   keys, times and the temporary directory are redacted (`[HEX]`, `[ROOT]`).
//!
//! After changing output on purpose, regenerate with
//! `TRYCMD=overwrite SNAPSHOTS=overwrite cargo test -p keyhive-cli --test cli_transcripts`
//! and review the diff.

mod common;

use std::path::Path;

use common::keyhive;

#[test]
fn help_transcripts() {
    trycmd::TestCases::new().case("tests/cmd/*.toml");
}

/// Replaces every run of 12 or more hex digits (ids, keys, hashes, prefixes) with `[HEX]`.
fn redact_hex(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 12 {
            out.push_str("[HEX]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Runs `keyhive --home ROOT/home args...` in `root` and appends the exchange to `log`.
fn step(log: &mut String, root: &Path, home: &str, args: &[&str]) {
    let out = keyhive(&root.join(home))
        .current_dir(root)
        .args(args)
        .output()
        .expect("runs");
    // Contact cards differ on every run: shown as `[CARD]`.
    let shown: Vec<&str> = args
        .iter()
        .map(|a| {
            if a.starts_with("keyhive-card1:") {
                "[CARD]"
            } else {
                a
            }
        })
        .collect();
    log.push_str(&format!("$ keyhive --home {home} {}\n", shown.join(" ")));
    log.push_str(&String::from_utf8_lossy(&out.stdout));
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        log.push_str(&format!("[exit {}]\n", out.status.code().unwrap_or(-1)));
    }
    log.push('\n');
}

#[test]
fn everyday_transcript() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::write(root.join("notes.txt"), "first draft\n").expect("write");
    std::fs::write(root.join("notes-2.txt"), "second draft\n").expect("write");
    let mut log = String::new();
    step(&mut log, root, "alice", &["init", "--name", "Alice"]);
    step(&mut log, root, "bob", &["init", "--name", "Bob"]);
    step(&mut log, root, "alice", &["whoami"]);
    for (from, to) in [("alice", "bob"), ("bob", "alice")] {
        let card = keyhive(&root.join(from))
            .args(["contact", "export"])
            .output()
            .expect("export");
        let card = String::from_utf8_lossy(&card.stdout).trim().to_owned();
        step(&mut log, root, to, &["contact", "add", &card]);
    }
    step(&mut log, root, "alice", &["contact", "list"]);
    step(&mut log, root, "alice", &["folder", "create", "Team"]);
    step(
        &mut log,
        root,
        "alice",
        &["doc", "create", "notes.txt", "--folder", "Team"],
    );
    step(&mut log, root, "alice", &["put", "notes.txt", "notes.txt"]);
    step(
        &mut log,
        root,
        "alice",
        &["put", "notes.txt", "notes-2.txt"],
    );
    step(&mut log, root, "alice", &["get", "notes.txt"]);
    step(
        &mut log,
        root,
        "alice",
        &["grant", "Team", "Bob", "--access", "write"],
    );
    step(&mut log, root, "alice", &["ls"]);
    step(&mut log, root, "alice", &["members", "notes.txt"]);
    step(&mut log, root, "alice", &["why", "notes.txt", "Bob"]);
    step(&mut log, root, "alice", &["log", "notes.txt"]);
    step(&mut log, root, "alice", &["revoke", "Team", "Bob"]);
    step(&mut log, root, "alice", &["why", "notes.txt", "Bob"]);
    // A group named for every member (REC-8..REC-10), renamed, listed, its members.
    step(&mut log, root, "alice", &["group", "create", "Editors"]);
    step(
        &mut log,
        root,
        "alice",
        &["grant", "Editors", "Bob", "--access", "read"],
    );
    step(
        &mut log,
        root,
        "alice",
        &["group", "rename", "Editors", "Writers"],
    );
    step(&mut log, root, "alice", &["ls"]);
    step(&mut log, root, "alice", &["members", "Writers"]);
    step(&mut log, root, "alice", &["status"]);
    // Errors people hit.
    step(&mut log, root, "alice", &["get", "note.txt"]);
    step(
        &mut log,
        root,
        "alice",
        &["grant", "Team", "Bobby", "--access", "read"],
    );
    step(
        &mut log,
        root,
        "alice",
        &["relay", "add", "ws://127.0.0.1:9"],
    );
    step(&mut log, root, "alice", &["contact", "add", "not-a-card"]);
    step(&mut log, root, "alice", &["doc", "create", "../escape.txt"]);
    step(&mut log, root, "alice", &["init", "--name", "Alice again"]);
    step(&mut log, root, "carol", &["ls"]);
    // Errors of the reading commands (answered from the name index, REP-67, REP-69), of the
    // commands that rename and remove, and under `--json`.
    step(&mut log, root, "alice", &["log", "Writers"]);
    step(&mut log, root, "alice", &["members", "Tema"]);
    step(&mut log, root, "alice", &["why", "notes.txt", "Bobby"]);
    step(&mut log, root, "alice", &["--json", "get", "note.txt"]);
    step(
        &mut log,
        root,
        "alice",
        &["get", "notes.txt", "--change", "ffffffff"],
    );
    step(&mut log, root, "alice", &["doc", "rm", "nothing.txt"]);
    step(
        &mut log,
        root,
        "alice",
        &["doc", "rename", "nothing.txt", "other.txt"],
    );
    step(
        &mut log,
        root,
        "alice",
        &["group", "rename", "Team", "Crew"],
    );
    step(&mut log, root, "alice", &["contact", "remove", "Carol"]);
    step(
        &mut log,
        root,
        "alice",
        &["relay", "remove", "ws://127.0.0.1:9/sync"],
    );
    step(&mut log, root, "alice", &["restore", "no-such-backup"]);

    let actual = redact_hex(&log.replace(&root.display().to_string(), "[ROOT]"));
    snapbox::assert_data_eq!(actual, snapbox::file!["transcripts/everyday.txt"]);
}
