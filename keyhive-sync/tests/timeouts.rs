//! Connection-phase timeouts on loopback (SYNC-95..98): silent and half-sent connections are
//! closed and counted toward `max_connections`, idle authenticated connections are closed while
//! answering ones are kept, and a client gives up on a stalled server with a typed error.
//! Time bounds here are hang guards only, never performance assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use keyhive_core::crypto::signing::SigningKey;
use keyhive_sync::client::session::{ConnectPhase, ConnectTimeouts};
use keyhive_sync::client::{ConnectError, Session};
use keyhive_sync::policy::MemoryPolicy;
use keyhive_sync::protocol::handshake::ClientHandshake;
use keyhive_sync::protocol::{Message, PushOutcome, decode_frame, encode_frame};
use keyhive_sync::relay::{Limits, Relay, RelayConfig, RelayHandle};
use keyhive_sync::store::MemoryStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Hang guard for "eventually closed / failed".
const GUARD: Duration = Duration::from_secs(30);

async fn relay_with(limits: Limits, policy: Arc<MemoryPolicy>) -> (RelayHandle, SigningKey) {
    let key = SigningKey::generate();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = RelayConfig::new(key.clone()).with_limits(limits);
    let relay = Relay::serve(listener, Arc::new(MemoryStore::new()), policy, config).unwrap();
    (relay, key)
}

/// Reads until the peer closes (EOF or reset); fails the test if it never does.
async fn closed_by_peer(tcp: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(GUARD, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .expect("the relay never closed the connection");
}

/// SYNC-95, SYNC-97: a silent TCP client and a half-sent HTTP request each hold a slot from
/// accept (a legitimate client is refused while they do), are closed after the upgrade
/// timeout, and then a legitimate session connects and syncs.
#[tokio::test]
async fn silent_and_half_sent_connections_are_counted_and_closed() {
    let mut limits = Limits::default();
    limits.max_connections = 2;
    limits.upgrade_timeout = Duration::from_secs(1);
    let policy = policy();
    let alice = SigningKey::generate();
    let doc = subject(1);
    policy.grant_write(id(&alice), doc);
    let (relay, relay_key) = relay_with(limits, policy).await;
    let addr = relay.local_addr();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /sync HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\n")
        .await
        .unwrap();
    let refused = Session::connect(&relay.url(), &alice, Some(pk(&relay_key))).await;
    assert!(
        refused.is_err(),
        "both slots are held by the silent and the half-sent connection"
    );

    closed_by_peer(&mut silent).await;
    closed_by_peer(&mut half).await;

    let session = tokio::time::timeout(GUARD, async {
        loop {
            match Session::connect(&relay.url(), &alice, Some(pk(&relay_key))).await {
                Ok(s) => return s,
                // The refused client's own slot may still be closing.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
    .expect("a legitimate client never got a slot");
    let its = items(&alice, doc, 0..3);
    assert_eq!(
        session.push(&its).await.unwrap(),
        vec![PushOutcome::Stored; 3]
    );
    relay.shutdown().await.unwrap();
}

/// SYNC-96: an authenticated connection that stops answering (no frames, no pongs) is closed
/// after the idle timeout, while a session whose reader answers pings stays usable.
#[tokio::test]
async fn idle_authenticated_connection_is_closed_answering_one_is_kept() {
    let mut limits = Limits::default();
    limits.idle_timeout = Duration::from_secs(1);
    let (relay, relay_key) = relay_with(limits, policy()).await;

    let (mut ws, _) = tokio_tungstenite::connect_async(relay.url()).await.unwrap();
    let Some(Ok(WsMessage::Binary(b))) = ws.next().await else {
        panic!("no challenge")
    };
    let Message::Challenge(challenge) = decode_frame(&b).unwrap() else {
        panic!("not a challenge")
    };
    let device = SigningKey::generate();
    let (hello, pending) = ClientHandshake::answer(&challenge, &device, None).unwrap();
    ws.send(WsMessage::Binary(
        encode_frame(&Message::Hello(hello)).into(),
    ))
    .await
    .unwrap();
    let Some(Ok(WsMessage::Binary(b))) = ws.next().await else {
        panic!("no welcome")
    };
    let Message::Welcome(welcome) = decode_frame(&b).unwrap() else {
        panic!("not a welcome")
    };
    pending.confirm(&welcome).unwrap();

    let answering = Session::connect(&relay.url(), &SigningKey::generate(), Some(pk(&relay_key)))
        .await
        .unwrap();
    // Not reading means not answering pings: the raw connection goes silent.
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::time::timeout(GUARD, async {
        while let Some(Ok(msg)) = ws.next().await {
            if matches!(msg, WsMessage::Close(_)) {
                return;
            }
        }
    })
    .await
    .expect("the relay never closed the idle connection");

    assert!(!answering.is_closed(), "a session answering pings is kept");
    answering.collection().await.unwrap();
    relay.shutdown().await.unwrap();
}

/// SYNC-98: against a server that accepts TCP and never answers, connecting fails with the
/// connect timeout; against one that upgrades but never sends a challenge, with the handshake
/// timeout.
#[tokio::test]
async fn client_gives_up_on_stalled_servers() {
    let key = SigningKey::generate();
    let timeouts = ConnectTimeouts::new(Duration::from_millis(300), Duration::from_millis(300));
    let tls = keyhive_sync::tls::default_client_config();

    let stalled = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/sync", stalled.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = stalled.accept().await {
            held.push(tcp);
        }
    });
    let result = tokio::time::timeout(
        GUARD,
        Session::connect_with(&url, &key, None, tls.clone(), timeouts),
    )
    .await
    .expect("connect never gave up");
    assert!(
        matches!(
            result,
            Err(ConnectError::Timeout {
                phase: ConnectPhase::Connect,
                ..
            })
        ),
        "{:?}",
        result.err()
    );
    held.abort();

    let mute = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/sync", mute.local_addr().unwrap());
    let upgraded = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = mute.accept().await {
            if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                held.push(ws);
            }
        }
    });
    let result = tokio::time::timeout(
        GUARD,
        Session::connect_with(&url, &key, None, tls, timeouts),
    )
    .await
    .expect("the handshake never gave up");
    assert!(
        matches!(
            result,
            Err(ConnectError::Timeout {
                phase: ConnectPhase::Handshake,
                ..
            })
        ),
        "{:?}",
        result.err()
    );
    upgraded.abort();
}
