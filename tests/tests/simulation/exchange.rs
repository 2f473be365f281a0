//! One sync between a client device and a server (relay or peer), in process and without a
//! socket. The server side makes exactly the `AccessPolicy` calls of a relay connection
//! (`keyhive_sync::relay::connection`: `reachable` and `may_pull` for the collection offer,
//! `share` for reconciliation and per pulled item, `check_push`, one
//! `put` and `stored` per push); the client side makes those of `client::sync_once`
//! (`offers`, then `admit_batch` per subject in dependency order, then `offers` again to choose
//! what to push, REP-33). Reconciliation itself is
//! modelled as a set difference (range reconciliation has its own tests).

use std::collections::BTreeSet;

use keyhive_core::Hash;
use keyhive_core::identity::IndividualId;
use keyhive_sync::admission::apply_order;
use keyhive_sync::policy::{AccessPolicy, Answered, Share};
use keyhive_sync::{Item, Store, SubjectId};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

/// One end of a sync: who it is, what decides and what stores.
pub struct Side<'a> {
    pub id: IndividualId,
    pub policy: &'a dyn AccessPolicy,
    pub store: &'a dyn Store,
}

/// The network between the two sides: it reorders everything, and a lossy one (a faulty
/// relay) also drops and duplicates items.
pub struct Wire {
    rng: StdRng,
    lossy: bool,
    /// Subjects in a run-independent order (ids are random), so that a seed shuffles them the
    /// same way in every run.
    order: Vec<SubjectId>,
}

/// The position of `subject` in `order`, or after every listed one.
pub fn rank_in(order: &[SubjectId], subject: &SubjectId) -> usize {
    order
        .iter()
        .position(|s| s == subject)
        .unwrap_or(order.len())
}

impl Wire {
    pub fn new(seed: u64, lossy: bool, order: Vec<SubjectId>) -> Wire {
        Wire {
            rng: StdRng::seed_from_u64(seed),
            lossy,
            order,
        }
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        v.shuffle(&mut self.rng);
    }

    /// Items after the wire: reordered; if lossy, some dropped and some sent twice.
    fn carry(&mut self, items: Vec<Item>) -> Vec<Item> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if self.lossy && self.rng.random_bool(0.15) {
                continue;
            }
            if self.lossy && self.rng.random_bool(0.15) {
                out.push(item.clone());
            }
            out.push(item);
        }
        self.shuffle(&mut out);
        out
    }
}

fn get_all(store: &dyn Store, hashes: impl IntoIterator<Item = Hash>) -> Vec<Item> {
    hashes
        .into_iter()
        .filter_map(|h| store.get(&h).expect("store get"))
        .collect()
}

/// What a server served over one sync.
#[derive(Default)]
pub struct Serving {
    /// Every item served.
    pub items: Vec<Item>,
    /// Subjects the server let the client pull at the moment it served their items: a view
    /// between step boundaries, which a push earlier in the same sync can change (seed 314439:
    /// a grant by a device revoked concurrently, admitted before the revocation arrived later
    /// in the same sync).
    pub pullable: BTreeSet<SubjectId>,
}

/// One sync of `client` with `server`; what the server served is added to `served`.
pub fn exchange(client: &Side, server: &Side, wire: &mut Wire, served: &mut Serving) {
    // SYNC-50/51: the collection offer.
    let mut offered: BTreeSet<SubjectId> =
        server.policy.reachable(&client.id).into_iter().collect();
    for s in server.store.subjects().expect("subjects") {
        if !offered.contains(&s) && server.policy.may_pull(&client.id, &s) {
            offered.insert(s);
        }
    }
    let mut todo = Vec::new();
    for s in &offered {
        let theirs = server.store.summary(s).expect("summary").fingerprint();
        if client.store.summary(s).expect("summary").fingerprint() != theirs {
            todo.push(*s);
        }
    }
    // SYNC-81/85: subjects only the client holds, unless it offers nothing of them (REP-33).
    for s in client.store.subjects().expect("subjects") {
        if !offered.contains(&s) && !client.policy.offers(&s).is_empty() {
            todo.push(s);
        }
    }
    todo.sort_by_key(|s| rank_in(&wire.order, s));
    wire.shuffle(&mut todo);
    for subject in todo {
        sync_subject(client, server, subject, wire, served);
    }
}

fn sync_subject(
    client: &Side,
    server: &Side,
    subject: SubjectId,
    wire: &mut Wire,
    served: &mut Serving,
) {
    let mine: BTreeSet<Hash> = client
        .store
        .hashes(&subject)
        .expect("hashes")
        .into_iter()
        .collect();
    let share = server.policy.share(&client.id, &subject);
    if share == Share::Nothing {
        // Forbidden: the client offers everything it holds (only its own valid ops if it was
        // removed, REP-33); the server's policy decides.
        let offer = client
            .policy
            .offers(&subject)
            .select_in(
                client.store,
                mine.into_iter().collect(),
                &Answered::default(),
            )
            .expect("select");
        push(client, server, get_all(client.store, offer), wire);
        return;
    }
    let mut theirs: BTreeSet<Hash> = server
        .store
        .hashes(&subject)
        .expect("hashes")
        .into_iter()
        .collect();
    if share != Share::All {
        // CAP-21, REP-30: a partial share reconciles over the items it covers only.
        theirs.retain(|h| {
            server
                .store
                .get(h)
                .expect("get")
                .is_some_and(|i| share.covers(i.kind()))
        });
    }
    // SYNC-42/43/44: pull what the client lacks, item by item as the share allows.
    let mut out = Vec::new();
    for item in get_all(server.store, theirs.difference(&mine).copied()) {
        if share.covers(item.kind()) {
            out.push(item);
        }
    }
    let out = wire.carry(out);
    if !out.is_empty() && server.policy.may_pull(&client.id, &subject) {
        served.pullable.insert(subject);
    }
    served.items.extend(out.iter().cloned());
    // SYNC-82: only items of this subject, admitted in dependency order.
    let mut ours: Vec<Item> = out.into_iter().filter(|i| i.subject() == subject).collect();
    apply_order(&mut ours);
    if !ours.is_empty() {
        client
            .policy
            .admit_batch(&server.id, ours, client.store)
            .expect("admit a batch");
    }
    // SYNC-85, REP-33: asked after the pulls, which may have told the client of its removal.
    let have = client
        .policy
        .offers(&subject)
        .select_in(
            client.store,
            mine.difference(&theirs).copied().collect(),
            &Answered::default(),
        )
        .expect("select");
    push(client, server, get_all(client.store, have), wire);
}

/// SYNC-40/41/45: the server checks each pushed item, stores the accepted ones in one `put`,
/// then tells its policy what was new.
pub fn push(client: &Side, server: &Side, items: Vec<Item>, wire: &mut Wire) {
    let mut items = wire.carry(items);
    apply_order(&mut items);
    deliver(&client.id, server, items);
}

/// The relay connection's push handling for `items` from `from`.
pub fn deliver(from: &IndividualId, server: &Side, items: Vec<Item>) {
    let accepted: Vec<Item> = items
        .into_iter()
        .filter(|item| server.policy.check_push(from, item).is_ok())
        .collect();
    if accepted.is_empty() {
        return;
    }
    let fresh = server.store.put(&accepted).expect("put");
    let new: Vec<Item> = accepted
        .into_iter()
        .zip(fresh)
        .filter_map(|(item, is_new)| is_new.then_some(item))
        .collect();
    if !new.is_empty() {
        server.policy.stored(&new);
    }
}
