//! Convergence of reconciliation: replicas holding random subsets, synced pairwise in random
//! orders (including partitions that heal later), end with identical stores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_sync::reconcile::range::{initial_queries, process, respond};
use keyhive_sync::store::{MemoryStore, Store};
use keyhive_sync::{Item, SubjectId};
use proptest::prelude::*;

/// One pairwise sync of `subject` between stores `a` (initiator) and `b`, with the same
/// reconciliation functions the network protocol runs.
fn sync_pair(a: &MemoryStore, b: &MemoryStore, subject: SubjectId) {
    let mine = a.hashes(&subject).unwrap();
    let theirs = b.hashes(&subject).unwrap();
    let mut queries = initial_queries(&mine);
    while !queries.is_empty() {
        let answers = respond(&theirs, &queries);
        let out = process(&mine, &queries, &answers).unwrap();
        let need: Vec<Item> = out
            .need
            .iter()
            .map(|h| b.get(h).unwrap().unwrap())
            .collect();
        let have: Vec<Item> = out
            .have
            .iter()
            .map(|h| a.get(h).unwrap().unwrap())
            .collect();
        a.put(&need).unwrap();
        b.put(&have).unwrap();
        queries = out.next;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn replicas_converge_under_random_orders_and_partitions(
        holdings in proptest::collection::vec(proptest::collection::btree_set(0u64..300, 0..120), 4..6),
        schedule in proptest::collection::vec((0usize..6, 0usize..6), 0..20),
    ) {
        let key = SigningKey::from_seed(&[9; 32]);
        let subject = subject(40);
        let replicas: Vec<MemoryStore> = holdings
            .iter()
            .map(|held| {
                let s = MemoryStore::new();
                let its: Vec<Item> = held.iter().map(|n| item(&key, subject, *n, 32)).collect();
                s.put(&its).unwrap();
                s
            })
            .collect();
        let r = replicas.len();
        // Random partial syncs first (a partitioned network)...
        for (x, y) in schedule {
            let (x, y) = (x % r, y % r);
            if x != y {
                sync_pair(&replicas[x], &replicas[y], subject);
            }
        }
        // ...then the partition heals: a ring, twice around, reaches everyone.
        for _ in 0..2 {
            for i in 0..r {
                sync_pair(&replicas[i], &replicas[(i + 1) % r], subject);
            }
        }
        let union: std::collections::BTreeSet<u64> = holdings.iter().flatten().copied().collect();
        let first = replicas[0].hashes(&subject).unwrap();
        prop_assert_eq!(first.len(), union.len());
        for rep in &replicas[1..] {
            prop_assert_eq!(rep.hashes(&subject).unwrap(), first.clone());
            prop_assert_eq!(rep.summary(&subject).unwrap(), replicas[0].summary(&subject).unwrap());
        }
    }
}
