//! CLI tests: identity and contacts across separate homes.

mod common;

use common::{json, keyhive};

#[test]
fn init_whoami_and_contact_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    let a = json(&alice, &["init", "--name", "Alice"]);
    json(&bob, &["init", "--name", "Bob"]);
    assert_eq!(json(&alice, &["whoami"])["id"], a["id"]);

    let card = json(&bob, &["contact", "export"])["card"]
        .as_str()
        .unwrap()
        .to_owned();
    let added = json(&alice, &["contact", "add", &card]);
    assert_eq!(added["name"], "Bob");
    assert_eq!(added["replaced"], serde_json::Value::Null);

    // A file path works too, with a chosen name: the same device, so the contact is updated,
    // and says so (it said "Added contact Bobby" while Bob was gone from the list).
    let file = dir.path().join("card.txt");
    std::fs::write(&file, format!("{card}\n")).unwrap();
    let again = json(
        &alice,
        &["contact", "add", file.to_str().unwrap(), "--name", "Bobby"],
    );
    assert_eq!(again["replaced"], "Bob", "{again}");
    let out = common::keyhive(&alice)
        .args(["contact", "add", &card, "--name", "Robert"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.starts_with("Updated contact Bobby, now named Robert"),
        "{said}"
    );
    json(&alice, &["contact", "rename", "Robert", "Bobby"]);
    let list = json(&alice, &["contact", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "Bobby");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(alice.join("device.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn failures_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let out = keyhive(&home).arg("whoami").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: no identity"), "{err}");
    assert_eq!(err.lines().count(), 1);

    keyhive(&home)
        .args(["init", "--name", "X"])
        .assert()
        .success();
    let out = keyhive(&home).args(["init"]).output().unwrap();
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("refusing to overwrite")
    );

    let out = keyhive(&home)
        .args(["contact", "add", "keyhive-card1:AAAA"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("refused"));

    let out = keyhive(&home)
        .args(["contact", "add", "/nonexistent/card"])
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stderr).unwrap().contains("neither"));

    // A device's own card is not a contact of its own.
    let own = json(&home, &["contact", "export"])["card"]
        .as_str()
        .unwrap()
        .to_owned();
    let err = common::fails(&home, &["contact", "add", &own]);
    assert!(err.contains("this device's own card"), "{err}");
    assert_eq!(json(&home, &["contact", "list"]), serde_json::json!([]));

    // A grant that would end at once is refused before anything is signed.
    json(&home, &["doc", "create", "d.txt"]);
    let err = common::fails(
        &home,
        &[
            "grant",
            "d.txt",
            "me",
            "--access",
            "read",
            "--expires",
            "0d",
        ],
    );
    assert!(err.contains("would end at once"), "{err}");
}
