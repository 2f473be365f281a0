//! REP-33: what a peer answered of the items a removed device offered it. The peer does not
//! show a removed device whether it holds the ciphertext and key agreement of the subject, so
//! the device remembers what the peer took (per peer, across connections of one client) and
//! what it refused (per connection: offered again after a reconnect, never in a loop).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use keyhive_core::Hash;

use crate::policy::Answered;

/// Items one peer took (stored or already held), shared by a client's sessions with it.
pub(crate) type Taken = Arc<Mutex<BTreeSet<Hash>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Sets of hashes: a panic elsewhere cannot leave them inconsistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What one connection's peer answered of a removed device's own items.
#[derive(Default)]
pub(crate) struct Ledger {
    taken: Taken,
    refused: Mutex<BTreeSet<Hash>>,
}

impl Ledger {
    /// Remembers what the peer takes in `taken` (the client's record for that peer).
    pub(crate) fn share_taken(&mut self, taken: Taken) {
        self.taken = taken;
    }

    /// What the peer answered so far.
    pub(crate) fn answered(&self) -> Answered {
        Answered {
            taken: lock(&self.taken).clone(),
            refused: lock(&self.refused).clone(),
        }
    }

    /// Records the peer's answers to one push.
    pub(crate) fn record(&self, taken: &[Hash], refused: &[Hash]) {
        lock(&self.taken).extend(taken.iter().copied());
        lock(&self.refused).extend(refused.iter().copied());
    }
}
