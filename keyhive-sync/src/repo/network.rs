//! A [`Repo`]'s network work: background links to relays and peers, and "sync until quiet".

use keyhive_core::crypto::signing::PublicKey;

use super::Repo;
use crate::client::{ConnectError, LinkStatus, SyncError, SyncReport};
use crate::replica::ReplicaError;

/// Most sync rounds with one relay or peer in [`Repo::sync`].
pub const MAX_ROUNDS: usize = 8;

/// Why [`Repo::sync`] or [`Repo::sync_with`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoSyncError {
    /// The relay or peer could not be reached or did not prove the expected id.
    #[error("cannot connect to {url}")]
    Connect {
        /// Its URL.
        url: String,
        /// Why.
        #[source]
        source: ConnectError,
    },
    /// A sync round failed.
    #[error("sync with {url} failed")]
    Sync {
        /// Its URL.
        url: String,
        /// Why.
        #[source]
        source: SyncError,
    },
    /// Seating new members or re-keying between rounds failed (REP-3).
    #[error("cannot update the key agreements")]
    Replica(#[from] ReplicaError),
    /// [`Repo::sync`]: some relays or peers could not be synced with (each failure says which
    /// and why); every other one was, and `synced` is what those rounds did.
    #[error("{} relay(s) or peer(s) could not be synced with", failures.len())]
    Partial {
        /// What the relays and peers that answered exchanged.
        synced: SyncReport,
        /// One [`RepoSyncError::Connect`] or [`RepoSyncError::Sync`] per one that did not.
        failures: Vec<RepoSyncError>,
    },
}

impl Repo {
    /// Keeps this device in sync with the relay or peer at `url` in the background (SYNC-91),
    /// requiring it to prove the id `expected` when given (SYNC-34). Returns at once; the
    /// link reconnects with backoff until [`Repo::shutdown`]. Local writes reach it within
    /// milliseconds (SYNC-86) and what it sends is verified and stored as it arrives, raising
    /// events. A peer this device knows as a device (a contact, or a member of something it
    /// holds) is sent only what that device may be served (REP-2b); any other key is taken
    /// for a relay and is sent everything this device offers, so connect to another device
    /// with its id as `expected`.
    pub async fn connect(&self, url: impl Into<String>, expected: Option<PublicKey>) {
        let url = url.into();
        let link = self.client.add_link(url.clone(), expected);
        self.links.lock().await.push((url, expected, link));
    }

    /// Waits until every link has connected and completed a full sync (e.g. before relying
    /// on live delivery in a test). Waits as long as a relay is unreachable.
    pub async fn connected(&self) {
        let mut links = self.links.lock().await;
        for (_, _, link) in links.iter_mut() {
            link.wait_for(|s| s.connected).await;
        }
    }

    /// The status of each link, by URL.
    pub async fn links(&self) -> Vec<(String, LinkStatus)> {
        let links = self.links.lock().await;
        links
            .iter()
            .map(|(url, _, link)| (url.clone(), link.status()))
            .collect()
    }

