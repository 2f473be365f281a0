//! One push request (SYNC-40/41/45) under the per-key item rate (SYNC-105), the stranger
//! quota (SYNC-104), and their per-address counterparts (SYNC-108).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::stranger_push::Unpaid;
use super::{Conn, Stop, send, send_error};
use crate::item::{Item, ItemKind, SubjectId, WireItem};
use crate::policy::Refusal;
use crate::protocol::{ErrorCode, Message, PushOutcome, RequestId};
use crate::relay::Shared;
use crate::relay::address::Address;
use crate::relay::quota::Reservation;
use keyhive_core::identity::IndividualId;

/// SYNC-105: longest a push waits for its key's item bucket before it is refused.
pub(super) const MAX_PUSH_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

impl Conn {
    /// SYNC-40/41/45: validate, authorise, store durably, then acknowledge and fan out.
    pub(super) async fn on_push(
        &mut self,
        req: RequestId,
        items: Vec<WireItem>,
    ) -> Result<(), Stop> {
        if items.len() > self.shared.config.limits.max_push_items {
            return send_error(
                &mut self.wire,
                Some(req),
                ErrorCode::TooLarge,
                "too many items in one push",
            )
            .await;
        }
        // SYNC-105: every item may cost a signature check; a key over its item rate (over all
        // its connections) is not read from until its bucket has room (backpressure, at most
        // MAX_PUSH_DELAY), then answered RateLimited if it still has none.
        if !self.items_within_rate(items.len()).await {
            return send_error(
                &mut self.wire,
                Some(req),
                ErrorCode::RateLimited,
                "item rate limit exceeded; retry later",
            )
            .await;
        }
        // SYNC-104: a stranger stores at most its quota; room is taken before admission (so a
        // refused item never reaches the graph) and given back for what is not stored new.
        let quota = match self.shared.policy.stranger_subjects(&self.peer) {
            None => {
                self.shared.guards.forget(&self.peer);
                None
            }
            Some(own) => {
                let reserved = self
                    .shared
                    .guards
                    .reserve(&self.peer, &own, &*self.shared.store);
                match reserved {
                    Ok(r) => Some(r),
                    Err(e) => return self.internal(req, e).await,
                }
            }
        };
        // SYNC-108: strangers from one address share that address's quota, whatever their keys,
        // and what they stored before a restart still counts (STORE-18).
        if quota.is_some()
            && let Some(a) = self.address
            && let Err(e) = self.shared.addresses.recall(a, &*self.shared.store)
        {
            return self.internal(req, e).await;
        }
        let address_full = quota.is_some()
            && self
                .address
                .is_some_and(|a| !self.shared.addresses.has_room(a));
        // SYNC-104a: a push holding a grant to another device is admitted item by item even
        // once the key's quota is used up (its auth ops are not held to it).
        let sharing: BTreeSet<SubjectId> = match quota {
            None => BTreeSet::new(),
            Some(_) => items
                .iter()
                .filter(|w| crate::policy::stranger::wire_grants_to_another_device(w, &self.peer))
                .map(|w| w.subject)
                .collect(),
        };
        // Used up also when no item of this push fits the room left: a stranger a little
        // under its byte quota otherwise had every frame of a large file's pieces refused
        // piece by piece, and was never told (SYNC-104).
        let key_full = quota.as_ref().is_some_and(|r| {
            sharing.is_empty()
                && (!self.shared.guards.has_room(r) || {
                    let left = self.shared.guards.bytes_left(r);
                    !items.is_empty() && items.iter().all(|w| w.envelope.len() as u64 > left)
                })
        });
        if quota.is_some() && (key_full || address_full) {
            // SYNC-111: a refused push is paid for too, so that a stranger pushing on past its
            // quota is answered no faster than its budget refills (no refusal storm).
            if self.pay_stranger_items(items.len(), &mut false).await == Err(Unpaid::ShuttingDown) {
                return Ok(());
            }
            // SYNC-104: pushing on after the answer counts as an error (SYNC-13), so a
            // stranger that keeps pushing is disconnected.
            self.shared.guards.refused(items.len());
            return self
                .on_malformed_request(
                    req,
                    ErrorCode::QuotaExceeded,
                    &format!("this key {}", crate::protocol::STRANGER_QUOTA_WORDS),
                )
                .await;
        }
        // SYNC-105: admission (signature checks, the capability graph) runs on the blocking
        // pool, so a flood of pushes cannot hold the async workers every other connection
        // (a legitimate sync's handshake and requests) is served on. SYNC-111: a stranger's
        // push is paid for and admitted slice by slice, under the slots strangers share.
        let admitted = match &quota {
            Some(r) => self.admit_stranger_items(items, r, sharing).await,
            None => {
                let (shared, peer, address) = (self.shared.clone(), self.peer, self.address);
                tokio::task::spawn_blocking(move || {
                    admit_items(&shared, peer, address, None, &BTreeSet::new(), items)
                })
                .await
            }
        };
        let Admitted {
            mut outcomes,
            accepted,
            slots,
            stored_by_policy,
        } = match admitted {
            Ok(done) => done,
            Err(e) => {
                // ADM-3: earlier slices of a stranger's push may be in the graph, unstored.
                forget_unstored(&self.shared).await;
                return self.internal(req, e).await;
            }
        };
        if !accepted.is_empty() {
            let sizes: Vec<usize> = accepted.iter().map(Item::wire_len).collect();
            // SYNC-112: written with the pushes of other connections that wait too, in one
            // transaction; acknowledged only after it committed (STORE-1, SYNC-41).
            let (accepted, fresh) = match self.shared.writer.write(accepted).await {
                Ok(pair) => pair,
                Err(e) => {
                    self.give_back_all(quota.as_ref(), &sizes);
                    forget_unstored(&self.shared).await;
                    return self.internal(req, e).await;
                }
            };
            let mut new_items = Vec::new();
            let mut charged = false;
            for (((slot, item), is_new), by_policy) in slots
                .into_iter()
                .zip(accepted)
                .zip(fresh)
                .zip(stored_by_policy)
            {
                if is_new {
                    new_items.push(item);
                    charged = true;
                } else if by_policy {
                    charged = true;
                } else {
                    self.give_back(quota.as_ref(), item.wire_len());
                    outcomes[slot] = PushOutcome::Duplicate;
                }
            }
            if charged
                && quota.is_some()
                && let Some(a) = self.address
            {
                persist_address_usage(self.shared.clone(), a).await;
            }
            if !new_items.is_empty() {
                self.shared.policy.stored(&new_items);
                for item in new_items {
                    // No receivers is fine: nobody is subscribed.
                    let _ = self.shared.live.send((self.id, Arc::new(item)));
                }
            }
        }
        send(&mut self.wire, &Message::PushAck { req, outcomes }).await
    }

