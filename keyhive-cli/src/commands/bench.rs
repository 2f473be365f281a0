//! `keyhive bench`: figures of record measured where apps feel them, through the public device
//! API (`Replica`), each printed beside the raw primitive it is built on, timed in the same
//! process, as a ratio (issue 13). Absolute times vary with the machine and its load; ratios
//! compare like with like.
//!
//! Each figure carries its target ratio (issue 13) and the ratio past which `--gate` fails:
//! 50% over the target, or, for a documented gap, 50% over what today's design costs.

mod clock;
mod device;
mod folder;
mod plot;
mod raw;
mod scaling;
mod size;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::output::{Output, print_table};
use raw::Raw;

/// The workloads measured at each N.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Granting `read` to one more member.
    Grant,
    /// The first write after N grants: seats N devices and re-keys.
    FirstWrite,
    /// Writing 1 KiB with nothing to re-key.
    SteadyWrite,
    /// Reading back a 1 KiB change.
    SteadyRead,
    /// Revoking one member.
    Revoke,
    /// The first write after that revoke: removes the device and re-keys.
    WriteAfterRevoke,
    /// A fresh member ingests the whole (shuffled) history, per item, on one core.
    Ingest,
    /// The same on every available core (signatures checked ahead, ADM-2a), per item.
    IngestParallel,
    /// Per-item ingest time at the largest N over that at the next smaller N.
    IngestLinearity,
}

impl Workload {
    fn id(self) -> &'static str {
        match self {
            Workload::Grant => "grant",
            Workload::FirstWrite => "first_write",
            Workload::SteadyWrite => "steady_write",
            Workload::SteadyRead => "steady_read",
            Workload::Revoke => "revoke",
            Workload::WriteAfterRevoke => "write_after_revoke",
            Workload::Ingest => "ingest_shuffled",
            Workload::IngestParallel => "ingest_parallel",
            Workload::IngestLinearity => "ingest_linearity",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Workload::Grant => "add a member (grant)",
            Workload::FirstWrite => "first write after the adds (seats N, re-keys)",
            Workload::SteadyWrite => "steady write 1 KiB",
            Workload::SteadyRead => "steady read 1 KiB",
            Workload::Revoke => "revoke one member",
            Workload::WriteAfterRevoke => "write after the revoke (removes, re-keys)",
            Workload::Ingest => "fresh member ingests the shuffled history (per item)",
            Workload::IngestParallel => "the same ingest, signatures checked on every core",
            Workload::IngestLinearity => "ingest per item, this N over N / 10",
        }
    }

    /// The raw primitives the workload cannot avoid at `n` members: microseconds, and what
    /// they are. (The linearity figure's floor is the smaller N's figure, set by its caller.)
    fn floor(self, n: usize, raw: &Raw) -> (f64, String) {
        match self {
            Workload::Grant | Workload::Revoke => (raw.sign_us, "1 sign".into()),
            Workload::FirstWrite => (
                n as f64 * (raw.x25519_us + raw.sign_us),
                format!("{n} X25519 + {n} signs"),
            ),
            Workload::SteadyWrite => (raw.seal_1k_us + raw.sign_us, "seal 1 KiB + sign".into()),
            Workload::SteadyRead => (raw.open_1k_us, "open 1 KiB".into()),
            Workload::WriteAfterRevoke => {
                let log_n = device::log2_ceil(n);
                (
                    log_n * raw.x25519_us + 3.0 * raw.sign_us + raw.seal_1k_us,
                    format!("{log_n:.0} X25519 + 3 signs + seal"),
                )
            }
            Workload::Ingest => (raw.verify_strict_us, "1 verify_strict".into()),
            Workload::IngestParallel => (
                raw.verify_strict_us,
                format!("1 verify_strict on one core ({} cores)", cores()),
            ),
            Workload::IngestLinearity => (1.0, String::new()),
        }
    }

    /// Issue 13's target ratio, and the gate's ceiling when the target is a known gap.
    fn target_and_gate(self, n: usize, floor_us: f64, raw: &Raw) -> (f64, f64) {
        let target = match self {
            // The issue asks for linear adds; one sign plus bookkeeping.
            Workload::Grant => 2.0,
            Workload::FirstWrite | Workload::SteadyRead => 3.0,
            Workload::SteadyWrite => 2.0,
            Workload::Revoke => 50.0,
            // 50 signs' worth plus the re-key's O(log N) DH and the seal.
            Workload::WriteAfterRevoke => {
                (50.0 * raw.sign_us + device::log2_ceil(n) * raw.x25519_us + raw.seal_1k_us)
                    / floor_us
            }
            // At least 0.8x raw `verify_strict` throughput.
            Workload::Ingest => 1.25,
            // Above 1x raw one-core `verify_strict` throughput, on every core.
            Workload::IngestParallel => 1.0,
            Workload::IngestLinearity => 1.3,
        };
        (target, 1.5 * target.max(self.documented_gap(n)))
    }

    /// For a target not met today, the ratio the current design costs as README documents it
    /// (the highest figure of the runs it reports; N = 10,000 figures for N above 1,000), so
    /// that the gate fails 50% above it; 0 for a met target.
    fn documented_gap(self, n: usize) -> f64 {
        let large = n > 1_000;
        match self {
            Workload::Grant => 2.2,
            // Two X25519 per member for the fill (CGKA-27), then the update.
            Workload::FirstWrite if large => 4.9,
            Workload::FirstWrite => 3.4,
            // The remove's re-key refills the blanked path (about two X25519 per node) and the
            // prepare rebuilds the document's member map and membership plan (O(N)).
            Workload::WriteAfterRevoke if large => 19.5,
            Workload::WriteAfterRevoke => 7.7,
            // The parallel ingest is not shown below 1x on a loaded shared machine (its extra
            // threads find no spare core): gated like the one-core figure until it is.
            Workload::Ingest | Workload::IngestParallel => 2.1,
            Workload::IngestLinearity => 1.7,
            Workload::SteadyWrite | Workload::SteadyRead | Workload::Revoke => 0.0,
        }
    }
}

