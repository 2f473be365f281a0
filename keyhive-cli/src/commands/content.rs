//! `put`, `get` (with conflicts, REP-52), `log`.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use keyhive_core::capability::{Access, AgentId, Reason, Refusal};
use keyhive_core::identity::DocumentId;
use keyhive_sync::replica::{ChangeStatus, ReplicaError};
use serde_json::json;

use crate::names::shown;
use crate::out_file::OutFile;
use crate::output::print_table;
use crate::session::Session;
use keyhive_sync::record::{ChangeRecord, DocumentHistory, FILE_TAG, FileContent, RecordError};

/// Encrypts a file as a new change of `doc`; returns the change id.
/// Returns the change and the number of file bytes it holds (what was read, even if the file
/// grew or shrank meanwhile).
pub fn put_file(
    s: &mut Session,
    doc: DocumentId,
    path: &Path,
) -> Result<(keyhive_core::Hash, u64)> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    // INV-11, INV-12: grants and invitations that ended are revoked before the write is
    // sealed, and a write that would still reach an ended grantee is refused.
    super::invite::end_before_writing(s, doc)?;
    let mut reader = Counted {
        inner: BufReader::new(file),
        read: 0,
    };
    let op = s
        .replica
        .write_stream(doc, std::io::Cursor::new([FILE_TAG]).chain(&mut reader))
        .map_err(|e| explain_write_error(e, s, doc))?;
    Ok((op, reader.read))
}

