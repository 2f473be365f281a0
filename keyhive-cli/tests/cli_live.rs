//! Issue 12 #1 acceptance (`docs/cli-live.md` LIVE-1..LIVE-8): `keyhive sync --watch` with a
//! real relay process. Bob's watcher prints Alice's `put` as it arrives (latency measured and
//! printed), Alice's own watcher pushes it without a manual `sync`, other commands run on a
//! watched home meanwhile, and SIGINT stops both watchers with status 0.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{RelayProcess, json, keyhive};
use serde_json::Value;

/// A fresh home with the relay added; returns the home and its contact card line.
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

/// A running `keyhive --json sync --watch`, its stdout lines received with their arrival time.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<(Instant, Value)>,
}

impl Watcher {
    /// Starts the watcher on `home` and waits for its `watching` line (LIVE-1).
    fn start(home: &Path) -> Watcher {
        let watcher = Watcher::spawn(home, &[]);
        watcher.wait_for("watching", |_| true);
        watcher
    }

    /// Starts `keyhive --json sync --watch EXTRA...` on `home` without waiting.
    fn spawn(home: &Path, extra: &[&str]) -> Watcher {
        let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("keyhive"))
            .arg("--home")
            .arg(home)
            .args(["--json", "sync", "--watch"])
            .args(extra)
            .env_remove("KEYHIVE_HOME")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
                if tx.send((Instant::now(), value)).is_err() {
                    return;
                }
            }
        });
        Watcher { child, lines }
    }

    /// Waits (at most 30 s) for an `event` line satisfying `pred`; returns when it arrived.
    fn wait_for(&self, event: &str, pred: impl Fn(&Value) -> bool) -> (Instant, Value) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, value) = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {event:?} line from the watcher"));
            if value["event"] == event && pred(&value) {
                return (at, value);
            }
        }
    }

    /// LIVE-6: SIGINT, then the exit status, after checking the `stopped` line.
    fn interrupt(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            StdCommand::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.wait_for("stopped", |_| true);
        self.child.wait().unwrap()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn put(home: &Path, dir: &Path, doc: &str, text: &str) -> String {
    let file = dir.join(format!("{}.in", text.replace(' ', "_")));
    std::fs::write(&file, text).unwrap();
    json(home, &["put", doc, file.to_str().unwrap()])["change"]
        .as_str()
        .unwrap()
        .to_owned()
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

#[test]
fn a_put_reaches_a_watcher_within_a_second_while_other_commands_run() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, alice_card) = person(dir.path(), "Alice", &relay);
    let (bob, bob_card) = person(dir.path(), "Bob", &relay);
    json(&alice, &["contact", "add", &bob_card]);
    json(&bob, &["contact", "add", &alice_card]);
    json(&alice, &["doc", "create", "notes.txt"]);
    json(&alice, &["grant", "notes.txt", "Bob", "--access", "read"]);
    put(&alice, dir.path(), "notes.txt", "v0");
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    assert_eq!(get(&bob, "notes.txt"), "v0");

    let bob_watch = Watcher::start(&bob);
    let alice_watch = Watcher::start(&alice);
    // LIVE-2: one watcher per home.
    let second = keyhive(&bob).args(["sync", "--watch"]).output().unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already runs"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    // LIVE-3, LIVE-4: Alice's `put` borrows the store from her watcher, which pushes the
    // change when the put exits; Bob's watcher prints it as it arrives (LIVE-5).
    let mut after_put = Vec::new();
    for round in 1..=3 {
        let text = format!("version {round}");
        let started = Instant::now();
        let change = put(&alice, dir.path(), "notes.txt", &text);
        let put_done = Instant::now();
        let (seen, line) = bob_watch.wait_for("readable", |v| v["change"] == change.as_str());
        assert_eq!(line["name"], "notes.txt", "{line}");
        assert_eq!(line["author"], "Alice", "{line}");
        assert_eq!(line["valid"], true, "{line}");
        let latency = seen - put_done;
        println!(
            "put {round}: on Bob's watcher {:.0} ms after `put` exited ({:.0} ms after it started)",
            latency.as_secs_f64() * 1e3,
            (seen - started).as_secs_f64() * 1e3
        );
        after_put.push(latency);
        // While Bob's watcher runs, commands on his home work (they borrow its store), and
        // what the watcher printed is what they read (LIVE-8).
        assert_eq!(get(&bob, "notes.txt"), text);
    }
    // Alice never ran `sync`: her watcher pushed each put.
    alice_watch.wait_for("synced", |v| v["pushed"].as_u64() > Some(0));
    after_put.sort();
    let median = after_put[1];
    println!(
        "median put-to-watcher latency: {:.0} ms",
        median.as_secs_f64() * 1e3
    );
    assert!(
        median < Duration::from_secs(1),
        "median latency {median:?} (all: {after_put:?})"
    );

    // Other commands run on a watched home too.
    let listed = json(&bob, &["ls"]);
    assert!(listed.to_string().contains("notes.txt"), "{listed}");

    // LIVE-4: a relay added while the watcher runs is linked at once.
    let second = RelayProcess::start(&dir.path().join("relay2"), &[]);
    json(&alice, &["relay", "add", &second.url]);
    alice_watch.wait_for("connected", |v| v["relay"] == second.url.as_str());

    // `status` on a watched home: the watcher, the relay answering, the last sync (LIVE-7)
    // and nothing pending, since the watcher pushed every put.
    let status = json(&alice, &["status"]);
    assert_eq!(status["watcher"], true, "{status}");
    assert_eq!(status["relays"][0]["reachable"], true, "{status}");
    assert_eq!(status["relays"][1]["reachable"], true, "{status}");
    assert!(status["last_sync"].as_u64().is_some(), "{status}");
    assert_eq!(status["pending_items"], 0, "{status}");
    assert_eq!(status["documents"], 1, "{status}");

    // LIVE-6: SIGINT stops cleanly and removes the socket.
    assert!(bob_watch.interrupt().success());
    assert!(alice_watch.interrupt().success());
    assert!(!bob.join("watch.sock").exists());
    assert!(!alice.join("watch.sock").exists());
    // The store was closed: a command opens it without a watcher.
    assert_eq!(get(&bob, "notes.txt"), "version 3");
    relay.stop();
    second.stop();

    // A relay that is down is reported, within the probe's timeout, not an error.
    let started = Instant::now();
    let status = json(&bob, &["status"]);
    assert_eq!(status["watcher"], false, "{status}");
    assert_eq!(status["relays"][0]["reachable"], false, "{status}");
    assert!(status["relays"][0]["error"].is_string(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_silent_relay_delays_neither_other_commands_nor_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("Carol");
    json(&home, &["init", "--name", "Carol"]);
    // Accepts TCP connections and never answers the WebSocket upgrade.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/sync", silent.local_addr().unwrap());
    let watcher = Watcher::spawn(&home, &["--relay", &url]);
    std::thread::sleep(Duration::from_millis(500));
    // A command does not wait for the stuck connection: the watcher lends the store at once
    // (LIVE-3) and is still connecting when it ends.
    let started = Instant::now();
    json(&home, &["ls"]);
    let took = started.elapsed();
    println!(
        "`ls` on a home whose watcher waits for a silent relay: {:.0} ms",
        took.as_secs_f64() * 1e3
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    let started = Instant::now();
    assert!(watcher.interrupt().success());
    let took = started.elapsed();
    println!("stopped {:.0} ms after SIGINT", took.as_secs_f64() * 1e3);
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(silent);
}

/// LIVE-5, REC-10: a group renamed by its admin reaches a member's watcher as a rename of the
/// group ("group Team renamed to Crew by Alice"), not as a change of the profile document.
#[test]
fn a_group_rename_is_printed_as_a_rename_by_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, alice_card) = person(dir.path(), "alice", &relay);
    let (bob, bob_card) = person(dir.path(), "bob", &relay);
    json(&alice, &["contact", "add", &bob_card, "--name", "Bob"]);
    json(&bob, &["contact", "add", &alice_card, "--name", "Alice"]);
    let team = json(&alice, &["group", "create", "Team"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    json(&alice, &["grant", "Team", "Bob", "--access", "write"]);
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);

    let bob_watch = Watcher::start(&bob);
    json(&alice, &["group", "rename", "Team", "Crew"]);
    json(&alice, &["sync"]);
    let (_, line) = bob_watch.wait_for("group_renamed", |v| v["group"] == team.as_str());
    assert_eq!(line["old_name"], "Team", "{line}");
    assert_eq!(line["name"], "Crew", "{line}");
    assert_eq!(line["author"], "Alice", "{line}");
    assert!(bob_watch.interrupt().success());

    // Without `--json`, the line says it in words.
    let mut human = StdCommand::new(assert_cmd::cargo::cargo_bin("keyhive"))
        .arg("--home")
        .arg(&bob)
        .args(["sync", "--watch"])
        .env_remove("KEYHIVE_HOME")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = human.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = |what: &str| loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no line with {what:?} from the watcher"));
        if line.contains(what) {
            return line;
        }
    };
    next("watching");
    json(&alice, &["group", "rename", "Crew", "Squad"]);
    json(&alice, &["sync"]);
    let line = next("renamed");
    assert!(
        line.ends_with("group Crew renamed to Squad by Alice"),
        "{line}"
    );
    let _ = human.kill();
    let _ = human.wait();

    relay.stop();
}

/// LIVE-5, REC-10: when a group has several profile documents, the watcher names the group
/// as the naming rules do (the profile document with the smallest id and a counting record
/// names it), not after the document that changed. Bob, an admin of the group who cannot
/// write its profile document (the group holds only `read` on it), renames it: his record goes
/// to a new profile document, which names the group only if its id is smaller. Carol's watcher says
/// "renamed" in that case and "keeps its name" otherwise, as `ls` then shows.
#[test]
fn a_rename_in_a_second_profile_document_is_reported_by_the_naming_rules() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, alice_card) = person(dir.path(), "alice", &relay);
    let (bob, bob_card) = person(dir.path(), "bob", &relay);
    let (carol, carol_card) = person(dir.path(), "carol", &relay);
    json(&alice, &["contact", "add", &bob_card, "--name", "Bob"]);
    json(&alice, &["contact", "add", &carol_card, "--name", "Carol"]);
    json(&bob, &["contact", "add", &alice_card, "--name", "Alice"]);
    json(&bob, &["contact", "add", &carol_card, "--name", "Carol"]);
    json(&carol, &["contact", "add", &alice_card, "--name", "Alice"]);
    json(&carol, &["contact", "add", &bob_card, "--name", "Bob"]);
    let team = json(&alice, &["group", "create", "Team"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = json(&alice, &["group", "rename", "Team", "Crew"])["profile"]
        .as_str()
        .unwrap()
        .to_owned();
    json(&alice, &["grant", "Crew", "Bob", "--access", "admin"]);
    json(&alice, &["grant", "Crew", "Carol", "--access", "read"]);
    // The group reads its profile document but no longer writes it: its admins other than
    // Alice cannot rename it there.
    json(&alice, &["revoke", &first, &team]);
    json(&alice, &["grant", &first, &team, "--access", "read"]);
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    json(&carol, &["sync"]);

    let carol_watch = Watcher::start(&carol);
    let second = json(&bob, &["group", "rename", "Crew", "Squad"])["profile"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(
        second, first,
        "Bob cannot write the group's profile document"
    );
    json(&bob, &["sync"]);
    let shown = if second < first {
        let (_, line) = carol_watch.wait_for("group_renamed", |v| v["group"] == team.as_str());
        assert_eq!(line["old_name"], "Crew", "{line}");
        assert_eq!(line["name"], "Squad", "{line}");
        assert_eq!(line["author"], "Bob", "{line}");
        "Squad"
    } else {
        let (_, line) = carol_watch.wait_for("group_name_kept", |v| v["group"] == team.as_str());
        assert_eq!(line["name"], "Crew", "{line}");
        assert_eq!(line["proposed"], "Squad", "{line}");
        assert_eq!(line["author"], "Bob", "{line}");
        assert_eq!(line["profile"], second.as_str(), "{line}");
        assert_eq!(line["naming_profile"], first.as_str(), "{line}");
        "Crew"
    };
    println!(
        "second profile document sorts {}: the group is shown as {shown}",
        if second < first { "first" } else { "second" }
    );
    assert!(carol_watch.interrupt().success());
    // What the watcher said is what `ls` shows.
    let rows = json(&carol, &["ls"]);
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == team.as_str())
        .unwrap_or_else(|| panic!("{rows}"));
    assert_eq!(row["name"], shown, "{rows}");
    relay.stop();
}

/// LIVE-4a: a watcher whose relay went away tries again when the delay it printed ends (1 s,
/// then 2 s, ...), and reconnects to the restarted relay by itself. Before, it said "retrying
/// in 1 s" and tried again only at its next 15 s round, so two failed attempts were always at
/// least 15 s apart.
#[test]
fn a_restarted_relay_is_reconnected_when_the_watcher_said() {
    let dir = tempfile::tempdir().unwrap();
    let listen = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().to_string()
    };
    let data = dir.path().join("relay");
    let relay = RelayProcess::start_on(&listen, &data, &[]);
    let (alice, _) = person(dir.path(), "alice", &relay);
    json(&alice, &["sync"]);
    let watcher = Watcher::start(&alice);

    relay.stop();
    let (_, dropped) = watcher.wait_for("disconnected", |_| true);
    assert_eq!(dropped["retry_in_s"], 1, "{dropped}");
    let (first_at, first) = watcher.wait_for("unreachable", |_| true);
    let (second_at, _) = watcher.wait_for("unreachable", |_| true);
    let promised = first["retry_in_s"].as_u64().unwrap();
    assert_eq!(promised, 2, "{first}");
    // The second attempt came when promised, not at the next full round 15 s later (the
    // margin only absorbs a slow machine).
    let gap = second_at - first_at;
    assert!(
        gap < Duration::from_secs(promised + 8),
        "promised {promised} s, tried again after {gap:?}"
    );

    let relay = RelayProcess::start_on(&listen, &data, &[]);
    watcher.wait_for("connected", |_| true);
    // Connected again: a write is pushed live, with no manual sync.
    json(&alice, &["doc", "create", "after.txt"]);
    put(&alice, dir.path(), "after.txt", "after the restart");
    watcher.wait_for("synced", |v| v["pushed"].as_u64().unwrap_or(0) > 0);
    drop(watcher);
    relay.stop();
}