/// One workload through `Replica` beside its raw floor (the primitives timed just before and
/// just after it).
#[derive(Serialize)]
pub struct Figure {
    /// Stable identifier.
    id: &'static str,
    /// What was measured.
    workload: &'static str,
    n: usize,
    /// Microseconds per operation through the device API.
    us: f64,
    /// Microseconds of raw primitives the operation cannot avoid.
    floor_us: f64,
    /// What the floor is made of.
    floor: String,
    ratio: f64,
    /// Issue 13's target ratio.
    target: f64,
    /// `--gate` fails above this ratio.
    gate: f64,
}

impl Figure {
    /// `workload` at `n` members took `us`; `raw` was measured around it.
    fn new(workload: Workload, n: usize, us: f64, raw: &Raw) -> Self {
        let (floor_us, floor) = workload.floor(n, raw);
        Self::with_floor(workload, n, us, floor_us, floor, raw)
    }

    fn with_floor(
        workload: Workload,
        n: usize,
        us: f64,
        floor_us: f64,
        floor: String,
        raw: &Raw,
    ) -> Self {
        let (target, gate) = workload.target_and_gate(n, floor_us, raw);
        Figure {
            id: workload.id(),
            workload: workload.label(),
            n,
            us,
            floor_us,
            floor,
            ratio: us / floor_us,
            target,
            gate,
        }
    }
}

#[derive(Serialize)]
struct Report {
    quick: bool,
    /// The clock of the one-core workloads and of the raw floors (`"thread_cpu"`: the
    /// thread's CPU time; `"wall"` where there is none). The parallel ingest is wall-clock.
    one_core_clock: &'static str,
    raw: Raw,
    workloads: Vec<Figure>,
    /// `<id>_<n>` -> ratio, for scripts.
    ratios: std::collections::BTreeMap<String, f64>,
    /// Figures whose ratio is above their gate.
    gate_failures: usize,
    /// Workloads the device API could not carry out, by N (the figures after it are missing).
    errors: Vec<String>,
    /// History bytes a new member receives per member, by N, with their breakdown.
    history: Vec<size::HistorySize>,
    /// `history_bytes_per_member_<N>` -> bytes, for scripts.
    sizes: std::collections::BTreeMap<String, f64>,
}

