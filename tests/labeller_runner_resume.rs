//! `lab run` with an LLM labeller whose call fails after the server billed replies that
//! bought no label: that money is recorded in the cell before the error ends it, so reruns
//! resume under what is really left of the money budget.
mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use support::llm_cell::{cell_state, stopped_by_money_budget};
use support::mock_openai::{usable_then_empty, MockServer, Options};
use support::tiny_run::{lab_run_with_key, llm_budget_experiment};

const PRICES: (f64, f64) = (100.0, 200.0);

const KEY_ENV: &str = "LAB_TEST_RESUME_KEY";

/// Write a one-cell experiment labelled by `server` under `budget` dollars, retrying an
/// empty reply once.
fn experiment(server: &MockServer, dir: &Path, budget: f64) -> PathBuf {
    llm_budget_experiment(
        dir,
        &server.base_url(),
        KEY_ENV,
        PRICES,
        budget,
        "max_retries = 1\nconcurrency = 1",
    )
}

fn lab_run(exp: &Path, dir: &Path) -> Output {
    lab_run_with_key(exp, dir, KEY_ENV, &Options::default().api_key)
}

fn billed(server: &MockServer) -> f64 {
    server.served().iter().map(|s| s.price(PRICES)).sum()
}

#[test]
fn money_billed_in_a_failed_call_is_recorded_and_reruns_stay_within_the_budget() {
    // Two usable replies, then empty ones only: the third item's two tries are billed and
    // the call fails (max_retries = 1), every run, until the budget cannot hold a try.
    let server = MockServer::start(Options {
        responder: usable_then_empty(2),
        ..Options::default()
    });
    let dir = tempfile::tempdir().unwrap();
    // Two labels and two empty replies cost about $0.038, each later run's two empties
    // $0.015: the budget holds the first run and a few reruns; unrecorded, the reruns'
    // spending would pass it by the fifth run.
    let budget = 0.09;
    let exp = experiment(&server, dir.path(), budget);
    let mut failures = 0;
    let mut finished = false;
    for run in 1..=8 {
        let out = lab_run(&exp, dir.path());
        let paid = billed(&server);
        assert!(
            paid <= budget + 1e-12,
            "run {run}: the server billed ${paid} against a ${budget} budget"
        );
        if out.status.success() {
            finished = true;
            break;
        }
        failures += 1;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("empty completion"), "run {run}: {stderr}");
        // What the failed runs paid for nothing is recorded; the two labels bought are in
        // the label cache, to be counted when a run takes them from there.
        let state = cell_state(dir.path());
        let wasted: f64 = server
            .served()
            .iter()
            .filter(|s| s.empty)
            .map(|s| s.price(PRICES))
            .sum();
        let spent = state["money_spent"].as_f64().unwrap();
        assert!(
            (spent - wasted).abs() < 1e-9,
            "run {run}: state records {spent}, empty replies cost {wasted}"
        );
        assert_eq!(state["iterations_done"], 0);
    }
    assert!(failures >= 1, "the scenario must fail at least once");
    assert!(finished, "the budget never stopped the reruns");
    let (state, spent) = stopped_by_money_budget(dir.path(), budget);
    let paid = billed(&server);
    assert!(
        (spent - paid).abs() < 1e-9,
        "server billed {paid}, cell recorded {spent}"
    );
    assert_eq!(state["labeled_ids"].as_array().unwrap().len(), 2);
}
