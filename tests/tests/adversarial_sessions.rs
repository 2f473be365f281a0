//! Issue 9 items 8 and 10: an on-path attacker on plain `ws://` between a real device and a
//! real relay (a WebSocket-level proxy on loopback that sees and controls every frame).
//!
//! The proxy forwards the handshake unchanged (SYNC-30..32), then tries to continue the session
//! as the device or as the relay, and to inject, tamper with, replay, reorder or drop frames.
//! Every such attempt ends the connection (SYNC-38/39) without the attacker learning or
//! changing anything; an honest proxy only ever sees ciphertext. Relay-to-relay links sync only
//! with the relay id they were given (SYNC-34).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use keyhive_core::crypto::signing::{PublicKey, SigningKey};
use keyhive_core::identity::IndividualId;
use keyhive_sync::client::{Client, LiveEvent, Session, SessionError};
use keyhive_sync::policy::{AllowAll, MemoryPolicy};
use keyhive_sync::protocol::{Message, decode_frame, encode_frame};
use keyhive_sync::relay::{Relay, RelayConfig, RelayHandle};
use keyhive_sync::{Item, ItemKind, MemoryStore, Store, SubjectId};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The attacker's side facing the device.
type DeviceSide = WebSocketStream<TcpStream>;
/// The attacker's side facing the relay.
type RelaySide = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Recognisable bytes inside every item's envelope, to look for on the wire.
const MARKER: &[u8; 16] = b"bob-secret-item!";

fn item(key: &SigningKey, subject: SubjectId, n: u8) -> Item {
    let mut payload = MARKER.to_vec();
    payload.push(n);
    let mut envelope = payload.clone();
    envelope.extend_from_slice(&key.sign(&payload));
    Item::new(ItemKind::Content, subject, envelope).unwrap()
}

struct Setup {
    relay: RelayHandle,
    relay_id: PublicKey,
    store: Arc<MemoryStore>,
    policy: Arc<MemoryPolicy>,
    bob: SigningKey,
    subject: SubjectId,
    items: Vec<Item>,
}

/// A relay holding 7 items of a subject Bob may pull and write.
async fn setup() -> Setup {
    let store = Arc::new(MemoryStore::new());
    let policy = Arc::new(MemoryPolicy::new());
    let bob = SigningKey::generate();
    let subject = SubjectId(SigningKey::generate().public_key());
    policy.grant_write(IndividualId(bob.public_key()), subject);
    let items: Vec<Item> = (0..7).map(|n| item(&bob, subject, n)).collect();
    store.put(&items).unwrap();
    let key = SigningKey::generate();
    let relay_id = key.public_key();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = Relay::serve(
        listener,
        store.clone(),
        policy.clone(),
        RelayConfig::new(key),
    )
    .unwrap();
    Setup {
        relay,
        relay_id,
        store,
        policy,
        bob,
        subject,
        items,
    }
}

async fn next_binary<S>(ws: &mut WebSocketStream<S>) -> Option<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Ok(Some(Ok(WsMessage::Binary(b)))) => return Some(b.to_vec()),
            Ok(Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_)))) => continue,
            Ok(Some(Ok(_) | Err(_)) | None) => return None,
            Err(_) => panic!("hang guard: no frame for 20 s"),
        }
    }
}

/// Bob connects to the relay through the attacker's proxy, pinning the relay's id; the
/// attacker forwards the three handshake frames unchanged (and checks they are what it
/// expects). Returns Bob's session and the attacker's two sockets.
async fn through_mitm(s: &Setup) -> (Arc<Session>, DeviceSide, RelaySide) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/sync", listener.local_addr().unwrap());
    let (bob, relay_id) = (s.bob.clone(), s.relay_id);
    let connecting =
        tokio::spawn(async move { Session::connect(&url, &bob, Some(relay_id)).await });
    let (tcp, _) = listener.accept().await.unwrap();
    let mut device = tokio_tungstenite::accept_async(tcp).await.unwrap();
    let (mut relay, _) = tokio_tungstenite::connect_async(s.relay.url())
        .await
        .unwrap();
    let expected = ["Challenge", "Hello", "Welcome"];
    for (step, name) in expected.iter().enumerate() {
        let frame = if step == 1 {
            next_binary(&mut device).await.unwrap()
        } else {
            next_binary(&mut relay).await.unwrap()
        };
        let message = decode_frame(&frame).unwrap();
        assert!(format!("{message:?}").starts_with(name), "{message:?}");
        let out = WsMessage::Binary(frame.into());
        if step == 1 {
            relay.send(out).await.unwrap();
        } else {
            device.send(out).await.unwrap();
        }
    }
    let session = connecting.await.unwrap().unwrap();
    assert_eq!(session.server_id(), s.relay_id);
    (Arc::new(session), device, relay)
}

