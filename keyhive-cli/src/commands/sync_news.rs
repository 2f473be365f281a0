//! What a sync changed for this device, from the replica's events (REP-41..REP-45): its own
//! access to a subject (REP-44, e.g. a revocation reaching the revoked), changes and grants that
//! became invalid or valid again (REP-42, e.g. an edit whose author was revoked concurrently),
//! and how many new changes each document can be read in (REP-41). `keyhive sync` prints them
//! under each relay's line and in `--json` as that relay's `news`.

use std::collections::{HashMap, HashSet};

use keyhive_core::Hash;
use keyhive_core::capability::{Access, Reason, Refusal, Validity};
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::DocumentId;
use keyhive_sync::replica::Event;

use crate::names::shown;
use crate::session::{Session, change_record};
use keyhive_sync::record::{ChangeRecord, MetadataUpdate};

/// Most events one sync keeps for its report; beyond it the report says how many it missed.
pub const EVENT_CAPACITY: usize = 65_536;

/// One thing a sync changed for this device.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum News {
    /// This device's level on a subject changed (`none`: no access).
    Access {
        /// The group, folder or document.
        subject: String,
        /// Its name here.
        name: String,
        /// Level before.
        before: String,
        /// Level now.
        after: String,
        /// The revocation that removed this device, if one did.
        revocation: Option<String>,
    },
    /// A held op became invalid, or valid again.
    Validity {
        /// The op's subject.
        subject: String,
        /// Its name here.
        name: String,
        /// The op.
        op: String,
        /// Whether it is a change of a document (else a grant or revocation).
        content: bool,
        /// Whether it counts now.
        valid: bool,
        /// The revocation that made it invalid, if one did.
        revocation: Option<String>,
    },
    /// New changes of a document became readable here.
    Changes {
        /// The document.
        document: String,
        /// Its name here.
        name: String,
        /// How many.
        count: usize,
        /// Of those, how many do not count because their author lacked the level (CAP-11).
        invalid: usize,
        /// Of those, how many do not count because a revocation of their author that had not
        /// seen them excluded them (CAP-11 `Excluded`): the author held the level when writing.
        revoked: usize,
    },
    /// A document was renamed (REP-50) or removed from its folder's tree (REP-51).
    Moved {
        /// The document.
        document: String,
        /// Its name here now.
        name: String,
        /// Renamed or removed.
        how: Move,
    },
    /// More happened than the report kept; `keyhive ls` and `keyhive log` show the state.
    Lagged {
        /// Events not reported.
        missed: u64,
    },
}

/// How a document moved in its folder's tree.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Move {
    /// REP-50: it has a new name.
    Renamed,
    /// REP-51: it left its folder's tree.
    Removed,
}

/// The news in `events`: access changes first, then the rest in the order it happened
/// (changes grouped per document where the document first appeared). A group's profile
/// document (REC-8) is not news of its own: access to it follows from the group's, which is
/// reported, and its changes are the group's name.
///
/// A person reads one sync's news against what the last sync told them, not in the order
/// items were judged: validity is netted per op over the sync (an op that flipped and flipped
/// back is not news), and a change that became readable in this sync is reported once, in the
/// count of new changes, with the validity it ends the sync with. A new member's first sync
/// judges history in arrival order, so a change can be excluded by its author's revocation
/// until the change that shows the revoker had seen it arrives.
pub fn collect(events: Vec<Event>, s: &mut Session) -> Vec<News> {
    s.invalidate();
    // Naming news reads every document's metadata: not for a sync that brought none.
    if events.is_empty() {
        return Vec::new();
    }
    let profiles = s
        .group_names()
        .map(|names| names.shared.profiles.clone())
        .unwrap_or_default();
    let netted = Netted::of(&events);
    let mut news = Vec::new();
    for (at, event) in events.into_iter().enumerate() {
        let revocation = event.revocation().as_ref().map(Hash::to_string);
        match event {
            Event::ValidityChanged { op, .. } if !netted.reported_at(&op, at) => {}
            Event::AccessChanged { subject, .. } if profiles.contains(&DocumentId(subject)) => {}
            Event::Readable { document, .. } if profiles.contains(&document) => {}
            Event::AccessChanged {
                subject,
                before,
                after,
                ..
            } => news.push(News::Access {
                subject: subject.to_string(),
                name: name(s, &subject),
                before: level(before),
                after: level(after),
                revocation,
            }),
            Event::ValidityChanged {
                op,
                subject,
                content,
                after,
                ..
            } => news.push(News::Validity {
                subject: subject.to_string(),
                name: name(s, &subject),
                op: op.to_string(),
                content,
                valid: after.is_valid(),
                revocation,
            }),
            Event::Readable {
                document,
                change,
                valid,
                ..
            } => {
                match change_record(&s.replica, document, &change) {
                    // REC-3: the name it arrived with; the access news says it arrived.
                    ChangeRecord::Metadata(_) => {}
                    ChangeRecord::Update(update) => news.push(News::Moved {
                        document: document.to_string(),
                        name: name(s, &document.0),
                        how: match update {
                            MetadataUpdate::Rename { .. } => Move::Renamed,
                            MetadataUpdate::Remove => Move::Removed,
                        },
                    }),
                    _ => {
                        let valid = s.replica.validity(&change).map_or(valid, |v| v.is_valid());
                        add_change(&mut news, s, document, change, valid);
                    }
                }
            }
            Event::Lagged { missed } => news.push(News::Lagged { missed }),
            _ => {}
        }
    }
    // Access first, as a person reads it ("access none -> read", then "1 new change
    // readable"): events of one batch arrive changes first. Otherwise in order.
    news.sort_by_key(|n| !matches!(n, News::Access { .. }));
    news
}

