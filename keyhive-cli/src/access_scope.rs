//! REP-69: `members SUBJECT` and `why AGENT SUBJECT` without a full replay. The subject and
//! the agent are resolved from the valid name index exactly as a full session resolves them
//! (`Session::subject`, `Session::agent`); the replica is then opened scoped to them
//! (REP-60, REP-61: members, levels and explanations of a subject in the scope are a full
//! replica's), and the names the output prints (the "via" column, the path of `why`) come from
//! the index and the contacts, as a full session's do. Anything the index cannot decide as a
//! full session would opens the home fully, so answers and messages stay a full open's.
//! `folder ls` needs the whole graph: it replays every stored item read-only instead.

use anyhow::Result;
use keyhive_core::capability::AgentId;
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::{GroupId, IndividualId, SubjectKind};
use keyhive_sync::replica::Replica;

use crate::contacts::ContactBook;
use crate::device_store;
use crate::home::Home;
use crate::lookup::{by_prefix, is_prefix};
use crate::name_index::{self, NameIndex};
use crate::names::LocalNames;
use crate::output::Output;
use crate::session::{Session, valid_index};

/// How a full session would resolve a subject, decided from the index before the replica is
/// opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolved {
    /// An id or a unique id prefix: the kind is the replica's (checked after the open).
    Key(PublicKey),
    /// A name (a group's shown name or a document's, REP-67): key and kind.
    Named(PublicKey, SubjectKind),
}

impl Resolved {
    fn key(self) -> PublicKey {
        match self {
            Resolved::Key(k) | Resolved::Named(k, _) => k,
        }
    }
}

/// What the index says a full session's `Session::subject` does with a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    /// It resolves, to this.
    One(Resolved),
    /// It refuses it (no stored subject has that id prefix, and no group or exactly several
    /// groups and documents are shown with that name): the seeded session's own resolution
    /// refuses it with the same message.
    Refused,
    /// The index cannot tell (an id prefix shared by several stored subjects).
    Unknown,
}

/// REP-69: `Session::subject` over the index: a full id; a hex prefix unique among the stored
/// subjects (when it matches one; the scoped replica must then know it); else exactly one group
/// shown with that name or document not removed with it. No match or several: refused, as a
/// full session refuses it.
fn subject(
    name_or_id: &str,
    index: &NameIndex,
    local: &LocalNames,
    stored: &[PublicKey],
) -> Subject {
    if let Ok(key) = name_or_id.parse::<PublicKey>() {
        return Subject::One(Resolved::Key(key));
    }
    if is_prefix(name_or_id) {
        match by_prefix(name_or_id, stored).as_slice() {
            [] => {}
            [one] => return Subject::One(Resolved::Key(*one)),
            _ => return Subject::Unknown,
        }
    }
    let mut found: Vec<(PublicKey, SubjectKind)> = index
        .group_names(local)
        .find(name_or_id)
        .into_iter()
        .map(|k| (k, SubjectKind::Group))
        .collect();
    found.extend(
        index
            .metas
            .iter()
            .filter(|(_, m)| !m.removed && m.name == name_or_id)
            .map(|(d, _)| (d.0, SubjectKind::Document)),
    );
    match found.as_slice() {
        [(key, kind)] => Subject::One(Resolved::Named(*key, *kind)),
        _ => Subject::Refused,
    }
}

/// An agent as a full session would resolve it, before the open.
#[derive(Debug, Clone, Copy)]
enum Agent {
    /// `me`, a contact (PERSON-3) or a unique prefix of a contact's id.
    Known(AgentId),
    /// A group, folder or document, resolved as [`subject`].
    Subject(Resolved),
    /// A full id that is no contact's: a full session asks its directory of cards, then its
    /// subjects. The scoped replica is opened for the key too, so that its directory holds
    /// the key's stored cards (REP-60: a card is stored under its device's key) and its
    /// checker the subject of that id, if any: the seeded session's own resolution then
    /// answers as a full session's.
    Id(PublicKey),
    /// Refused by a full session (as [`Subject::Refused`], after no contact matched): the
    /// seeded session's own resolution refuses it with the same message.
    Refused,
}

