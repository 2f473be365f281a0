//! REP-69 through the CLI: `members` and `why` answer from a scoped replay seeded with the
//! name index, and print exactly what a full replay prints (table and JSON, answers and
//! errors) on a home with several people, a person's devices, groups named here and by
//! another member (REC-10), a group inside a group, a folder with documents and a revocation;
//! `status` answers from the index too and names the groups; names the index shows a full
//! session would refuse are refused from it with the full session's message (also for `get`
//! and `log`, REP-67).
//!
//! `KEYHIVE_DEBUG=index` makes the CLI say on standard error what it did with the index.

mod common;

use std::path::{Path, PathBuf};

use common::{IndexTrace as Run, RelayProcess, card, json, traced as run};

/// `status` output with what changes from run to run (a relay's answer time, how long ago
/// the last sync was) replaced by `N`, and runs of spaces by one.
fn mask(text: &str) -> String {
    let mut out = String::new();
    let mut digits = String::new();
    for (i, c) in text.char_indices() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if !digits.is_empty() {
            let rest = &text[i..];
            if rest.starts_with(" ms)") || rest.starts_with(" s ago)") {
                out.push('N');
            } else {
                out.push_str(&digits);
            }
            digits.clear();
        }
        out.push(c);
    }
    out.push_str(&digits);
    // Table columns are as wide as their widest cell: compare without the padding.
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
        .collect()
}

fn index_file(home: &Path) -> PathBuf {
    home.join("names.index")
}

/// REP-69: `args` answers from the index (`indexed` the events expected), then, with the
/// index removed, from a full replay (which writes it again, REP-68): both print the same
/// bytes, on standard output and standard error, with the same exit status.
fn agrees(home: &Path, args: &[&str], indexed: &[&str]) -> Run {
    let fast = run(home, args);
    assert_eq!(fast.events(), indexed, "{args:?}: {}", fast.stderr);
    std::fs::remove_file(index_file(home)).unwrap();
    let full = run(home, args);
    assert_eq!(
        full.events(),
        ["absent", "written"],
        "{args:?}: {}",
        full.stderr
    );
    assert_eq!(mask(&fast.text()), mask(&full.text()), "{args:?}");
    assert_eq!(fast.messages(), full.messages(), "{args:?}");
    assert_eq!(fast.ok, full.ok, "{args:?}");
    full
}

