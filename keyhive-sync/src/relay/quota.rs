//! What strangers may store and how fast any key may push (SYNC-104, SYNC-105).
//!
//! A stranger is a key that holds no grant from another key and on whose subjects no other key
//! holds a grant ([`crate::policy::AccessPolicy::stranger_subjects`]). Its usage at this relay
//! (items and envelope bytes it pushed that were stored new) is kept in memory and recomputed
//! from the store the first time it pushes after a start (or after its entry was evicted): the
//! items of the subjects it created. A restart therefore does not reset what a stranger stored
//! in its own subjects.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use keyhive_core::identity::IndividualId;

use super::limits::{StrangerQuota, TokenBucket};
use crate::item::SubjectId;
use crate::store::{Store, StoreError};

/// Most keys whose stranger usage is held at once; an evicted entry is recomputed from the
/// store when its key pushes again.
const MAX_TRACKED_STRANGERS: usize = 65_536;
/// Most keys whose push rate is held at once; a full bucket carries no information and is the
/// first evicted.
const MAX_TRACKED_RATES: usize = 16_384;

/// Counts of what the relay refused or dropped to protect itself (SYNC-104..106).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AbuseCounts {
    /// SYNC-104: items refused because a stranger's quota was used up.
    pub quota_refusals: u64,
    /// SYNC-105, SYNC-108: push requests refused because their key or their network address
    /// exceeded its item rate.
    pub rate_limited_pushes: u64,
    /// SYNC-108: connections refused because their network address held all its connections.
    pub address_connections_refused: u64,
    /// SYNC-111: stranger pushes held (their connection not read) until their key's budget
    /// of signature checks refilled.
    pub stranger_pushes_held: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    items: u64,
    bytes: u64,
    /// SYNC-104a: items admitted past the quota.
    past_quota: u64,
}

/// Per-key stranger usage and item-rate buckets, shared by every connection of a relay.
/// SYNC-104a: most auth ops one key stores past its stranger quota to share a subject (a
/// grant and its causal past take a few).
pub(crate) const PAST_QUOTA_MAX: u64 = 64;

pub(crate) struct Guards {
    quota: StrangerQuota,
    items_per_second: f64,
    burst_items: f64,
    usage: Mutex<HashMap<IndividualId, Usage>>,
    rates: Mutex<HashMap<IndividualId, TokenBucket>>,
    quota_refusals: AtomicU64,
    rate_limited: AtomicU64,
}

