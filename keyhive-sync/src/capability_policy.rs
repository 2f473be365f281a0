//! The relay's authorisation from the capability graph (`specs/replica.md` §3, RELAY-n).
//!
//! The relay holds no decryption key: it admits every pushed item through the same admission
//! path as device replicas ([`crate::admission`], in [`Mode::Relay`]) over its own capability
//! checker, fed with the auth items it stores (signed plaintext) and devices' contact cards.
//!
//! - RELAY-1: an auth op is stored only if it verifies and is valid under the graph (a genesis
//!   is self-certifying); one whose predecessors are missing is refused, and not kept, until
//!   they are pushed (ADM-3), so the relay never acts on an op it has not stored.
//! - RELAY-2: a content op is stored only if its author holds `write` (it is valid).
//! - RELAY-3: a key-agreement op is stored only under ADM-5.
//! - RELAY-4: ciphertext is stored only when bound to what names it (REP-20..REP-22).
//! - RELAY-5: items of a subject are served only to devices holding `pull` on it; a device's
//!   contact card only to itself and to devices sharing a subject with it.
//! - CAP-21: the auth ops of every subject in the scope of one a device pulls (e.g. the team
//!   through which a co-writer writes) are served to it too, so that everything it is served
//!   is causally closed; nothing else of those subjects ([`Share::AuthOps`]).
//! - RELAY-6: configured peer relays may pull everything (relay-to-relay sync); what they push
//!   passes the same admission rules as anyone's.
//! - RELAY-7: with a mark key ([`CapabilityPolicy::with_marks`]) the relay marks what it
//!   admitted ([`crate::store::MarkKey`]), and its start admits marked items without checking
//!   their signatures again; unmarked items are verified as before, then marked.
//! - RELAY-8: with a mark key the relay also keeps a start snapshot in its store (what it
//!   admitted and stored, in admission order, authenticated with a key derived from its
//!   secret; [`snapshot`]); its start replays the snapshot without reading the store's items
//!   or checking signatures, then admits only the items the snapshot does not cover. A
//!   snapshot that is damaged, foreign or does not match the store is ignored
//!   ([`Loaded::snapshot_refused`]) and the whole store is replayed.
//! - REP-30: a device removed from a subject (it held `pull` through a path since revoked) is
//!   still served that subject's ops (auth ops and content op headers, one causal graph), and
//!   no ciphertext or key agreement of it ([`AccessPolicy::may_serve`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use keyhive_core::capability::{
    Access, AgentId, Checker, Explanation, PeerTag, PendingLimits, Reason,
};
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::IndividualId;

use crate::admission::{Admission, Admitted, Mode, apply_order};
use crate::item::{Item, SubjectId};
use crate::policy::{AccessPolicy, Refusal, Share};
use crate::reconcile::summary::Summary;
use crate::store::{MarkKey, Store, StoreError};

pub mod snapshot;

pub use snapshot::SnapshotError;
use snapshot::{Entry, Journal};

struct Graph {
    admission: Admission,
    /// RELAY-8: what was admitted, in order, for the start snapshot (kept only with a key).
    journal: Journal,
}

/// [`AccessPolicy`] backed by a capability checker.
pub struct CapabilityPolicy {
    graph: Mutex<Graph>,
    peers: BTreeSet<IndividualId>,
    /// RELAY-7: the relay's admission-mark key, if it marks what it admits.
    marks: Option<MarkKey>,
}

/// What [`CapabilityPolicy::load_counted`] did (RELAY-7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Loaded {
    /// Stored items admitted into the graph.
    pub admitted: usize,
    /// Of those, items admitted without checking signatures: they held a valid admission mark.
    pub marked: usize,
    /// Of those, items whose signatures were checked (no valid mark); they are marked now.
    pub verified: usize,
    /// RELAY-8: of those, items restored from the relay's start snapshot: neither read from
    /// the store nor verified.
    pub from_snapshot: usize,
    /// RELAY-8: why a snapshot found in the store was not used (the whole store was replayed).
    pub snapshot_refused: Option<SnapshotError>,
}