    /// Answers `req` with an error that counts toward `max_errors` (SYNC-13): past them the
    /// connection is closed.
    async fn on_malformed_request(
        &mut self,
        req: RequestId,
        code: ErrorCode,
        detail: &str,
    ) -> Result<(), Stop> {
        self.errors += 1;
        send_error(&mut self.wire, Some(req), code, detail).await?;
        if self.errors > self.shared.config.limits.max_errors {
            return Err(Stop::Gone);
        }
        Ok(())
    }

    /// SYNC-105: takes `items` from the key's bucket, then (SYNC-108) from its address's,
    /// waiting (not reading from this connection) up to [`MAX_PUSH_DELAY`] in all for room.
    async fn items_within_rate(&mut self, items: usize) -> bool {
        let deadline = tokio::time::Instant::now() + MAX_PUSH_DELAY;
        let (shared, peer) = (self.shared.clone(), self.peer);
        let within = room_before(deadline, || shared.guards.take_items(&peer, items)).await
            && match self.address {
                None => true,
                Some(a) => room_before(deadline, || shared.addresses.take_items(a, items)).await,
            };
        if !within {
            self.shared.guards.rate_limited();
        }
        within
    }

    /// SYNC-104, SYNC-108: gives back the room a stranger's item took from its key's quota and
    /// its address's.
    fn give_back(&self, quota: Option<&Reservation>, size: usize) {
        give_back(&self.shared, self.address, quota, size);
    }

    /// SYNC-104: gives back the quota taken for items the store did not take.
    fn give_back_all(&self, quota: Option<&Reservation>, sizes: &[usize]) {
        for size in sizes {
            self.give_back(quota, *size);
        }
    }
}

/// What admitting (part of) a push came to: an outcome per item, the admitted items and their
/// outcome slots.
#[derive(Default)]
pub(super) struct Admitted {
    pub(super) outcomes: Vec<PushOutcome>,
    pub(super) accepted: Vec<Item>,
    pub(super) slots: Vec<usize>,
    /// Per accepted item of a stranger, whether the policy stored it while admitting it.
    pub(super) stored_by_policy: Vec<bool>,
}

impl Admitted {
    /// Appends the admission of the items that follow (SYNC-111: the next slice).
    pub(super) fn append(&mut self, next: Admitted) {
        let base = self.outcomes.len();
        self.slots.extend(next.slots.into_iter().map(|s| s + base));
        self.outcomes.extend(next.outcomes);
        self.accepted.extend(next.accepted);
        self.stored_by_policy.extend(next.stored_by_policy);
    }
}

