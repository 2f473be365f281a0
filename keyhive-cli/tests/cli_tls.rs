//! `keyhive relay serve --tls-cert FILE --tls-key FILE` serves wss:// (specs/sync.md SYNC-35):
//! a client trusting the self-signed certificate completes the device-key handshake.

mod common;

use std::ffi::OsStr;
use std::process::Command as StdCommand;
use std::sync::Arc;

use common::RelayProcess;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_sync::client::Session;
use keyhive_sync::tls;

/// A relay serving wss:// under a fresh self-signed certificate for 127.0.0.1, written as PEM
/// under `dir`, started with `extra` arguments too; returns the relay and the certificate's
/// PEM file.
fn tls_relay_with(dir: &std::path::Path, extra: &[&OsStr]) -> (RelayProcess, std::path::PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, ck.cert.pem()).unwrap();
    std::fs::write(&key_path, ck.signing_key.serialize_pem()).unwrap();
    let mut args: Vec<&OsStr> = vec![
        "--tls-cert".as_ref(),
        cert_path.as_os_str(),
        "--tls-key".as_ref(),
        key_path.as_os_str(),
    ];
    args.extend_from_slice(extra);
    let relay = RelayProcess::start(&dir.join("relay"), &args);
    (relay, cert_path)
}

fn tls_relay(dir: &std::path::Path) -> (RelayProcess, std::path::PathBuf) {
    tls_relay_with(dir, &[])
}

#[test]
fn relay_serves_wss_with_pem_files() {
    let dir = tempfile::tempdir().unwrap();
    let (relay, cert_path) = tls_relay(dir.path());
    let url = relay.url.clone();
    let id: keyhive_core::crypto::signing::PublicKey = relay.id.parse().unwrap();
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");

    let pem = std::fs::read(&cert_path).unwrap();
    let trust = tls::client_config_trusting(tls::certificates_from_pem(&pem).unwrap()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let session =
            Session::connect_tls(&url, &SigningKey::generate(), Some(id), Arc::clone(&trust))
                .await
                .unwrap();
        assert_eq!(session.server_id(), id);
        // Default trust (webpki roots) refuses the self-signed certificate.
        assert!(
            Session::connect(&url, &SigningKey::generate(), None)
                .await
                .is_err()
        );
    });

    relay.stop();
}