/// Alice's home: contacts Bob and Carol, her phone linked as her second device (a person
/// group, PERSON-1), groups Team (holding Ops) and Ops (Bob writes), Bob's own group "Crew"
/// (named by Bob, read here through a sync, REC-10) holding Alice, a folder Docs with two
/// documents, a document outside it, and Carol's grant on Docs revoked.
fn alice_home(dir: &Path, relay: &RelayProcess) -> (PathBuf, Vec<(String, String)>) {
    let (alice, bob, carol, phone) = (
        dir.join("alice"),
        dir.join("bob"),
        dir.join("carol"),
        dir.join("phone"),
    );
    for (home, name) in [
        (&alice, "Alice"),
        (&bob, "Bob"),
        (&carol, "Carol"),
        (&phone, "phone"),
    ] {
        json(home, &["init", "--name", name]);
        json(home, &["relay", "add", &relay.url]);
    }
    json(&alice, &["contact", "add", &card(&bob), "--name", "Bob"]);
    json(
        &alice,
        &["contact", "add", &card(&carol), "--name", "Carol"],
    );
    json(&bob, &["contact", "add", &card(&alice), "--name", "Alice"]);
    json(&alice, &["device", "add", &card(&phone)]);
    let mut ids = Vec::new();
    for group in ["Team", "Ops"] {
        let id = json(&alice, &["group", "create", group])["id"]
            .as_str()
            .unwrap()
            .to_owned();
        ids.push((group.to_owned(), id));
    }
    json(&alice, &["grant", "Team", "Ops", "--access", "write"]);
    json(&alice, &["grant", "Ops", "Bob", "--access", "write"]);
    let docs = json(&alice, &["folder", "create", "Docs"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ids.push(("Docs".to_owned(), docs));
    json(&alice, &["doc", "create", "plan.txt", "--folder", "Docs"]);
    json(&alice, &["doc", "create", "budget.txt", "--folder", "Docs"]);
    json(&alice, &["doc", "create", "notes.txt"]);
    json(&alice, &["grant", "Docs", "Team", "--access", "read"]);
    json(&alice, &["grant", "notes.txt", "Bob", "--access", "read"]);
    json(&alice, &["grant", "Docs", "Carol", "--access", "write"]);
    json(&alice, &["revoke", "Docs", "Carol"]);
    // Bob's group, named by Bob, with Alice in it.
    json(&bob, &["group", "create", "Crew"]);
    json(&bob, &["grant", "Crew", "Alice", "--access", "read"]);
    json(&bob, &["grant", "Crew", "Alice", "--access", "read"]);
    json(&bob, &["sync"]);
    json(&alice, &["sync"]);
    json(&alice, &["ls"]);
    (alice, ids)
}

#[test]
fn rep69_members_and_why_from_the_index_print_what_a_full_replay_prints() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, ids) = alice_home(dir.path(), &relay);
    let rows = json(&alice, &["ls"]);
    assert!(
        rows.as_array().unwrap().iter().any(|r| r["name"] == "Crew"),
        "Bob's group is listed by its shared name: {rows}"
    );
    let docs = &ids.iter().find(|(n, _)| n == "Docs").unwrap().1;
    let used: &[&str] = &["used"];

    for subject in [
        "Docs",
        "plan.txt",
        "budget.txt",
        "notes.txt",
        "Team",
        "Ops",
        "Crew",
        docs,
        &docs[..12],
    ] {
        let table = agrees(&alice, &["members", subject], used);
        assert!(table.ok, "members {subject}: {}", table.stderr);
        agrees(&alice, &["--json", "members", subject], used);
    }
    // The "via" column names the groups and the folder a member holds its level through.
    let plan = run(&alice, &["members", "plan.txt"]).text();
    assert!(plan.contains("Docs > Team > Ops"), "{plan}");
    assert!(plan.contains("Bob"), "{plan}");
    // The folder a document is in holds access to it; it is listed as the folder it is.
    let rows = json(&alice, &["members", "plan.txt"]);
    let kinds: Vec<(&str, &str)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["kind"].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&("Docs", "folder")), "{rows}");
    assert!(kinds.contains(&("Team", "group")), "{rows}");
    assert!(kinds.contains(&("Bob", "device")), "{rows}");
    assert!(
        plan.lines()
            .any(|l| l.trim_start().starts_with("Docs ") && l.contains(" folder ")),
        "{plan}"
    );

    for (agent, subject) in [
        ("Bob", "plan.txt"),
        ("Bob", "notes.txt"),
        ("Carol", "Docs"),
        ("Carol", "plan.txt"),
        ("Ops", "plan.txt"),
        ("Team", "Docs"),
        ("me", "Crew"),
        ("Crew", "Team"),
        ("Bob", "Crew"),
    ] {
        agrees(&alice, &["why", subject, agent], used);
        agrees(
            &alice,
            &["--json", "why", subject, agent, "--access", "write"],
            used,
        );
    }
    let bob = run(&alice, &["why", "plan.txt", "Bob"]).text();
    assert!(bob.starts_with("yes: Bob holds"), "{bob}");
    let carol = run(&alice, &["why", "Docs", "Carol"]).text();
    assert!(carol.starts_with("no: "), "{carol}");

    // A name no subject has (or several have) is refused from the index with the full
    // session's message (a did-you-mean), without a replay.
    let unknown = agrees(&alice, &["members", "Dcos"], used);
    assert!(!unknown.ok);
    assert!(
        unknown.stderr.contains("did you mean \"Docs\""),
        "{}",
        unknown.stderr
    );
    agrees(&alice, &["--json", "members", "Dcos"], used);
    agrees(&alice, &["why", "Docs", "Bobby"], used);
    agrees(&alice, &["--json", "why", "Docs", "Bobby"], used);
    agrees(&alice, &["why", "Dcos", "Bob"], used);
    // A contact's full id resolves from the contacts; a full id that is no contact's (a
    // group's, this device's, an unknown key) is answered by the scoped replica opened for
    // that key too (its directory holds the key's stored cards, its checker the subject).
    let bob_id = json(&alice, &["contact", "list"])
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Bob")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    agrees(&alice, &["why", "plan.txt", &bob_id], used);
    let team = &ids.iter().find(|(n, _)| n == "Team").unwrap().1;
    let by_id = agrees(&alice, &["why", "Docs", team], used);
    assert!(
        by_id.text().starts_with("yes: Team holds read"),
        "{}",
        by_id.text()
    );
    let me = json(&alice, &["whoami"])["id"].as_str().unwrap().to_owned();
    let mine = agrees(&alice, &["why", "Docs", &me], used);
    assert!(mine.text().starts_with("yes: "), "{}", mine.text());
    let stranger = "ab".repeat(32);
    let nobody = agrees(&alice, &["why", "Docs", &stranger], used);
    assert!(!nobody.ok);
    assert!(nobody.stderr.contains("unknown agent"), "{}", nobody.stderr);
    agrees(&alice, &["--json", "why", "Docs", &stranger], used);
    relay.stop();
}

