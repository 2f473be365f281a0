//! The one conformance suite every [`Store`] backend must pass (STORE-1..STORE-4, STORE-16,
//! STORE-17, STORE-21, STORE-24).
//!
//! Test-support code: assertions panic by design. Enabled in this crate's tests and, for
//! other backends or crates, with the `conformance` feature.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyhive_core::Hash;
use keyhive_core::crypto::signing::PublicKey;

use super::{AddressKey, AddressUsage, Mark, Store};
use crate::item::{Item, ItemKind, SubjectId};
use crate::reconcile::summary::Summary;

/// `n` distinct items spread round-robin over `subjects` subjects (ids `[1;32]`, `[2;32]`...).
pub fn sample_items(n: usize, subjects: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            let s = (i % subjects.max(1)) as u8 + 1;
            let mut envelope = vec![0u8; 80];
            envelope[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let kind = match i % 4 {
                0 => ItemKind::Auth,
                1 => ItemKind::Cgka,
                2 => ItemKind::Content,
                _ => ItemKind::Blob,
            };
            Item::new(kind, SubjectId(PublicKey([s; 32])), envelope).expect("valid sample")
        })
        .collect()
}

/// Runs every conformance check, each against a fresh store from `make`.
pub fn run_all<S: Store, F: Fn() -> S>(make: F) {
    empty_store(&make());
    put_get_round_trip(&make());
    duplicates_are_noops(&make());
    hashes_sorted_and_partitioned(&make());
    summary_matches_hashes(&make());
    summaries_list_every_subject(&make());
    summaries_of_listed_subjects(&make());
    removal(&make());
    admission_marks(&make());
    address_usage(&make());
    relay_snapshot(&make());
    peer_taken(&make());
    peer_offer(&make());
    concurrent_writers(make());
}

/// A fresh store is empty.
pub fn empty_store<S: Store>(store: &S) {
    let subject = SubjectId(PublicKey([1; 32]));
    assert!(store.subjects().unwrap().is_empty());
    assert!(store.hashes(&subject).unwrap().is_empty());
    assert_eq!(store.summary(&subject).unwrap(), Summary::default());
    assert!(store.get(&Hash([0; 32])).unwrap().is_none());
    assert!(!store.contains(&Hash([0; 32])).unwrap());
    assert!(store.put(&[]).unwrap().is_empty());
}

/// Items come back byte-for-byte with kind and subject.
pub fn put_get_round_trip<S: Store>(store: &S) {
    let items = sample_items(20, 3);
    assert_eq!(store.put(&items).unwrap(), vec![true; 20]);
    for item in &items {
        assert!(store.contains(&item.hash()).unwrap());
        assert_eq!(store.get(&item.hash()).unwrap().as_ref(), Some(item));
    }
}

/// STORE-2: re-inserting, also within one batch, is a no-op reported as not new.
pub fn duplicates_are_noops<S: Store>(store: &S) {
    let items = sample_items(4, 1);
    let batch = vec![items[0].clone(), items[1].clone(), items[0].clone()];
    assert_eq!(store.put(&batch).unwrap(), vec![true, true, false]);
    assert_eq!(store.put(&items).unwrap(), vec![false, false, true, true]);
    let subject = items[0].subject();
    assert_eq!(store.hashes(&subject).unwrap().len(), 4);
    assert_eq!(store.summary(&subject).unwrap().count, 4);
}

/// STORE-3: per-subject hashes are sorted and complete; subjects are sorted.
pub fn hashes_sorted_and_partitioned<S: Store>(store: &S) {
    let items = sample_items(60, 4);
    for chunk in items.chunks(7) {
        store.put(chunk).unwrap();
    }
    let subjects = store.subjects().unwrap();
    assert_eq!(subjects.len(), 4);
    assert!(subjects.windows(2).all(|w| w[0] < w[1]));
    for subject in subjects {
        let got = store.hashes(&subject).unwrap();
        let mut want: Vec<Hash> = items
            .iter()
            .filter(|i| i.subject() == subject)
            .map(Item::hash)
            .collect();
        want.sort();
        assert_eq!(got, want);
    }
}

/// STORE-4: the incremental summary equals the summary of the hash list.
pub fn summary_matches_hashes<S: Store>(store: &S) {
    let items = sample_items(50, 2);
    for chunk in items.chunks(9) {
        store.put(chunk).unwrap();
        store.put(chunk).unwrap();
    }
    for subject in store.subjects().unwrap() {
        let hashes = store.hashes(&subject).unwrap();
        assert_eq!(store.summary(&subject).unwrap(), Summary::of(&hashes));
    }
}

