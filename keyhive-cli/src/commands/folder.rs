//! `folder push FOLDER DIR` and `folder pull FOLDER DIR`: share a real directory.
//!
//! A folder's documents are those the capability graph places in it (REP-8,
//! `Replica::folder_documents`), never those whose metadata claims it; their names come from
//! peers and are checked before use (REP-9); a pull writes every safe file, skips and reports
//! the rest, and never writes outside the target directory (REP-10).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use keyhive_core::Hash;
use keyhive_core::identity::DocumentId;
use serde_json::json;

use super::content::{latest_file, put_file};
use super::subjects::create_document;
use crate::names::{check_name, shown};
use crate::records::MetaKind;
use crate::session::{Session, short};

fn progress(len: u64, json: bool) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    bar
}

/// Relative paths of every regular file under `dir`, sorted, with `/` separators.
fn files_under(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
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
            } else if kind.is_file() {
                let rel = path.strip_prefix(dir)?;
                let name = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((name, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A document of a folder (REP-8) that may be written as a file: its path relative to the
/// folder's directory and whether its plain name is shared with another document (REP-10).
struct FileEntry {
    path: String,
    doc: DocumentId,
    placement: Hash,
    conflict: bool,
}

/// A document of a folder that is not written, and why (REP-10).
struct Skipped {
    name: Option<String>,
    doc: DocumentId,
    reason: String,
}

impl Skipped {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "name": self.name.as_deref().map(shown),
            "document": self.doc.to_string(),
            "reason": self.reason,
        })
    }

    fn print(&self) {
        let name = self
            .name
            .as_deref()
            .map_or_else(|| "(no name)".to_owned(), shown);
        eprintln!("skipped {name} (document {}): {}", self.doc, self.reason);
    }
}

/// The documents of `folder` (REP-8, from the capability graph) with safe names (REP-9); those
/// whose names are shared get `NAME~ID12` (REP-10). Sorted by path.
fn listing(s: &mut Session, folder: DocumentId) -> Result<(Vec<FileEntry>, Vec<Skipped>)> {
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
            // Sub-folders are not files.
            Some(meta) if meta.kind == MetaKind::Folder => {}
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

/// Pushes every file under `dir` into `folder` (new documents or new versions). A name that
/// several documents of the folder share is left alone and reported (REP-10).
pub fn push(s: &mut Session, folder: &str, dir: &Path) -> Result<()> {
    let folder_id = s.folder(folder)?;
    let files = files_under(dir)?;
    let (entries, _) = listing(s, folder_id)?;
    let mut existing: BTreeMap<&str, DocumentId> = BTreeMap::new();
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
            existing.insert(e.path.as_str(), e.doc);
        }
    }
    let bar = progress(files.len() as u64, s.out.json);
    let mut report = Vec::new();
    let mut skipped = Vec::new();
    for (name, path) in &files {
        bar.set_message(name.clone());
        if let Some(ids) = conflicted.get(name) {
            skipped.push(json!({
                "name": shown(name),
                "documents": ids,
                "reason": format!("{} documents of the folder have this name (REP-10): update one with `keyhive put ID FILE`", ids.len()),
            }));
            bar.inc(1);
            continue;
        }
        if let Err(problem) = check_name(name) {
            skipped.push(
                json!({"name": shown(name), "reason": format!("unsafe name (REP-9): {problem}")}),
            );
            bar.inc(1);
            continue;
        }
        let (doc, created) = match existing.get(name.as_str()) {
            Some(doc) => (*doc, false),
            None => (
                create_document(s, name, MetaKind::Document, Some(&folder_id.to_string()))?,
                true,
            ),
        };
        let op = put_file(s, doc, path)?;
        report.push(json!({"name": name, "document": doc.to_string(), "change": op.to_string(), "created": created}));
        bar.inc(1);
    }
    bar.finish_and_clear();
    s.save()?;
    let count = report.len();
    s.out
        .emit(&json!({"pushed": report, "skipped": skipped}), || {
            println!("Pushed {count} file(s) into folder {}", shown(folder));
            for skip in &skipped {
                eprintln!("skipped {}: {}", skip["name"], skip["reason"]);
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

/// Writes the latest readable version of `doc` at `rel` under `root`, through a fresh temporary
/// file renamed over the target (REP-10). `None` when nothing readable was written yet.
fn write_one(s: &Session, root: &Path, rel: &str, doc: DocumentId) -> Result<Option<(Hash, u64)>> {
    let (dir, target) = prepare_path(root, rel)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".keyhive-")
        .suffix(".partial")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let got = latest_file(s, doc, tmp.as_file_mut())?;
    if got.is_some() {
        tmp.persist(&target)
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    Ok(got)
}

/// REP-10: writes the latest readable version of every document of `folder` (REP-8) with a safe
/// name (REP-9) under `dir`; skips and reports the others, then fails if any was skipped.
pub fn pull(s: &mut Session, folder: &str, dir: &Path) -> Result<()> {
    let folder_id = s.folder(folder)?;
    let (entries, mut skipped) = listing(s, folder_id)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let root = dir
        .canonicalize()
        .with_context(|| format!("cannot open {}", dir.display()))?;
    let bar = progress(entries.len() as u64, s.out.json);
    let mut report = Vec::new();
    let mut conflicts = Vec::new();
    for entry in &entries {
        bar.set_message(entry.path.clone());
        match write_one(s, &root, &entry.path, entry.doc) {
            Ok(Some((op, bytes))) => {
                report.push(json!({
                    "name": entry.path,
                    "document": entry.doc.to_string(),
                    "placed_by": entry.placement.to_string(),
                    "change": op.to_string(),
                    "bytes": bytes,
                }));
                if entry.conflict {
                    conflicts.push(entry.path.clone());
                }
            }
            Ok(None) => {}
            Err(e) => skipped.push(Skipped {
                name: Some(entry.path.clone()),
                doc: entry.doc,
                reason: format!("{e:#}"),
            }),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let count = report.len();
    let value = json!({
        "written": report,
        "conflicts": conflicts,
        "skipped": skipped.iter().map(Skipped::to_json).collect::<Vec<_>>(),
    });
    s.out.emit(&value, || {
        println!(
            "Pulled {count} file(s) from folder {} into {}",
            shown(folder),
            dir.display()
        );
        for path in &conflicts {
            eprintln!(
                "note: several documents of the folder share a name; this one was written as {path}"
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