/// LIVE-5, REP-50, REP-51: a document's rename and its removal from its folder reach a watcher
/// as `renamed` and `removed`, not as new changes of the document.
#[test]
fn a_document_rename_and_removal_are_printed_as_such_by_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, _) = person(dir.path(), "alice", &relay);
    let (bob, bob_card) = person(dir.path(), "bob", &relay);
    json(&alice, &["contact", "add", &bob_card, "--name", "Bob"]);
    json(&alice, &["folder", "create", "Proj"]);
    json(&alice, &["grant", "Proj", "Bob", "--access", "read"]);
    json(&alice, &["doc", "create", "a.txt", "--folder", "Proj"]);
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);

    let bob_watch = Watcher::start(&bob);
    json(&alice, &["doc", "rename", "a.txt", "docs/a.txt"]);
    json(&alice, &["sync"]);
    let (_, line) = bob_watch.wait_for("renamed", |_| true);
    assert_eq!(line["name"], "docs/a.txt", "{line}");
    json(&alice, &["doc", "rm", "docs/a.txt"]);
    json(&alice, &["sync"]);
    let (_, line) = bob_watch.wait_for("removed", |_| true);
    assert_eq!(line["name"], "docs/a.txt", "{line}");
    assert!(bob_watch.interrupt().success());
    relay.stop();
}

