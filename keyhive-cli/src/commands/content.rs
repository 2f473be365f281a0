//! `put`, `get`, `log`.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use keyhive_core::identity::DocumentId;
use keyhive_sync::replica::{ChangeStatus, ReplicaError};
use serde_json::json;

use crate::names::shown;
use crate::output::print_table;
use crate::records::{FILE_TAG, FileBody};
use crate::session::Session;

/// Encrypts a file as a new change of `doc`; returns the change id.
pub fn put_file(s: &mut Session, doc: DocumentId, path: &Path) -> Result<keyhive_core::Hash> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let reader = std::io::Cursor::new([FILE_TAG]).chain(BufReader::new(file));
    let op = s
        .replica
        .write_stream(doc, reader)
        .map_err(|e| explain_write_error(e, doc))?;
    Ok(op)
}

fn explain_write_error(e: ReplicaError, doc: DocumentId) -> anyhow::Error {
    match e {
        // REP-31: one line naming the revocation (not chained to the error's own message).
        ReplicaError::Revoked { revocation, .. } => anyhow::anyhow!(
            "cannot write to {doc}: this device's access was revoked (revocation {revocation}); ask an admin to share it again"
        ),
        ReplicaError::Build(b) => anyhow::anyhow!(
            "cannot write to {doc}: {b} (ask an admin for `--access write`, or it was revoked)"
        ),
        other => other.into(),
    }
}

/// `keyhive put DOC FILE`.
pub fn put(s: &mut Session, doc: &str, path: &Path) -> Result<()> {
    let document = s.document(doc)?;
    let op = put_file(s, document, path)?;
    s.save()?;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    s.out.emit(
        &json!({"change": op.to_string(), "document": document.to_string(), "bytes": size}),
        || println!("Encrypted {} ({size} bytes) as change {op}", path.display()),
    )
}

/// Decrypts the latest file change of `doc` into `out`; returns (change, bytes).
pub fn latest_file(
    s: &Session,
    document: DocumentId,
    out: &mut dyn Write,
) -> Result<Option<(keyhive_core::Hash, u64)>> {
    let changes = s.replica.changes(document)?;
    for change in changes.iter().rev() {
        if change.status != ChangeStatus::Valid || change.length.is_none() {
            continue;
        }
        // Only file changes are candidates; metadata changes are tiny and checked first.
        if change.length.is_some_and(|l| l <= 4096) {
            let mut bytes = Vec::new();
            s.replica.read_change(document, &change.op, &mut bytes)?;
            if bytes.first() != Some(&FILE_TAG) {
                continue;
            }
            out.write_all(&bytes[1..])?;
            return Ok(Some((change.op, bytes.len() as u64 - 1)));
        }
        let mut body = FileBody::new(&mut *out);
        match s.replica.read_change(document, &change.op, &mut body) {
            Ok(n) => return Ok(Some((change.op, n.saturating_sub(1)))),
            Err(_) if body.not_a_file => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// `keyhive get DOC [--out FILE]`.
pub fn get(s: &mut Session, doc: &str, out_path: Option<&Path>) -> Result<()> {
    let document = s.document(doc)?;
    let result = match out_path {
        Some(path) => {
            let tmp = path.with_extension("keyhive-partial");
            let mut file =
                File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
            let result = latest_file(s, document, &mut file);
            drop(file);
            match &result {
                Ok(Some(_)) => std::fs::rename(&tmp, path)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                _ => {
                    let _ = std::fs::remove_file(&tmp);
                }
            }
            result?
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            latest_file(s, document, &mut lock)?
        }
    };
    match result {
        Some((op, n)) => {
            if let Some(path) = out_path {
                s.out.emit(
                    &json!({"change": op.to_string(), "bytes": n, "out": path}),
                    || {
                        eprintln!(
                            "Decrypted change {} ({n} bytes) to {}",
                            short_hash(&op),
                            path.display()
                        )
                    },
                )?;
            }
            Ok(())
        }
        None => bail!(
            "no change of {doc} that this device can read: it has no read access (or it was revoked), or nothing was written yet; try `keyhive sync`"
        ),
    }
}

fn short_hash(h: &keyhive_core::Hash) -> String {
    h.to_string()[..12].to_owned()
}

/// `keyhive log DOC`.
pub fn log(s: &mut Session, doc: &str) -> Result<()> {
    let document = s.document(doc)?;
    let changes = s.replica.changes(document)?;
    let mut rows = Vec::new();
    for c in &changes {
        // The document's metadata record (its name, REP-9) is bookkeeping, not a change
        // anyone made to the content: it is not listed.
        if c.length.is_some_and(|l| l <= 4096) && is_metadata(s, document, &c.op) {
            continue;
        }
        let author = shown(&s.name_of(&c.author.0));
        let (valid, reason) = match &c.status {
            ChangeStatus::Valid => ("valid", String::new()),
            ChangeStatus::Invalid(r) => ("INVALID", r.clone()),
        };
        let parents: Vec<String> = match s.replica.checker().op(&c.op) {
            Some(keyhive_core::capability::AnyVerified::Content(op)) => {
                op.predecessors.iter().map(ToString::to_string).collect()
            }
            _ => Vec::new(),
        };
        // File changes carry one tag byte before the file's bytes.
        let bytes = c.length.map(|l| l.saturating_sub(1));
        rows.push((c.op.to_string(), author, valid, reason, bytes, parents));
    }
    let json_rows: Vec<_> = rows
        .iter()
        .map(|(op, a, v, r, l, p)| json!({"change": op, "author": a, "validity": v, "reason": r, "readable": l.is_some(), "bytes": l, "parents": p}))
        .collect();
    s.out.emit(&json_rows, || {
        print_table(
            &["change", "author", "validity", "bytes", "parents"],
            rows.iter()
                .map(|(op, a, v, r, l, p)| {
                    let v = if r.is_empty() {
                        v.to_string()
                    } else {
                        format!("{v}: {r}")
                    };
                    let l = l.map_or("(cannot decrypt)".to_owned(), |n| n.to_string());
                    let p = p.iter().map(|h| &h[..12]).collect::<Vec<_>>().join(" ");
                    vec![op[..12].to_owned(), a.clone(), v, l, p]
                })
                .collect(),
        )
    })
}

/// Whether a (small, readable) change is the document's metadata record.
fn is_metadata(s: &Session, document: DocumentId, change: &keyhive_core::Hash) -> bool {
    let mut bytes = Vec::new();
    s.replica.read_change(document, change, &mut bytes).is_ok()
        && crate::records::decode_meta(&bytes).is_some()
}
