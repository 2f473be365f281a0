//! Issue 12 item 7: transcripts pin what people see.
//!
//! - `tests/cmd/*.toml` (trycmd): the help text of every command.
//! - `tests/transcripts/everyday.txt` (snapbox): the human output and errors of an everyday
//!   session on two homes, in order: identities, contacts, a shared document, reads, the log,
//!   members and why, a revocation, a group named and renamed, and the errors people hit (unknown names with a
//!   suggestion, a relay URL without its sync path, a malformed card, an unsafe name). Ids,
//!   keys, times and the temporary directory are redacted (`[HEX]`, `[ROOT]`).
//! - `tests/transcripts/errors.txt` (snapbox): the errors of `relay serve` (a port in use, a
//!   bad address, bad flags, a `--data` that is a file, a missing TLS file), `bench` and
//!   `demo` (bad flags), `invite` (no relay, bad level, duration or use count, an unknown
//!   subject, an unreachable relay: a warning) and `join` (not a code, a truncated or
//!   garbled code, an unreachable relay, no identity). Each error is one line; invite codes
//!   and the port taken are redacted too (`[CODE]`, `[PORT]`).
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
    step(&mut log, root, "alice", &["folder", "ls", "Team"]);
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

/// Replaces invite codes (`khi1.…`, `keyhive://invite/…`), which hold random secrets, with
/// `[CODE]`.
fn redact_codes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = ["khi1.", "keyhive://invite/"]
            .iter()
            .filter_map(|p| rest.find(p).map(|i| (i, p.len())))
            .min();
        let Some((at, prefix)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        let body = &rest[at + prefix..];
        let end = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(body.len());
        if end < 20 {
            // A prefix alone (as in a message naming it) or a few characters are shown.
            out.push_str(&rest[at..at + prefix]);
        } else {
            out.push_str("[CODE]");
        }
        rest = &body[end..];
    }
}

#[test]
fn errors_transcript() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::write(root.join("a-file"), "not a directory\n").expect("write");
    let mut log = String::new();
    // `relay serve`: the port is taken (by this test), then bad flags.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let busy = format!("127.0.0.1:{port}");
    let serve = |log: &mut String, extra: &[&str]| {
        let mut args = vec!["relay", "serve", "--data", "relay-data"];
        args.extend_from_slice(extra);
        step(log, root, "relay-home", &args);
    };
    serve(&mut log, &["--listen", &busy]);
    serve(&mut log, &["--listen", "not-an-address"]);
    serve(&mut log, &["--listen", "127.0.0.1:0", "--peer", "abc"]);
    serve(
        &mut log,
        &[
            "--listen",
            "127.0.0.1:0",
            "--sync-with",
            "wss://relay-b.example/sync",
        ],
    );
    serve(
        &mut log,
        &["--listen", "127.0.0.1:0", "--stranger-quota", "5"],
    );
    serve(
        &mut log,
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "cert.pem",
            "--tls-key",
            "key.pem",
        ],
    );
    serve(
        &mut log,
        &["--listen", "127.0.0.1:0", "--tls-cert", "cert.pem"],
    );
    step(
        &mut log,
        root,
        "relay-home",
        &[
            "relay",
            "serve",
            "--data",
            "a-file",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    step(
        &mut log,
        root,
        "relay-home",
        &["relay", "serve", "--listen", "127.0.0.1:0"],
    );
    drop(taken);
    // `bench` and `demo`: flags.
    step(
        &mut log,
        root,
        "bench-home",
        &["bench", "--plot-members", "10"],
    );
    step(
        &mut log,
        root,
        "bench-home",
        &["bench", "--quick", "--fast"],
    );
    step(&mut log, root, "demo-home", &["demo", "extra"]);
    // `invite`: a relay is needed, levels, durations and use counts are checked, and a relay
    // that cannot be reached leaves the invitation to the next `sync` (a warning).
    step(&mut log, root, "alice", &["init", "--name", "Alice"]);
    step(&mut log, root, "alice", &["doc", "create", "notes.txt"]);
    step(
        &mut log,
        root,
        "alice",
        &["invite", "notes.txt", "--access", "read"],
    );
    let down = "ws://127.0.0.1:9/sync";
    for extra in [
        &["--access", "everything"][..],
        &["--access", "read", "--expires", "5x"],
        &["--access", "read", "--uses", "0"],
    ] {
        let mut args = vec!["invite", "notes.txt", "--relay", down];
        args.extend_from_slice(extra);
        step(&mut log, root, "alice", &args);
    }
    step(
        &mut log,
        root,
        "alice",
        &["invite", "note.txt", "--access", "read", "--relay", down],
    );
    step(
        &mut log,
        root,
        "alice",
        &["invite", "notes.txt", "--access", "read", "--relay", down],
    );
    let code = keyhive(&root.join("alice"))
        .args(["invite", "notes.txt", "--access", "read", "--relay", down])
        .output()
        .expect("invite");
    let code = String::from_utf8_lossy(&code.stdout)
        .lines()
        .find(|l| l.starts_with("khi1."))
        .expect("a code")
        .to_owned();
    step(&mut log, root, "alice", &["invites", "--revoke", "ffff"]);
    // `join`: what is not a code, and a code whose relay is down.
    step(&mut log, root, "bob", &["join", &code]);
    step(&mut log, root, "bob", &["init", "--name", "Bob"]);
    step(&mut log, root, "bob", &["join", "not-a-code"]);
    step(&mut log, root, "bob", &["join", "khi1.AAAA"]);
    step(&mut log, root, "bob", &["join", "keyhive://invite/%%%"]);
    step(&mut log, root, "bob", &["join", &code]);
    step(&mut log, root, "bob", &["join"]);

    let text = log
        .replace(&root.display().to_string(), "[ROOT]")
        .replace(&busy, "127.0.0.1:[PORT]");
    let actual = redact_hex(&redact_codes(&text));
    snapbox::assert_data_eq!(actual, snapbox::file!["transcripts/errors.txt"]);
}
