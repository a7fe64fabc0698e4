//! Batch API mode against servers that fail or do not answer as the API does: polling that
//! gives up, an echo of the request's headers, a redirect. The error says what happened and
//! never carries the API key, and no money stays held for a call that failed.
mod support;

use atgen_lab::labeller::budget::worst_case_cost;
use atgen_lab::labeller::llm::{LlmLabeller, LlmLabellerConfig};
use atgen_lab::labeller::{LabelOutcome, Labeller};
use support::emails;
use support::mock_openai::{redirector, Fault, MockServer, Options, Route};

fn batch_config(srv: &MockServer, var: &str, cache: &std::path::Path) -> LlmLabellerConfig {
    let mut cfg = srv.openai_config(var, cache);
    cfg.batch_api = true;
    cfg
}

/// A reply without the field the protocol needs was quoted as it came: from an echo service
/// or a debugging proxy, with the API key in it.
#[test]
fn a_reply_echoing_the_key_is_quoted_without_it() {
    let srv = MockServer::start(Options::default());
    let key = Options::default().api_key;
    let dir = tempfile::tempdir().unwrap();
    let cfg = batch_config(&srv, "LAB_TEST_KEY_BR_ECHO", dir.path());
    for _ in 0..=cfg.max_retries {
        srv.inject(Route::Files, Fault::EchoHeadersJson);
    }
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let err = format!("{:#}", lab.label(&emails(2), &[]).unwrap_err());
    assert!(
        err.contains("no string field \"id\"") && err.contains("LAB_TEST_KEY_BR_ECHO redacted"),
        "{err}"
    );
    assert!(!err.contains(&key), "the key is in the error: {err}");
    assert_eq!(srv.count("POST", "/v1/batches"), 0);
}

/// Uploading the input file followed no redirect but read the 3xx as a reply that is not
/// JSON, retried it, and ended in "reply is not JSON": now it is the redirect error that
/// chat requests give, at once.
#[test]
fn a_redirected_upload_says_where_it_points_and_is_not_retried() {
    let target = MockServer::start(Options::default());
    let key = Options::default().api_key;
    let (port, seen) = redirector(302, target.base_url());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = batch_config(&target, "LAB_TEST_KEY_BR_REDIRECT", dir.path());
    cfg.base_url = Some(format!("http://127.0.0.1:{port}/v1"));
    let err = format!(
        "{:#}",
        LlmLabeller::from_config(&cfg)
            .unwrap()
            .label(&emails(2), &[])
            .unwrap_err()
    );
    assert!(
        err.contains("/v1/files redirects (HTTP 302)")
            && err.contains(&target.base_url())
            && err.contains("base_url"),
        "{err}"
    );
    assert!(!err.contains(&key), "{err}");
    let uploads = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/files")
        .count();
    assert_eq!(uploads, 1, "not retried");
    assert!(target.requests().is_empty(), "the redirect was followed");
}

/// Polling that gave up left the worst cases of the job's requests held in the budget, so a
/// later call of the same labeller (the job collected, then new requests) found that much less
/// money and stopped early. Now it is released; the job's cost counts when it is collected.
#[test]
fn a_poll_failure_leaves_no_money_held_for_the_rerun() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = batch_config(&srv, "LAB_TEST_KEY_BR_POLL", dir.path());
    let items = emails(4);
    let probe = LlmLabeller::from_config(&cfg).unwrap();
    let prices = cfg.prices().scaled(cfg.batch_discount);
    let worst = items
        .iter()
        .map(|ex| worst_case_cost(&probe.request(&ex.input, &[]), None, &prices))
        .fold(0.0, f64::max);
    drop(probe);
    // All four fit at their worst case, with little to spare.
    cfg.money_budget = Some(4.05 * worst);
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    srv.inject(Route::BatchGet, Fault::Unauthorized);
    let err = format!("{:#}", lab.label(&items[..2], &[]).unwrap_err());
    assert!(err.contains("HTTP 401"), "{err}");
    let available = lab.client().budget().available().unwrap();
    assert!(
        (available - (4.05 * worst - lab.spent())).abs() < 1e-12,
        "held after the failure: {} of {}",
        4.05 * worst - lab.spent() - available,
        4.05 * worst
    );

    // The rerun collects the job for the first two and sends the other two as a new one.
    let out = lab.label(&items, &[]).unwrap();
    let LabelOutcome::Complete(labels) = out else {
        panic!("the rerun stopped early: {out:?}")
    };
    assert_eq!(labels.len(), 4);
    assert_eq!(srv.count("POST", "/v1/batches"), 2);
    assert!(lab.spent() <= 4.05 * worst);
}
