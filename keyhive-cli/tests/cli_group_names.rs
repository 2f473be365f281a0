//! Issue 12 #4, group names readable by every member (`specs/content.md` REC-8..REC-10), with a
//! real relay process: Alice's laptop creates "Team"; her phone (an admin of Team through her
//! person group) and Bob (a writer of Team) list it by that name after a sync, and never see
//! its profile document as a document; the phone renames it and every home lists the new name;
//! Bob, not an admin, cannot rename it; a home that is not a member lists nothing.

mod common;

use std::path::{Path, PathBuf};

use common::{RelayProcess, card, device, fails, json};
use serde_json::Value;

fn sync_all(homes: &[&PathBuf]) {
    for _ in 0..2 {
        for home in homes {
            json(home, &["sync"]);
        }
    }
}

/// The `ls` rows of `home`.
fn ls(home: &Path) -> Vec<Value> {
    json(home, &["ls"]).as_array().unwrap().clone()
}

/// The name `ls` on `home` shows for subject `id`.
fn listed_name(home: &Path, id: &str) -> Option<String> {
    ls(home)
        .into_iter()
        .find(|row| row["id"] == id)
        .map(|row| row["name"].as_str().unwrap().to_owned())
}

#[test]
fn rec10_every_member_lists_the_group_by_its_shared_name() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let laptop = device(dir.path(), "laptop", &relay);
    let phone = device(dir.path(), "phone", &relay);
    let bob = device(dir.path(), "Bob", &relay);
    let stranger = device(dir.path(), "stranger", &relay);

    let team = json(&laptop, &["group", "create", "Team"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Alice's phone joins her person group, which administers Team.
    let person = json(&laptop, &["device", "add", &card(&phone)])["group"]
        .as_str()
        .unwrap()
        .to_owned();
    json(&laptop, &["sync"]);
    json(&phone, &["sync"]);
    json(&phone, &["device", "join", &person]);
    json(&laptop, &["grant", "Team", &person, "--access", "admin"]);
    json(&laptop, &["contact", "add", &card(&bob), "--name", "Bob"]);
    json(&laptop, &["grant", "Team", "Bob", "--access", "write"]);
    sync_all(&[&laptop, &phone, &bob, &stranger]);

    for home in [&laptop, &phone, &bob] {
        assert_eq!(
            listed_name(home, &team).as_deref(),
            Some("Team"),
            "{home:?}"
        );
        // The profile document is listed as the group, not as a document of its own.
        let rows = ls(home);
        assert!(
            rows.iter().all(|row| row["kind"] == "group"),
            "{home:?}: {rows:?}"
        );
    }
    // Names resolve by the shared name on another member's home.
    let members = json(&bob, &["members", "Team"]).to_string();
    assert!(
        members.contains("\"Bob\"") || members.contains("\"me\""),
        "{members}"
    );
    assert!(ls(&stranger).is_empty(), "a stranger lists nothing");

    // The phone (an admin) renames Team; every member lists the new name.
    json(&phone, &["group", "rename", "Team", "Crew"]);
    sync_all(&[&phone, &laptop, &bob]);
    for home in [&laptop, &phone, &bob] {
        assert_eq!(
            listed_name(home, &team).as_deref(),
            Some("Crew"),
            "{home:?}"
        );
    }
    // `ls` from the name index and from a full open agree (REP-66).
    json(&bob, &["status"]);
    assert_eq!(listed_name(&bob, &team).as_deref(), Some("Crew"));

    // Bob holds write on Team, not admin: his rename is refused before anything is written.
    let error = fails(&bob, &["group", "rename", "Crew", "Bob's"]);
    assert!(error.contains("not an admin"), "{error}");
    sync_all(&[&bob, &laptop]);
    assert_eq!(listed_name(&laptop, &team).as_deref(), Some("Crew"));
    relay.stop();
}
