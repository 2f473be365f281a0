//! ADM-2a: the signatures of a batch checked on several cores, before the batch is admitted in
//! order on one thread.
//!
//! Only `verify_strict`'s own answer is computed here (ENC-5): an item whose signatures hold is
//! admitted without checking them again ([`super::Admission::admit_signatures_checked`]); any
//! other item goes through [`super::Admission::admit`], which checks them again and refuses it
//! with the reason it always gave. So which items share a batch, and on which core each is
//! checked, never changes a verdict. Batch verification is not used: it can accept a signature
//! `verify_strict` refuses (a mixed-order `R`), and then, depending on the other signatures in
//! the batch, so that replicas fed in different groupings would disagree (ENC-5).

use std::collections::HashMap;

use keyhive_core::capability::AnySigned;
use keyhive_core::crypto::signing::PublicKey;

use super::envelope::{Envelope, classify};
use crate::item::Item;

/// CAP-24: the creator of each subject whose genesis the admitting checker holds (and that has
/// no second genesis, CAP-5), as it was when the check started: the signer of the subject's
/// root-form ops. A checker only gains geneses, so admission later ties each root form to the
/// same creator, or finds the subject conflicted and checks the op itself.
pub type RootSigners = HashMap<PublicKey, PublicKey>;

/// Whether every signature `item` carries holds under `verify_strict` (ENC-5), as admission
/// would check them: `false` for an item that does not decode, carries no signature (a change
/// or piece) or has one that does not verify, and for a root-form op (CAP-24) whose subject
/// `root_signers` does not name. A `false` answer only means "check again".
pub fn signatures_hold(item: &Item, root_signers: &RootSigners) -> bool {
    match classify(item) {
        Ok(Envelope::Op(AnySigned::RootForm(op))) => {
            match root_signers.get(&op.unverified_body().subject) {
                Some(creator) => op.with_issuer(*creator).check_signature().is_ok(),
                None => false,
            }
        }
        Ok(Envelope::Op(op)) => op.check_signature().is_ok(),
        Ok(Envelope::Card(card)) => card.check_signature().is_ok(),
        Ok(Envelope::Cgka(op)) => op.check_signature().is_ok(),
        Ok(Envelope::EntryPoint(entry)) => entry.check_signature().is_ok(),
        Ok(Envelope::Blob(_)) | Err(_) => false,
    }
}

/// [`signatures_hold`] for each of `items` (answers in the same order), on up to `threads`
/// scoped threads over contiguous slices. Memory beyond `items` is one answer per item.
pub fn check_signatures(items: &[&Item], threads: usize, root_signers: &RootSigners) -> Vec<bool> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items
            .iter()
            .map(|item| signatures_hold(item, root_signers))
            .collect();
    }
    let per_thread = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(per_thread)
            .map(|slice| {
                scope.spawn(move || {
                    slice
                        .iter()
                        .map(|item| signatures_hold(item, root_signers))
                        .collect::<Vec<bool>>()
                })
            })
            .collect();
        // A worker that panicked answers "check again" for its slice: admission then checks
        // those items itself.
        let mut answers = Vec::with_capacity(items.len());
        for (worker, slice) in workers.into_iter().zip(items.chunks(per_thread)) {
            match worker.join() {
                Ok(part) => answers.extend(part),
                Err(_) => answers.extend(std::iter::repeat_n(false, slice.len())),
            }
        }
        answers
    })
}
