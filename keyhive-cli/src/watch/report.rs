//! What the watcher prints (LIVE-5): one line per event, or with `--json` one JSON object per
//! line, each with `event` and `at` (Unix seconds).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::PoisonError;
use std::time::{SystemTime, UNIX_EPOCH};

use keyhive_core::Hash;
use keyhive_core::capability::Access;
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::{DocumentId, GroupId, IndividualId};
use keyhive_sync::replica::Event;
use serde_json::{Value, json};

use crate::names::shown;
use crate::output::Output;
use crate::session::{change_record, read_meta, short};
use keyhive_sync::record::{
    ChangeRecord, DocumentHistory, GroupName, GroupProfiles, MetadataUpdate, ProfileReading,
    read_profile,
};

use super::opened::{HomeReplica, Opened};

/// Prints watcher lines.
#[derive(Debug, Clone, Copy)]
pub struct Reporter {
    out: Output,
}

impl Reporter {
    /// A reporter for the output mode.
    pub fn new(out: Output) -> Self {
        Reporter { out }
    }

    /// Prints one event: `fields` (with `event` and `at` added) under `--json`, else the
    /// time and `human`. A closed stdout loses the line, never stops the watcher (SYNC-99).
    pub fn line(&self, event: &str, fields: Value, human: impl FnOnce() -> String) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut stdout = std::io::stdout().lock();
        let _ = if self.out.json {
            let mut object = json!({ "event": event, "at": now });
            if let (Some(o), Value::Object(extra)) = (object.as_object_mut(), fields) {
                o.extend(extra);
            }
            writeln!(stdout, "{object}")
        } else {
            let secs = now as u64 % 86_400;
            let clock = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
            writeln!(stdout, "{clock} {}", human())
        };
        let _ = stdout.flush();
    }

    /// Prints the replica events that arrived since the last call.
    pub fn events(&self, opened: &Opened) {
        while let Some(event) = opened.events.try_recv() {
            self.event(opened, &event);
        }
    }

    fn event(&self, opened: &Opened, event: &Event) {
        match event {
            // LIVE-8: the replica reports a change once it reads in full (REP-41).
            Event::Readable {
                document,
                change,
                author,
                valid,
            } => {
                let who = author_name(opened, author);
                // REC-10: a change of a group's profile document is a rename of the group.
                if let Some(profile) = profile_change(opened, *document, change) {
                    self.profile(&profile, change, &who);
                    return;
                }
                let doc = document_name(opened, *document);
                let record = change_record(&opened.lock(), *document, change);
                match record {
                    ChangeRecord::Metadata(_) => {
                        self.line(
                            "document",
                            json!({"document": document.to_string(), "name": doc, "author": who}),
                            || format!("{doc}: readable here now (created by {who})"),
                        );
                        return;
                    }
                    // REP-50, REP-51: `doc` is the name after the change.
                    ChangeRecord::Update(MetadataUpdate::Rename { .. }) => {
                        self.line(
                            "renamed",
                            json!({"document": document.to_string(), "name": doc, "author": who, "change": change.to_string()}),
                            || format!("{doc}: renamed to this name by {who}"),
                        );
                        return;
                    }
                    ChangeRecord::Update(MetadataUpdate::Remove) => {
                        self.line(
                            "removed",
                            json!({"document": document.to_string(), "name": doc, "author": who, "change": change.to_string()}),
                            || format!("{doc}: removed from its folder by {who}"),
                        );
                        return;
                    }
                    _ => {}
                }
                let note = if *valid {
                    ""
                } else {
                    " (INVALID: not counted)"
                };
                self.line(
                    "readable",
                    json!({"document": document.to_string(), "name": doc, "change": change.to_string(), "author": who, "valid": valid}),
                    || format!("{doc}: new change {} by {who}{note}", &change.to_string()[..12]),
                );
            }
            Event::ValidityChanged {
                op,
                subject,
                content,
                after,
                ..
            } => {
                let name = subject_name(opened, subject);
                let valid = after.is_valid();
                self.line(
                    "validity",
                    json!({"op": op.to_string(), "subject": subject.to_string(), "content": content, "valid": valid}),
                    || {
                        let what = if *content { "change" } else { "grant or revocation" };
                        let now = if valid { "valid again" } else { "no longer valid" };
                        format!("{name}: {what} {} is {now}", &op.to_string()[..12])
                    },
                );
            }
            Event::AccessChanged { subject, .. } | Event::MembershipChanged { subject, .. }
                if is_profile(opened, subject) => {}
            Event::AccessChanged {
                subject,
                before,
                after,
                revocation,
            } => {
                let name = subject_name(opened, subject);
                let level = |a: &Option<Access>| a.map_or("none".to_owned(), |a| a.to_string());
                let (b, a) = (level(before), level(after));
                let why = if revocation.is_some() {
                    " (revoked)"
                } else {
                    ""
                };
                self.line(
                    "access",
                    json!({"subject": subject.to_string(), "name": name, "before": b, "after": a, "revocation": revocation.map(|r| r.to_string())}),
                    || format!("{name}: this device's access {b} -> {a}{why}"),
                );
            }
            Event::MembershipChanged { subject, members } => {
                let name = subject_name(opened, subject);
                let n = members.len();
                self.line(
                    "members",
                    json!({"subject": subject.to_string(), "name": name, "members": n}),
                    || format!("{name}: members changed ({n} now)"),
                );
            }
            Event::Lagged { missed } => {
                // A profile document may have arrived among the dropped events.
                *opened
                    .profiles
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                self.line("lagged", json!({"missed": missed}), || {
                    format!("{missed} events were dropped (run `keyhive ls` to see the state)")
                })
            }
            _ => {}
        }
    }
}

