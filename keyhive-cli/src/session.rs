//! An opened device: key store, local replica (redb), contacts and names, with name resolution.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use keyhive_core::capability::{Access, AgentId};
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::{ContactCard, DocumentId, GroupId, IndividualId, SubjectKind};
use keyhive_core::keystore::KeyStore;
use keyhive_sync::RedbStore;
use keyhive_sync::item::SubjectId;
use keyhive_sync::reconcile::summary::Summary;
use keyhive_sync::replica::Replica;

use crate::contacts::ContactBook;
use crate::device_store;
use crate::home::Home;
use crate::name_index::{self, NameIndex};
use crate::names::{GroupNames, LocalNames, SharedGroups};
use crate::output::Output;
use keyhive_sync::record::{
    ChangeRecord, DocumentHistory, DocumentMetadata, GroupProfiles, MetadataKind, classify,
    read_profile,
};

/// File of the local item store.
pub const STORE_FILE: &str = "store.redb";

/// One device's opened state.
pub struct Session {
    /// The home directory.
    pub home: Home,
    /// Output mode.
    pub out: Output,
    /// Secrets (device + key-agreement secrets).
    pub keys: KeyStore,
    /// What `device.key` holds now (so that saving what is already there writes nothing).
    keys_saved: device_store::Saved,
    /// The local item store (shared with sync links).
    pub store: Arc<RedbStore>,
    /// The local replica.
    pub replica: Replica<Arc<RedbStore>>,
    /// Contacts.
    pub contacts: ContactBook,
    /// Local group names (override the shared ones on this device).
    pub names: LocalNames,
    /// The person group this device belongs to (PERSON-1), if any.
    pub person: Option<GroupId>,
    metas: Option<BTreeMap<DocumentId, DocumentMetadata>>,
    /// REC-10: shared group names and profile documents, read with `metas`.
    groups: SharedGroups,
    /// REP-65: the binding (store, key store, contacts) when `metas` was read, so that
    /// writing the name index reuses them when nothing changed since.
    metas_binding: Option<[u8; 32]>,
    /// REP-63: opened for one document (`Replica::open_scoped`); never writes the name index.
    scoped: bool,
    /// REP-67, REP-69: the names this scoped session was opened for and what the name index
    /// resolved each to.
    pinned: Vec<(String, PublicKey, SubjectKind)>,
    /// REP-69: the agent name this scoped session was opened for and what it resolved to.
    pinned_agent: Option<(String, AgentId)>,
    /// REP-69: what a full replay found this device reaches, from the name index, for a
    /// scoped session answering as a full one.
    seeded_reachable: Option<Vec<(PublicKey, Access, SubjectKind)>>,
}

