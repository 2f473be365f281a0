//! One-shot synchronisation of a local store with a connected peer (SYNC-80..SYNC-85).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use keyhive_core::Hash;
use keyhive_core::identity::IndividualId;

use crate::item::{Item, SubjectId};
use crate::policy::{AccessPolicy, AdmitError, Arrival, Offer, Refusal, Share};
use crate::protocol::ErrorCode;
use crate::protocol::PushOutcome;
use crate::store::{Store, StoreError};

use super::session::{Session, SessionError};

/// Items pulled or pushed per request during a sync.
const TRANSFER_CHUNK: usize = 1_024;

/// SYNC-84: most refused items a report keeps with their refusal ([`Refusals::sample`]).
pub const REFUSAL_SAMPLE: usize = 16;

/// SYNC-84: items this device refused, counted by cause, with a bounded sample.
#[derive(Debug, Default, Clone)]
pub struct Refusals {
    /// Count per refusal cause ([`Refusal::cause`]: the variant's name).
    pub counts: BTreeMap<&'static str, usize>,
    /// The first [`REFUSAL_SAMPLE`] refused items and why.
    pub sample: Vec<(Hash, Refusal)>,
}

impl Refusals {
    /// Records one refused item.
    pub fn record(&mut self, hash: Hash, refusal: Refusal) {
        *self.counts.entry(refusal.cause()).or_default() += 1;
        if self.sample.len() < REFUSAL_SAMPLE {
            self.sample.push((hash, refusal));
        }
    }

    /// Refused items in all.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// Adds `other`'s counts, and its sample while there is room.
    pub fn merge(&mut self, other: &Refusals) {
        for (kind, n) in &other.counts {
            *self.counts.entry(kind).or_default() += n;
        }
        let room = REFUSAL_SAMPLE.saturating_sub(self.sample.len());
        self.sample.extend(other.sample.iter().take(room).cloned());
    }
}

/// What one sync did (SYNC-83, SYNC-84). Every received item is counted exactly once:
/// `arrived == pulled + duplicates + parked + rejected`.
#[derive(Debug, Default, Clone)]
pub struct SyncReport {
    /// Subjects the peer offered.
    pub offered: usize,
    /// Subjects whose fingerprints differed and were reconciled.
    pub reconciled: usize,
    /// Reconciliation round trips.
    pub rounds: u32,
    /// Items received from the peer.
    pub arrived: usize,
    /// Items received and newly stored.
    pub pulled: usize,
    /// Items received that were already held.
    pub duplicates: usize,
    /// Items received and kept waiting for causal predecessors (not stored: reconciliation
    /// offers them again until they apply).
    pub parked: usize,
    /// Items received that this device refused (`rejections.total()`).
    pub rejected: usize,
    /// Why this device refused them.
    pub rejections: Refusals,
    /// Items pushed and stored (or already held) by the peer.
    pub pushed: usize,
    /// Items the peer refused.
    pub refused: usize,
    /// The first [`REFUSAL_SAMPLE`] items the peer refused, with the reason it gave (SYNC-83).
    pub peer_refusals: Vec<(Hash, String)>,
    /// Local-only subjects the peer would neither serve nor accept (SYNC-81), and those this
    /// device was removed from once the peer answered (took or refused) everything it owes
    /// there on this connection (REP-33): a link does not reconcile them again until it
    /// reconnects.
    pub closed: Vec<SubjectId>,
    /// Frame bytes sent during this sync.
    pub bytes_sent: u64,
    /// Frame bytes received during this sync.
    pub bytes_received: u64,
}

impl SyncReport {
    /// Adds `other` (a later round) to this report.
    pub fn merge(&mut self, other: &SyncReport) {
        self.offered = self.offered.max(other.offered);
        self.reconciled += other.reconciled;
        self.rounds += other.rounds;
        self.arrived += other.arrived;
        self.pulled += other.pulled;
        self.duplicates += other.duplicates;
        self.parked += other.parked;
        self.rejected += other.rejected;
        self.rejections.merge(&other.rejections);
        self.pushed += other.pushed;
        self.refused += other.refused;
        let room = REFUSAL_SAMPLE.saturating_sub(self.peer_refusals.len());
        self.peer_refusals
            .extend(other.peer_refusals.iter().take(room).cloned());
        for s in &other.closed {
            if !self.closed.contains(s) {
                self.closed.push(*s);
            }
        }
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
    }

