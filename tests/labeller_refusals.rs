//! Remembered refusals (`refusals.jsonl` in the label cache) against the mock server: a call
//! that holds one stops before sending anything, in live and Batch mode alike, and a refusal
//! at a temperature above 0 is not remembered, so a rerun asks again.
mod support;

use atgen_lab::data::Example;
use atgen_lab::labeller::budget::worst_case_cost;
use atgen_lab::labeller::llm::{LlmLabeller, LlmLabellerConfig};
use atgen_lab::labeller::{LabelOutcome, Labeller};
use serde_json::Value;
use std::path::Path;
use support::mock_openai::{Fault, MockServer, Options, Route, REFUSAL};
use support::{emails, example};

/// The item the batch mock refuses (its marker) and the live tests refuse by a fault.
fn refused_item() -> Example {
    example(
        7,
        "REFUSE this email, the model will not summarise it at all",
    )
}

fn batch_config(srv: &MockServer, var: &str, cache: &Path) -> LlmLabellerConfig {
    let mut cfg = srv.openai_config(var, cache);
    cfg.batch_api = true;
    cfg
}

fn error_of(cfg: &LlmLabellerConfig, items: &[Example]) -> String {
    let mut lab = LlmLabeller::from_config(cfg).unwrap();
    let err = lab.label(items, &[]).map(|_| ()).unwrap_err();
    assert_eq!(
        lab.spent(),
        0.0,
        "a call stopped before sending counts nothing"
    );
    format!("{err:#}")
}

/// Lines of every batch input file the server received that hold the refused item.
fn refused_batch_lines(srv: &MockServer) -> usize {
    srv.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/batches")
        .map(|r| {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            let file = srv.file(body["input_file_id"].as_str().unwrap()).unwrap();
            file.lines()
                .filter(|l| l.contains("REFUSE this email"))
                .count()
        })
        .sum()
}

/// What both modes say when a call stops at a remembered refusal.
fn assert_stopped_before_sending(err: &str) {
    assert!(
        err.contains("labelling item id 7")
            && err.contains("labelling stopped at item 3 of 4 before sending anything")
            && err.contains(REFUSAL)
            && err.contains("take the item out of the data")
            && err.contains("refusals.jsonl"),
        "{err}"
    );
}

/// Live sending used to label the items before a remembered refusal (paying for them) and
/// then fail at it, while a Batch call sent nothing: now neither pays for a call bound to fail.
#[test]
fn a_live_call_holding_a_remembered_refusal_sends_nothing() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = srv.openai_config("LAB_TEST_KEY_R_LIVE", dir.path());
    cfg.concurrency = 1;
    let e = emails(3);
    let mut first = LlmLabeller::from_config(&cfg).unwrap();
    first.label(&e[..1], &[]).unwrap();
    srv.inject(Route::Chat, Fault::Refusal);
    assert!(first.label(&[refused_item()], &[]).is_err());
    let sent = srv.count("POST", "/v1/chat/completions");
    assert_eq!(sent, 2);

    // A new item, a cached one, the refused one, another new one.
    let items = [e[1].clone(), e[0].clone(), refused_item(), e[2].clone()];
    let err = error_of(&cfg, &items);
    assert_stopped_before_sending(&err);
    assert_eq!(
        srv.count("POST", "/v1/chat/completions"),
        sent,
        "nothing was sent for a call bound to fail"
    );
}

