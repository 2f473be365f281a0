//! Shared helpers for keyhive benchmarks: print measured ratios to raw primitives.

use std::path::PathBuf;

/// Reads criterion's mean estimate (nanoseconds) for `group/bench` from this run's output.
pub fn mean_ns(group: &str, bench: &str) -> Option<f64> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = dir
        .join("criterion")
        .join(group)
        .join(bench)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

/// Prints `name: value ns (ratio x raw)` for a measured bench against its raw primitive.
pub fn print_ratio(label: &str, group: &str, bench: &str, raw_group: &str, raw_bench: &str) {
    match (mean_ns(group, bench), mean_ns(raw_group, raw_bench)) {
        (Some(ours), Some(raw)) => println!(
            "RATIO {label}: {:.2} µs vs raw {:.2} µs = {:.3}x",
            ours / 1000.0,
            raw / 1000.0,
            ours / raw
        ),
        _ => println!("RATIO {label}: not measured in this run"),
    }
}
