//! The device's state directory (`--home`, `KEYHIVE_HOME`, or the platform data dir) and
//! atomic, permission-aware file writes.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// One device's state directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// Resolves the home: explicit flag or env (clap merges both), else the platform data dir.
    pub fn resolve(explicit: Option<PathBuf>) -> Result<Self> {
        let root = match explicit {
            Some(path) => path,
            None => dirs::data_dir()
                .map(|d| d.join("keyhive"))
                .context("no platform data directory; pass --home DIR or set KEYHIVE_HOME")?,
        };
        Ok(Home { root })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside the home.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Creates the directory (mode 0700 on Unix) if needed.
    pub fn ensure(&self) -> Result<()> {
        fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create {}", self.root.display()))?;
        restrict_dir(&self.root)
    }

    /// Writes `bytes` to `name` atomically: a temp file in the same directory, fsync, rename.
    /// With `secret`, the file is created with mode 0600 before any byte is written.
    pub fn write_atomic(&self, name: &str, bytes: &[u8], secret: bool) -> Result<()> {
        self.ensure()?;
        let target = self.path(name);
        write_atomic(&target, bytes, secret)
    }

    /// Reads a file, `None` if it does not exist.
    pub fn read_optional(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match fs::read(self.path(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.path(name).display())),
        }
    }
}

/// Atomically replaces `target` with `bytes` (temp file + fsync + rename + directory fsync).
pub fn write_atomic(target: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    let Some(dir) = target.parent() else {
        bail!("{} has no parent directory", target.display());
    };
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("state"),
        std::process::id()
    ));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(file);
    fs::rename(&tmp, target).with_context(|| format!("cannot replace {}", target.display()))?;
    if let Ok(d) = fs::File::open(dir) {
        // Persist the rename itself; failure here only weakens durability, not correctness.
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(unix)]
fn restrict_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot set permissions on {}", path.display()))
}

#[cfg(not(unix))]
fn restrict_dir(_: &Path) -> Result<()> {
    Ok(())
}
