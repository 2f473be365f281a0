//! The redb store against the conformance suite, plus what only a file store can show.

use keyhive_core::crypto::signing::PublicKey;

use super::schema::META;
use super::*;
use crate::item::Item;
use crate::store::{AddressKey, AddressUsage, Mark, Store};

#[test]
fn conformance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let counter = std::sync::atomic::AtomicUsize::new(0);
    super::super::conformance::run_all(|| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        RedbStore::open(dir.path().join(format!("db{n}.redb"))).expect("open")
    });
}

/// STORE-4 (all subjects): `summaries` lists every subject with its summary, equal to
/// `subjects` and `summary` one by one, and follows puts and removals.
#[test]
fn summaries_list_every_subject() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(dir.path().join("s.redb")).expect("open");
    assert!(store.summaries().expect("summaries").is_empty());
    let items = super::super::conformance::sample_items(9, 3);
    store.put(&items).expect("put");
    let listed = store.summaries().expect("summaries");
    let subjects = store.subjects().expect("subjects");
    assert_eq!(listed.iter().map(|(s, _)| *s).collect::<Vec<_>>(), subjects);
    for (subject, summary) in &listed {
        assert_eq!(*summary, store.summary(subject).expect("summary"));
    }
    let before = listed.clone();
    store.remove(&[items[0].hash()]).expect("remove");
    let after = store.summaries().expect("summaries");
    assert_ne!(after, before);
    // Read-only, from the file: refused while this handle holds it, equal once closed,
    // and the file is not written.
    let path = dir.path().join("s.redb");
    assert!(RedbStore::read_summaries(&path).is_err());
    drop(store);
    let bytes = std::fs::read(&path).expect("read");
    assert_eq!(RedbStore::read_summaries(&path).expect("read only"), after);
    assert_eq!(std::fs::read(&path).expect("read"), bytes);
    assert!(RedbStore::read_summaries(dir.path().join("absent.redb")).is_err());
}

/// STORE-20: a read-only handle reads what a read-write one wrote (the read part of the
/// conformance suite), refuses every write with `ReadOnly`, and leaves the file's bytes
/// and modification time as they were; it is refused while a writer holds the file and
/// on a missing file, which it does not create.
#[test]
fn read_only_reads_everything_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let items = super::super::conformance::sample_items(12, 3);
    let address = AddressKey([7; 16]);
    let writer = RedbStore::open(&path).expect("open");
    writer.put(&items).expect("put");
    writer
        .put_marks(&[(items[0].hash(), Mark([3; 32]))])
        .expect("marks");
    writer.put_snapshot(b"snap").expect("snapshot");
    writer
        .put_address_usage(&address, AddressUsage::new(2, 20))
        .expect("usage");
    writer
        .put_peer_taken(&[7; 32], &[items[1].hash()])
        .expect("taken");
    writer.put_peer_offer(&[7; 32], b"offer").expect("offer");
    assert!(matches!(
        RedbStore::open_read_only(&path),
        Err(StoreError::InUse { .. })
    ));
    drop(writer);
    let bytes = std::fs::read(&path).expect("read");
    let modified = std::fs::metadata(&path)
        .expect("meta")
        .modified()
        .expect("mtime");
    std::thread::sleep(std::time::Duration::from_millis(20));
    {
        let written = RedbStore::open_read_only(&path).expect("read only");
        let reader = RedbStore::open_read_only(&path).expect("two readers");
        super::super::conformance::reads_agree(&written, &reader, &items);
        assert_eq!(
            reader.summaries().expect("summaries"),
            written.summaries().expect("summaries")
        );
        let refused = |r: Result<(), StoreError>| {
            assert!(matches!(r, Err(StoreError::ReadOnly { .. })), "{r:?}");
        };
        refused(
            reader
                .put(&super::super::conformance::sample_items(13, 1)[12..])
                .map(drop),
        );
        refused(reader.remove(&[items[0].hash()]).map(drop));
        refused(reader.put_marks(&[(items[1].hash(), Mark([4; 32]))]));
        refused(reader.put_snapshot(b"other"));
        refused(reader.put_address_usage(&address, AddressUsage::new(9, 9)));
        refused(reader.put_peer_taken(&[7; 32], &[items[2].hash()]));
        refused(reader.put_peer_offer(&[7; 32], b"other"));
        assert_eq!(
            reader.subjects().expect("subjects"),
            written.subjects().expect("subjects")
        );
    }
    assert_eq!(std::fs::read(&path).expect("read"), bytes);
    assert_eq!(
        std::fs::metadata(&path)
            .expect("meta")
            .modified()
            .expect("mtime"),
        modified
    );
    // The read-write handle reads the same as the read-only ones did.
    let writer = RedbStore::open(&path).expect("open");
    let reader_after = writer.summaries().expect("summaries");
    assert_eq!(reader_after.len(), 3);
    assert_eq!(
        writer.address_usage(&address).expect("usage"),
        Some(AddressUsage::new(2, 20))
    );
    drop(writer);
    let absent = dir.path().join("absent.redb");
    assert!(RedbStore::open_read_only(&absent).is_err());
    assert!(!absent.exists());
}

