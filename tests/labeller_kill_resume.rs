//! `lab run` with an LLM labeller killed (SIGKILL) in the middle of a labelling call, after the
//! server billed replies that bought no label and with one request in flight, then run again:
//! the money the killed run paid is in the cell's spend log, so the rerun stays within the
//! money budget and buys no label twice.
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::llm_cell::stopped_by_money_budget;
use support::mock_openai::{last_user, subject_reply, MockServer, Options, Turn};
use support::tiny_run::{lab_run_with_key, llm_budget_experiment, spawn_lab_run_with_key};

const PRICES: (f64, f64) = (100.0, 200.0);
const KEY_ENV: &str = "LAB_TEST_KILL_KEY";
/// Replies that bought no label before the kill: the third item's first four tries.
const EMPTIES: usize = 4;

#[test]
fn a_run_killed_mid_call_is_resumed_within_the_money_budget() {
    // Two labels, then empty replies, then a request that hangs until the run is killed;
    // labels again after that (the rerun's).
    let hang_at = 2 + EMPTIES + 1;
    let calls = AtomicUsize::new(0);
    let (arrived_tx, arrived) = mpsc::channel::<()>();
    let arrived_tx = Mutex::new(arrived_tx);
    let (release, released) = mpsc::channel::<()>();
    let released = Mutex::new(released);
    let responder = Arc::new(move |turns: &[Turn]| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n == hang_at {
            arrived_tx.lock().unwrap().send(()).unwrap();
            // Until the test ends: this request's reply never reaches the killed run.
            let _ = released.lock().unwrap().recv();
            return String::new();
        }
        if (3..hang_at).contains(&n) {
            return String::new();
        }
        subject_reply(&last_user(turns))
    });
    let server = MockServer::start(Options {
        responder,
        ..Options::default()
    });
    let dir = tempfile::tempdir().unwrap();
    // The killed run's two labels, four empty replies and the hanging request's worst case
    // take about $0.07 of it; unrecorded, the rerun would spend the whole budget again. No
    // few-shot examples: each request's worst case (about $0.02) stays below what the empty
    // replies cost, so they cannot hide in the room a budget stop leaves.
    let budget = 0.12;
    let exp = llm_budget_experiment(
        dir.path(),
        &server.base_url(),
        KEY_ENV,
        PRICES,
        budget,
        &format!(
            "max_retries = {}\nconcurrency = 1\nfew_shot = 0",
            EMPTIES + 2
        ),
    );

    let mut killed = spawn_lab_run_with_key(&exp, dir.path(), KEY_ENV, &Options::default().api_key);
    let in_flight = arrived.recv_timeout(Duration::from_secs(300));
    killed.kill().unwrap();
    killed.wait().unwrap();
    in_flight.expect("the killed run reached the hanging request");
    let before_rerun = server.served();
    assert_eq!(
        before_rerun.iter().filter(|s| s.empty).count(),
        EMPTIES,
        "{before_rerun:?}"
    );

    let out = lab_run_with_key(&exp, dir.path(), KEY_ENV, &Options::default().api_key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (state, spent) = stopped_by_money_budget(dir.path(), budget);
    let served = server.served();
    let billed: f64 = served.iter().map(|s| s.price(PRICES)).sum();
    assert!(
        billed <= budget + 1e-12,
        "the server billed ${billed} over both runs against a ${budget} budget"
    );
    // Everything billed is counted, and the hanging request at its worst case too.
    assert!(
        spent >= billed - 1e-9,
        "the cell records ${spent}, the server billed ${billed}, the budget is ${budget}"
    );
    let mut labels: Vec<&str> = served
        .iter()
        .filter(|s| !s.empty)
        .map(|s| s.input.as_str())
        .collect();
    let bought = labels.len();
    labels.sort();
    labels.dedup();
    assert_eq!(labels.len(), bought, "a label was bought twice");
    assert!(
        state["labeled_ids"].as_array().unwrap().len() > 2,
        "the rerun bought more labels: {state}"
    );
    drop(release);
}
