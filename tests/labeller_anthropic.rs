//! The Anthropic messages API against the mock server (which follows Anthropic's reference:
//! `x-api-key`, `anthropic-version`, top-level `system`, content blocks, usage, error bodies).
mod support;

use atgen_lab::labeller::llm::{LlmLabeller, LlmLabellerConfig, Provider};
use atgen_lab::labeller::{LabelOutcome, Labeller};
use serde_json::Value;
use support::mock_openai::{expected_label, Fault, MockServer, Options, Route, REFUSAL};
use support::{config, emails};

fn setup(server: &MockServer, var: &str, cache: &std::path::Path) -> LlmLabellerConfig {
    std::env::set_var(var, Options::default().api_key);
    config(
        Provider::Anthropic,
        &server.host_url(),
        "mock-model",
        var,
        cache,
    )
}

#[test]
fn labels_cost_and_wire_format() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(&srv, "LAB_TEST_KEY_A1", dir.path());
    cfg.system_prompt = "Write the subject.".into();
    let items = emails(4);
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let out = lab.label(&items, &[]).unwrap();
    let LabelOutcome::Complete(labels) = out else {
        panic!("{out:?}")
    };
    let served = srv.served();
    for (ex, l) in items.iter().zip(&labels) {
        assert_eq!(l.output, expected_label(&ex.input));
        let s = served.iter().find(|s| s.input == ex.input).unwrap();
        assert_eq!(l.cost, cfg.prices().cost(s.input_tokens, s.output_tokens));
    }
    let req = srv
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/messages")
        .unwrap();
    assert_eq!(
        req.header("x-api-key"),
        Some(Options::default().api_key.as_str())
    );
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(req.header("authorization"), None);
    let body: Value = serde_json::from_str(&req.body).unwrap();
    assert_eq!(body["system"], "Write the subject.");
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    assert_eq!(body["max_tokens"], 64);
}

#[test]
fn overload_and_rate_limits_are_retried() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(&srv, "LAB_TEST_KEY_A2", dir.path());
    cfg.concurrency = 1;
    srv.inject(Route::Messages, Fault::ServerError);
    srv.inject(Route::Messages, Fault::RateLimit(0.05));
    srv.inject(Route::Messages, Fault::Empty);
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let out = lab.label(&emails(2), &[]).unwrap();
    assert_eq!(out.labels().len(), 2);
    assert_eq!(srv.count("POST", "/v1/messages"), 5);
    // Errors are free; the empty reply was billed and is counted as money that bought no
    // label, the labels at their own tokens.
    let served = srv.served();
    assert_eq!(served.len(), 3);
    let cost = |empty: bool| -> f64 {
        served
            .iter()
            .filter(|s| s.empty == empty)
            .map(|s| s.cost_under(&cfg))
            .sum()
    };
    assert!((lab.spent() - cost(true) - cost(false)).abs() < 1e-15);
    assert!(cost(true) > 0.0 && (lab.unlabelled_spent() - cost(true)).abs() < 1e-15);
    let label_costs: f64 = out.labels().iter().map(|l| l.cost).sum();
    assert!((label_costs - cost(false)).abs() < 1e-15);
}

#[test]
fn unknown_model_and_bad_key_fail_clearly_without_leaking() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(&srv, "LAB_TEST_KEY_A3", dir.path());
    cfg.model = "claude-nope".into();
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let err = format!("{:#}", lab.label(&emails(1), &[]).unwrap_err());
    assert!(
        err.contains("HTTP 404") && err.contains("not_found_error"),
        "{err}"
    );
    assert_eq!(lab.spent(), 0.0);

    std::env::set_var("LAB_TEST_KEY_A3_WRONG", "sk-ant-wrong-XYZ987");
    let mut bad = setup(&srv, "LAB_TEST_KEY_A3", dir.path());
    bad.api_key_env = Some("LAB_TEST_KEY_A3_WRONG".into());
    let err = format!(
        "{:#}",
        LlmLabeller::from_config(&bad)
            .unwrap()
            .label(&emails(1), &[])
            .unwrap_err()
    );
    assert!(
        err.contains("HTTP 401") && err.contains("LAB_TEST_KEY_A3_WRONG"),
        "{err}"
    );
    // The mock's 401 echoes the key it was sent: the error must not carry it.
    assert!(!err.contains("sk-ant-wrong-XYZ987"), "{err}");
    assert_eq!(srv.count("POST", "/v1/messages"), 2, "neither is retried");
}

