//! SYNC-111: a stranger's push, paid from its key's budget of signature checks and admitted
//! in slices, each holding one of the admission slots all strangers share.

use super::Conn;
use super::push::{Admitted, admit_items};
use std::collections::BTreeSet;

use crate::item::{SubjectId, WireItem};
use crate::protocol::PushOutcome;
use crate::relay::quota::Reservation;
use crate::relay::stranger_budget::Payment;

/// Why the rest of a stranger's push was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unpaid {
    /// Its budget can never pay for it (a rate of 0 past the burst).
    Never,
    /// The relay is shutting down.
    ShuttingDown,
}

impl Unpaid {
    fn outcome(self) -> PushOutcome {
        PushOutcome::Refused(
            match self {
                Unpaid::Never => {
                    "SYNC-111: this key holds no grant from anyone and its budget of signature \
                     checks here does not refill"
                }
                Unpaid::ShuttingDown => "the relay is shutting down; push again later",
            }
            .into(),
        )
    }
}

impl Conn {
    /// SYNC-111: pays for `items` from the stranger's budget, reading nothing from the
    /// connection until they are paid; `Err` if they never will be or the relay stops first.
    /// `held` says whether this push already waited (it is counted once).
    pub(super) async fn pay_stranger_items(
        &mut self,
        items: usize,
        held: &mut bool,
    ) -> Result<(), Unpaid> {
        let mut shutdown = self.shared.shutdown.clone();
        tokio::select! {
            paid = self.shared.strangers.pay(&self.peer, items, held) => match paid {
                Payment::AtOnce | Payment::Waited => Ok(()),
                Payment::Never => Err(Unpaid::Never),
            },
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => Err(Unpaid::ShuttingDown),
        }
    }

    /// SYNC-111: admits a stranger's `items` slice by slice, each paid for first and admitted
    /// on the blocking pool under one of the strangers' shared admission slots. Items left
    /// unpaid are refused ([`Unpaid`]); what was admitted before stays admitted.
    pub(super) async fn admit_stranger_items(
        &mut self,
        items: Vec<WireItem>,
        quota: &Reservation,
        sharing: BTreeSet<SubjectId>,
    ) -> Result<Admitted, tokio::task::JoinError> {
        let slice = self.shared.strangers.slice_len();
        let mut done = Admitted::default();
        let mut items = items.into_iter();
        let mut held = false;
        loop {
            let chunk: Vec<WireItem> = items.by_ref().take(slice).collect();
            if chunk.is_empty() {
                break;
            }
            if let Err(unpaid) = self.pay_stranger_items(chunk.len(), &mut held).await {
                let left = chunk.len() + items.len();
                done.outcomes
                    .extend(std::iter::repeat_n(unpaid.outcome(), left));
                break;
            }
            let permit = self.shared.strangers.slot().await;
            let (shared, peer, address) = (self.shared.clone(), self.peer, self.address);
            let (quota, sharing) = (quota.clone(), sharing.clone());
            let part = tokio::task::spawn_blocking(move || {
                let part = admit_items(&shared, peer, address, Some(&quota), &sharing, chunk);
                drop(permit);
                part
            })
            .await?;
            done.append(part);
        }
        Ok(done)
    }
}
