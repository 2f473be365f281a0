//! `folder push FOLDER DIR` and `folder pull FOLDER DIR`: share a real directory.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use keyhive_core::identity::DocumentId;
use serde_json::json;

use super::content::{latest_file, put_file};
use super::subjects::create_document;
use crate::records::MetaKind;
use crate::session::Session;

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

/// Documents of `folder` by name.
fn documents_in(s: &mut Session, folder: DocumentId) -> Result<BTreeMap<String, DocumentId>> {
    Ok(s.metas()?
        .iter()
        .filter(|(_, m)| m.folder == Some(folder) && m.kind == MetaKind::Document)
        .map(|(d, m)| (m.name.clone(), *d))
        .collect())
}

/// Pushes every file under `dir` into `folder` (new documents or new versions).
pub fn push(s: &mut Session, folder: &str, dir: &Path) -> Result<()> {
    let folder_id = s.folder(folder)?;
    let files = files_under(dir)?;
    let existing = documents_in(s, folder_id)?;
    let bar = progress(files.len() as u64, s.out.json);
    let mut report = Vec::new();
    for (name, path) in &files {
        bar.set_message(name.clone());
        let (doc, created) = match existing.get(name) {
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
    s.out.emit(&report, || {
        println!("Pushed {count} file(s) into folder {folder}")
    })
}

/// Rejects names that would escape `dir` (absolute paths, `..`), since names come from peers.
fn safe_join(dir: &Path, name: &str) -> Result<PathBuf> {
    let rel = Path::new(name);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        bail!("refusing to write {name:?}: the name is not a plain relative path");
    }
    Ok(dir.join(rel))
}

/// Writes the latest readable version of every document in `folder` under `dir`.
pub fn pull(s: &mut Session, folder: &str, dir: &Path) -> Result<()> {
    let folder_id = s.folder(folder)?;
    let docs = documents_in(s, folder_id)?;
    let bar = progress(docs.len() as u64, s.out.json);
    let mut report = Vec::new();
    for (name, doc) in &docs {
        bar.set_message(name.clone());
        let target = safe_join(dir, name)?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let tmp = target.with_extension("keyhive-partial");
        let mut file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        let got = latest_file(s, *doc, &mut file)?;
        drop(file);
        match got {
            Some((op, bytes)) => {
                std::fs::rename(&tmp, &target)?;
                report.push(json!({"name": name, "change": op.to_string(), "bytes": bytes}));
            }
            None => std::fs::remove_file(&tmp)?,
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let count = report.len();
    s.out.emit(&report, || {
        println!(
            "Pulled {count} file(s) from folder {folder} into {}",
            dir.display()
        )
    })
}
