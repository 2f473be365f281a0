//! Issue 17 acceptance (`specs/invitations.md`): invitations through the `keyhive` binary and a
//! real relay process. A new user on a fresh device joins a shared folder from an invite code
//! alone and reads a document in it once the inviter has synced; a redemption observed and
//! re-signed by another device, an expired, a used-up and a revoked invitation are refused
//! with the rule named, on the invitee's side and on the inviter's.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{RelayProcess, fails, json, keyhive};
use keyhive_core::capability::{Action, AnyVerified, AuthBody, build_redemption};
use keyhive_core::identity::Device;
use keyhive_core::signed::{Op, Verified};
use keyhive_sync::client::Client;
use keyhive_sync::invite_code::InviteCode;
use keyhive_sync::protocol::PushOutcome;
use keyhive_sync::replica::op_item;
use keyhive_sync::{AllowAll, MemoryStore};

/// A fresh home; with `relay`, the relay added.
fn person(dir: &Path, name: &str, relay: Option<&RelayProcess>) -> PathBuf {
    let home = dir.join(name);
    json(&home, &["init", "--name", name]);
    if let Some(relay) = relay {
        json(&home, &["relay", "add", &relay.url]);
    }
    home
}

fn invite(home: &Path, subject: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["invite", subject, "--access", "read"];
    args.extend_from_slice(extra);
    let out = json(home, &args);
    assert_eq!(out["synced"], true, "{out}");
    (
        out["code"].as_str().unwrap().to_owned(),
        out["invitation"].as_str().unwrap().to_owned(),
    )
}

fn get(home: &Path, doc: &str) -> Option<String> {
    let out = keyhive(home).args(["get", doc]).output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap())
}

/// Alice's home with a folder `Projects` holding `notes.txt`; returns (home, notes id).
fn alice_with_folder(dir: &Path, relay: &RelayProcess) -> (PathBuf, String) {
    let alice = person(dir, "Alice", Some(relay));
    json(&alice, &["folder", "create", "Projects"]);
    let doc = json(
        &alice,
        &["doc", "create", "notes.txt", "--folder", "Projects"],
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = dir.join("notes.in");
    std::fs::write(&file, "hello from alice").unwrap();
    json(&alice, &["put", "notes.txt", file.to_str().unwrap()]);
    json(&alice, &["sync"]);
    (alice, doc)
}

#[test]
fn a_new_user_joins_a_shared_folder_from_the_code_alone_and_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, doc) = alice_with_folder(dir.path(), &relay);
    let (code, invitation) = invite(&alice, "Projects", &["--expires", "7d", "--uses", "1"]);
    assert!(code.starts_with("khi1.") && !code.contains(char::is_whitespace));

    // Bob has no relay configured and no contact: the code is all he holds.
    let bob = person(dir.path(), "Bob", None);
    let joined = json(&bob, &["join", &code]);
    assert_eq!(joined["access"], "read", "{joined}");
    // He holds read but is not seated yet: nothing is readable until a member syncs.
    assert!(get(&bob, &doc).is_none());
    // Unreadable, the folder and its document are listed without name and of unknown kind
    // (before, the folder was listed as a document).
    let kinds = |home: &Path| -> Vec<(String, String)> {
        json(home, &["ls"])
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["kind"].as_str().unwrap().into(),
                    r["name"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    assert_eq!(
        kinds(&bob),
        [
            ("unknown".into(), "-".into()),
            ("unknown".into(), "-".into())
        ]
    );
    let table = keyhive(&bob).arg("ls").output().unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.contains("2 without a readable name"), "{table}");
    // A name asked for before then is not just "unknown": the device says why it may be.
    let early = keyhive(&bob).args(["get", "notes.txt"]).output().unwrap();
    let early = String::from_utf8_lossy(&early.stderr);
    assert!(
        early.contains("unknown name \"notes.txt\"")
            && early.contains("2 document(s) here have no readable name yet"),
        "{early}"
    );

    // Alice syncs: she learns the redemption and Bob's card, and seats him (REP-3, INV-10).
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    assert_eq!(get(&bob, &doc).as_deref(), Some("hello from alice"));
    assert_eq!(
        get(&bob, "notes.txt").as_deref(),
        Some("hello from alice"),
        "names resolve once the folder is readable"
    );
    let mut listed = kinds(&bob);
    listed.sort();
    assert_eq!(
        listed,
        [
            ("document".into(), "notes.txt".into()),
            ("folder".into(), "Projects".into())
        ]
    );

    // Bob is no contact of Alice's: she sees his id with the name his card claims, marked so.
    let members = json(&alice, &["members", "Projects"]).to_string();
    assert!(members.contains(" (card: Bob)"), "{members}");

    // The inviter sees the use; a second join with the spent code is refused by name.
    let listed = json(&alice, &["invites"]);
    let row = &listed["invitations"][0];
    assert_eq!(row["id"], invitation.as_str());
    assert_eq!(row["status"], "used up", "{listed}");
    let carol = person(dir.path(), "Carol", None);
    let err = fails(&carol, &["join", &code]);
    assert!(err.contains("INV-6"), "{err}");

    // Alice takes Bob out by the short id `members` prints; the name his own card claims is
    // not taken as him, but the refusal names the id it belongs to.
    let bob_id = json(&bob, &["whoami"])["id"].as_str().unwrap().to_owned();
    let err = fails(&alice, &["revoke", "Projects", "Bob"]);
    assert!(
        err.contains("claims that name") && err.contains(&bob_id[..12]),
        "{err}"
    );
    json(&alice, &["revoke", "Projects", &bob_id[..12]]);
    let members = json(&alice, &["members", "Projects"]).to_string();
    assert!(!members.contains(&bob_id), "{members}");
    relay.stop();
}

