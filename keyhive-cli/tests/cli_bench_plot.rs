//! `keyhive bench --plot DIR` (issue 13): measures the scaling curves through the device API
//! and draws them as SVG (one polyline per workload, one point per size), with the figures as
//! JSON beside them. Small sizes here; README's drawings use the defaults (N up to 10,000, up
//! to 1,000 documents in the folder).

mod common;

use common::keyhive;

#[test]
fn bench_plot_draws_one_curve_per_workload_with_a_point_per_size() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let perf = dir.path().join("perf");
    let out = keyhive(&home)
        .args(["--json", "bench", "--plot"])
        .arg(&perf)
        .args(["--plot-members", "30", "--plot-documents", "3"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench --plot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["written"].as_array().unwrap().len(), 4);

    // N = 10 and 30: eight device workloads (ingest on one core and on every core), two points each.
    for name in ["device-time.svg", "device-ratio.svg"] {
        let svg = std::fs::read_to_string(perf.join(name)).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 8, "{name}");
        assert_eq!(svg.matches("<circle").count(), 16, "{name}");
        assert!(svg.contains(">write after revoke<"));
    }
    // Folders of 1 and 3 documents: the revoke, and the writes after it.
    let folder = std::fs::read_to_string(perf.join("folder-revocation.svg")).unwrap();
    assert_eq!(folder.matches("<polyline").count(), 2);
    assert_eq!(folder.matches("<circle").count(), 4);

    let figures: serde_json::Value =
        serde_json::from_slice(&std::fs::read(perf.join("scaling.json")).unwrap()).unwrap();
    assert_eq!(figures["workloads"].as_array().unwrap().len(), 16);
    assert_eq!(figures["folder_revocation"].as_array().unwrap().len(), 2);
    assert!(figures["errors"].as_array().unwrap().is_empty());
    for point in figures["folder_revocation"].as_array().unwrap() {
        assert!(point["revoke_us"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn plot_sizes_need_plot() {
    let dir = tempfile::tempdir().unwrap();
    let out = keyhive(&dir.path().join("home"))
        .args(["bench", "--plot-members", "30"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--plot"));
}