/// REP-69: `Session::agent` over the contacts and the index; `None` when the index cannot
/// tell.
fn agent(
    name_or_id: &str,
    me: IndividualId,
    contacts: &ContactBook,
    index: &NameIndex,
    local: &LocalNames,
    stored: &[PublicKey],
) -> Option<Agent> {
    if name_or_id == "me" {
        return Some(Agent::Known(AgentId::Individual(me)));
    }
    if let Some(c) = contacts.find(name_or_id) {
        return Some(Agent::Known(match c.person {
            Some(group) if c.name == name_or_id => AgentId::Group(group),
            _ => AgentId::Individual(c.id),
        }));
    }
    if let Ok(key) = name_or_id.parse::<PublicKey>() {
        return Some(Agent::Id(key));
    }
    if is_prefix(name_or_id) {
        let ids: Vec<PublicKey> = contacts.all().iter().map(|c| c.id.0).collect();
        if let [one] = by_prefix(name_or_id, &ids).as_slice() {
            return Some(Agent::Known(AgentId::Individual(IndividualId(*one))));
        }
    }
    match subject(name_or_id, index, local, stored) {
        Subject::One(r) => Some(Agent::Subject(r)),
        Subject::Refused => Some(Agent::Refused),
        Subject::Unknown => None,
    }
}

/// REP-69: the subject's kind as the scoped replica has it, if it agrees with how it was
/// resolved (`None`: the replica does not know it, or it is not what the name said).
fn kind_in<S: keyhive_sync::Store>(
    replica: &Replica<S>,
    resolved: Resolved,
) -> Option<SubjectKind> {
    let kind = replica.checker().subject_info(&resolved.key())?.kind;
    match resolved {
        Resolved::Named(_, named) if named != kind => None,
        _ => Some(kind),
    }
}

/// REP-69: opens the home to answer about `subject` (and `agent`, for `why`): scoped when the
/// name index is valid and resolves both as a full session would, else fully.
pub fn open(home: Home, out: Output, subject: &str, agent: Option<&str>) -> Result<Session> {
    match open_scoped(&home, out, subject, agent) {
        Ok(Some(session)) => return Ok(session),
        Ok(None) => {}
        Err(e) => tracing::debug!(error = %e, "scoped open failed; opening fully"),
    }
    Session::open(home, out)
}

/// A read-only session over the whole store for a read-only command that needs the whole
/// capability graph (`folder ls`: the documents placed in a folder delegate to it, so no scope
/// of the folder holds them): every stored item is replayed as a scoped replica replays (read
/// only, nothing marked or written, REP-63) and names come from the valid name index. Without
/// a valid index, a full open (which writes the index, REP-68).
pub fn open_whole(home: Home, out: Output) -> Result<Session> {
    match open_whole_read_only(&home, out) {
        Ok(Some(session)) => return Ok(session),
        Ok(None) => {}
        Err(e) => tracing::debug!(error = %e, "read-only open failed; opening fully"),
    }
    Session::open(home, out)
}

fn open_whole_read_only(home: &Home, out: Output) -> Result<Option<Session>> {
    let keys = device_store::load(home)?;
    let store = crate::session::open_store_for_reading(home)?;
    let Some(index) = valid_index(home, &keys, &store)? else {
        return Ok(None);
    };
    let every: Vec<PublicKey> = keyhive_sync::Store::subjects(store.as_ref())?
        .into_iter()
        .map(|s| s.0)
        .collect();
    let replica = Replica::open_scoped(keys.device().clone(), store.clone(), &every)?;
    name_index::trace("used");
    let mut session = Session::assemble(home.clone(), out, keys, store, replica)?;
    session.seed_scoped(index, Vec::new(), None);
    Ok(Some(session))
}

