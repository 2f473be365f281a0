//! STORE-15: a store whose disk filled up works again once space is free, without reopening
//! it by hand (issue 16: one out-of-space error made the relay refuse every write until
//! restarted).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::backends::InMemoryBackend;
use redb::{Builder, StorageBackend};

use super::{Handle, RedbStore};
use crate::store::conformance::sample_items;
use crate::store::{Store, StoreError};

/// A disk that can be filled: writes, growth and syncs fail with ENOSPC while `full` is set.
/// Its bytes outlive each database opened on it, like a file's.
#[derive(Debug, Clone)]
struct Disk {
    bytes: Arc<InMemoryBackend>,
    full: Arc<AtomicBool>,
}

impl Disk {
    fn check(&self) -> Result<(), io::Error> {
        if self.full.load(Ordering::SeqCst) {
            // ENOSPC: "No space left on device".
            return Err(io::Error::from_raw_os_error(28));
        }
        Ok(())
    }
}

impl StorageBackend for Disk {
    fn len(&self) -> Result<u64, io::Error> {
        self.bytes.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.bytes.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.check()?;
        self.bytes.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        self.check()?;
        self.bytes.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.check()?;
        self.bytes.write(offset, data)
    }
}

fn store_on(disk: &Disk) -> RedbStore {
    let disk = disk.clone();
    RedbStore::open_with(
        Path::new("disk-full-test.redb"),
        Box::new(move |path| {
            Builder::new()
                .create_with_backend(disk.clone())
                .map(Handle::Write)
                .map_err(|source| StoreError::Open {
                    path: path.to_path_buf(),
                    source,
                })
        }),
    )
    .expect("open")
}

#[test]
fn writes_succeed_again_once_space_is_free() {
    let disk = Disk {
        bytes: Arc::new(InMemoryBackend::new()),
        full: Arc::new(AtomicBool::new(false)),
    };
    let store = store_on(&disk);
    let items = sample_items(30, 3);
    store.put(&items[..10]).expect("put before the disk fills");

    disk.full.store(true, Ordering::SeqCst);
    assert!(
        store.put(&items[10..20]).is_err(),
        "a full disk fails the put"
    );
    assert!(store.put(&items[10..20]).is_err(), "still full");
    disk.full.store(false, Ordering::SeqCst);

    // Without STORE-15, redb answers PreviousIo here until the database is reopened.
    assert_eq!(
        store.put(&items[10..20]).expect("space is free again"),
        vec![true; 10]
    );
    for item in &items[..20] {
        assert_eq!(store.get(&item.hash()).expect("get").as_ref(), Some(item));
    }
    let reopened = {
        drop(store);
        store_on(&disk)
    };
    assert_eq!(
        reopened.put(&items).expect("put after reopening"),
        [vec![false; 20], vec![true; 10]].concat()
    );
}
