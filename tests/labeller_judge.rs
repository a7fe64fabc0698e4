//! `llm_judge` through the mock server: strict 1-5 parsing, one re-ask, then an error.
mod support;

use atgen_lab::config::parse_experiment;
use atgen_lab::labeller::factory::make_judge;
use atgen_lab::labeller::judge::{judge, DEFAULT_RUBRIC};
use atgen_lab::labeller::llm::{LlmClient, Provider};
use std::sync::Arc;
use support::mock_openai::{last_user, Fault, MockServer, Options, Route, Turn, REFUSAL};

fn judge_server() -> MockServer {
    let responder = |turns: &[Turn]| {
        let prompt = &turns.iter().find(|(r, _)| r == "user").unwrap().1;
        let asked_again = turns.iter().filter(|(r, _)| r == "user").count() > 1;
        let candidate = prompt.split("Candidate output:\n").nth(1).unwrap_or("");
        let reply = if candidate.starts_with("GOOD") {
            "5"
        } else if candidate.starts_with("BAD") {
            "<think>misses the point</think>\n2"
        } else if candidate.starts_with("VAGUE") {
            if asked_again {
                "4"
            } else {
                "Score: 4"
            }
        } else {
            "excellent"
        };
        assert!(!last_user(turns).is_empty());
        reply.to_string()
    };
    MockServer::start(Options {
        responder: Arc::new(responder),
        ..Options::default()
    })
}

fn client(srv: &MockServer, dir: &std::path::Path) -> LlmClient {
    std::env::set_var("LAB_TEST_KEY_J", Options::default().api_key);
    let cfg = support::config(
        Provider::Custom,
        &srv.base_url(),
        "mock-model",
        "LAB_TEST_KEY_J",
        dir,
    );
    LlmClient::from_config(&cfg).unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn scores_are_parsed_strictly_with_one_reask() {
    let srv = judge_server();
    let dir = tempfile::tempdir().unwrap();
    let c = client(&srv, dir.path());
    let inputs = strings(&["email one", "email two", "email three"]);
    let preds = strings(&["GOOD subject", "BAD subject", "VAGUE subject"]);
    let refs = vec![
        strings(&["subject one"]),
        strings(&["subject two"]),
        strings(&["subject three"]),
    ];
    let scores = judge(&c, DEFAULT_RUBRIC, &inputs, &preds, &refs).unwrap();
    assert_eq!(scores, vec![5.0, 2.0, 4.0]);
    assert_eq!(
        srv.count("POST", "/v1/chat/completions"),
        4,
        "one re-ask for the vague reply"
    );
    assert!(c.spent() > 0.0);
}

#[test]
fn a_reply_that_is_never_a_score_is_an_error() {
    let srv = judge_server();
    let dir = tempfile::tempdir().unwrap();
    let c = client(&srv, dir.path());
    let err = judge(
        &c,
        "Be exact.",
        &strings(&["in"]),
        &strings(&["NEVER"]),
        &[strings(&["ref"])],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("item 1") && err.contains("excellent"), "{err}");
    // Both replies are cached: the error says a rerun gets them again, and what to change.
    assert!(
        err.contains("a rerun gets the same") && err.contains("eval.judge.rubric"),
        "{err}"
    );
    let mismatch = judge(
        &c,
        "x",
        &strings(&["a", "b"]),
        &strings(&["GOOD"]),
        &[strings(&["r"])],
    );
    assert!(mismatch
        .unwrap_err()
        .to_string()
        .contains("2 inputs, 1 predictions"));
}

/// The judge's errors name the judge's settings: a refused judgement used to advise changing
/// labeller.system_prompt or labeller.model, which the judge does not use.
#[test]
fn a_refused_judgement_names_the_judge_settings() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("LAB_TEST_KEY_J_REFUSED", Options::default().api_key);
    // Only `make_judge` reads it in this file.
    std::env::set_var("LAB_LABEL_CACHE", dir.path());
    let text = format!(
        "[data]\npath = \"d\"\n\n[eval.judge]\nprovider = \"custom\"\nbase_url = \"{}\"\n\
         model = \"mock-model\"\napi_key_env = \"LAB_TEST_KEY_J_REFUSED\"\n",
        srv.base_url()
    );
    let exp = parse_experiment(&text, std::path::Path::new("x.toml")).unwrap();
    let judge = make_judge(&exp).unwrap().expect("an [eval.judge] table");
    srv.inject(Route::Chat, Fault::Refusal);
    let err = judge
        .score(&strings(&["in"]), &strings(&["GOOD"]), &[strings(&["ref"])])
        .unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains(REFUSAL)
            && err.contains("refused to score it")
            && err.contains("take the item out of the test data")
            && err.contains("eval.judge.rubric or eval.judge.model")
            && !err.contains("labeller."),
        "{err}"
    );
}
