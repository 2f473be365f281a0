//! REP-41..REP-44 through `keyhive sync` and a real relay process: a sync says what it changed
//! for this device, under each relay's line and in `--json` as `news`: access gained, new
//! changes readable, and, for a writer revoked while it wrote offline, that its change no longer
//! counts and that it lost its access, naming the revocation.

mod common;

use std::path::{Path, PathBuf};

use common::{RelayProcess, card, json, keyhive};
use serde_json::Value;

fn put(dir: &Path, home: &Path, text: &str) {
    let file = dir.join(format!("{text}.txt"));
    std::fs::write(&file, text).unwrap();
    json(home, &["put", "notes.txt", file.to_str().unwrap()]);
}

/// The news of the only relay's row with `event` == `kind`.
fn news<'a>(synced: &'a Value, kind: &str) -> Vec<&'a Value> {
    synced[0]["news"]
        .as_array()
        .unwrap_or_else(|| panic!("no news in {synced}"))
        .iter()
        .filter(|n| n["event"] == kind)
        .collect()
}

/// Alice's and Bob's homes with the relay added; Alice has Bob's card.
fn alice_and_bob(dir: &Path, relay: &RelayProcess) -> (PathBuf, PathBuf) {
    let (alice, bob) = (dir.join("alice"), dir.join("bob"));
    for (home, name) in [(&alice, "Alice"), (&bob, "Bob")] {
        json(home, &["init", "--name", name]);
        json(home, &["relay", "add", &relay.url]);
    }
    json(&alice, &["contact", "add", &card(&bob)]);
    (alice, bob)
}

#[test]
fn sync_reports_access_new_changes_and_a_revoked_writers_lost_edit() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, bob) = alice_and_bob(dir.path(), &relay);
    json(&bob, &["contact", "add", &card(&alice)]);
    json(&alice, &["doc", "create", "notes.txt"]);
    put(dir.path(), &alice, "v1");
    json(&alice, &["grant", "notes.txt", "Bob", "--access", "write"]);
    json(&alice, &["sync"]);

    // As a person reads it.
    let text = keyhive(&bob).arg("sync").output().unwrap();
    assert!(text.status.success(), "{text:?}");
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("  notes.txt: this device's access none -> write\n"),
        "{text}"
    );
    assert!(
        text.contains("  notes.txt: 1 new change readable\n"),
        "{text}"
    );
    assert!(
        text.find("access none -> write") < text.find("1 new change readable"),
        "access first: {text}"
    );
    // Nothing new, nothing to say.
    let quiet = json(&bob, &["sync"]);
    assert_eq!(quiet[0]["news"], serde_json::json!([]), "{quiet}");

    // Alice revokes Bob while Bob, offline, writes; for scripts, the revocation is named.
    json(&alice, &["revoke", "notes.txt", "Bob"]);
    json(&alice, &["sync"]);
    put(dir.path(), &bob, "bob-offline");
    let revoked = json(&bob, &["sync"]);
    let validity = news(&revoked, "validity");
    assert_eq!(validity.len(), 1, "{revoked}");
    assert_eq!(validity[0]["content"], true);
    assert_eq!(validity[0]["valid"], false);
    let revocation = validity[0]["revocation"].as_str().unwrap();
    let access = news(&revoked, "access");
    assert_eq!(access.len(), 1, "{revoked}");
    assert_eq!(
        (&access[0]["before"], &access[0]["after"]),
        (&"write".into(), &"none".into())
    );
    assert_eq!(access[0]["revocation"], revocation);
    // The change that no longer counts is Bob's offline one.
    let log = json(&bob, &["log", "notes.txt"]);
    let mine = log
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["author"] == "me")
        .unwrap_or_else(|| panic!("no own change in {log}"));
    assert_eq!(mine["change"], validity[0]["op"], "{log}");
    assert_eq!(mine["validity"], "INVALID");
    assert!(
        mine["reason"].as_str().unwrap().contains(revocation),
        "{mine}"
    );

    // Writing again is refused in words naming the document, not its id.
    let file = dir.path().join("again.txt");
    std::fs::write(&file, "again").unwrap();
    let refused = keyhive(&bob)
        .args(["put", "notes.txt", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8(refused.stderr).unwrap();
    assert!(
        err.contains("cannot write to notes.txt: this device's access was revoked"),
        "{err}"
    );
    // Bob asks about himself by the name he gave his device at `init`.
    let why = json(&bob, &["why", "notes.txt", "Bob"]);
    assert_eq!(why["granted"], false, "{why}");
    assert!(why["revoked"].as_str().unwrap().contains("to me"), "{why}");
}

/// An edit that arrives after its author's concurrent revocation does not count, and the one
/// who revoked is told why as it is: the author held write when writing (CAP-11 `Excluded`), so
/// it is not called "written without the access".
#[test]
fn an_edit_racing_its_authors_revocation_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, bob) = alice_and_bob(dir.path(), &relay);
    json(&bob, &["contact", "add", &card(&alice)]);
    json(&alice, &["doc", "create", "notes.txt"]);
    json(&alice, &["grant", "notes.txt", "Bob", "--access", "write"]);
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);

    // Alice revokes offline while Bob writes and pushes.
    json(&alice, &["revoke", "notes.txt", "Bob"]);
    put(dir.path(), &bob, "bob-racing");
    json(&bob, &["sync"]);

    let text = keyhive(&alice).arg("sync").output().unwrap();
    assert!(text.status.success(), "{text:?}");
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains(
            "  notes.txt: 1 new change readable (not counted: 1 by an author revoked concurrently)\n"
        ),
        "{text}"
    );
    // `log` says the same in its table, with short ids; `--json` keeps the whole refusal.
    let log = keyhive(&alice).args(["log", "notes.txt"]).output().unwrap();
    let log = String::from_utf8(log.stdout).unwrap();
    assert!(
        log.contains("INVALID: its author was revoked concurrently (CAP-11, revocation "),
        "{log}"
    );
    let rows = json(&alice, &["log", "notes.txt"]);
    let invalid = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["validity"] == "INVALID")
        .unwrap_or_else(|| panic!("{rows}"));
    assert!(
        invalid["reason"]
            .as_str()
            .unwrap()
            .starts_with("CAP-11: delegation "),
        "{invalid}"
    );
}

