//! `doc rm` and `doc rename`: metadata updates that travel encrypted like the first name
//! (REP-50, REP-51); `folder push` writes the same records for deleted and renamed files.

use anyhow::{Result, bail};
use keyhive_core::Hash;
use keyhive_core::identity::DocumentId;
use serde_json::json;

use super::content::explain_write_error;
use crate::names::{check_name, shown};
use crate::session::Session;
use keyhive_sync::record::MetadataUpdate;

/// REP-51: writes a removal record on `document`.
pub fn remove_document(s: &mut Session, document: DocumentId) -> Result<Hash> {
    super::invite::end_before_writing(s, document)?;
    let op = s
        .replica
        .write(document, &MetadataUpdate::Remove.to_record())
        .map_err(|e| explain_write_error(e, s, document))?;
    s.reread_metadata(document)?;
    Ok(op)
}

/// REP-50: writes a rename record on `document`; the name must be safe (REP-9).
pub fn rename_document(s: &mut Session, document: DocumentId, name: &str) -> Result<Hash> {
    if let Err(problem) = check_name(name) {
        bail!(
            "invalid name {}: {problem} (names travel to others and become file paths)",
            shown(name)
        );
    }
    super::invite::end_before_writing(s, document)?;
    let update = MetadataUpdate::Rename {
        name: name.to_owned(),
    };
    let op = s
        .replica
        .write(document, &update.to_record())
        .map_err(|e| explain_write_error(e, s, document))?;
    s.reread_metadata(document)?;
    Ok(op)
}

/// `keyhive doc rm DOC`.
pub fn remove(s: &mut Session, doc: &str) -> Result<()> {
    let document = s.document(doc)?;
    let op = remove_document(s, document)?;
    s.save()?;
    let id = document.to_string();
    s.out.emit(
        &json!({"document": id, "removed": true, "change": op.to_string()}),
        || {
            println!(
                "Removed {} ({id}); members' `folder pull` deletes their unchanged copy",
                shown(doc)
            )
        },
    )
}

/// `keyhive doc rename DOC NEW_NAME`.
pub fn rename(s: &mut Session, doc: &str, new_name: &str) -> Result<()> {
    let document = s.document(doc)?;
    let old = s.name_of(&document.0);
    let folder = s.metas()?.get(&document).and_then(|m| m.folder);
    super::subjects::refuse_taken_name(s, new_name, folder, Some(document))?;
    let op = rename_document(s, document, new_name)?;
    s.save()?;
    let id = document.to_string();
    s.out.emit(
        &json!({"document": id, "old_name": shown(&old), "name": new_name, "change": op.to_string()}),
        || println!("Renamed {} to {new_name} ({id})", shown(&old)),
    )
}