/// Runs the benchmark and prints the table (or one JSON object). With `gate`, fails when a
/// ratio passes its gate.
pub fn run(out: Output, quick: bool, gate: bool) -> Result<()> {
    let raw = raw::measure(if quick { 300 } else { 2_000 })?;
    let sizes: &[usize] = if quick {
        &[100, 1_000]
    } else {
        &[100, 1_000, 10_000]
    };
    let mut workloads = Vec::new();
    let mut errors = Vec::new();
    for &n in sizes {
        if let Err(e) = device::workloads(n, quick, &mut workloads) {
            errors.push(format!("N = {n}: {e:#}"));
        }
    }
    let history = size::run(sizes, &mut errors);
    if let Some(linearity) = ingest_linearity(&workloads, &raw) {
        workloads.push(linearity);
    }
    let ratios = workloads
        .iter()
        .map(|f| (format!("{}_{}", f.id, f.n), f.ratio))
        .collect();
    let failures: Vec<String> = workloads
        .iter()
        .filter(|f| f.ratio > f.gate)
        .map(|f| format!("{} at N = {}: {:.2}x > {:.2}x", f.id, f.n, f.ratio, f.gate))
        .collect();
    let report = Report {
        quick,
        one_core_clock: clock::one_core_clock(),
        raw,
        workloads,
        ratios,
        gate_failures: failures.len(),
        errors,
        sizes: history
            .iter()
            .map(|h| (h.id.clone(), h.per_member))
            .collect(),
        history,
    };
    out.emit(&report, || print_report(&report))?;
    if gate {
        // One line per figure above its gate and per workload that could not run, for
        // `.ci/bench-gate` (which fails only on a figure above its gate in every run).
        for f in report.workloads.iter().filter(|f| f.ratio > f.gate) {
            eprintln!(
                "gate-failure: {}_{} {:.2} > {:.2}",
                f.id, f.n, f.ratio, f.gate
            );
        }
        for e in &report.errors {
            eprintln!("gate-error: {e}");
        }
    }
    if gate && !(failures.is_empty() && report.errors.is_empty()) {
        bail!(
            "bench gate: {}",
            failures
                .iter()
                .chain(&report.errors)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(())
}

/// `--plot DIR`: measures the scaling curves and draws them into `dir` (see [`scaling`]).
pub fn plot(
    out: Output,
    dir: &std::path::Path,
    max_members: usize,
    max_documents: usize,
) -> Result<()> {
    let written = scaling::run(dir, max_members, max_documents)?;
    out.emit(&serde_json::json!({ "written": written }), || {
        for file in &written {
            println!("wrote {file}");
        }
    })
}

/// The cores the parallel ingest may use.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Per-item ingest at the largest N over that at the next smaller N (linear: about 1).
fn ingest_linearity(figures: &[Figure], raw: &Raw) -> Option<Figure> {
    let mut ingests: Vec<&Figure> = figures
        .iter()
        .filter(|f| f.id == "ingest_shuffled")
        .collect();
    ingests.sort_by_key(|f| f.n);
    let [.., smaller, largest] = ingests.as_slice() else {
        return None;
    };
    Some(Figure::with_floor(
        Workload::IngestLinearity,
        largest.n,
        largest.us,
        smaller.us,
        format!("per item at N = {}", smaller.n),
        raw,
    ))
}

fn print_report(report: &Report) {
    let r = &report.raw;
    println!(
        "raw (us/op): sign {:.1}, verify_strict {:.1}, batch verify {:.1}/sig (with the checks that would make it strict, not used: {:.1}/sig; one torsion check {:.1}), X25519 {:.1}, seal 1 KiB {:.2}, open 1 KiB {:.2}, BLAKE3 1 KiB {:.2}",
        r.sign_us,
        r.verify_strict_us,
        r.verify_batch_us,
        r.verify_batch_strict_us,
        r.torsion_check_us,
        r.x25519_us,
        r.seal_1k_us,
        r.open_1k_us,
        r.blake3_1k_us
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
                format!("{:.2}x", f.target),
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
            "target",
            "floor",
        ],
        rows,
    );
    size::print(&report.history);
    for e in &report.errors {
        println!("not measured: {e}");
    }
    if report.gate_failures > 0 {
        println!("{} figure(s) above their gate", report.gate_failures);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> Raw {
        Raw {
            sign_us: 20.0,
            verify_strict_us: 50.0,
            verify_batch_us: 25.0,
            verify_batch_strict_us: 80.0,
            torsion_check_us: 55.0,
            x25519_us: 80.0,
            seal_1k_us: 2.0,
            open_1k_us: 2.0,
            blake3_1k_us: 1.0,
        }
    }

    #[test]
    fn a_met_target_gates_at_half_again_the_target() {
        let raw = raw();
        let f = Figure::new(Workload::Revoke, 1_000, 150.0, &raw);
        assert_eq!((f.target, f.gate), (50.0, 75.0));
        assert!(f.ratio < f.gate);
        let f = Figure::new(Workload::Revoke, 1_000, 20.0 * 169.0, &raw);
        assert!(f.ratio > f.gate, "the full replay's 169x fails the gate");
        let f = Figure::new(Workload::SteadyWrite, 100, 33.0, &raw);
        assert_eq!(f.gate, 3.0);
    }

    #[test]
    fn the_parallel_ingest_is_measured_against_one_core_and_gated_like_its_gap() {
        let raw = raw();
        let f = Figure::new(Workload::IngestParallel, 1_000, 40.0, &raw);
        assert_eq!(f.floor_us, raw.verify_strict_us);
        assert_eq!(f.target, 1.0);
        assert!(
            (f.gate - 1.5 * 2.1).abs() < 1e-9,
            "a documented gap for now"
        );
        assert!((f.ratio - 0.8).abs() < 1e-9);
        assert_eq!(f.id, "ingest_parallel");
    }

    #[test]
    fn a_documented_gap_gates_at_half_again_what_it_costs_today() {
        let raw = raw();
        let f = Figure::new(Workload::WriteAfterRevoke, 1_000, 1_000.0, &raw);
        assert!(f.target < 7.7);
        assert!((f.gate - 1.5 * 7.7).abs() < 1e-9);
        let f = Figure::new(Workload::WriteAfterRevoke, 10_000, 1_000.0, &raw);
        assert!((f.gate - 1.5 * 19.5).abs() < 1e-9);
        let f = Figure::new(Workload::Ingest, 100, 60.0, &raw);
        assert!((f.gate - 1.5 * 2.1).abs() < 1e-9);
    }
}
