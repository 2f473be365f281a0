//! REP-33's edge cases (issue 10, points 2 and 4, invariant (f)): a device removed from a
//! document still delivers its own valid ops on it, also when
//!
//! 1. their causal parents are held only by this device (its own earlier offline write, or a
//!    write it got peer-to-peer from another device that never reached a relay): it offers
//!    their held causal past with them, so the relay admits them and a remaining reader reads
//!    them, and its sync ends;
//! 2. the relay admits an own op but refuses its ciphertext (here a piece, over the stranger
//!    quota a removed device falls under): the sync ends, the report names the refusal, the
//!    device does not push the piece again on that connection nor take it as delivered, and
//!    once the limit lifts (the relay restarts with a higher quota) the piece is delivered.
//!
//! Every sync here runs round after round over one connection until a round moves nothing
//! (it stores nothing at either end and nothing is refused), and fails if that takes more than
//! [`MAX_ROUNDS`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod peers;

use std::sync::Arc;

use keyhive_core::Hash;
use keyhive_core::capability::{Access, AgentId, PeerTag};
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::identity::DocumentId;
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::client::SyncReport;
use keyhive_sync::relay::{Relay, RelayConfig, RelayHandle, StrangerQuota};
use keyhive_sync::replica::PIECE_LEN;
use keyhive_sync::{MemoryStore, Store, SubjectId};

use peers::Peer;

/// Most rounds a removed device's sync may take over one connection before a round moves
/// nothing.
const MAX_ROUNDS: usize = 4;

/// Syncs `peer` with the relay at `url`, which stores into `relay`, over one connection until
/// a round moves nothing: it pulls, parks and rejects nothing, the peer refuses nothing and
/// stores nothing new (a round may push again, as duplicates, contact cards the relay takes
/// but does not serve this device, SYNC-81). Returns every round's report. Fails if no round
/// is quiet within [`MAX_ROUNDS`] (a re-offer loop).
async fn settle(peer: &Peer, url: &str, relay: &MemoryStore) -> Vec<SyncReport> {
    peer.replica.lock().unwrap().prepare_all().unwrap();
    let session = peer.client.connect(url).await.unwrap();
    let held = || -> usize {
        relay
            .subjects()
            .unwrap()
            .iter()
            .map(|s| relay.hashes(s).unwrap().len())
            .sum()
    };
    let mut rounds = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let before = held();
        let r = peer.client.sync_once(&session).await.unwrap();
        let quiet = r.pulled + r.parked + r.rejected + r.refused == 0 && held() == before;
        rounds.push(r);
        if quiet {
            return rounds;
        }
    }
    panic!("no quiet round within {MAX_ROUNDS}: {rounds:#?}");
}

fn total(rounds: &[SyncReport]) -> SyncReport {
    let mut all = SyncReport::default();
    for r in rounds {
        all.merge(r);
    }
    all
}

/// A relay over `store` whose strangers may store `quota`; loads what `store` holds (a
/// restart when it holds something).
async fn relay(store: Arc<MemoryStore>, key: &SigningKey, quota: StrangerQuota) -> RelayHandle {
    let policy = Arc::new(CapabilityPolicy::new([]));
    policy.load(store.as_ref()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = RelayConfig::new(key.clone());
    config.limits.stranger_quota = quota;
    Relay::serve(listener, store, policy, config).unwrap()
}

/// Introduces every device to every other one.
fn introduce(peers: &[&Peer]) {
    for a in peers {
        for b in peers {
            if a.id() != b.id() {
                let card = b.replica.lock().unwrap().device().contact_card().unwrap();
                a.replica.lock().unwrap().add_contact(card).unwrap();
            }
        }
    }
}

/// Alice creates a document, makes each of `admins` an admin (so that it may leave, CAP-9)
/// and each of `writers` a writer, and writes `v1`.
fn share(alice: &Peer, admins: &[&Peer], writers: &[&Peer]) -> DocumentId {
    let mut a = alice.replica.lock().unwrap();
    let doc = a.create_document().unwrap();
    for (peers, level) in [(admins, Access::Admin), (writers, Access::Write)] {
        for p in peers {
            a.grant(&doc.0, AgentId::Individual(p.id()), level).unwrap();
        }
    }
    a.write(doc, b"v1").unwrap();
    doc
}

/// The change `op` of `doc` as `peer` reads it.
fn read(peer: &Peer, doc: DocumentId, op: &Hash) -> Vec<u8> {
    let mut out = Vec::new();
    peer.replica
        .lock()
        .unwrap()
        .read_change(doc, op, &mut out)
        .unwrap();
    out
}

/// Case 1: Bob's laptop writes while offline and hands its write to Bob's phone peer to peer;
/// the phone writes twice on top of it (each write's parent is the one before), then leaves,
/// all before syncing. The laptop is lost and never syncs. The phone's one sync delivers its
/// writes, its leave and the laptop's write they depend on (with its change blob, the pieces
/// that blob lists, and the key agreement), refuses nothing, and ends; Alice reads all three
/// writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_device_delivers_writes_whose_parents_only_it_holds() {
    let relay_store = Arc::new(MemoryStore::new());
    let relay = relay(
        relay_store.clone(),
        &SigningKey::generate(),
        StrangerQuota::default(),
    )
    .await;
    let url = relay.url();
    let (alice, phone, laptop) = (Peer::new("alice"), Peer::new("phone"), Peer::new("laptop"));
    introduce(&[&alice, &phone, &laptop]);
    let doc = share(&alice, &[&phone], &[&laptop]);
    for p in [&alice, &phone, &laptop] {
        p.sync(&url).await;
    }
    assert_eq!(phone.read(doc).as_deref(), Some(&b"v1"[..]));

    // Offline. The laptop's write is streamed: a change blob listing two pieces (REP-21).
    let from_laptop: Vec<u8> = (0..PIECE_LEN + 1_000).map(|i| (i % 249) as u8).collect();
    let l = laptop
        .replica
        .lock()
        .unwrap()
        .write(doc, &from_laptop)
        .unwrap();
    let handed = laptop.items(SubjectId(doc.0));
    phone
        .replica
        .lock()
        .unwrap()
        .ingest_all(PeerTag::LOCAL, handed)
        .unwrap();
    assert!(phone.read(doc) == Some(from_laptop.clone()), "handed over");
    let (p1, p2, leave) = {
        let mut p = phone.replica.lock().unwrap();
        let p1 = p.write(doc, b"phone 1").unwrap();
        let p2 = p.write(doc, b"phone 2").unwrap();
        let me = AgentId::Individual(p.device().id());
        let leave = p.revoke(&doc.0, me).unwrap()[0];
        (p1, p2, leave)
    };
    drop(laptop);

    let rounds = settle(&phone, &url, &relay_store).await;
    let all = total(&rounds);
    assert_eq!(all.refused, 0, "{rounds:#?}");
    assert!(all.peer_refusals.is_empty(), "{rounds:#?}");
    assert!(all.closed.contains(&SubjectId(doc.0)), "{rounds:#?}");
    for op in [l, p1, p2, leave] {
        assert!(relay_store.contains(&op).unwrap(), "{op} reached the relay");
    }
    // Settled: another sync, on a new connection, moves nothing and refuses nothing.
    let again = settle(&phone, &url, &relay_store).await;
    assert_eq!(total(&again).refused, 0, "{again:#?}");

    alice.sync(&url).await;
    assert_eq!(alice.read(doc).as_deref(), Some(&b"phone 2"[..]));
    assert_eq!(read(&alice, doc, &p1), b"phone 1");
    assert!(
        read(&alice, doc, &l) == from_laptop,
        "Alice reads the laptop's write"
    );
    let a = alice.replica.lock().unwrap();
    for op in [l, p1, p2] {
        assert!(a.validity(&op).is_some_and(|v| v.is_valid()), "{op}");
    }
}

