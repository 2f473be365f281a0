//! Loopback tests of optional TLS (SYNC-35..SYNC-37): a relay with a self-signed certificate
//! serves `wss://`; a client trusting it syncs; clients that do not trust it fail with
//! `ConnectError::Tls`; the device-key handshake runs unchanged inside TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_sync::client::{ConnectError, Session};
use keyhive_sync::policy::AllowAll;
use keyhive_sync::protocol::PushOutcome;
use keyhive_sync::relay::{Relay, RelayConfig, RelayHandle};
use keyhive_sync::store::{MemoryStore, Store};
use keyhive_sync::tls::{self, rustls};
use keyhive_sync::{Client, policy::AccessPolicy};
use tokio::net::TcpListener;

/// A self-signed certificate for 127.0.0.1 and localhost, as PEM (cert, key).
fn self_signed() -> (String, String) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

async fn start_tls(
    store: Arc<dyn Store>,
    policy: Arc<dyn AccessPolicy>,
    cert_pem: &str,
    key_pem: &str,
) -> (RelayHandle, SigningKey) {
    let key = SigningKey::generate();
    let server = tls::server_config_from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = Relay::serve(
        listener,
        store,
        policy,
        RelayConfig::new(key.clone()).with_tls(server),
    )
    .unwrap();
    (relay, key)
}

fn trusting(cert_pem: &str) -> Arc<rustls::ClientConfig> {
    tls::client_config_trusting(tls::certificates_from_pem(cert_pem.as_bytes()).unwrap()).unwrap()
}

