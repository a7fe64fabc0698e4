//! `lab run` with an LLM labeller (OpenAI-compatible, the mock server of tests/support):
//! labels are bought until the money budget would be exceeded, the cost in curve.csv is the
//! usage times the prices, the budget is never crossed, and the API key is written nowhere.
mod support;

use support::llm_cell::{llm_cell, stopped_by_money_budget};
use support::mock_openai::{usable_then_empty, MockServer, Options};
use support::tiny_run::{lab_run_with_key, llm_budget_experiment};

/// `lab run` of a one-cell experiment labelled by `server` under `budget` dollars, with
/// `concurrency` requests in flight.
fn run_under_budget(
    server: &MockServer,
    dir: &std::path::Path,
    prices: (f64, f64),
    budget: f64,
    concurrency: usize,
) -> std::process::Output {
    let key_env = "LAB_TEST_LLM_KEY";
    let exp = llm_budget_experiment(
        dir,
        &server.base_url(),
        key_env,
        prices,
        budget,
        &format!("concurrency = {concurrency}"),
    );
    lab_run_with_key(&exp, dir, key_env, &Options::default().api_key)
}

#[test]
fn money_budget_stops_the_cell_and_is_never_exceeded() {
    let server = MockServer::start(Options::default());
    let key = Options::default().api_key;
    let dir = tempfile::tempdir().unwrap();
    let (price_in, price_out) = (100.0, 200.0);
    let budget = 0.2;
    let out = run_under_budget(&server, dir.path(), (price_in, price_out), budget, 2);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "lab run failed:\n{stdout}\n{stderr}");
    assert!(
        !stdout.contains(&key) && !stderr.contains(&key),
        "the key reached the output"
    );

    let (state, spent) = stopped_by_money_budget(dir.path(), budget);
    assert!(spent > 0.0, "spent {spent} of {budget}");

    // What the server served, priced by its usage, is exactly what the cell paid.
    let served = server.served();
    let paid: f64 = served.iter().map(|s| s.price((price_in, price_out))).sum();
    assert!(
        (paid - spent).abs() < 1e-9,
        "server priced {paid}, cell recorded {spent}"
    );
    let labeled = state["labeled_ids"].as_array().unwrap().len();
    assert_eq!(labeled, served.len(), "one paid request per label");
    assert!(
        labeled < 4 + 4 * 5,
        "the budget, not the iterations, ended the run"
    );
    eprintln!("money budget run: {labeled} labels, ${spent:.6} of ${budget}");

    // curve.csv carries the running cost; the last row equals the total.
    let curve = std::fs::read_to_string(llm_cell(dir.path()).join("curve.csv")).unwrap();
    let last = curve.lines().last().unwrap();
    let cost: f64 = last.split(',').nth(2).unwrap().parse().unwrap();
    assert!(
        (cost - spent).abs() < 1e-9,
        "curve cost {cost} vs state {spent}"
    );

    // The key is in no file the run wrote.
    for (path, text) in support::all_file_text(dir.path()) {
        assert!(!text.contains(&key), "the key leaked into {path}");
    }
}

#[test]
fn money_spent_on_empty_replies_is_counted_in_the_cell() {
    // From the 3rd request on the server bills empty replies only: the labeller retries them,
    // pays each, and stops when the budget cannot hold another try.
    let server = MockServer::start(Options {
        responder: usable_then_empty(2),
        ..Options::default()
    });
    let dir = tempfile::tempdir().unwrap();
    // A budget that two labels and a few empty replies (input tokens only) use up. One
    // request at a time: the server's first two replies are the usable ones, so with two in
    // flight which items get them would depend on which request arrives first (under load the
    // second item's could arrive after the third's, leaving one label).
    let (price_in, price_out) = (100.0, 200.0);
    let budget = 0.08;
    let out = run_under_budget(&server, dir.path(), (price_in, price_out), budget, 1);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (state, spent) = stopped_by_money_budget(dir.path(), budget);
    let served = server.served();
    assert!(served.iter().any(|s| s.empty), "empty replies were billed");
    let paid: f64 = served.iter().map(|s| s.price((price_in, price_out))).sum();
    assert!(
        (paid - spent).abs() < 1e-9,
        "server billed {paid}, cell recorded {spent}"
    );
    let labeled = state["labeled_ids"].as_array().unwrap().len();
    assert_eq!(labeled, 2, "only the two usable replies became labels");
}
