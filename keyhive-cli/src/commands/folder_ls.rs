//! `keyhive folder ls FOLDER`: what a folder holds (REP-8), as `folder pull` would write it.

use std::collections::BTreeMap;

use anyhow::Result;
use keyhive_core::capability::Access;
use keyhive_core::crypto::signing::PublicKey;
use keyhive_core::identity::DocumentId;
use keyhive_sync::record::MetadataKind;
use serde_json::json;

use super::content::revoked_note;
use super::folder::listing;
use crate::names::{check_name, shown};
use crate::output::print_table;
use crate::session::Session;

/// One row: a sub-folder, or a document under the path `folder pull` writes it to.
struct Row {
    kind: &'static str,
    name: String,
    doc: DocumentId,
    access: Option<Access>,
    /// REP-10: its plain name is another document's too (written as `NAME~ID12`).
    conflict: bool,
}

/// Lists the documents of `folder` (REP-8: placed there by the capability graph) under the
/// names `folder pull` writes them as (REP-9, REP-10), its sub-folders, and the documents it
/// cannot write with the reason, each with this device's access level.
pub fn ls(s: &mut Session, folder: &str) -> Result<()> {
    let folder_id = s.folder(folder)?;
    let (files, skipped) = listing(s, folder_id)?;
    let access: BTreeMap<PublicKey, Access> = s
        .replica
        .reachable()
        .into_iter()
        .map(|(subject, level, _)| (subject, level))
        .collect();
    let mut rows: Vec<Row> = files
        .iter()
        .map(|f| Row {
            kind: "document",
            name: f.path.clone(),
            doc: f.doc,
            access: access.get(&f.doc.0).copied(),
            conflict: f.conflict,
        })
        .collect();
    let documents = s.replica.folder_documents(folder_id);
    let metas = s.metas()?;
    rows.extend(documents.into_iter().filter_map(|doc| {
        let meta = metas.get(&doc)?;
        (meta.kind == MetadataKind::Folder && !meta.removed).then(|| Row {
            kind: "folder",
            // REP-9: a shared name is untrusted: printed escaped.
            name: match check_name(&meta.name) {
                Ok(()) => meta.name.clone(),
                Err(_) => shown(&meta.name),
            },
            doc,
            access: access.get(&doc.0).copied(),
            conflict: false,
        })
    }));
    rows.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    let level = |a: Option<Access>| a.map_or_else(|| "-".to_owned(), |a| a.to_string());
    let revoked = s.revoked_read(&folder_id.0);
    let value = json!({
        "folder": folder_id.to_string(),
        "revoked": revoked.map(|r| r.to_string()),
        "entries": rows.iter().map(|r| json!({
            "kind": r.kind,
            "name": r.name,
            "id": r.doc.to_string(),
            "access": r.access.map(|a| a.to_string()),
            "conflict": r.conflict,
        })).collect::<Vec<_>>(),
        "skipped": skipped.iter().map(|k| k.to_json()).collect::<Vec<_>>(),
    });
    s.out.emit(&value, || {
        if let Some(revocation) = &revoked {
            eprintln!("{}", revoked_note(folder, revocation));
        }
        if rows.is_empty() && skipped.is_empty() {
            println!("Folder {} holds nothing this device sees", shown(folder));
        } else {
            print_table(
                &["kind", "name", "id", "access"],
                rows.iter()
                    .map(|r| {
                        vec![
                            r.kind.to_owned(),
                            r.name.clone(),
                            r.doc.to_string(),
                            level(r.access),
                        ]
                    })
                    .collect(),
            );
        }
        for k in &skipped {
            k.print();
        }
    })
}
