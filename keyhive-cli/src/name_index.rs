//! The name index (`specs/replica.md` REP-64..REP-68): what `ls` prints and what names resolve
//! to, derived from a full, verified replay, bound to the exact store content and key store it
//! was derived from, and authenticated with a key derived from the device's secret. Read-only
//! commands use it instead of replaying the whole store; on any mismatch they replay fully and
//! the index is written again.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use keyhive_core::capability::Access;
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::encoding::{decode_canonical, encode};
use keyhive_core::identity::{DocumentId, GroupId, SubjectKind};
use keyhive_core::keystore::KeyStore;
use keyhive_sync::RedbStore;
use keyhive_sync::item::SubjectId;
use keyhive_sync::reconcile::summary::Summary;
use serde::{Deserialize, Serialize};

use crate::contacts::CONTACTS_FILE;
use crate::home::Home;
use crate::names::{GroupNames, LocalNames, SharedGroups};
use keyhive_sync::record::{DocumentMetadata, MetadataKind};

/// REP-64: the index file in the home.
pub const INDEX_FILE: &str = "names.index";
/// REP-65: BLAKE3 `derive_key` context of the index's MAC key, from the device's signing seed
/// (listed in `specs/encoding.md` §7).
pub const INDEX_MAC_KEY: &str = "keyhive 2026-12-01 cli name index mac key v1";
/// REP-65: the first bytes of the file (format and version).
const MAGIC: &[u8; 16] = b"keyhive-names-v3";
/// Length of the MAC at the end of the file.
const MAC_LEN: usize = 32;
/// Largest index body decoded (far above 100,000 documents with long names).
const MAX_BODY: usize = 256 << 20;

/// One subject this device reaches, with its level (a row of `ls`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Reach {
    subject: PublicKey,
    access: Access,
    kind: SubjectKind,
}

/// One document's metadata as a full session reads it (REP-50, REP-51).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Named {
    document: PublicKey,
    name: String,
    kind: MetadataKind,
    /// The folder the creator meant the document for (REC-3's claim): a full session's
    /// metadata holds it (a name is refused when taken at the top level), so an index a
    /// session takes its metadata from must hold it too.
    folder: Option<PublicKey>,
    removed: bool,
}

/// REC-10: one group's shared name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SharedName {
    group: PublicKey,
    name: String,
}

/// The encoded (and MAC'd) body of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Body {
    binding: [u8; 32],
    reachable: Vec<Reach>,
    metas: Vec<Named>,
    groups: Vec<SharedName>,
    profiles: Vec<PublicKey>,
}

/// What a full session knows about names and levels (REP-64).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NameIndex {
    /// `Replica::reachable()`: every subject this device reaches, its level and kind.
    pub reachable: Vec<(PublicKey, Access, SubjectKind)>,
    /// `Session::metas()`: every readable document's metadata (also of removed ones).
    pub metas: BTreeMap<DocumentId, DocumentMetadata>,
    /// REC-10: the shared group names and profile documents the session read.
    pub groups: SharedGroups,
}

/// REP-66: what reading the index found.
#[derive(Debug)]
pub enum Lookup {
    /// Authentic and bound to the current store and key store.
    Valid(NameIndex),
    /// Authentic but derived from other content (the store, key store or contacts changed).
    Stale,
    /// No index file.
    Absent,
    /// The MAC does not verify (tampered, damaged, or written by another device or format).
    Tampered,
}

