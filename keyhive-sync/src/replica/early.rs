//! Key-agreement ops that arrived before their document's genesis or init (ADM-2: their
//! signatures are checked first), bounded in count and bytes so that no peer can fill memory.

use std::collections::BTreeMap;

use keyhive_core::identity::DocumentId;

use crate::item::Item;

/// Most ops held for one document.
const MAX_PER_DOCUMENT: usize = 4096;
/// Most ops held over all documents.
const MAX_TOTAL: usize = 16_384;
/// Most envelope bytes held over all documents.
const MAX_BYTES: usize = 32 << 20;

/// The bounded queue.
#[derive(Debug, Default)]
pub(super) struct EarlyQueue {
    by_document: BTreeMap<DocumentId, Vec<Item>>,
    count: usize,
    bytes: usize,
}

impl EarlyQueue {
    /// Queues `item`; `false` (and nothing queued) when a bound would be exceeded.
    pub(super) fn push(&mut self, document: DocumentId, item: Item) -> bool {
        let len = item.envelope().len();
        let queue = self.by_document.entry(document).or_default();
        if queue.len() >= MAX_PER_DOCUMENT
            || self.count >= MAX_TOTAL
            || self.bytes.saturating_add(len) > MAX_BYTES
        {
            return false;
        }
        if queue.iter().any(|i| i.hash() == item.hash()) {
            return true;
        }
        queue.push(item);
        self.count += 1;
        self.bytes += len;
        true
    }

    /// Whether no op is queued.
    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Removes and returns every op queued for `document`.
    pub(super) fn take(&mut self, document: &DocumentId) -> Vec<Item> {
        let items = self.by_document.remove(document).unwrap_or_default();
        self.count -= items.len();
        self.bytes -= items.iter().map(|i| i.envelope().len()).sum::<usize>();
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::{ItemKind, SubjectId};
    use keyhive_core::crypto::signing::PublicKey;

    #[test]
    fn bounded_in_count_and_bytes() {
        let mut q = EarlyQueue::default();
        let doc = DocumentId(PublicKey([1; 32]));
        let big =
            |n: u8| Item::new(ItemKind::Cgka, SubjectId(doc.0), vec![n; 200 * 1024]).expect("item");
        let mut held = 0;
        for n in 0..=255u8 {
            if q.push(doc, big(n)) {
                held += 1;
            }
        }
        assert_eq!(
            held,
            MAX_BYTES / (200 * 1024),
            "the byte bound stops the queue"
        );
        assert_eq!(q.take(&doc).len(), held);
        assert!(q.push(doc, big(0)), "room again once taken");
    }
}
