//! `keyhive bench`: figures of record measured where apps feel them, through the public device
//! API (`Replica`), each printed beside the raw primitive it is built on, timed in the same
//! process, as a ratio (issue 13). Absolute times vary with the machine and its load; ratios
//! compare like with like.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use keyhive_core::capability::{Access, AgentId, PeerTag};
use keyhive_core::crypto::aead;
use keyhive_core::crypto::prekey::PrekeySecret;
use keyhive_core::crypto::secret::SymmetricKey;
use keyhive_core::crypto::signing::SigningKey;
use keyhive_core::identity::{Device, DocumentId};
use keyhive_sync::replica::Replica;
use keyhive_sync::{Item, MemoryStore, Store};
use serde::Serialize;

use crate::output::{Output, print_table};

/// Raw primitives, microseconds per operation.
#[derive(Serialize)]
struct Raw {
    sign_us: f64,
    verify_strict_us: f64,
    x25519_us: f64,
    seal_1k_us: f64,
    open_1k_us: f64,
    blake3_1k_us: f64,
}

/// One workload through `Replica` beside its raw floor.
#[derive(Serialize)]
struct Figure {
    workload: &'static str,
    n: usize,
    /// Microseconds per operation through the device API.
    us: f64,
    /// Microseconds of raw primitives the operation cannot avoid.
    floor_us: f64,
    /// What the floor is made of.
    floor: String,
    ratio: f64,
}

#[derive(Serialize)]
struct Report {
    quick: bool,
    raw: Raw,
    workloads: Vec<Figure>,
}

/// Runs the benchmark and prints the table (or one JSON object).
pub fn run(out: Output, quick: bool) -> Result<()> {
    let raw = raw_primitives(if quick { 300 } else { 2_000 })?;
    let sizes: &[usize] = if quick { &[100] } else { &[100, 1_000] };
    let mut workloads = Vec::new();
    for &n in sizes {
        workloads.extend(device_workloads(n, &raw, quick)?);
    }
    let report = Report {
        quick,
        raw,
        workloads,
    };
    out.emit(&report, || print_report(&report))
}

fn print_report(report: &Report) {
    let r = &report.raw;
    println!(
        "raw (us/op): sign {:.1}, verify_strict {:.1}, X25519 {:.1}, seal 1 KiB {:.2}, open 1 KiB {:.2}, BLAKE3 1 KiB {:.2}",
        r.sign_us, r.verify_strict_us, r.x25519_us, r.seal_1k_us, r.open_1k_us, r.blake3_1k_us
    );
    let rows: Vec<Vec<String>> = report
        .workloads
        .iter()
        .map(|f| {
            vec![
                f.workload.to_string(),
                f.n.to_string(),
                format!("{:.1}", f.us),
                format!("{:.1}", f.floor_us),
                format!("{:.2}x", f.ratio),
                f.floor.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "workload (through Replica)",
            "N",
            "us/op",
            "floor us",
            "ratio",
            "floor",
        ],
        rows,
    );
}

/// Mean microseconds per call of `f` over `iterations`, best of three runs.
fn per_op(iterations: usize, mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        for _ in 0..iterations {
            f();
        }
        best = best.min(start.elapsed());
    }
    micros(best) / iterations as f64
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn raw_primitives(iterations: usize) -> Result<Raw> {
    let key = SigningKey::generate();
    let public = key.public_key();
    let message = [7u8; 256];
    let signature = key.sign(&message);
    let (a, b) = (PrekeySecret::generate(), PrekeySecret::generate());
    let b_public = b.public();
    let sym = SymmetricKey::random();
    let kib = vec![3u8; 1024];
    let sealed = aead::seal(&sym, b"ad", &kib).context("sealing 1 KiB")?;
    Ok(Raw {
        sign_us: per_op(iterations, || {
            black_box(key.sign(black_box(&message)));
        }),
        verify_strict_us: per_op(iterations, || {
            black_box(public.verify_strict(black_box(&message), &signature)).ok();
        }),
        x25519_us: per_op(iterations, || {
            black_box(a.agree(black_box(&b_public))).ok();
        }),
        seal_1k_us: per_op(iterations, || {
            black_box(aead::seal(&sym, b"ad", black_box(&kib))).ok();
        }),
        open_1k_us: per_op(iterations, || {
            black_box(aead::open(&sym, b"ad", black_box(&sealed))).ok();
        }),
        blake3_1k_us: per_op(iterations, || {
            black_box(keyhive_core::Hash::of_content(black_box(&kib)));
        }),
    })
}

fn items_of(replica: &Replica<MemoryStore>) -> Result<Vec<Item>> {
    let store = replica.store();
    let mut out = Vec::new();
    for subject in store.subjects()? {
        for hash in store.hashes(&subject)? {
            out.extend(store.get(&hash)?);
        }
    }
    Ok(out)
}

/// The workloads of issue 13 for a document with `n` members, one device each.
fn device_workloads(n: usize, raw: &Raw, quick: bool) -> Result<Vec<Figure>> {
    let mut figures = Vec::new();
    let mut figure = |workload, us: f64, floor_us: f64, floor: String| {
        figures.push(Figure {
            workload,
            n,
            us,
            floor_us,
            floor,
            ratio: us / floor_us,
        });
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
    figure("add a member (grant)", adds, raw.sign_us, "1 sign".into());

    let kib = vec![5u8; 1024];
    let start = Instant::now();
    alice.write(doc, &kib)?;
    let first = micros(start.elapsed());
    figure(
        "first write after the adds (seats N, re-keys)",
        first,
        n as f64 * (raw.x25519_us + raw.sign_us),
        format!("{n} X25519 + {n} signs"),
    );

    let writes = if quick { 20 } else { 100 };
    let start = Instant::now();
    for _ in 0..writes {
        alice.write(doc, &kib)?;
    }
    let steady = micros(start.elapsed()) / writes as f64;
    figure(
        "steady write 1 KiB",
        steady,
        raw.seal_1k_us + raw.sign_us,
        "seal 1 KiB + sign".into(),
    );

    let latest = alice
        .latest_readable(doc)?
        .context("the document has a readable change")?;
    let reads = if quick { 50 } else { 200 };
    let read = per_op(reads, || {
        let mut sink = Vec::with_capacity(1024);
        black_box(alice.read_change(doc, &latest, &mut sink)).ok();
    });
    figure(
        "steady read 1 KiB",
        read,
        raw.open_1k_us,
        "open 1 KiB".into(),
    );

    let log_n = (usize::BITS - n.leading_zeros()) as f64;
    let start = Instant::now();
    alice.revoke(&doc.0, AgentId::Individual(members[0].id()))?;
    let revoke = micros(start.elapsed());
    figure("revoke one member", revoke, raw.sign_us, "1 sign".into());
    let start = Instant::now();
    alice.write(doc, &kib)?;
    let rekey = micros(start.elapsed());
    figure(
        "write after the revoke (removes, re-keys)",
        rekey,
        log_n * raw.x25519_us + 3.0 * raw.sign_us + raw.seal_1k_us,
        format!("{log_n:.0} X25519 + 3 signs + seal"),
    );

    let history = items_of(&alice)?;
    let signed = history.len() as f64;
    let mut fresh = Replica::open(members[1].clone(), MemoryStore::new())?;
    let start = Instant::now();
    fresh.ingest_all(PeerTag::from(alice.device().id().0), history)?;
    let ingest = micros(start.elapsed());
    figure(
        "fresh member ingests the history (per item)",
        ingest / signed,
        raw.verify_strict_us,
        "1 verify_strict".into(),
    );
    Ok(figures)
}