impl NameIndex {
    /// REP-67: the one document `name` names, as a full session resolves it
    /// (`Session::subject`): exactly one non-removed document has that name and no group is
    /// shown with it (a local name, or a shared one, REC-10). `None` for anything else (an id,
    /// an ambiguous or unknown name, a group), which the caller answers with a full open, so
    /// its messages are a full open's.
    pub fn resolve(&self, name: &str, local: &LocalNames) -> Option<DocumentId> {
        if !self.group_names(local).find(name).is_empty() {
            return None;
        }
        let mut found = self
            .metas
            .iter()
            .filter(|(_, m)| !m.removed && m.name == name)
            .map(|(d, _)| *d);
        match (found.next(), found.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    }

    /// Group names as shown: `local` first, then the shared names this index holds.
    pub fn group_names<'a>(&'a self, local: &'a LocalNames) -> GroupNames<'a> {
        GroupNames {
            local,
            shared: &self.groups,
            person: None,
        }
    }

    fn body(&self, binding: [u8; 32]) -> Body {
        Body {
            binding,
            reachable: self
                .reachable
                .iter()
                .map(|(subject, access, kind)| Reach {
                    subject: *subject,
                    access: *access,
                    kind: *kind,
                })
                .collect(),
            metas: self
                .metas
                .iter()
                .map(|(d, m)| Named {
                    document: d.0,
                    name: m.name.clone(),
                    kind: m.kind,
                    folder: m.folder.map(|f| f.0),
                    removed: m.removed,
                })
                .collect(),
            groups: self
                .groups
                .names
                .iter()
                .map(|(g, name)| SharedName {
                    group: g.0,
                    name: name.clone(),
                })
                .collect(),
            profiles: self.groups.profiles.iter().map(|d| d.0).collect(),
        }
    }

    fn from_body(body: Body) -> Self {
        NameIndex {
            reachable: body
                .reachable
                .into_iter()
                .map(|r| (r.subject, r.access, r.kind))
                .collect(),
            metas: body
                .metas
                .into_iter()
                .map(|n| {
                    let meta = DocumentMetadata {
                        name: n.name,
                        kind: n.kind,
                        folder: n.folder.map(DocumentId),
                        removed: n.removed,
                    };
                    (DocumentId(n.document), meta)
                })
                .collect(),
            groups: SharedGroups {
                names: body
                    .groups
                    .into_iter()
                    .map(|g| (GroupId(g.group), g.name))
                    .collect(),
                profiles: body
                    .profiles
                    .into_iter()
                    .map(DocumentId)
                    .collect::<BTreeSet<_>>(),
            },
        }
    }
}

/// REP-65: the digest that binds an index to what it was derived from: every subject's
/// summary (STORE-4: item count and sum of item hashes) read in one store transaction, the
/// key store (device keys and key-agreement secrets, which decide what is readable) and the
/// contacts file.
pub fn binding(
    home: &Home,
    keys: &KeyStore,
    summaries: &[(SubjectId, Summary)],
) -> Result<[u8; 32]> {
    let mut h = blake3::Hasher::new();
    h.update(b"store");
    h.update(&(summaries.len() as u64).to_le_bytes());
    for (subject, summary) in summaries {
        h.update(subject.0.as_bytes());
        h.update(&summary.to_bytes());
    }
    h.update(b"keys");
    h.update(blake3::hash(&keys.to_bytes()).as_bytes());
    h.update(b"contacts");
    match home.read_optional(CONTACTS_FILE)? {
        Some(bytes) => {
            h.update(&[1]);
            h.update(blake3::hash(&bytes).as_bytes());
        }
        None => {
            h.update(&[0]);
        }
    }
    Ok(*h.finalize().as_bytes())
}

/// REP-65: `BLAKE3-keyed(derive_key(INDEX_MAC_KEY, signing seed), bytes)`.
fn mac(keys: &KeyStore, bytes: &[u8]) -> blake3::Hash {
    let seed = keys.device().signing_key().seed();
    let key = zeroize::Zeroizing::new(blake3::derive_key(INDEX_MAC_KEY, seed.as_slice()));
    blake3::keyed_hash(&key, bytes)
}

/// The file's bytes for `index` bound to `binding`.
fn file_bytes(keys: &KeyStore, index: &NameIndex, binding: [u8; 32]) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&encode(&index.body(binding)));
    let tag = mac(keys, &bytes);
    bytes.extend_from_slice(tag.as_bytes());
    bytes
}

/// REP-66: reads the index and checks it: MAC first, then the binding against the current
/// store (`summaries`, from `RedbStore::summaries` or `read_summaries`), key store and
/// contacts.
pub fn load(home: &Home, keys: &KeyStore, summaries: &[(SubjectId, Summary)]) -> Result<Lookup> {
    let Some(bytes) = home.read_optional(INDEX_FILE)? else {
        return Ok(Lookup::Absent);
    };
    let Some(split) = bytes.len().checked_sub(MAC_LEN) else {
        return Ok(Lookup::Tampered);
    };
    let (signed, tag) = bytes.split_at(split);
    let Ok(tag) = <[u8; MAC_LEN]>::try_from(tag) else {
        return Ok(Lookup::Tampered);
    };
    // `blake3::Hash` compares in constant time.
    if mac(keys, signed) != blake3::Hash::from(tag) {
        return Ok(Lookup::Tampered);
    }
    // REP-65: authentic, in another format (an index written by an earlier version): rewritten
    // by the full open, like a stale one.
    if !signed.starts_with(MAGIC) {
        return Ok(Lookup::Stale);
    }
    let Ok(body) = decode_canonical::<Body>(&signed[MAGIC.len()..], MAX_BODY) else {
        return Ok(Lookup::Tampered);
    };
    if body.binding != binding(home, keys, summaries)? {
        return Ok(Lookup::Stale);
    }
    Ok(Lookup::Valid(NameIndex::from_body(body)))
}