#[test]
fn reopen_keeps_data_and_refuses_other_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let items = super::super::conformance::sample_items(5, 2);
    {
        let store = RedbStore::open(&path).expect("open");
        store.put(&items).expect("put");
    }
    {
        let store = RedbStore::open(&path).expect("reopen");
        for item in &items {
            assert_eq!(store.get(&item.hash()).expect("get").as_ref(), Some(item));
        }
        store
            .with_db(|db, _| {
                let txn = db.begin_write().expect("txn");
                txn.open_table(META)
                    .expect("meta")
                    .insert("schema_version", 99)
                    .expect("insert");
                txn.commit().expect("commit");
                Ok(())
            })
            .expect("write");
    }
    assert!(matches!(
        RedbStore::open(&path),
        Err(StoreError::SchemaVersion { found: 99, .. })
    ));
}

/// What one corrupted file did: how far `exercise` got.
#[derive(Debug, Default)]
struct Outcomes {
    opened: usize,
    refused: usize,
    damaged: usize,
}

/// Opens `path` and runs every read and a write on it, then drops the handle. Returns
/// whether it opened and whether any call reported the engine panic (STORE-8).
fn exercise(path: &Path, items: &[Item]) -> (bool, bool) {
    let store = match RedbStore::open(path) {
        Ok(store) => store,
        Err(StoreError::Damaged { .. }) => return (false, true),
        Err(_) => return (false, false),
    };
    let mut damaged = false;
    let mut note = |r: Result<(), StoreError>| {
        if damaged {
            assert!(
                matches!(r, Err(StoreError::Unusable { .. })),
                "a handle found damaged was used again"
            );
            return;
        }
        match r {
            Err(StoreError::Damaged { .. }) => damaged = true,
            Err(StoreError::Unusable { .. }) => panic!("Unusable without Damaged"),
            _ => {}
        }
    };
    for item in items {
        note(store.get(&item.hash()).map(|got| {
            if let Some(got) = got {
                assert_eq!(&got, item, "a read returned another item");
            }
        }));
        note(store.contains(&item.hash()).map(drop));
    }
    for subject in 1..=3u8 {
        let subject = SubjectId(PublicKey([subject; 32]));
        note(store.hashes(&subject).map(drop));
        note(store.summary(&subject).map(drop));
    }
    note(store.subjects().map(drop));
    let extra = super::super::conformance::sample_items(items.len() + 3, 3);
    note(store.put(&extra[items.len()..]).map(drop));
    note(store.subjects().map(drop));
    drop(store);
    (true, damaged)
}

/// STORE-6..8: every corruption of a store file (empty, truncated at many offsets, one
/// byte flipped at many offsets, random garbage) gives an error or a working store, and no
/// panic ever escapes `open`, the reads, the write or the drop.
#[test]
fn corrupt_files_never_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let template = dir.path().join("template.redb");
    let items = super::super::conformance::sample_items(300, 3);
    {
        let store = RedbStore::open(&template).expect("open");
        for chunk in items.chunks(50) {
            store.put(chunk).expect("put");
        }
    }
    let original = std::fs::read(&template).expect("read");
    let len = original.len();
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    let mut offsets: Vec<usize> = (0..4096).step_by(61).collect();
    offsets.extend((0..len).step_by(len / 150 + 1));
    offsets.extend([len - 1, len / 2, 4096, 8192]);
    for &at in &offsets {
        if at < len {
            cases.push((format!("truncated at {at}"), original[..at].to_vec()));
            let mut flipped = original.clone();
            flipped[at] ^= 0xff;
            cases.push((format!("byte {at} flipped"), flipped));
        }
    }
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for size in [1usize, 16, 512, 4096, 65_536, len] {
        let garbage: Vec<u8> = (0..size)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        cases.push((format!("{size} random bytes"), garbage));
    }
    let mut outcomes = Outcomes::default();
    for (n, (what, bytes)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("case{n}.redb"));
        std::fs::write(&path, bytes).expect("write");
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| exercise(&path, &items)));
        let (opened, damaged) = run.unwrap_or_else(|_| panic!("{what}: a panic escaped"));
        outcomes.opened += usize::from(opened);
        outcomes.refused += usize::from(!opened);
        outcomes.damaged += usize::from(damaged);
        std::fs::remove_file(&path).expect("remove");
    }
    eprintln!("{} cases: {outcomes:?}", cases.len());
    assert!(outcomes.refused > 0 && outcomes.opened > 0);
}

/// STORE-7: an existing empty file is refused, naming the file; a missing one is created.
#[test]
fn empty_file_is_refused_not_recreated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    std::fs::write(&path, b"").expect("write");
    match RedbStore::open(&path) {
        Err(e @ StoreError::EmptyFile { .. }) => {
            assert!(e.to_string().contains(&path.display().to_string()));
        }
        other => panic!("expected EmptyFile, got {:?}", other.map(|_| ())),
    }
    assert_eq!(std::fs::metadata(&path).expect("meta").len(), 0);
    let fresh = dir.path().join("new.redb");
    RedbStore::open(&fresh).expect("a missing file creates a store");
}

/// STORE-8: a panic inside a redb call is `Damaged`, and the handle then refuses every call
/// (`Unusable`) and is dropped without touching redb again.
#[test]
fn a_contained_panic_retires_the_handle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let store = RedbStore::open(&path).expect("open");
    let items = super::super::conformance::sample_items(2, 1);
    store.put(&items).expect("put");
    let engine_panic =
        store.with_db(|_, _| -> Result<(), StoreError> { panic!("simulated engine panic") });
    assert!(matches!(engine_panic, Err(StoreError::Damaged { .. })));
    assert!(matches!(
        store.get(&items[0].hash()),
        Err(StoreError::Unusable { .. })
    ));
    assert!(matches!(
        store.put(&items),
        Err(StoreError::Unusable { .. })
    ));
    drop(store);
}
