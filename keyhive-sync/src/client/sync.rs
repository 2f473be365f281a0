//! One-shot synchronisation of a local store with a connected peer (SYNC-80..SYNC-83).

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::item::{Item, SubjectId};
use crate::policy::AccessPolicy;
use crate::protocol::ErrorCode;
use crate::protocol::PushOutcome;
use crate::store::{Store, StoreError};

use super::session::{Session, SessionError};

/// Items pulled or pushed per request during a sync.
const TRANSFER_CHUNK: usize = 1_024;

/// What one sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Subjects the peer offered.
    pub offered: usize,
    /// Subjects whose fingerprints differed and were reconciled.
    pub reconciled: usize,
    /// Reconciliation round trips.
    pub rounds: u32,
    /// Items received and newly stored.
    pub pulled: usize,
    /// Items received but refused by the local policy or malformed.
    pub rejected: usize,
    /// Items pushed and stored (or already held) by the peer.
    pub pushed: usize,
    /// Items the peer refused.
    pub refused: usize,
    /// Local-only subjects the peer would neither serve nor accept (SYNC-81).
    pub closed: Vec<SubjectId>,
    /// Frame bytes sent during this sync.
    pub bytes_sent: u64,
    /// Frame bytes received during this sync.
    pub bytes_received: u64,
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
}

/// Validates items from `session`'s peer with `policy` (SYNC-82) and stores them; returns the
/// newly stored ones and the number rejected.
pub async fn ingest(
    store: &Arc<dyn Store>,
    policy: &dyn AccessPolicy,
    from: &keyhive_core::identity::IndividualId,
    items: Vec<Item>,
) -> Result<(Vec<Item>, usize), StoreError> {
    let before = items.len();
    let mut items = items;
    // Whatever names an item is checked before it (ADM-n), so one round takes a whole chain.
    items.sort_by_key(crate::admission::apply_rank);
    let valid: Vec<Item> = items
        .into_iter()
        .filter(|item| policy.check_push(from, item).is_ok())
        .collect();
    let rejected = before - valid.len();
    if valid.is_empty() {
        return Ok((Vec::new(), rejected));
    }
    let store = store.clone();
    let (valid, fresh) = tokio::task::spawn_blocking(move || {
        let r = store.put(&valid);
        (valid, r)
    })
    .await
    .map_err(|e| StoreError::Backend(e.to_string()))?;
    let fresh = fresh?;
    let new: Vec<Item> = valid
        .into_iter()
        .zip(fresh)
        .filter_map(|(item, is_new)| is_new.then_some(item))
        .collect();
    policy.stored(&new);
    Ok((new, rejected))
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
    let (sent0, recv0) = session.stats().bytes();
    let from = keyhive_core::identity::IndividualId(session.server_id());
    let mut report = SyncReport::default();
    let mut new_items = Vec::new();

    let offers = session.collection().await?;
    report.offered = offers.len();
    let offered: BTreeSet<SubjectId> = offers.iter().map(|o| o.subject).collect();
    let mut todo = Vec::new();
    for offer in &offers {
        if store.summary(&offer.subject)?.fingerprint() != offer.fingerprint {
            todo.push(offer.subject);
        }
    }
    // SYNC-81: subjects only we hold are reconciled too; the peer decides if it takes them.
    for subject in store.subjects()? {
        if !offered.contains(&subject) && !skip.contains(&subject) {
            todo.push(subject);
        }
    }
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
            let (fresh, rejected) = ingest(store, policy, &from, ours).await?;
            report.rejected += rejected + foreign.len();
            report.pulled += fresh.len();
            new_items.extend(fresh);
        }
        let mut accepted = 0;
        for chunk in have.chunks(TRANSFER_CHUNK) {
            let mut items = Vec::with_capacity(chunk.len());
            for hash in chunk {
                if let Some(item) = store.get(hash)? {
                    items.push(item);
                }
            }
            // The peer admits an item only after what names it (ADM-n): send those first.
            items.sort_by_key(crate::admission::apply_rank);
            for outcome in session.push(&items).await? {
                match outcome {
                    PushOutcome::Stored | PushOutcome::Duplicate => accepted += 1,
                    _ => report.refused += 1,
                }
            }
        }
        report.pushed += accepted;
        if forbidden && !have.is_empty() && accepted == 0 {
            report.closed.push(subject);
        }
    }
    let (sent1, recv1) = session.stats().bytes();
    report.bytes_sent = sent1 - sent0;
    report.bytes_received = recv1 - recv0;
    Ok((report, new_items))
}