#[test]
fn expired_and_revoked_invitations_are_refused_with_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, _) = alice_with_folder(dir.path(), &relay);

    // Expired: redeemed after the expiry is refused by the relay, statically (INV-5).
    let (short_lived, _) = invite(&alice, "Projects", &["--expires", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(2_200));
    let dave = person(dir.path(), "Dave", None);
    let err = fails(&dave, &["join", &short_lived]);
    assert!(err.contains("INV-5"), "{err}");
    // The inviter's next `invites` revokes its expired invitation (the causal end).
    let listed = json(&alice, &["invites"]);
    assert_eq!(
        listed["revoked_expired"].as_array().unwrap().len(),
        1,
        "{listed}"
    );

    // Revoked: a redemption made after the revocation is excluded (CAP-11) on the invitee's
    // replica as on the relay's; the invitee is told the invitation was revoked.
    let (code, invitation) = invite(&alice, "Projects", &["--uses", "3"]);
    json(&alice, &["invites", "--revoke", &invitation[..10]]);
    json(&alice, &["sync"]);
    let erin = person(dir.path(), "Erin", None);
    let err = fails(&erin, &["join", &code]);
    assert!(err.contains("revoked") && err.contains("CAP-11"), "{err}");
    let listed = json(&alice, &["invites"]);
    let row = listed["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == invitation.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["status"], "revoked", "{listed}");
    relay.stop();
}

/// An invitation made by a writer who is then removed grants nothing any more (a redemption
/// delegates through its issuer's grant, CAP-13): `invites` says `issuer removed`, where it
/// said `outstanding`, and a device joining with the code is refused.
#[test]
fn an_invitation_whose_issuer_was_removed_is_listed_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, _) = alice_with_folder(dir.path(), &relay);
    let bob = person(dir.path(), "Bob", Some(&relay));
    let card = |h: &Path| {
        json(h, &["contact", "export"])["card"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    json(&alice, &["contact", "add", &card(&bob)]);
    json(&alice, &["grant", "Projects", "Bob", "--access", "write"]);
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    let (code, invitation) = invite(&bob, "Projects", &["--uses", "2"]);
    json(&alice, &["sync"]);
    let status = |home: &Path| {
        let listed = json(home, &["invites"]);
        listed["invitations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == invitation.as_str())
            .map(|r| r["status"].clone())
            .unwrap_or_else(|| panic!("{listed}"))
    };
    assert_eq!(status(&alice), "outstanding");

    json(&alice, &["revoke", "Projects", "Bob"]);
    json(&alice, &["sync"]);
    assert_eq!(status(&alice), "issuer removed");
    let dave = person(dir.path(), "Dave", None);
    let err = fails(&dave, &["join", &code]);
    assert!(err.contains("refused"), "{err}");
    relay.stop();
}

#[test]
fn an_observed_redemption_cannot_be_reused_by_another_device() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let (alice, _) = alice_with_folder(dir.path(), &relay);
    let (code, _) = invite(&alice, "Projects", &["--uses", "5"]);
    let code = InviteCode::parse(&code).unwrap();

    // Bob's redemption, as an observer of the relay sees it; Eve copies its proof of secret
    // into a redemption of her own, and also re-sends Bob's op as it is.
    let bob = Device::generate(Some("bob".into()));
    let eve = Device::generate(Some("eve".into()));
    let bobs = build_redemption(&bob, &code.subject, &code.invitation, &code.secret, 1).unwrap();
    let Action::Redeem {
        proof_of_secret, ..
    } = bobs.body.action
    else {
        unreachable!("a redemption");
    };
    let body = AuthBody {
        subject: code.subject,
        action: Action::Redeem {
            invitation: code.invitation,
            redeemed_at: 1,
            proof_of_secret,
        },
        content_heads: Vec::new(),
    };
    let stolen = Verified::sign(
        Op::new(eve.id().0, vec![code.invitation], body),
        eve.signing_key(),
    )
    .unwrap();
    let items = vec![
        op_item(&AnyVerified::Auth(bobs)).unwrap(),
        op_item(&AnyVerified::Auth(stolen)).unwrap(),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcomes = rt.block_on(async {
        let client = Client::new(
            eve.signing_key().clone(),
            Arc::new(MemoryStore::new()),
            Arc::new(AllowAll),
        );
        let session = client.connect(&relay.url).await.unwrap();
        let first = session.push(&items).await.unwrap();
        // Re-sending the same redemption is idempotent.
        let again = session.push(&items[..1]).await.unwrap();
        (first, again)
    });
    assert_eq!(outcomes.0[0], PushOutcome::Stored);
    match &outcomes.0[1] {
        PushOutcome::Refused(why) => assert!(why.contains("INV-4"), "{why}"),
        other => panic!("the stolen proof was not refused: {other:?}"),
    }
    assert_eq!(outcomes.1[0], PushOutcome::Duplicate);

    // Every replica judges it the same way: Alice, after a sync, counts only Bob's use.
    json(&alice, &["sync"]);
    let listed = json(&alice, &["invites"]);
    let used: Vec<String> = listed["invitations"][0]["redeemed_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(used, vec![bob.id().to_string()], "{listed}");
    relay.stop();
}

#[test]
fn a_grant_that_ends_is_revoked_by_the_first_sync_after_its_end() {
    grant_that_ends(true);
}

/// INV-11: an admin's write after the end revokes the ended grant first, so the write is
/// sealed without the grantee even when nobody synced since the end.
#[test]
fn a_grant_that_ends_is_revoked_by_the_first_write_after_its_end() {
    grant_that_ends(false);
}

/// Alice grants Bob `read` for one second; after the end, her first sync (`by_sync`) or her
/// first write revokes the grant, and Bob cannot read what she writes next.
fn grant_that_ends(by_sync: bool) {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let alice = person(dir.path(), "Alice", Some(&relay));
    let bob = person(dir.path(), "Bob", Some(&relay));
    let card = |home: &Path| {
        json(home, &["contact", "export"])["card"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    json(&alice, &["contact", "add", &card(&bob)]);
    json(&bob, &["contact", "add", &card(&alice)]);
    let bob_id = json(&bob, &["whoami"])["id"].as_str().unwrap().to_owned();
    let doc = json(&alice, &["doc", "create", "memo.txt"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let write = |text: &str| {
        let file = dir.path().join(format!("{text}.in"));
        std::fs::write(&file, text).unwrap();
        json(&alice, &["put", &doc, file.to_str().unwrap()]);
    };
    write("v1");
    let granted = json(
        &alice,
        &["grant", &doc, "Bob", "--access", "read", "--expires", "1s"],
    );
    assert!(granted["ends"].as_u64().is_some(), "{granted}");
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    assert_eq!(get(&bob, &doc).as_deref(), Some("v1"));

    std::thread::sleep(std::time::Duration::from_millis(2_200));
    // Alice's first sync (or write) after the end revokes the grant; the write re-keys (REP-3).
    if by_sync {
        let synced = keyhive(&alice).arg("sync").output().unwrap();
        assert!(synced.status.success(), "{synced:?}");
        let text = String::from_utf8(synced.stdout).unwrap();
        assert!(
            text.starts_with("Revoked 1 grant(s) whose time ran out and 0 expired invitation(s)"),
            "{text}"
        );
        let members = json(&alice, &["members", &doc]).to_string();
        assert!(!members.contains(&bob_id), "{members}");
    }
    write("v2");
    let members = json(&alice, &["members", &doc]).to_string();
    assert!(!members.contains(&bob_id), "{members}");
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    assert_ne!(get(&bob, &doc).as_deref(), Some("v2"));
    relay.stop();
}

/// INV-12: Carol, a plain writer, cannot revoke Bob's ended grant. Her write after the end is
/// refused with the rule named (it would reach Bob), as is a rename; once Alice (the admin)
/// has synced, which revokes the grant and re-keys, Carol writes and Bob cannot read it.
#[test]
fn inv12_a_writer_is_refused_while_an_ended_grant_still_reaches_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), &[]);
    let alice = person(dir.path(), "Alice", Some(&relay));
    let bob = person(dir.path(), "Bob", Some(&relay));
    let carol = person(dir.path(), "Carol", Some(&relay));
    let card = |home: &Path| {
        json(home, &["contact", "export"])["card"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for (home, other) in [
        (&alice, &bob),
        (&alice, &carol),
        (&bob, &alice),
        (&carol, &alice),
    ] {
        json(home, &["contact", "add", &card(other)]);
    }
    let doc = json(&alice, &["doc", "create", "memo.txt"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let put = |home: &Path, text: &str| {
        let file = dir.path().join(format!("{text}.in"));
        std::fs::write(&file, text).unwrap();
        keyhive(home)
            .args(["put", &doc, file.to_str().unwrap()])
            .output()
            .unwrap()
    };
    assert!(put(&alice, "v1").status.success());
    json(&alice, &["grant", &doc, "Carol", "--access", "write"]);
    json(
        &alice,
        &["grant", &doc, "Bob", "--access", "read", "--expires", "1s"],
    );
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    json(&carol, &["sync"]);
    assert_eq!(get(&bob, &doc).as_deref(), Some("v1"));

    std::thread::sleep(std::time::Duration::from_millis(2_200));
    let refused = put(&carol, "carol-early");
    assert!(!refused.status.success(), "{refused:?}");
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("INV-12"), "{message}");
    let renamed = fails(&carol, &["doc", "rename", &doc, "secret-plans.txt"]);
    assert!(renamed.contains("INV-12"), "{renamed}");

    // The admin's sync revokes the ended grant; Carol learns it and may write again.
    json(&alice, &["sync"]);
    json(&carol, &["sync"]);
    assert!(put(&carol, "carol-after").status.success());
    json(&carol, &["sync"]);
    json(&bob, &["sync"]);
    json(&alice, &["sync"]);
    assert_eq!(get(&alice, &doc).as_deref(), Some("carol-after"));
    assert_ne!(get(&bob, &doc).as_deref(), Some("carol-after"));
    assert_ne!(get(&bob, &doc).as_deref(), Some("carol-early"));
    relay.stop();
}
