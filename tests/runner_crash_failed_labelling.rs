//! Crash consistency of a labelling that fails after the LLM billed replies that bought no
//! label: the runner records that money in state.json (`unlabelled-spend-written`) before the
//! error ends the cell. A run aborted right there and run again must end with what a failed
//! run and its rerun write, the money counted once: neither forgotten (the budget would be
//! spent twice) nor charged again from the cell's spend log (`llm_spend.jsonl`), which holds
//! the same replies.
mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::crash_runs::{
    crash, crash_experiment, differences, env_refs, run, run_args, Snapshot,
};
use support::mock_openai::{last_user, subject_reply, MockServer, Options};
use support::tiny_run::{lab_with, llm_labeller_table, TinyExperiment};

const PRICES: (f64, f64) = (100.0, 200.0);
const KEY_ENV: &str = "LAB_TEST_CRASH_FAILED_LABELLING_KEY";

/// Requests (counted from 0, retries included) answered with an empty completion, billed:
/// iteration 0 buys 4 labels (requests 0–3); iteration 1 buys one (4), then its second
/// item's reply and its one retry are empty, and the labelling fails.
const EMPTY_REQUESTS: [usize; 2] = [5, 6];

/// A server whose replies are usable but for `EMPTY_REQUESTS`.
fn server() -> MockServer {
    let calls = Arc::new(AtomicUsize::new(0));
    MockServer::start(Options {
        responder: Arc::new(move |turns| {
            if EMPTY_REQUESTS.contains(&calls.fetch_add(1, Ordering::SeqCst)) {
                String::new()
            } else {
                subject_reply(&last_user(turns))
            }
        }),
        ..Options::default()
    })
}

/// One cell (random, three iterations) labelled by `server` one request at a time, an empty
/// reply retried once.
fn experiment(dir: &Path, server: &MockServer) -> PathBuf {
    TinyExperiment {
        // Queries as `EMPTY_REQUESTS` counts them.
        init_size: 4,
        query_size: 3,
        tables: &llm_labeller_table(
            &server.base_url(),
            KEY_ENV,
            PRICES,
            "max_retries = 1\nconcurrency = 1",
        ),
        ..crash_experiment()
    }
    .write(dir)
}

/// What the server billed, in dollars.
fn billed(server: &MockServer) -> f64 {
    server.served().iter().map(|s| s.price(PRICES)).sum()
}

/// The cell's state.json: the money it spent, and the part of it that bought no label it
/// keeps.
fn money_spent(dir: &Path) -> (f64, f64) {
    let path = dir.join("results/crash/random/seed-0/state.json");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let spent = state["money_spent"].as_f64().unwrap();
    let labels: f64 = state["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["cost"].as_f64().unwrap())
        .sum();
    (spent, spent - labels)
}

/// The API key and the label cache (in `dir`) for `lab run`.
fn lab_env(dir: &Path) -> Vec<(String, String)> {
    let cache = dir.join("label-cache");
    vec![
        (KEY_ENV.to_string(), Options::default().api_key),
        ("LAB_LABEL_CACHE".to_string(), cache.display().to_string()),
    ]
}

#[test]
fn a_run_aborted_after_recording_a_failed_labellings_spend_counts_it_once() {
    // Uninterrupted: the labelling fails at iteration 1, and the rerun finishes the cell.
    let whole_dir = tempfile::tempdir().unwrap();
    let whole_server = server();
    let exp = experiment(whole_dir.path(), &whole_server);
    let env = lab_env(whole_dir.path());
    let failed = lab_with(&run_args(&exp), &env_refs(&env));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success() && stderr.contains("empty completion"),
        "the first run must fail on the empty replies: {stderr}"
    );
    let wasted: f64 = whole_server
        .served()
        .iter()
        .filter(|s| s.empty)
        .map(|s| s.price(PRICES))
        .sum();
    assert!(wasted > 0.0, "the empty replies were billed");
    run(&run_args(&exp), &env_refs(&env)).unwrap();
    let whole = Snapshot::take(whole_dir.path(), "crash");
    let whole_billed = billed(&whole_server);

    // Aborted right after the failed labelling's spend reached state.json, then rerun.
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    let exp = experiment(dir.path(), &server);
    let env = lab_env(dir.path());
    crash(
        &run_args(&exp),
        "unlabelled-spend-written:1",
        &env_refs(&env),
    );
    let (_, recorded) = money_spent(dir.path());
    assert!(
        (recorded - wasted).abs() < 1e-9,
        "state.json records ${recorded} that bought no label at the abort; the empty replies \
         cost ${wasted}"
    );
    run(&run_args(&exp), &env_refs(&env)).unwrap();
    let mut problems = differences(&whole, &Snapshot::take(dir.path(), "crash"));
    let (paid, (spent, _)) = (billed(&server), money_spent(dir.path()));
    if (paid - whole_billed).abs() > 1e-9 {
        problems.push(format!(
            "the server billed ${paid} instead of ${whole_billed}"
        ));
    }
    if (spent - paid).abs() > 1e-9 {
        problems.push(format!(
            "state.json counts ${spent}; the server billed ${paid} (the empty replies cost \
             ${wasted})"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
