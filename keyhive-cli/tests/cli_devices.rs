//! Issue 12 #4 acceptance (`docs/cli-people.md` PERSON-1..PERSON-5): a person with several
//! devices, granted by name. Alice links her phone into her person group; Bob, who only added
//! the line her laptop exported, grants "Alice" and both her devices read his document; a
//! tablet linked later reads it without a new grant; an unlinked phone cannot read what Bob
//! writes next, nor can the tablet it linked.

mod common;

use std::path::{Path, PathBuf};

use common::{RelayProcess, card, device, fails, json, keyhive};

fn put(home: &Path, dir: &Path, doc: &str, text: &str) {
    let file = dir.join(format!("{}.in", text.replace(' ', "_")));
    std::fs::write(&file, text).unwrap();
    json(home, &["put", doc, file.to_str().unwrap()]);
}

fn get(home: &Path, doc: &str) -> Option<String> {
    let out = keyhive(home).args(["get", doc]).output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap())
}

fn sync_all(homes: &[&PathBuf]) {
    for _ in 0..2 {
        for home in homes {
            json(home, &["sync"]);
        }
    }
}

/// Links `new` into the person group of `linked` (PERSON-1); returns the group id.
fn link(linked: &Path, new: &Path) -> String {
    let added = json(linked, &["device", "add", &card(new)]);
    let group = added["group"].as_str().unwrap().to_owned();
    json(linked, &["sync"]);
    json(new, &["sync"]);
    json(new, &["device", "join", &group]);
    group
}