/// What one replay of stored items admitted.
struct Replayed {
    admission: Admission,
    journal: Journal,
    loaded: Loaded,
    newly_verified: Vec<keyhive_core::Hash>,
}

impl CapabilityPolicy {
    /// A policy trusting `peers` (other relays) for RELAY-6.
    pub fn new(peers: impl IntoIterator<Item = IndividualId>) -> Self {
        CapabilityPolicy {
            graph: Mutex::new(Graph {
                admission: Admission::new(Checker::new(PendingLimits::default())),
                journal: Journal::default(),
            }),
            peers: peers.into_iter().collect(),
            marks: None,
        }
    }

    /// RELAY-7: marks every item this policy admits and the store takes with `key` (the
    /// relay's own, [`MarkKey::from_identity`]), and trusts items so marked on
    /// [`CapabilityPolicy::load`] without checking their signatures again.
    pub fn with_marks(mut self, key: MarkKey) -> Self {
        self.marks = Some(key);
        self
    }

    /// Rebuilds the graph from every item in `store` (relay start-up), in dependency order
    /// (ops, key agreement, then ciphertext), through the same admission rules. Whatever the
    /// graph held before is replaced. With a mark key, the relay's start snapshot stands in
    /// for the items it covers (RELAY-8) and only the others are read. Returns the number of
    /// items admitted.
    pub fn load(&self, store: &dyn Store) -> Result<usize, StoreError> {
        self.load_counted(store).map(|l| l.admitted)
    }

