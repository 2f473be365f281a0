//! `folder pull FOLDER DIR`: writes what changed in a folder under a directory (REP-10), keeps
//! every concurrent version (REP-52, as conflict copies, REP-54), never overwrites a file edited
//! here since the last sync and applies removals and renames (REP-53).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use keyhive_core::Hash;
use keyhive_core::identity::DocumentId;
use serde_json::json;
use tempfile::NamedTempFile;

use super::content::{Side, file_change, sides};
use super::folder::{FileEntry, Skipped, listing, progress, synced_record};
use crate::conflict_names::conflict_path;
use crate::folder_state::{Files, FolderState, Hashing, hash_file};
use crate::names::{check_name, shown};
use crate::session::Session;
use keyhive_sync::record::DocumentHistory;

/// REP-10: creates (or checks) every directory of `rel` under `root`, refusing a symbolic link
/// or a non-directory on the way, so that nothing is written outside `root`. Returns the
/// directory that holds the file and the file's path.
fn prepare_path(root: &Path, rel: &str) -> Result<(PathBuf, PathBuf)> {
    let mut parts: Vec<&str> = rel.split('/').collect();
    let file = parts.pop().context("empty path")?;
    let mut dir = root.to_path_buf();
    for part in parts {
        dir.push(part);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => {
                bail!("{} is a symbolic link", dir.display())
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!("{} is not a directory", dir.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?,
            Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", dir.display())),
        }
    }
    let target = dir.join(file);
    match std::fs::symlink_metadata(&target) {
        Ok(m) if m.file_type().is_symlink() => bail!("{} is a symbolic link", target.display()),
        Ok(m) if m.is_dir() => bail!("{} is a directory", target.display()),
        _ => Ok((dir, target)),
    }
}

/// Decrypts file change `op` of `doc` into a fresh temporary file in `dir` (REP-10); returns it
/// with the hash of its bytes, or `None` if the change is not file content.
fn fetch(
    s: &Session,
    dir: &Path,
    doc: DocumentId,
    op: &Hash,
) -> Result<Option<(NamedTempFile, String)>> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".keyhive-")
        .suffix(".partial")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let mut hashing = Hashing::new(tmp.as_file_mut());
    if file_change(s, doc, op, &mut hashing)?.is_none() {
        return Ok(None);
    }
    let hash = hashing.hex();
    Ok(Some((tmp, hash)))
}

/// What `folder pull` did.
#[derive(Default)]
struct PullReport {
    written: Vec<serde_json::Value>,
    /// Conflict copies written beside a file (REP-54).
    copies: Vec<serde_json::Value>,
    /// Files changed here and not pushed, kept as they are.
    kept: Vec<serde_json::Value>,
    deleted: Vec<String>,
    unchanged: usize,
}

/// Writes a conflict copy of `side` of `entry` beside it, unless it is already there.
fn write_copy(
    s: &Session,
    root: &Path,
    entry: &FileEntry,
    side: &Side,
    reason: &str,
    report: &mut PullReport,
) -> Result<()> {
    let path = conflict_path(&entry.path, &side.author, &side.op);
    if let Err(problem) = check_name(&path) {
        bail!("its conflict copy cannot be named: {problem}");
    }
    let (dir, target) = prepare_path(root, &path)?;
    if target.exists() {
        return Ok(());
    }
    if let Some((tmp, _)) = fetch(s, &dir, entry.doc, &side.op)? {
        tmp.persist(&target)
            .with_context(|| format!("cannot write {}", target.display()))?;
        report.copies.push(json!({
            "name": entry.path,
            "copy": path,
            "document": entry.doc.to_string(),
            "change": side.op.to_string(),
            "author": side.author,
            "reason": reason,
        }));
    }
    Ok(())
}

/// Brings one file up to date (see [`pull`]); returns its new state record, if any.
fn pull_one(
    s: &mut Session,
    root: &Path,
    entry: &FileEntry,
    record: Option<&crate::folder_state::Synced>,
    report: &mut PullReport,
) -> Result<Option<crate::folder_state::Synced>> {
    let history = DocumentHistory::load(&s.replica, entry.doc)?;
    let heads = sides(s, &history);
    let Some(main) = heads.last() else {
        return Ok(None);
    };
    let (dir, target) = prepare_path(root, &entry.path)?;
    let local = hash_file(&target)?;
    let record = record.filter(|r| r.document() == Some(entry.doc));
    let current = record.is_some_and(|r| r.change == main.op.to_string());
    let mut state = record.cloned();
    match (&local, record) {
        // Up to date, or deleted here and not pushed yet: nothing new to write.
        (Some(h), Some(r)) if current && *h == r.hash => report.unchanged += 1,
        (None, Some(_)) if current => {}
        // Edited here since the last sync: kept; what others wrote becomes a conflict copy.
        (Some(h), Some(r)) if *h != r.hash => {
            if current {
                report.unchanged += 1;
            } else {
                write_copy(
                    s,
                    root,
                    entry,
                    main,
                    "changed here and not pushed: the local file was kept",
                    report,
                )?;
                report
                    .kept
                    .push(json!({"name": entry.path, "document": entry.doc.to_string()}));
            }
        }
        _ => {
            let Some((tmp, hash)) = fetch(s, &dir, entry.doc, &main.op)? else {
                return Ok(state);
            };
            match &local {
                // A file this home never synced, with other bytes: someone's own file.
                Some(h) if record.is_none() && *h != hash => {
                    drop(tmp);
                    write_copy(
                        s,
                        root,
                        entry,
                        main,
                        "a different file was already there: it was kept",
                        report,
                    )?;
                    report
                        .kept
                        .push(json!({"name": entry.path, "document": entry.doc.to_string()}));
                }
                _ => {
                    tmp.persist(&target)
                        .with_context(|| format!("cannot write {}", target.display()))?;
                    report.written.push(json!({
                        "name": entry.path,
                        "document": entry.doc.to_string(),
                        "placed_by": entry.placement.to_string(),
                        "change": main.op.to_string(),
                        "bytes": main.bytes,
                    }));
                    state = Some(synced_record(entry.doc, hash, main.op));
                }
            }
        }
    }
    // REP-52: every other concurrent version is written beside the file.
    for side in &heads[..heads.len() - 1] {
        write_copy(s, root, entry, side, "concurrent version (REP-52)", report)?;
    }
    Ok(state)
}