    /// The frame bytes `session` moved since it had moved `(sent, received)`.
    fn count_bytes(&mut self, session: &Session, (sent, received): (u64, u64)) {
        let (sent_now, received_now) = session.stats().bytes();
        self.bytes_sent = sent_now - sent;
        self.bytes_received = received_now - received;
    }

    /// Counts what became of received items (SYNC-84).
    fn count(&mut self, arrivals: &[(Item, Arrival)]) {
        for (item, arrival) in arrivals {
            self.arrived += 1;
            match arrival {
                Arrival::Stored => self.pulled += 1,
                Arrival::Duplicate => self.duplicates += 1,
                Arrival::Parked => self.parked += 1,
                Arrival::Refused(refusal) => self.reject(item.hash(), refusal.clone()),
            }
        }
    }

    fn refused_by_peer(&mut self, hash: Hash, why: String) {
        self.refused += 1;
        if self.peer_refusals.len() < REFUSAL_SAMPLE {
            self.peer_refusals.push((hash, why));
        }
    }

    fn reject(&mut self, hash: Hash, refusal: Refusal) {
        self.rejected += 1;
        self.rejections.record(hash, refusal);
    }
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The session failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Admitting received items failed as a whole.
    #[error(transparent)]
    Admit(#[from] AdmitError),
}

/// Admits items from `from` with `policy` (SYNC-82, SYNC-84), which stores each accepted
/// item exactly once; returns what became of each item, in dependency order.
pub fn ingest(
    store: &Arc<dyn Store>,
    policy: &dyn AccessPolicy,
    from: &keyhive_core::identity::IndividualId,
    mut items: Vec<Item>,
) -> Result<Vec<(Item, Arrival)>, AdmitError> {
    // Whatever names an item is checked before it (ADM-n), so one round takes a whole chain.
    crate::admission::apply_order(&mut items);
    policy.admit_batch(from, items, store.as_ref())
}

/// The items of `arrivals` that were newly stored.
pub(super) fn stored(arrivals: Vec<(Item, Arrival)>) -> Vec<Item> {
    arrivals
        .into_iter()
        .filter_map(|(item, a)| matches!(a, Arrival::Stored).then_some(item))
        .collect()
}

/// Most items, and bytes, one sync holds back to judge again once every subject was pulled
/// (SYNC-84a); beyond them a refused item is counted as refused and offered again by the next
/// sync.
const RETRY_MAX_ITEMS: usize = 4_096;
/// See [`RETRY_MAX_ITEMS`].
const RETRY_MAX_BYTES: usize = 16 << 20;

/// SYNC-84a: received items refused for want of another subject's ops
/// ([`Refusal::may_lift_with_other_subjects`]), held back to be judged again at the end of the
/// sync. A sync pulls subject by subject in the peer's order, so a document's key-agreement op
/// seating a team member can arrive before the team's ops that give the member `read`.
#[derive(Default)]
struct Retry {
    items: Vec<Item>,
    bytes: usize,
}

impl Retry {
    /// Takes the refusals it may lift out of `arrivals` (within its bounds); returns the rest.
    fn hold_back(&mut self, arrivals: Vec<(Item, Arrival)>) -> Vec<(Item, Arrival)> {
        let mut rest = Vec::with_capacity(arrivals.len());
        for (item, arrival) in arrivals {
            // Ciphertext met before what names it (REP-20/21: an entry point or change parked
            // for its own predecessors, or pulled in a later chunk) is named by the end.
            let liftable = matches!(&arrival, Arrival::Refused(r)
                if r.may_lift_with_other_subjects() || matches!(r, Refusal::Unnamed));
            let len = item.envelope().len();
            if liftable && self.items.len() < RETRY_MAX_ITEMS && self.bytes + len <= RETRY_MAX_BYTES
            {
                self.bytes += len;
                self.items.push(item);
            } else {
                rest.push((item, arrival));
            }
        }
        rest
    }
}

/// SYNC-80: collection sync, then range reconciliation of every subject whose fingerprint
/// differs (or that only we hold), then pull what we lack and push what the peer lacks.
/// Returns the report and the items newly stored locally.
pub async fn sync_once(
    session: &Session,
    store: &Arc<dyn Store>,
    policy: &dyn AccessPolicy,
) -> Result<(SyncReport, Vec<Item>), SyncError> {
    sync_once_skipping(session, store, policy, &BTreeSet::new()).await
}

/// As [`sync_once`], but local-only subjects in `skip` (ones the peer refused earlier, see
/// [`SyncReport::closed`]) are not offered again unless the peer now offers them (SYNC-81).
pub async fn sync_once_skipping(
    session: &Session,
    store: &Arc<dyn Store>,
    policy: &dyn AccessPolicy,
    skip: &BTreeSet<SubjectId>,
) -> Result<(SyncReport, Vec<Item>), SyncError> {
    let started = session.stats().bytes();
    let mut report = SyncReport::default();

    let offers = session.collection().await?;
    // SYNC-53: kept for the next client; failing to only costs it the whole offer.
    if let Some(fresh) = session.take_fresh_offer()
        && let Err(e) = store.put_peer_offer(
            session.server_id().as_bytes(),
            &super::offer_cache::encode(&fresh),
        )
    {
        tracing::warn!(error = %e, "cannot store the peer's offer; the next client asks it whole");
    }
    report.offered = offers.len();
    let offered: BTreeSet<SubjectId> = offers.iter().map(|o| o.subject).collect();
    let device = peer_device(session, policy);
    let mut todo = Vec::new();
    for offer in offers.iter() {
        if store.summary(&offer.subject)?.fingerprint() != offer.fingerprint {
            todo.push(offer.subject);
        }
    }
    // SYNC-81: subjects only we hold are reconciled too; the peer decides if it takes them.
    for subject in store.subjects()? {
        // SYNC-85: nor a subject this device was removed from, unless it holds valid ops of
        // its own there (REP-33).
        if !offered.contains(&subject)
            && !skip.contains(&subject)
            && !policy.offers(&subject).is_empty()
            && shown(policy, device.as_ref(), &subject) != Share::Nothing
        {
            todo.push(subject);
        }
    }
    let (mut report, new_items) =
        reconcile_subjects(session, store, policy, todo, &offered, report).await?;
    report.count_bytes(session, started);
    Ok((report, new_items))
}

/// SYNC-64: reconciles only `subjects` (subjects the peer just told this device of, e.g. one
/// newly shared with it): pull what it lacks, push what the peer lacks, as a full sync does for
/// each subject it reconciles, without the collection round or any other subject.
pub async fn sync_subjects(
    session: &Session,
    store: &Arc<dyn Store>,
    policy: &dyn AccessPolicy,
    subjects: &BTreeSet<SubjectId>,
) -> Result<(SyncReport, Vec<Item>), SyncError> {
    let started = session.stats().bytes();
    let todo = subjects.iter().copied().collect();
    let (mut report, new_items) = reconcile_subjects(
        session,
        store,
        policy,
        todo,
        subjects,
        SyncReport::default(),
    )
    .await?;
    report.count_bytes(session, started);
    Ok((report, new_items))
}

/// Reconciles each subject of `todo` in turn (SYNC-80..SYNC-85), then judges again what
/// another subject's ops could authorise (SYNC-84a); `offered` are the subjects the peer offers
/// (the others are only ours, SYNC-81). Returns the report and the items newly stored here.
async fn reconcile_subjects(
    session: &Session,
    store: &Arc<dyn Store>,
    policy: &dyn AccessPolicy,
    todo: Vec<SubjectId>,
    offered: &BTreeSet<SubjectId>,
    mut report: SyncReport,
) -> Result<(SyncReport, Vec<Item>), SyncError> {
    let from = keyhive_core::identity::IndividualId(session.server_id());
    let mut new_items = Vec::new();
    let mut retry = Retry::default();
    // SYNC-84: items kept waiting for predecessors that may arrive later in this sync.
    let mut parked: Vec<Hash> = Vec::new();
    let mut deferred: Vec<(SubjectId, Vec<Hash>)> = Vec::new();
    let pushes = Pushes {
        session,
        store,
        policy,
        offered,
        device: peer_device(session, policy),
    };
    for subject in todo {
        report.reconciled += 1;
        let hashes = store.hashes(&subject)?;
        let mut forbidden = false;
        let (need, have) = match session.reconcile(subject, &hashes).await {
            Ok(r) => {
                report.rounds += r.rounds;
                (r.need, r.have)
            }
            // We may not pull it; offer everything we have, the peer's policy decides.
            Err(SessionError::Remote(e)) if e.code == ErrorCode::Forbidden => {
                forbidden = true;
                (Vec::new(), hashes)
            }
            Err(e) => return Err(e.into()),
        };
        // Chunked, so a large difference never sits in memory at once.
        for chunk in need.chunks(TRANSFER_CHUNK) {
            let items = session.pull(chunk).await?;
            // SYNC-82: only items of this subject, validated by the local policy.
            let (ours, foreign): (Vec<Item>, Vec<Item>) =
                items.into_iter().partition(|i| i.subject() == subject);
            for item in foreign {
                report.arrived += 1;
                let actual = item.subject();
                report.reject(
                    item.hash(),
                    Refusal::WrongSubject {
                        claimed: subject,
                        actual,
                    },
                );
            }
            let arrivals = ingest(store, policy, &from, ours)?;
            let arrivals = retry.hold_back(arrivals);
            parked.extend(
                arrivals
                    .iter()
                    .filter(|(_, a)| matches!(a, Arrival::Parked))
                    .map(|(i, _)| i.hash()),
            );
            report.count(&arrivals);
            new_items.extend(stored(arrivals));
        }
        // SYNC-85a: a subject the peer will not serve this device may have been taken from
        // it, and the ops that say so may come with a later subject; its push waits until
        // every subject was pulled, so that it is only what this device owes.
        if forbidden {
            deferred.push((subject, have));
            continue;
        }
        pushes.push(subject, have, false, &mut report).await?;
    }
    // SYNC-84a: what another subject's ops could authorise, judged again now that every
    // subject was pulled, and counted once, by its final outcome.
    if !retry.items.is_empty() {
        let arrivals: Vec<(Item, Arrival)> = ingest(store, policy, &from, retry.items)?
            .into_iter()
            // Held now but refused when it arrived: the replica stored it meanwhile, when an
            // op that arrived later named it (CGKA-20), so it is new in this sync.
            .map(|(item, arrival)| match arrival {
                Arrival::Duplicate => (item, Arrival::Stored),
                other => (item, other),
            })
            .collect();
        report.count(&arrivals);
        new_items.extend(stored(arrivals));
    }
    // SYNC-84: an item that waited for a predecessor which arrived later in this sync (with
    // another subject) was stored then; it counts as pulled, not as still waiting.
    for hash in parked {
        if let Some(item) = store.get(&hash)? {
            report.parked -= 1;
            report.pulled += 1;
            new_items.push(item);
        }
    }
    for (subject, have) in deferred {
        pushes.push(subject, have, true, &mut report).await?;
    }
    Ok((report, new_items))
}

/// REP-2b: the server `session` talks to, if the policy knows it as a device (not a relay).
pub(crate) fn peer_device(session: &Session, policy: &dyn AccessPolicy) -> Option<IndividualId> {
    let server = IndividualId(session.server_id());
    policy.is_device(&server).then_some(server)
}

/// REP-2b: how much of `subject` the server may be shown and sent: everything for a relay,
/// what it may be served for a device the policy knows (`device`, [`peer_device`]), as this
/// device's own listener would serve it.
pub(crate) fn shown(
    policy: &dyn AccessPolicy,
    device: Option<&IndividualId>,
    subject: &SubjectId,
) -> Share {
    match device {
        None => Share::All,
        Some(peer) => policy.share(peer, subject),
    }
}

/// What pushing a subject's items to the peer needs, for the one sync it serves.
struct Pushes<'a> {
    session: &'a Session,
    store: &'a Arc<dyn Store>,
    policy: &'a dyn AccessPolicy,
    /// Subjects the peer offered (SYNC-81).
    offered: &'a BTreeSet<SubjectId>,
    /// The peer, when it is a device: it is pushed only what it may be served (REP-2b).
    device: Option<IndividualId>,
}

