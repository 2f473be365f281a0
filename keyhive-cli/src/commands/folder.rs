//! `folder push FOLDER DIR` (and what `folder pull`, in `folder_pull.rs`, shares with it):
//! share a real directory.
//!
//! A folder's documents are those the capability graph places in it (REP-8,
//! `Replica::folder_documents`), never those whose metadata claims it; their names come from
//! peers and are checked before use (REP-9); a pull writes every safe file, skips and reports
//! the rest, and never writes outside the target directory (REP-10).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use keyhive_core::Hash;
use keyhive_core::identity::DocumentId;
use serde_json::json;

use super::content::put_file;
use super::subjects::create_document;
use super::tree::{remove_document, rename_document};
use crate::conflict_names::is_conflict_copy;
use crate::folder_state::{Files, FolderState, Synced, hash_file};
use crate::names::{check_name, shown};
use crate::session::{Session, short};
use keyhive_sync::record::MetadataKind;

pub(crate) fn progress(len: u64, json: bool) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    bar
}

/// A file under a pushed directory: its shared name (relative, `/`-separated) and its path.
type NamedFile = (String, PathBuf);

/// Why an entry under a pushed directory is not pushed.
const NOT_UTF8: &str =
    "the file name is not valid UTF-8 (shared names are UTF-8, REP-9): rename the file";
const SYMLINK: &str = "a symbolic link (links are not followed): push what it points to";
const NOT_REGULAR: &str = "not a regular file (a pipe, socket or device)";

/// What is under a pushed directory.
#[derive(Default)]
struct Tree {
    /// Every regular file, sorted, named relative with `/` separators, except conflict copies
    /// and temporary files.
    files: Vec<NamedFile>,
    /// Files that cannot be pushed, with the reason: a path that is not UTF-8 (shared names are
    /// UTF-8, REP-9: a lossy conversion would give two such files one name). The push fails.
    unusable: Vec<(PathBuf, &'static str)>,
    /// Entries that are not files, with what they are: symbolic links and pipes, sockets or
    /// devices. They are reported, and the push succeeds: a folder shares files, as a copy
    /// without following links would.
    ignored: Vec<(PathBuf, &'static str)>,
}

fn files_under(dir: &Path) -> Result<Tree> {
    let (mut out, mut unusable, mut ignored) = (Vec::new(), Vec::new(), Vec::new());
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current)
            .with_context(|| format!("cannot list {}", current.display()))?
        {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(path);
            } else if !kind.is_file() {
                let why = if kind.is_symlink() {
                    SYMLINK
                } else {
                    NOT_REGULAR
                };
                ignored.push((path.strip_prefix(dir)?.to_path_buf(), why));
            } else {
                let rel = path.strip_prefix(dir)?;
                let Some(parts) = rel
                    .components()
                    .map(|c| c.as_os_str().to_str())
                    .collect::<Option<Vec<_>>>()
                else {
                    unusable.push((rel.to_path_buf(), NOT_UTF8));
                    continue;
                };
                let name = parts.join("/");
                // Conflict copies (REP-54) and a pull's temporary files stay local.
                let file = name.rsplit('/').next().unwrap_or_default();
                let temporary = file.starts_with(".keyhive-") && file.ends_with(".partial");
                if !temporary && !is_conflict_copy(&name) {
                    out.push((name, path));
                }
            }
        }
    }
    out.sort();
    unusable.sort();
    ignored.sort();
    Ok(Tree {
        files: out,
        unusable,
        ignored,
    })
}

/// A document of a folder (REP-8) that may be written as a file: its path relative to the
/// folder's directory and whether its plain name is shared with another document (REP-10).
pub(crate) struct FileEntry {
    pub(crate) path: String,
    pub(crate) doc: DocumentId,
    pub(crate) placement: Hash,
    pub(crate) conflict: bool,
}

/// A document of a folder that is not written, and why (REP-10).
pub(crate) struct Skipped {
    pub(crate) name: Option<String>,
    pub(crate) doc: DocumentId,
    pub(crate) reason: String,
}

impl Skipped {
    pub(crate) fn to_json(&self) -> serde_json::Value {
        json!({
            "name": self.name.as_deref().map(shown),
            "document": self.doc.to_string(),
            "reason": self.reason,
        })
    }

    pub(crate) fn print(&self) {
        let name = self
            .name
            .as_deref()
            .map_or_else(|| "(no name)".to_owned(), shown);
        eprintln!("skipped {name} (document {}): {}", self.doc, self.reason);
    }
}

