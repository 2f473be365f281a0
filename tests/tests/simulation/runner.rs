//! Running a step list, shrinking a failing one, and the failure report.

use keyhive_core::Hash;
use keyhive_sync::Store;

use super::cast::{PROLOGUE, legend};
use super::invariants::{Violation, check};
use super::steps::Step;
use super::world::World;

/// Random steps per run.
pub const STEPS: usize = 80;
/// Most healing rounds (every link synced once per round).
pub const HEAL_ROUNDS: usize = 24;
/// Most runs the shrinker spends on one failure, unless `SIM_SHRINK_BUDGET` says otherwise.
pub const SHRINK_BUDGET: usize = 120;

fn shrink_budget() -> usize {
    std::env::var("SIM_SHRINK_BUDGET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SHRINK_BUDGET)
}

/// Violations of each invariant a report lists.
const PER_INVARIANT: usize = 4;

/// What one run found.
pub struct Run {
    pub violations: Vec<Violation>,
    pub trace: Vec<String>,
    /// [`digest`] of the healed world: equal for two runs of the same seed and steps.
    pub digest: Hash,
}

impl Run {
    pub fn fails(&self, invariant: &str) -> bool {
        self.violations.iter().any(|v| v.invariant == invariant)
    }
}

/// Runs the prologue, `steps`, healing and the checks, every key, salt and nonce drawn from a
/// generator seeded with `seed` (ENC-16), so that the run reproduces bit for bit.
pub fn run(seed: u64, steps: &[Step]) -> Run {
    keyhive_core::crypto::rng::seeded(seed, || run_seeded(steps))
}

fn run_seeded(steps: &[Step]) -> Run {
    let mut world = World::new();
    let mut trace = Vec::with_capacity(steps.len() + 1);
    for (i, step) in steps.iter().enumerate() {
        let outcome = match world.run(step) {
            Ok(note) => format!("ok {note}"),
            Err(e) => format!("refused: {e}"),
        };
        trace.push(format!("{i:3} {step:?} -> {outcome}"));
    }
    let rounds = world.heal(HEAL_ROUNDS);
    trace.push(format!("heal: {rounds} round(s) of every link"));
    Run {
        violations: check(&world),
        digest: digest(&world, &trace),
        trace,
    }
}

/// The trace digest of a run: every line of `trace`, then every item stored by every device
/// and relay (subject by subject in creation order, each subject's items in the store's order).
pub fn digest(world: &World, trace: &[String]) -> Hash {
    let mut bytes = Vec::new();
    for line in trace {
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    let order = world.subject_order();
    let stores = world
        .devices
        .iter()
        .map(|d| &*d.store)
        .chain(world.relays.iter().map(|r| &*r.store));
    for store in stores {
        for subject in &order {
            for hash in store.hashes(subject).expect("hashes") {
                let item = store.get(&hash).expect("get").expect("listed item held");
                bytes.extend_from_slice(&hash.0);
                bytes.extend_from_slice(item.envelope());
            }
        }
        bytes.push(0xff);
    }
    Hash::of_content(&bytes)
}

/// Drops chunks of steps (halving their size down to one step) while the run still breaks
/// `invariant`, within [`SHRINK_BUDGET`] runs (`SIM_SHRINK_BUDGET`). Returns the shortest list found and its run.
pub fn shrink(seed: u64, steps: Vec<Step>, failing: Run, invariant: &str) -> (Vec<Step>, Run) {
    let (mut best, mut best_run) = (steps, failing);
    let budget = shrink_budget();
    let mut runs = 0;
    let mut chunk = best.len().div_ceil(2);
    while chunk >= 1 && runs < budget {
        let mut at = 0;
        while at < best.len() && runs < budget {
            let mut candidate = best.clone();
            candidate.drain(at..(at + chunk).min(best.len()));
            runs += 1;
            let r = run(seed, &candidate);
            if r.fails(invariant) {
                best = candidate;
                best_run = r;
            } else {
                at += chunk;
            }
        }
        if chunk == 1 {
            break;
        }
        chunk /= 2;
    }
    (best, best_run)
}

/// The failure report: seed, violations, the shortest trace found, and how to rerun it.
pub fn report(seed: u64, original: usize, steps: &[Step], run: &Run) -> String {
    let mut out = format!("simulation seed {seed} breaks invariant(s):\n",);
    for invariant in ["a", "b", "c", "d", "e", "f", "adm"] {
        let broken: Vec<_> = run
            .violations
            .iter()
            .filter(|v| v.invariant == invariant)
            .collect();
        for v in broken.iter().take(PER_INVARIANT) {
            out.push_str(&format!("  ({invariant}) {}\n", v.detail));
        }
        if broken.len() > PER_INVARIANT {
            let more = broken.len() - PER_INVARIANT;
            out.push_str(&format!("  ({invariant}) ... and {more} more\n"));
        }
    }
    out.push_str(&format!(
        "shortest trace found ({} of {original} steps):\n  {PROLOGUE}\n",
        steps.len()
    ));
    for line in &run.trace {
        out.push_str(&format!("  {line}\n"));
    }
    out.push_str(&format!("{}\n", legend()));
    let invariant = std::env::var("SIM_INVARIANT")
        .map(|i| format!("SIM_INVARIANT={i} "))
        .unwrap_or_default();
    out.push_str(&format!(
        "rerun: SIM_SEED={seed} {invariant}cargo test -p keyhive-tests --test simulation seeds -- --nocapture\n"
    ));
    out
}
