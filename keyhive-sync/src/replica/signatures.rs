//! ADM-2a on a replica: a batch's signatures are checked (`verify_strict`) on the available
//! cores, one chunk ahead of the thread that admits and applies the batch in order, so that
//! checking chunk k+1 overlaps applying chunk k. Verdicts are those of checking one item at a
//! time (`admission::parallel`); memory beyond the batch is one answer per item of two chunks.

use std::collections::HashSet;
use std::thread::ScopedJoinHandle;

use keyhive_core::crypto::hash::Hash;

use super::{Replica, ReplicaError};
use crate::admission::{RootSigners, check_signatures};
use crate::item::{Item, ItemKind};
use crate::store::Store;

/// Items per chunk whose signatures are checked together (about 20 ms of `verify_strict` on
/// one core: long beside a thread start, short beside a sync round).
pub const SIGNATURE_CHUNK: usize = 256;

/// The default number of threads checking signatures: the available cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// What is done ahead with one item's signatures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ahead {
    /// REP-70: this device verified them before; not checked again.
    Trusted,
    /// Already stored: admission finds it a duplicate (or checks it itself).
    Skip,
    /// Checked on the available cores.
    Check,
}

impl<S: Store> Replica<S> {
    /// Sets how many threads check the signatures of a batch ([`Replica::ingest_all`] and the
    /// replay on open) ahead of applying it (ADM-2a); 1 checks each item as it is admitted, on
    /// the calling thread. The default is the number of available cores. Verdicts do not
    /// depend on it.
    pub fn set_signature_threads(&mut self, threads: usize) {
        self.signature_threads = threads.max(1);
    }

    /// How many threads check a batch's signatures.
    pub fn signature_threads(&self) -> usize {
        self.signature_threads
    }

    /// Calls `apply` on each of `items`, in order, with whether its signatures were found to
    /// hold under `verify_strict` ahead of time (`false`: admission checks them itself).
    /// With `skip_stored`, items already stored are not checked ahead. Items in `trusted`
    /// (REP-70: this device verified them before) are not checked, and passed as checked.
    pub(super) fn for_each_checked<'a>(
        &mut self,
        items: &'a [Item],
        skip_stored: bool,
        trusted: &HashSet<Hash>,
        mut apply: impl FnMut(&mut Self, &Item, bool) -> Result<(), ReplicaError>,
    ) -> Result<(), ReplicaError> {
        let threads = self.signature_threads;
        if threads <= 1 {
            for item in items {
                apply(self, item, trusted.contains(&item.hash()))?;
            }
            return Ok(());
        }
        let chunks: Vec<&[Item]> = items.chunks(SIGNATURE_CHUNK).collect();
        std::thread::scope(|scope| {
            let spawn = |this: &Self, chunk: &'a [Item]| -> Result<_, ReplicaError> {
                let mut ahead = Vec::with_capacity(chunk.len());
                // CAP-24: the creators that sign the chunk's root-form ops, as held now.
                let mut root_signers = RootSigners::new();
                for item in chunk {
                    ahead.push(if trusted.contains(&item.hash()) {
                        Ahead::Trusted
                    } else if skip_stored && this.store.contains(&item.hash())? {
                        Ahead::Skip
                    } else {
                        Ahead::Check
                    });
                    let subject = item.subject().0;
                    if item.kind() == ItemKind::Auth
                        && !root_signers.contains_key(&subject)
                        && let Some(info) = this.admission.checker.subject_info(&subject)
                        && !info.conflicted
                    {
                        root_signers.insert(subject, info.creator.0);
                    }
                }
                let handle: ScopedJoinHandle<'_, Vec<bool>> = scope.spawn(move || {
                    let unchecked: Vec<&Item> = chunk
                        .iter()
                        .zip(&ahead)
                        .filter(|(_, a)| **a == Ahead::Check)
                        .map(|(item, _)| item)
                        .collect();
                    let mut answers =
                        check_signatures(&unchecked, threads, &root_signers).into_iter();
                    // One answer per item of the chunk; a stored item is left to admission.
                    ahead
                        .iter()
                        .map(|a| match a {
                            Ahead::Trusted => true,
                            Ahead::Skip => false,
                            Ahead::Check => answers.next().unwrap_or(false),
                        })
                        .collect()
                });
                Ok(handle)
            };
            let mut next = match chunks.first() {
                Some(chunk) => Some(spawn(self, chunk)?),
                None => None,
            };
            for (k, chunk) in chunks.iter().enumerate() {
                let Some(handle) = next.take() else {
                    break;
                };
                // A checker that panicked leaves every item to admission's own check.
                let answers = handle.join().unwrap_or_default();
                if let Some(following) = chunks.get(k + 1) {
                    next = Some(spawn(self, following)?);
                }
                for (n, item) in chunk.iter().enumerate() {
                    apply(self, item, answers.get(n).copied().unwrap_or(false))?;
                }
            }
            Ok(())
        })
    }
}