/// Which validity events of one sync are news (see [`collect`]).
struct Netted {
    /// Changes that became readable in this sync: counted as new, with their final validity.
    readable: HashSet<Hash>,
    /// Per op, whether it counted before its first event, and the index of its last event.
    ops: HashMap<Hash, (bool, usize)>,
    /// Per op, whether it counts after its last event.
    now: HashMap<Hash, bool>,
}

impl Netted {
    fn of(events: &[Event]) -> Self {
        let mut netted = Netted {
            readable: HashSet::new(),
            ops: HashMap::new(),
            now: HashMap::new(),
        };
        for (at, event) in events.iter().enumerate() {
            match event {
                Event::Readable { change, .. } => {
                    netted.readable.insert(*change);
                }
                Event::ValidityChanged {
                    op, before, after, ..
                } => {
                    netted
                        .ops
                        .entry(*op)
                        .and_modify(|(_, last)| *last = at)
                        .or_insert((before.is_valid(), at));
                    netted.now.insert(*op, after.is_valid());
                }
                _ => {}
            }
        }
        netted
    }

    /// Whether the validity event of `op` at index `at` is reported: its last one, when the op
    /// was not new in this sync and counts otherwise than before the sync.
    fn reported_at(&self, op: &Hash, at: usize) -> bool {
        !self.readable.contains(op)
            && self.ops.get(op).is_some_and(|(before, last)| {
                *last == at && self.now.get(op).is_some_and(|now| now != before)
            })
    }
}

fn add_change(
    news: &mut Vec<News>,
    s: &mut Session,
    document: DocumentId,
    change: Hash,
    valid: bool,
) {
    let id = document.0.to_string();
    // An invalid change either lacked the level when written or was excluded by a concurrent
    // revocation of its author; a person reads these differently, so they are counted apart.
    let excluded = !valid
        && matches!(
            s.replica.validity(&change),
            Some(Validity::Invalid(Refusal {
                reason: Reason::Excluded { .. },
                ..
            }))
        );
    let existing = news.iter_mut().find_map(|n| match n {
        News::Changes {
            document,
            count,
            invalid,
            revoked,
            ..
        } if *document == id => Some((count, invalid, revoked)),
        _ => None,
    });
    let (count, invalid, revoked) = match existing {
        Some(counts) => counts,
        None => {
            news.push(News::Changes {
                name: name(s, &document.0),
                document: id,
                count: 0,
                invalid: 0,
                revoked: 0,
            });
            match news.last_mut() {
                Some(News::Changes {
                    count,
                    invalid,
                    revoked,
                    ..
                }) => (count, invalid, revoked),
                _ => return,
            }
        }
    };
    *count += 1;
    if excluded {
        *revoked += 1;
    } else if !valid {
        *invalid += 1;
    }
}