/// REP-66: [`load`], keeping only a valid index; `None` when it is absent, stale or tampered
/// (the last warned about), each traced.
pub fn valid(
    home: &Home,
    keys: &KeyStore,
    summaries: &[(SubjectId, Summary)],
) -> Result<Option<NameIndex>> {
    Ok(match load(home, keys, summaries)? {
        Lookup::Valid(index) => Some(index),
        Lookup::Stale => {
            trace("stale");
            None
        }
        Lookup::Absent => {
            trace("absent");
            None
        }
        Lookup::Tampered => {
            warn_tampered(home);
            None
        }
    })
}

/// What a read-only command answers from (REP-66, REP-69): the device's keys, the store's
/// per-subject summaries (read without opening the store for writing) and the valid index.
pub struct ReadOnlyView {
    /// The device's key store.
    pub keys: KeyStore,
    /// The store's per-subject summaries.
    pub summaries: Vec<(SubjectId, Summary)>,
    /// The index, checked against both.
    pub index: NameIndex,
}

/// [`ReadOnlyView`] of `home`, or `None` when the command must open the home fully instead:
/// no identity or store, a store in use, absent or not closed cleanly, or an absent, stale or
/// tampered index (the last warned about).
pub fn read_only_view(home: &Home) -> Result<Option<ReadOnlyView>> {
    let Ok(keys) = crate::device_store::load(home) else {
        return Ok(None);
    };
    let Ok(summaries) = RedbStore::read_summaries(home.path(crate::session::STORE_FILE)) else {
        return Ok(None);
    };
    Ok(valid(home, &keys, &summaries)?.map(|index| ReadOnlyView {
        keys,
        summaries,
        index,
    }))
}

/// REP-68: writes `index`, bound to the current store, key store and contacts, atomically and
/// with mode 0600; nothing is written when the file already holds exactly these bytes (a
/// read-only command that finds the index current writes nothing).
pub fn write(home: &Home, keys: &KeyStore, store: &RedbStore, index: &NameIndex) -> Result<bool> {
    let bytes = file_bytes(keys, index, binding(home, keys, &store.summaries()?)?);
    if home.read_optional(INDEX_FILE)?.as_deref() == Some(bytes.as_slice()) {
        return Ok(false);
    }
    home.write_atomic(INDEX_FILE, &bytes, true)?;
    Ok(true)
}

/// Prints what the index did on standard error when `KEYHIVE_DEBUG` names `index` (for tests
/// and for finding out why a command was slow).
pub fn trace(event: &str) {
    if crate::debug_trace::enabled("index") {
        eprintln!("name index: {event}");
    }
}

