//! `keyhive relay serve --tls-cert FILE --tls-key FILE` serves wss:// (specs/sync.md SYNC-35):
//! a client trusting the self-signed certificate completes the device-key handshake.

mod common;

use std::process::Command as StdCommand;
use std::sync::Arc;

use common::RelayProcess;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_sync::client::Session;
use keyhive_sync::tls;

#[test]
fn relay_serves_wss_with_pem_files() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, ck.cert.pem()).unwrap();
    std::fs::write(&key_path, ck.signing_key.serialize_pem()).unwrap();

    let relay = RelayProcess::start(
        &dir.path().join("relay"),
        &[
            "--tls-cert".as_ref(),
            cert_path.as_os_str(),
            "--tls-key".as_ref(),
            key_path.as_os_str(),
        ],
    );
    let url = relay.url.clone();
    let id: keyhive_core::crypto::signing::PublicKey = relay.id.parse().unwrap();
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
