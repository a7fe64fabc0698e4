//! A cell's annotation files as a run with the human labeller leaves them, without a run.
#![allow(dead_code)]
use std::path::{Path, PathBuf};

/// One item of a waiting batch (`pending.json`).
pub fn pending_item(id: u64, input: &str, system_prompt: &str) -> serde_json::Value {
    serde_json::json!({"id": id, "input": input, "system_prompt": system_prompt, "guess": ""})
}

/// Make `items` the batch waiting for labels in `cell`.
pub fn write_pending(cell: &Path, items: &[serde_json::Value]) {
    std::fs::create_dir_all(cell.join("annotation")).unwrap();
    std::fs::write(
        cell.join("annotation/pending.json"),
        serde_json::json!({ "items": items }).to_string(),
    )
    .unwrap();
}

/// Cell `exp/random/seed-0` waiting for labels on items 7 and 8 (inputs `in 7`, `in 8`).
pub fn waiting_cell(results: &Path) -> PathBuf {
    let cell = results.join("exp/random/seed-0");
    write_pending(
        &cell,
        &[pending_item(7, "in 7", ""), pending_item(8, "in 8", "")],
    );
    cell
}
