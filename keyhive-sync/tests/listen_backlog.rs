//! The listen backlog under a burst of simultaneous connects (e.g. every client reconnecting
//! after a relay restart): `tokio::net::TcpListener::bind` listens with a backlog of 1,024;
//! [`keyhive_sync::relay::bind`] with [`keyhive_sync::relay::LISTEN_BACKLOG`] (4,096, the
//! kernel caps it at `net.core.somaxconn`). A connect that finds the accept queue full is not
//! refused: Linux drops its SYN and the client retransmits it after about 1 s (then 3 s, 7 s),
//! so the cost is latency. Measured, not asserted as a time limit:
//! `cargo test -p keyhive-sync --test listen_backlog -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const CONNECTS: usize = 3_000;

/// A burst of `CONNECTS` simultaneous connects; the accept loop starts 200 ms late (as a busy
/// relay's does while the burst arrives). Returns how many connects failed, how many the
/// server accepted more than 0.9 s after the burst began (their handshake waited for a
/// retransmission), the median and the last accept time.
async fn burst(listener: TcpListener) -> (usize, usize, Duration, Duration) {
    let addr = listener.local_addr().unwrap();
    let began = Instant::now();
    let acceptor = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut held = Vec::new();
        let mut times = Vec::new();
        while times.len() < CONNECTS {
            match tokio::time::timeout(Duration::from_secs(20), listener.accept()).await {
                Ok(Ok((stream, _))) => {
                    times.push(began.elapsed());
                    held.push(stream);
                }
                _ => break,
            }
        }
        times
    });
    let tasks: Vec<_> = (0..CONNECTS)
        .map(|_| {
            tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(30), async move {
                    let mut stream = TcpStream::connect(addr).await?;
                    // As a WebSocket client does: the request follows the handshake at once
                    // (with SYN cookies, its segment completes a handshake the server dropped).
                    stream.write_all(b"GET /sync HTTP/1.1\r\n\r\n").await?;
                    Ok::<_, std::io::Error>(stream)
                })
                .await
            })
        })
        .collect();
    let mut failed = 0;
    let mut streams = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(Ok(stream)) => streams.push(stream),
            _ => failed += 1,
        }
    }
    let times = acceptor.await.unwrap();
    assert_eq!(
        times.len() + failed,
        CONNECTS,
        "every connect is accepted or failed"
    );
    let slow = times
        .iter()
        .filter(|t| **t > Duration::from_millis(900))
        .count();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    let last = times.last().copied().unwrap_or_default();
    (failed, slow, median, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with -- --ignored --nocapture"]
async fn simultaneous_connects_with_each_backlog() {
    let tokio_default = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (failed, slow, median, worst) = burst(tokio_default).await;
    println!(
        "backlog 1024 (TcpListener::bind): {CONNECTS} simultaneous connects: {failed} failed, \
         {slow} accepted after 0.9 s (handshake retransmitted), median {median:?}, last {worst:?}"
    );
    let relay = keyhive_sync::relay::bind("127.0.0.1:0").await.unwrap();
    let (failed, slow, median, worst) = burst(relay).await;
    println!(
        "backlog {} (relay::bind): {CONNECTS} simultaneous connects: {failed} failed, {slow} \
         accepted after 0.9 s, median {median:?}, last {worst:?}",
        keyhive_sync::relay::LISTEN_BACKLOG
    );
}

/// SYNC-109: `relay::bind` resolves and binds like `TcpListener::bind` (a relay serves on it),
/// and an address that does not parse or resolve is an error, not a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_bind_serves_and_refuses_bad_addresses() {
    let listener = keyhive_sync::relay::bind("localhost:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(addr.ip().is_loopback());
    let (accepted, connected) = tokio::join!(listener.accept(), TcpStream::connect(addr));
    assert_eq!(
        accepted.unwrap().0.peer_addr().unwrap(),
        connected.unwrap().local_addr().unwrap()
    );
    assert!(keyhive_sync::relay::bind("not an address").await.is_err());
    let taken = keyhive_sync::relay::bind(&addr.to_string()).await;
    assert!(taken.is_err(), "a port in use is an error");
}