impl Pushes<'_> {
    /// Pushes what this device may and should offer of `have`, the items of `subject` the
    /// peer lacks, and records a subject whose debt is answered as closed (REP-33);
    /// `forbidden` when the peer refused to reconcile the subject with us.
    async fn push(
        &self,
        subject: SubjectId,
        have: Vec<Hash>,
        forbidden: bool,
        report: &mut SyncReport,
    ) -> Result<(), SyncError> {
        // SYNC-85, REP-33: asked after the pulls, which may have told this device of its
        // removal; a removed device pushes only what it owes, and what the peer answered
        // before is not pushed again.
        let offer = self.policy.offers(&subject);
        let own = matches!(offer, Offer::Own(_));
        let have = match offer {
            Offer::All => have,
            owed => owed.select_in(self.store.as_ref(), have, &self.session.own.answered())?,
        };
        let share = shown(self.policy, self.device.as_ref(), &subject);
        if share == Share::Nothing {
            return Ok(());
        }
        let accepted = push_in_order(self.session, self.store, &have, report, own, share).await?;
        report.pushed += accepted;
        // REP-33: everything it owes is now answered (taken or refused) on this connection.
        if !self.offered.contains(&subject)
            && (own || forbidden && !have.is_empty() && accepted == 0)
        {
            report.closed.push(subject);
        }
        Ok(())
    }
}

