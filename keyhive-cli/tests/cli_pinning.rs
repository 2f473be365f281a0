//! Relay identity pinning (specs/sync.md SYNC-34), driven through the `keyhive` binary with real
//! relay processes on loopback: trust on first use for `keyhive sync`, a clear one-line error
//! when the relay id changes, re-pinning with `relay add URL --id`, and `relay serve
//! --sync-with RELAY_ID@URL` refusing a peer that presents another id.

mod common;

use std::process::Command as StdCommand;

use common::{RelayProcess, fails, json};
use serde_json::Value;

/// A valid relay id that no running relay has.
fn other_id() -> String {
    keyhive_core::crypto::signing::SigningKey::generate()
        .public_key()
        .to_string()
}

/// SYNC-34: the first sync pins the relay id; a different relay answering at the same URL is
/// refused with one line naming both ids and how to re-pin; `relay add URL --id` re-pins.
#[test]
fn relay_id_is_pinned_on_first_use_and_a_change_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("alice");
    json(&home, &["init", "--name", "alice"]);
    let first = RelayProcess::start(&dir.path().join("r1"), &[]);
    let url = first.url.clone();
    let added = json(&home, &["relay", "add", &url]);
    assert_eq!(added["id"], Value::Null);

    let synced = json(&home, &["sync"]);
    assert_eq!(synced[0]["relay_id"], first.id.as_str());
    assert_eq!(synced[0]["pinned_now"], true);
    let again = json(&home, &["sync"]);
    assert_eq!(again[0]["pinned_now"], false);

    // Another relay (another key) now answers at the same address.
    let listen = url
        .trim_start_matches("ws://")
        .trim_end_matches("/sync")
        .to_owned();
    let first_id = first.id.clone();
    first.stop();
    let second = RelayProcess::start_on(&listen, &dir.path().join("r2"), &[]);
    assert_eq!(second.url, url);
    assert_ne!(second.id, first_id);
    let err = fails(&home, &["sync"]);
    assert!(err.contains(&first_id) && err.contains(&second.id), "{err}");
    let repin = format!("keyhive relay add {url} --id {}", second.id);
    assert!(err.contains(&repin), "{err}");
    // A sync naming the URL explicitly is refused the same way.
    assert!(fails(&home, &["sync", "--relay", &url]).contains(&second.id));

    let repinned = json(&home, &["relay", "add", &url, "--id", &second.id]);
    assert_eq!(repinned["replaced_id"], first_id.as_str());
    assert_eq!(repinned["id"], second.id.as_str());
    let synced = json(&home, &["sync"]);
    assert_eq!(synced[0]["relay_id"], second.id.as_str());
    assert_eq!(synced[0]["pinned_now"], false);
    second.stop();
}

/// SYNC-34: `relay add URL --id` pins up front, so even the first sync refuses an impostor;
/// a malformed id is refused.
#[test]
fn relay_add_with_id_pins_before_the_first_sync() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("bob");
    json(&home, &["init", "--name", "bob"]);
    let relay = RelayProcess::start(&dir.path().join("r"), &[]);
    let expected = other_id();
    json(&home, &["relay", "add", &relay.url, "--id", &expected]);
    let err = fails(&home, &["sync"]);
    assert!(err.contains(&expected) && err.contains(&relay.id), "{err}");
    assert!(fails(&home, &["relay", "add", &relay.url, "--id", "nothex"]).contains("relay id"));
    relay.stop();
}

/// `relay serve --sync-with` needs the peer relay's id: without it the relay refuses to start;
/// with another relay's id, its link refuses the peer and logs both ids.
#[test]
fn sync_with_requires_and_checks_the_peer_relay_id() {
    let dir = tempfile::tempdir().unwrap();
    let out = StdCommand::new(assert_cmd::cargo::cargo_bin("keyhive"))
        .args(["relay", "serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("no-id"))
        .args(["--sync-with", "ws://127.0.0.1:9/sync"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RELAY_ID@URL"), "{err}");

    let peer = RelayProcess::start(&dir.path().join("a"), &[]);
    let wrong = other_id();
    let sync_with = format!("{wrong}@{}", peer.url);
    let mut relay = RelayProcess::start_logged(
        "127.0.0.1:0",
        &dir.path().join("b"),
        &["--sync-with".as_ref(), sync_with.as_ref()],
    );
    let line = relay.wait_for_log("is not the expected");
    assert!(line.contains(&wrong) && line.contains(&peer.id), "{line}");
    relay.stop();
    peer.stop();
}
