//! REP-24: a streamed write leaves no orphaned pieces (`specs/replica.md` §2).
//!
//! A large write stores each [`Blob::Piece`] as it is cut (REP-6: memory stays bounded, so the
//! pieces cannot wait for one transaction with their manifest), and stores the
//! [`Blob::Change`] that lists them and the content op naming it last. A write that fails
//! between the two removes the pieces it stored before it returns; a process killed between
//! the two leaves pieces that no change lists, which the next [`Replica::open`] removes
//! (`Store::remove`, STORE-16, one atomic step). Pieces received from the network are never
//! among them: admission stores a piece only with or after a change listing it (ADM-6), and
//! collection runs only at open, before this replica syncs, so a piece is never removed while
//! its manifest may still arrive in the same sync.

use std::collections::HashSet;

use keyhive_core::crypto::hash::Hash;
use keyhive_core::encoding::{SignedPayload, peek_tag};

use super::{Replica, ReplicaError};
use crate::blob::Blob;
use crate::item::{Item, ItemKind};
use crate::store::Store;

/// What the stored ciphertext says about pieces: every piece held, and every piece a held
/// change lists.
#[derive(Default)]
pub(super) struct PieceCensus {
    held: Vec<Hash>,
    listed: HashSet<Hash>,
}

impl PieceCensus {
    /// Notes one stored item.
    pub(super) fn note(&mut self, item: &Item) {
        if item.kind() != ItemKind::Blob || peek_tag(item.envelope()) != Some(Blob::TAG) {
            return;
        }
        match Blob::from_bytes(item.envelope()) {
            Ok(Blob::Change { pieces, .. }) => self.listed.extend(pieces),
            Ok(Blob::Piece { .. }) => self.held.push(item.hash()),
            Err(_) => {}
        }
    }

    /// REP-24: the pieces held that no held change lists.
    fn orphans(self) -> Vec<Hash> {
        let PieceCensus { held, listed } = self;
        held.into_iter().filter(|h| !listed.contains(h)).collect()
    }
}

impl<S: Store> Replica<S> {
    /// REP-24: removes, in one atomic step, every stored piece that no stored change lists
    /// (what a streamed write killed before its manifest was stored left behind). Run by
    /// [`Replica::open`] after the replay, before anything is synced. Returns how many it
    /// removed.
    pub(super) fn collect_orphan_pieces(
        &mut self,
        census: PieceCensus,
    ) -> Result<usize, ReplicaError> {
        let orphans = census.orphans();
        if orphans.is_empty() {
            return Ok(0);
        }
        let removed = self.store.remove(&orphans)?;
        let count = removed.into_iter().filter(|r| *r).count();
        tracing::info!(
            pieces = count,
            "removed pieces of an interrupted write (REP-24)"
        );
        Ok(count)
    }

    /// REP-24: a streamed write failed before its manifest was stored; removes the pieces it
    /// stored (`fresh`: only those it stored new). If that fails too (the store is failing),
    /// they stay until the next [`Replica::open`] collects them; the write's own error is the
    /// one reported.
    pub(super) fn discard_pieces(&self, fresh: &[Hash]) {
        if fresh.is_empty() {
            return;
        }
        if let Err(e) = self.store.remove(fresh) {
            tracing::warn!(
                error = %e,
                pieces = fresh.len(),
                "cannot remove the pieces of a failed write now; the next open removes them (REP-24)"
            );
        }
    }
}
