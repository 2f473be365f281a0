//! SYNC-112: group commit. Every connection's admitted items wait in one FIFO queue; one
//! blocking thread at a time writes what waits, whole pushes in arrival order and at most
//! [`GROUP_COMMIT_ITEMS`] items a turn (a single larger push alone), in one store transaction,
//! and answers each push after that commit returned (STORE-1, SYNC-41). A push thus waits for
//! the turn in progress and its own (one more per [`GROUP_COMMIT_ITEMS`] items queued before
//! it), instead of for one durable commit per push queued before it on the store's write lock.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use crate::item::Item;
use crate::policy::AccessPolicy;
use crate::store::{Store, StoreError};

/// SYNC-112: most items one turn writes (a push of more is written alone, in its own turn).
pub(crate) const GROUP_COMMIT_ITEMS: usize = 4_096;

/// Why a push's items were not written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// The store refused the transaction that held this push (nothing of it was committed).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The turn writing this push failed without an answer from the store (a panic).
    #[error("the write was abandoned")]
    Abandoned,
}

type Answer = Result<(Vec<Item>, Vec<bool>), WriteError>;

struct Request {
    items: Vec<Item>,
    done: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Request>,
    /// Whether a turn is running (at most one at a time).
    running: bool,
}

/// The relay's one writer of pushed items (SYNC-112).
pub(crate) struct Writer {
    store: Arc<dyn Store>,
    policy: Arc<dyn AccessPolicy>,
    queue: Mutex<Queue>,
}

impl Writer {
    pub(crate) fn new(store: Arc<dyn Store>, policy: Arc<dyn AccessPolicy>) -> Arc<Self> {
        Arc::new(Writer {
            store,
            policy,
            queue: Mutex::default(),
        })
    }

    /// Writes `items` durably (then RELAY-7 marks them, [`AccessPolicy::mark_admitted`]) in
    /// the next turn with room, and hands them back with, per item, whether it was new. The
    /// queue holds at most one push per connection (a connection reads nothing more while its
    /// push waits), so it is bounded by the connection limit.
    pub(crate) async fn write(self: &Arc<Self>, items: Vec<Item>) -> Answer {
        let (done, answer) = oneshot::channel();
        let start = {
            let mut queue = self.lock();
            queue.waiting.push_back(Request { items, done });
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            let writer = self.clone();
            // The turn's handle is not kept: every request is answered through its channel.
            drop(tokio::task::spawn_blocking(move || writer.run()));
        }
        answer.await.unwrap_or(Err(WriteError::Abandoned))
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while the queue is held.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs turns until the queue is empty.
    fn run(&self) {
        while let Some(turn) = self.next_turn() {
            self.write_turn(turn);
        }
    }

    /// SYNC-112: the next turn: whole pushes from the front of the queue, at most
    /// [`GROUP_COMMIT_ITEMS`] items unless the first alone is larger. `None` (and no turn
    /// running) once nothing waits.
    fn next_turn(&self) -> Option<Vec<Request>> {
        let mut queue = self.lock();
        let mut turn = Vec::new();
        let mut items = 0;
        while let Some(next) = queue.waiting.front() {
            if !turn.is_empty() && items + next.items.len() > GROUP_COMMIT_ITEMS {
                break;
            }
            items += next.items.len();
            turn.extend(queue.waiting.pop_front());
        }
        if turn.is_empty() {
            queue.running = false;
            return None;
        }
        Some(turn)
    }

    /// One transaction for the whole turn. If it fails, nothing of it was committed, and each
    /// push of a turn of several is written again on its own, so that each gets its own answer
    /// (one push's failure is not another's).
    fn write_turn(&self, turn: Vec<Request>) {
        if turn.len() > 1 {
            let all: Vec<Item> = turn.iter().flat_map(|r| r.items.iter().cloned()).collect();
            if let Ok(Ok(fresh)) = self.put(&all) {
                let mut fresh = fresh.into_iter();
                for request in turn {
                    let mine: Vec<bool> = fresh.by_ref().take(request.items.len()).collect();
                    let _ = request.done.send(Ok((request.items, mine)));
                }
                return;
            }
        }
        for request in turn {
            let answer = match self.put(&request.items) {
                Ok(Ok(fresh)) => Ok((request.items, fresh)),
                Ok(Err(e)) => Err(WriteError::Store(e)),
                Err(()) => Err(WriteError::Abandoned),
            };
            // The pusher may have gone away; its items are written all the same.
            let _ = request.done.send(answer);
        }
    }

    /// STORE-1 put, then RELAY-7 marks; `Err(())` if either panicked, so that a panic never
    /// ends the turns of the pushes still waiting.
    fn put(&self, items: &[Item]) -> Result<Result<Vec<bool>, StoreError>, ()> {
        catch_unwind(AssertUnwindSafe(|| {
            let fresh = self.store.put(items)?;
            // RELAY-7: the policy checked these; it may mark them for its next start.
            self.policy.mark_admitted(&*self.store, items);
            Ok(fresh)
        }))
        .map_err(|_| ())
    }
}

#[cfg(test)]
mod tests;