/// REP-53: a file synced at `path` whose document is no longer there (removed, REP-51, or
/// renamed, REP-50) is deleted if unchanged since the last sync, else kept and reported.
fn retire(root: &Path, path: &str, hash: &str, report: &mut PullReport) -> Result<()> {
    let (_, target) = prepare_path(root, path)?;
    match hash_file(&target)? {
        Some(h) if h == hash => {
            std::fs::remove_file(&target)
                .with_context(|| format!("cannot delete {}", target.display()))?;
            report.deleted.push(path.to_owned());
        }
        Some(_) => report.kept.push(json!({"name": path, "reason": "removed or renamed by another member, but changed here: kept"})),
        None => {}
    }
    Ok(())
}

/// REP-10, REP-53: writes every document of `folder` (REP-8) with a safe name (REP-9) under
/// `dir`, as described in the module; skips and reports the others, then fails if any was
/// skipped.
pub fn pull(s: &mut Session, folder: &str, dir: &Path) -> Result<()> {
    let folder_id = s.folder(folder)?;
    let (entries, mut skipped) = listing(s, folder_id)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let root = dir
        .canonicalize()
        .with_context(|| format!("cannot open {}", dir.display()))?;
    let mut state = FolderState::load(&s.home)?;
    let synced = state.files(folder_id, &root).clone();
    let placed: BTreeMap<DocumentId, &str> =
        entries.iter().map(|e| (e.doc, e.path.as_str())).collect();
    let metas = s.metas()?.clone();
    let mut report = PullReport::default();
    let mut next = Files::new();
    // Removals and renames first, so that a new file may take a freed path.
    for (path, record) in &synced {
        let Some(doc) = record.document() else {
            continue;
        };
        let gone = metas.get(&doc).is_some_and(|m| m.removed);
        let moved = placed.get(&doc).is_some_and(|p| p != path);
        if gone || moved {
            if let Err(e) = retire(&root, path, &record.hash, &mut report) {
                skipped.push(Skipped {
                    name: Some(path.clone()),
                    doc,
                    reason: format!("{e:#}"),
                });
            }
        } else {
            next.insert(path.clone(), record.clone());
        }
    }
    let bar = progress(entries.len() as u64, s.out.json);
    for entry in &entries {
        bar.set_message(entry.path.clone());
        bar.inc(1);
        match pull_one(s, &root, entry, synced.get(&entry.path), &mut report) {
            Ok(Some(record)) => {
                next.insert(entry.path.clone(), record);
            }
            Ok(None) => {}
            Err(e) => skipped.push(Skipped {
                name: Some(entry.path.clone()),
                doc: entry.doc,
                reason: format!("{e:#}"),
            }),
        }
    }
    bar.finish_and_clear();
    *state.files(folder_id, &root) = next;
    state.save(&s.home)?;
    let conflicts: Vec<&str> = entries
        .iter()
        .filter(|e| e.conflict)
        .map(|e| e.path.as_str())
        .collect();
    let revoked = s.revoked_read(&folder_id.0);
    let value = json!({
        "revoked": revoked.map(|r| r.to_string()),
        "written": report.written,
        "conflicts": conflicts,
        "conflict_copies": report.copies,
        "kept_local": report.kept,
        "deleted": report.deleted,
        "unchanged": report.unchanged,
        "skipped": skipped.iter().map(Skipped::to_json).collect::<Vec<_>>(),
    });
    s.out.emit(&value, || {
        if let Some(revocation) = &revoked {
            eprintln!("{}", super::content::revoked_note(folder, revocation));
        }
        // Conflict copies and kept local edits are files too: a pull that wrote only those
        // said "Pulled 0 file(s)".
        let mut also = Vec::new();
        if !report.copies.is_empty() {
            also.push(format!("{} conflict copies", report.copies.len()));
        }
        if !report.kept.is_empty() {
            also.push(format!("{} kept with local edits", report.kept.len()));
        }
        also.push(format!("{} deleted", report.deleted.len()));
        also.push(format!("{} unchanged", report.unchanged));
        println!(
            "Pulled {} file(s) from folder {} into {} ({})",
            report.written.len(),
            shown(folder),
            dir.display(),
            also.join(", "),
        );
        for path in &conflicts {
            eprintln!(
                "note: several documents of the folder share a name; this one was written as {path}"
            );
        }
        for copy in &report.copies {
            eprintln!(
                "conflict: {} has another version by {} ({}), written as {}",
                copy["name"].as_str().unwrap_or_default(),
                copy["author"].as_str().unwrap_or_default(),
                copy["reason"].as_str().unwrap_or_default(),
                copy["copy"].as_str().unwrap_or_default(),
            );
        }
        for kept in &report.kept {
            eprintln!(
                "warning: kept {}: changed here since the last sync",
                kept["name"].as_str().unwrap_or_default()
            );
        }
        for skip in &skipped {
            skip.print();
        }
    })?;
    if !skipped.is_empty() {
        bail!(
            "{} document(s) of the folder were skipped (listed above); every other file was written",
            skipped.len()
        );
    }
    Ok(())
}
