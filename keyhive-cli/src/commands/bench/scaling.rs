//! `keyhive bench --plot DIR`: the scaling curves of issue 13, drawn to SVG. The device
//! workloads at N = 10 ... 10,000 members (time per operation and ratio to the raw floor), and a
//! folder revocation with 1 ... 1,000 documents in the folder. Also writes the figures as
//! `scaling.json` beside the drawings.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::plot::{Chart, Series, svg};
use super::{Figure, device, folder};

/// Members at which the device workloads are measured.
pub const MEMBERS: [usize; 7] = [10, 30, 100, 300, 1_000, 3_000, 10_000];
/// Documents in the folder for the folder revocation.
pub const DOCUMENTS: [usize; 7] = [1, 3, 10, 30, 100, 300, 1_000];

#[derive(Serialize)]
struct FolderPoint {
    documents: usize,
    revoke_us: f64,
    rekey_per_document_us: f64,
}

#[derive(Serialize)]
struct Scaling {
    workloads: Vec<Figure>,
    folder_revocation: Vec<FolderPoint>,
    errors: Vec<String>,
}

/// Measures at every size (up to `max_members` members and `max_documents` documents) and
/// writes `device-time.svg`, `device-ratio.svg`, `folder-revocation.svg` and `scaling.json`
/// into `dir`. Returns the files written.
pub fn run(dir: &Path, max_members: usize, max_documents: usize) -> Result<Vec<String>> {
    let mut workloads = Vec::new();
    let mut errors = Vec::new();
    for n in MEMBERS.into_iter().filter(|n| *n <= max_members) {
        eprintln!("bench --plot: N = {n}");
        if let Err(e) = device::workloads(n, true, &mut workloads) {
            errors.push(format!("N = {n}: {e:#}"));
        }
    }
    let mut folder_revocation = Vec::new();
    for d in DOCUMENTS.into_iter().filter(|d| *d <= max_documents) {
        eprintln!("bench --plot: folder with {d} documents");
        match folder::measure(d) {
            Ok(f) => folder_revocation.push(FolderPoint {
                documents: f.documents,
                revoke_us: f.revoke_us,
                rekey_per_document_us: f.rekey_per_document_us,
            }),
            Err(e) => errors.push(format!("folder with {d} documents: {e:#}")),
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    let mut write = |name: &str, text: String| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path.display().to_string());
        Ok(())
    };
    let by_workload = |value: fn(&Figure) -> f64| -> Vec<Series> {
        let mut series: BTreeMap<(usize, &str), Vec<(f64, f64)>> = BTreeMap::new();
        for (order, f) in workloads.iter().enumerate() {
            let first = workloads.iter().position(|g| g.id == f.id).unwrap_or(order);
            // The short id as legend text ("write after revoke"): the long labels overflow.
            series
                .entry((first, f.id))
                .or_default()
                .push((f.n as f64, value(f)));
        }
        series
            .into_iter()
            .map(|((_, id), points)| Series {
                label: id.replace('_', " "),
                points,
            })
            .collect()
    };
    let time = by_workload(|f| f.us);
    let ratio = by_workload(|f| f.ratio);
    if let Some(text) = svg(&Chart {
        title: "Device API (Replica): time per operation",
        x_label: "members N (one device each)",
        y_label: "microseconds per operation",
        series: &time,
    }) {
        write("device-time.svg", text)?;
    }
    if let Some(text) = svg(&Chart {
        title: "Device API (Replica): ratio to the raw primitives, same run",
        x_label: "members N (one device each)",
        y_label: "time / raw floor",
        series: &ratio,
    }) {
        write("device-ratio.svg", text)?;
    }
    let folder_series = [
        Series {
            label: "revoke the member".into(),
            points: folder_revocation
                .iter()
                .map(|p| (p.documents as f64, p.revoke_us))
                .collect(),
        },
        Series {
            label: "then write, per document".into(),
            points: folder_revocation
                .iter()
                .map(|p| (p.documents as f64, p.rekey_per_document_us))
                .collect(),
        },
    ];
    if let Some(text) = svg(&Chart {
        title: "Revoking one member of a folder",
        x_label: "documents in the folder",
        y_label: "microseconds",
        series: &folder_series,
    }) {
        write("folder-revocation.svg", text)?;
    }
    let data = Scaling {
        workloads,
        folder_revocation,
        errors,
    };
    write("scaling.json", serde_json::to_string_pretty(&data)?)?;
    if !data.errors.is_empty() {
        anyhow::bail!("not measured: {}", data.errors.join("; "));
    }
    Ok(written)
}
