//! Events for apps (`specs/replica.md` REP-40..REP-46): what changed in a replica, derived
//! from its state after every operation, so that an app never polls.
//!
//! The replica keeps, only while someone is subscribed, what it last reported: the readable
//! changes of each document, each subject's members, and this device's levels. After each
//! operation it compares the state with that snapshot and sends the differences, plus the
//! validity changes the capability checker recorded (REP-42).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use keyhive_core::capability::{
    Access, AgentId, AnyVerified, Explanation, Reason, Refusal, Validity,
};
use keyhive_core::crypto::hash::Hash;
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::{DocumentId, IndividualId, SubjectKind};

use super::Replica;
use super::content::ChangeStatus;
use super::subscription::{Channel, DEFAULT_CAPACITY, Subscription};
use crate::item::SubjectId;
use crate::store::Store;

/// Something that changed in a replica (REP-40..REP-45).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// REP-41: this device can now decrypt `change` (a content op hash) of `document`:
    /// reported once per change, whoever wrote it (this device included), in causal order
    /// within one operation. `valid` is its validity when it became readable; a later change
    /// of it is a [`Event::ValidityChanged`].
    Readable {
        /// The document.
        document: DocumentId,
        /// The content op naming the change ([`Replica::read_change`]).
        change: Hash,
        /// The device that wrote it.
        author: IndividualId,
        /// Whether the change counts (CAP-11).
        valid: bool,
    },
    /// REP-42: a held op's validity changed, e.g. an edit this device already had became
    /// invalid because a concurrent revocation of its author arrived (`after` names the rule
    /// and the revocation, [`Event::revocation`]), or valid again.
    ValidityChanged {
        /// The op.
        op: Hash,
        /// Its subject (the document, for a content op).
        subject: PublicKey,
        /// Whether it is a content op (a change of a document).
        content: bool,
        /// Validity before.
        before: Validity,
        /// Validity now.
        after: Validity,
    },
    /// REP-43: the effective members of `subject` (direct and through groups, folders and
    /// documents) or their levels changed, or the subject became known.
    MembershipChanged {
        /// The group or document.
        subject: PublicKey,
        /// Every member and its effective level, now.
        members: Arc<BTreeMap<AgentId, Access>>,
    },
    /// REP-44: this device's effective level on `subject` changed (`None`: no access).
    AccessChanged {
        /// The group or document.
        subject: PublicKey,
        /// Level before.
        before: Option<Access>,
        /// Level now.
        after: Option<Access>,
        /// When the level fell because a revocation removed this device, that revocation.
        revocation: Option<Hash>,
    },
    /// REP-45: the subscriber fell behind and `missed` events were dropped here: the events
    /// before this one and after it are complete, but the app must rescan what it keeps
    /// (e.g. [`Replica::changes`], [`Replica::reachable`]).
    Lagged {
        /// Events dropped.
        missed: u64,
    },
}

impl Event {
    /// The revocation named by a [`Event::ValidityChanged`] to invalid (CAP-11) or by an
    /// [`Event::AccessChanged`] that a revocation caused.
    pub fn revocation(&self) -> Option<Hash> {
        match self {
            Event::ValidityChanged {
                after:
                    Validity::Invalid(Refusal {
                        reason: Reason::Excluded { revocation, .. },
                        ..
                    }),
                ..
            } => Some(*revocation),
            Event::AccessChanged { revocation, .. } => *revocation,
            _ => None,
        }
    }
}

/// The subscribers and what was last reported to them.
#[derive(Debug, Default)]
pub(super) struct Hub {
    subscribers: Vec<Arc<Channel>>,
    /// REP-41: changes reported readable, per document.
    readable: HashMap<DocumentId, HashSet<Hash>>,
    /// Documents whose history could not be read last time (retried next time).
    retry: BTreeSet<DocumentId>,
    /// REP-43: the members last reported, per subject.
    members: HashMap<PublicKey, Arc<BTreeMap<AgentId, Access>>>,
    /// REP-44: this device's levels last reported.
    access: Arc<HashMap<PublicKey, Access>>,
    /// Checker ops looked at so far (the checker lists them append-only).
    ops_seen: usize,
}

