//! REP-3a, REP-5a: the device's own writes leave the prepare stamp as it was, so a steady write
//! neither re-plans the key agreement nor re-walks the document's opened changes (REP-5b,
//! issue 13: that walk made every write O(history)).

use keyhive_core::identity::Device;

use crate::replica::Replica;
use crate::store::MemoryStore;

#[test]
fn the_devices_own_writes_leave_the_prepare_stamp_unchanged() {
    let mut replica = Replica::open(Device::generate(None), MemoryStore::new()).unwrap();
    let doc = replica.create_document().unwrap();
    replica.write(doc, b"first").unwrap();
    let stamp = replica.prepared_stamp(doc).unwrap();
    assert!(
        replica
            .prepared
            .0
            .get(&doc)
            .is_some_and(|m| m.stamp == stamp),
        "the first write's prepare recorded the stamp as it is after the write"
    );
    for i in 0..5 {
        replica
            .write(doc, format!("change {i}").as_bytes())
            .unwrap();
        assert!(
            replica.prepared_stamp(doc).unwrap() == stamp,
            "write {i} moved the stamp"
        );
    }
    // Each write is still recorded as opened: all six read back.
    let changes = replica.changes(doc).unwrap();
    assert_eq!(changes.len(), 6);
    assert!(changes.iter().all(|c| c.length.is_some()));
}