fn name(s: &mut Session, subject: &PublicKey) -> String {
    shown(&s.name_of(subject))
}

fn level(access: Option<Access>) -> String {
    access.map_or("none".to_owned(), |a| a.to_string())
}

/// One line a piece of news, as a person reads it.
pub fn line(news: &News) -> String {
    match news {
        News::Access {
            name,
            before,
            after,
            revocation,
            ..
        } => {
            let why = if revocation.is_some() {
                " (revoked)"
            } else {
                ""
            };
            format!("{name}: this device's access {before} -> {after}{why}")
        }
        News::Validity {
            name,
            op,
            content,
            valid,
            revocation,
            ..
        } => {
            let what = if *content {
                "change"
            } else {
                "grant or revocation"
            };
            // CAP-11: a revocation leaves valid what it saw of its subject; an edit it did not
            // see was concurrent with it, while a grant made on another subject through the
            // revoked access (a document of a revoked folder member) ends with it even if its
            // revoker had seen it.
            let now = match (valid, revocation, content) {
                (true, _, _) => "counts again",
                (false, Some(_), true) => "no longer counts (its author was revoked concurrently)",
                (false, Some(_), false) => {
                    "no longer counts (the access it was made with was revoked)"
                }
                (false, None, _) => "no longer counts",
            };
            format!("{name}: {what} {} {now}", &op[..12])
        }
        News::Changes {
            name,
            count,
            invalid,
            revoked,
            ..
        } => {
            let plural = if *count == 1 { "" } else { "s" };
            let mut notes = Vec::new();
            if *invalid > 0 {
                notes.push(format!("{invalid} written without the access"));
            }
            if *revoked > 0 {
                notes.push(format!("{revoked} by an author revoked concurrently"));
            }
            let note = if notes.is_empty() {
                String::new()
            } else {
                format!(" (not counted: {})", notes.join(", "))
            };
            format!("{name}: {count} new change{plural} readable{note}")
        }
        News::Moved { name, how, .. } => match how {
            Move::Renamed => format!("{name}: renamed (this is its new name)"),
            Move::Removed => {
                format!("{name}: removed from its folder (`folder pull` deletes an unchanged copy)")
            }
        },
        News::Lagged { missed } => {
            format!(
                "{missed} more events not shown (`keyhive ls` and `keyhive log` show the state)"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_piece_of_news_reads_as_one_line() {
        let op = "ab".repeat(32);
        let access = News::Access {
            subject: String::new(),
            name: "notes.txt".into(),
            before: "write".into(),
            after: "none".into(),
            revocation: Some(op.clone()),
        };
        assert_eq!(
            line(&access),
            "notes.txt: this device's access write -> none (revoked)"
        );
        let validity = |valid, revocation| News::Validity {
            subject: String::new(),
            name: "notes.txt".into(),
            op: op.clone(),
            content: true,
            valid,
            revocation,
        };
        assert_eq!(
            line(&validity(false, Some(op.clone()))),
            "notes.txt: change abababababab no longer counts (its author was revoked concurrently)"
        );
        let grant = News::Validity {
            subject: String::new(),
            name: "notes.txt".into(),
            op: op.clone(),
            content: false,
            valid: false,
            revocation: Some(op.clone()),
        };
        assert_eq!(
            line(&grant),
            "notes.txt: grant or revocation abababababab no longer counts (the access it was made with was revoked)"
        );
        assert_eq!(
            line(&validity(true, None)),
            "notes.txt: change abababababab counts again"
        );
        let changes = |count, invalid, revoked| News::Changes {
            document: String::new(),
            name: "notes.txt".into(),
            count,
            invalid,
            revoked,
        };
        assert_eq!(line(&changes(1, 0, 0)), "notes.txt: 1 new change readable");
        assert_eq!(
            line(&changes(3, 1, 0)),
            "notes.txt: 3 new changes readable (not counted: 1 written without the access)"
        );
        assert_eq!(
            line(&changes(4, 1, 2)),
            "notes.txt: 4 new changes readable (not counted: 1 written without the access, 2 by an author revoked concurrently)"
        );
        assert!(line(&News::Lagged { missed: 7 }).starts_with("7 more events not shown"));
    }
}
