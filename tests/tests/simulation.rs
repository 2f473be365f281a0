//! Issue 10, item 6: whole-system deterministic simulation, in process, without sockets,
//! sleeps or clocks.
//!
//! Seven devices of five people (alice and bob with two devices each, carol who reads, dave who
//! gets revoked, mallory a stranger), person groups, a team, a shared folder, private documents,
//! two relays (a `MemoryStore` with a `CapabilityPolicy`, called exactly as a relay connection
//! calls them; relay 1 drops, reorders and duplicates) and peer-to-peer links through
//! `ReplicaGate`. A seed draws the steps: grants, revocations, leaves, writes, document creation
//! (in folders too), partitions, syncs over reordering links, crashes and restarts of devices
//! (replica reopened over its store, keys from its key store) and relays
//! (`CapabilityPolicy::load`), and attacks (forged signatures, replays, relabelled envelopes,
//! unauthorised writes). Then every link comes up and syncs until quiet, and the invariants of
//! `simulation/invariants.rs` are checked. A failing seed is shrunk (steps dropped while the
//! same invariant still breaks) and reported with its trace and the command to rerun it.
//!
//! Key material comes from the operating system's generator (keyhive-core has no seeded one),
//! so the steps and their order reproduce exactly but hashes differ between runs; a failure
//! that depends on hash order alone may not reproduce.
//!
//! ```text
//! cargo test -p keyhive-tests --test simulation                     # CI: 100 seeds
//! SIM_SEEDS=100000 cargo test --release -p keyhive-tests --test simulation -- --nocapture
//! SIM_SEED=42 cargo test -p keyhive-tests --test simulation -- --nocapture   # one seed
//! SIM_FIRST_SEED=5000 SIM_SEEDS=1000 ...                            # another range
//! ```

mod simulation {
    pub mod attacks;
    pub mod cast;
    pub mod exchange;
    pub mod invariant_tests;
    pub mod invariants;
    pub mod oracle;
    pub mod runner;
    pub mod steps;
    pub mod world;
}

use std::collections::{BTreeMap, BTreeSet};

use simulation::runner::{STEPS, report, run, shrink};
use simulation::steps::generate;

/// Seeds a plain `cargo test` runs.
const CI_SEEDS: u64 = 100;

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}")),
    )
}

/// Runs `seed`; on failure, shrinks it and panics with the report.
fn check_seed(seed: u64) {
    let steps = generate(seed, STEPS);
    let first = run(&steps);
    let Some(broken) = first.violations.first().map(|v| v.invariant) else {
        return;
    };
    let original = steps.len();
    let (steps, shortest) = shrink(steps, first, broken);
    panic!("{}", report(seed, original, &steps, &shortest));
}

/// `SIM_SURVEY=1`: runs every seed without stopping or shrinking, then fails listing, per
/// invariant, how many seeds broke it and the first such seed.
fn survey(seeds: std::ops::Range<u64>) {
    let mut broken: BTreeMap<&'static str, (usize, u64)> = BTreeMap::new();
    for seed in seeds.clone() {
        let found = run(&generate(seed, STEPS));
        let invariants: BTreeSet<&'static str> =
            found.violations.iter().map(|v| v.invariant).collect();
        for invariant in invariants {
            broken.entry(invariant).or_insert((0, seed)).0 += 1;
        }
    }
    let lines: Vec<String> = broken
        .iter()
        .map(|(i, (n, first))| format!("({i}) broken by {n} seed(s), first {first}"))
        .collect();
    assert!(
        lines.is_empty(),
        "seeds {seeds:?}:\n{}\nrerun one: SIM_SEED=<seed> cargo test -p keyhive-tests --test simulation -- --nocapture",
        lines.join("\n")
    );
}

/// Issue 10 item 1: on a main without causally closed delivery (op predecessors are global,
/// relays serve no auth ops of member groups a device does not pull) every seed breaks (a),
/// (d) and (e); ignored until that fix is merged, then run by CI.
#[test]
#[ignore = "issue 10 item 1: delivery is not causally closed yet"]
fn seeds_keep_every_invariant() {
    if let Some(seed) = env_u64("SIM_SEED") {
        check_seed(seed);
        return;
    }
    let first = env_u64("SIM_FIRST_SEED").unwrap_or(0);
    let count = env_u64("SIM_SEEDS").unwrap_or(CI_SEEDS);
    let started = std::time::Instant::now();
    if std::env::var_os("SIM_SURVEY").is_some() {
        survey(first..first + count);
    } else {
        for seed in first..first + count {
            check_seed(seed);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{count} seeds in {secs:.1} s ({:.1} seeds/s)",
        count as f64 / secs.max(1e-9)
    );
}
