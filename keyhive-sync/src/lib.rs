//! keyhive-sync: the sync protocol, relay server, client and storage (`specs/sync.md`).
//!
//! Items are opaque signed envelopes; the relay authorises through [`policy::AccessPolicy`],
//! stores through [`store::Store`], and never holds decryption keys.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod item;
pub mod policy;
pub mod protocol;
pub mod reconcile;
pub mod relay;
pub mod store;

pub use item::{Item, ItemKind, SubjectId, WireItem};
pub use store::{MemoryStore, RedbStore, Store, StoreError};
