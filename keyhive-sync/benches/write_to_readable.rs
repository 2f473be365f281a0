//! Issue 11 (acceptance): write -> readable on the other device through a relay on loopback,
//! through the public handle only ([`Repo`]).
//!
//! Alice and Bob each open a `Repo` and connect a background link to one relay on
//! `127.0.0.1`. For each sample Alice writes a 150-byte change; the time runs from just before
//! `Repo::write` on Alice until Bob's subscription yields `Event::Readable` for that change
//! and `Repo::read` returns its bytes. Prints p50, p99 and max of [`SAMPLES`] samples after
//! [`WARMUP`] unmeasured ones:
//!
//! `cargo bench -p keyhive-sync --bench write_to_readable`
//! (or, unoptimised, `cargo test -p keyhive-sync --bench write_to_readable`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyhive_core::capability::{Access, AgentId};
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::identity::Device;
use keyhive_sync::capability_policy::CapabilityPolicy;
use keyhive_sync::replica::{Event, Subscription};
use keyhive_sync::{MemoryStore, Relay, RelayConfig, Repo};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// Measured writes.
const SAMPLES: usize = 200;
/// Unmeasured writes first (connections settled, caches warm).
const WARMUP: usize = 20;
/// Plaintext bytes per change.
const CHANGE_LEN: usize = 150;
/// Longest wait for one change (a failure, not a sample).
const PATIENCE: Duration = Duration::from_secs(20);

async fn readable(
    events: &mut Subscription,
    bob: &Repo,
    doc: keyhive_core::identity::DocumentId,
    change: keyhive_core::Hash,
) -> Result<()> {
    loop {
        let event = tokio::time::timeout(PATIENCE, events.next_event())
            .await?
            .ok_or("Bob's replica closed")?;
        if let Event::Readable {
            document,
            change: c,
            ..
        } = event
            && document == doc
            && c == change
        {
            let bytes = bob.read(doc, &change)?;
            if bytes.len() != CHANGE_LEN {
                return Err("Bob read another length than Alice wrote".into());
            }
            return Ok(());
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

async fn run() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let relay = Relay::serve(
        listener,
        Arc::new(MemoryStore::new()),
        Arc::new(CapabilityPolicy::new([])),
        RelayConfig::new(SigningKey::generate()),
    )?;
    let alice = Repo::in_memory(Device::generate(Some("alice".into())))?;
    let bob = Repo::in_memory(Device::generate(Some("bob".into())))?;
    let doc = alice.create_document()?;
    alice.add_contact(bob.contact_card()?)?;
    alice.grant(&doc.0, AgentId::Individual(bob.id()), Access::Write)?;
    let mut events = bob.subscribe();
    for repo in [&alice, &bob] {
        repo.connect(relay.url(), Some(relay.id())).await;
        repo.sync().await?;
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..WARMUP + SAMPLES {
        let mut change = [0u8; CHANGE_LEN];
        change[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let start = Instant::now();
        let op = alice.write(doc, &change)?;
        readable(&mut events, &bob, doc, op).await?;
        if i >= WARMUP {
            samples.push(start.elapsed());
        }
    }
    samples.sort();
    println!(
        "write_to_readable ({SAMPLES} changes of {CHANGE_LEN} B, relay on loopback): \
         p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
    );
    alice.shutdown().await?;
    bob.shutdown().await?;
    relay.shutdown().await?;
    Ok(())
}

fn main() -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run())
}