/// The Batch counterpart: the same advice, nothing sent, and the cached item before the
/// refusal counts nothing (it used to be charged at its price for the failed call).
#[test]
fn a_batch_call_holding_a_remembered_refusal_sends_nothing() {
    let srv = MockServer::start(Options {
        batch_refusal_marker: Some("REFUSE".into()),
        ..Options::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = batch_config(&srv, "LAB_TEST_KEY_R_BATCH", dir.path());
    let e = emails(3);
    assert!(LlmLabeller::from_config(&cfg)
        .unwrap()
        .label(&[e[0].clone(), refused_item()], &[])
        .is_err());
    assert_eq!(srv.count("POST", "/v1/files"), 1);

    let items = [e[1].clone(), e[0].clone(), refused_item(), e[2].clone()];
    let err = error_of(&cfg, &items);
    assert_stopped_before_sending(&err);
    assert_eq!(srv.count("POST", "/v1/files"), 1, "no job was sent");
    assert_eq!(refused_batch_lines(&srv), 1);
}

/// The worst cases of the items before a remembered refusal do not all fit the budget, but
/// their actual costs do. A Batch call stops at the budget before the refusal; live sending
/// went on as the actual costs came in, bought both items and then failed at the refusal,
/// having paid for labels of a failed call. Now live sending stops where the Batch call does.
#[test]
fn both_modes_stop_at_the_budget_before_a_refusal_the_actual_costs_might_reach() {
    let srv = MockServer::start(Options::default());
    let (live_dir, batch_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut live = srv.openai_config("LAB_TEST_KEY_R_EDGE", live_dir.path());
    live.concurrency = 1;
    srv.inject(Route::Chat, Fault::Refusal);
    let mut first = LlmLabeller::from_config(&live).unwrap();
    assert!(first.label(&[refused_item()], &[]).is_err());
    // The same remembered refusal in both label caches.
    let refusals = "refusals.jsonl";
    std::fs::copy(
        live_dir.path().join(refusals),
        batch_dir.path().join(refusals),
    )
    .unwrap();
    let batch = batch_config(&srv, "LAB_TEST_KEY_R_EDGE", batch_dir.path());

    let e = emails(2);
    let items = [e[0].clone(), e[1].clone(), refused_item()];
    for (mode, mut cfg, discount) in [("live", live, 1.0), ("batch", batch, 0.5)] {
        let prices = cfg.prices().scaled(discount);
        let probe = LlmLabeller::from_config(&cfg).unwrap();
        let worst = e
            .iter()
            .map(|ex| worst_case_cost(&probe.request(&ex.input, &[]), None, &prices))
            .fold(0.0, f64::max);
        cfg.money_budget = Some(1.5 * worst);
        let before = srv.served().len();
        let mut lab = LlmLabeller::from_config(&cfg).unwrap();
        let out = lab
            .label(&items, &[])
            .unwrap_or_else(|err| panic!("{mode}: {err:#}"));
        let LabelOutcome::BudgetReached(labels) = out else {
            panic!("{mode}: {out:?}")
        };
        assert_eq!(labels.len(), 1, "{mode}");
        let served = srv.served()[before..].to_vec();
        assert_eq!(served.len(), 1, "{mode}: only the first item was bought");
        // The situation: what the first item cost leaves room for the second's worst case.
        let paid = served[0].price((
            cfg.price_input_per_mtok * discount,
            cfg.price_output_per_mtok * discount,
        ));
        assert!(paid + worst <= 1.5 * worst, "{mode}: {paid} of {worst}");
        assert!((lab.spent() - paid).abs() < 1e-15, "{mode}");
    }
}

fn no_refusal_remembered(cache: &Path) {
    let text = std::fs::read_to_string(cache.join("refusals.jsonl")).unwrap_or_default();
    assert!(text.trim().is_empty(), "remembered: {text}");
}

/// At a temperature above 0 the same request may be answered next time: the call stops at the
/// refusal (billed once), says so, and a rerun asks again. It used to be remembered as at
/// temperature 0, and every rerun failed without asking.
#[test]
fn a_live_refusal_at_a_temperature_above_zero_is_asked_again_by_a_rerun() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = srv.openai_config("LAB_TEST_KEY_R_WARM", dir.path());
    cfg.concurrency = 1;
    cfg.temperature = 0.7;
    let items = [refused_item()];
    srv.inject(Route::Chat, Fault::Refusal);
    let mut first = LlmLabeller::from_config(&cfg).unwrap();
    let err = format!("{:#}", first.label(&items, &[]).unwrap_err());
    assert!(
        err.contains(REFUSAL)
            && err.contains("at temperature 0.7")
            && err.contains("rerun to ask it once more"),
        "{err}"
    );
    assert_eq!(srv.count("POST", "/v1/chat/completions"), 1, "asked once");
    assert!(first.unlabelled_spent() > 0.0, "the refusal was billed");
    no_refusal_remembered(dir.path());

    let mut rerun = LlmLabeller::from_config(&cfg).unwrap();
    let out = rerun.label(&items, &[]).unwrap();
    assert_eq!(out.labels().len(), 1, "answered the second time");
    assert_eq!(srv.count("POST", "/v1/chat/completions"), 2);
}

/// The Batch counterpart: a refused line at temperature 0.7 is sent again by a rerun.
#[test]
fn a_batch_refusal_at_a_temperature_above_zero_is_sent_again_by_a_rerun() {
    let srv = MockServer::start(Options {
        batch_refusal_marker: Some("REFUSE".into()),
        ..Options::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = batch_config(&srv, "LAB_TEST_KEY_R_WARM_BATCH", dir.path());
    cfg.temperature = 0.7;
    let items = [emails(1)[0].clone(), refused_item()];
    for run in 1..=2 {
        let err = format!(
            "{:#}",
            LlmLabeller::from_config(&cfg)
                .unwrap()
                .label(&items, &[])
                .unwrap_err()
        );
        assert!(
            err.contains(REFUSAL)
                && err.contains("rerun to ask it once more")
                && err.contains("rerun to retry the failed ones"),
            "{err}"
        );
        assert_eq!(refused_batch_lines(&srv), run, "run {run} sent the line");
    }
    no_refusal_remembered(dir.path());
}