#[test]
fn a_grant_to_a_person_reaches_every_device_current_and_future() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let laptop = device(dir.path(), "laptop", &relay);
    let phone = device(dir.path(), "phone", &relay);
    let bob = device(dir.path(), "Bob", &relay);

    // Before linking, the laptop exports a plain card; afterwards, a person line (PERSON-2).
    assert!(card(&laptop).starts_with("keyhive-card1:"));
    let group = link(&laptop, &phone);
    let line = card(&laptop);
    assert!(
        line.starts_with(&format!("keyhive-person1:{group}:")),
        "{line}"
    );
    // Both devices list the same two devices.
    for home in [&laptop, &phone] {
        let devices = json(home, &["device", "list"]);
        assert_eq!(devices.as_array().unwrap().len(), 2, "{devices}");
    }

    // Bob adds the laptop's line as "Alice" and grants "Alice": the grant names the group.
    let added = json(&bob, &["contact", "add", &line, "--name", "Alice"]);
    assert_eq!(added["person"], group.as_str(), "{added}");
    json(&bob, &["doc", "create", "report.txt"]);
    json(&bob, &["grant", "report.txt", "Alice", "--access", "read"]);
    put(&bob, dir.path(), "report.txt", "bob v1");
    sync_all(&[&bob, &laptop, &phone]);
    assert_eq!(get(&laptop, "report.txt").as_deref(), Some("bob v1"));
    assert_eq!(get(&phone, "report.txt").as_deref(), Some("bob v1"));
    // PERSON-4: Bob sees the group under the person's name, not a bare id.
    let members = json(&bob, &["members", "report.txt"]).to_string();
    assert!(members.contains("\"Alice\""), "{members}");

    // A device linked later reads without a new grant (the group's future members).
    let tablet = device(dir.path(), "tablet", &relay);
    assert_eq!(link(&phone, &tablet), group);
    sync_all(&[&laptop, &phone, &tablet, &bob, &tablet]);
    assert_eq!(get(&tablet, "report.txt").as_deref(), Some("bob v1"));

    // Unlinking the phone also unlinks the tablet it linked (PERSON-5, the revocation
    // cascade): after Bob's next write, neither reads it; the laptop does.
    let removed = json(&laptop, &["device", "remove", "phone"]);
    let unlinked: Vec<&str> = removed["unlinked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device"].as_str().unwrap())
        .collect();
    let tablet_id = json(&tablet, &["whoami"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let phone_id = json(&phone, &["whoami"])["id"].as_str().unwrap().to_owned();
    assert!(unlinked.contains(&phone_id.as_str()), "{removed}");
    assert!(unlinked.contains(&tablet_id.as_str()), "{removed}");
    sync_all(&[&laptop, &bob]);
    put(&bob, dir.path(), "report.txt", "bob v2");
    sync_all(&[&bob, &laptop, &tablet, &phone]);
    assert_eq!(get(&laptop, "report.txt").as_deref(), Some("bob v2"));
    assert_ne!(get(&tablet, "report.txt").as_deref(), Some("bob v2"));
    assert_ne!(get(&phone, "report.txt").as_deref(), Some("bob v2"));
    relay.stop();
}

/// PERSON-6: what a person creates on one device is theirs on every device. Before this rule a
/// linked phone saw only the person group: none of the folders, documents and teams its laptop
/// had created, before or after linking, and the laptop none of the phone's.
#[test]
fn what_a_person_creates_on_one_device_reaches_all_their_devices() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let laptop = device(dir.path(), "laptop", &relay);
    let phone = device(dir.path(), "phone", &relay);

    // Created before the devices are linked, on each side.
    json(&laptop, &["group", "create", "Team"]);
    json(&laptop, &["folder", "create", "Proj"]);
    json(&laptop, &["doc", "create", "plan.txt", "--folder", "Proj"]);
    put(&laptop, dir.path(), "plan.txt", "laptop plan");
    json(&phone, &["doc", "create", "note.txt"]);
    put(&phone, dir.path(), "note.txt", "phone note");

    let added = json(&laptop, &["device", "add", &card(&phone)]);
    // The team, the folder and the document created there (the document through its folder).
    assert_eq!(added["shared"], 2, "{added}");
    let group = added["group"].as_str().unwrap().to_owned();
    json(&laptop, &["sync"]);
    json(&phone, &["sync"]);
    let joined = json(&phone, &["device", "join", &group]);
    assert_eq!(joined["shared"], 1, "{joined}");
    sync_all(&[&phone, &laptop]);
    assert_eq!(get(&phone, "plan.txt").as_deref(), Some("laptop plan"));
    assert_eq!(get(&laptop, "note.txt").as_deref(), Some("phone note"));

    // Created after linking, on either device.
    json(&phone, &["doc", "create", "later.txt", "--folder", "Proj"]);
    json(&phone, &["doc", "create", "loose.txt"]);
    put(&phone, dir.path(), "loose.txt", "loose");
    json(&laptop, &["group", "create", "Friends"]);
    sync_all(&[&phone, &laptop]);
    for home in [&laptop, &phone] {
        let listed = json(home, &["ls"]);
        let names: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["name"].as_str().unwrap_or("-"))
            .collect();
        for name in [
            "Team",
            "Friends",
            "Proj",
            "plan.txt",
            "note.txt",
            "later.txt",
            "loose.txt",
            "me (all my devices)",
        ] {
            assert!(names.contains(&name), "{name} not in {listed}");
        }
        for row in listed.as_array().unwrap() {
            assert_eq!(row["access"], "admin", "{row}");
        }
        let status = json(home, &["status"]).to_string();
        assert!(status.contains("\"me (all my devices)\""), "{status}");
    }
    assert_eq!(get(&laptop, "loose.txt").as_deref(), Some("loose"));
    // PERSON-4: the phone names the laptop by its card, as one of the person's devices (the
    // laptop has the phone as a contact, added by `device add`).
    let log = json(&phone, &["log", "plan.txt"]);
    assert_eq!(log[0]["author"], "laptop (my device)", "{log}");
    let log = json(&laptop, &["log", "loose.txt"]);
    assert_eq!(log[0]["author"], "phone", "{log}");

    // Unlinking the phone takes away what it held through the person: it cannot read what
    // the laptop writes next. What it created itself it keeps: a subject's creator is its root
    // admin, which no revocation removes (CAP-5).
    json(&laptop, &["device", "remove", "phone"]);
    put(&laptop, dir.path(), "plan.txt", "laptop plan v2");
    put(&laptop, dir.path(), "note.txt", "note v2");
    sync_all(&[&laptop, &phone]);
    assert_eq!(get(&laptop, "plan.txt").as_deref(), Some("laptop plan v2"));
    assert_ne!(get(&phone, "plan.txt").as_deref(), Some("laptop plan v2"));
    assert_eq!(get(&phone, "note.txt").as_deref(), Some("note v2"));
    relay.stop();
}

