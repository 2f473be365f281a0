//! REP-3b: after a sync, a root left in conflict by concurrent updates is re-keyed by its
//! resolver (CGKA-37), not by every device that sees it, so that devices syncing together do
//! not answer each other's updates with more concurrent updates (an update storm).

use keyhive_core::identity::DocumentId;

use super::super::Replica;
use crate::store::Store;

impl<S: Store> Replica<S> {
    /// REP-3b: whether the preparation of `document` after a sync, its membership plan empty,
    /// leaves the root's conflict to another device: the root holds keys of concurrent updates
    /// and their resolver (CGKA-37) is another seated device. Encrypting never leaves it
    /// (REP-3, CGKA-19), nor does a plan that seats or removes a device.
    pub(in crate::replica) fn leaves_conflict(&self, document: DocumentId) -> bool {
        let me = self.device.id();
        self.cgkas
            .get(&document)
            .and_then(|cgka| cgka.conflict_resolver())
            .is_some_and(|resolver| resolver != me)
    }
}
