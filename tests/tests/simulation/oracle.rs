//! The reference: one capability graph holding every op any node stored (fed after every step),
//! and what the run did that the invariants are checked against.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use keyhive_core::Hash;
use keyhive_core::capability::{Checker, PeerTag, PendingLimits};
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::IndividualId;
use keyhive_sync::admission::{Admission, Mode};
use keyhive_sync::{Item, ItemKind, Store, SubjectId};

use keyhive_sync::admission::apply_rank;

use super::exchange::rank_in;

/// A reference checker over every op seen anywhere, parking nothing for good (no limits).
pub struct Oracle {
    admission: Admission,
    seen: HashSet<Hash>,
    /// Every item seen, in the order first seen (attackers copy from here).
    pub pool: Vec<Item>,
}

impl Default for Oracle {
    fn default() -> Self {
        let mut checker = Checker::new(PendingLimits {
            per_peer: usize::MAX,
            per_subject: usize::MAX,
            total: usize::MAX,
        });
        checker.set_pending_bytes_limit(usize::MAX);
        Oracle {
            admission: Admission::new(checker),
            seen: HashSet::new(),
            pool: Vec::new(),
        }
    }
}

impl Oracle {
    /// The reference graph.
    pub fn checker(&self) -> &Checker {
        self.admission.checker()
    }

    /// Feeds every item of `store` not seen yet, in `order` of their subjects (so that the pool
    /// attackers copy from is in much the same order in every run of a seed).
    pub fn feed(&mut self, store: &dyn Store, order: &[SubjectId]) {
        let mut fresh = Vec::new();
        for subject in store.subjects().expect("subjects") {
            for hash in store.hashes(&subject).expect("hashes") {
                if self.seen.insert(hash) {
                    fresh.push(store.get(&hash).expect("get").expect("listed item"));
                }
            }
        }
        fresh.sort_by_key(|i| (rank_in(order, &i.subject()), apply_rank(i)));
        for item in fresh {
            if matches!(item.kind(), ItemKind::Auth | ItemKind::Content) {
                // Cards and ops; an op refused here is refused by every node too.
                let _ = self.admission.admit(Mode::Replica, PeerTag::LOCAL, &item);
            }
            self.pool.push(item);
        }
    }

    /// Subjects whose auth ops `device` may be served now (CAP-21).
    pub fn in_scope(&self, device: &IndividualId) -> BTreeSet<PublicKey> {
        self.checker()
            .served_subjects(keyhive_core::capability::AgentId::Individual(*device))
    }

    /// Subjects `device` may pull now.
    pub fn pullable(&self, device: &IndividualId) -> BTreeSet<PublicKey> {
        self.checker()
            .reachable(keyhive_core::capability::AgentId::Individual(*device))
            .keys()
            .copied()
            .collect()
    }
}

/// A write some device acknowledged (`Replica::write` returned `Ok`).
#[derive(Clone, Debug)]
pub struct Acked {
    pub step: usize,
    pub writer: usize,
    pub doc: PublicKey,
    pub op: Hash,
    pub plaintext: Vec<u8>,
    /// Devices that, in some node's view at some step boundary since the write, held `read`
    /// on the document (the writer's view at the write included): the only devices that may
    /// ever be given a key for it (invariant c).
    pub may_read: BTreeSet<IndividualId>,
}

/// One item served to a device.
#[derive(Clone, Debug)]
pub struct Served {
    pub item: Item,
    pub step: usize,
    pub server: String,
}

/// What the run did that the checks need.
#[derive(Default)]
pub struct Record {
    pub acked: Vec<Acked>,
    /// Every item an honest server served each device (device index -> items, each with the
    /// step and the server that served it).
    pub served: BTreeMap<usize, Vec<Served>>,
    /// Subjects each device could pull in some honest node's view at some step boundary, or
    /// in its server's view when served items of them (`Serving::pullable`).
    pub ever_pullable: BTreeMap<IndividualId, BTreeSet<PublicKey>>,
    /// Subjects whose auth ops each device could be served (CAP-21 scope) in some honest
    /// node's view at some step boundary.
    pub ever_in_scope: BTreeMap<IndividualId, BTreeSet<PublicKey>>,
    /// Items with a forged signature, sent by attackers: no one may store them.
    pub forged: Vec<Item>,
    /// Envelopes of known items relabelled with another subject or kind: no one may store
    /// them under those labels.
    pub mislabelled: Vec<Item>,
    /// Content ops by devices without `write`, sent by attackers: invalid wherever held, and
    /// stored by no relay.
    pub unauthorised: Vec<Item>,
}

impl Record {
    /// Notes that `who` may be served the auth ops of `subjects` (CAP-21).
    pub fn note_in_scope(
        &mut self,
        who: IndividualId,
        subjects: impl IntoIterator<Item = PublicKey>,
    ) {
        self.ever_in_scope.entry(who).or_default().extend(subjects);
    }

    /// Notes that `who` may pull `subjects`.
    pub fn note_pullable(
        &mut self,
        who: IndividualId,
        subjects: impl IntoIterator<Item = SubjectId>,
    ) {
        self.ever_pullable
            .entry(who)
            .or_default()
            .extend(subjects.into_iter().map(|s| s.0));
    }
}