#[test]
fn a_redirect_is_an_error_and_the_key_never_reaches_where_it_points() {
    let target = MockServer::start(Options::default());
    let key = Options::default().api_key;
    for status in [302, 307] {
        let (port, seen) = support::mock_openai::redirector(status, target.host_url());
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = setup(&target, "LAB_TEST_KEY_A4", dir.path());
        cfg.base_url = Some(format!("http://127.0.0.1:{port}"));
        let mut lab = LlmLabeller::from_config(&cfg).unwrap();
        let err = format!("{:#}", lab.label(&emails(1), &[]).unwrap_err());
        assert!(
            err.contains("redirects")
                && err.contains(&target.host_url())
                && err.contains("base_url"),
            "{err}"
        );
        assert!(!err.contains(&key), "{err}");
        assert_eq!(seen.lock().unwrap().len(), 1, "not retried");
        assert!(
            target.requests().is_empty(),
            "HTTP {status}: the redirect was followed"
        );
        assert_eq!(lab.spent(), 0.0);
    }
    // The OpenAI-compatible client follows no redirect either.
    let (port, _) = support::mock_openai::redirector(302, target.base_url());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(&target, "LAB_TEST_KEY_A4", dir.path());
    cfg.provider = Provider::Custom;
    cfg.base_url = Some(format!("http://127.0.0.1:{port}/v1"));
    let err = format!(
        "{:#}",
        LlmLabeller::from_config(&cfg)
            .unwrap()
            .label(&emails(1), &[])
            .unwrap_err()
    );
    assert!(err.contains("redirects"), "{err}");
    assert!(target.requests().is_empty(), "the redirect was followed");
}

/// `stop_reason: "refusal"` ends the call at once, billed, with an error saying what to do
/// (it used to be taken for an empty reply and asked again).
#[test]
fn a_refusal_stop_reason_ends_the_call_at_once() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(&srv, "LAB_TEST_KEY_A_REFUSAL", dir.path());
    cfg.concurrency = 1;
    srv.inject(Route::Messages, Fault::Refusal);
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let err = format!("{:#}", lab.label(&emails(2), &[]).unwrap_err());
    assert!(
        err.contains("stop_reason refusal") && err.contains("labeller.system_prompt"),
        "{err}"
    );
    assert!(
        !err.contains(REFUSAL),
        "the mock's Anthropic refusal has no text"
    );
    assert_eq!(srv.count("POST", "/v1/messages"), 1, "not asked again");
    let s = &srv.served()[0];
    let billed = cfg.prices().cost(s.input_tokens, s.output_tokens);
    assert!(billed > 0.0 && (lab.unlabelled_spent() - billed).abs() < 1e-15);
}

/// A refusal quotes the text before it: from a server echoing the request's headers, that
/// text holds the key, which went into the error and into `refusals.jsonl` as it came.
#[test]
fn a_refusal_quoting_the_key_is_redacted_in_the_error_and_on_disk() {
    let srv = MockServer::start(Options::default());
    let key = Options::default().api_key;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(&srv, "LAB_TEST_KEY_A_ECHO_REFUSAL", dir.path());
    cfg.concurrency = 1;
    srv.inject(Route::Messages, Fault::EchoHeadersAsContent);
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let err = format!("{:#}", lab.label(&emails(1), &[]).unwrap_err());
    assert!(
        err.contains("stop_reason refusal after")
            && err.contains("LAB_TEST_KEY_A_ECHO_REFUSAL redacted"),
        "{err}"
    );
    assert!(!err.contains(&key), "the key is in the error: {err}");
    for (path, text) in support::all_file_text(dir.path()) {
        assert!(!text.contains(&key), "the key is in {path}");
    }
}
