//! The workloads of issue 13, through `Replica` (the device API), for one document with `n`
//! members of one device each.

use std::hint::black_box;
use std::time::Instant;

use anyhow::{Context, Result};
use keyhive_core::capability::{Access, AgentId, PeerTag};
use keyhive_core::identity::{Device, DocumentId};
use keyhive_sync::replica::Replica;
use keyhive_sync::{Item, MemoryStore, Store};

use super::raw::{Raw, micros, per_op};
use super::{Figure, Workload};

/// Members revoked one after the other (each followed by a write) for the revoke figures.
const REVOCATIONS: usize = 3;

/// Every item `replica` stores, in an order that depends on nothing but `seed` (a shuffled
/// history: what a fresh member receives from several peers).
fn shuffled_items(replica: &Replica<MemoryStore>, seed: u64) -> Result<Vec<Item>> {
    let store = replica.store();
    let mut out = Vec::new();
    for subject in store.subjects()? {
        for hash in store.hashes(&subject)? {
            out.extend(store.get(&hash)?);
        }
    }
    // Fisher-Yates with xorshift64: reproducible, and no dependency for a benchmark.
    let mut state = seed | 1;
    for i in (1..out.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (state % (i as u64 + 1)) as usize;
        out.swap(i, j);
    }
    Ok(out)
}

/// Runs the workloads at `n` members, pushing each figure as it is measured (so that a
/// workload the device API cannot carry out leaves the earlier figures in place).
pub fn workloads(n: usize, raw: &Raw, quick: bool, figures: &mut Vec<Figure>) -> Result<()> {
    let mut figure = |workload, us: f64, floor_us: f64, floor: String| {
        figures.push(Figure::new(workload, n, us, floor_us, floor, raw));
    };
    let mut alice = Replica::open(Device::generate(Some("alice".into())), MemoryStore::new())?;
    let doc: DocumentId = alice.create_document()?;
    let members: Vec<Device> = (0..n).map(|_| Device::generate(None)).collect();
    for m in &members {
        alice.add_contact(m.contact_card().context("a member's card")?)?;
    }

    let start = Instant::now();
    for m in &members {
        alice.grant(&doc.0, AgentId::Individual(m.id()), Access::Read)?;
    }
    let adds = micros(start.elapsed()) / n as f64;
    figure(Workload::Grant, adds, raw.sign_us, "1 sign".into());

    let kib = vec![5u8; 1024];
    let start = Instant::now();
    alice.write(doc, &kib)?;
    let first = micros(start.elapsed());
    figure(
        Workload::FirstWrite,
        first,
        n as f64 * (raw.x25519_us + raw.sign_us),
        format!("{n} X25519 + {n} signs"),
    );

    let writes = if quick { 30 } else { 100 };
    let steady = per_op(writes, || {
        black_box(alice.write(doc, &kib)).ok();
    });
    figure(
        Workload::SteadyWrite,
        steady,
        raw.seal_1k_us + raw.sign_us,
        "seal 1 KiB + sign".into(),
    );

    let latest = alice
        .latest_readable(doc)?
        .context("the document has a readable change")?;
    let reads = if quick { 100 } else { 300 };
    let read = per_op(reads, || {
        let mut sink = Vec::with_capacity(1024);
        black_box(alice.read_change(doc, &latest, &mut sink)).ok();
    });
    figure(
        Workload::SteadyRead,
        read,
        raw.open_1k_us,
        "open 1 KiB".into(),
    );

    // One-shot operations: the best of a few rounds (revoke a member, then write), so that
    // one scheduling hiccup on a shared machine does not make the figure.
    let (mut revoke, mut rekey) = (f64::MAX, f64::MAX);
    for gone in members.iter().take(REVOCATIONS.min(n.saturating_sub(1))) {
        let start = Instant::now();
        alice.revoke(&doc.0, AgentId::Individual(gone.id()))?;
        revoke = revoke.min(micros(start.elapsed()));
        let start = Instant::now();
        alice.write(doc, &kib)?;
        rekey = rekey.min(micros(start.elapsed()));
    }
    figure(Workload::Revoke, revoke, raw.sign_us, "1 sign".into());
    let log_n = log2_ceil(n);
    figure(
        Workload::WriteAfterRevoke,
        rekey,
        log_n * raw.x25519_us + 3.0 * raw.sign_us + raw.seal_1k_us,
        format!("{log_n:.0} X25519 + 3 signs + seal"),
    );

    let history = shuffled_items(&alice, n as u64)?;
    let signed = history.len() as f64;
    let newcomer = members.last().context("at least one member")?;
    let mut fresh = Replica::open(newcomer.clone(), MemoryStore::new())?;
    let start = Instant::now();
    fresh.ingest_all(PeerTag::from(alice.device().id().0), history)?;
    let ingest = micros(start.elapsed());
    figure(
        Workload::Ingest,
        ingest / signed,
        raw.verify_strict_us,
        "1 verify_strict".into(),
    );
    Ok(())
}

/// `ceil(log2(n))`: the depth of a tree with `n` leaves, the DH count of an O(log N) re-key.
pub fn log2_ceil(n: usize) -> f64 {
    f64::from(usize::BITS - n.saturating_sub(1).leading_zeros())
}
