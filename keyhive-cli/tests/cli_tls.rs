//! `keyhive relay serve --tls-cert FILE --tls-key FILE` serves wss:// (specs/sync.md SYNC-35):
//! a client trusting the self-signed certificate completes the device-key handshake.

mod common;

use std::process::Command as StdCommand;
use std::sync::Arc;

use common::RelayProcess;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_sync::client::Session;
use keyhive_sync::tls;

/// A relay serving wss:// under a fresh self-signed certificate for 127.0.0.1, written as PEM
/// under `dir`; returns the relay and the certificate's PEM file.
fn tls_relay(dir: &std::path::Path) -> (RelayProcess, std::path::PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, ck.cert.pem()).unwrap();
    std::fs::write(&key_path, ck.signing_key.serialize_pem()).unwrap();
    let relay = RelayProcess::start(
        &dir.join("relay"),
        &[
            "--tls-cert".as_ref(),
            cert_path.as_os_str(),
            "--tls-key".as_ref(),
            key_path.as_os_str(),
        ],
    );
    (relay, cert_path)
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