/// Reads what the relay sends the attacker until the connection ends (or, as a relay without
/// sealed sessions did, it goes quiet for 5 s with the connection open); returns every item
/// the attacker could decode from it.
async fn items_leaked(relay: &mut RelaySide) -> usize {
    let mut leaked = 0;
    while let Ok(Some(frame)) =
        tokio::time::timeout(Duration::from_secs(5), next_binary(relay)).await
    {
        if let Ok(Message::Items { items, .. } | Message::Live { items }) = decode_frame(&frame) {
            leaked += items.len();
        }
    }
    leaked
}

/// The reproduced hijack: after forwarding the handshake the attacker drops Bob and asks the
/// relay, as Bob, for everything. The relay refuses the unsealed frames and closes (SYNC-39).
#[tokio::test]
async fn middleman_cannot_continue_the_session_as_the_device() {
    let s = setup().await;
    let (_bob, _device, mut relay) = through_mitm(&s).await;
    let hashes = s.items.iter().map(Item::hash).collect();
    for message in [
        Message::Collection { req: 1 },
        Message::Pull { req: 2, hashes },
    ] {
        // A closed socket is the expected outcome; the send may already fail.
        let _ = relay
            .send(WsMessage::Binary(encode_frame(&message).into()))
            .await;
    }
    assert_eq!(items_leaked(&mut relay).await, 0, "pulled items as Bob");
    // Bob himself, directly, still gets all 7: the relay refused the attacker, not Bob.
    let direct = Session::connect(&s.relay.url(), &s.bob, Some(s.relay_id))
        .await
        .unwrap();
    let hashes: Vec<_> = s.items.iter().map(Item::hash).collect();
    assert_eq!(direct.pull(&hashes).await.unwrap().len(), 7);
    s.relay.shutdown().await.unwrap();
}

/// The attacker also cannot push as Bob: a forged push after the handshake is not stored.
#[tokio::test]
async fn middleman_cannot_push_as_the_device() {
    let s = setup().await;
    let (_bob, _device, mut relay) = through_mitm(&s).await;
    let forged = item(&s.bob, s.subject, 99);
    let _ = relay
        .send(WsMessage::Binary(
            encode_frame(&Message::Push {
                req: 1,
                items: vec![forged.to_wire()],
            })
            .into(),
        ))
        .await;
    assert_eq!(items_leaked(&mut relay).await, 0);
    assert!(!s.store.contains(&forged.hash()).unwrap());
    s.relay.shutdown().await.unwrap();
}

/// The attacker plays the relay towards Bob: a forged live item (unsealed, or sealed under a
/// key of its own) ends Bob's session and reaches neither his live channel nor his requests.
#[tokio::test]
async fn middleman_cannot_act_as_the_relay() {
    let s = setup().await;
    for forged_frame in [
        encode_frame(&Message::Live {
            items: vec![item(&s.bob, s.subject, 50).to_wire()],
        }),
        vec![0x5a; 200],
    ] {
        let (bob, mut device, _relay) = through_mitm(&s).await;
        let mut live = bob.take_live().unwrap();
        let pending = {
            let bob = bob.clone();
            tokio::spawn(async move { bob.collection().await })
        };
        // Bob's request reaches the attacker, who answers it and pushes a live item itself.
        assert!(next_binary(&mut device).await.is_some());
        device
            .send(WsMessage::Binary(forged_frame.into()))
            .await
            .unwrap();
        assert_eq!(
            pending.await.unwrap(),
            Err(SessionError::Disconnected),
            "Bob accepted a forged answer"
        );
        assert!(bob.is_closed());
        assert!(!matches!(live.recv().await, Some(LiveEvent::Items(_))));
    }
    s.relay.shutdown().await.unwrap();
}

/// Forwards one frame from `from` to `to`, returning it.
async fn forward<A, B>(from: &mut WebSocketStream<A>, to: &mut WebSocketStream<B>) -> Vec<u8>
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let frame = next_binary(from).await.expect("a frame to forward");
    to.send(WsMessage::Binary(frame.clone().into()))
        .await
        .unwrap();
    frame
}

