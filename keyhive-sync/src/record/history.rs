//! A document's history as a reader of records sees it: which changes are files and which are
//! metadata records, the document's current name and whether it is removed (REP-50, REP-51),
//! and its file heads, the concurrent versions nobody merged yet (REP-52).

use std::collections::{BTreeSet, HashMap};

use keyhive_core::Hash;
use keyhive_core::capability::AnyVerified;
use keyhive_core::identity::{DocumentId, IndividualId};

use super::{GroupProfile, MAX_METADATA_LEN, Metadata, MetadataKind, MetadataUpdate, Record};
use crate::replica::{ChangeStatus, Replica, ReplicaError};
use crate::store::Store;

/// What one valid, readable change holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeRecord {
    /// REC-2: a file.
    File,
    /// REC-3: the document's metadata.
    Metadata(Metadata),
    /// REC-7: a rename or a removal.
    Update(MetadataUpdate),
    /// REC-8: a group's shared name (in a group profile document).
    Profile(GroupProfile),
    /// Anything else: a record type this version does not know, a record that does not
    /// decode, or a change that could not be read back (REC-5: skipped, never guessed at).
    Other,
}

/// One valid, readable change of a document.
#[derive(Debug, Clone)]
pub struct HistoryChange {
    /// The content op hash (the change id).
    pub op: Hash,
    /// Its author.
    pub author: IndividualId,
    /// Plaintext length (for a file: one type byte more than the file).
    pub length: u64,
    /// What it holds. Changes longer than a metadata record can be are taken to be files
    /// without reading them; reading finds out if one is not.
    pub record: ChangeRecord,
}

/// A document's metadata as it stands after every rename and removal (REP-50, REP-51).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentMetadata {
    /// The current shared name: the first record's, replaced by each later rename.
    pub name: String,
    /// Folder or document (REC-3; never changed by an update).
    pub kind: MetadataKind,
    /// The folder the creator meant the document for (REC-3: a claim, never trusted).
    pub folder: Option<DocumentId>,
    /// REP-51: some removal descends from every file change.
    pub removed: bool,
}

/// The valid, readable changes of a document in causal order (`Replica::changes`), with the
/// predecessors of every change, so that descent is followed through changes this device
/// cannot read.
#[derive(Debug, Clone)]
pub struct DocumentHistory {
    /// The valid, readable changes, parents first.
    pub changes: Vec<HistoryChange>,
    /// Every change of the document (also invalid or unreadable ones), parents first.
    order: Vec<Hash>,
    parents: HashMap<Hash, Vec<Hash>>,
}

impl DocumentHistory {
    /// Reads `document`'s history: every valid, readable change; those small enough to be a
    /// metadata record are decrypted to find out what they hold.
    pub fn load<S: Store>(
        replica: &Replica<S>,
        document: DocumentId,
    ) -> Result<DocumentHistory, ReplicaError> {
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
            let record = if length <= (1 + MAX_METADATA_LEN) as u64 {
                let mut bytes = Vec::new();
                match replica.read_change(document, &entry.op, &mut bytes) {
                    Ok(_) => classify(&bytes),
                    Err(_) => ChangeRecord::Other,
                }
            } else {
                ChangeRecord::File
            };
            changes.push(HistoryChange {
                op: entry.op,
                author: entry.author,
                length,
                record,
            });
        }
        Ok(DocumentHistory {
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

    fn files(&self) -> impl Iterator<Item = &HistoryChange> {
        self.changes
            .iter()
            .filter(|c| c.record == ChangeRecord::File)
    }

    /// REP-52: the file changes no other file change descends from, in causal order: one when
    /// the document's versions are linear, several when writers changed it concurrently (a
    /// conflict). The last is the version a reader shows by default.
    pub fn file_heads(&self) -> Vec<&HistoryChange> {
        // Children come after their parents in `order`: walking backwards, a change with a
        // file among its descendants marks its parents, in one pass.
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

    /// REC-4, REP-50, REP-51: the document's metadata as it stands: the first change's
    /// record, named by the last rename in causal order, and removed when a removal descends
    /// from every file change (an edit the remover had not seen keeps the document). `None`
    /// when the first valid, readable change is not a metadata record.
    pub fn metadata(&self) -> Option<DocumentMetadata> {
        let Some(ChangeRecord::Metadata(first)) = self.changes.first().map(|c| &c.record) else {
            return None;
        };
        let mut name = &first.name;
        let mut removals = Vec::new();
        for change in &self.changes {
            match &change.record {
                ChangeRecord::Update(MetadataUpdate::Rename { name: renamed }) => name = renamed,
                ChangeRecord::Update(MetadataUpdate::Remove) => removals.push(change.op),
                _ => {}
            }
        }
        let files: Vec<Hash> = self.files().map(|c| c.op).collect();
        let removed = removals.iter().any(|r| {
            let before = self.ancestors(r);
            files.iter().all(|f| before.contains(f))
        });
        Some(DocumentMetadata {
            name: name.clone(),
            kind: first.kind,
            folder: first.folder,
            removed,
        })
    }
}

/// What a change's plaintext holds, as [`DocumentHistory`] records it.
pub fn classify(plaintext: &[u8]) -> ChangeRecord {
    match Record::decode(plaintext) {
        Ok(Record::File(_)) => ChangeRecord::File,
        Ok(Record::Metadata(meta)) => ChangeRecord::Metadata(meta),
        Ok(Record::Update(update)) => ChangeRecord::Update(update),
        Ok(Record::Profile(profile)) => ChangeRecord::Profile(profile),
        Err(_) => ChangeRecord::Other,
    }
}
