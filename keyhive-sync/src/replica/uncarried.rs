//! REP-5a, REP-5b: changes a device seated now could not reach through the keys that changes
//! and entry points carry, and the entry points that make them reachable again.
//!
//! A member seated later reads history by walking back from the content heads through the
//! predecessor keys each change carries (REP-5, CENC-6). A writer carries only the keys of the
//! heads it could open when it wrote (`head_keys`): a change it held but could not open yet (its
//! key-agreement op or blob still on the way) becomes a parent without its key, and once it is
//! no longer a head nothing carries it. Such a change is *uncarried*.

use std::collections::{HashMap, HashSet};

use keyhive_core::capability::{Access, AgentId, AnyVerified};
use keyhive_core::cgka::Cgka;
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::secret::SymmetricKey;
use keyhive_core::identity::{DocumentId, IndividualId};

use super::Replica;
use super::error::ReplicaError;
use super::history::DocHistory;
use crate::store::Store;

/// CENC-3: most predecessor keys one change (or entry point) carries.
const CARRIED_MAX: usize = 1024;

impl<S: Store> Replica<S> {
    /// REP-5, REP-5b: what an entry point of `document` carries: the keys of the content heads
    /// this device can open, then those of the changes it opened that no head carries
    /// (ordered by content op hash), at most [`CARRIED_MAX`] in all.
    pub(super) fn entry_point_keys(
        &self,
        document: DocumentId,
    ) -> Result<Vec<(Hash, SymmetricKey)>, ReplicaError> {
        let mut keys = self.head_keys(document)?;
        let heads = self.admission.checker.content_heads(&document.0);
        let uncarried = self.with_history(document, |h| {
            h.uncarried(&heads)
                .into_iter()
                .filter_map(|id| h.opened.get(&id))
                .map(|o| (o.reference, o.key.clone()))
                .collect::<Vec<_>>()
        })?;
        keys.extend(uncarried);
        keys.truncate(CARRIED_MAX);
        Ok(keys)
    }

    /// REP-5a, REP-5b: whether a change of `document` that this device opened is a content
    /// head or uncarried, no change or entry point sealed under the current epoch carries it
    /// (so a device seated in that epoch, concurrently with the write or after the change
    /// lost its carrier, could not open it), and this device is one that publishes for it:
    /// its author, or any device that opened it once its author no longer holds `read` (that
    /// author never will).
    pub(super) fn uncovered_change_to_publish(
        &self,
        document: DocumentId,
    ) -> Result<bool, ReplicaError> {
        let Some((epoch, _)) = self.cgkas.get(&document).and_then(Cgka::current_epoch) else {
            return Ok(false);
        };
        let me = self.device.id().0;
        let readers = self.admission.checker.members(&document.0);
        let publishes_for = |id: &Hash| match self.admission.checker.op(id) {
            Some(AnyVerified::Content(c)) => {
                c.issuer == me
                    || readers
                        .get(&AgentId::Individual(IndividualId(c.issuer)))
                        .is_none_or(|held| *held < Access::Read)
            }
            _ => false,
        };
        let heads = self.admission.checker.content_heads(&document.0);
        self.with_history(document, |h| {
            let covered = h.covered.get(&epoch);
            let uncovered = |id: &Hash| {
                h.opened
                    .get(id)
                    .is_some_and(|o| covered.is_none_or(|set| !set.contains(&o.reference)))
                    && publishes_for(id)
            };
            heads.iter().any(&uncovered) || h.uncarried(&heads).iter().any(&uncovered)
        })
    }
}

impl DocHistory {
    /// REP-5b: the opened changes (not entry points) that the opened `heads` do not reach
    /// through the predecessor keys they carry, transitively; sorted by id.
    pub(super) fn uncarried(&self, heads: &[Hash]) -> Vec<Hash> {
        let mut by_reference: HashMap<Hash, Vec<Hash>> = HashMap::new();
        for (id, o) in &self.opened {
            by_reference.entry(o.reference).or_default().push(*id);
        }
        let mut reached: HashSet<Hash> = HashSet::new();
        let mut queue: Vec<Hash> = heads
            .iter()
            .filter(|h| self.opened.contains_key(h))
            .copied()
            .collect();
        while let Some(id) = queue.pop() {
            if !reached.insert(id) {
                continue;
            }
            let Some(o) = self.opened.get(&id) else {
                continue;
            };
            for reference in &o.carries {
                queue.extend(by_reference.get(reference).into_iter().flatten().copied());
            }
        }
        let mut out: Vec<Hash> = self
            .opened
            .iter()
            .filter(|(id, o)| o.is_change() && !reached.contains(id))
            .map(|(id, _)| *id)
            .collect();
        out.sort();
        out
    }
}
