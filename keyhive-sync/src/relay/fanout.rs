//! Several stateless relays on one shared store (`specs/sync.md` SYNC-100..SYNC-103).
//!
//! Design: notifications plus catch-up, not shared policy state in the database. Each relay
//! keeps its own capability view (the same [`AccessPolicy`] a single relay uses, built by the
//! one admission path) and a cursor into the store's commit log ([`Feed`]). Why: the capability
//! graph is the admission state machine of `crate::admission`; duplicating it in SQL would be a
//! second implementation of the rules, and the log already orders everything every relay needs.
//!
//! - SYNC-100: before deciding anything that depends on authorisation (a push check, a pull,
//!   a reconciliation, a collection offer, a subscription, forwarding a live item), a relay
//!   catches up: it applies every item committed after its cursor, in commit order, to its
//!   policy. An auth op acknowledged by relay A is therefore in relay B's view before B answers
//!   any request that B received after that acknowledgement. Catch-ups are serialised and
//!   coalesced: a caller that arrives while one runs waits for the next one, which starts after
//!   it arrived, and shares it with every other waiter.
//! - SYNC-101: a relay also catches up when the store signals another writer's commit
//!   (PostgreSQL LISTEN/NOTIFY), and every [`POLL`] otherwise, and announces the foreign items
//!   to its own live subscribers (SYNC-61/62 then filter them per subscriber), so a push through
//!   relay A reaches subscribers of relay B within milliseconds.
//! - SYNC-102: when the log cannot be read (database down) the relay fails closed: it serves
//!   nothing that needs a pull decision, and answers a push check "offer again later"
//!   ([`Refusal::Parked`]); what it cannot store it never acknowledges (STORE-12).
//! - SYNC-103: a foreign item the view refuses (it should not: another relay admitted it under
//!   the same rules, and commit order puts its predecessors first) makes the policy rebuild
//!   from the store ([`AccessPolicy::not_stored`]), so every relay acts on what the database
//!   holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyhive_core::identity::IndividualId;
use tokio::sync::{broadcast, watch};

use crate::item::{Item, SubjectId};
use crate::policy::{AccessPolicy, Offer, Refusal, Share};
use crate::store::{Store, StoreError};

/// SYNC-101: the catch-up period when no notification arrives.
pub const POLL: Duration = Duration::from_secs(1);

/// Most items read per catch-up query.
const CHUNK: usize = 1_000;

/// The commit log of a store several relays share (STORE-13/14).
pub trait Feed: Send + Sync + 'static {
    /// The position of the last committed item (0 when empty).
    fn head(&self) -> Result<u64, StoreError>;

    /// Up to `limit` items committed after position `cursor`, in commit order, leaving out
    /// those this handle committed itself, and the position reached.
    fn after(&self, cursor: u64, limit: usize) -> Result<(Vec<Item>, u64), StoreError>;

    /// Changes whenever another writer may have committed (a hint: SYNC-101).
    fn changes(&self) -> watch::Receiver<u64>;
}

/// An [`AccessPolicy`] kept current with a shared store (SYNC-100..SYNC-103).
pub struct SharedView {
    inner: Arc<dyn AccessPolicy>,
    feed: Arc<dyn Feed>,
    store: Arc<dyn Store>,
    live: broadcast::Sender<(u64, Arc<Item>)>,
    /// Who foreign items are admitted from: the relay itself.
    me: IndividualId,
    /// The log position applied so far; its lock serialises catch-ups.
    cursor: Mutex<u64>,
    /// Catch-ups begun so far (SYNC-100 coalescing).
    begun: AtomicU64,
}

impl SharedView {
    pub(crate) fn new(
        inner: Arc<dyn AccessPolicy>,
        feed: Arc<dyn Feed>,
        store: Arc<dyn Store>,
        live: broadcast::Sender<(u64, Arc<Item>)>,
        me: IndividualId,
        cursor: u64,
    ) -> Self {
        SharedView {
            inner,
            feed,
            store,
            live,
            me,
            cursor: Mutex::new(cursor),
            begun: AtomicU64::new(0),
        }
    }

    /// SYNC-100: applies and announces every foreign item committed since the last catch-up,
    /// or waits for a catch-up that began after this call did.
    pub fn catch_up(&self) -> Result<(), StoreError> {
        let arrived = self.begun.load(Ordering::Acquire);
        let mut cursor = self
            .cursor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.begun.load(Ordering::Acquire) > arrived {
            // A catch-up counted after we arrived (it counts itself before reading the log)
            // has finished, since we hold the lock: its read saw everything we need.
            return Ok(());
        }
        self.begun.fetch_add(1, Ordering::AcqRel);
        loop {
            let (items, reached) = self.feed.after(*cursor, CHUNK)?;
            let done = reached == *cursor;
            *cursor = reached;
            if !items.is_empty() {
                self.apply(items);
            }
            if done {
                return Ok(());
            }
        }
    }

