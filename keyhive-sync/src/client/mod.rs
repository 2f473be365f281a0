//! The connecting side: sessions, one-shot sync, and the background [`Client`].
mod answered;
pub mod background;
mod offer_cache;
pub mod session;
pub mod sync;

pub use background::{Client, Link, LinkStatus, Outbox};
pub use session::{ConnectError, LiveEvent, Reconciled, Session, SessionError, WireStats};
pub use sync::{Refusals, SyncError, SyncReport, sync_once};
