//! A document's history as the CLI reads it: which changes are files and which are metadata
//! records, its current name and whether it is removed (REP-50, REP-51), and its file heads:
//! the concurrent versions nobody merged yet (REP-52).

use std::collections::{BTreeSet, HashMap};

use anyhow::Result;
use keyhive_core::Hash;
use keyhive_core::capability::AnyVerified;
use keyhive_core::identity::{DocumentId, IndividualId};
use keyhive_sync::RedbStore;
use keyhive_sync::replica::{ChangeStatus, Replica};
use std::sync::Arc;

use crate::records::{MAX_RECORD, Meta, MetaUpdate, Record, classify};

/// One valid, readable change of a document.
#[derive(Debug, Clone)]
pub struct Change {
    /// The content op hash (the change id).
    pub op: Hash,
    /// Its author.
    pub author: IndividualId,
    /// Plaintext length (for a file: one tag byte more than the file).
    pub length: u64,
    /// What it holds; changes over [`MAX_RECORD`] bytes are files (or not readable as one,
    /// which reading finds out).
    pub record: Record,
}

/// The valid, readable changes of a document in causal order (`Replica::changes`), with the
/// predecessors of each.
pub struct History {
    /// The changes, parents first.
    pub changes: Vec<Change>,
    /// Every change of the document (also invalid or unreadable ones), parents first, so that
    /// descent is followed through changes this device cannot read.
    order: Vec<Hash>,
    parents: HashMap<Hash, Vec<Hash>>,
}

impl History {
    /// Reads `document`'s history: every valid readable change, small ones decrypted to find
    /// out what they hold.
    pub fn load(replica: &Replica<Arc<RedbStore>>, document: DocumentId) -> Result<History> {
        let mut changes = Vec::new();
        let mut parents = HashMap::new();
        let mut order = Vec::new();
        for entry in replica.changes(document)? {
            order.push(entry.op);
            if let Some(AnyVerified::Content(op)) = replica.checker().op(&entry.op) {
                parents.insert(entry.op, op.predecessors.clone());
            }
            let Some(length) = entry.length else { continue };
            if entry.status != ChangeStatus::Valid {
                continue;
            }
            let record = if length <= MAX_RECORD {
                // A change that cannot be read back counts as neither file nor record.
                let mut bytes = Vec::new();
                match replica.read_change(document, &entry.op, &mut bytes) {
                    Ok(_) => classify(&bytes),
                    Err(_) => Record::Unknown,
                }
            } else {
                Record::File
            };
            changes.push(Change {
                op: entry.op,
                author: entry.author,
                length,
                record,
            });
        }
        Ok(History {
            changes,
            order,
            parents,
        })
    }

    /// Every change `op` descends from (not itself).
    fn ancestors(&self, op: &Hash) -> BTreeSet<Hash> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<Hash> = self.parents.get(op).cloned().unwrap_or_default();
        while let Some(next) = stack.pop() {
            if seen.insert(next) {
                stack.extend(self.parents.get(&next).into_iter().flatten().copied());
            }
        }
        seen
    }

    fn files(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.record == Record::File)
    }

    /// REP-52: the file changes no other file change descends from, in causal order: one
    /// when the document's versions are linear, several when writers changed it concurrently
    /// (a conflict). The last is the version `get` and `folder pull` write by default.
    pub fn file_heads(&self) -> Vec<&Change> {
        // Children come after their parents in `changes`: walking backwards, a change whose
        // descendants include a file marks its parents, in one pass.
        let files: BTreeSet<Hash> = self.files().map(|c| c.op).collect();
        let mut below_a_file: BTreeSet<Hash> = BTreeSet::new();
        for op in self.order.iter().rev() {
            if files.contains(op) || below_a_file.contains(op) {
                below_a_file.extend(self.parents.get(op).into_iter().flatten());
            }
        }
        self.files()
            .filter(|c| !below_a_file.contains(&c.op))
            .collect()
    }

    /// REP-50, REP-51: the document's metadata as it stands: the first change's `Meta`, named
    /// by the last `Rename` in causal order, and removed when a `Remove` descends from every
    /// file change (an edit the remover had not seen keeps the document).
    pub fn meta(&self) -> Option<Meta> {
        let mut meta = match self.changes.first().map(|c| &c.record) {
            Some(Record::Meta(meta)) => meta.clone(),
            _ => return None,
        };
        let mut removals = Vec::new();
        for change in &self.changes {
            match &change.record {
                Record::Update(MetaUpdate::Rename { name }) => meta.name = name.clone(),
                Record::Update(MetaUpdate::Remove) => removals.push(change.op),
                _ => {}
            }
        }
        let files: Vec<Hash> = self.files().map(|c| c.op).collect();
        meta.removed = removals.iter().any(|r| {
            let before = self.ancestors(r);
            files.iter().all(|f| before.contains(f))
        });
        Some(meta)
    }
}
