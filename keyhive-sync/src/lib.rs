//! keyhive-sync: end-to-end-encrypted sharing for local-first apps: the device handle
//! ([`Repo`]), the sync protocol, relay server, client and storage (`specs/sync.md`,
//! `specs/replica.md`).
//!
//! # Start here: [`Repo`]
//!
//! An app opens one [`Repo`] per device over a store, creates documents, writes changes
//! (opaque bytes: an Automerge change, a file), grants and revokes access, connects relays and
//! peers, and follows what happens through events ([`replica::Event`]): a change became
//! readable, an edit became invalid because its author was revoked concurrently, membership or
//! this device's access changed. Local actions return at once; network work runs in the
//! background. `examples/automerge_two_devices.rs` builds a two-device Automerge app on it.
//! A device that must survive restarts opens with [`Repo::open_dir`]: its keys, key-agreement
//! secrets and items in a directory of its own, each secret kept before the op that needs it is
//! stored (KEYS-11). The example below uses in-memory devices.
//!
//! ```
//! use std::sync::Arc;
//!
//! use keyhive_core::capability::{Access, AgentId};
//! use keyhive_core::crypto::signing::SigningKey;
//! use keyhive_core::identity::Device;
//! use keyhive_sync::capability_policy::CapabilityPolicy;
//! use keyhive_sync::replica::Event;
//! use keyhive_sync::{MemoryStore, Relay, RelayConfig, Repo};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A relay on loopback: it stores and forwards ciphertext, serving each device what it may pull.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let policy = Arc::new(CapabilityPolicy::new([]));
//! let config = RelayConfig::new(SigningKey::generate());
//! let relay = Relay::serve(listener, Arc::new(MemoryStore::new()), policy, config)?;
//!
//! // Two devices; contact cards travel out of band (a link, a QR code).
//! let alice = Repo::in_memory(Device::generate(Some("alice".into())))?;
//! let bob = Repo::in_memory(Device::generate(Some("bob".into())))?;
//! alice.add_contact(bob.contact_card()?)?;
//!
//! // Local actions are immediate.
//! let doc = alice.create_document()?;
//! alice.grant(&doc.0, AgentId::Individual(bob.id()), Access::Write)?;
//! alice.write(doc, b"hello")?;
//!
//! // Both keep a background link to the relay (pinned to its id) and sync until quiet once.
//! let mut events = bob.subscribe();
//! alice.connect(relay.url(), Some(relay.id())).await;
//! alice.sync().await?;
//! bob.connect(relay.url(), Some(relay.id())).await;
//! bob.sync().await?;
//!
//! // Bob is told when Alice's change is readable (also a blocking iterator: `for e in events`).
//! let change = loop {
//!     match events.next_event().await {
//!         Some(Event::Readable { document, change, .. }) if document == doc => break change,
//!         Some(_) => continue,
//!         None => return Err("the replica closed".into()),
//!     }
//! };
//! assert_eq!(bob.read(doc, &change)?, b"hello");
//!
//! // Bob's reply reaches Alice live, within milliseconds.
//! let mut alice_events = alice.subscribe();
//! let reply = bob.write(doc, b"hi Alice")?;
//! while let Some(event) = alice_events.next_event().await {
//!     if matches!(event, Event::Readable { change, .. } if change == reply) {
//!         break;
//!     }
//! }
//! assert_eq!(alice.read(doc, &reply)?, b"hi Alice");
//!
//! alice.shutdown().await?;
//! bob.shutdown().await?;
//! relay.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # The layers underneath
//!
//! Items ([`Item`]) are opaque signed envelopes with a kind and a subject. The relay
//! authorises through [`policy::AccessPolicy`] (the integrator plugs in the capability
//! checker), stores through [`store::Store`] ([`MemoryStore`], or [`RedbStore`] by default), and
//! never holds decryption keys. Clients and peers speak the same protocol. The device
//! [`replica::Replica`] (what a [`Repo`] drives) verifies and applies every item before it is
//! stored, encrypts and decrypts content, and raises the events.
//!
//! A change's plaintext is the app's own. Apps that share files and named documents lay it
//! out as [`record`]s (`specs/content.md`): a type byte, then file bytes or the document's
//! metadata (name, folder or document), so that every app reads the others' documents.
//!
//! Cargo feature `net` (default) adds the relay server, the client, TLS and [`Repo`]. Without
//! it (`default-features = false`) the crate is the network-free core for apps that only verify
//! locally: [`item`], [`admission`], [`replica::Replica`] (events included), [`store`] and the
//! wire formats in [`protocol`], with no tokio, axum, WebSocket or TLS stack in the dependency
//! tree (91 crates instead of 167).
//!
//! Driving the layers by hand (see the loopback tests in `tests/` for complete programs):
//!
//! ```text
//! // Relay operator
//! let store = Arc::new(RedbStore::open("relay.redb")?);
//! let relay = Relay::serve(listener, store, policy, RelayConfig::new(relay_key))?;
//! // or wss:// (SYNC-35): RelayConfig::new(relay_key).with_tls(tls::server_config_from_pem(..)?)
//! ...
//! relay.shutdown().await?;
//!
//! // Device
//! let client = Client::new(device_key, Arc::new(RedbStore::open("local.redb")?), validator);
//! let link = client.add_link("ws://relay.example:8080/sync", Some(relay_id)); // background
//! client.write(items)?;                       // returns at once; pushed in the background
//! let session = client.connect(url).await?;   // or drive a session by hand:
//! // wss:// URLs verify the relay certificate against the webpki roots, or against the
//! // caller's rustls config: Client::new_with_tls / Session::connect_tls (SYNC-37).
//! let report = client.sync_once(&session).await?;
//! session.push(&items).await?; session.pull(&hashes).await?; session.subscribe(&subjects).await?;
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admission;
pub mod blob;
pub mod capability_policy;
#[cfg(feature = "net")]
pub mod client;
pub mod invite_code;
pub mod item;
pub mod policy;
pub mod protocol;
pub mod reconcile;
pub mod record;
#[cfg(feature = "net")]
pub mod relay;
pub mod replica;
#[cfg(feature = "net")]
pub mod repo;
pub mod store;
#[cfg(feature = "net")]
pub mod tls;

#[cfg(feature = "net")]
pub use client::{Client, Link, LinkStatus, Session, SyncReport};
pub use item::{Item, ItemKind, SubjectId, WireItem};
pub use policy::{AccessPolicy, AllowAll, Answered, MemoryPolicy, Offer, OwnOffer, Refusal, Share};
#[cfg(feature = "net")]
pub use relay::{Relay, RelayConfig, RelayHandle};
#[cfg(feature = "net")]
pub use repo::Repo;
pub use store::{MemoryStore, RedbStore, Store, StoreError};
