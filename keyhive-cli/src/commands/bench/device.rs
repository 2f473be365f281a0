//! The workloads of issue 13, through `Replica` (the device API), for one document with `n`
//! members of one device each.

use std::hint::black_box;

use anyhow::{Context, Result};
use keyhive_core::capability::{Access, AgentId, PeerTag};
use keyhive_core::identity::{Device, DocumentId};
use keyhive_sync::replica::Replica;
use keyhive_sync::{Item, MemoryStore, Store};

use super::clock::Stopwatch;
use super::raw::{self, Raw, micros, per_op};
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

/// Raw iterations around each workload (a few tens of milliseconds).
const PAIRED: usize = 100;

/// Runs `work`, with the raw primitives measured just before and just after it and averaged:
/// the load on a shared machine drifts, and a ratio should compare like with like.
fn paired<T>(work: impl FnOnce() -> Result<T>) -> Result<(T, Raw)> {
    let before = raw::measure(PAIRED)?;
    let out = work()?;
    let after = raw::measure(PAIRED)?;
    Ok((out, before.mean(&after)))
}

/// Runs the workloads at `n` members, pushing each figure as it is measured (so that a
/// workload the device API cannot carry out leaves the earlier figures in place).
pub fn workloads(n: usize, quick: bool, figures: &mut Vec<Figure>) -> Result<()> {
    let mut figure = |workload, us: f64, raw: &Raw| {
        figures.push(Figure::new(workload, n, us, raw));
    };
    let mut alice = Replica::open(Device::generate(Some("alice".into())), MemoryStore::new())?;
    let doc: DocumentId = alice.create_document()?;
    let members: Vec<Device> = (0..n).map(|_| Device::generate(None)).collect();
    for m in &members {
        alice.add_contact(m.contact_card().context("a member's card")?)?;
    }

    let (adds, raw) = paired(|| {
        let start = Stopwatch::one_core();
        for m in &members {
            alice.grant(&doc.0, AgentId::Individual(m.id()), Access::Read)?;
        }
        Ok(micros(start.elapsed()) / n as f64)
    })?;
    figure(Workload::Grant, adds, &raw);

    let kib = vec![5u8; 1024];
    let (first, raw) = paired(|| {
        let start = Stopwatch::one_core();
        alice.write(doc, &kib)?;
        Ok(micros(start.elapsed()))
    })?;
    figure(Workload::FirstWrite, first, &raw);

    let writes = if quick { 30 } else { 100 };
    let (steady, raw) = paired(|| {
        Ok(per_op(writes, || {
            black_box(alice.write(doc, &kib)).ok();
        }))
    })?;
    figure(Workload::SteadyWrite, steady, &raw);

    let latest = alice
        .latest_readable(doc)?
        .context("the document has a readable change")?;
    let reads = if quick { 100 } else { 300 };
    let (read, raw) = paired(|| {
        Ok(per_op(reads, || {
            let mut sink = Vec::with_capacity(1024);
            black_box(alice.read_change(doc, &latest, &mut sink)).ok();
        }))
    })?;
    figure(Workload::SteadyRead, read, &raw);

    // One-shot operations: the best of a few rounds (revoke a member, then write), so that
    // one scheduling hiccup on a shared machine does not make the figure.
    let ((revoke, rekey), raw) = paired(|| {
        let (mut revoke, mut rekey) = (f64::MAX, f64::MAX);
        for gone in members.iter().take(REVOCATIONS.min(n.saturating_sub(1))) {
            let start = Stopwatch::one_core();
            alice.revoke(&doc.0, AgentId::Individual(gone.id()))?;
            revoke = revoke.min(micros(start.elapsed()));
            let start = Stopwatch::one_core();
            alice.write(doc, &kib)?;
            rekey = rekey.min(micros(start.elapsed()));
        }
        Ok((revoke, rekey))
    })?;
    figure(Workload::Revoke, revoke, &raw);
    figure(Workload::WriteAfterRevoke, rekey, &raw);

    let history = shuffled_items(&alice, n as u64)?;
    let signed = history.len() as f64;
    let newcomer = members.last().context("at least one member")?;
    let from = PeerTag::from(alice.device().id().0);
    // One core: every signature checked as its item is admitted.
    let mut fresh = Replica::open(newcomer.clone(), MemoryStore::new())?;
    fresh.set_signature_threads(1);
    let single = history.clone();
    let (ingest, raw) = paired(|| {
        let start = Stopwatch::one_core();
        fresh.ingest_all(from, single)?;
        Ok(micros(start.elapsed()))
    })?;
    figure(Workload::Ingest, ingest / signed, &raw);
    // Every core: signatures checked ahead of the thread applying the batch (ADM-2a), against
    // the same one-core `verify_strict` floor.
    let mut fresh = Replica::open(newcomer.clone(), MemoryStore::new())?;
    let (ingest, raw) = paired(|| {
        let start = Stopwatch::wall();
        fresh.ingest_all(from, history)?;
        Ok(micros(start.elapsed()))
    })?;
    figure(Workload::IngestParallel, ingest / signed, &raw);
    Ok(())
}

/// `ceil(log2(n))`: the depth of a tree with `n` leaves, the DH count of an O(log N) re-key.
pub fn log2_ceil(n: usize) -> f64 {
    f64::from(usize::BITS - n.saturating_sub(1).leading_zeros())
}