    /// Revokes the invitations and grants that ended by this device's clock and that it may
    /// revoke (INV-5, INV-11), then syncs with every connected relay and peer until quiet
    /// ([`Repo::sync_with`] each), then waits until the links to those that answered are
    /// connected, and returns what all rounds did. A relay or peer that cannot be synced with
    /// does not stop the others: the error is then [`RepoSyncError::Partial`], holding what the
    /// others exchanged. Live links carry single changes both ways; a link's full sync is one round, so
    /// this is for "make sure everything is exchanged now": after connecting, after sharing
    /// changed, before going offline.
    pub async fn sync(&self) -> Result<SyncReport, RepoSyncError> {
        {
            // INV-5, INV-11: the causal end of what ended by this device's clock.
            let now = super::unix_now();
            let mut replica = self.replica();
            replica.revoke_expired_invitations(now)?;
            replica.revoke_ended_grants(now)?;
        }
        let targets: Vec<(String, Option<PublicKey>)> = {
            let links = self.links.lock().await;
            links.iter().map(|(u, e, _)| (u.clone(), *e)).collect()
        };
        let mut total = SyncReport::default();
        let mut failures = Vec::new();
        for (url, expected) in targets {
            match self.sync_with(&url, expected).await {
                Ok(report) => total.merge(&report),
                // A relay that is down does not keep the others from syncing.
                Err(e @ (RepoSyncError::Connect { .. } | RepoSyncError::Sync { .. })) => {
                    failures.push(e)
                }
                Err(e) => return Err(e),
            }
        }
        let failed: Vec<&str> = failures
            .iter()
            .filter_map(|e| match e {
                RepoSyncError::Connect { url, .. } | RepoSyncError::Sync { url, .. } => {
                    Some(url.as_str())
                }
                _ => None,
            })
            .collect();
        {
            // The links to what answered; waiting for one that did not would not end.
            let mut links = self.links.lock().await;
            for (url, _, link) in links.iter_mut() {
                if !failed.contains(&url.as_str()) {
                    link.wait_for(|s| s.connected).await;
                }
            }
        }
        if failures.is_empty() {
            Ok(total)
        } else {
            Err(RepoSyncError::Partial {
                synced: total,
                failures,
            })
        }
    }

    /// Syncs with the relay or peer at `url` over a session of its own until quiet: rounds
    /// are repeated, seating and re-keying between them (REP-3), while a round accepted
    /// something here, re-keyed, or had fewer items refused (by either side) than the one
    /// before (a refusal for want of a predecessor or grant resolves in a later round), at
    /// most [`MAX_ROUNDS`] times. What it stores raises events and reaches every link. The
    /// report adds the rounds up, except `refused` and `peer_refusals`: those of the last
    /// round, what the peer still refuses.
    pub async fn sync_with(
        &self,
        url: &str,
        expected: Option<PublicKey>,
    ) -> Result<SyncReport, RepoSyncError> {
        self.replica().prepare_all()?;
        let session = self
            .client
            .connect_to(url, expected)
            .await
            .map_err(|source| RepoSyncError::Connect {
                url: url.to_owned(),
                source,
            })?;
        let mut total = SyncReport::default();
        let mut refused_before = usize::MAX;
        for _ in 0..MAX_ROUNDS {
            let accepted = self.replica().accepted_count();
            let report =
                self.client
                    .sync_once(&session)
                    .await
                    .map_err(|source| RepoSyncError::Sync {
                        url: url.to_owned(),
                        source,
                    })?;
            total.merge(&report);
            // Each round offers again what the peer lacks: what it refused is what it still
            // refused in the last round (SYNC-83), not the sum, which would count an item once
            // per round, and one taken in a later round as refused.
            total.refused = report.refused;
            total.peer_refusals.clone_from(&report.peer_refusals);
            let rekeyed = !self.replica().prepare_all()?.is_empty();
            let moved = self.replica().accepted_count() != accepted;
            let refused = report.refused + report.rejected;
            let settled = refused == 0 || refused >= refused_before;
            if !moved && !rekeyed && settled {
                break;
            }
            refused_before = refused;
        }
        Ok(total)
    }

    /// Stops every link and listener and waits for their tasks; the replica stays open until
    /// the `Repo` is dropped (connecting again later is fine). Fails only when a listener's
    /// server task failed.
    pub async fn shutdown(&self) -> std::io::Result<()> {
        let links = std::mem::take(&mut *self.links.lock().await);
        for (_, _, link) in links {
            link.stop().await;
        }
        let listeners = std::mem::take(&mut *self.listeners.lock().await);
        let mut result = Ok(());
        for listener in listeners {
            let stopped = listener.stop().await;
            if result.is_ok() {
                result = stopped;
            }
        }
        result
    }
}
