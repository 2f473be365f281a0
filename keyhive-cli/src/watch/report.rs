//! What the watcher prints (LIVE-5): one line per event, or with `--json` one JSON object per
//! line, each with `event` and `at` (Unix seconds).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use keyhive_core::Hash;
use keyhive_core::capability::Access;
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::{DocumentId, GroupId, IndividualId};
use keyhive_sync::replica::Event;
use serde_json::{Value, json};

use crate::names::shown;
use crate::output::Output;
use crate::session::{read_meta, short};
use keyhive_sync::record::{DocumentHistory, GroupName, Metadata, read_profile};

use super::opened::Opened;

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
                if is_metadata(opened, *document, change) {
                    self.line(
                        "document",
                        json!({"document": document.to_string(), "name": doc, "author": who}),
                        || format!("{doc}: readable here now (created by {who})"),
                    );
                    return;
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
            Event::AccessChanged {
                subject,
                before,
                after,
                ..
            } => {
                let name = subject_name(opened, subject);
                let level = |a: &Option<Access>| a.map_or("none".to_owned(), |a| a.to_string());
                let (b, a) = (level(before), level(after));
                self.line(
                    "access",
                    json!({"subject": subject.to_string(), "name": name, "before": b, "after": a}),
                    || format!("{name}: this device's access {b} -> {a}"),
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
            Event::Lagged { missed } => self.line("lagged", json!({"missed": missed}), || {
                format!("{missed} events were dropped (run `keyhive ls` to see the state)")
            }),
            _ => {}
        }
    }
}

impl Reporter {
    /// REC-9, REC-10: one change of a group's profile document, as what it does to the
    /// group's shared name.
    fn profile(&self, p: &ProfileChange, change: &Hash, who: &str) {
        let group = p.group.to_string();
        let counted = p.now.as_ref().filter(|n| n.change == *change);
        match (counted, &p.before) {
            (Some(now), Some(old)) => {
                let (old, new) = (shown(old), shown(&now.name));
                self.line(
                    "group_renamed",
                    json!({"group": group, "old_name": old, "name": new, "author": who, "change": change.to_string()}),
                    || format!("group {old} renamed to {new} by {who}"),
                );
            }
            (Some(now), None) => {
                let new = shown(&now.name);
                self.line(
                    "group",
                    json!({"group": group, "name": new, "author": who, "change": change.to_string()}),
                    || format!("group {new}: readable here now (named by {who})"),
                );
            }
            (None, _) => {
                let name = p.before.as_deref().map_or_else(|| short(&p.group.0), shown);
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
    /// The name before the change (the changes before it in `Replica::changes` order).
    before: Option<String>,
    /// The counting name once the change is read (with the changes before it).
    now: Option<GroupName>,
}

/// `Some` when `document` is a group's profile document (REC-9) and `change` one of its
/// readable changes.
fn profile_change(opened: &Opened, document: DocumentId, change: &Hash) -> Option<ProfileChange> {
    let replica = opened.lock();
    let history = DocumentHistory::load(&replica, document).ok()?;
    let reading = read_profile(replica.checker(), document, &history)?;
    let at = history.changes.iter().position(|c| c.op == *change)?;
    let upto = |n: usize| {
        let mut h = history.clone();
        h.changes.truncate(n);
        read_profile(replica.checker(), document, &h).and_then(|r| r.name)
    };
    Some(ProfileChange {
        group: reading.group,
        before: upto(at).map(|n| n.name),
        now: upto(at + 1),
    })
}

fn author_name(opened: &Opened, author: &IndividualId) -> String {
    if let Some(n) = opened.contacts.name_of(author) {
        return shown(n);
    }
    if *author == opened.lock().device().id() {
        return "me".to_owned();
    }
    short(&author.0)
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
    document_name(opened, DocumentId(*subject))
}

/// Whether a change is the document's (small) metadata record.
fn is_metadata(opened: &Opened, document: DocumentId, change: &keyhive_core::Hash) -> bool {
    let replica = opened.lock();
    let small = replica.changes(document).is_ok_and(|changes| {
        changes
            .iter()
            .any(|c| c.op == *change && c.length.is_some_and(|l| l <= 4096))
    });
    let mut bytes = Vec::new();
    small
        && replica.read_change(document, change, &mut bytes).is_ok()
        && Metadata::from_record(&bytes).is_ok()
}