    /// Admits foreign items in rounds (a chunk may hold an op before its predecessor only if
    /// one put carried both), then announces them (SYNC-101).
    fn apply(&self, items: Vec<Item>) {
        let mut waiting = items;
        let mut applied = Vec::with_capacity(waiting.len());
        loop {
            let before = waiting.len();
            let mut refused = Vec::new();
            for item in waiting {
                match self.inner.check_push(&self.me, &item) {
                    Ok(()) => applied.push(item),
                    Err(e) => refused.push((item, e)),
                }
            }
            if refused.is_empty() || refused.len() == before {
                if !refused.is_empty() {
                    for (item, e) in &refused {
                        tracing::debug!(item = %item.hash(), error = %e, "foreign item refused by this relay's view; rebuilding it");
                    }
                    // SYNC-103.
                    self.inner.not_stored(&*self.store);
                    applied.extend(refused.into_iter().map(|(item, _)| item));
                }
                break;
            }
            waiting = refused.into_iter().map(|(item, _)| item).collect();
        }
        self.inner.stored(&applied);
        for item in applied {
            // Origin 0 is never a connection id: every subscriber may receive it.
            let _ = self.live.send((0, Arc::new(item)));
        }
    }

    /// Catches up; on failure logs it and says so (SYNC-102: the caller fails closed).
    fn fresh(&self) -> bool {
        match self.catch_up() {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot catch up with the shared store; refusing until it answers");
                false
            }
        }
    }
}

impl AccessPolicy for SharedView {
    fn may_pull(&self, requester: &IndividualId, subject: &SubjectId) -> bool {
        self.fresh() && self.inner.may_pull(requester, subject)
    }

    fn pulls_everything(&self, requester: &IndividualId) -> bool {
        self.inner.pulls_everything(requester)
    }

    fn check_push(&self, from: &IndividualId, item: &Item) -> Result<(), Refusal> {
        if !self.fresh() {
            return Err(Refusal::Parked);
        }
        self.inner.check_push(from, item)
    }

    fn reachable(&self, requester: &IndividualId) -> Vec<SubjectId> {
        if !self.fresh() {
            return Vec::new();
        }
        self.inner.reachable(requester)
    }

    fn reachable_is_complete(&self, requester: &IndividualId) -> bool {
        self.inner.reachable_is_complete(requester)
    }

    fn stored(&self, items: &[Item]) {
        self.inner.stored(items);
    }

    fn mark_admitted(&self, store: &dyn Store, items: &[Item]) {
        self.inner.mark_admitted(store, items);
    }

    fn not_stored(&self, store: &dyn Store) {
        self.inner.not_stored(store);
    }

    fn checkpoint(&self, store: &dyn Store) {
        self.inner.checkpoint(store);
    }

    fn share(&self, requester: &IndividualId, subject: &SubjectId) -> Share {
        if !self.fresh() {
            return Share::Nothing;
        }
        self.inner.share(requester, subject)
    }

    fn may_serve(&self, requester: &IndividualId, item: &Item) -> bool {
        self.fresh() && self.inner.may_serve(requester, item)
    }

    fn removed_from(&self, requester: &IndividualId, subject: &SubjectId) -> bool {
        self.fresh() && self.inner.removed_from(requester, subject)
    }

    fn offers(&self, subject: &SubjectId) -> Offer {
        self.inner.offers(subject)
    }

    fn stranger_subjects(&self, who: &IndividualId) -> Option<Vec<SubjectId>> {
        // SYNC-104 after catching up; when the shared store does not answer, pushes are
        // refused anyway (SYNC-102), so the last known graph decides.
        self.fresh();
        self.inner.stranger_subjects(who)
    }
}

/// SYNC-101: catches up on every change signal and every [`POLL`], until `shutdown`.
pub(crate) async fn follow(view: Arc<SharedView>, mut shutdown: watch::Receiver<bool>) {
    let mut changes = view.feed.changes();
    let mut signalled = true;
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = changes.changed(), if signalled => {
                // A store that stopped signalling is still polled.
                signalled = changed.is_ok();
            }
            _ = poll.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let view = view.clone();
        // The catch-up blocks on the store: off the async workers.
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || view.catch_up()).await {
            tracing::debug!(error = %e, "background catch-up failed; retrying");
        }
    }
}