/// STORE-21: `summaries` lists every subject with items, sorted, each with its summary, and
/// drops a subject once its last item is removed.
pub fn summaries_list_every_subject<S: Store>(store: &S) {
    assert!(store.summaries().unwrap().is_empty());
    let items = sample_items(30, 3);
    store.put(&items[..20]).unwrap();
    store.put(&items[10..]).unwrap();
    let listed = store.summaries().unwrap();
    let subjects: Vec<SubjectId> = listed.iter().map(|(s, _)| *s).collect();
    assert_eq!(subjects, store.subjects().unwrap());
    assert_eq!(subjects.len(), 3);
    for (subject, summary) in &listed {
        assert_eq!(*summary, Summary::of(&store.hashes(subject).unwrap()));
        assert_eq!(summary.count, 10);
    }
    let gone: Vec<Hash> = items
        .iter()
        .filter(|i| i.subject() == subjects[1])
        .map(Item::hash)
        .collect();
    store.remove(&gone).unwrap();
    let left: Vec<SubjectId> = store.summaries().unwrap().iter().map(|(s, _)| *s).collect();
    assert_eq!(left, vec![subjects[0], subjects[2]]);
}

/// STORE-24: `summaries_of` answers for the listed subjects that hold items, sorted and
/// without repeats, as `summary` of each does; unknown and emptied subjects are left out.
pub fn summaries_of_listed_subjects<S: Store>(store: &S) {
    let unknown = SubjectId(PublicKey([200; 32]));
    assert!(store.summaries_of(&[unknown]).unwrap().is_empty());
    assert!(store.summaries_of(&[]).unwrap().is_empty());
    let items = sample_items(40, 4);
    store.put(&items).unwrap();
    let all = store.subjects().unwrap();
    let asked = [all[3], unknown, all[1], all[3]];
    let answered = store.summaries_of(&asked).unwrap();
    assert_eq!(
        answered,
        vec![
            (all[1], store.summary(&all[1]).unwrap()),
            (all[3], store.summary(&all[3]).unwrap()),
        ]
    );
    assert_eq!(answered[0].1.count, 10);
    let gone: Vec<Hash> = items
        .iter()
        .filter(|i| i.subject() == all[1])
        .map(Item::hash)
        .collect();
    store.remove(&gone).unwrap();
    let left: Vec<SubjectId> = store
        .summaries_of(&asked)
        .unwrap()
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(left, vec![all[3]]);
}

/// STORE-16: `remove` deletes a batch, reports per hash whether it was held (absent and
/// repeated hashes are no-ops), keeps STORE-3/4 and drops a subject left empty; a removed item
/// can be stored again as new.
pub fn removal<S: Store>(store: &S) {
    assert!(store.remove(&[]).unwrap().is_empty());
    let items = sample_items(12, 2);
    store.put(&items).unwrap();
    let (one, two) = (items[0].subject(), items[1].subject());
    let absent = Hash([9; 32]);
    // Every item of subject `one` but the first, one item of `two`, an absent hash, a repeat.
    let mut gone: Vec<Hash> = items
        .iter()
        .filter(|i| i.subject() == one)
        .skip(1)
        .map(Item::hash)
        .collect();
    gone.push(items[1].hash());
    let mut batch = gone.clone();
    batch.push(absent);
    batch.push(items[1].hash());
    let mut want = vec![true; gone.len()];
    want.extend([false, false]);
    assert_eq!(store.remove(&batch).unwrap(), want);
    for hash in &gone {
        assert!(!store.contains(hash).unwrap());
        assert!(store.get(hash).unwrap().is_none());
    }
    for subject in [one, two] {
        let hashes = store.hashes(&subject).unwrap();
        assert!(hashes.windows(2).all(|w| w[0] < w[1]));
        let want: Vec<Hash> = {
            let mut w: Vec<Hash> = items
                .iter()
                .filter(|i| i.subject() == subject && !gone.contains(&i.hash()))
                .map(Item::hash)
                .collect();
            w.sort();
            w
        };
        assert_eq!(hashes, want);
        assert_eq!(store.summary(&subject).unwrap(), Summary::of(&hashes));
    }
    assert_eq!(store.hashes(&one).unwrap(), vec![items[0].hash()]);
    // Emptying a subject drops it from `subjects`, and its summary is empty again.
    assert_eq!(store.remove(&[items[0].hash()]).unwrap(), vec![true]);
    assert_eq!(store.subjects().unwrap(), vec![two]);
    assert_eq!(store.summary(&one).unwrap(), Summary::default());
    // Removed items come back as new.
    assert_eq!(store.put(&items[..2]).unwrap(), vec![true, true]);
    assert_eq!(
        store.get(&items[0].hash()).unwrap().as_ref(),
        Some(&items[0])
    );
    let mut subjects = vec![one, two];
    subjects.sort();
    assert_eq!(store.subjects().unwrap(), subjects);
    assert_eq!(
        store.summary(&one).unwrap(),
        Summary::of(&store.hashes(&one).unwrap())
    );
}