/// One push's hold on a stranger's quota: room taken for an item is given back unless the
/// item is stored new.
#[derive(Clone)]
pub(crate) struct Reservation {
    who: IndividualId,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only follows a panic elsewhere; counters stay usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Guards {
    pub(crate) fn new(quota: StrangerQuota, items_per_second: f64, burst_items: f64) -> Self {
        Guards {
            quota,
            items_per_second,
            burst_items,
            usage: Mutex::new(HashMap::new()),
            rates: Mutex::new(HashMap::new()),
            quota_refusals: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
        }
    }

    pub(crate) fn counts(&self) -> AbuseCounts {
        AbuseCounts {
            quota_refusals: self.quota_refusals.load(Ordering::Relaxed),
            rate_limited_pushes: self.rate_limited.load(Ordering::Relaxed),
            address_connections_refused: 0,
            stranger_pushes_held: 0,
        }
    }

    /// SYNC-104: counts `items` refused because a stranger's quota was used up.
    pub(crate) fn refused(&self, items: usize) {
        self.quota_refusals
            .fetch_add(items as u64, Ordering::Relaxed);
    }

    /// SYNC-105: takes `items` from `who`'s bucket; when it has too few, how long until it
    /// has enough (`None`: never, more than a burst).
    pub(crate) fn take_items(
        &self,
        who: &IndividualId,
        items: usize,
    ) -> Result<(), Option<std::time::Duration>> {
        let mut rates = lock(&self.rates);
        if !rates.contains_key(who) && rates.len() >= MAX_TRACKED_RATES {
            rates.retain(|_, bucket| !bucket.is_full());
            if rates.len() >= MAX_TRACKED_RATES {
                // Every tracked key is busy: forget one (it starts again from a full burst).
                if let Some(k) = rates.keys().next().copied() {
                    rates.remove(&k);
                }
            }
        }
        let bucket = rates
            .entry(*who)
            .or_insert_with(|| TokenBucket::new(self.items_per_second, self.burst_items));
        if bucket.try_take(items as f64) {
            Ok(())
        } else {
            Err(bucket.wait_for(items as f64))
        }
    }

    /// SYNC-105: counts a push refused for its key's item rate.
    pub(crate) fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// SYNC-104: `who` is not a stranger (any more); its usage is no longer tracked.
    pub(crate) fn forget(&self, who: &IndividualId) {
        lock(&self.usage).remove(who);
    }

    /// SYNC-104: starts a push by the stranger `who`, whose own subjects are `subjects`;
    /// recomputes its usage from `store` if it is not tracked.
    pub(crate) fn reserve(
        &self,
        who: &IndividualId,
        subjects: &[SubjectId],
        store: &dyn Store,
    ) -> Result<Reservation, StoreError> {
        if !lock(&self.usage).contains_key(who) {
            let stored = usage_in(store, subjects)?;
            let mut usage = lock(&self.usage);
            if usage.len() >= MAX_TRACKED_STRANGERS
                && let Some(k) = usage.keys().next().copied()
            {
                usage.remove(&k);
            }
            usage.entry(*who).or_insert(stored);
        }
        Ok(Reservation { who: *who })
    }

    /// SYNC-104: takes room for one item of `bytes` envelope bytes; `false` (and counted) when
    /// the stranger's quota has no room for it.
    pub(crate) fn take(&self, reservation: &Reservation, bytes: usize) -> bool {
        let bytes = bytes as u64;
        let mut usage = lock(&self.usage);
        let used = usage.entry(reservation.who).or_default();
        if used.items.saturating_add(1) > self.quota.items
            || used.bytes.saturating_add(bytes) > self.quota.bytes
        {
            self.quota_refusals.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        used.items += 1;
        used.bytes += bytes;
        true
    }

    /// SYNC-104a: takes room for an auth op of a subject the push grants to another device:
    /// within the quota as usual, past it for at most [`PAST_QUOTA_MAX`] items per key, so that
    /// a key never stores more than a fresh key could.
    pub(crate) fn take_for_sharing(&self, reservation: &Reservation, bytes: usize) -> bool {
        let bytes = bytes as u64;
        let mut usage = lock(&self.usage);
        let used = usage.entry(reservation.who).or_default();
        let within = used.items.saturating_add(1) <= self.quota.items
            && used.bytes.saturating_add(bytes) <= self.quota.bytes;
        if !within {
            if used.past_quota >= PAST_QUOTA_MAX {
                self.quota_refusals.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            used.past_quota += 1;
        }
        used.items = used.items.saturating_add(1);
        used.bytes = used.bytes.saturating_add(bytes);
        true
    }

    /// Gives back room taken for an item that was not stored new (refused, a duplicate, or
    /// the store failed).
    pub(crate) fn give_back(&self, reservation: &Reservation, bytes: usize) {
        let bytes = bytes as u64;
        let mut usage = lock(&self.usage);
        if let Some(used) = usage.get_mut(&reservation.who) {
            used.items = used.items.saturating_sub(1);
            used.bytes = used.bytes.saturating_sub(bytes);
        }
    }

    /// The envelope bytes the stranger may still store (0 once its item count is used up).
    pub(crate) fn bytes_left(&self, reservation: &Reservation) -> u64 {
        lock(&self.usage)
            .get(&reservation.who)
            .map_or(self.quota.bytes, |u| {
                if u.items >= self.quota.items {
                    0
                } else {
                    self.quota.bytes.saturating_sub(u.bytes)
                }
            })
    }

    /// Whether the stranger has room left for at least one more item.
    pub(crate) fn has_room(&self, reservation: &Reservation) -> bool {
        lock(&self.usage)
            .get(&reservation.who)
            .is_none_or(|u| u.items < self.quota.items && u.bytes < self.quota.bytes)
    }
}

/// What `subjects` hold in `store`: items and envelope bytes.
fn usage_in(store: &dyn Store, subjects: &[SubjectId]) -> Result<Usage, StoreError> {
    let mut usage = Usage::default();
    for subject in subjects {
        for hash in store.hashes(subject)? {
            if let Some(item) = store.get(&hash)? {
                usage.items += 1;
                usage.bytes += item.wire_len() as u64;
            }
        }
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use keyhive_core::crypto::signing::PublicKey;

    fn key(b: u8) -> IndividualId {
        IndividualId(PublicKey([b; 32]))
    }

    #[test]
    fn a_stranger_is_stopped_at_its_item_quota_and_refunds_free_room() {
        let guards = Guards::new(StrangerQuota::new(2, 1_000), 1.0, 1.0);
        let store = MemoryStore::new();
        let r = guards.reserve(&key(1), &[], &store).expect("reserve");
        assert!(guards.take(&r, 10));
        assert!(guards.take(&r, 10));
        assert!(!guards.take(&r, 10));
        assert!(!guards.has_room(&r));
        guards.give_back(&r, 10);
        assert!(guards.has_room(&r));
        assert!(guards.take(&r, 10));
        assert_eq!(guards.counts().quota_refusals, 1);
    }

    #[test]
    fn a_stranger_is_stopped_at_its_byte_quota() {
        let guards = Guards::new(StrangerQuota::new(100, 25), 1.0, 1.0);
        let store = MemoryStore::new();
        let r = guards.reserve(&key(1), &[], &store).expect("reserve");
        assert!(guards.take(&r, 20));
        assert!(!guards.take(&r, 6));
        assert!(guards.take(&r, 5));
    }

    #[test]
    fn the_item_rate_is_per_key() {
        let guards = Guards::new(StrangerQuota::default(), 0.0, 10.0);
        assert!(guards.take_items(&key(1), 10).is_ok());
        assert_eq!(
            guards.take_items(&key(1), 1),
            Err(None),
            "no refill at rate 0"
        );
        assert!(guards.take_items(&key(2), 10).is_ok());
    }

    #[test]
    fn an_empty_bucket_says_how_long_to_wait() {
        let guards = Guards::new(StrangerQuota::default(), 100.0, 10.0);
        assert!(guards.take_items(&key(1), 10).is_ok());
        let wait = guards.take_items(&key(1), 5).expect_err("empty");
        assert!(wait.is_some_and(|w| w <= std::time::Duration::from_millis(50)));
        assert_eq!(
            guards.take_items(&key(1), 11),
            Err(None),
            "more than a burst"
        );
    }
}
