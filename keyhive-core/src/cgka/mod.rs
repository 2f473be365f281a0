//! Continuous group key agreement for one document: a concurrent TreeKEM variant in the style
//! of BeeKEM (`specs/cgka.md`).
//!
//! * [`op`]: the signed ops (init, adds, remove, update, fills) and their wire form.
//! * [`tree`]: the public ratchet tree, blanks, conflict keys and resolutions.
//! * [`path`]: path-secret derivation and wrapping (X25519 + BLAKE3 + XChaCha20-Poly1305).
//! * [`state`]: the op DAG, its deterministic replay and the local device's secrets.
//! * [`authority`]: the capability questions every op is checked against.
//! * [`binding`]: the one init a document's genesis names.
//! * [`membership`]: matching the members to the capability graph's readers.

pub mod authority;
pub mod binding;
pub mod membership;
pub mod op;
pub mod path;
pub mod state;
pub mod tree;

#[cfg(test)]
mod add_many_tests;
#[cfg(test)]
mod adversarial_tests;
#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod divergent_view_tests;
#[cfg(test)]
mod fill_position_tests;
#[cfg(test)]
mod fill_tests;
#[cfg(test)]
mod history_tests;
#[cfg(test)]
mod refresh_tests;
#[cfg(test)]
mod removed_update_tests;
#[cfg(test)]
mod replay_vectors;
#[cfg(test)]
mod resolver_tests;
#[cfg(test)]
mod seat_tests;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod vectors;

pub use authority::{CgkaAuthority, StaticAuthority};
pub use binding::{InitBinding, InitBindingError, check_init};
pub use membership::MembershipPlan;
pub use op::{
    CgkaBody, CgkaOp, FillNodes, FilledNode, PositionedFill, PositionedNode, PositionedSecret,
    Seat, SignedCgkaOp,
};
pub use state::{Cgka, CgkaSecrets, CreateError, InitError, ReceiveError, Received};