/// Concurrent batches from several threads all land, exactly once.
pub fn concurrent_writers<S: Store>(store: S) {
    let store = std::sync::Arc::new(store);
    let items = sample_items(200, 3);
    let handles: Vec<_> = items
        .chunks(50)
        .map(|chunk| {
            let store = store.clone();
            let mut chunk = chunk.to_vec();
            // Overlap with a neighbour to exercise duplicate handling under contention.
            chunk.extend(sample_items(5, 3));
            std::thread::spawn(move || {
                for part in chunk.chunks(10) {
                    store.put(part).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let total: usize = store
        .subjects()
        .unwrap()
        .iter()
        .map(|s| store.hashes(s).unwrap().len())
        .sum();
    assert_eq!(total, 200);
}

/// STORE-17: marks come back as recorded; a later mark for a hash replaces the earlier one, also
/// within one call; a mark may name an item not stored.
pub fn admission_marks<S: Store>(store: &S) {
    assert!(store.marks().unwrap().is_empty());
    store.put_marks(&[]).unwrap();
    let items = sample_items(5, 2);
    store.put(&items[..3]).unwrap();
    let mut marks: Vec<(Hash, Mark)> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (item.hash(), Mark([i as u8; 32])))
        .collect();
    store.put_marks(&marks[..2]).unwrap();
    store
        .put_marks(&[marks[2], (marks[3].0, Mark([0xee; 32])), marks[3], marks[4]])
        .unwrap();
    marks[0].1 = Mark([0xaa; 32]);
    store.put_marks(&marks[..1]).unwrap();
    let mut held = store.marks().unwrap();
    held.sort_by_key(|(h, _)| *h);
    marks.sort_by_key(|(h, _)| *h);
    assert_eq!(held, marks);
}

/// STORE-19: no snapshot at first; the last one recorded comes back whole, also an empty
/// one, and it is independent of the items.
pub fn relay_snapshot<S: Store>(store: &S) {
    assert_eq!(store.snapshot().unwrap(), None);
    let first: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    store.put_snapshot(&first).unwrap();
    assert_eq!(store.snapshot().unwrap().as_deref(), Some(&first[..]));
    store.put(&sample_items(3, 1)).unwrap();
    store.put_snapshot(b"second").unwrap();
    assert_eq!(store.snapshot().unwrap().as_deref(), Some(&b"second"[..]));
    store.put_snapshot(&[]).unwrap();
    assert_eq!(store.snapshot().unwrap().as_deref(), Some(&[][..]));
}

/// STORE-22: nothing at first; what was recorded per peer comes back sorted, once per hash,
/// separate from other peers' and from the items.
pub fn peer_taken<S: Store>(store: &S) {
    let (relay, other) = ([7u8; 32], [8u8; 32]);
    assert_eq!(store.peer_taken(&relay).unwrap(), Vec::<Hash>::new());
    let h = |n: u8| Hash([n; 32]);
    store.put_peer_taken(&relay, &[h(3), h(1)]).unwrap();
    store
        .put_peer_taken(&relay, &[h(1), h(0xff), h(0)])
        .unwrap();
    store.put_peer_taken(&other, &[h(2)]).unwrap();
    store.put_peer_taken(&other, &[]).unwrap();
    assert_eq!(
        store.peer_taken(&relay).unwrap(),
        vec![h(0), h(1), h(3), h(0xff)]
    );
    assert_eq!(store.peer_taken(&other).unwrap(), vec![h(2)]);
    assert_eq!(store.peer_taken(&[9u8; 32]).unwrap(), Vec::<Hash>::new());
    assert!(store.subjects().unwrap().is_empty(), "no item was stored");
}

/// STORE-23: no offer at first; the last one recorded per peer comes back whole, also an
/// empty one, and it is independent of other peers'.
pub fn peer_offer<S: Store>(store: &S) {
    let (relay, other) = ([7u8; 32], [8u8; 32]);
    assert_eq!(store.peer_offer(&relay).unwrap(), None);
    let first: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    store.put_peer_offer(&relay, &first).unwrap();
    store.put_peer_offer(&other, b"other").unwrap();
    assert_eq!(
        store.peer_offer(&relay).unwrap().as_deref(),
        Some(&first[..])
    );
    store.put_peer_offer(&relay, b"second").unwrap();
    assert_eq!(
        store.peer_offer(&relay).unwrap().as_deref(),
        Some(&b"second"[..])
    );
    assert_eq!(
        store.peer_offer(&other).unwrap().as_deref(),
        Some(&b"other"[..])
    );
    store.put_peer_offer(&other, &[]).unwrap();
    assert_eq!(store.peer_offer(&other).unwrap().as_deref(), Some(&[][..]));
    assert_eq!(store.peer_offer(&[9u8; 32]).unwrap(), None);
}

/// STORE-18: an address's usage comes back as last recorded, per address; unknown is `None`.
pub fn address_usage<S: Store>(store: &S) {
    let v4 = AddressKey([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7]);
    let v6 = AddressKey([0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(store.address_usage(&v4).unwrap(), None);
    store
        .put_address_usage(&v4, AddressUsage::new(3, 300))
        .unwrap();
    store
        .put_address_usage(&v6, AddressUsage::new(1, u64::from(u32::MAX) + 5))
        .unwrap();
    store
        .put_address_usage(&v4, AddressUsage::new(4, 410))
        .unwrap();
    assert_eq!(
        store.address_usage(&v4).unwrap(),
        Some(AddressUsage::new(4, 410)),
        "a later usage replaces the earlier one"
    );
    assert_eq!(
        store.address_usage(&v6).unwrap(),
        Some(AddressUsage::new(1, u64::from(u32::MAX) + 5))
    );
    store
        .put_address_usage(&v6, AddressUsage::default())
        .unwrap();
    assert_eq!(
        store.address_usage(&v6).unwrap(),
        Some(AddressUsage::default()),
        "a usage given back to zero is kept as zero"
    );
}

/// The read part of the suite, for a handle that only reads (STORE-20): `reader` answers every
/// read as `written` does, where `written` holds `items` (and whatever marks, snapshot,
/// address usage and what peer `[7; 32]` took and offered were recorded), plus `unknown` for hashes and subjects it does not hold.
pub fn reads_agree<W: Store, R: Store>(written: &W, reader: &R, items: &[Item]) {
    let subjects = written.subjects().unwrap();
    assert!(!subjects.is_empty(), "compare a store that holds something");
    assert_eq!(reader.subjects().unwrap(), subjects);
    for subject in subjects.iter().chain([&SubjectId(PublicKey([0xfe; 32]))]) {
        assert_eq!(
            reader.hashes(subject).unwrap(),
            written.hashes(subject).unwrap()
        );
        assert_eq!(
            reader.summary(subject).unwrap(),
            written.summary(subject).unwrap()
        );
    }
    for item in items {
        assert!(reader.contains(&item.hash()).unwrap());
        assert_eq!(reader.get(&item.hash()).unwrap().as_ref(), Some(item));
    }
    assert!(!reader.contains(&Hash([0xfe; 32])).unwrap());
    assert!(reader.get(&Hash([0xfe; 32])).unwrap().is_none());
    let (mut a, mut b) = (reader.marks().unwrap(), written.marks().unwrap());
    a.sort_by_key(|(h, _)| *h);
    b.sort_by_key(|(h, _)| *h);
    assert_eq!(a, b);
    assert_eq!(reader.snapshot().unwrap(), written.snapshot().unwrap());
    let address = AddressKey([7; 16]);
    assert_eq!(
        reader.address_usage(&address).unwrap(),
        written.address_usage(&address).unwrap()
    );
    assert_eq!(
        reader.peer_taken(&[7; 32]).unwrap(),
        written.peer_taken(&[7; 32]).unwrap()
    );
    assert_eq!(
        reader.peer_offer(&[7; 32]).unwrap(),
        written.peer_offer(&[7; 32]).unwrap()
    );
}