/// An honest proxy sees only ciphertext (none of the items' bytes), and the session works
/// through it; replaying Bob's push frame to the relay then ends the connection, and the
/// replayed push is not executed again.
#[tokio::test]
async fn proxy_sees_only_ciphertext_and_a_replayed_frame_closes_the_connection() {
    let s = setup().await;
    let (bob, mut device, mut relay) = through_mitm(&s).await;
    let hashes: Vec<_> = s.items.iter().map(Item::hash).collect();
    let pull = {
        let bob = bob.clone();
        tokio::spawn(async move { bob.pull(&hashes).await })
    };
    let request = forward(&mut device, &mut relay).await;
    let answer = forward(&mut relay, &mut device).await;
    assert_eq!(pull.await.unwrap().unwrap().len(), 7);
    for frame in [&request, &answer] {
        assert!(decode_frame(frame).is_err(), "a frame travelled unsealed");
        assert!(!frame.windows(MARKER.len()).any(|w| w == MARKER));
    }
    // Bob pushes a new item; the attacker forwards it twice.
    let fresh = item(&s.bob, s.subject, 7);
    let push = {
        let (bob, fresh) = (bob.clone(), fresh.clone());
        tokio::spawn(async move { bob.push(&[fresh]).await })
    };
    let frame = forward(&mut device, &mut relay).await;
    forward(&mut relay, &mut device).await;
    assert!(push.await.unwrap().is_ok());
    assert!(s.store.contains(&fresh.hash()).unwrap());
    let _ = relay.send(WsMessage::Binary(frame.into())).await;
    assert!(
        next_binary(&mut relay).await.is_none(),
        "the relay answered a replayed frame"
    );
    s.relay.shutdown().await.unwrap();
}

/// Reordering two of Bob's requests, or dropping one and forwarding the next, ends the
/// connection at the relay: neither request is answered out of turn.
#[tokio::test]
async fn reordered_or_dropped_frames_close_the_connection() {
    let s = setup().await;
    for drop_first in [false, true] {
        let (bob, mut device, mut relay) = through_mitm(&s).await;
        let first = {
            let bob = bob.clone();
            tokio::spawn(async move { bob.collection().await })
        };
        let f1 = next_binary(&mut device).await.unwrap();
        let second = {
            let bob = bob.clone();
            tokio::spawn(async move { bob.collection().await })
        };
        let f2 = next_binary(&mut device).await.unwrap();
        let order = if drop_first { vec![f2] } else { vec![f2, f1] };
        for f in order {
            let _ = relay.send(WsMessage::Binary(f.into())).await;
        }
        assert!(
            next_binary(&mut relay).await.is_none(),
            "the relay answered a frame out of order (drop_first = {drop_first})"
        );
        // The attacker can only cut the connection: Bob's requests then fail visibly.
        drop(relay);
        drop(device);
        assert!(first.await.unwrap().is_err());
        assert!(second.await.unwrap().is_err());
    }
    s.relay.shutdown().await.unwrap();
}

/// A relay answer altered in transit (one bit) ends Bob's session; the request fails.
#[tokio::test]
async fn tampered_answer_closes_the_session() {
    let s = setup().await;
    let (bob, mut device, mut relay) = through_mitm(&s).await;
    let pending = {
        let bob = bob.clone();
        tokio::spawn(async move { bob.collection().await })
    };
    forward(&mut device, &mut relay).await;
    let mut answer = next_binary(&mut relay).await.unwrap();
    answer[0] ^= 1;
    device.send(WsMessage::Binary(answer.into())).await.unwrap();
    assert_eq!(pending.await.unwrap(), Err(SessionError::Disconnected));
    assert!(bob.is_closed());
    s.relay.shutdown().await.unwrap();
}

/// `relay serve --sync-with ID@URL` in library form: a relay's link to another relay pushes
/// nothing to a server presenting another id (here the attacker's own relay at that URL), and
/// syncs once the id matches.
#[tokio::test]
async fn relay_link_syncs_only_with_the_expected_relay_id() {
    let impostor = setup().await;
    let genuine_id = SigningKey::generate().public_key();
    let ours = Arc::new(MemoryStore::new());
    let holder = SigningKey::generate();
    let subject = SubjectId(SigningKey::generate().public_key());
    ours.put(&[item(&holder, subject, 1)]).unwrap();
    let relay_key = SigningKey::generate();
    impostor
        .policy
        .grant_everything(IndividualId(relay_key.public_key()));
    let client = Client::new(relay_key, ours, Arc::new(AllowAll));
    let before = impostor.store.subjects().unwrap().len();
    let mut link = client.add_link(impostor.relay.url(), Some(genuine_id));
    let status = link.wait_for(|s| s.failures >= 2).await;
    let error = status.last_error.unwrap();
    assert!(error.contains("not the expected"), "{error}");
    assert!(!status.connected);
    assert_eq!(impostor.store.subjects().unwrap().len(), before);
    link.stop().await;
    // Control: with the id it really has, the same link syncs the subject over.
    let mut link = client.add_link(impostor.relay.url(), Some(impostor.relay_id));
    link.wait_for(|s| s.connected).await;
    assert!(impostor.store.subjects().unwrap().contains(&subject));
    link.stop().await;
    impostor.relay.shutdown().await.unwrap();
}
