//! Loopback tests with a real relay and real clients: push/pull, authorisation, handshake,
//! hostile frames, limits and live subscriptions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use futures_util::{SinkExt, StreamExt};
use keyhive_core::crypto::signing::SigningKey;
use keyhive_sync::client::{LiveEvent, Session, SessionError};
use keyhive_sync::protocol::handshake;
use keyhive_sync::protocol::{
    ErrorCode, Message, PROTOCOL_VERSION, PushOutcome, decode_frame, encode_frame,
};
use keyhive_sync::relay::{Limits, Relay, RelayConfig};
use keyhive_sync::store::{MemoryStore, Store};
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[tokio::test]
async fn push_pull_and_unauthorised_pull_gets_nothing() {
    let store = Arc::new(MemoryStore::new());
    let policy = policy();
    let (relay, relay_key) = start(store.clone(), policy.clone()).await;
    let alice = SigningKey::generate();
    let bob = SigningKey::generate();
    let doc = subject(1);
    policy.grant_write(id(&alice), doc);

    let a = Session::connect(&relay.url(), &alice, Some(pk(&relay_key)))
        .await
        .unwrap();
    assert_eq!(a.server_id(), pk(&relay_key));
    let its = items(&alice, doc, 0..10);
    let outcomes = a.push(&its).await.unwrap();
    assert_eq!(outcomes, vec![PushOutcome::Stored; 10]);
    assert_eq!(
        a.push(&its[..2]).await.unwrap(),
        vec![PushOutcome::Duplicate; 2]
    );
    let hashes: Vec<_> = its.iter().map(|i| i.hash()).collect();
    let pulled = a.pull(&hashes).await.unwrap();
    assert_eq!(pulled.len(), 10);

    // Bob holds no pull: nothing is offered, pulled or reconciled, and he cannot push.
    let b = Session::connect(&relay.url(), &bob, None).await.unwrap();
    assert!(b.pull(&hashes).await.unwrap().is_empty());
    assert!(b.collection().await.unwrap().is_empty());
    match b.reconcile(doc, &[]).await {
        Err(SessionError::Remote(e)) => assert_eq!(e.code, ErrorCode::Forbidden),
        other => panic!("expected forbidden, got {other:?}"),
    }
    let foreign = items(&bob, doc, 100..101);
    assert!(matches!(
        b.push(&foreign).await.unwrap()[0],
        PushOutcome::Refused(_)
    ));
    assert!(!store.contains(&foreign[0].hash()).unwrap());
    assert!(b.subscribe(&[doc]).await.unwrap().is_empty());

    // Once granted pull, a full sync brings everything over.
    policy.grant_pull(id(&bob), doc);
    let bob_client = keyhive_sync::client::Client::new(
        bob.clone(),
        Arc::new(MemoryStore::new()),
        Arc::new(keyhive_sync::policy::AllowAll),
    );
    let report = bob_client.sync_once(&b).await.unwrap();
    assert_eq!(report.pulled, 10);
    assert_eq!(bob_client.store().hashes(&doc).unwrap().len(), 10);
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn expected_server_identity_is_enforced() {
    let (relay, _) = start(Arc::new(MemoryStore::new()), policy()).await;
    let other = SigningKey::generate();
    let err = Session::connect(&relay.url(), &SigningKey::generate(), Some(pk(&other)))
        .await
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("not the expected"), "{err}");
    relay.shutdown().await.unwrap();
}

type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw_connect(url: &str) -> (RawWs, keyhive_sync::protocol::message::Challenge) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let Some(Ok(WsMessage::Binary(b))) = ws.next().await else {
        panic!("no challenge")
    };
    let Message::Challenge(c) = decode_frame(&b).unwrap() else {
        panic!("not a challenge")
    };
    (ws, c)
}

/// The next error frame, in the clear (handshake failures, SYNC-33).
async fn next_error(ws: &mut RawWs) -> ErrorCode {
    loop {
        match ws.next().await {
            Some(Ok(WsMessage::Binary(b))) => {
                if let Ok(Message::Error(e)) = decode_frame(&b) {
                    return e.code;
                }
            }
            Some(Ok(_)) => continue,
            other => panic!("connection ended without an error frame: {other:?}"),
        }
    }
}

