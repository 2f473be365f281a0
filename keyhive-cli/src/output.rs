//! Human (aligned tables) and machine (`--json`) output.

use comfy_table::presets::NOTHING;
use comfy_table::{Cell, Table};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

/// Where command results go: tables and sentences for people, JSON for scripts.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// `--json` was given.
    pub json: bool,
}

/// Whether a JSON result was printed, so that a command failing after it (e.g. `folder pull`
/// reporting skipped documents) does not print a second JSON document.
static EMITTED: AtomicBool = AtomicBool::new(false);

/// Whether this process already printed a JSON result.
pub fn emitted() -> bool {
    EMITTED.load(Ordering::Relaxed)
}

impl Output {
    /// Prints `value` as one JSON document when `--json`, else runs `human`.
    pub fn emit<T: Serialize>(&self, value: &T, human: impl FnOnce()) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
            EMITTED.store(true, Ordering::Relaxed);
        } else {
            human();
        }
        Ok(())
    }
}

/// Prints an aligned table with a header row.
pub fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    if rows.is_empty() {
        println!("(none)");
        return;
    }
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header(headers.iter().map(|h| Cell::new(h.to_uppercase())));
    for row in rows {
        table.add_row(row);
    }
    println!("{table}");
}

/// `error` and every cause beneath it, as `error: cause: cause` (the form anyhow's `{:#}`
/// prints), for errors reported inside a result rather than returned.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