/// REP-66: the warning for an index whose MAC does not verify.
pub fn warn_tampered(home: &Home) {
    trace("tampered");
    eprintln!(
        "warning: {} failed its integrity check (damaged or altered); ignoring it, replaying the whole store and writing it again",
        home.path(INDEX_FILE).display()
    );
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use keyhive_core::identity::Device;
    use keyhive_sync::replica::Replica;

    use super::*;

    fn meta(name: &str, removed: bool) -> DocumentMetadata {
        DocumentMetadata {
            name: name.to_owned(),
            kind: MetadataKind::Document,
            folder: None,
            removed,
        }
    }

    /// REP-67: a name resolves only to exactly one document not removed, and never when a
    /// local group has it.
    #[test]
    fn rep67_resolves_one_document_or_nothing() {
        let (a, b, c) = (
            DocumentId(PublicKey([1; 32])),
            DocumentId(PublicKey([2; 32])),
            DocumentId(PublicKey([3; 32])),
        );
        let mut index = NameIndex {
            reachable: Vec::new(),
            groups: SharedGroups::default(),
            metas: [
                (a, meta("plan.txt", false)),
                (b, meta("twice", false)),
                (c, meta("twice", false)),
            ]
            .into_iter()
            .chain([(DocumentId(PublicKey([4; 32])), meta("gone", true))])
            .collect(),
        };
        let mut groups = LocalNames::default();
        assert_eq!(index.resolve("plan.txt", &groups), Some(a));
        assert_eq!(index.resolve("twice", &groups), None);
        assert_eq!(index.resolve("gone", &groups), None);
        assert_eq!(index.resolve("unknown", &groups), None);
        groups.insert(PublicKey([9; 32]), "plan.txt".to_owned());
        assert_eq!(index.resolve("plan.txt", &groups), None);
        // REC-10: a group's shared name hides a document of that name too.
        let groups = LocalNames::default();
        index
            .groups
            .names
            .insert(GroupId(PublicKey([8; 32])), "plan.txt".to_owned());
        assert_eq!(index.resolve("plan.txt", &groups), None);
    }

    /// REP-65/66: written then read back it is valid and equal; after the store changes it is
    /// stale; under another device's key, or with any byte flipped, it is tampered.
    #[test]
    fn rep65_round_trip_binding_and_mac() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::resolve(Some(dir.path().to_path_buf())).expect("home");
        let keys = KeyStore::new(Device::generate(None));
        let store = Arc::new(RedbStore::open(dir.path().join("store.redb")).expect("store"));
        let index = NameIndex {
            reachable: vec![(PublicKey([7; 32]), Access::Read, SubjectKind::Document)],
            metas: [
                (DocumentId(PublicKey([7; 32])), meta("plan.txt", false)),
                // A full session's metadata holds the folder claim (REC-3): so does the index.
                (
                    DocumentId(PublicKey([4; 32])),
                    DocumentMetadata {
                        folder: Some(DocumentId(PublicKey([3; 32]))),
                        ..meta("filed.txt", false)
                    },
                ),
            ]
            .into(),
            groups: SharedGroups {
                names: [(GroupId(PublicKey([6; 32])), "Team".to_owned())].into(),
                profiles: [DocumentId(PublicKey([5; 32]))].into(),
            },
        };
        assert!(matches!(
            load(&home, &keys, &store.summaries().expect("summaries")),
            Ok(Lookup::Absent)
        ));
        assert!(write(&home, &keys, &store, &index).expect("write"));
        assert!(!write(&home, &keys, &store, &index).expect("unchanged"));
        match load(&home, &keys, &store.summaries().expect("summaries")).expect("load") {
            Lookup::Valid(read) => assert_eq!(read, index),
            other => panic!("{other:?}"),
        }
        let bytes = std::fs::read(home.path(INDEX_FILE)).expect("read");
        assert!(bytes.starts_with(MAGIC));

        let other = KeyStore::new(Device::generate(None));
        assert!(matches!(
            load(&home, &other, &store.summaries().expect("summaries")),
            Ok(Lookup::Tampered)
        ));
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x80;
            std::fs::write(home.path(INDEX_FILE), &bad).expect("write");
            assert!(
                matches!(
                    load(&home, &keys, &store.summaries().expect("summaries")),
                    Ok(Lookup::Tampered)
                ),
                "byte {at}"
            );
        }
        std::fs::write(home.path(INDEX_FILE), &bytes).expect("write");

        // An authentic index of another format (v1, before shared group names; v2, before
        // folder claims) is stale.
        for format in [b"keyhive-names-v1", b"keyhive-names-v2"] {
            let mut old = format.to_vec();
            old.extend_from_slice(&bytes[MAGIC.len()..bytes.len() - MAC_LEN]);
            let tag = mac(&keys, &old);
            old.extend_from_slice(tag.as_bytes());
            std::fs::write(home.path(INDEX_FILE), &old).expect("write");
            assert!(matches!(
                load(&home, &keys, &store.summaries().expect("summaries")),
                Ok(Lookup::Stale)
            ));
        }
        std::fs::write(home.path(INDEX_FILE), &bytes).expect("write");

        let mut replica = Replica::open(keys.device().clone(), store.clone()).expect("replica");
        replica.create_group().expect("group");
        assert!(matches!(
            load(&home, &keys, &store.summaries().expect("summaries")),
            Ok(Lookup::Stale)
        ));
        assert!(write(&home, &keys, &store, &index).expect("rewrite"));
        assert!(matches!(
            load(&home, &keys, &store.summaries().expect("summaries")),
            Ok(Lookup::Valid(_))
        ));
        std::fs::write(home.path("contacts.json"), b"[]").expect("contacts");
        assert!(matches!(
            load(&home, &keys, &store.summaries().expect("summaries")),
            Ok(Lookup::Stale)
        ));
    }
}