/// A reader that counts the bytes it hands out.
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// A write refused by the replica, in words that say what to do.
pub fn explain_write_error(e: ReplicaError, s: &mut Session, doc: DocumentId) -> anyhow::Error {
    let doc = shown(&s.name_of(&doc.0));
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

/// Why `get` found no file content to write, in the words that say what to do.
fn nothing_to_get(s: &mut Session, document: DocumentId, doc: &str) -> anyhow::Error {
    let level = s
        .replica
        .reachable()
        .into_iter()
        .find_map(|(subject, access, _)| (subject == document.0).then_some(access));
    if level.is_none_or(|a| a < Access::Read) {
        return anyhow::anyhow!(
            "this device cannot read {doc}: it holds no read access to it (`keyhive why {doc} me` says why)"
        );
    }
    let sealed = s.replica.changes(document).map_or(0, |changes| {
        changes.iter().filter(|c| c.length.is_none()).count()
    });
    if sealed > 0 {
        anyhow::anyhow!(
            "{sealed} change(s) of {doc} cannot be decrypted here yet (their keys have not arrived): try `keyhive sync`"
        )
    } else {
        anyhow::anyhow!("nothing was written to {doc} yet (`keyhive put {doc} FILE` writes it)")
    }
}

/// `keyhive put DOC FILE`.
pub fn put(s: &mut Session, doc: &str, path: &Path) -> Result<()> {
    let document = s.file_document(doc)?;
    let (op, size) = put_file(s, document, path)?;
    s.save()?;
    s.out.emit(
        &json!({"change": op.to_string(), "document": document.to_string(), "bytes": size}),
        || println!("Encrypted {} ({size} bytes) as change {op}", path.display()),
    )
}

/// Decrypts file change `op` of `document` into `out` without its tag byte; `None` (nothing
/// written) when the change is not file content.
pub fn file_change(
    s: &Session,
    document: DocumentId,
    op: &keyhive_core::Hash,
    out: &mut dyn Write,
) -> Result<Option<u64>> {
    match s
        .replica
        .read_change(document, op, FileContent::new(&mut *out))
    {
        Ok(n) => Ok(Some(n.saturating_sub(1))),
        Err(ReplicaError::Io(e))
            if matches!(
                e.get_ref().and_then(|e| e.downcast_ref::<RecordError>()),
                Some(RecordError::NotAFile(_))
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Decrypts the latest file version of `doc` (the last of its file heads, REP-52) into `out`;
/// returns (change, bytes).
pub fn latest_file(
    s: &Session,
    document: DocumentId,
    out: &mut dyn Write,
) -> Result<Option<(keyhive_core::Hash, u64)>> {
    let history = DocumentHistory::load(&s.replica, document)?;
    for head in history.file_heads().iter().rev() {
        if let Some(n) = file_change(s, document, &head.op, out)? {
            return Ok(Some((head.op, n)));
        }
    }
    Ok(None)
}

/// A file head of a document as `get` and `folder pull` describe it.
pub struct Side {
    /// The change id.
    pub op: keyhive_core::Hash,
    /// Its author's name (REP-9: shown form).
    pub author: String,
    /// File bytes.
    pub bytes: u64,
}

impl Side {
    /// JSON form.
    pub fn to_json(&self) -> serde_json::Value {
        json!({"change": self.op.to_string(), "author": self.author, "bytes": self.bytes})
    }
}

/// REP-52: the file heads of `document`, in causal order (the last is the default version).
pub fn sides(s: &mut Session, history: &DocumentHistory) -> Vec<Side> {
    history
        .file_heads()
        .into_iter()
        .map(|c| Side {
            op: c.op,
            author: shown(&s.name_of(&c.author.0)),
            bytes: c.length.saturating_sub(1),
        })
        .collect()
}

/// The file change of `history` whose id starts with `prefix` (4 or more hex characters).
fn pick_change(history: &DocumentHistory, doc: &str, prefix: &str) -> Result<keyhive_core::Hash> {
    if !(crate::lookup::is_prefix(prefix) || prefix.len() == 64) {
        bail!(
            "{prefix:?} is not a change id: give 4 to 64 hex characters, as `keyhive log {doc}` prints"
        );
    }
    let lower = prefix.to_ascii_lowercase();
    let found: Vec<keyhive_core::Hash> = history
        .changes
        .iter()
        .filter(|c| c.record == ChangeRecord::File && c.op.to_string().starts_with(&lower))
        .map(|c| c.op)
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => bail!(
            "no readable file change of {doc} starts with {prefix}: `keyhive log {doc}` lists them"
        ),
        many => bail!(
            "the change prefix {prefix:?} is ambiguous ({} matches); type more of it",
            many.len()
        ),
    }
}

/// `keyhive get DOC [--out FILE] [--change ID]`. When the document has several file heads
/// (concurrent versions, REP-52) it says so on standard error, naming each side and how to
/// fetch it.
pub fn get(
    s: &mut Session,
    doc: &str,
    out_path: Option<&Path>,
    change: Option<&str>,
) -> Result<()> {
    let document = s.file_document(doc)?;
    let history = DocumentHistory::load(&s.replica, document)?;
    let heads = sides(s, &history);
    let chosen = match change {
        Some(prefix) => Some(pick_change(&history, doc, prefix)?),
        None => heads.last().map(|h| h.op),
    };
    let Some(chosen) = chosen else {
        return Err(nothing_to_get(s, document, doc));
    };
    let written = match out_path.map(OutFile::resolve).transpose()? {
        Some(OutFile::Into(path)) => {
            file_change(s, document, &chosen, &mut OutFile::open_into(&path)?)?
        }
        Some(OutFile::Replace(path)) => {
            let tmp = path.with_extension("keyhive-partial");
            let mut file =
                File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
            let result = file_change(s, document, &chosen, &mut file);
            drop(file);
            match &result {
                Ok(Some(_)) => std::fs::rename(&tmp, &path)
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
            file_change(s, document, &chosen, &mut lock)?
        }
    };
    let Some(n) = written else {
        bail!(
            "change {} of {doc} is not file content",
            short_hash(&chosen)
        )
    };
    let conflict = heads.len() > 1;
    if conflict && !s.out.json {
        let me = AgentId::Individual(s.replica.device().id());
        let may_write = s.replica.checker().can(me, Access::Write, &document.0);
        report_conflict(doc, &heads, &chosen, may_write);
    }
    let revoked = s.revoked_read(&document.0);
    if let Some(revocation) = revoked.filter(|_| !s.out.json) {
        eprintln!("{}", revoked_note(doc, &revocation));
    }
    if let Some(path) = out_path {
        s.out.emit(
            &json!({
                "change": chosen.to_string(),
                "bytes": n,
                "out": path,
                "conflict": conflict,
                "heads": heads.iter().map(Side::to_json).collect::<Vec<_>>(),
                "revoked": revoked.map(|r| r.to_string()),
            }),
            || {
                eprintln!(
                    "Decrypted change {} ({n} bytes) to {}",
                    short_hash(&chosen),
                    path.display()
                )
            },
        )?;
    } else if (conflict || revoked.is_some()) && s.out.json {
        // Standard output holds the file: the conflict goes to standard error, as JSON.
        let value = json!({
            "conflict": conflict,
            "change": chosen.to_string(),
            "heads": heads.iter().map(Side::to_json).collect::<Vec<_>>(),
            "revoked": revoked.map(|r| r.to_string()),
        });
        eprintln!("{value}");
    }
    Ok(())
}

/// REP-32: the line that tells a person reading `what` that this device was removed from it.
pub(crate) fn revoked_note(what: &str, revocation: &keyhive_core::Hash) -> String {
    format!(
        "note: this device's access to {} was revoked (revocation {}): this is what it received before, and it receives nothing written since",
        shown(what),
        short_hash(revocation)
    )
}

/// Tells (on standard error) that `doc` has several concurrent versions, which one was
/// written, how to fetch each of the others, and, to a device that may write it, how to
/// resolve the conflict (a reader is told a writer resolves it).
fn report_conflict(doc: &str, heads: &[Side], chosen: &keyhive_core::Hash, may_write: bool) {
    eprintln!(
        "conflict: {doc} has {} concurrent versions (written at the same time by different devices); all are kept:",
        heads.len()
    );
    for side in heads {
        let this = if side.op == *chosen {
            " (this one)"
        } else {
            ""
        };
        eprintln!(
            "  change {} by {} ({} bytes){this}: keyhive get {doc} --change {}",
            short_hash(&side.op),
            side.author,
            side.bytes,
            short_hash(&side.op),
        );
    }
    if may_write {
        eprintln!("  to resolve it, `keyhive put {doc} FILE` with the merged version");
    } else {
        eprintln!("  a writer of {doc} resolves it by writing the merged version");
    }
}

/// A refusal in a table cell: what happened in words, with short ids (`--json` has the whole
/// refusal).
fn short_refusal(r: &Refusal) -> String {
    match &r.reason {
        Reason::Excluded { revocation, .. } => format!(
            "its author was revoked concurrently ({}, revocation {})",
            r.rule,
            short_hash(revocation)
        ),
        Reason::InsufficientAccess { held, needed } => {
            format!(
                "its author held {held}, a change needs {needed} ({})",
                r.rule
            )
        }
        other => format!("{} ({})", other, r.rule),
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
        if c.length.is_some_and(|l| l <= 4097)
            && crate::session::is_metadata(&s.replica, document, &c.op)
        {
            continue;
        }
        let author = shown(&s.name_of(&c.author.0));
        let (valid, reason, short) = match &c.status {
            ChangeStatus::Valid => ("valid", String::new(), String::new()),
            ChangeStatus::Invalid(r) => ("INVALID", r.to_string(), short_refusal(r)),
        };
        let parents: Vec<String> = match s.replica.checker().op(&c.op) {
            Some(keyhive_core::capability::AnyVerified::Content(op)) => {
                op.predecessors.iter().map(ToString::to_string).collect()
            }
            _ => Vec::new(),
        };
        // File changes carry one tag byte before the file's bytes.
        let bytes = c.length.map(|l| l.saturating_sub(1));
        rows.push((
            c.op.to_string(),
            author,
            valid,
            (reason, short),
            bytes,
            parents,
        ));
    }
    let json_rows: Vec<_> = rows
        .iter()
        .map(|(op, a, v, (r, _), l, p)| json!({"change": op, "author": a, "validity": v, "reason": r, "readable": l.is_some(), "bytes": l, "parents": p}))
        .collect();
    s.out.emit(&json_rows, || {
        print_table(
            &["change", "author", "validity", "bytes", "parents"],
            rows.iter()
                .map(|(op, a, v, (_, short), l, p)| {
                    let v = if short.is_empty() {
                        v.to_string()
                    } else {
                        format!("{v}: {short}")
                    };
                    let l = l.map_or("(cannot decrypt)".to_owned(), |n| n.to_string());
                    let p = p.iter().map(|h| &h[..12]).collect::<Vec<_>>().join(" ");
                    vec![op[..12].to_owned(), a.clone(), v, l, p]
                })
                .collect(),
        )
    })
}
