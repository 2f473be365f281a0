//! `group create`, `group rename`, `folder create`, `doc create`, `ls`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail};
use keyhive_core::capability::{Access, AgentId};
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::{DocumentId, SubjectKind};
use serde_json::json;

use crate::contacts::validate_name;
use crate::home::Home;
use crate::name_index;
use crate::names::{GroupNames, LocalNames, check_name, shown};
use crate::output::{Output, print_table};
use crate::session::Session;
use keyhive_sync::record::{DocumentMetadata, GroupProfiles, Metadata, MetadataKind};

/// Creates a group (a person's devices or a team) named for every member: its name is
/// written, encrypted, to the group's profile document (REC-8, REC-9).
pub fn create_group(s: &mut Session, name: &str) -> Result<()> {
    validate_name(name)?;
    let id = s.replica.create_group()?;
    // PERSON-6: before the profile, so that the person's devices are seated for its name.
    crate::commands::device::give_to_person(s, &id.0)?;
    keyhive_sync::record::create_profile(&mut s.replica, id, name)?;
    s.invalidate();
    s.save()?;
    let id = id.to_string();
    s.out
        .emit(&json!({"id": id, "name": name, "kind": "group"}), || {
            println!("Created group {name} ({id})")
        })
}

/// `group rename GROUP NAME`: renames a group for every member (REC-10; this device must be
/// an admin of it), and forgets a local name this device had for it.
pub fn rename_group(s: &mut Session, group: &str, name: &str) -> Result<()> {
    validate_name(name)?;
    let (key, kind) = s.subject(group)?;
    if kind != SubjectKind::Group {
        bail!("{group:?} is not a group (documents and folders are renamed with `doc rename`)");
    }
    let id = keyhive_core::identity::GroupId(key);
    let old = s.name_of(&key);
    // REC-10: the profile document that names the group now.
    let profiles = GroupProfiles::load(&s.replica)?;
    let profile = keyhive_sync::record::name_group(&mut s.replica, &profiles, id, name)?;
    s.names.remove(&key);
    s.invalidate();
    s.save()?;
    let (id, profile) = (id.to_string(), profile.to_string());
    s.out.emit(
        &json!({"id": id, "name": name, "old_name": old, "profile": profile}),
        || {
            println!(
                "Renamed group {} to {name} ({id}); `keyhive sync` sends it to its members",
                shown(&old)
            )
        },
    )
}

/// Refuses `name` when a document or folder this device sees in the same place (`folder`, or
/// the top level) already bears it, other than `except`: both would then answer to the name
/// only by id, and a folder pull would write both as `NAME~ID` (REP-10). Concurrent creations
/// elsewhere can still collide; REP-10 handles those.
pub(crate) fn refuse_taken_name(
    s: &mut Session,
    name: &str,
    folder: Option<DocumentId>,
    except: Option<DocumentId>,
) -> Result<()> {
    let place: Option<BTreeSet<DocumentId>> =
        folder.map(|f| s.replica.folder_documents(f).into_iter().collect());
    let metas = s.metas()?;
    let taken = metas.iter().find(|(doc, meta)| {
        Some(**doc) != except
            && meta.name == name
            && !meta.removed
            && match &place {
                Some(docs) => docs.contains(doc),
                None => meta.folder.is_none(),
            }
    });
    let taken = taken.map(|(doc, meta)| (*doc, meta.kind));
    if let Some((doc, kind)) = taken {
        let what = match kind {
            MetadataKind::Folder => "folder",
            MetadataKind::Document => "document",
        };
        let place = match folder {
            Some(f) => format!("in folder {}", shown(&s.name_of(&f.0))),
            None => "at the top level".to_owned(),
        };
        bail!(
            "a {what} named {} already exists {place} ({}): choose another name, or rename or remove that one first",
            shown(name),
            &doc.to_string()[..12]
        );
    }
    Ok(())
}

/// Creates a folder or document whose name travels with it, encrypted. Its name must be one
/// that every reader accepts (REP-9); placing it in a folder needs `write` on the folder (REP-8).
pub fn create_document(
    s: &mut Session,
    name: &str,
    kind: MetadataKind,
    folder: Option<&str>,
) -> Result<DocumentId> {
    if let Err(problem) = check_name(name) {
        bail!(
            "invalid name {}: {problem} (names travel to others and become file paths)",
            shown(name)
        );
    }
    let folder = folder.map(|f| s.folder(f)).transpose()?;
    if let Some(folder) = folder {
        let me = AgentId::Individual(s.replica.device().id());
        if !s.replica.checker().can(me, Access::Write, &folder.0) {
            let held = s
                .replica
                .checker()
                .level(me, &folder.0)
                .map_or("no access".to_owned(), |l| l.to_string());
            bail!(
                "cannot create a document in folder {}: this device holds {held} on it, and placing a document in a folder needs write (REP-8)",
                shown(&s.name_of(&folder.0))
            );
        }
    }
    refuse_taken_name(s, name, folder, None)?;
    let doc = s.replica.create_document()?;
    if let Some(folder) = folder {
        // REP-8: this grant, by a writer of the folder, places the document in it; the folder's
        // members get access to the document according to their level in it.
        s.replica
            .grant(&doc.0, AgentId::Document(folder), Access::Admin)?;
    }
    // PERSON-6: before the metadata record, so that the person's devices read its name.
    crate::commands::device::give_to_person(s, &doc.0)?;
    let meta = Metadata {
        name: name.to_owned(),
        kind,
        folder,
    };
    s.replica.write(doc, &meta.to_record())?;
    s.reread_metadata(doc)?;
    // Not saved here: the new key-agreement secrets are already durable (KEYS-11, KEYS-12),
    // and saving the whole key store per document made `folder push` of many files cost
    // the size of the key store for each; the command saves once, at its end.
    Ok(doc)
}