/// The next error frame of an established session, opened with its keys (SYNC-38).
async fn next_sealed_error(ws: &mut RawWs, keys: &mut handshake::SessionKeys) -> ErrorCode {
    loop {
        match ws.next().await {
            Some(Ok(WsMessage::Binary(b))) => {
                let frame = keys.opener.open(b.into()).expect("sealed by the relay");
                if let Ok(Message::Error(e)) = decode_frame(&frame) {
                    return e.code;
                }
            }
            Some(Ok(_)) => continue,
            other => panic!("connection ended without an error frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn replayed_handshake_fails() {
    let (relay, _) = start(Arc::new(MemoryStore::new()), policy()).await;
    let device = SigningKey::generate();
    // Connection 1: a genuine hello, recorded.
    let (mut ws1, c1) = raw_connect(&relay.url()).await;
    let (hello, _) = handshake::ClientHandshake::answer(&c1, &device, None).unwrap();
    ws1.send(WsMessage::Binary(
        encode_frame(&Message::Hello(hello.clone())).into(),
    ))
    .await
    .unwrap();
    let Some(Ok(WsMessage::Binary(b))) = ws1.next().await else {
        panic!("no welcome")
    };
    assert!(matches!(decode_frame(&b).unwrap(), Message::Welcome(_)));
    // Connection 2: replaying it fails, since the server nonce and ephemeral key differ.
    let (mut ws2, c2) = raw_connect(&relay.url()).await;
    assert_ne!(c1.server_nonce, c2.server_nonce);
    assert_ne!(c1.server_ephemeral, c2.server_ephemeral);
    ws2.send(WsMessage::Binary(
        encode_frame(&Message::Hello(hello)).into(),
    ))
    .await
    .unwrap();
    assert_eq!(next_error(&mut ws2).await, ErrorCode::HandshakeFailed);
    // A request before the handshake is refused too.
    let (mut ws3, _) = raw_connect(&relay.url()).await;
    ws3.send(WsMessage::Binary(
        encode_frame(&Message::Collection { req: 1 }).into(),
    ))
    .await
    .unwrap();
    assert_eq!(next_error(&mut ws3).await, ErrorCode::Unexpected);
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_and_oversize_frames_get_typed_errors_and_connection_survives() {
    let (relay, _) = start(Arc::new(MemoryStore::new()), policy()).await;
    let device = SigningKey::generate();
    let (mut ws, c) = raw_connect(&relay.url()).await;
    let (hello, pending) = handshake::ClientHandshake::answer(&c, &device, None).unwrap();
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
    let mut keys = pending.confirm(&welcome).unwrap();
    let v = PROTOCOL_VERSION;
    let cases: Vec<(Vec<u8>, ErrorCode)> = vec![
        (vec![], ErrorCode::Malformed),
        (vec![v, 0xff, 0xff], ErrorCode::Malformed),
        (vec![7, 0], ErrorCode::UnsupportedVersion),
        (
            vec![v; keyhive_sync::protocol::MAX_FRAME_LEN + 10],
            ErrorCode::Oversize,
        ),
        (
            {
                let mut f = encode_frame(&Message::Collection { req: 9 });
                f.push(0);
                f
            },
            ErrorCode::Malformed,
        ),
        (
            encode_frame(&Message::Live { items: vec![] }),
            ErrorCode::Unexpected,
        ),
    ];
    // Malformed bodies inside correctly sealed frames get typed errors (SYNC-11..13).
    for (frame, code) in cases {
        let sealed = keys.sealer.seal(frame).unwrap();
        ws.send(WsMessage::Binary(sealed.into())).await.unwrap();
        assert_eq!(next_sealed_error(&mut ws, &mut keys).await, code);
    }
    // SYNC-39: a text frame cannot be authenticated: the relay closes the connection.
    ws.send(WsMessage::Text("hello".into())).await.unwrap();
    loop {
        match ws.next().await {
            Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        }
    }
    let s = Session::connect(&relay.url(), &device, None).await.unwrap();
    assert!(s.collection().await.unwrap().is_empty());
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn too_many_malformed_frames_close_the_connection() {
    let (relay, _) = start(Arc::new(MemoryStore::new()), policy()).await;
    let device = SigningKey::generate();
    let s = Session::connect(&relay.url(), &device, None).await.unwrap();
    for _ in 0..40 {
        if s.send_raw(vec![PROTOCOL_VERSION, 0xff]).await.is_err() {
            break;
        }
    }
    eventually(|| s.is_closed()).await;
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn rate_limit_refuses_excess_requests() {
    let key = SigningKey::generate();
    let mut limits = Limits::default();
    limits.frames_per_second = 0.0;
    limits.burst_frames = 3.0;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = Relay::serve(
        listener,
        Arc::new(MemoryStore::new()),
        policy(),
        RelayConfig::new(key).with_limits(limits),
    )
    .unwrap();
    let s = Session::connect(&relay.url(), &SigningKey::generate(), None)
        .await
        .unwrap();
    for _ in 0..3 {
        s.collection().await.unwrap();
    }
    match s.collection().await {
        Err(SessionError::Remote(e)) => assert_eq!(e.code, ErrorCode::RateLimited),
        other => panic!("expected rate limiting, got {other:?}"),
    }
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn subscribers_get_live_pushes_only_when_authorised() {
    let policy = policy();
    let (relay, _) = start(Arc::new(MemoryStore::new()), policy.clone()).await;
    let alice = SigningKey::generate();
    let bob = SigningKey::generate();
    let doc = subject(3);
    policy.grant_write(id(&alice), doc);
    policy.grant_pull(id(&bob), doc);
    let a = Session::connect(&relay.url(), &alice, None).await.unwrap();
    let b = Session::connect(&relay.url(), &bob, None).await.unwrap();
    let mut live = b.take_live().unwrap();
    assert_eq!(b.subscribe(&[doc, subject(4)]).await.unwrap(), vec![doc]);
    let its = items(&alice, doc, 0..3);
    a.push(&its).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        match live.recv().await.unwrap() {
            LiveEvent::Items(items) => got.extend(items),
            LiveEvent::Lagged => panic!("unexpected lag"),
        }
    }
    assert_eq!(got, its);
    // After revocation the relay stops forwarding (SYNC-61 re-checks at send time). A later
    // item on another subject Bob still reads marks the point: live items are delivered in
    // order, so the revoked one must have been dropped before it.
    let doc2 = subject(5);
    policy.grant_write(id(&alice), doc2);
    policy.grant_pull(id(&bob), doc2);
    assert_eq!(b.subscribe(&[doc2]).await.unwrap(), vec![doc2]);
    policy.revoke(&id(&bob), &doc);
    a.push(&items(&alice, doc, 3..4)).await.unwrap();
    let marker = items(&alice, doc2, 0..1);
    a.push(&marker).await.unwrap();
    match live.recv().await.unwrap() {
        LiveEvent::Items(items) => assert_eq!(items, marker),
        LiveEvent::Lagged => panic!("unexpected lag"),
    }
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_connected_sessions() {
    let (relay, _) = start(Arc::new(MemoryStore::new()), policy()).await;
    let s = Session::connect(&relay.url(), &SigningKey::generate(), None)
        .await
        .unwrap();
    relay.shutdown().await.unwrap();
    eventually(|| s.is_closed()).await;
}

#[tokio::test]
async fn random_frames_never_break_the_relay() {
    let (relay, _) = start(Arc::new(MemoryStore::new()), policy()).await;
    let device = SigningKey::generate();
    let s = Session::connect(&relay.url(), &device, None).await.unwrap();
    let mut rng = rand::rng();
    for i in 0..300u32 {
        let len = rand::RngExt::random_range(&mut rng, 0..512usize);
        let mut frame = vec![0u8; len];
        rand::Rng::fill_bytes(&mut rng, &mut frame);
        // Half the frames carry the right version byte and a plausible message tag.
        if i % 2 == 0 && !frame.is_empty() {
            frame[0] = PROTOCOL_VERSION;
            if frame.len() > 1 {
                frame[1] %= 15;
            }
        }
        if s.send_raw(frame).await.is_err() {
            break;
        }
    }
    // Whatever happened to that connection, the relay serves new ones.
    let fresh = Session::connect(&relay.url(), &device, None).await.unwrap();
    assert!(fresh.collection().await.unwrap().is_empty());
    relay.shutdown().await.unwrap();
}

/// SYNC-113: a load balancer asks `GET /health` and is told the relay serves, with its id.
#[tokio::test]
async fn health_says_the_relay_serves_and_names_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let relay = common::capability_relay().await;
    let address = relay.url()["ws://".len()..]
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
    assert!(
        answer.ends_with(&format!(
            r#"{{"status":"serving","relay_id":"{}"}}"#,
            relay.id()
        )),
        "{answer}"
    );
    relay.shutdown().await.unwrap();
}

/// SYNC-52: after the first collection of a session, the client names the digest of the
/// offer it holds; the relay answers `OfferUnchanged` when its offer has that digest, so an
/// idle resync downloads one small frame instead of the whole offer (49 B a subject). Any
/// change (an item stored, a subject granted) sends the whole offer again, and a new session
/// starts with a full offer.
#[tokio::test]
async fn sync52_an_unchanged_offer_is_not_sent_again() {
    let store = Arc::new(MemoryStore::new());
    let policy = policy();
    let (relay, relay_key) = start(store.clone(), policy.clone()).await;
    let alice = SigningKey::generate();
    let subjects: Vec<_> = (1..=200).map(subject).collect();
    for doc in &subjects {
        policy.grant_write(id(&alice), *doc);
    }
    let a = Session::connect(&relay.url(), &alice, Some(pk(&relay_key)))
        .await
        .unwrap();
    for (n, doc) in subjects.iter().enumerate() {
        a.push(&items(&alice, *doc, n as u64..n as u64 + 1))
            .await
            .unwrap();
    }
    let received = |s: &Session| s.stats().bytes().1;

    let before = received(&a);
    let first = a.collection().await.unwrap();
    let full = received(&a) - before;
    assert_eq!(first.len(), 200);

    let before = received(&a);
    let again = a.collection().await.unwrap();
    let unchanged = received(&a) - before;
    assert_eq!(again, first);
    assert!(
        unchanged * 100 < full,
        "an unchanged offer cost {unchanged} B, the full one {full} B"
    );

    // One more item: the whole offer again, with the new count.
    a.push(&items(&alice, subjects[7], 1_000..1_001))
        .await
        .unwrap();
    let changed = a.collection().await.unwrap();
    assert_eq!(changed.len(), 200);
    let seventh = changed.iter().find(|o| o.subject == subjects[7]).unwrap();
    assert_eq!(seventh.count, 2);
    assert_ne!(changed, first);

    // A subject granted since: offered.
    let newcomer = subject(250);
    policy.grant_write(id(&alice), newcomer);
    a.push(&items(&alice, newcomer, 2_000..2_001))
        .await
        .unwrap();
    assert_eq!(a.collection().await.unwrap().len(), 201);

    // Another session holds no offer: it gets the whole one.
    let b = Session::connect(&relay.url(), &alice, Some(pk(&relay_key)))
        .await
        .unwrap();
    assert_eq!(b.collection().await.unwrap().len(), 201);
}

/// SYNC-53: a new client over the same store (each CLI `sync` is one) starts from the offer an
/// earlier client stored (STORE-23), so an idle sync downloads one small frame instead of the
/// whole offer; a damaged stored offer costs only the whole offer, and a changed relay offer
/// is sent whole and stored again. Before, every new client downloaded the whole offer (49 B a
/// subject: 174 KB at every `keyhive sync` of a home of 3,562 subjects).
#[tokio::test]
async fn sync53_a_new_client_starts_from_the_offer_an_earlier_one_stored() {
    let relay_store = Arc::new(MemoryStore::new());
    let policy = policy();
    let (relay, relay_key) = start(relay_store.clone(), policy.clone()).await;
    let alice = SigningKey::generate();
    let subjects: Vec<_> = (1..=200).map(subject).collect();
    for doc in &subjects {
        policy.grant_write(id(&alice), *doc);
    }
    let local = Arc::new(MemoryStore::new());
    for (n, doc) in subjects.iter().enumerate() {
        local
            .put(&items(&alice, *doc, n as u64..n as u64 + 1))
            .unwrap();
    }
    let sync = || async {
        let client = keyhive_sync::client::Client::new(
            alice.clone(),
            local.clone(),
            Arc::new(keyhive_sync::policy::AllowAll),
        );
        let session = client
            .connect_to(&relay.url(), Some(pk(&relay_key)))
            .await
            .unwrap();
        client.sync_once(&session).await.unwrap()
    };
    let first = sync().await;
    assert_eq!(first.pushed, 200, "{first:?}");
    // The relay's offer changed with the push: the next client downloads it whole once.
    let second = sync().await;
    assert_eq!(second.offered, 200);
    let idle = sync().await;
    assert_eq!((idle.offered, idle.pushed, idle.pulled), (200, 0, 0));
    assert!(
        idle.bytes_received * 20 < second.bytes_received,
        "an idle sync of a new client received {} B, one with the whole offer {} B",
        idle.bytes_received,
        second.bytes_received
    );
    let peer = pk(&relay_key);
    assert!(local.peer_offer(peer.as_bytes()).unwrap().is_some());

    // Damaged on disk: the whole offer again, nothing else goes wrong.
    local
        .put_peer_offer(peer.as_bytes(), b"\x01garbage")
        .unwrap();
    let damaged = sync().await;
    assert_eq!((damaged.offered, damaged.pushed), (200, 0));
    assert!(damaged.bytes_received * 20 > second.bytes_received);
    // A subject granted since is offered (and pulled) by the next new client.
    let newcomer = subject(250);
    policy.grant_write(id(&alice), newcomer);
    let other = Session::connect(&relay.url(), &alice, Some(pk(&relay_key)))
        .await
        .unwrap();
    other
        .push(&items(&alice, newcomer, 9_000..9_001))
        .await
        .unwrap();
    let grown = sync().await;
    assert_eq!((grown.offered, grown.pulled), (201, 1), "{grown:?}");
    let idle = sync().await;
    assert!(idle.bytes_received * 20 < second.bytes_received);
}

/// A relay built before SYNC-52, reduced to what a collection needs: it answers `Collection`
/// with `offers`, and a frame it cannot decode (`CollectionSince`, which it predates) with
/// `Error{req: none, Malformed}` as every relay answers an undecodable frame (SYNC-13). Returns
/// its URL and a task giving how many frames it could not decode.
async fn relay_before_sync52(
    key: SigningKey,
    offers: Vec<keyhive_sync::protocol::SubjectOffer>,
) -> (String, tokio::task::JoinHandle<usize>) {
    use keyhive_sync::protocol::ErrorFrame;
    use keyhive_sync::protocol::handshake::ServerHandshake;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/sync", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let handshake = ServerHandshake::start(key.public_key());
        let challenge = Message::Challenge(handshake.challenge().clone());
        ws.send(WsMessage::Binary(encode_frame(&challenge).into()))
            .await
            .unwrap();
        let Some(Ok(WsMessage::Binary(bytes))) = ws.next().await else {
            panic!("no hello")
        };
        let Message::Hello(hello) = decode_frame(&bytes).unwrap() else {
            panic!("not a hello")
        };
        let (welcome, mut keys) = handshake.accept(&hello, &key).unwrap();
        ws.send(WsMessage::Binary(
            encode_frame(&Message::Welcome(welcome)).into(),
        ))
        .await
        .unwrap();
        let mut undecodable = 0;
        while let Some(Ok(msg)) = ws.next().await {
            let WsMessage::Binary(bytes) = msg else {
                continue;
            };
            let frame = keys.opener.open(bytes.to_vec()).unwrap();
            let answer = match decode_frame(&frame).unwrap() {
                Message::Collection { req } => Message::Offer {
                    req,
                    subjects: offers.clone(),
                    last: true,
                },
                Message::CollectionSince { .. } => {
                    undecodable += 1;
                    Message::Error(ErrorFrame::new(
                        None,
                        ErrorCode::Malformed,
                        "frame does not decode",
                    ))
                }
                other => panic!("not a collection: {other:?}"),
            };
            let sealed = keys.sealer.seal(encode_frame(&answer)).unwrap();
            if ws.send(WsMessage::Binary(sealed.into())).await.is_err() {
                break;
            }
        }
        undecodable
    });
    (url, task)
}

/// SYNC-52 against a relay built before it: the `Malformed` error it answers the
/// `CollectionSince` with (without a request id: it cannot read one) answers that request, and
/// the client asks `Collection` for the rest of the session. Before, the request waited for
/// an answer that never came until the 60 s request timeout, and the sync failed.
#[tokio::test]
async fn sync52_a_relay_built_before_it_is_asked_collection_again() {
    let key = SigningKey::generate();
    let offers = vec![keyhive_sync::protocol::SubjectOffer {
        subject: subject(1),
        count: 3,
        fingerprint: [7; 16],
    }];
    let (url, server) = relay_before_sync52(key.clone(), offers.clone()).await;
    let session = Session::connect(&url, &SigningKey::generate(), Some(pk(&key)))
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(*session.collection().await.unwrap(), offers);
    }
    drop(session);
    assert_eq!(server.await.unwrap(), 1, "asked once per session");
}