/// Case 2: Bob writes a streamed change (several pieces) while offline, then leaves before
/// syncing. Having left, he holds nothing at the relay, so he pushes as a stranger, whose quota
/// there holds one piece: the relay admits his ops and change blob and refuses the other
/// pieces. His sync ends, names the refusal and does not push those pieces again on that
/// connection; once the relay restarts with a higher quota, his next sync delivers them and
/// Alice reads his write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_piece_refused_while_its_op_is_admitted_is_delivered_once_the_limit_lifts() {
    let relay_store = Arc::new(MemoryStore::new());
    let relay_key = SigningKey::generate();
    let tight = StrangerQuota::new(1_000_000, (PIECE_LEN + PIECE_LEN / 2) as u64);
    let first = relay(relay_store.clone(), &relay_key, tight).await;
    let url = first.url();
    let (alice, bob) = (Peer::new("alice"), Peer::new("bob"));
    introduce(&[&alice, &bob]);
    let doc = share(&alice, &[&bob], &[]);
    alice.sync(&url).await;
    bob.sync(&url).await;
    assert_eq!(bob.read(doc).as_deref(), Some(&b"v1"[..]));

    let big: Vec<u8> = (0..3 * PIECE_LEN + 1_000)
        .map(|i| (i % 251) as u8)
        .collect();
    let (write, leave) = {
        let mut b = bob.replica.lock().unwrap();
        let write = b.write(doc, &big).unwrap();
        let me = AgentId::Individual(b.device().id());
        (write, b.revoke(&doc.0, me).unwrap()[0])
    };

    let rounds = settle(&bob, &url, &relay_store).await;
    let all = total(&rounds);
    assert!(relay_store.contains(&write).unwrap());
    assert!(relay_store.contains(&leave).unwrap());
    assert!(all.refused > 0, "the quota refused pieces: {rounds:#?}");
    assert_eq!(all.peer_refusals.len(), all.refused, "{rounds:#?}");
    assert!(
        all.peer_refusals
            .iter()
            .all(|(_, why)| why.contains("quota")),
        "{:?}",
        all.peer_refusals
    );
    // Refused once per connection: the first round pushed them, later rounds refuse nothing.
    assert!(rounds[1..].iter().all(|r| r.refused == 0), "{rounds:#?}");
    alice.sync(&url).await;
    assert!(
        alice.read(doc).as_deref() != Some(&big[..]),
        "pieces are missing"
    );

    // The limit lifts: the relay restarts over the same store with a higher quota.
    first.shutdown().await.unwrap();
    let second = relay(relay_store.clone(), &relay_key, StrangerQuota::default()).await;
    let url = second.url();
    let rounds = settle(&bob, &url, &relay_store).await;
    let all = total(&rounds);
    assert_eq!(all.refused, 0, "{rounds:#?}");
    assert!(all.pushed > 0, "the refused pieces: {rounds:#?}");
    alice.sync(&url).await;
    assert!(
        alice.read(doc).as_deref() == Some(&big[..]),
        "Alice reads Bob's write"
    );
    // Settled: nothing of his own is left to push, so nothing is refused again.
    let again = settle(&bob, &url, &relay_store).await;
    assert_eq!(total(&again).refused, 0, "{again:#?}");
}