    /// As [`CapabilityPolicy::load`], saying how many items were admitted on their admission
    /// mark, how many had their signatures checked (RELAY-7) and how many came from the
    /// relay's start snapshot (RELAY-8). Items checked here are marked afterwards, and a new
    /// snapshot is written if anything was read from the store (a failure to record either is
    /// logged: it only costs time at the next start).
    pub fn load_counted(&self, store: &dyn Store) -> Result<Loaded, StoreError> {
        let mut refused = None;
        let mut replayed = None;
        if let Some(key) = &self.marks {
            match store.snapshot() {
                Ok(None) => {}
                Ok(Some(bytes)) => match snapshot::decode(&bytes, key) {
                    Ok(entries) => match self.resume(store, entries)? {
                        Ok(done) => replayed = Some(done),
                        Err(e) => refused = Some(e),
                    },
                    Err(e) => refused = Some(e),
                },
                // Untrusted disk: the items may still be readable; the replay says if not.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the relay snapshot");
                    refused = Some(SnapshotError::Unreadable);
                }
            }
            if let Some(e) = refused {
                tracing::warn!(error = %e, "relay snapshot not used; replaying the whole store");
            }
        }
        let mut done = match replayed {
            Some(done) => done,
            None => {
                let mut items = Vec::new();
                for subject in store.subjects()? {
                    for hash in store.hashes(&subject)? {
                        if let Some(item) = store.get(&hash)? {
                            items.push(item);
                        }
                    }
                }
                let mut admission = Admission::new(Checker::new(PendingLimits::default()));
                let mut journal = Journal::default();
                let (loaded, newly_verified) =
                    self.replay(store, &mut admission, &mut journal, items)?;
                Replayed {
                    admission,
                    journal,
                    loaded,
                    newly_verified,
                }
            }
        };
        done.loaded.snapshot_refused = refused;
        let read_from_store = done.loaded.admitted > done.loaded.from_snapshot;
        let written = match &self.marks {
            Some(key) if read_from_store || refused.is_some() => {
                Some(done.journal.snapshot(&done.admission, key))
            }
            _ => None,
        };
        {
            let mut graph = self.lock();
            graph.admission = done.admission;
            graph.journal = done.journal;
        }
        if let Some(key) = &self.marks
            && let Err(e) = store.put_marks(&key.marks(done.newly_verified))
        {
            tracing::warn!(error = %e, "cannot record admission marks; the next start verifies these items again");
        }
        if let Some(bytes) = written {
            put_snapshot(store, &bytes);
        }
        Ok(done.loaded)
    }

    /// RELAY-8: replays a snapshot's entries (no store read, no signature check: only this
    /// relay could tag them), then admits the stored items it does not cover. Subjects whose
    /// summary (STORE-4) equals that of the covered items are not read at all. `Ok(Err(_))`
    /// if the snapshot names items the store does not hold: it describes another store.
    fn resume(
        &self,
        store: &dyn Store,
        entries: Vec<Entry>,
    ) -> Result<Result<Replayed, SnapshotError>, StoreError> {
        let mut admission = Admission::new(Checker::new(PendingLimits::default()));
        let mut journal = Journal::default();
        let mut covered: BTreeMap<SubjectId, Vec<keyhive_core::Hash>> = BTreeMap::new();
        let mut restored = 0;
        for entry in entries {
            let (subject, hash, op) = match &entry {
                Entry::Item {
                    kind,
                    subject,
                    envelope,
                } => {
                    let Ok(item) = Item::new(*kind, *subject, envelope.clone()) else {
                        continue;
                    };
                    // RELAY-7: the snapshot's tag proves this relay admitted the item.
                    match admission.admit_marked(Mode::Relay, PeerTag::LOCAL, &item) {
                        Ok(Admitted::Op { .. }) => (*subject, item.hash(), true),
                        Ok(_) => (*subject, item.hash(), false),
                        // Not covered: read from the store below and admitted as any item.
                        Err(_) => continue,
                    }
                }
                Entry::Change {
                    subject,
                    hash,
                    content,
                    pieces,
                } => {
                    if !admission.blobs.names(content) {
                        continue;
                    }
                    admission.blobs.list_pieces(pieces);
                    (*subject, *hash, false)
                }
                Entry::Piece { subject, hash } => {
                    if !admission.blobs.is_listed(hash) {
                        continue;
                    }
                    (*subject, *hash, false)
                }
            };
            covered.entry(subject).or_default().push(hash);
            journal.restored(hash, entry, op);
            restored += 1;
        }
        let mut waiting = Vec::new();
        for subject in store.subjects()? {
            let mut mine = covered.remove(&subject).unwrap_or_default();
            mine.sort_unstable();
            if Summary::of(&mine) == store.summary(&subject)? {
                continue;
            }
            // STORE-3: sorted ascending, like `mine`.
            let held = store.hashes(&subject)?;
            let mut held_iter = held.iter().peekable();
            for hash in &mine {
                while held_iter.next_if(|h| *h < hash).is_some() {}
                if held_iter.next_if(|h| *h == hash).is_none() {
                    return Ok(Err(SnapshotError::NotInStore));
                }
            }
            for hash in held {
                if mine.binary_search(&hash).is_err()
                    && let Some(item) = store.get(&hash)?
                {
                    waiting.push(item);
                }
            }
        }
        if !covered.is_empty() {
            return Ok(Err(SnapshotError::NotInStore));
        }
        let (mut loaded, newly_verified) =
            self.replay(store, &mut admission, &mut journal, waiting)?;
        loaded.admitted += restored;
        loaded.from_snapshot = restored;
        Ok(Ok(Replayed {
            admission,
            journal,
            loaded,
            newly_verified,
        }))
    }

    /// Admits stored `items` into `admission` parents first (SYNC-106), trusting those this
    /// relay marked (RELAY-7); records each admitted item in `journal` as stored. Returns the
    /// counts and the hashes verified here (to be marked).
    fn replay(
        &self,
        store: &dyn Store,
        admission: &mut Admission,
        journal: &mut Journal,
        items: Vec<Item>,
    ) -> Result<(Loaded, Vec<keyhive_core::Hash>), StoreError> {
        let held: HashMap<_, _> = match &self.marks {
            Some(_) if !items.is_empty() => store.marks()?.into_iter().collect(),
            _ => HashMap::new(),
        };
        // RELAY-7: a mark holds only for the address recomputed from the bytes read back.
        let is_marked = |item: &Item| match (&self.marks, held.get(&item.hash())) {
            (Some(key), Some(mark)) => key.holds(&item.hash(), mark),
            _ => false,
        };
        let mut loaded = Loaded::default();
        let mut newly_verified = Vec::new();
        // Stored ops come back in hash order, not causal order: SYNC-106 puts them parents
        // first (`apply_order`, linear), so one pass admits them; whatever still waits (key
        // agreement in hash order) is admitted in further rounds until no more apply (a relay
        // never parks, ADM-3). Rounds over all of it made the start quadratic in the store.
        let mut waiting: Vec<Item> = items;
        loop {
            apply_order(&mut waiting);
            let before = waiting.len();
            let mut next = Vec::new();
            for item in waiting {
                let marked = is_marked(&item);
                let admitted = if marked {
                    admission.admit_marked(Mode::Relay, PeerTag::LOCAL, &item)
                } else {
                    admission.admit(Mode::Relay, PeerTag::LOCAL, &item)
                };
                match admitted {
                    Ok(how) => {
                        loaded.admitted += 1;
                        if self.marks.is_some() {
                            journal.admitted(&item, matches!(how, Admitted::Op { .. }), true);
                        }
                        if marked {
                            loaded.marked += 1;
                        } else {
                            loaded.verified += 1;
                            newly_verified.push(item.hash());
                        }
                    }
                    Err(
                        Refusal::MissingPredecessors(_)
                        | Refusal::Unnamed
                        | Refusal::UnknownSubject(_),
                    ) => next.push(item),
                    Err(e) => {
                        tracing::debug!(item = %item.hash(), error = %e, "stored item not admitted on load");
                    }
                }
            }
            if next.is_empty() || next.len() == before {
                break;
            }
            waiting = next;
        }
        Ok((loaded, newly_verified))
    }

    /// RELAY-8: writes the relay's start snapshot into `store` now if anything was stored
    /// since the last one (at a clean shutdown; [`AccessPolicy::checkpoint`]). Without a mark
    /// key there is no snapshot. A failure is logged: it only costs time at the next start.
    pub fn save_snapshot(&self, store: &dyn Store) {
        let Some(key) = &self.marks else {
            return;
        };
        let bytes = {
            let mut graph = self.lock();
            if !graph.journal.changed() {
                return;
            }
            let Graph { admission, journal } = &mut *graph;
            journal.snapshot(admission, key)
        };
        put_snapshot(store, &bytes);
    }

    /// SYNC-107: the ops the relay's graph holds and how many of them wait for predecessors
    /// (always none: a relay refuses an op whose predecessors it lacks, ADM-3).
    pub fn held_ops(&self) -> (usize, usize) {
        let graph = self.lock();
        (
            graph.admission.checker.len(),
            graph.admission.checker.pending_len(),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Graph> {
        // A poisoned lock only follows a panic elsewhere; the checker stays consistent.
        self.graph
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// RELAY-8: records a snapshot; a failure only costs replaying more at the next start.
fn put_snapshot(store: &dyn Store, bytes: &[u8]) {
    if let Err(e) = store.put_snapshot(bytes) {
        tracing::warn!(error = %e, "cannot record the relay snapshot; the next start replays more of the store");
    }
}

impl Graph {
    fn holds(&self, who: &IndividualId, level: Access, subject: &SubjectId) -> bool {
        self.admission
            .checker
            .can(AgentId::Individual(*who), level, &subject.0)
    }

    fn shares_subject(&self, a: &IndividualId, b: &IndividualId) -> bool {
        shares_subject(&self.admission.checker, a, b)
    }
}

/// RELAY-5: whether `a` and `b` both reach some subject (then each may be served the other's
/// contact card).
pub(crate) fn shares_subject(checker: &Checker, a: &IndividualId, b: &IndividualId) -> bool {
    let theirs = checker.reachable(AgentId::Individual(*b));
    checker
        .reachable(AgentId::Individual(*a))
        .keys()
        .any(|s| theirs.contains_key(s))
}

/// REP-30: whether `who` held `pull` on `subject` through a path since revoked (and holds no
/// other), and took part in the subject itself (named by a delegation on it, or issued an op
/// on it): a removed device, which is served the subject's ops. INV-9: so is a device whose
/// only claim is a redemption that lost to the invitation's use limit (INV-6), so that it
/// learns the verdict from the ops every replica judges by (it issued the redemption).
pub(crate) fn removed_from(checker: &Checker, who: &IndividualId, subject: &PublicKey) -> bool {
    let agent = AgentId::Individual(*who);
    matches!(
        checker.explain(agent, Access::Pull, subject),
        Explanation::Refused(r)
            if matches!(r.reason, Reason::Revoked { .. } | Reason::UsedUp { .. })
    ) && checker.took_part(agent, subject)
}

/// CAP-21, REP-30: how much of a known subject `who` is served, from the capability graph.
pub(crate) fn share_of(checker: &Checker, who: &IndividualId, subject: &PublicKey) -> Share {
    let agent = AgentId::Individual(*who);
    if checker.can(agent, Access::Pull, subject) {
        Share::All
    } else if removed_from(checker, who, subject) {
        Share::Ops
    } else if checker.served_subjects(agent).contains(subject) {
        Share::AuthOps
    } else {
        Share::Nothing
    }
}

/// SYNC-104: the subjects `who` created (its contact card's first) if it is a stranger: every
/// subject it holds access to was created by itself, and no other device holds access to any
/// of them; `None` otherwise.
pub(crate) fn stranger_subjects(checker: &Checker, who: &IndividualId) -> Option<Vec<SubjectId>> {
    let mut own = vec![SubjectId(who.0)];
    for subject in checker.reachable(AgentId::Individual(*who)).keys() {
        let info = checker.subject_info(subject)?;
        if info.creator != *who {
            return None;
        }
        let shared = checker
            .members(subject)
            .keys()
            .any(|agent| matches!(agent, AgentId::Individual(id) if id != who));
        if shared {
            return None;
        }
        own.push(SubjectId(*subject));
    }
    Some(own)
}

/// CAP-21: the known subjects `who` is served anything of (for collection sync).
pub(crate) fn served_subjects(checker: &Checker, who: &IndividualId) -> BTreeSet<SubjectId> {
    checker
        .served_subjects(AgentId::Individual(*who))
        .into_iter()
        .map(SubjectId)
        .collect()
}

impl AccessPolicy for CapabilityPolicy {
    fn pulls_everything(&self, requester: &IndividualId) -> bool {
        self.peers.contains(requester)
    }

    fn share(&self, requester: &IndividualId, subject: &SubjectId) -> Share {
        if self.peers.contains(requester) || requester.0 == subject.0 {
            return Share::All;
        }
        let graph = self.lock();
        if graph.admission.checker.subject_info(&subject.0).is_some() {
            return share_of(&graph.admission.checker, requester, &subject.0);
        }
        drop(graph);
        if self.may_pull(requester, subject) {
            Share::All
        } else {
            Share::Nothing
        }
    }

    fn removed_from(&self, requester: &IndividualId, subject: &SubjectId) -> bool {
        removed_from(&self.lock().admission.checker, requester, &subject.0)
    }

    fn may_pull(&self, requester: &IndividualId, subject: &SubjectId) -> bool {
        if self.peers.contains(requester) || requester.0 == subject.0 {
            return true;
        }
        let graph = self.lock();
        if graph.admission.checker.subject_info(&subject.0).is_some() {
            return graph.holds(requester, Access::Pull, subject);
        }
        let device = IndividualId(subject.0);
        graph.admission.directory.card(&device).is_some()
            && graph.shares_subject(requester, &device)
    }

    fn check_push(&self, from: &IndividualId, item: &Item) -> Result<(), Refusal> {
        let mut graph = self.lock();
        let how = graph
            .admission
            .admit(Mode::Relay, PeerTag::from(from.0), item)?;
        // RELAY-8: journalled until the store reports it stored (`stored`, `mark_admitted`).
        if self.marks.is_some() && !matches!(how, Admitted::Duplicate) {
            graph
                .journal
                .admitted(item, matches!(how, Admitted::Op { .. }), false);
        }
        Ok(())
    }

    fn stored(&self, items: &[Item]) {
        if self.marks.is_some() {
            self.lock().journal.stored(items.iter().map(Item::hash));
        }
    }

    fn mark_admitted(&self, store: &dyn Store, items: &[Item]) {
        let Some(key) = &self.marks else {
            return;
        };
        if let Err(e) = store.put_marks(&key.marks(items.iter().map(Item::hash))) {
            tracing::warn!(error = %e, "cannot record admission marks; the next start verifies these items again");
        }
        // RELAY-8: a periodic snapshot, once enough was stored since the last one.
        let due = {
            let mut graph = self.lock();
            graph.journal.stored(items.iter().map(Item::hash));
            if graph.journal.due() {
                let Graph { admission, journal } = &mut *graph;
                Some(journal.snapshot(admission, key))
            } else {
                None
            }
        };
        if let Some(bytes) = due {
            put_snapshot(store, &bytes);
        }
    }

    fn checkpoint(&self, store: &dyn Store) {
        self.save_snapshot(store);
    }

    fn not_stored(&self, store: &dyn Store) {
        // ADM-3: the graph may hold ops the store does not; rebuild it from what is stored.
        if let Err(e) = self.load(store) {
            tracing::error!(error = %e, "cannot rebuild the relay's capability graph from its store");
        }
    }

    fn stranger_subjects(&self, who: &IndividualId) -> Option<Vec<SubjectId>> {
        if self.peers.contains(who) {
            return None;
        }
        stranger_subjects(&self.lock().admission.checker, who)
    }

    fn reachable(&self, requester: &IndividualId) -> Vec<SubjectId> {
        let graph = self.lock();
        let mut out: BTreeSet<SubjectId> = BTreeSet::new();
        if self.peers.contains(requester) {
            out.extend(graph.admission.checker.subjects().map(|s| SubjectId(*s)));
            out.extend(
                graph
                    .admission
                    .directory
                    .cards()
                    .map(|c| SubjectId(c.device)),
            );
        } else {
            let checker = &graph.admission.checker;
            out.extend(served_subjects(checker, requester));
            out.insert(SubjectId(requester.0));
            // RELAY-5: the cards of the devices sharing a subject with the requester, found
            // from the members of what it reaches (not by asking about every known card).
            out.extend(
                sharing_devices(checker, requester)
                    .into_iter()
                    .filter(|device| graph.admission.directory.card(device).is_some())
                    .map(|device| SubjectId(device.0)),
            );
        }
        out.into_iter().collect()
    }

    /// SYNC-50a: [`AccessPolicy::reachable`] lists every subject a device other than a peer
    /// relay may pull: the subjects it reaches (CAP-14) are among its served subjects, and
    /// the only others it may pull are its own card and the cards of devices sharing a
    /// subject with it (RELAY-5), all listed.
    fn reachable_is_complete(&self, requester: &IndividualId) -> bool {
        !self.peers.contains(requester)
    }
}

/// RELAY-5: every device that reaches a subject `who` reaches (so `shares_subject(who, d)`
/// holds for each), from the transitive members of those subjects: a device reaches a subject
/// exactly when it is among the subject's members (CAP-14 walks the same edges both ways).
pub(crate) fn sharing_devices(checker: &Checker, who: &IndividualId) -> BTreeSet<IndividualId> {
    let mut out = BTreeSet::new();
    for subject in checker.reachable(AgentId::Individual(*who)).keys() {
        out.extend(
            checker
                .members(subject)
                .keys()
                .filter_map(|agent| match agent {
                    AgentId::Individual(id) => Some(*id),
                    _ => None,
                }),
        );
    }
    out
}