/// SYNC-84a and REC-8 as a person meets them: a member who joins a named team whose folder
/// already has members is told, on its first sync, of its access to the team, the folder and
/// the document and of the document's change; nothing is "rejected here" (the seats of the
/// earlier members arrived before the team's grants), and the team's profile document is not
/// news of its own under a bare id.
#[test]
fn a_new_team_member_is_told_what_it_gained_and_rejects_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let homes: Vec<_> = ["Alice", "Bob", "Carol", "Dave"]
        .iter()
        .map(|name| {
            let home = dir.path().join(name);
            json(&home, &["init", "--name", name]);
            json(&home, &["relay", "add", &relay.url]);
            home
        })
        .collect();
    let (alice, members) = (&homes[0], &homes[1..]);
    for member in members {
        json(alice, &["contact", "add", &card(member)]);
    }
    json(alice, &["group", "create", "Team"]);
    json(alice, &["folder", "create", "Proj"]);
    json(alice, &["grant", "Proj", "Team", "--access", "write"]);
    json(alice, &["doc", "create", "notes.txt", "--folder", "Proj"]);
    put(dir.path(), alice, "v1");
    for (member, name) in members.iter().zip(["Bob", "Carol", "Dave"]) {
        json(alice, &["grant", "Team", name, "--access", "read"]);
        json(alice, &["sync"]);
        let text = keyhive(member).arg("sync").output().unwrap();
        assert!(text.status.success(), "{text:?}");
        let text = String::from_utf8(text.stdout).unwrap();
        assert!(!text.contains("rejected here:"), "{name}: {text}");
        let news_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("  ")).collect();
        for subject in ["Team", "Proj", "notes.txt"] {
            let line = format!("  {subject}: this device's access none -> ");
            assert!(news_lines.iter().any(|l| l.starts_with(&line)), "{text}");
        }
        assert!(
            news_lines.contains(&"  notes.txt: 1 new change readable"),
            "{text}"
        );
        // Three subjects gained, one change: nothing else (no profile document by id).
        assert_eq!(news_lines.len(), 4, "{name}: {text}");
        let again = json(member, &["sync"]);
        assert_eq!(again[0]["rejections"], serde_json::json!([]), "{again}");
        assert_eq!(again[0]["arrived"], 0, "{again}");
    }
    relay.stop();
}

/// REP-50, REP-51 as news: a rename and a removal are said as such, not as new changes of the
/// documents (before, each was "1 new change readable").
#[test]
fn a_rename_and_a_removal_are_news_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, bob) = alice_and_bob(dir.path(), &relay);
    json(&alice, &["folder", "create", "Proj"]);
    json(&alice, &["grant", "Proj", "Bob", "--access", "read"]);
    json(&alice, &["doc", "create", "a.txt", "--folder", "Proj"]);
    json(&alice, &["doc", "create", "b.txt", "--folder", "Proj"]);
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);

    json(&alice, &["doc", "rename", "a.txt", "docs/a.txt"]);
    json(&alice, &["doc", "rm", "b.txt"]);
    json(&alice, &["sync"]);
    let synced = json(&bob, &["sync"]);
    let moved = news(&synced, "moved");
    assert_eq!(moved.len(), 2, "{synced}");
    assert!(
        moved
            .iter()
            .any(|n| n["name"] == "docs/a.txt" && n["how"] == "renamed"),
        "{synced}"
    );
    assert!(
        moved
            .iter()
            .any(|n| n["name"] == "b.txt" && n["how"] == "removed"),
        "{synced}"
    );
    assert!(news(&synced, "changes").is_empty(), "{synced}");
    relay.stop();
}