/// REP-67: `get` and `log` of a name the index does not resolve to one document (unknown,
/// close to a known one, hex-like, a group's, shared by two documents, or by a group and a
/// document) are refused from the index, with the full replay's message, exit status and
/// `--json` error, without replaying the store.
#[test]
fn rep67_get_and_log_of_a_name_that_is_not_one_document_answer_from_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, _) = alice_home(dir.path(), &relay);
    // Two documents named alike (in two places), and a document named like a group.
    json(&alice, &["doc", "create", "notes.txt", "--folder", "Docs"]);
    json(&alice, &["doc", "create", "Ops"]);
    json(&alice, &["ls"]);
    let refused: &[&str] = &["used"];
    for name in [
        "plan.tx",
        "PLAN.TXT",
        "nothing-like-it",
        "cafe",
        "Team",
        "Crew",
        "notes.txt",
        "Ops",
    ] {
        for command in ["get", "log"] {
            let table = agrees(&alice, &[command, name], refused);
            assert!(!table.ok, "{command} {name}: {}", table.text());
            let json_run = agrees(&alice, &["--json", command, name], refused);
            assert!(json_run.text().contains("\"error\""), "{}", json_run.text());
        }
    }
    let close = run(&alice, &["get", "plan.tx"]);
    assert!(
        close.stderr.contains("did you mean \"plan.txt\""),
        "{}",
        close.stderr
    );
    let group = run(&alice, &["log", "Team"]);
    assert!(group.stderr.contains("is a group"), "{}", group.stderr);
    let twice = run(&alice, &["get", "notes.txt"]);
    assert!(twice.stderr.contains("ambiguous"), "{}", twice.stderr);
    // A name of one document still reads it through the index.
    let plan = agrees(&alice, &["log", "plan.txt"], refused);
    assert!(plan.ok, "{}", plan.stderr);
    relay.stop();
}

#[test]
fn rep69_status_names_groups_and_answers_from_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, ids) = alice_home(dir.path(), &relay);
    // Relays are probed either way; the rest comes from the index or the replay alike.
    let table = agrees(&alice, &["status"], &["used"]);
    let groups = table
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("groups:"))
        .unwrap_or_else(|| panic!("no groups line: {}", table.text()))
        .trim()
        .to_owned();
    assert!(groups.contains("Crew (read)"), "{groups}");
    assert!(groups.contains("Ops (admin)"), "{groups}");
    assert!(groups.contains("Team (admin)"), "{groups}");
    let status: serde_json::Value =
        serde_json::from_str(&run(&alice, &["--json", "status"]).text()).unwrap();
    let named = status["group_names"].as_array().unwrap();
    assert_eq!(status["groups"].as_u64(), Some(named.len() as u64));
    let team = &ids.iter().find(|(n, _)| n == "Team").unwrap().1;
    assert!(
        named
            .iter()
            .any(|g| g["id"] == team.as_str() && g["name"] == "Team"),
        "{status}"
    );
    // The item count from the index is the store's.
    let full = {
        std::fs::remove_file(index_file(&alice)).unwrap();
        run(&alice, &["--json", "status"])
    };
    let full: serde_json::Value = serde_json::from_str(&full.text()).unwrap();
    assert_eq!(status["items"], full["items"]);
    assert_eq!(status["group_names"], full["group_names"]);
    relay.stop();
}
