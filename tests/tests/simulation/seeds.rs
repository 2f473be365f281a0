//! Running many seeds on every core: each seed is a whole run on one thread.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::runner::{Run, STEPS, run};
use super::steps::generate;

/// Threads: `SIM_THREADS`, or one per core.
pub fn threads() -> usize {
    std::env::var("SIM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1)
}

/// A survey's line for one seed: `ok`, or `broken` and the invariants it broke, e.g.
/// `broken (b), (f)`.
fn verdict(run: &Run) -> String {
    let broken: BTreeSet<&str> = run.violations.iter().map(|v| v.invariant).collect();
    if broken.is_empty() {
        "ok".to_string()
    } else {
        let named: Vec<String> = broken.into_iter().map(|i| format!("({i})")).collect();
        format!("broken {}", named.join(", "))
    }
}

/// What a sweep found: the broken invariants of every failing seed, and the run of the
/// lowest failing seed.
#[derive(Default)]
pub struct Sweep {
    pub broken: BTreeMap<u64, BTreeSet<&'static str>>,
    pub lowest: Option<(u64, Run)>,
}

/// Runs `seeds`; stops at the first failure unless `every` is set.
pub fn sweep(seeds: Range<u64>, every: bool) -> Sweep {
    let next = AtomicU64::new(seeds.start);
    let stop = AtomicBool::new(false);
    let found = Mutex::new(Sweep::default());
    std::thread::scope(|scope| {
        for _ in 0..threads() {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        break;
                    }
                    let result = run(seed, &generate(seed, STEPS));
                    if every {
                        // A survey reports as it goes, so that a cut-short one still tells.
                        eprintln!("seed {seed}: {}", verdict(&result));
                    }
                    if result.violations.is_empty() {
                        continue;
                    }
                    if !every {
                        stop.store(true, Ordering::Relaxed);
                    }
                    let mut found = found.lock().expect("sweep lock");
                    let broken = result.violations.iter().map(|v| v.invariant).collect();
                    found.broken.insert(seed, broken);
                    if found.lowest.as_ref().is_none_or(|(s, _)| seed < *s) {
                        found.lowest = Some((seed, result));
                    }
                }
            });
        }
    });
    found.into_inner().expect("sweep lock")
}
