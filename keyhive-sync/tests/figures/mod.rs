//! Shared helpers for the measured (ignored) figure tests: process RSS and medians.

// Every test binary compiles this module but may use only part of it.
#![allow(dead_code)]

use std::time::Duration;

/// This process's resident set size in MiB (`NaN` where `/proc` is not available).
pub fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The median of `v` (the upper one of an even count). `v` must not be empty.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
