//! The bounded pending set: verified ops waiting for missing causal parents, and root-form ops
//! waiting for the genesis that names their signer (`specs/capabilities.md` CAP-4, CAP-24).

use std::collections::{HashMap, HashSet};

use crate::crypto::hash::Hash;
use crate::crypto::signing::PublicKey;

use super::op::AnyVerified;
use super::root_form::RootFormOp;

/// Who delivered an op: a connection's peer (e.g. its device key) or [`PeerTag::LOCAL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerTag(pub [u8; 32]);

impl PeerTag {
    /// Ops made on this device.
    pub const LOCAL: PeerTag = PeerTag([0u8; 32]);
}

impl From<PublicKey> for PeerTag {
    fn from(key: PublicKey) -> Self {
        PeerTag(key.0)
    }
}

/// CAP-4: limits of the pending set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingLimits {
    /// Most ops parked on behalf of one peer.
    pub per_peer: usize,
    /// Most ops parked for one subject.
    pub per_subject: usize,
    /// Most ops parked in total.
    pub total: usize,
}

/// CAP-4: default bound on the envelope bytes parked in total (see
/// [`crate::capability::Checker::set_pending_bytes_limit`]).
pub const DEFAULT_PENDING_BYTES: usize = 64 * 1024 * 1024;

impl Default for PendingLimits {
    fn default() -> Self {
        PendingLimits {
            per_peer: 20_000,
            per_subject: 20_000,
            total: 100_000,
        }
    }
}

/// Which pending limit an op would exceed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingLimit {
    /// [`PendingLimits::per_peer`].
    PerPeer,
    /// [`PendingLimits::per_subject`].
    PerSubject,
    /// [`PendingLimits::total`].
    Total,
    /// The bound on parked bytes ([`DEFAULT_PENDING_BYTES`] unless changed).
    TotalBytes,
    /// The bound on bytes parked on behalf of one peer: a quarter of the total, so that one
    /// peer cannot fill the pending set for everyone.
    PeerBytes,
}

/// An op in the pending set.
#[derive(Debug)]
pub(crate) enum Waiting {
    /// A verified op waiting for parents.
    Verified(AnyVerified),
    /// CAP-24: a root-form op waiting for its subject's genesis (and any named parent); its
    /// signature is checked when it is released.
    RootForm(RootFormOp),
}

impl Waiting {
    fn subject(&self) -> PublicKey {
        match self {
            Waiting::Verified(op) => op.subject(),
            Waiting::RootForm(op) => op.unverified_body().subject,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Waiting::Verified(op) => op.as_bytes(),
            Waiting::RootForm(op) => op.as_bytes(),
        }
    }

    fn hash(&self) -> Hash {
        match self {
            Waiting::Verified(op) => op.hash(),
            Waiting::RootForm(op) => op.hash(),
        }
    }
}

#[derive(Debug)]
struct Parked {
    op: Waiting,
    peer: PeerTag,
    subject: PublicKey,
    missing: usize,
}

/// Parked ops and the parents they wait for.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub(crate) limits: PendingLimits,
    parked: HashMap<Hash, Parked>,
    waiting_on: HashMap<Hash, Vec<Hash>>,
    per_peer: HashMap<PeerTag, usize>,
    per_subject: HashMap<PublicKey, usize>,
    bytes: usize,
    bytes_per_peer: HashMap<PeerTag, usize>,
    pub(crate) bytes_limit: usize,
}

impl Pending {
    /// A checker built with an unbounded op count (`total == usize::MAX`, e.g. to replay a
    /// trusted local store) has unbounded bytes too; otherwise [`DEFAULT_PENDING_BYTES`].
    pub(crate) fn new(limits: PendingLimits) -> Self {
        let bytes_limit = if limits.total == usize::MAX {
            usize::MAX
        } else {
            DEFAULT_PENDING_BYTES
        };
        Pending {
            limits,
            bytes_limit,
            ..Pending::default()
        }
    }

    pub(crate) fn contains(&self, hash: &Hash) -> bool {
        self.parked.contains_key(hash)
    }

    pub(crate) fn len(&self) -> usize {
        self.parked.len()
    }

    /// The subjects of the parked ops.
    pub(crate) fn subjects(&self) -> std::collections::BTreeSet<PublicKey> {
        self.per_subject.keys().copied().collect()
    }

    /// Hashes some parked op waits for.
    pub(crate) fn missing(&self) -> Vec<Hash> {
        let mut out: Vec<Hash> = self
            .waiting_on
            .keys()
            .filter(|h| !self.parked.contains_key(h))
            .copied()
            .collect();
        out.sort_unstable();
        out
    }

    /// CAP-4: parks `op`, waiting for `missing` (distinct, non-empty). Over a limit, nothing
    /// is parked and nothing else is lost.
    pub(crate) fn park(
        &mut self,
        op: Waiting,
        peer: PeerTag,
        missing: HashSet<Hash>,
    ) -> Result<(), PendingLimit> {
        let subject = op.subject();
        if self.parked.len() >= self.limits.total {
            return Err(PendingLimit::Total);
        }
        let size = op.as_bytes().len();
        if self.bytes.saturating_add(size) > self.bytes_limit {
            return Err(PendingLimit::TotalBytes);
        }
        if self.per_peer.get(&peer).copied().unwrap_or(0) >= self.limits.per_peer {
            return Err(PendingLimit::PerPeer);
        }
        let peer_bytes = self.bytes_per_peer.get(&peer).copied().unwrap_or(0);
        if peer_bytes.saturating_add(size) > self.bytes_limit / 4 && self.bytes_limit != usize::MAX
        {
            return Err(PendingLimit::PeerBytes);
        }
        if self.per_subject.get(&subject).copied().unwrap_or(0) >= self.limits.per_subject {
            return Err(PendingLimit::PerSubject);
        }
        let hash = op.hash();
        for m in &missing {
            self.waiting_on.entry(*m).or_default().push(hash);
        }
        self.bytes += size;
        *self.bytes_per_peer.entry(peer).or_default() += size;
        *self.per_peer.entry(peer).or_default() += 1;
        *self.per_subject.entry(subject).or_default() += 1;
        self.parked.insert(
            hash,
            Parked {
                op,
                peer,
                subject,
                missing: missing.len(),
            },
        );
        Ok(())
    }

    /// `hash` has been applied: returns the parked ops that no longer miss anything.
    pub(crate) fn release(&mut self, hash: &Hash) -> Vec<(Waiting, PeerTag)> {
        let Some(waiters) = self.waiting_on.remove(hash) else {
            return Vec::new();
        };
        let mut ready = Vec::new();
        for w in waiters {
            let done = match self.parked.get_mut(&w) {
                Some(p) => {
                    p.missing = p.missing.saturating_sub(1);
                    p.missing == 0
                }
                None => false,
            };
            if done && let Some(p) = self.parked.remove(&w) {
                let size = p.op.as_bytes().len();
                self.bytes = self.bytes.saturating_sub(size);
                decrement_by(&mut self.bytes_per_peer, &p.peer, size);
                decrement(&mut self.per_peer, &p.peer);
                decrement(&mut self.per_subject, &p.subject);
                ready.push((p.op, p.peer));
            }
        }
        ready
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    decrement_by(map, key, 1);
}

fn decrement_by<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K, by: usize) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(by);
        if *n == 0 {
            map.remove(key);
        }
    }
}
