//! SYNC-101: LISTEN on the items channel, so a relay learns within milliseconds that another
//! relay committed items. A hint only: the relay also catches up before every decision and on
//! a timer, so a lost notification or a dropped listening connection delays nothing it decides.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, Config, NoTls};

/// The channel every committed put notifies (in the same transaction, so at commit).
pub(super) const CHANNEL: &str = "keyhive_items";

/// Pause before reconnecting after the listening connection failed.
const RECONNECT: Duration = Duration::from_millis(500);

/// Listens until the store's runtime shuts down (it never returns by itself), bumping `changes` on every notification and on
/// every (re)connection (what was committed while disconnected is caught up then).
pub(super) async fn run(config: Config, changes: watch::Sender<u64>) {
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let sql = format!("LISTEN {CHANNEL}");
                let listen = client.batch_execute(&sql);
                tokio::pin!(listen);
                // The connection must be polled for LISTEN to complete.
                let listening = loop {
                    tokio::select! {
                        r = &mut listen => break r.is_ok(),
                        m = messages.next() => if !matches!(m, Some(Ok(_))) { break false },
                    }
                };
                if listening {
                    changes.send_modify(|n| *n = n.wrapping_add(1));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(_)) => {
                                changes.send_modify(|n| *n = n.wrapping_add(1));
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::debug!(error = %e, "PostgreSQL listening connection lost");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot open the PostgreSQL listening connection")
            }
        }
        tokio::time::sleep(RECONNECT).await;
    }
}
