//! `keyhive relay serve --tls-cert FILE --tls-key FILE` serves wss:// (specs/sync.md SYNC-35):
//! a client trusting the self-signed certificate completes the device-key handshake.

use std::io::{BufRead, BufReader};
use std::process::{Command as StdCommand, Stdio};
use std::sync::Arc;

use keyhive_core::crypto::signing::SigningKey;
use keyhive_sync::client::Session;
use keyhive_sync::tls;
use serde_json::Value;

#[test]
fn relay_serves_wss_with_pem_files() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, ck.cert.pem()).unwrap();
    std::fs::write(&key_path, ck.signing_key.serialize_pem()).unwrap();

    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("keyhive"))
        .args([
            "--json",
            "relay",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(dir.path().join("relay"))
        .arg("--tls-cert")
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "relay exited early"
        );
        text.push_str(&line);
        if line.starts_with('}') {
            break;
        }
    }
    let info: Value = serde_json::from_str(&text).unwrap();
    let url = info["url"].as_str().unwrap().to_owned();
    let id: keyhive_core::crypto::signing::PublicKey =
        info["id"].as_str().unwrap().parse().unwrap();
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");

    let trust = tls::client_config_trusting([ck.cert.der().clone()]).unwrap();
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

    let pid = child.id().to_string();
    assert!(
        StdCommand::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "relay exit status {status:?}");
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