impl Reporter {
    /// REC-9, REC-10: one change of a group's profile document, as what it does to the
    /// group's shared name: the name the naming rules give the group (of several profile
    /// documents, the one with the smallest id and a counting record names it) before and
    /// after the change.
    fn profile(&self, p: &ProfileChange, change: &Hash, who: &str) {
        let group = p.group.to_string();
        let counted = p.written.as_ref().filter(|n| n.change == *change);
        match (counted, &p.before, &p.now) {
            (Some(written), Some(kept), Some(now))
                if now == kept && p.naming != Some(written.profile) =>
            {
                let (kept, proposed) = (shown(kept), shown(&written.name));
                let naming = p.naming.map(|d| d.to_string());
                self.line(
                    "group_name_kept",
                    json!({"group": group, "name": kept, "proposed": proposed, "author": who, "change": change.to_string(), "profile": written.profile.to_string(), "naming_profile": naming}),
                    || format!("group {kept} keeps its name: the rename to {proposed} by {who} is in another profile document (REC-10: the one with the smallest id names the group)"),
                );
            }
            (Some(_), Some(old), Some(now)) => {
                let (old, new) = (shown(old), shown(now));
                self.line(
                    "group_renamed",
                    json!({"group": group, "old_name": old, "name": new, "author": who, "change": change.to_string()}),
                    || format!("group {old} renamed to {new} by {who}"),
                );
            }
            (Some(written), None, now) => {
                let new = shown(now.as_deref().unwrap_or(&written.name));
                self.line(
                    "group",
                    json!({"group": group, "name": new, "author": who, "change": change.to_string()}),
                    || format!("group {new}: readable here now (named by {who})"),
                );
            }
            (None, before, _) | (Some(_), before, None) => {
                let name = before.as_deref().map_or_else(|| short(&p.group.0), shown);
                self.line(
                    "group_rename_refused",
                    json!({"group": group, "name": name, "author": who, "change": change.to_string()}),
                    || format!("group {name}: a rename by {who} does not count (REC-9: only an admin of the group names it)"),
                );
            }
        }
    }
}

/// What one change of a profile document does to its group's shared name (REC-10).
struct ProfileChange {
    /// The group the document names.
    group: GroupId,
    /// The group's name by the naming rules before the change (this document read with the
    /// changes before it in `Replica::changes` order, the group's other profile documents as
    /// they are).
    before: Option<String>,
    /// The group's name by the naming rules once the change is read.
    now: Option<String>,
    /// The profile document that names the group once the change is read.
    naming: Option<DocumentId>,
    /// This document's counting name once the change is read (with the changes before it).
    written: Option<GroupName>,
}