#[test]
fn tls_cert_without_key_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let out = StdCommand::new(assert_cmd::cargo::cargo_bin("keyhive"))
        .args(["relay", "serve", "--data"])
        .arg(dir.path())
        .args(["--tls-cert", "cert.pem"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// SYNC-37 through the CLI: `keyhive sync` with a wss:// relay whose certificate is
/// self-signed fails with a TLS error that says what to do; `relay add URL --ca-cert FILE`
/// trusts it, after which two people share a document through it. A file that is not a
/// certificate, or --ca-cert on a ws:// relay, is refused and changes nothing.
#[test]
fn relay_add_ca_cert_lets_the_cli_sync_through_a_self_signed_relay() {
    use common::{card, fails, json};

    let dir = tempfile::tempdir().unwrap();
    let (relay, cert_path) = tls_relay(dir.path());
    let cert = cert_path.to_str().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    for (home, name) in [(&alice, "Alice"), (&bob, "Bob")] {
        json(home, &["init", "--name", name]);
    }
    json(&alice, &["contact", "add", &card(&bob)]);
    json(&bob, &["contact", "add", &card(&alice)]);

    // Without the certificate: a TLS error naming the way out.
    json(&bob, &["relay", "add", &relay.url]);
    let error = fails(&bob, &["sync"]);
    assert!(error.contains("--ca-cert"), "{error}");
    assert!(error.contains("certificate"), "{error}");

    // Refused, and nothing saved: a file with no certificate, and a plain ws:// relay.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let error = fails(
        &alice,
        &[
            "relay",
            "add",
            &relay.url,
            "--ca-cert",
            junk.to_str().unwrap(),
        ],
    );
    assert!(error.contains("no PEM certificate"), "{error}");
    let error = fails(
        &alice,
        &["relay", "add", "ws://127.0.0.1:9/sync", "--ca-cert", cert],
    );
    assert!(error.contains("wss://"), "{error}");
    assert_eq!(json(&alice, &["relay", "list"]), serde_json::json!([]));

    // With it: Alice shares a document with Bob through the relay.
    let added = json(&alice, &["relay", "add", &relay.url, "--ca-cert", cert]);
    assert_eq!(added["ca_cert"], true, "{added}");
    json(&bob, &["relay", "add", &relay.url, "--ca-cert", cert]);
    let listed = json(&bob, &["relay", "list"]);
    assert_eq!(listed[0]["ca_cert"], true, "{listed}");
    json(&alice, &["doc", "create", "notes.txt"]);
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "over TLS").unwrap();
    json(&alice, &["put", "notes.txt", file.to_str().unwrap()]);
    json(&alice, &["grant", "notes.txt", "Bob", "--access", "read"]);
    json(&alice, &["sync"]);
    json(&bob, &["sync"]);
    let out = dir.path().join("out.txt");
    json(&bob, &["get", "notes.txt", "--out", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(out).unwrap(), "over TLS");

    // Removing the relay forgets the certificate too.
    json(&bob, &["relay", "remove", &relay.url]);
    json(&bob, &["relay", "add", &relay.url]);
    assert_eq!(json(&bob, &["relay", "list"])[0]["ca_cert"], false);
}

/// SYNC-37 between relays: `relay serve --sync-with ID@wss://... --sync-ca-cert FILE` keeps a
/// relay in sync with one whose certificate is self-signed; a document written through the
/// first is read through the second. A --sync-ca-cert file holding no certificate stops the
/// relay at start with an error naming it.
#[test]
fn a_relay_syncs_with_a_self_signed_wss_relay_given_sync_ca_cert() {
    use common::{card, json};

    let dir = tempfile::tempdir().unwrap();
    // Relay A's id, which B must list with --peer, is in A's data directory from its first start.
    let a_data = dir.path().join("relay-a");
    let first = RelayProcess::start(&a_data, &[]);
    let a_id = first.id.clone();
    drop(first);
    let (b, cert) = tls_relay_with(dir.path(), &["--peer".as_ref(), a_id.as_ref()]);
    let sync_with = format!("{}@{}", b.id, b.url);

    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "no certificate here").unwrap();
    let refused = StdCommand::new(assert_cmd::cargo::cargo_bin("keyhive"))
        .args(["relay", "serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("relay-c"))
        .args(["--sync-with", &sync_with, "--sync-ca-cert"])
        .arg(&junk)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("junk.pem") && stderr.contains("no PEM certificate"),
        "{stderr}"
    );

    let a = RelayProcess::start(
        &a_data,
        &[
            "--sync-with".as_ref(),
            sync_with.as_ref(),
            "--sync-ca-cert".as_ref(),
            cert.as_os_str(),
        ],
    );
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    json(&alice, &["init", "--name", "Alice"]);
    json(&alice, &["relay", "add", &a.url]);
    json(&bob, &["init", "--name", "Bob"]);
    json(
        &bob,
        &["relay", "add", &b.url, "--ca-cert", cert.to_str().unwrap()],
    );
    json(&alice, &["contact", "add", &card(&bob)]);
    json(&bob, &["contact", "add", &card(&alice)]);
    json(&alice, &["doc", "create", "notes.txt"]);
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "relayed over TLS").unwrap();
    json(&alice, &["put", "notes.txt", file.to_str().unwrap()]);
    json(&alice, &["grant", "notes.txt", "Bob", "--access", "read"]);
    json(&alice, &["sync"]);

    // A pushes to B in the background; Bob syncs with B until the document reads.
    let out = dir.path().join("out.txt");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        json(&bob, &["sync"]);
        let got = common::keyhive(&bob)
            .args(["get", "notes.txt", "--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        if got.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "relay A never delivered to relay B: {got:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(std::fs::read_to_string(out).unwrap(), "relayed over TLS");
    drop(a);
}