/// The documents of `folder` (REP-8, from the capability graph) with safe names (REP-9); those
/// whose names are shared get `NAME~ID12` (REP-10). Sorted by path.
pub(crate) fn listing(
    s: &mut Session,
    folder: DocumentId,
) -> Result<(Vec<FileEntry>, Vec<Skipped>)> {
    let placed: Vec<(DocumentId, Hash)> = s
        .replica
        .folder_documents(folder)
        .into_iter()
        .filter_map(|doc| Some((doc, s.replica.folder_placement(folder, doc)?)))
        .collect();
    let metas = s.metas()?;
    let mut named: BTreeMap<String, Vec<(DocumentId, Hash)>> = BTreeMap::new();
    let mut skipped = Vec::new();
    for (doc, placement) in placed {
        match metas.get(&doc) {
            None => skipped.push(Skipped {
                name: None,
                doc,
                reason: "its name cannot be read here yet (run `keyhive sync`)".into(),
            }),
            // Sub-folders are not files; removed documents are out of the tree (REP-51).
            Some(meta) if meta.kind == MetadataKind::Folder || meta.removed => {}
            Some(meta) => match check_name(&meta.name) {
                Ok(()) => named
                    .entry(meta.name.clone())
                    .or_default()
                    .push((doc, placement)),
                Err(problem) => skipped.push(Skipped {
                    name: Some(meta.name.clone()),
                    doc,
                    reason: format!("unsafe name (REP-9): {problem}"),
                }),
            },
        }
    }
    let mut by_path: BTreeMap<String, Vec<(DocumentId, Hash, bool)>> = BTreeMap::new();
    for (name, docs) in named {
        let conflict = docs.len() > 1;
        for (doc, placement) in docs {
            let path = if conflict {
                format!("{name}~{}", short(&doc.0))
            } else {
                name.clone()
            };
            by_path
                .entry(path)
                .or_default()
                .push((doc, placement, conflict));
        }
    }
    let mut files = Vec::new();
    for (path, docs) in by_path {
        let clash = docs.len() > 1;
        for (doc, placement, conflict) in docs {
            // A `NAME~ID12` may equal another document's plain name, or be too long.
            let problem = if clash {
                Err("another document of the folder has the same name".to_owned())
            } else {
                check_name(&path).map_err(|p| format!("unsafe name (REP-9): {p}"))
            };
            match problem {
                Ok(()) => files.push(FileEntry {
                    path: path.clone(),
                    doc,
                    placement,
                    conflict,
                }),
                Err(reason) => skipped.push(Skipped {
                    name: Some(path.clone()),
                    doc,
                    reason,
                }),
            }
        }
    }
    Ok((files, skipped))
}

/// What `folder push` did with each file.
#[derive(Default)]
struct PushReport {
    pushed: Vec<serde_json::Value>,
    renamed: Vec<serde_json::Value>,
    removed: Vec<serde_json::Value>,
    unchanged: usize,
    /// Unchanged files another member removed or moved: `folder pull` applies that.
    pending: Vec<serde_json::Value>,
    skipped: Vec<serde_json::Value>,
}

