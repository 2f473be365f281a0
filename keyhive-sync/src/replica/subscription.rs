//! The bounded queue between a replica and one subscriber (REP-45): blocking and async
//! receiving, and `Lagged` instead of unbounded growth when the subscriber falls behind.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::events::Event;

/// Events a subscription holds before it reports [`Event::Lagged`] (REP-45).
pub const DEFAULT_CAPACITY: usize = 1024;

/// The queue and its bookkeeping.
#[derive(Debug)]
struct Queue {
    events: VecDeque<Event>,
    capacity: usize,
    /// REP-45: events dropped since the queue filled (reported once it is drained).
    missed: u64,
    /// The replica is gone: nothing more will come.
    closed: bool,
    /// The task waiting in [`Subscription::next_event`] or `poll_next`, if any.
    waker: Option<Waker>,
}

/// What the replica and the subscriber share.
#[derive(Debug)]
pub(super) struct Channel {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Channel {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A poisoned lock only follows a panic in another holder; the queue stays consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// REP-45: queues `events`, dropping (and counting) those that find the queue full or
    /// lagging, so that the events before a `Lagged` and after it are each complete.
    pub(super) fn send(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut q = self.lock();
        for event in events {
            if q.missed > 0 || q.events.len() >= q.capacity {
                q.missed += 1;
            } else {
                q.events.push_back(event.clone());
            }
        }
        self.wake(q);
    }

    /// Marks the channel closed: the subscriber gets what is queued, then `None`.
    pub(super) fn close(&self) {
        let mut q = self.lock();
        q.closed = true;
        self.wake(q);
    }

    fn wake(&self, mut q: MutexGuard<'_, Queue>) {
        let waker = q.waker.take();
        drop(q);
        self.ready.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The next event, the `Lagged` marker once a lag is drained, or why there is none.
fn pop(q: &mut Queue) -> Option<Event> {
    if let Some(event) = q.events.pop_front() {
        return Some(event);
    }
    if q.missed > 0 {
        let missed = std::mem::take(&mut q.missed);
        return Some(Event::Lagged { missed });
    }
    None
}

/// One subscriber's events from a [`Replica`](super::Replica) (REP-40..REP-46), in the order
/// the replica produced them.
///
/// Receive them blocking ([`Subscription::recv`], or iterate: `for event in subscription`),
/// without waiting ([`Subscription::try_recv`]), or asynchronously
/// ([`Subscription::next_event`]; with the `net` feature it is also a `futures` `Stream`).
/// Receiving ends (`None`) once the replica is dropped and every queued event was taken.
/// Dropping the subscription unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    channel: Arc<Channel>,
}

impl Subscription {
    /// A subscription and the channel the replica sends to.
    pub(super) fn new(capacity: usize) -> (Subscription, Arc<Channel>) {
        let channel = Arc::new(Channel {
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
                capacity: capacity.max(1),
                missed: 0,
                closed: false,
                waker: None,
            }),
            ready: Condvar::new(),
        });
        (
            Subscription {
                channel: Arc::clone(&channel),
            },
            channel,
        )
    }

    /// The next event if one is queued, without waiting.
    pub fn try_recv(&self) -> Option<Event> {
        pop(&mut self.channel.lock())
    }

    /// Waits for the next event; `None` once the replica is gone and the queue is drained.
    pub fn recv(&self) -> Option<Event> {
        let mut q = self.channel.lock();
        loop {
            if let Some(event) = pop(&mut q) {
                return Some(event);
            }
            if q.closed {
                return None;
            }
            q = self
                .channel
                .ready
                .wait(q)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// As [`Subscription::recv`], waiting at most `timeout` (`None` when it passes).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        let deadline = std::time::Instant::now() + timeout;
        let mut q = self.channel.lock();
        loop {
            if let Some(event) = pop(&mut q) {
                return Some(event);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if q.closed || left.is_zero() {
                return None;
            }
            q = self
                .channel
                .ready
                .wait_timeout(q, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Every event queued now, without waiting.
    pub fn try_iter(&self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(|| self.try_recv())
    }

    /// The next event, asynchronously (any executor); `None` once the replica is gone and
    /// the queue is drained.
    pub fn next_event(&mut self) -> NextEvent<'_> {
        NextEvent { subscription: self }
    }

    fn poll_event(&self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let mut q = self.channel.lock();
        if let Some(event) = pop(&mut q) {
            return Poll::Ready(Some(event));
        }
        if q.closed {
            return Poll::Ready(None);
        }
        q.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Blocking iteration: each `next` waits for an event ([`Subscription::recv`]).
impl Iterator for Subscription {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        self.recv()
    }
}

/// The future of [`Subscription::next_event`].
#[derive(Debug)]
pub struct NextEvent<'a> {
    subscription: &'a mut Subscription,
}

impl Future for NextEvent<'_> {
    type Output = Option<Event>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.subscription.poll_event(cx)
    }
}

#[cfg(feature = "net")]
impl futures_util::Stream for Subscription {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.poll_event(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag(missed: u64) -> Event {
        Event::Lagged { missed }
    }

    #[test]
    fn a_full_queue_drops_then_reports_the_gap_once_drained() {
        let (sub, channel) = Subscription::new(2);
        channel.send(&[lag(10), lag(11), lag(12), lag(13)]);
        assert_eq!(sub.try_recv(), Some(lag(10)));
        // Room again, but the lag is not drained: later events are dropped too, so the
        // events after the marker start where the gap ends.
        channel.send(&[lag(14)]);
        assert_eq!(sub.try_recv(), Some(lag(11)));
        assert_eq!(sub.try_recv(), Some(lag(3)), "three events were dropped");
        channel.send(&[lag(15)]);
        assert_eq!(sub.try_recv(), Some(lag(15)));
        assert_eq!(sub.try_recv(), None);
    }

    #[test]
    fn receiving_ends_after_close_and_drain() {
        let (sub, channel) = Subscription::new(8);
        channel.send(&[lag(1)]);
        channel.close();
        assert_eq!(sub.recv(), Some(lag(1)));
        assert_eq!(sub.recv(), None);
        assert_eq!(sub.recv_timeout(Duration::from_secs(5)), None);
    }
}