/// A revocation reaching a watcher is printed with the group's shared name (read when the
/// watcher opened the store, since the device can no longer read it afterwards) and marked
/// `revoked`; the group's profile document, whose access follows the group's, is not printed
/// as a subject of its own.
#[test]
fn a_revocation_is_printed_with_the_groups_name_by_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, alice_card) = person(dir.path(), "alice", &relay);
    let (bob, bob_card) = person(dir.path(), "bob", &relay);
    json(&alice, &["contact", "add", &bob_card, "--name", "Bob"]);
    json(&bob, &["contact", "add", &alice_card, "--name", "Alice"]);
    let team = json(&alice, &["group", "create", "Team"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    json(&alice, &["grant", "Team", "Bob", "--access", "read"]);
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);

    let bob_watch = Watcher::start(&bob);
    json(&alice, &["revoke", "Team", "Bob"]);
    json(&alice, &["sync"]);
    let seen = std::cell::RefCell::new(Vec::new());
    let (_, line) = bob_watch.wait_for("access", |v| {
        seen.borrow_mut().push(v["name"].clone());
        v["subject"] == team.as_str()
    });
    assert_eq!(line["name"], "Team", "{line}");
    // No bare id: the profile document is not printed.
    assert_eq!(seen.borrow().len(), 1, "{:?}", seen.borrow());
    assert_eq!(line["after"], "none", "{line}");
    assert!(line["revocation"].is_string(), "{line}");
    assert!(bob_watch.interrupt().success());
    relay.stop();
}

