//! REP-53: what a home last synced between a folder and a directory: per file, the document,
//! the hash of the bytes last pulled or pushed and the change they came from. A file whose
//! bytes hash differently was edited here since (a local edit, never overwritten); a file
//! whose hash is the same was not (it may be replaced or deleted by what others did).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use keyhive_core::identity::DocumentId;
use serde::{Deserialize, Serialize};

use crate::home::Home;

/// File holding every folder's sync state.
pub const STATE_FILE: &str = "folder-state.json";

/// One file as last synced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Synced {
    /// The document holding the file.
    pub doc: String,
    /// BLAKE3 of the file's bytes (hex).
    pub hash: String,
    /// The change those bytes are (hex).
    pub change: String,
}

impl Synced {
    /// The document id, if the record is intact.
    pub fn document(&self) -> Option<DocumentId> {
        self.doc.parse().ok().map(DocumentId)
    }
}

/// Relative path -> what was last synced there, for one (folder, directory) pair.
pub type Files = BTreeMap<String, Synced>;

/// The sync state of every (folder, directory) pair of a home.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FolderState {
    pairs: BTreeMap<String, Files>,
}

fn key(folder: DocumentId, root: &Path) -> String {
    format!("{folder} {}", root.display())
}

impl FolderState {
    /// Loads the state (absent = nothing synced yet).
    pub fn load(home: &Home) -> Result<Self> {
        let Some(bytes) = home.read_optional(STATE_FILE)? else {
            return Ok(Self::default());
        };
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is damaged (delete it: the next pull then treats differing files as local edits)",
                home.path(STATE_FILE).display()
            )
        })
    }

    /// Saves atomically.
    pub fn save(&self, home: &Home) -> Result<()> {
        home.write_atomic(STATE_FILE, &serde_json::to_vec(self)?, false)
    }

    /// The files of `folder` synced with the directory `root` (canonical).
    pub fn files(&mut self, folder: DocumentId, root: &Path) -> &mut Files {
        self.pairs.entry(key(folder, root)).or_default()
    }
}

/// BLAKE3 (hex) of a file's bytes, `None` if there is no regular file at `path`.
pub fn hash_file(path: &Path) -> Result<Option<String>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    }
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Some(hasher.finalize().to_hex().to_string()))
}

/// A writer that hashes what passes through it.
pub struct Hashing<W> {
    /// Where the bytes go.
    pub inner: W,
    hasher: blake3::Hasher,
}

impl<W: std::io::Write> Hashing<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: blake3::Hasher::new(),
        }
    }

    /// The hash (hex) of everything written.
    pub fn hex(&self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }
}

impl<W: std::io::Write> std::io::Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