#[tokio::test]
async fn wss_session_and_background_client_sync_with_trusted_self_signed_cert() {
    let (cert, key) = self_signed();
    let relay_store = Arc::new(MemoryStore::new());
    let policy = policy();
    let (relay, relay_key) = start_tls(relay_store.clone(), policy.clone(), &cert, &key).await;
    assert!(relay.is_tls());
    assert!(
        relay.url().starts_with("wss://127.0.0.1:"),
        "{}",
        relay.url()
    );

    // A session trusting the certificate: handshake (device-key proof, SYNC-36) and push/pull.
    let alice = SigningKey::generate();
    let doc = subject(1);
    policy.grant_write(id(&alice), doc);
    let session = Session::connect_tls(&relay.url(), &alice, Some(pk(&relay_key)), trusting(&cert))
        .await
        .unwrap();
    assert_eq!(session.server_id(), pk(&relay_key));
    let its = items(&alice, doc, 0..3);
    assert_eq!(
        session.push(&its).await.unwrap(),
        vec![PushOutcome::Stored; 3]
    );
    let hashes: Vec<_> = its.iter().map(|i| i.hash()).collect();
    assert_eq!(session.pull(&hashes).await.unwrap(), its);

    // A background client trusting the certificate syncs a written item over wss://.
    let client = Client::new_with_tls(
        alice.clone(),
        Arc::new(MemoryStore::new()),
        Arc::new(AllowAll),
        trusting(&cert),
    );
    let mut link = client.add_link(relay.url(), Some(pk(&relay_key)));
    link.wait_for(|s| s.connected).await;
    assert_eq!(client.store().hashes(&doc).unwrap().len(), 3);
    client.write(items(&alice, doc, 3..4)).unwrap();
    eventually(|| relay_store.hashes(&doc).unwrap().len() == 4).await;

    link.stop().await;
    drop(session);
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn untrusted_certificate_fails_with_tls_error() {
    let (cert, key) = self_signed();
    let (relay, _) = start_tls(Arc::new(MemoryStore::new()), policy(), &cert, &key).await;
    let device = SigningKey::generate();

    // Default configuration (webpki roots): a self-signed certificate is not trusted.
    match Session::connect(&relay.url(), &device, None).await {
        Err(ConnectError::Tls(_)) => {}
        Err(other) => panic!("expected a TLS error, got {other}"),
        Ok(_) => panic!("an untrusted certificate was accepted"),
    }
    // Trusting a different self-signed certificate does not help.
    let (other_cert, _) = self_signed();
    match Session::connect_tls(&relay.url(), &device, None, trusting(&other_cert)).await {
        Err(ConnectError::Tls(_)) => {}
        Err(other) => panic!("expected a TLS error, got {other}"),
        Ok(_) => panic!("an untrusted certificate was accepted"),
    }
    // A trusted certificate that names another host is refused too (host name check).
    let (misnamed_cert, misnamed_key) = {
        let ck = rcgen::generate_simple_self_signed(vec!["relay.example.invalid".into()]).unwrap();
        (ck.cert.pem(), ck.signing_key.serialize_pem())
    };
    let (misnamed, _) = start_tls(
        Arc::new(MemoryStore::new()),
        policy(),
        &misnamed_cert,
        &misnamed_key,
    )
    .await;
    match Session::connect_tls(&misnamed.url(), &device, None, trusting(&misnamed_cert)).await {
        Err(ConnectError::Tls(_)) => {}
        Err(other) => panic!("expected a TLS error, got {other}"),
        Ok(_) => panic!("a certificate for another host was accepted"),
    }
    misnamed.shutdown().await.unwrap();
    // The relay still serves a trusting client afterwards.
    Session::connect_tls(&relay.url(), &device, None, trusting(&cert))
        .await
        .unwrap();
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn plain_client_cannot_speak_to_tls_relay_and_tls_config_is_unused_for_ws() {
    let (cert, key) = self_signed();
    let (tls_relay, _) = start_tls(Arc::new(MemoryStore::new()), policy(), &cert, &key).await;
    let device = SigningKey::generate();
    let plain_url = tls_relay.url().replacen("wss://", "ws://", 1);
    assert!(matches!(
        Session::connect(&plain_url, &device, None).await,
        Err(ConnectError::Transport(_)
            | ConnectError::UnexpectedMessage { .. }
            | ConnectError::MalformedFrame(_)
            | ConnectError::ClosedDuringHandshake)
    ));
    tls_relay.shutdown().await.unwrap();

    // ws:// relays keep working with or without a TLS configuration.
    let (plain, _) = start(Arc::new(MemoryStore::new()), policy()).await;
    assert!(plain.url().starts_with("ws://"));
    assert!(!plain.is_tls());
    Session::connect(&plain.url(), &device, None).await.unwrap();
    Session::connect_tls(&plain.url(), &device, None, trusting(&cert))
        .await
        .unwrap();
    plain.shutdown().await.unwrap();
}

#[tokio::test]
async fn silent_tls_client_does_not_block_others_and_shutdown_is_graceful() {
    let (cert, key) = self_signed();
    let (relay, _) = start_tls(Arc::new(MemoryStore::new()), policy(), &cert, &key).await;
    let device = SigningKey::generate();
    // A TCP connection that never starts its TLS handshake.
    let _silent = tokio::net::TcpStream::connect(relay.local_addr())
        .await
        .unwrap();
    let session = Session::connect_tls(&relay.url(), &device, None, trusting(&cert))
        .await
        .unwrap();
    assert!(session.collection().await.unwrap().is_empty());

    // Graceful shutdown with a live wss:// session: it returns, and the session is told.
    relay.shutdown().await.unwrap();
    assert!(session.collection().await.is_err());
}

#[test]
fn bad_pem_is_a_typed_error() {
    assert!(matches!(
        tls::server_config_from_pem(b"", b""),
        Err(tls::TlsConfigError::NoCertificate)
    ));
    let (cert, _) = self_signed();
    assert!(tls::server_config_from_pem(cert.as_bytes(), b"not a key").is_err());
    assert!(matches!(
        tls::client_config_trusting([]),
        Err(tls::TlsConfigError::NoCertificate)
    ));
}

#[tokio::test]
async fn webpki_roots_plus_an_added_certificate_trust_that_relay_only() {
    let (cert, key) = self_signed();
    let (relay, _) = start_tls(Arc::new(MemoryStore::new()), policy(), &cert, &key).await;
    let device = SigningKey::generate();
    let also = |pem: &str| {
        tls::client_config_trusting_also(tls::certificates_from_pem(pem.as_bytes()).unwrap())
            .unwrap()
    };
    Session::connect_tls(&relay.url(), &device, None, also(&cert))
        .await
        .unwrap();
    let (other_cert, _) = self_signed();
    match Session::connect_tls(&relay.url(), &device, None, also(&other_cert)).await {
        Err(ConnectError::Tls(_)) => {}
        Err(other) => panic!("expected a TLS error, got {other}"),
        Ok(_) => panic!("an untrusted certificate was accepted"),
    }
    relay.shutdown().await.unwrap();
}