/// REP-53: pushes what changed under `dir` into `folder` since this home last synced them:
/// a new version for each edited file (by content hash; unchanged files are neither
/// re-encrypted nor re-sent), a new document for each new file, a rename record (REP-50) for a
/// file that moved (same content, the old path gone), and a removal record (REP-51) for a file
/// deleted here. A name that several documents of the folder share is left alone and reported
/// (REP-10).
pub fn push(s: &mut Session, folder: &str, dir: &Path) -> Result<()> {
    let folder_id = s.folder(folder)?;
    let root = dir
        .canonicalize()
        .with_context(|| format!("cannot open {}", dir.display()))?;
    let Tree {
        files,
        unusable,
        ignored,
    } = files_under(&root)?;
    let (entries, _) = listing(s, folder_id)?;
    let mut existing: BTreeMap<String, DocumentId> = BTreeMap::new();
    let mut conflicted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &entries {
        if e.conflict {
            // `NAME~ID12`: the plain name is everything before the last `~`.
            let plain = e.path.rsplit_once('~').map_or(e.path.as_str(), |(n, _)| n);
            conflicted
                .entry(plain.to_owned())
                .or_default()
                .push(e.doc.to_string());
        } else {
            existing.insert(e.path.clone(), e.doc);
        }
    }
    let mut state = FolderState::load(&s.home)?;
    let synced = state.files(folder_id, &root).clone();
    let on_disk: BTreeSet<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    // Files synced before, gone from the disk, whose document is still at that path: deleted
    // here, or moved (found again below by their content hash).
    let mut missing: BTreeMap<String, Vec<(String, DocumentId)>> = BTreeMap::new();
    for (path, record) in &synced {
        if let Some(doc) = record.document()
            && !on_disk.contains(path.as_str())
            && existing.get(path) == Some(&doc)
        {
            missing
                .entry(record.hash.clone())
                .or_default()
                .push((path.clone(), doc));
        }
    }
    let mut next: Files = Files::new();
    let bar = progress(files.len() as u64, s.out.json);
    let mut report = PushReport::default();
    for (path, reason) in &unusable {
        report
            .skipped
            .push(json!({"name": path.to_string_lossy(), "reason": reason}));
    }
    for (name, path) in &files {
        bar.set_message(name.clone());
        bar.inc(1);
        if let Some(ids) = conflicted.get(name) {
            report.skipped.push(json!({
                "name": shown(name),
                "documents": ids,
                "reason": format!("{} documents of the folder have this name (REP-10): update one with `keyhive put ID FILE`", ids.len()),
            }));
            continue;
        }
        if let Err(problem) = check_name(name) {
            report.skipped.push(
                json!({"name": shown(name), "reason": format!("unsafe name (REP-9): {problem}")}),
            );
            continue;
        }
        let Some(hash) = hash_file(path)? else {
            continue;
        };
        let record = synced.get(name);
        match existing.get(name) {
            Some(doc) => {
                if let Some(r) = record.filter(|r| r.document() == Some(*doc) && r.hash == hash) {
                    report.unchanged += 1;
                    next.insert(name.clone(), r.clone());
                    continue;
                }
                let (op, _) = put_file(s, *doc, path)?;
                report.pushed.push(json!({"name": name, "document": doc.to_string(), "change": op.to_string(), "created": false}));
                next.insert(name.clone(), synced_record(*doc, hash, op));
            }
            None => {
                if let Some(r) = record.filter(|r| r.hash == hash) {
                    // Unchanged here since the last sync, and no longer at this path in the
                    // folder: it was removed or renamed (by `doc rename`/`doc rm` here, or by
                    // another member); `folder pull` applies that. Its record stays, so that
                    // the next push does not take the file for a new one.
                    report
                        .pending
                        .push(json!({"name": shown(name), "document": r.doc}));
                    next.insert(name.clone(), r.clone());
                    continue;
                }
                let moved = missing.get_mut(&hash).and_then(Vec::pop);
                if let Some((old, doc)) = moved {
                    let op = rename_document(s, doc, name)?;
                    report.renamed.push(json!({"from": old, "to": name, "document": doc.to_string(), "change": op.to_string()}));
                    if let Some(r) = synced.get(&old) {
                        next.insert(name.clone(), r.clone());
                    }
                    continue;
                }
                let doc = create_document(
                    s,
                    name,
                    MetadataKind::Document,
                    Some(&folder_id.to_string()),
                )?;
                let (op, _) = put_file(s, doc, path)?;
                report.pushed.push(json!({"name": name, "document": doc.to_string(), "change": op.to_string(), "created": true}));
                next.insert(name.clone(), synced_record(doc, hash, op));
            }
        }
    }
    bar.finish_and_clear();
    for (path, doc) in missing.into_values().flatten() {
        let op = remove_document(s, doc)?;
        report
            .removed
            .push(json!({"name": path, "document": doc.to_string(), "change": op.to_string()}));
    }
    *state.files(folder_id, &root) = next;
    s.save()?;
    state.save(&s.home)?;
    let PushReport {
        pushed,
        renamed,
        removed,
        unchanged,
        pending,
        skipped,
    } = report;
    let ignored: Vec<_> = ignored
        .iter()
        .map(|(path, what)| json!({"name": path.to_string_lossy(), "reason": what}))
        .collect();
    let value = json!({"pushed": pushed, "renamed": renamed, "removed": removed, "unchanged": unchanged, "pending_pull": pending, "skipped": skipped, "ignored": ignored});
    s.out.emit(&value, || {
        println!(
            "Pushed {} file(s) into folder {} ({} renamed, {} removed, {unchanged} unchanged)",
            pushed.len(),
            shown(folder),
            renamed.len(),
            removed.len(),
        );
        for p in &pending {
            eprintln!(
                "note: {} was removed or renamed in the folder since it was synced here; `keyhive folder pull` applies that to this directory",
                p["name"]
            );
        }
        for skip in &skipped {
            let reason = skip["reason"].as_str().unwrap_or_default();
            eprintln!("skipped {}: {reason}", skip["name"]);
        }
        for entry in &ignored {
            let what = entry["reason"].as_str().unwrap_or_default();
            eprintln!("not pushed {}: {what}", entry["name"]);
        }
    })?;
    if !skipped.is_empty() {
        bail!(
            "{} file(s) were not pushed (listed above); every other file was",
            skipped.len()
        );
    }
    Ok(())
}

/// The state record of a file just synced.
pub(crate) fn synced_record(doc: DocumentId, hash: String, op: Hash) -> Synced {
    Synced {
        doc: doc.to_string(),
        hash,
        change: op.to_string(),
    }
}