impl Drop for Hub {
    /// REP-46: subscribers learn that nothing more will come.
    fn drop(&mut self) {
        for channel in &self.subscribers {
            channel.close();
        }
    }
}

impl<S: Store> Replica<S> {
    /// Subscribes to this replica's events from now on (REP-40), holding at most
    /// [`DEFAULT_CAPACITY`] unreceived events (REP-45).
    pub fn subscribe(&mut self) -> Subscription {
        self.subscribe_with_capacity(DEFAULT_CAPACITY)
    }

    /// [`Replica::subscribe`], holding at most `capacity` unreceived events before the
    /// subscriber is told it lagged (REP-45).
    pub fn subscribe_with_capacity(&mut self, capacity: usize) -> Subscription {
        let (subscription, channel) = Subscription::new(capacity);
        self.events.subscribers.retain(|c| Arc::strong_count(c) > 1);
        if self.events.subscribers.is_empty() {
            self.start_events();
        }
        self.events.subscribers.push(channel);
        subscription
    }

    /// REP-40: the state the first subscriber starts from (nothing before it is reported).
    fn start_events(&mut self) {
        let checker = &mut self.admission.checker;
        checker.record_validity_changes(true);
        let hub = &mut self.events;
        hub.ops_seen = checker.len();
        hub.members = checker
            .subjects()
            .map(|s| (*s, checker.members(s)))
            .collect();
        hub.access = checker.reachable(AgentId::Individual(self.device.id()));
        hub.readable.clear();
        hub.retry.clear();
        let documents: Vec<DocumentId> = self.cgkas.keys().copied().collect();
        for document in documents {
            match self.readable_now(document) {
                Some(now) => {
                    // REP-41: a change whose pieces are missing is reported once they arrive.
                    let seen = now
                        .into_iter()
                        .map(|(change, _, _)| change)
                        .filter(|change| self.pieces_stored(document, change).unwrap_or(false))
                        .collect();
                    self.events.readable.insert(document, seen);
                }
                None => {
                    self.events.retry.insert(document);
                }
            }
        }
    }

    /// Changes of `document` this device can decrypt, in causal order, with author and
    /// validity; `None` (logged) when its history cannot be read now.
    fn readable_now(&self, document: DocumentId) -> Option<Vec<(Hash, IndividualId, bool)>> {
        match self.changes(document) {
            Ok(changes) => Some(
                changes
                    .into_iter()
                    .filter(|c| c.length.is_some())
                    .map(|c| (c.op, c.author, c.status == ChangeStatus::Valid))
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!(%document, error = %e, "history unreadable; events retried later");
                None
            }
        }
    }

    /// Sends subscribers what the last operation changed (REP-41..REP-44). `touched` names
    /// subjects whose non-op items (changes, key agreement, entry points) it stored.
    pub(super) fn publish_events(&mut self, touched: impl IntoIterator<Item = SubjectId>) {
        if self.events.subscribers.is_empty() {
            return;
        }
        self.events.subscribers.retain(|c| Arc::strong_count(c) > 1);
        if self.events.subscribers.is_empty() {
            // The last subscriber left: stop recording and forget the snapshot.
            self.admission.checker.record_validity_changes(false);
            self.events = Hub::default();
            return;
        }
        let mut documents: BTreeSet<DocumentId> = std::mem::take(&mut self.events.retry);
        documents.extend(touched.into_iter().map(|s| DocumentId(s.0)));
        let mut events = self.validity_events(&mut documents);
        self.membership_events(&mut events);
        self.access_events(&mut events);
        self.readable_events(documents, &mut events);
        for channel in &self.events.subscribers {
            channel.send(&events);
        }
    }

