//! What the one-core workloads and their raw floors are timed with: the calling thread's CPU
//! time (`CLOCK_THREAD_CPUTIME_ID`) on unix, wall-clock time elsewhere.
//!
//! Every one-core workload runs on one thread over a `MemoryStore` (no I/O, no waiting), so on
//! a quiet machine its CPU time and its wall-clock time are the same. On a shared machine they
//! are not: the time the thread waits for a core lands on a workload of seconds (a first write,
//! an ingest) far more often than on the raw bursts of a millisecond timed beside it, which
//! skewed the ratios by up to 10x under load. The parallel ingest is timed in wall-clock time
//! (`Stopwatch::wall`): using both cores is what it measures.

use std::time::{Duration, Instant};

/// Which clock the one-core figures were timed with (`"thread_cpu"` or `"wall"`), for the
/// report.
pub fn one_core_clock() -> &'static str {
    if thread_cpu().is_some() {
        "thread_cpu"
    } else {
        "wall"
    }
}

/// A started measurement.
pub struct Stopwatch(Start);

enum Start {
    ThreadCpu(Duration),
    Wall(Instant),
}

impl Stopwatch {
    /// Starts on the calling thread's CPU clock where there is one, else on the wall clock.
    pub fn one_core() -> Self {
        match thread_cpu() {
            Some(now) => Stopwatch(Start::ThreadCpu(now)),
            None => Self::wall(),
        }
    }

    /// Starts on the wall clock (work spread over several threads).
    pub fn wall() -> Self {
        Stopwatch(Start::Wall(Instant::now()))
    }

    /// Time since the start, on the clock it started on (call it on the same thread).
    pub fn elapsed(&self) -> Duration {
        match self.0 {
            Start::ThreadCpu(start) => {
                thread_cpu().map_or(Duration::ZERO, |now| now.saturating_sub(start))
            }
            Start::Wall(start) => start.elapsed(),
        }
    }
}

#[cfg(unix)]
fn thread_cpu() -> Option<Duration> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Some(Duration::new(
        u64::try_from(t.tv_sec).ok()?,
        u32::try_from(t.tv_nsec).ok()?,
    ))
}

#[cfg(not(unix))]
fn thread_cpu() -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_core_clock_advances_with_work() {
        let watch = Stopwatch::one_core();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        std::hint::black_box(x);
        assert!(watch.elapsed() > Duration::ZERO);
    }

    #[test]
    fn sleeping_costs_no_cpu_time_on_unix() {
        let watch = Stopwatch::one_core();
        std::thread::sleep(Duration::from_millis(30));
        let slept = watch.elapsed();
        if one_core_clock() == "thread_cpu" {
            assert!(
                slept < Duration::from_millis(20),
                "{slept:?} of CPU time while asleep"
            );
        } else {
            assert!(slept >= Duration::from_millis(30));
        }
    }
}