/// PERSON-1: `device join` without a group adopts the one group another device linked this
/// one into; before any link it says what to do, and when the device is also a direct admin
/// of someone's team it refuses to guess and lists both.
#[test]
fn device_join_finds_the_group_it_was_linked_into() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let laptop = device(dir.path(), "laptop", &relay);
    let phone = device(dir.path(), "phone", &relay);
    let bob = device(dir.path(), "Bob", &relay);

    let err = fails(&phone, &["device", "join"]);
    assert!(err.contains("no device has linked this one yet"), "{err}");

    let added = json(&laptop, &["device", "add", &card(&phone)]);
    let group = added["group"].as_str().unwrap().to_owned();
    json(&laptop, &["sync"]);
    json(&phone, &["sync"]);
    // Bob makes the phone a direct admin of his team: now two groups qualify.
    json(&bob, &["contact", "add", &card(&phone), "--name", "phone"]);
    let team = json(&bob, &["group", "create", "Band"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    json(&bob, &["grant", "Band", "phone", "--access", "admin"]);
    json(&bob, &["sync"]);
    json(&phone, &["sync"]);
    let err = fails(&phone, &["device", "join"]);
    assert!(
        err.contains("direct admin of 2 groups") && err.contains(&group) && err.contains(&team),
        "{err}"
    );
    // Once Bob takes it back, the person group is the only one.
    json(&bob, &["revoke", "Band", "phone"]);
    json(&bob, &["sync"]);
    json(&phone, &["sync"]);
    let joined = json(&phone, &["device", "join"]);
    assert_eq!(joined["group"], group.as_str(), "{joined}");
    relay.stop();
}

/// PERSON-7: what others shared with a device before it was linked reaches the person's other
/// devices once they are linked, at the level shared: Bob granted Alice's laptop (he knew only
/// its plain card) read on a document and write in his team; after Alice links her phone, the
/// phone reads the document and, through the team, Bob's folder, but may not write the
/// document. Before, the phone saw none of it. When Bob revokes the laptop, the phone loses
/// the document too (the laptop's grant to the person group fell with it, CAP-13): it does not
/// read what Bob writes next. (It is not told: the relay serves a removed device the ops that
/// removed it only when a delegation named it, REP-30, and the phone's named its group.)
#[test]
fn what_others_shared_with_a_device_reaches_the_devices_linked_later() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let laptop = device(dir.path(), "laptop", &relay);
    let phone = device(dir.path(), "phone", &relay);
    let bob = device(dir.path(), "Bob", &relay);
    json(&bob, &["contact", "add", &card(&laptop), "--name", "Alice"]);
    json(&bob, &["doc", "create", "plan.txt"]);
    put(&bob, dir.path(), "plan.txt", "the plan");
    json(&bob, &["grant", "plan.txt", "Alice", "--access", "read"]);
    json(&bob, &["group", "create", "Team"]);
    json(&bob, &["grant", "Team", "Alice", "--access", "write"]);
    json(&bob, &["folder", "create", "Shared"]);
    json(&bob, &["grant", "Shared", "Team", "--access", "write"]);
    json(&bob, &["doc", "create", "notes.txt", "--folder", "Shared"]);
    put(&bob, dir.path(), "notes.txt", "team notes");
    sync_all(&[&bob, &laptop]);
    assert_eq!(get(&laptop, "plan.txt").as_deref(), Some("the plan"));

    let added = json(&laptop, &["device", "add", &card(&phone)]);
    assert_eq!(added["passed_on"], 2, "the document and the team: {added}");
    let group = added["group"].as_str().unwrap().to_owned();
    json(&laptop, &["sync"]);
    json(&phone, &["sync"]);
    json(&phone, &["device", "join", &group]);
    sync_all(&[&laptop, &phone]);
    assert_eq!(get(&phone, "plan.txt").as_deref(), Some("the plan"));
    assert_eq!(get(&phone, "notes.txt").as_deref(), Some("team notes"));
    // Joining again passes on nothing more, and says the device already belongs.
    let again = json(&phone, &["device", "join", &group]);
    assert_eq!(
        (&again["already"], &again["passed_on"], &again["shared"]),
        (&true.into(), &0.into(), &0.into()),
        "{again}"
    );
    let file = dir.path().join("phone-edit.txt");
    std::fs::write(&file, "the phone's plan").unwrap();
    let err = fails(&phone, &["put", "plan.txt", file.to_str().unwrap()]);
    assert!(err.contains("write"), "read was passed on, not more: {err}");

    json(&bob, &["revoke", "plan.txt", "Alice"]);
    put(&bob, dir.path(), "plan.txt", "the plan, after Alice");
    sync_all(&[&bob, &laptop, &phone]);
    assert_eq!(get(&phone, "plan.txt").as_deref(), Some("the plan"));
    assert_eq!(get(&laptop, "plan.txt").as_deref(), Some("the plan"));
    let members = json(&bob, &["members", "plan.txt"]).to_string();
    assert!(!members.contains(&group), "{members}");
}

