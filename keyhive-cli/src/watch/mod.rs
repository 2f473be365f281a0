//! `keyhive sync --watch` (`docs/cli-live.md` LIVE-1..LIVE-6): keeps a session open with each
//! of the home's relays, prints what arrives as it arrives, pushes what other commands on the
//! same home write as soon as they finish, and stops cleanly on SIGINT or SIGTERM.
//!
//! The watcher owns the home's store; other commands borrow it through the home's control
//! socket ([`lease`]). Sessions stay open while the store is lent: what relays send meanwhile
//! waits in memory and is stored when the store comes back, followed by a full sync round that
//! pushes the borrower's writes.

pub mod lease;
mod links;
mod opened;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use keyhive_sync::client::LiveEvent;

use crate::home::Home;
use crate::output::Output;

use links::Links;
use opened::Opened;
use report::Reporter;

/// LIVE-4: how often the watcher runs a full sync round with every relay (picking up
/// subjects newly shared with this device) and retries unreachable relays.
const RESYNC_INTERVAL: Duration = Duration::from_secs(15);
/// LIVE-3: how long a connecting command may take to say what it wants.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// `keyhive sync --watch [--relay URL]...`.
pub fn run(home: Home, out: Output, relays_arg: Vec<String>) -> Result<()> {
    // LIVE-4: without --relay, the watcher follows the home's relay list.
    let follow = relays_arg.is_empty();
    let urls = crate::commands::sync::relay_urls(&home, relays_arg)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(watch(home, out, urls, follow))
}