/// A new member's first sync reports the history it received as it ends up, not the order it
/// was judged in: a former writer's change, excluded for a moment by that writer's later
/// revocation until the change the revoker made on top of it arrived, is not news that it
/// "counts again" (it was never reported as not counting), and it is counted as valid.
#[test]
fn a_first_sync_reports_no_validity_flip_of_what_it_just_received() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, bob) = alice_and_bob(dir.path(), &relay);
    let carol = dir.path().join("carol");
    json(&carol, &["init", "--name", "Carol"]);
    json(&carol, &["relay", "add", &relay.url]);
    json(&alice, &["contact", "add", &card(&carol)]);
    json(&alice, &["folder", "create", "Trip"]);
    json(&alice, &["doc", "create", "notes.txt", "--folder", "Trip"]);
    put(dir.path(), &alice, "v1");
    // Bob joins with an invitation (his access then flows through its redemption).
    let code = json(&alice, &["invite", "Trip", "--access", "write"])["code"]
        .as_str()
        .unwrap()
        .to_owned();
    json(&bob, &["join", &code]);
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    put(dir.path(), &bob, "bob1");
    json(&bob, &["sync"]);
    json(&alice, &["sync"]);
    // Concurrent edits: both heads are held when Alice revokes Bob.
    put(dir.path(), &bob, "bob2");
    put(dir.path(), &alice, "v2");
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    json(&alice, &["sync"]);
    let bob_id = json(&bob, &["whoami"])["id"].as_str().unwrap().to_owned();
    json(&alice, &["revoke", "Trip", &bob_id]);
    put(dir.path(), &alice, "v3");
    // Carol writes offline while Alice revokes her and writes on top of everything else.
    json(&alice, &["grant", "Trip", "Carol", "--access", "write"]);
    json(&alice, &["sync"]);
    json(&carol, &["sync"]);
    put(dir.path(), &carol, "carol1");
    json(&alice, &["revoke", "Trip", "Carol"]);
    put(dir.path(), &alice, "v4");
    // Carol's edit reaches the relay before the revocation does.
    json(&carol, &["sync"]);
    json(&alice, &["sync"]);

    // Dave's first sync.
    let dave = dir.path().join("dave");
    json(&dave, &["init", "--name", "Dave"]);
    json(&dave, &["relay", "add", &relay.url]);
    json(&alice, &["contact", "add", &card(&dave)]);
    json(&alice, &["grant", "Trip", "Dave", "--access", "read"]);
    json(&alice, &["sync"]);
    let synced = json(&dave, &["sync"]);
    assert_eq!(synced[0]["rejected"], 0, "{synced}");
    assert!(news(&synced, "validity").is_empty(), "{synced}");
    let changes = news(&synced, "changes");
    assert_eq!(changes.len(), 1, "{synced}");
    // v1, bob1, bob2, v2, v3, v4 count; Carol's concurrent edit does not.
    assert_eq!(changes[0]["count"], 7, "{synced}");
    assert_eq!(changes[0]["invalid"], 0, "{synced}");
    assert_eq!(changes[0]["revoked"], 1, "{synced}");
    relay.stop();
}

/// SYNC-85a: a device removed from a document, whose next sync learns it with a subject
/// pulled after the document, pushes none of the document back (it owes nothing there).
/// Before, the relay's refusal to reconcile the document made it push everything it held of
/// it (`pushed 11` in `keyhive demo` for the revoked Bob; a large document whole).
#[test]
fn a_removed_device_does_not_push_back_what_it_was_removed_from() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, bob) = alice_and_bob(dir.path(), &relay);
    // The document is shared through a team, so the revocation is the team's op: whatever
    // the subjects' order, Bob may meet the document before he learns he left the team.
    json(&alice, &["group", "create", "Team"]);
    json(&alice, &["grant", "Team", "Bob", "--access", "read"]);
    json(&alice, &["doc", "create", "notes.txt"]);
    json(&alice, &["grant", "notes.txt", "Team", "--access", "read"]);
    for n in 0..5 {
        put(dir.path(), &alice, &format!("v{n}"));
    }
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    json(&alice, &["revoke", "Team", "Bob"]);
    json(&alice, &["sync"]);

    let synced = json(&bob, &["sync"]);
    assert_eq!(synced[0]["pushed"], 0, "{synced}");
    assert!(
        synced[0]["bytes_sent"].as_u64().unwrap() < 2_000,
        "{synced}"
    );
    assert!(
        news(&synced, "access")
            .iter()
            .any(|n| n["name"] == "notes.txt" && n["after"] == "none"),
        "{synced}"
    );
    relay.stop();
}
