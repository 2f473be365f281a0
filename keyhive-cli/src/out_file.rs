//! A file a person names on the command line for the CLI to write (`get --out`, `backup`).
//! A regular file is replaced atomically (a temporary file beside it, then a rename), through
//! a symbolic link to its target; anything else that exists (a device such as `/dev/null`, a
//! FIFO, a socket) is written into, never replaced: before, `get --out /dev/null` run as root
//! renamed a regular file over the device node.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Where bytes for a named output go.
pub enum OutFile {
    /// A regular file (or none yet) at this path, symbolic links resolved: replaced atomically.
    Replace(PathBuf),
    /// An existing file that is not a regular one: opened and written into.
    Into(PathBuf),
}

impl OutFile {
    /// Resolves `path` as named on the command line.
    pub fn resolve(path: &Path) -> Result<OutFile> {
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                bail!("{} is a directory: name a file to write", path.display())
            }
            Ok(meta) if meta.is_file() => Ok(OutFile::Replace(
                fs::canonicalize(path)
                    .with_context(|| format!("cannot resolve {}", path.display()))?,
            )),
            Ok(_) => Ok(OutFile::Into(path.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if fs::symlink_metadata(path).is_ok() {
                    bail!(
                        "{} is a symbolic link to nothing: name a file to write",
                        path.display()
                    );
                }
                Ok(OutFile::Replace(path.to_path_buf()))
            }
            Err(e) => Err(e).with_context(|| format!("cannot write {}", path.display())),
        }
    }

    /// Opens an existing non-regular file for writing.
    pub fn open_into(path: &Path) -> Result<fs::File> {
        fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))
    }
}