/// PERSON-7 in the background: Bob shares a document with the plain card of Alice's laptop
/// after she linked her phone; the laptop's watcher passes it on to her person group by itself
/// (`synced` with `passed_on`), and her phone reads it at its next sync, nobody running
/// `device join` again.
#[test]
fn a_watcher_passes_on_what_is_shared_with_its_device_to_the_persons_other_devices() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (laptop, plain) = person(dir.path(), "laptop", &relay);
    let (phone, phone_card) = person(dir.path(), "phone", &relay);
    let (bob, _) = person(dir.path(), "bob", &relay);
    let group = json(&laptop, &["device", "add", &phone_card])["group"]
        .as_str()
        .unwrap()
        .to_owned();
    json(&laptop, &["sync"]);
    json(&phone, &["sync"]);
    json(&phone, &["device", "join", &group]);
    json(&phone, &["sync"]);

    let laptop_watch = Watcher::start(&laptop);
    json(&bob, &["contact", "add", &plain, "--name", "Alice"]);
    json(&bob, &["doc", "create", "plan.txt"]);
    put(&bob, dir.path(), "plan.txt", "the plan");
    json(&bob, &["grant", "plan.txt", "Alice", "--access", "read"]);
    json(&bob, &["sync"]);
    let (_, line) = laptop_watch.wait_for("synced", |v| v["passed_on"].as_u64() > Some(0));
    assert_eq!(line["passed_on"], 1, "{line}");
    assert!(laptop_watch.interrupt().success());
    json(&phone, &["sync"]);
    assert_eq!(get(&phone, "plan.txt"), "the plan");
    relay.stop();
}