/// Pushes the items `hashes` of one subject in the order the peer admits them (ADM-n): every
/// small item in admission order first, then the pieces of large changes, read one chunk at a
/// time so that a large file never sits in memory at once. Returns how many the peer took
/// (stored or already held); the others are counted as refused in `report`. With `own`
/// (REP-33) the session's ledger records the peer's answers. Only items of a kind `share`
/// covers are sent (REP-2b).
async fn push_in_order(
    session: &Session,
    store: &Arc<dyn Store>,
    hashes: &[Hash],
    report: &mut SyncReport,
    own: bool,
    share: Share,
) -> Result<usize, SyncError> {
    let mut small = Vec::new();
    let mut pieces = Vec::new();
    for hash in hashes {
        if let Some(item) = store.get(hash)? {
            if !share.covers(item.kind()) {
                continue;
            }
            if crate::admission::apply_rank(&item) < crate::admission::PIECE_RANK {
                small.push(item);
            } else {
                pieces.push(*hash);
            }
        }
    }
    crate::admission::apply_order(&mut small);
    let mut accepted = 0;
    let mut small_chunks = small.chunks(TRANSFER_CHUNK);
    let mut piece_chunks = pieces.chunks(TRANSFER_CHUNK);
    loop {
        let items = match small_chunks.next() {
            Some(chunk) => chunk.to_vec(),
            None => match piece_chunks.next() {
                Some(chunk) => {
                    let mut items = Vec::with_capacity(chunk.len());
                    for hash in chunk {
                        if let Some(item) = store.get(hash)? {
                            items.push(item);
                        }
                    }
                    items
                }
                None => break,
            },
        };
        let (mut taken, mut refused) = (Vec::new(), Vec::new());
        for (item, outcome) in items.iter().zip(session.push_or_hold(&items).await?) {
            let why = match outcome {
                PushOutcome::Stored | PushOutcome::Duplicate => {
                    accepted += 1;
                    taken.push(item.hash());
                    continue;
                }
                PushOutcome::Invalid => "malformed".to_string(),
                PushOutcome::Refused(why) => why,
            };
            refused.push(item.hash());
            report.refused_by_peer(item.hash(), why);
        }
        if own {
            session.own.record(&taken, &refused);
            // STORE-22: so that the next client does not push them again either.
            if let Err(e) = store.put_peer_taken(session.server_id().as_bytes(), &taken) {
                tracing::warn!(error = %e, "cannot record what the peer took; the next client pushes it again");
            }
        }
    }
    Ok(accepted)
}
