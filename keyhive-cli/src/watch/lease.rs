//! The home's control socket (`docs/cli-live.md` LIVE-2..LIVE-4): a running `sync --watch`
//! owns the local store and lends it, one command at a time, to other `keyhive` invocations
//! on the same home.
//!
//! Protocol, one line each way over a Unix domain socket `watch.sock` in the home (mode 0600
//! inside the 0700 home): the command sends `lease`, the watcher closes the store and answers
//! `released`; the command then opens the store itself, and closing the connection (normal
//! exit, error or crash alike) returns the store to the watcher, which reopens it and syncs
//! what the command wrote.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::home::Home;

/// The socket file in the home.
pub const SOCKET_FILE: &str = "watch.sock";
/// LIVE-3: what a command sends.
pub const REQUEST: &str = "lease";
/// LIVE-3: what the watcher answers once the store is closed.
pub const RELEASED: &str = "released";
/// LIVE-3: longest wait for the watcher to release the store (it finishes a sync round
/// first, which a slow relay can stretch).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(60);

/// The socket's path in `home`.
pub fn socket_path(home: &Home) -> PathBuf {
    home.path(SOCKET_FILE)
}

/// The store lent by a running watcher; dropping it (closing the connection) hands the store
/// back (LIVE-3).
#[derive(Debug)]
pub struct Lease {
    _stream: UnixStream,
}

/// Whether a watcher answers on `home`'s socket (a stale socket file left by a killed
/// watcher refuses the connection).
pub fn watcher_running(home: &Home) -> bool {
    UnixStream::connect(socket_path(home)).is_ok()
}

/// LIVE-3: borrows the store from the watcher running on `home`, if any; `None` when no
/// watcher runs (the command opens the store as usual).
pub fn acquire(home: &Home) -> Result<Option<Lease>> {
    let path = socket_path(home);
    let Ok(mut stream) = UnixStream::connect(&path) else {
        return Ok(None);
    };
    let failed = || {
        format!(
            "the `keyhive sync --watch` running on {} did not lend its store (socket {}); stop it with Ctrl-C and retry",
            home.root().display(),
            path.display()
        )
    };
    stream
        .set_read_timeout(Some(RELEASE_TIMEOUT))
        .with_context(failed)?;
    writeln!(stream, "{REQUEST}").with_context(failed)?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .with_context(failed)?;
    if line.trim_end() != RELEASED {
        bail!("{}: it answered {:?}", failed(), line.trim_end());
    }
    Ok(Some(Lease { _stream: stream }))
}
