//! `keyhive sync` with several relays, one of them down: the others are synced all the same,
//! each relay's line (and `--json` row) says how it went, and the command exits 1 naming the
//! relay that failed. Before, the first unreachable relay stopped the whole sync: what the
//! working relay would have carried stayed behind, and nothing was printed about it.

mod common;

use common::{RelayProcess, card, json, keyhive};

#[test]
fn one_relay_down_does_not_keep_the_others_from_syncing() {
    let dir = tempfile::tempdir().unwrap();
    let up = RelayProcess::start(&dir.path().join("up"), &[]);
    let down = RelayProcess::start(&dir.path().join("down"), &[]);
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    for (home, name) in [(&alice, "Alice"), (&bob, "Bob")] {
        json(home, &["init", "--name", name]);
        // The relay that will be down first, so that it is tried first.
        json(home, &["relay", "add", &down.url]);
        json(home, &["relay", "add", &up.url]);
    }
    json(&alice, &["contact", "add", &card(&bob)]);
    json(&bob, &["contact", "add", &card(&alice)]);
    let down_url = down.url.clone();
    down.stop();

    json(&alice, &["doc", "create", "notes.txt"]);
    let file = dir.path().join("v1.txt");
    std::fs::write(&file, "written while a relay is down").unwrap();
    json(&alice, &["put", "notes.txt", file.to_str().unwrap()]);
    json(&alice, &["grant", "notes.txt", "Bob", "--access", "read"]);

    let out = keyhive(&alice).args(["--json", "sync"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[0]["error"]
            .as_str()
            .unwrap()
            .contains("cannot reach relay")
    );
    assert!(rows[1].get("error").is_none(), "{rows:?}");
    assert!(rows[1]["pushed"].as_u64().unwrap() > 0, "{rows:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("1 of 2 relays could not be synced: {down_url}")),
        "{stderr}"
    );

    // Bob, with the same relay down, reads what the working relay carried.
    let out = keyhive(&bob).arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("{down_url}: not synced: ")),
        "{text}"
    );
    assert!(text.contains("notes.txt: 1 new change readable"), "{text}");
    let read = keyhive(&bob).args(["get", "notes.txt"]).output().unwrap();
    assert_eq!(read.stdout, b"written while a relay is down");
    up.stop();
}