    /// REP-42: the checker's validity changes, one per op (first `before`, last `after`),
    /// dropping ops that ended where they started. Notes the documents of new and changed
    /// ops in `documents`.
    fn validity_events(&mut self, documents: &mut BTreeSet<DocumentId>) -> Vec<Event> {
        let checker = &mut self.admission.checker;
        let changes = checker.drain_validity_changes();
        let fresh = checker
            .ops_since(self.events.ops_seen)
            .map(|op| op.subject());
        documents.extend(fresh.map(DocumentId));
        self.events.ops_seen = checker.len();
        let mut order: Vec<Hash> = Vec::new();
        let mut folded: HashMap<Hash, (Validity, Validity)> = HashMap::new();
        for (op, before, after) in changes {
            folded
                .entry(op)
                .and_modify(|(_, last)| *last = after.clone())
                .or_insert_with(|| {
                    order.push(op);
                    (before, after)
                });
        }
        let mut events = Vec::new();
        for op in order {
            let Some((before, after)) = folded.remove(&op) else {
                continue;
            };
            let Some(held) = checker.op(&op) else {
                continue;
            };
            if before == after {
                continue;
            }
            documents.insert(DocumentId(held.subject()));
            events.push(Event::ValidityChanged {
                op,
                subject: held.subject(),
                content: matches!(held, AnyVerified::Content(_)),
                before,
                after,
            });
        }
        events
    }

    /// REP-43: subjects whose effective members differ from what was last reported.
    fn membership_events(&mut self, events: &mut Vec<Event>) {
        let checker = &self.admission.checker;
        let mut subjects: Vec<PublicKey> = checker.subjects().copied().collect();
        subjects.sort();
        for subject in subjects {
            let now = checker.members(&subject);
            let same = self
                .events
                .members
                .get(&subject)
                .is_some_and(|last| Arc::ptr_eq(last, &now) || **last == *now);
            if !same {
                self.events.members.insert(subject, Arc::clone(&now));
                events.push(Event::MembershipChanged {
                    subject,
                    members: now,
                });
            }
        }
    }

    /// REP-44: subjects on which this device's effective level changed.
    fn access_events(&mut self, events: &mut Vec<Event>) {
        let me = AgentId::Individual(self.device.id());
        let checker = &self.admission.checker;
        let now = checker.reachable(me);
        let last = std::mem::replace(&mut self.events.access, Arc::clone(&now));
        if Arc::ptr_eq(&last, &now) {
            return;
        }
        let subjects: BTreeSet<&PublicKey> = last.keys().chain(now.keys()).collect();
        for subject in subjects {
            let (before, after) = (last.get(subject).copied(), now.get(subject).copied());
            if before == after || checker.subject_info(subject).is_none() {
                continue;
            }
            let revocation = match before {
                Some(level) if after.is_none_or(|a| a < level) => {
                    match checker.explain(me, level, subject) {
                        Explanation::Refused(Refusal {
                            reason: Reason::Revoked { revocation, .. },
                            ..
                        }) => Some(revocation),
                        _ => None,
                    }
                }
                _ => None,
            };
            events.push(Event::AccessChanged {
                subject: *subject,
                before,
                after,
                revocation,
            });
        }
    }

    /// REP-41: changes of `documents` that became readable, each reported once.
    fn readable_events(&mut self, documents: BTreeSet<DocumentId>, events: &mut Vec<Event>) {
        for document in documents {
            let is_document = self
                .admission
                .checker
                .subject_info(&document.0)
                .is_some_and(|i| i.kind == SubjectKind::Document);
            if !is_document || !self.cgkas.contains_key(&document) {
                continue;
            }
            let Some(now) = self.readable_now(document) else {
                self.events.retry.insert(document);
                continue;
            };
            let seen = self.events.readable.get(&document);
            let unseen: Vec<_> = now
                .into_iter()
                .filter(|(change, _, _)| !seen.is_some_and(|s| s.contains(change)))
                .collect();
            let mut fresh = Vec::new();
            for (change, author, valid) in unseen {
                // REP-41: readable means readable in full. A change whose pieces are still
                // missing is reported by the operation that stores the last of them (a piece
                // is an item of the document, so storing it looks at the document again).
                match self.pieces_stored(document, &change) {
                    Ok(true) => fresh.push((change, author, valid)),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(%document, error = %e, "pieces unreadable; events retried later");
                        self.events.retry.insert(document);
                    }
                }
            }
            let seen = self.events.readable.entry(document).or_default();
            for (change, author, valid) in fresh {
                if seen.insert(change) {
                    events.push(Event::Readable {
                        document,
                        change,
                        author,
                        valid,
                    });
                }
            }
        }
    }
}