fn open_scoped(
    home: &Home,
    out: Output,
    subject_name: &str,
    agent_name: Option<&str>,
) -> Result<Option<Session>> {
    let keys = device_store::load(home)?;
    let store = crate::session::open_store_for_reading(home)?;
    let Some(index) = valid_index(home, &keys, &store)? else {
        return Ok(None);
    };
    let local = LocalNames::load(home)?;
    let stored: Vec<PublicKey> = keyhive_sync::Store::subjects(store.as_ref())?
        .into_iter()
        .map(|s| s.0)
        .collect();
    let target = match subject(subject_name, &index, &local, &stored) {
        Subject::One(r) => Some(r),
        // The command fails resolving the subject, before it looks at the agent.
        Subject::Refused => None,
        Subject::Unknown => {
            name_index::trace("does not resolve the name");
            return Ok(None);
        }
    };
    let contacts = ContactBook::load(home)?;
    let me = keys.device().id();
    let who = match (target, agent_name) {
        (Some(_), Some(name)) => match agent(name, me, &contacts, &index, &local, &stored) {
            Some(who) => Some((name, who)),
            None => {
                name_index::trace("does not resolve the name");
                return Ok(None);
            }
        },
        _ => None,
    };
    let mut roots: Vec<PublicKey> = target.iter().map(|t| t.key()).collect();
    match who {
        Some((_, Agent::Known(id))) => roots.push(*id.public_key()),
        Some((_, Agent::Subject(r))) => roots.push(r.key()),
        Some((_, Agent::Id(key))) => roots.push(key),
        Some((_, Agent::Refused)) | None => {}
    }
    let replica = Replica::open_scoped(keys.device().clone(), store.clone(), &roots)?;
    let mut pins = Vec::new();
    if let Some(target) = target {
        let Some(kind) = kind_in(&replica, target) else {
            return Ok(None);
        };
        pins.push((subject_name.to_owned(), target.key(), kind));
    }
    let pinned_agent = match who {
        None | Some((_, Agent::Id(_) | Agent::Refused)) => None,
        Some((name, Agent::Known(id))) => Some((name.to_owned(), id)),
        Some((name, Agent::Subject(r))) => {
            let Some(kind) = kind_in(&replica, r) else {
                return Ok(None);
            };
            let id = match kind {
                SubjectKind::Group => AgentId::Group(GroupId(r.key())),
                SubjectKind::Document => {
                    AgentId::Document(keyhive_core::identity::DocumentId(r.key()))
                }
            };
            pins.push((name.to_owned(), r.key(), kind));
            Some((name.to_owned(), id))
        }
    };
    name_index::trace("used");
    let mut session = Session::assemble(home.clone(), out, keys, store, replica)?;
    session.seed_scoped(index, pins, pinned_agent);
    Ok(Some(session))
}

#[cfg(test)]
mod tests {
    use keyhive_core::identity::DocumentId;
    use keyhive_sync::record::{DocumentMetadata, MetadataKind};

    use super::*;
    use crate::names::SharedGroups;

    fn index() -> NameIndex {
        let meta = |name: &str, removed| DocumentMetadata {
            name: name.to_owned(),
            kind: MetadataKind::Document,
            folder: None,
            removed,
        };
        NameIndex {
            reachable: Vec::new(),
            metas: [
                (DocumentId(PublicKey([1; 32])), meta("plan.txt", false)),
                (DocumentId(PublicKey([2; 32])), meta("Team", false)),
                (DocumentId(PublicKey([3; 32])), meta("old", true)),
            ]
            .into(),
            groups: SharedGroups {
                names: [
                    (GroupId(PublicKey([4; 32])), "Team".to_owned()),
                    (GroupId(PublicKey([5; 32])), "Ops".to_owned()),
                ]
                .into(),
                profiles: Default::default(),
            },
        }
    }

    /// REP-69: a name resolves from the index only to exactly one group or document (not
    /// removed); ids and unique stored prefixes resolve to a key; no match or several is
    /// refused (as a full session refuses it); a prefix of several stored subjects is left to a
    /// full open.
    #[test]
    fn rep69_subjects_resolve_as_a_full_session_or_not_at_all() {
        let (index, local) = (index(), LocalNames::default());
        let mut twin = [0xab; 32];
        twin[31] = 0;
        let stored = [
            PublicKey([0xab; 32]),
            PublicKey([0xac; 32]),
            PublicKey(twin),
        ];
        assert_eq!(
            subject("plan.txt", &index, &local, &stored),
            Subject::One(Resolved::Named(PublicKey([1; 32]), SubjectKind::Document))
        );
        assert_eq!(
            subject("Ops", &index, &local, &stored),
            Subject::One(Resolved::Named(PublicKey([5; 32]), SubjectKind::Group))
        );
        // A group and a document share the name: ambiguous in a full session too.
        assert_eq!(subject("Team", &index, &local, &stored), Subject::Refused);
        assert_eq!(subject("old", &index, &local, &stored), Subject::Refused);
        assert_eq!(
            subject("unknown", &index, &local, &stored),
            Subject::Refused
        );
        assert_eq!(
            subject("acac", &index, &local, &stored),
            Subject::One(Resolved::Key(PublicKey([0xac; 32])))
        );
        // A prefix of several stored subjects: the full replica may know fewer of them.
        assert_eq!(subject("abab", &index, &local, &stored), Subject::Unknown);
        // Too short to be a prefix: a name.
        assert_eq!(subject("aba", &index, &local, &stored), Subject::Refused);
        // A prefix of none is looked up as a name.
        assert_eq!(subject("cafe", &index, &local, &stored), Subject::Refused);
        let full = PublicKey([9; 32]).to_string();
        assert_eq!(
            subject(&full, &index, &local, &stored),
            Subject::One(Resolved::Key(PublicKey([9; 32])))
        );
    }
}
