//! The one cell of a `lab run` of `tiny_run::llm_budget_experiment`, as the LLM budget tests
//! check it.
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The cell folder of the experiment made in `dir`.
pub fn llm_cell(dir: &Path) -> PathBuf {
    dir.join("results/llm/random/seed-0")
}

/// The cell's `state.json`.
pub fn cell_state(dir: &Path) -> Value {
    let path = llm_cell(dir).join("state.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The cell's `state.json`, which must say that the money budget stopped the cell, with
/// `money_spent` within `budget`; returns it and the money spent.
pub fn stopped_by_money_budget(dir: &Path, budget: f64) -> (Value, f64) {
    let state = cell_state(dir);
    assert_eq!(state["stop_reason"]["kind"], "money_budget", "{state}");
    let spent = state["money_spent"].as_f64().unwrap();
    assert!(
        spent <= budget + 1e-12,
        "the cell records ${spent} against a ${budget} budget: {state}"
    );
    (state, spent)
}