/// PERSON-7 at every sync: Bob knew only the plain card of Alice's laptop and shares with it
/// after Alice linked her phone. The laptop's next sync passes the share on to her person group
/// (the document at read, the folder at write, the document inside the folder through it, not
/// again), and her phone reads both at its next sync, writing only where write was shared.
/// Before, the phone saw neither until `device join` was run again on the laptop. A second sync
/// passes on nothing more; when Bob revokes the laptop, the phone's access falls with it.
#[test]
fn a_share_made_after_linking_reaches_the_other_devices_at_the_next_sync() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let laptop = device(dir.path(), "laptop", &relay);
    let phone = device(dir.path(), "phone", &relay);
    let bob = device(dir.path(), "Bob", &relay);
    let plain = card(&laptop);
    link(&laptop, &phone);
    json(&laptop, &["sync"]);

    json(&bob, &["contact", "add", &plain, "--name", "Alice"]);
    json(&bob, &["doc", "create", "plan.txt"]);
    put(&bob, dir.path(), "plan.txt", "the plan");
    json(&bob, &["grant", "plan.txt", "Alice", "--access", "read"]);
    json(&bob, &["folder", "create", "Shared"]);
    json(&bob, &["doc", "create", "notes.txt", "--folder", "Shared"]);
    put(&bob, dir.path(), "notes.txt", "team notes");
    json(&bob, &["grant", "Shared", "Alice", "--access", "write"]);
    json(&bob, &["sync"]);

    let synced = json(&laptop, &["sync"]);
    assert_eq!(get(&laptop, "plan.txt").as_deref(), Some("the plan"));
    json(&phone, &["sync"]);
    assert_eq!(get(&phone, "plan.txt").as_deref(), Some("the plan"));
    assert_eq!(get(&phone, "notes.txt").as_deref(), Some("team notes"));
    assert_eq!(
        synced[0]["passed_on"], 2,
        "the document and the folder, not the document in it: {synced}"
    );
    let again = json(&laptop, &["sync"]);
    assert_eq!(again[0]["passed_on"], 0, "{again}");
    put(&phone, dir.path(), "notes.txt", "notes from the phone");
    let file = dir.path().join("phone-plan.txt");
    std::fs::write(&file, "the phone's plan").unwrap();
    let err = fails(&phone, &["put", "plan.txt", file.to_str().unwrap()]);
    assert!(err.contains("write"), "read was passed on, not more: {err}");
    sync_all(&[&phone, &bob]);
    assert_eq!(
        get(&bob, "notes.txt").as_deref(),
        Some("notes from the phone")
    );

    json(&bob, &["revoke", "plan.txt", "Alice"]);
    put(&bob, dir.path(), "plan.txt", "the plan, after Alice");
    sync_all(&[&bob, &laptop, &phone]);
    assert_eq!(get(&phone, "plan.txt").as_deref(), Some("the plan"));
}
