//! SYNC-111: what strangers' pushes may cost the relay: a per-key budget of pushed items
//! (signature checks) per second, and a bound on how much of their admission runs at once.
//!
//! A stranger (SYNC-104) holds no grant from anyone, so a fresh key pair is one. Each item it
//! pushes may cost a signature check on the cores every other connection is served on; its
//! items are paid from its key's bucket and from one all strangers share (so that a fresh key
//! per frame gains nothing) before the relay looks at them, and the relay reads
//! nothing more from the connection until they are paid (backpressure, never a refusal while
//! the budget refills). Its admission then runs in slices of at most
//! [`super::limits::ADMISSION_SLICE`] items, each holding one of `Limits::stranger_admissions`
//! slots shared by every stranger, so strangers together hold at most that many blocking
//! threads (and, one item at a time, the capability graph), and a granted key's push is never
//! queued behind a stranger's 4,096-item frame.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyhive_core::identity::IndividualId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::limits::{ADMISSION_SLICE, TokenBucket};

/// Most keys whose stranger budget is held at once; a full bucket carries no information and
/// is the first evicted.
const MAX_TRACKED: usize = 16_384;

/// Per-key stranger budgets and the admission slots all strangers share.
pub(crate) struct StrangerBudget {
    rate: f64,
    burst: f64,
    /// Every stranger's items are paid from this bucket too.
    all: Mutex<TokenBucket>,
    buckets: Mutex<HashMap<IndividualId, TokenBucket>>,
    slots: Arc<Semaphore>,
    held: AtomicU64,
}

