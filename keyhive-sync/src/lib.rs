//! keyhive-sync: the sync protocol, relay server, client and storage (`specs/sync.md`).
//!
//! Items ([`Item`]) are opaque signed envelopes with a kind and a subject. The relay
//! authorises through [`policy::AccessPolicy`] (the integrator plugs in the capability
//! checker), stores through [`store::Store`] ([`MemoryStore`], or [`RedbStore`] by default), and
//! never holds decryption keys. Clients and peers speak the same protocol.
//!
//! Cargo feature `net` (default) adds the relay server, the client and TLS. Without it
//! (`default-features = false`) the crate is the network-free core for apps that only verify
//! locally: [`item`], [`admission`], [`replica::Replica`], [`store`] and the wire formats in
//! [`protocol`], with no tokio, axum, WebSocket or TLS stack in the dependency tree (91 crates
//! instead of 167).
//!
//! Typical use (see the loopback tests in `tests/` for complete programs):
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

pub mod admission;
pub mod blob;
pub mod capability_policy;
#[cfg(feature = "net")]
pub mod client;
pub mod item;
pub mod policy;
pub mod protocol;
pub mod reconcile;
#[cfg(feature = "net")]
pub mod relay;
pub mod replica;
pub mod store;
#[cfg(feature = "net")]
pub mod tls;

#[cfg(feature = "net")]
pub use client::{Client, Link, LinkStatus, Session, SyncReport};
pub use item::{Item, ItemKind, SubjectId, WireItem};
pub use policy::{AccessPolicy, AllowAll, MemoryPolicy, Refusal, Share};
#[cfg(feature = "net")]
pub use relay::{Relay, RelayConfig, RelayHandle};
pub use store::{MemoryStore, RedbStore, Store, StoreError};