/// `Some` when `document` is a group's profile document (REC-9) and `change` one of its
/// readable changes.
fn profile_change(opened: &Opened, document: DocumentId, change: &Hash) -> Option<ProfileChange> {
    let replica = opened.lock();
    let checker = replica.checker();
    let history = DocumentHistory::load(&replica, document).ok()?;
    let reading = read_profile(checker, document, &history)?;
    let at = history.changes.iter().position(|c| c.op == *change)?;
    let group = reading.group;
    // REC-10: the group's other profile documents, as they read now.
    let others: Vec<(DocumentId, ProfileReading)> = {
        let mut cache = opened
            .profiles
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let known = known_profiles(&mut cache, &replica);
        known.insert(document, group);
        known
            .iter()
            .filter(|(d, g)| **g == group && **d != document)
            .filter_map(|(d, _)| {
                let h = DocumentHistory::load(&replica, *d).ok()?;
                Some((*d, read_profile(checker, *d, &h)?))
            })
            .collect()
    };
    let upto = |n: usize| {
        let mut h = history.clone();
        h.changes.truncate(n);
        let mine = read_profile(checker, document, &h);
        let mut profiles = GroupProfiles::default();
        for (d, r) in &others {
            profiles.add(*d, r.clone());
        }
        if let Some(r) = mine.clone() {
            profiles.add(document, r);
        }
        let named = profiles.names.get(&group).cloned();
        (mine.and_then(|r| r.name), named)
    };
    let (_, before) = upto(at);
    let (written, now) = upto(at + 1);
    Some(ProfileChange {
        group,
        before: before.map(|n| n.name),
        naming: now.as_ref().map(|n| n.profile),
        now: now.map(|n| n.name),
        written,
    })
}

fn author_name(opened: &Opened, author: &IndividualId) -> String {
    if let Some(n) = opened.contacts.name_of(author) {
        return shown(n);
    }
    let replica = opened.lock();
    if *author == replica.device().id() {
        return "me".to_owned();
    }
    crate::person::own_device_name(&replica, opened.person, author)
        .or_else(|| crate::session::card_named(&replica, author))
        .map_or_else(|| short(&author.0), |n| shown(&n))
}

fn document_name(opened: &Opened, document: DocumentId) -> String {
    match read_meta(&opened.lock(), document) {
        Ok(Some(meta)) => shown(&meta.name),
        _ => short(&document.0),
    }
}

fn subject_name(opened: &Opened, subject: &PublicKey) -> String {
    if let Some(n) = opened.names.get(subject) {
        return shown(n);
    }
    // REC-10: a group's shared name, as read now or last read.
    let read = GroupProfiles::load(&opened.lock());
    let mut names = opened
        .group_names
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Ok(profiles) = read {
        names.extend(profiles.names.into_iter().map(|(g, n)| (g, n.name)));
    }
    if let Some(n) = names.get(&GroupId(*subject)) {
        return shown(n);
    }
    drop(names);
    document_name(opened, DocumentId(*subject))
}

/// REC-8: whether `subject` is a group's profile document (its access and members follow the
/// group's, which are printed; its changes are the group's name).
fn is_profile(opened: &Opened, subject: &PublicKey) -> bool {
    // The replica first, then the cache, as `profile_change` takes them.
    let replica = opened.lock();
    let mut cache = opened
        .profiles
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    known_profiles(&mut cache, &replica).contains_key(&DocumentId(*subject))
}

/// The profile documents the watcher knows, read from `replica` when the cache was emptied
/// (dropped events).
fn known_profiles<'a>(
    cache: &'a mut Option<BTreeMap<DocumentId, GroupId>>,
    replica: &HomeReplica,
) -> &'a mut BTreeMap<DocumentId, GroupId> {
    cache.get_or_insert_with(|| {
        GroupProfiles::load(replica)
            .map(|p| p.documents)
            .unwrap_or_default()
    })
}