/// What paying for items from a stranger's budget came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Payment {
    /// The items are paid for, at once.
    AtOnce,
    /// The items are paid for, after waiting for the budget to refill.
    Waited,
    /// The budget never refills enough (a rate of 0 past the burst).
    Never,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only follows a panic elsewhere; buckets stay usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl StrangerBudget {
    /// Per key `rate` and `burst`; all strangers together `all_rate` and `all_burst`.
    pub(crate) fn new(
        (rate, burst): (f64, f64),
        (all_rate, all_burst): (f64, f64),
        admissions: usize,
    ) -> Self {
        StrangerBudget {
            // A piece is paid from both buckets at once: at most the smaller burst.
            rate,
            burst: burst.min(all_burst),
            all: Mutex::new(TokenBucket::new(all_rate, all_burst)),
            buckets: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(admissions.max(1))),
            held: AtomicU64::new(0),
        }
    }

    /// Items of a stranger's push admitted in one slice: at most [`ADMISSION_SLICE`], and never
    /// more than a burst (so that each slice can be paid for).
    pub(crate) fn slice_len(&self) -> usize {
        // A burst below one item still lets one item through per refill.
        let burst = self.burst.floor().max(1.0);
        if burst >= ADMISSION_SLICE as f64 {
            ADMISSION_SLICE
        } else {
            burst as usize
        }
    }

    /// How many stranger pushes waited for their budget.
    pub(crate) fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Takes `items` from `who`'s bucket and the one all strangers share; when either has too
    /// few, how long until it has enough (`None`: never).
    fn try_take(&self, who: &IndividualId, items: usize) -> Result<(), Option<Duration>> {
        let mut buckets = lock(&self.buckets);
        if !buckets.contains_key(who) && buckets.len() >= MAX_TRACKED {
            buckets.retain(|_, bucket| !bucket.is_full());
            if buckets.len() >= MAX_TRACKED
                && let Some(k) = buckets.keys().next().copied()
            {
                // Every tracked stranger is busy: forget one (it starts again from a burst).
                buckets.remove(&k);
            }
        }
        let bucket = buckets
            .entry(*who)
            .or_insert_with(|| TokenBucket::new(self.rate, self.burst));
        let cost = items as f64;
        if !bucket.try_take(cost) {
            return Err(bucket.wait_for(cost));
        }
        let mut all = lock(&self.all);
        if all.try_take(cost) {
            Ok(())
        } else {
            bucket.give_back(cost);
            Err(all.wait_for(cost))
        }
    }

    /// Pays for `items` pushed by the stranger `who`, in pieces of at most a burst, waiting for
    /// its bucket to refill between them (`Never` when it cannot refill enough). The caller
    /// reads nothing from the connection meanwhile. The first wait of a push (`held` still
    /// false) is counted, when it starts.
    pub(crate) async fn pay(&self, who: &IndividualId, items: usize, held: &mut bool) -> Payment {
        // Pieces of a whole burst: a burst below one item pays for nothing.
        let piece = self.burst.floor() as usize;
        if piece == 0 && items > 0 {
            return Payment::Never;
        }
        let mut left = items;
        let mut waited = false;
        while left > 0 {
            let now = left.min(piece);
            match self.try_take(who, now) {
                Ok(()) => left -= now,
                Err(None) => return Payment::Never,
                Err(Some(wait)) => {
                    waited = true;
                    if !*held {
                        *held = true;
                        self.held.fetch_add(1, Ordering::Relaxed);
                    }
                    // A float rounding may leave a hair short: wait at least a millisecond.
                    tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
                }
            }
        }
        if waited {
            Payment::Waited
        } else {
            Payment::AtOnce
        }
    }

    /// One of the admission slots all strangers share, held while a slice is admitted.
    pub(crate) async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().acquire_owned().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyhive_core::crypto::signing::PublicKey;

    fn key(b: u8) -> IndividualId {
        IndividualId(PublicKey([b; 32]))
    }

    /// SYNC-111: slices are at most ADMISSION_SLICE items and never more than a burst.
    #[test]
    fn slices_fit_the_burst() {
        assert_eq!(
            StrangerBudget::new((1.0, 1_000.0), (1.0, 1e6), 1).slice_len(),
            ADMISSION_SLICE
        );
        assert_eq!(
            StrangerBudget::new((1.0, 10.0), (1.0, 1e6), 1).slice_len(),
            10
        );
        assert_eq!(
            StrangerBudget::new((1.0, 0.0), (1.0, 1e6), 1).slice_len(),
            1
        );
    }

    /// SYNC-111: the budget is per key, and with no refill it says so instead of waiting.
    #[tokio::test]
    async fn the_budget_is_per_key_and_never_refills_at_rate_zero() {
        let budget = StrangerBudget::new((0.0, 10.0), (1e6, 1e6), 1);
        assert_eq!(budget.pay(&key(1), 10, &mut false).await, Payment::AtOnce);
        assert_eq!(budget.pay(&key(1), 1, &mut false).await, Payment::Never);
        assert_eq!(budget.pay(&key(2), 10, &mut false).await, Payment::AtOnce);
    }

    /// SYNC-111: all strangers together pay from one more bucket, so a fresh key gains
    /// nothing once it is empty; a piece not paid by it is given back to the key's.
    #[tokio::test]
    async fn all_strangers_share_one_budget() {
        let budget = StrangerBudget::new((0.0, 10.0), (0.0, 15.0), 1);
        assert_eq!(budget.pay(&key(1), 10, &mut false).await, Payment::AtOnce);
        assert_eq!(budget.pay(&key(2), 6, &mut false).await, Payment::Never);
        assert_eq!(budget.pay(&key(2), 5, &mut false).await, Payment::AtOnce);
        assert_eq!(budget.pay(&key(3), 1, &mut false).await, Payment::Never);
    }

    /// SYNC-111: a push larger than the burst is paid in pieces as the bucket refills.
    #[tokio::test]
    async fn more_than_a_burst_is_paid_as_it_refills() {
        let budget = StrangerBudget::new((1_000.0, 10.0), (1e6, 1e6), 1);
        assert_eq!(budget.pay(&key(1), 10, &mut false).await, Payment::AtOnce);
        let mut held = false;
        assert_eq!(budget.pay(&key(1), 25, &mut held).await, Payment::Waited);
        assert!(held);
        assert_eq!(budget.held(), 1, "one push held");
    }
}