/// Removes the socket file when the watcher ends.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn watch(home: Home, out: Output, urls: Vec<String>, follow: bool) -> Result<()> {
    // LIVE-6: the handlers are installed before anything else, so an early signal stops cleanly.
    let shutdown = crate::commands::relay::shutdown_signal()?;
    let (stop_tx, mut stop) = watch::channel(false);
    tokio::spawn(async move {
        if shutdown.await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    let (listener, socket) = bind(&home)?;
    let report = Reporter::new(out);
    let mut opened = Opened::open(&home, out)?;
    let mut links = Links::new(home.clone(), report, urls.clone());
    let first = async {
        links.sync_all(&opened).await;
        Ok(())
    };
    let mut next = interruptible(first, &mut stop, &listener).await?;
    report.events(&opened);
    report.line(
        "watching",
        json!({"relays": urls, "socket": socket.0}),
        || {
            format!(
                "watching {} relay(s); other keyhive commands on this home run meanwhile; Ctrl-C stops",
                urls.len()
            )
        },
    );
    let mut tick = tokio::time::interval(RESYNC_INTERVAL);
    tick.tick().await;
    loop {
        // LIVE-4a: a relay that dropped is retried when its backoff ends, not at the next
        // full round (which came 15 s later, while the watcher said "retrying in 1 s").
        let retry = links.next_retry();
        let retry_due = tokio::time::sleep_until(
            retry.map_or_else(tokio::time::Instant::now, tokio::time::Instant::from_std),
        );
        let wake = match next.take() {
            Some(wake) => wake,
            None => tokio::select! {
                _ = retry_due, if retry.is_some() => Wake::Retry,
                _ = stop.changed() => Wake::Stop,
                accepted = listener.accept() => {
                    Wake::Lease(accepted.context("the control socket failed")?.0)
                }
                Some((generation, event)) = links.next_live() => Wake::Live(generation, event),
                _ = tick.tick() => Wake::Tick,
            },
        };
        next = match wake {
            Wake::Stop => break,
            Wake::Lease(conn) => match lend(opened, conn, &home, out, &mut stop).await? {
                Some(back) => {
                    opened = back;
                    if follow {
                        let urls = crate::commands::sync::relay_urls(&home, Vec::new());
                        links.follow(urls.unwrap_or_default());
                    }
                    // LIVE-4: what the borrower wrote is pushed at once.
                    let push = async {
                        links.sync_all(&opened).await;
                        Ok(())
                    };
                    interruptible(push, &mut stop, &listener).await?
                }
                None => return finish(links, None, report, socket),
            },
            Wake::Live(generation, event) => {
                let work = links.live(&mut opened, generation, event);
                interruptible(work, &mut stop, &listener).await?
            }
            Wake::Tick => {
                let round = async {
                    links.sync_all(&opened).await;
                    Ok(())
                };
                interruptible(round, &mut stop, &listener).await?
            }
            Wake::Retry => {
                let reconnect = async {
                    links.connect_due(&opened).await;
                    Ok(())
                };
                interruptible(reconnect, &mut stop, &listener).await?
            }
        };
        report.events(&opened);
    }
    finish(links, Some(opened), report, socket)
}

/// What the watcher acts on next.
enum Wake {
    /// SIGINT or SIGTERM (LIVE-6).
    Stop,
    /// A command asking for the store (LIVE-3).
    Lease(UnixStream),
    /// Something a relay pushed, tagged with its session.
    Live(u64, Option<LiveEvent>),
    /// Time for a full round (LIVE-4).
    Tick,
    /// A dropped relay's backoff ended (LIVE-4a).
    Retry,
}

/// LIVE-3, LIVE-6: runs `work` unless a stop signal or a command asking for the store comes
/// first, which is returned: a sync round waiting for a slow relay delays neither. The round
/// is dropped between two requests, which leaves the store consistent (each store write is
/// one transaction), and the next round takes it up again.
async fn interruptible(
    work: impl std::future::Future<Output = Result<()>>,
    stop: &mut watch::Receiver<bool>,
    listener: &UnixListener,
) -> Result<Option<Wake>> {
    tokio::select! {
        done = work => done.map(|()| None),
        _ = stop.changed() => Ok(Some(Wake::Stop)),
        accepted = listener.accept() => {
            Ok(Some(Wake::Lease(accepted.context("the control socket failed")?.0)))
        }
    }
}

/// LIVE-2: binds the home's control socket, refusing to start beside a running watcher and
/// replacing a stale socket file left by one that was killed.
fn bind(home: &Home) -> Result<(UnixListener, SocketFile)> {
    let path = lease::socket_path(home);
    if lease::watcher_running(home) {
        bail!(
            "a `keyhive sync --watch` already runs on {} (socket {}); one watcher per home",
            home.root().display(),
            path.display()
        );
    }
    home.ensure()?;
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    let socket = SocketFile(path);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&socket.0, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set permissions on {}", socket.0.display()))?;
    Ok((listener, socket))
}

/// LIVE-3: lends the store to the command on `conn` until it closes the connection, then
/// opens it again. A connection that does not ask for a lease in time is closed. `None`: a
/// stop signal came while the store was lent (it stays closed).
async fn lend(
    opened: Opened,
    conn: UnixStream,
    home: &Home,
    out: Output,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<Opened>> {
    let mut conn = BufReader::new(conn);
    let mut request = String::new();
    // A request is one short line: a longer one is cut off (and then not `lease`).
    let mut line = (&mut conn).take(64);
    let asked = tokio::time::timeout(REQUEST_TIMEOUT, line.read_line(&mut request)).await;
    if !matches!(asked, Ok(Ok(_))) || request.trim_end() != lease::REQUEST {
        return Ok(Some(opened));
    }
    opened.close()?;
    let answered = conn
        .get_mut()
        .write_all(format!("{}\n", lease::RELEASED).as_bytes())
        .await;
    if answered.is_ok() {
        // The borrower holds the store until it closes the connection (or dies).
        let mut buf = [0u8; 256];
        loop {
            tokio::select! {
                read = conn.read(&mut buf) => if !matches!(read, Ok(n) if n > 0) { break },
                _ = stop.changed() => return Ok(None),
            }
        }
    }
    Ok(Some(Opened::open(home, out)?))
}

/// LIVE-6: closes every session, saves and closes the store, removes the socket.
fn finish(
    links: Links,
    opened: Option<Opened>,
    report: Reporter,
    socket: SocketFile,
) -> Result<()> {
    links.close();
    if let Some(opened) = opened {
        opened.close()?;
    }
    drop(socket);
    report.line("stopped", json!({}), || {
        "stopped: relay sessions closed, store saved".to_owned()
    });
    Ok(())
}