/// `folder create` / `doc create` with output.
pub fn create_and_print(
    s: &mut Session,
    name: &str,
    kind: MetadataKind,
    folder: Option<&str>,
) -> Result<()> {
    let doc = create_document(s, name, kind, folder)?;
    s.save()?;
    let label = match kind {
        MetadataKind::Folder => "folder",
        MetadataKind::Document => "document",
    };
    let id = doc.to_string();
    s.out
        .emit(&json!({"id": id, "name": name, "kind": label}), || {
            println!("Created {label} {name} ({id})")
        })
}

/// Lists what this device can see, with its level on each.
pub fn ls(s: &mut Session) -> Result<()> {
    let reachable = s.replica.reachable();
    let metas = s.metas()?.clone();
    let out = s.out;
    let groups = s.group_names()?;
    print_ls(out, &reachable, &metas, groups)
}

/// REP-66: `ls` from the name index, when it is valid; `false` (nothing printed) when the
/// command must open the home fully instead (no identity or store, or an absent, stale or
/// tampered index, which is warned about).
pub fn ls_indexed(home: &Home, out: Output) -> Result<bool> {
    // Read-only: nothing is written or synced (a store in use, absent or not closed cleanly
    // is left to the full open).
    let Some(name_index::ReadOnlyView { index, .. }) = name_index::read_only_view(home)? else {
        return Ok(false);
    };
    name_index::trace("used");
    let names = LocalNames::load(home)?;
    print_ls(
        out,
        &index.reachable,
        &index.metas,
        index
            .group_names(&names)
            .with_person(crate::person::load(home)?),
    )?;
    Ok(true)
}

/// The `ls` table (or JSON rows) from what a full session knows: the subjects this device
/// reaches with its level, the documents' metadata, and the group names (local, then shared;
/// profile documents are listed as their group, not as documents: REC-10).
fn print_ls(
    out: Output,
    reachable: &[(PublicKey, Access, SubjectKind)],
    metas: &BTreeMap<DocumentId, DocumentMetadata>,
    names: GroupNames<'_>,
) -> Result<()> {
    let mut rows = Vec::new();
    for (subject, level, kind) in reachable {
        if *kind == SubjectKind::Document && names.shared.profiles.contains(&DocumentId(*subject)) {
            continue;
        }
        let (kind, name) = match kind {
            SubjectKind::Group => ("group", names.get(subject).map(str::to_owned)),
            SubjectKind::Document => {
                let meta = metas.get(&DocumentId(*subject)).cloned();
                match meta {
                    Some(m) if m.kind == MetadataKind::Folder => ("folder", Some(m.name)),
                    // REP-51: still held, no longer in its folder's tree.
                    Some(m) if m.removed => ("removed", Some(m.name)),
                    Some(m) => ("document", Some(m.name)),
                    // Its metadata (REC-1) is not readable here yet, or was never written:
                    // a folder cannot be told from a document without it.
                    None => ("unknown", None),
                }
            }
        };
        // REP-9: shared names come from peers; print them escaped and say what is wrong.
        let problem = name
            .as_deref()
            .and_then(|n| check_name(n).err())
            .map(|p| p.to_string());
        rows.push((
            kind,
            name.as_deref().map_or_else(|| "-".into(), shown),
            subject.to_string(),
            *level,
            problem,
        ));
    }
    rows.sort();
    let json_rows: Vec<_> = rows
        .iter()
        .map(|(k, n, id, l, p)| {
            let mut row = json!({"kind": k, "name": n, "id": id, "access": l.to_string()});
            if let Some(p) = p {
                row["name_problem"] = json!(p);
            }
            row
        })
        .collect();
    let unknown = rows.iter().filter(|row| row.0 == "unknown").count();
    out.emit(&json_rows, || {
        print_table(
            &["kind", "name", "id", "access"],
            rows.iter()
                .map(|(k, n, id, l, _)| vec![k.to_string(), n.clone(), id.clone(), l.to_string()])
                .collect(),
        );
        if unknown > 0 {
            println!(
                "{unknown} without a readable name: not readable here yet (name and kind arrive with the keys once a member syncs after this device was added; then `keyhive sync`), or created without one"
            );
        }
    })
}