/// SYNC-104, SYNC-108, SYNC-45: takes each item's room from a stranger's quotas (key and
/// address) and admits it. SYNC-104a: the auth ops of a subject in `sharing` (a subject this
/// push grants to another device) take room past the key's quota: the grant and its causal
/// past (the subject's genesis and earlier grants) must get in for the key to stop being a
/// stranger.
pub(super) fn admit_items(
    shared: &Shared,
    peer: IndividualId,
    address: Option<Address>,
    quota: Option<&Reservation>,
    sharing: &BTreeSet<SubjectId>,
    items: Vec<WireItem>,
) -> Admitted {
    let limit = shared.config.limits.stranger_quota;
    let mut outcomes = Vec::with_capacity(items.len());
    let mut accepted = Vec::new();
    let mut slots = Vec::new();
    let mut stored_by_policy = Vec::new();
    for wire in items {
        let item = match Item::from_wire(wire) {
            Err(_) => {
                outcomes.push(PushOutcome::Invalid);
                continue;
            }
            Ok(item) => item,
        };
        let size = item.wire_len();
        let taken = match quota {
            None => true,
            Some(r) if item.kind() == ItemKind::Auth && sharing.contains(&item.subject()) => {
                shared.guards.take_for_sharing(r, size)
            }
            Some(r) => shared.guards.take(r, size),
        };
        if !taken {
            let refusal = Refusal::QuotaExceeded {
                who: peer,
                items: limit.items,
                bytes: limit.bytes,
            };
            outcomes.push(PushOutcome::Refused(refusal_text(&refusal)));
            continue;
        }
        if quota.is_some()
            && let Some(a) = address
            && !shared.addresses.take_stored(a, size)
        {
            // Only the key's room was taken for it.
            if let Some(r) = quota {
                shared.guards.give_back(r, size);
            }
            shared.guards.refused(1);
            let limit = shared.addresses.stranger_quota();
            let refusal = Refusal::AddressQuotaExceeded {
                items: limit.items,
                bytes: limit.bytes,
            };
            outcomes.push(PushOutcome::Refused(refusal_text(&refusal)));
            continue;
        }
        // SYNC-104: a policy that stores what it admits (a device serving peers, REP-2) leaves
        // the writer nothing new to store; what it stored is charged all the same.
        let held_before = quota.is_some() && shared.store.contains(&item.hash()).unwrap_or(true);
        match shared.policy.check_push(&peer, &item) {
            Err(refusal) => {
                // SYNC-104: an item refused for want of what it depends on leaves nothing
                // behind; others may stay in the graph (RELAY-1/2 keep refused ops), so
                // they keep counting.
                if quota.is_some()
                    && matches!(
                        refusal,
                        Refusal::MissingPredecessors(_)
                            | Refusal::UnknownSubject(_)
                            | Refusal::Unnamed
                            | Refusal::Malformed(_)
                            | Refusal::BadSignature(_)
                    )
                {
                    give_back(shared, address, quota, size);
                }
                outcomes.push(PushOutcome::Refused(refusal_text(&refusal)));
            }
            Ok(()) => {
                let stored_on_admission = quota.is_some()
                    && !held_before
                    && shared.store.contains(&item.hash()).unwrap_or(false);
                slots.push(outcomes.len());
                outcomes.push(PushOutcome::Stored);
                accepted.push(item);
                stored_by_policy.push(stored_on_admission);
            }
        }
    }
    Admitted {
        outcomes,
        accepted,
        slots,
        stored_by_policy,
    }
}

/// SYNC-104, SYNC-108: gives back the room a stranger's item took from its key's quota and its
/// address's.
fn give_back(shared: &Shared, address: Option<Address>, quota: Option<&Reservation>, size: usize) {
    if let Some(r) = quota {
        shared.guards.give_back(r, size);
        if let Some(a) = address {
            shared.addresses.give_back(a, size);
        }
    }
}

/// SYNC-108, STORE-18: records what strangers from `address` stored, so that a restart
/// does not give the address a fresh budget. A failure is logged: the items are stored and
/// acknowledged, and the next stranger push from the address records the total again.
async fn persist_address_usage(shared: Arc<Shared>, address: Address) {
    let persisted =
        tokio::task::spawn_blocking(move || shared.addresses.persist(address, &*shared.store))
            .await;
    match persisted {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot record a stranger address's usage; a restart may forget part of it");
        }
        Err(e) => {
            tracing::warn!(error = %e, "recording a stranger address's usage failed");
        }
    }
}

/// Waits until `take` succeeds, or answers `false` when it would not before `deadline`.
pub(super) async fn room_before(
    deadline: tokio::time::Instant,
    mut take: impl FnMut() -> Result<(), Option<std::time::Duration>>,
) -> bool {
    loop {
        match take() {
            Ok(()) => return true,
            Err(wait) => {
                let now = tokio::time::Instant::now();
                if wait.is_none_or(|w| now + w > deadline) {
                    return false;
                }
                tokio::time::sleep(wait.unwrap_or_default()).await;
            }
        }
    }
}

/// ADM-3: the policy admitted items the store did not take; it rebuilds from the store so that
/// the relay never acts on an op it has not stored.
async fn forget_unstored(shared: &Shared) {
    let (policy, store) = (shared.policy.clone(), shared.store.clone());
    if let Err(e) = tokio::task::spawn_blocking(move || policy.not_stored(&*store)).await {
        tracing::error!(error = %e, "rebuilding the relay's policy failed");
    }
}

/// A push refusal as the pusher reads it: the refusal and its causes, so that a refused op
/// names the rule (e.g. `op refused by the capability rules: INV-5: redeemed at ...`).
fn refusal_text(refusal: &crate::policy::Refusal) -> String {
    let mut text = refusal.to_string();
    let mut cause = std::error::Error::source(refusal);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