/// How long a command waits for another command that holds the home's store (LIVE-9).
const STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// LIVE-9: opens the home's item store read-write, waiting (at most [`STORE_WAIT`], saying so
/// once on stderr) while another `keyhive` command holds it, as commands on a watched home
/// wait for each other (LIVE-3). Before, a `sync` started while a `put` ran on the same home
/// failed at once with "in use by another process". Any other failure is returned at once.
pub fn open_store(home: &Home) -> Result<RedbStore> {
    let path = home.path(STORE_FILE);
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        match RedbStore::open(&path) {
            Err(keyhive_sync::StoreError::InUse { .. }) if started.elapsed() < STORE_WAIT => {
                if !said {
                    eprintln!(
                        "waiting for another keyhive command using {} to finish...",
                        home.root().display()
                    );
                    said = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            // The error names the file and what to do (STORE-6..9).
            other => return other.context("cannot open the local store"),
        }
    }
}

/// The home's item store for a command that only reads it (`get`, `log`, `members`, `why` on
/// their scoped paths, REP-60, REP-69): opened read-only (`specs/sync.md` STORE-20), so the
/// command leaves `store.redb` byte for byte as it was; any write through it is refused
/// (`StoreError::ReadOnly`), which makes the scoped open fail and the command open the home
/// fully instead. When the read-only open is refused (the file is in use by a writer, or was
/// not closed cleanly and needs redb's repair), the store is opened read-write as usual.
pub fn open_store_for_reading(home: &Home) -> Result<Arc<RedbStore>> {
    let path = home.path(STORE_FILE);
    match RedbStore::open_read_only(&path) {
        Ok(store) => Ok(Arc::new(store)),
        Err(e) => {
            tracing::debug!(error = %e, "read-only open refused; opening the store read-write");
            // The error names the file and what to do (STORE-6..9).
            Ok(Arc::new(open_store(home)?))
        }
    }
}

impl Session {
    /// Opens the device in `home`.
    pub fn open(home: Home, out: Output) -> Result<Self> {
        let keys = device_store::load(&home)?;
        let store = Arc::new(open_store(&home)?);
        let replica = Replica::open(keys.device().clone(), store.clone())?;
        let stats = replica.open_stats();
        crate::debug_trace::trace(
            "open",
            &format!(
                "replayed {} items: {} marked before, {} verified and marked now (REP-70)",
                stats.items, stats.marked, stats.verified
            ),
        );
        Self::assemble(home, out, keys, store, replica)
    }

    /// REP-60: opens the device to read the one document `name_or_id` names. When it is an id,
    /// or a unique prefix of a stored subject's id, or (REP-67) a name the valid name index
    /// resolves to one document, the replica replays (and verifies) only the stored items that
    /// document depends on (`Replica::open_scoped`); otherwise, or when that does not find a
    /// document, the session is opened fully ([`Session::open`]), so answers and error
    /// messages are those of a full session.
    pub fn open_reading(home: Home, out: Output, name_or_id: &str) -> Result<Self> {
        match Self::open_scoped(&home, out, name_or_id) {
            Ok(Some(session)) => return Ok(session),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "scoped open failed; opening fully"),
        }
        Self::open(home, out)
    }

    /// The scoped session of [`Session::open_reading`], `None` when `name_or_id` is not the id
    /// (or a unique id prefix) of a document of the store, nor a name a valid name index
    /// answers for (REP-67).
    fn open_scoped(home: &Home, out: Output, name_or_id: &str) -> Result<Option<Self>> {
        let keys = device_store::load(home)?;
        let store = open_store_for_reading(home)?;
        let by_id = match name_or_id.parse::<PublicKey>() {
            Ok(key) => Some(key),
            Err(_) if crate::lookup::is_prefix(name_or_id) => {
                let subjects: Vec<PublicKey> = keyhive_sync::Store::subjects(store.as_ref())?
                    .into_iter()
                    .map(|s| s.0)
                    .collect();
                match crate::lookup::by_prefix(name_or_id, &subjects).as_slice() {
                    [one] => Some(*one),
                    // No stored subject has that prefix, so no subject of a full replica
                    // either: a full session looks the text up as a name.
                    [] => None,
                    _ => return Ok(None),
                }
            }
            Err(_) => None,
        };
        let mut pinned = Vec::new();
        let target = match by_id {
            Some(key) => key,
            None => {
                let Some(index) = valid_index(home, &keys, &store)? else {
                    return Ok(None);
                };
                match index.resolve(name_or_id, &LocalNames::load(home)?) {
                    Some(doc) => {
                        name_index::trace("used");
                        pinned.push((name_or_id.to_owned(), doc.0, SubjectKind::Document));
                        doc.0
                    }
                    None => return Self::unresolved(home, out, keys, store, index).map(Some),
                }
            }
        };
        let replica = Replica::open_scoped(keys.device().clone(), store.clone(), &[target])?;
        let is_document = replica
            .checker()
            .subject_info(&target)
            .is_some_and(|i| i.kind == SubjectKind::Document);
        if !is_document {
            return Ok(None);
        }
        let mut session = Self::assemble(home.clone(), out, keys, store, replica)?;
        session.scoped = true;
        session.pinned = pinned;
        Ok(Some(session))
    }

    /// REP-67: a name the valid name index does not resolve to exactly one document (unknown,
    /// ambiguous, a group's) is one a full session's `document` refuses. The session is
    /// opened over this device's own items only and seeded with the index (the metadata and
    /// group names a full replay found, REP-64), so that the same resolution code refuses it
    /// with the full session's message (the did-you-mean, the list of ids) without a replay.
    fn unresolved(
        home: &Home,
        out: Output,
        keys: KeyStore,
        store: Arc<RedbStore>,
        index: NameIndex,
    ) -> Result<Self> {
        let replica = Replica::open_scoped(keys.device().clone(), store.clone(), &[])?;
        let mut session = Self::assemble(home.clone(), out, keys, store, replica)?;
        session.seed_scoped(index, Vec::new(), None);
        name_index::trace("used (the name is not one document's)");
        Ok(session)
    }

    /// REP-69: turns a session around a scoped replica into one that answers names as a full
    /// session: the metadata and shared group names come from the valid name index `index`
    /// (what a full replay found, REP-64), and `subjects` and `agent` are the resolutions made
    /// from it before the replica was opened. It never writes the name index (REP-68).
    pub(crate) fn seed_scoped(
        &mut self,
        index: NameIndex,
        subjects: Vec<(String, PublicKey, SubjectKind)>,
        agent: Option<(String, AgentId)>,
    ) {
        self.scoped = true;
        self.seeded_reachable = Some(index.reachable);
        self.metas = Some(index.metas);
        self.groups = index.groups;
        self.metas_binding = None;
        self.pinned = subjects;
        self.pinned_agent = agent;
    }

    /// REP-68: after a command on a fully opened session, writes the name index from this
    /// session's state, bound to the store and key store as they now are. Not for a scoped
    /// session, nor when the replica holds key-agreement secrets the key store on disk does
    /// not (a fresh replay would not read what this one reads). A failure is logged, never
    /// the command's failure: the index is only an optimisation.
    pub fn refresh_name_index(&mut self) {
        if self.scoped {
            return;
        }
        let started = std::time::Instant::now();
        let elapsed = || format!("({} ms)", started.elapsed().as_millis());
        match self.write_name_index() {
            Ok(Some(true)) => name_index::trace(&format!("written {}", elapsed())),
            Ok(Some(false)) => name_index::trace(&format!("current {}", elapsed())),
            Ok(None) => name_index::trace("not written: key-agreement secrets not saved"),
            Err(e) => {
                name_index::trace("not written: error");
                tracing::debug!(error = %e, "cannot write the name index");
            }
        }
    }

    /// `Some(written)`, or `None` when the replica's secrets are not the key store's.
    fn write_name_index(&mut self) -> Result<Option<bool>> {
        if !self.secrets_saved() {
            return Ok(None);
        }
        // Read again unless nothing the metadata depends on changed since it was read.
        let binding = name_index::binding(&self.home, &self.keys, &self.store.summaries()?)?;
        if self.metas_binding != Some(binding) {
            self.invalidate();
        }
        let index = NameIndex {
            reachable: self.replica.reachable(),
            metas: self.metas()?.clone(),
            groups: self.groups.clone(),
        };
        name_index::write(&self.home, &self.keys, &self.store, &index).map(Some)
    }

    /// Completes a session around an opened replica: restores key-agreement secrets and loads
    /// contacts (publishing their cards to the replica) and local names.
    pub fn assemble(
        home: Home,
        out: Output,
        keys: KeyStore,
        store: Arc<RedbStore>,
        mut replica: Replica<Arc<RedbStore>>,
    ) -> Result<Self> {
        let documents: Vec<DocumentId> = replica
            .checker()
            .subjects()
            .filter(|s| {
                replica
                    .checker()
                    .subject_info(s)
                    .is_some_and(|i| i.kind == SubjectKind::Document)
            })
            .map(|s| DocumentId(*s))
            .collect();
        let secrets: Vec<_> = documents
            .iter()
            .filter_map(|d| keys.cgka_secrets(d).map(|s| (*d, s.clone())))
            .collect();
        replica.import_cgka_secrets(secrets);
        // KEYS-11: a key-agreement op made by this command is stored only once its secrets are
        // in `device.key`, so a command killed midway leaves no epoch this device cannot open.
        replica.keep_secrets_with(keyhive_sync::replica::KeyFile::with_keys(
            home.path(crate::device_store::DEVICE_FILE),
            keys.clone(),
        ));
        let contacts = ContactBook::load(&home)?;
        for c in contacts.all() {
            replica.add_contact(ContactCard::from_line(&c.card)?)?;
        }
        let names = LocalNames::load(&home)?;
        let person = crate::person::load(&home)?;
        Ok(Session {
            home,
            out,
            keys_saved: device_store::Saved::of(&keys),
            keys,
            store,
            replica,
            contacts,
            names,
            person,
            metas: None,
            groups: SharedGroups::default(),
            metas_binding: None,
            scoped: false,
            pinned: Vec::new(),
            pinned_agent: None,
            seeded_reachable: None,
        })
    }

    /// Persists key-agreement secrets (the item store is already durable).
    pub fn save(&mut self) -> Result<()> {
        let secrets: Vec<_> = self.replica.cgka_secrets().collect();
        for (document, s) in secrets {
            self.keys.set_cgka_secrets(document, s);
        }
        self.keys_saved.save(&self.home, &self.keys)?;
        self.names.save(&self.home)
    }

    /// Forgets cached metadata after a change.
    pub fn invalidate(&mut self) {
        self.metas = None;
        self.metas_binding = None;
    }

    /// After this device wrote a metadata record on `doc` (create, rename, remove): reads that
    /// one document's metadata again instead of every document's, so that a command writing
    /// many (`folder push` of a thousand files) costs one read per document, not one full
    /// read per document written. Only the name index's binding is dropped: it is computed
    /// again, with a full read, when the index is written (REP-65).
    pub fn reread_metadata(&mut self, doc: DocumentId) -> Result<()> {
        self.metas_binding = None;
        let Some(metas) = self.metas.as_mut() else {
            return Ok(());
        };
        crate::debug_trace::trace("metadata", "read 1 document");
        match DocumentHistory::load(&self.replica, doc)?.metadata() {
            Some(meta) => metas.insert(doc, meta),
            None => metas.remove(&doc),
        };
        Ok(())
    }

    /// Whether the replica holds exactly the key-agreement secrets of the key store (a fresh
    /// replay of the store with the key store would read what this session reads).
    fn secrets_saved(&self) -> bool {
        let mut saved = self.keys.clone();
        for (document, secrets) in self.replica.cgka_secrets() {
            saved.set_cgka_secrets(document, secrets);
        }
        *saved.to_bytes() == *self.keys.to_bytes()
    }

    /// REP-65: takes the metadata and shared group names from the name index when it is
    /// valid for exactly this store, key store and contacts, the replica reads with that key
    /// store and reaches what the index lists: the index then holds what reading every
    /// document would find (a command in a home of 3,562 documents read them all before
    /// doing anything; an idle `sync` read them all to write nothing).
    fn metas_from_index(&mut self, summaries: &[(SubjectId, Summary)]) -> bool {
        if self.scoped || !self.secrets_saved() {
            return false;
        }
        let Ok(name_index::Lookup::Valid(index)) =
            name_index::load(&self.home, &self.keys, summaries)
        else {
            return false;
        };
        if index.reachable != self.replica.reachable() {
            return false;
        }
        crate::debug_trace::trace("metadata", "taken from the name index");
        self.metas = Some(index.metas);
        self.groups = index.groups;
        true
    }

    /// Metadata of every document this device can read, and of those it was removed from
    /// (REP-31: so that a command naming one can say it was revoked, not that it is unknown).
    pub fn metas(&mut self) -> Result<&BTreeMap<DocumentId, DocumentMetadata>> {
        if self.metas.is_none() {
            // REP-65: what the metadata is read from (a failure only disables the reuse).
            let summaries = self.store.summaries().ok();
            self.metas_binding = summaries
                .as_ref()
                .and_then(|list| name_index::binding(&self.home, &self.keys, list).ok());
            if let Some(list) = &summaries
                && self.metas_from_index(list)
            {
                return Ok(self.metas.get_or_insert_default());
            }
            let mut metas = BTreeMap::new();
            let checker = self.replica.checker();
            let removed = checker.subjects().filter(|s| {
                checker
                    .subject_info(s)
                    .is_some_and(|i| i.kind == SubjectKind::Document)
                    && self.replica.require_unrevoked(s, Access::Pull).is_err()
            });
            let reachable = self
                .replica
                .reachable()
                .into_iter()
                .filter(|(_, _, kind)| *kind == SubjectKind::Document)
                .map(|(s, _, _)| s);
            let documents: Vec<PublicKey> = reachable.chain(removed.copied()).collect();
            crate::debug_trace::trace(
                "metadata",
                &format!("read every document ({})", documents.len()),
            );
            let mut profiles = GroupProfiles::default();
            for subject in documents {
                let doc = DocumentId(subject);
                let history = DocumentHistory::load(&self.replica, doc)?;
                if let Some(meta) = history.metadata() {
                    metas.insert(doc, meta);
                } else if let Some(reading) = read_profile(self.replica.checker(), doc, &history) {
                    // REC-9, REC-10: a group's profile document.
                    profiles.add(doc, reading);
                }
            }
            self.groups = SharedGroups::from(&profiles);
            self.metas = Some(metas);
        }
        Ok(self.metas.get_or_insert_default())
    }

    /// Group names as shown here: local names first, then shared ones (REC-10).
    pub fn group_names(&mut self) -> Result<GroupNames<'_>> {
        self.metas()?;
        Ok(GroupNames {
            local: &self.names,
            shared: &self.groups,
            person: self.person,
        })
    }

    /// A human name for any subject or device.
    pub fn name_of(&mut self, key: &PublicKey) -> String {
        if let Some(n) = self.contacts.name_of(&IndividualId(*key)) {
            return n.to_owned();
        }
        if *key == self.replica.device().id().0 {
            return "me".to_owned();
        }
        // PERSON-4: another device of this person.
        if let Some(name) =
            crate::person::own_device_name(&self.replica, self.person, &IndividualId(*key))
        {
            return name;
        }
        // PERSON-4: a person group is named after its person, on every device that knows it.
        if let Some(c) = self.contacts.person(&GroupId(*key)) {
            return c.name.clone();
        }
        if self.person == Some(GroupId(*key)) {
            return crate::person::OWN_GROUP_NAME.to_owned();
        }
        if let Ok(names) = self.group_names()
            && let Some(n) = names.get(key)
        {
            return n.to_owned();
        }
        if let Ok(metas) = self.metas()
            && let Some(m) = metas.get(&DocumentId(*key))
        {
            return m.name.clone();
        }
        card_named(&self.replica, &IndividualId(*key)).unwrap_or_else(|| short(key))
    }

    /// Resolves a group, folder or document by name or id.
    pub fn subject(&mut self, name_or_id: &str) -> Result<(PublicKey, SubjectKind)> {
        if let Ok(key) = name_or_id.parse::<PublicKey>() {
            let info = self.replica.checker().subject_info(&key).with_context(|| {
                format!("no group, folder or document {name_or_id} here: run `keyhive sync` or check the id")
            })?;
            return Ok((key, info.kind));
        }
        // An id prefix as tables print it (12 hex characters, or any unique 4 or more).
        if crate::lookup::is_prefix(name_or_id) {
            let checker = self.replica.checker();
            match crate::lookup::by_prefix(name_or_id, checker.subjects()).as_slice() {
                [key] => {
                    let kind = checker
                        .subject_info(key)
                        .map_or(SubjectKind::Group, |i| i.kind);
                    return Ok((*key, kind));
                }
                [] => {}
                many => bail!(
                    "the id prefix {name_or_id:?} is ambiguous ({} matches); type more of it",
                    many.len()
                ),
            }
        }
        // REP-67, REP-69: a name this scoped session was opened for, as the name index
        // resolved it.
        if let Some((_, key, kind)) = self.pinned.iter().find(|(name, _, _)| name == name_or_id) {
            return Ok((*key, *kind));
        }
        let metas: Vec<(DocumentId, String)> = self
            .metas()?
            .iter()
            // A removed document (REP-51) is found by id, not by its old name.
            .filter(|(_, meta)| !meta.removed)
            .map(|(doc, meta)| (*doc, meta.name.clone()))
            .collect();
        let mut found: Vec<(PublicKey, SubjectKind)> = self
            .group_names()?
            .find(name_or_id)
            .into_iter()
            .map(|k| (k, SubjectKind::Group))
            .collect();
        for (doc, name) in &metas {
            if name == name_or_id {
                found.push((doc.0, SubjectKind::Document));
            }
        }
        match found.as_slice() {
            [one] => Ok(*one),
            [] => {
                let removed: Vec<String> = self
                    .metas()?
                    .iter()
                    .filter(|(_, meta)| meta.removed && meta.name == name_or_id)
                    .map(|(doc, _)| doc.to_string()[..12].to_owned())
                    .collect();
                if !removed.is_empty() {
                    bail!(
                        "{name_or_id:?} was removed (`keyhive doc rm`, REP-51); its history stays: name it by its id ({})",
                        removed.join(", ")
                    );
                }
                let mut known: Vec<String> = metas.into_iter().map(|(_, name)| name).collect();
                known.extend(self.group_names()?.all());
                let waiting = match self.unnamed_documents()? {
                    0 => String::new(),
                    n => format!(
                        "; {n} document(s) here have no readable name yet (`keyhive ls`: a name arrives with the keys once a member syncs after this device was added)"
                    ),
                };
                bail!(
                    "unknown name {name_or_id:?}{}: run `keyhive ls` to see names, or use an id{waiting}",
                    crate::lookup::did_you_mean(name_or_id, known)
                )
            }
            many => bail!(
                "the name {name_or_id:?} is ambiguous ({} matches); use one of the ids: {}",
                many.len(),
                many.iter()
                    .map(|(k, _)| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// The documents this device reaches whose metadata it cannot read (yet), as `ls` counts
    /// them (group profile documents, REC-10, are not listed as documents).
    fn unnamed_documents(&mut self) -> Result<usize> {
        let reachable = match &self.seeded_reachable {
            Some(seeded) => seeded.clone(),
            None => self.replica.reachable(),
        };
        let named: BTreeSet<DocumentId> = self.metas()?.keys().copied().collect();
        Ok(reachable
            .iter()
            .map(|(key, _, kind)| (DocumentId(*key), kind))
            .filter(|(doc, kind)| {
                **kind == SubjectKind::Document
                    && !named.contains(doc)
                    && !self.groups.profiles.contains(doc)
            })
            .count())
    }

    /// Resolves a document (or folder) by name or id.
    pub fn document(&mut self, name_or_id: &str) -> Result<DocumentId> {
        match self.subject(name_or_id)? {
            (key, SubjectKind::Document) => Ok(DocumentId(key)),
            _ => bail!("{name_or_id:?} is a group, not a document or folder"),
        }
    }

    /// Resolves a document that holds file content: a folder's files are documents of their
    /// own, so `put` and `get` on a folder are refused with where to look instead.
    pub fn file_document(&mut self, name_or_id: &str) -> Result<DocumentId> {
        let doc = self.document(name_or_id)?;
        match self.metas()?.get(&doc) {
            Some(m) if m.kind == MetadataKind::Folder => bail!(
                "{name_or_id:?} is a folder: each of its files is a document of its own (`keyhive ls`; `keyhive folder push` and `folder pull` copy them all)"
            ),
            _ => Ok(doc),
        }
    }

    /// REP-31, REP-32: the revocation that removed this device's `read` on `subject`, if one
    /// did. What it received before stays readable here; commands reading it say so.
    pub fn revoked_read(&self, subject: &PublicKey) -> Option<keyhive_core::Hash> {
        match self.replica.require_unrevoked(subject, Access::Read) {
            Err(keyhive_sync::replica::ReplicaError::Revoked { revocation, .. }) => {
                Some(revocation)
            }
            _ => None,
        }
    }

    /// Resolves a folder by name or id.
    pub fn folder(&mut self, name_or_id: &str) -> Result<DocumentId> {
        let doc = self.document(name_or_id)?;
        match self.metas()?.get(&doc) {
            Some(m) if m.kind == MetadataKind::Folder => Ok(doc),
            _ => bail!("{name_or_id:?} is not a folder"),
        }
    }

    /// Resolves an agent: a contact (device), `me`, a group, folder or document.
    pub fn agent(&mut self, name_or_id: &str) -> Result<AgentId> {
        // REP-69: the agent this scoped session was opened for, resolved as below beforehand.
        if let Some((name, agent)) = &self.pinned_agent
            && name == name_or_id
        {
            return Ok(*agent);
        }
        if name_or_id == "me" {
            return Ok(AgentId::Individual(self.replica.device().id()));
        }
        if let Some(c) = self.contacts.find(name_or_id) {
            // PERSON-3: a contact's name means the person (all their devices); its device id,
            // that one device.
            return Ok(match c.person {
                Some(group) if c.name == name_or_id => AgentId::Group(group),
                _ => AgentId::Individual(c.id),
            });
        }
        if let Ok(key) = name_or_id.parse::<PublicKey>()
            && self.replica.directory().card(&IndividualId(key)).is_some()
        {
            return Ok(AgentId::Individual(IndividualId(key)));
        }
        if crate::lookup::is_prefix(name_or_id) {
            // The short ids tables print: of contacts, and of devices known only by their card
            // (e.g. one that joined with an invitation).
            let mut ids: Vec<PublicKey> = self.contacts.all().iter().map(|c| c.id.0).collect();
            ids.extend(self.replica.directory().cards().map(|c| c.payload().id().0));
            ids.sort_unstable();
            ids.dedup();
            if let [one] = crate::lookup::by_prefix(name_or_id, &ids).as_slice() {
                return Ok(AgentId::Individual(IndividualId(*one)));
            }
        }
        match self.subject(name_or_id) {
            Ok((key, SubjectKind::Group)) => Ok(AgentId::Group(GroupId(key))),
            Ok((key, SubjectKind::Document)) => Ok(AgentId::Document(DocumentId(key))),
            // The name this device was given at `init` means this device, as `me` does,
            // unless a contact, group or folder already answers to it.
            Err(_) if self.replica.device().name() == Some(name_or_id) => {
                Ok(AgentId::Individual(self.replica.device().id()))
            }
            Err(_) => {
                // A name only a device's own card claims is never taken as that device (anyone
                // can claim any name), but the person is told which id it is on.
                let claimed: Vec<String> = self
                    .replica
                    .directory()
                    .cards()
                    .filter(|c| c.payload().name.as_deref() == Some(name_or_id))
                    .map(|c| {
                        let id = c.payload().id();
                        match self.contacts.all().iter().find(|k| k.id == id) {
                            Some(contact) => {
                                format!("{} (your contact {:?})", short(&id.0), contact.name)
                            }
                            None => short(&id.0),
                        }
                    })
                    .collect();
                if !claimed.is_empty() {
                    bail!(
                        "no contact is named {name_or_id:?}; the card of device {} claims that name, which nobody vouched for: name it by that id, or `keyhive contact add` its card to give it a name",
                        claimed.join(", device ")
                    );
                }
                let mut known: Vec<String> =
                    self.contacts.all().iter().map(|c| c.name.clone()).collect();
                known.extend(self.group_names()?.all());
                bail!(
                    "unknown agent {name_or_id:?}{}: add the person's card with `keyhive contact add`, or name a group or folder",
                    crate::lookup::did_you_mean(name_or_id, known)
                )
            }
        }
    }
}

/// REP-66: the name index when it is valid for the current store, key store and contacts;
/// `None` when it is absent, stale or tampered (warned about), each traced.
pub(crate) fn valid_index(
    home: &Home,
    keys: &KeyStore,
    store: &RedbStore,
) -> Result<Option<NameIndex>> {
    name_index::valid(home, keys, &store.summaries()?)
}

/// A document's metadata record: the first change's name, renamed and removed by later
/// records (REP-50, REP-51), if this device can read it.
pub fn read_meta(
    replica: &Replica<Arc<RedbStore>>,
    doc: DocumentId,
) -> Result<Option<DocumentMetadata>> {
    Ok(DocumentHistory::load(replica, doc)?.metadata())
}

/// What record `change` of `document` holds (REC-1): its metadata (REC-3), a rename or
/// removal (REC-7), a group's name (REC-8), or content. Reading stops once the plaintext is
/// longer than a metadata record can be (`MAX_METADATA_LEN` and its type byte): such a change,
/// like one that cannot be read, is content ([`ChangeRecord::File`]).
pub fn change_record(
    replica: &Replica<Arc<RedbStore>>,
    document: DocumentId,
    change: &keyhive_core::Hash,
) -> ChangeRecord {
    let mut capped = Capped {
        bytes: Vec::new(),
        limit: keyhive_sync::record::MAX_METADATA_LEN + 1,
    };
    match replica.read_change(document, change, &mut capped) {
        Ok(_) => classify(&capped.bytes),
        Err(_) => ChangeRecord::File,
    }
}

/// A writer that refuses more than `limit` bytes, so that a large change is not read in full
/// to learn that it is content.
struct Capped {
    bytes: Vec<u8>,
    limit: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            return Err(std::io::Error::other("longer than a metadata record"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether `change` of `document` is bookkeeping of the document's name and place (its
/// metadata record, a rename or a removal: REP-50, REP-51) rather than content.
pub fn is_metadata(
    replica: &Replica<Arc<RedbStore>>,
    document: DocumentId,
    change: &keyhive_core::Hash,
) -> bool {
    matches!(
        change_record(replica, document, change),
        ChangeRecord::Metadata(_) | ChangeRecord::Update(_)
    )
}

/// A device that is not a contact (e.g. one that joined with an invitation), as its id with the
/// name its own card claims, marked as the card's since nobody vouched for it:
/// `c3e909dca0ba (card: frank)`; `None` without a card or a name on it.
pub fn card_named(replica: &Replica<Arc<RedbStore>>, device: &IndividualId) -> Option<String> {
    let card = replica.directory().card(device)?;
    let name = card.payload().name.as_deref()?;
    Some(format!("{} (card: {name})", short(&device.0)))
}

/// The first 12 hex characters of a key, for tables.
pub fn short(key: &PublicKey) -> String {
    key.to_string()[..12].to_owned()
}
