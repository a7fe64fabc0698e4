//! The OpenAI-compatible labeller's money budget against the mock server: the stop keeps what
//! was labeled, never overshoots and does not depend on timing, the cache or failures after
//! it; empty replies are paid for; a tokenizer tightens the worst case.
mod support;

use atgen_lab::labeller::budget::worst_case_cost;
use atgen_lab::labeller::llm::LlmLabeller;
use atgen_lab::labeller::{LabelOutcome, Labeller};
use support::mock_openai::{expected_label, Fault, MockServer, Options, Route};
use support::{emails, example};

#[test]
fn budget_stop_keeps_labels_never_overshoots_and_ignores_timing() {
    let items = emails(12);
    let mut stops = Vec::new();
    for concurrency in [1, 4] {
        let srv = MockServer::start(Options::default());
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = srv.openai_config("LAB_TEST_KEY_O2", dir.path());
        cfg.concurrency = concurrency;
        let lab0 = LlmLabeller::from_config(&cfg).unwrap();
        let worst = worst_case_cost(&lab0.request(&items[0].input, &[]), None, &cfg.prices());
        drop(lab0);
        let budget = 4.5 * worst;
        cfg.money_budget = Some(budget);
        let mut lab = LlmLabeller::from_config(&cfg).unwrap();
        let out = lab.label(&items, &[]).unwrap();
        let LabelOutcome::BudgetReached(labels) = out else {
            panic!("expected BudgetReached, got {out:?}")
        };
        // Actual costs are below the worst case, so more than 4 fit, but not all 12.
        assert!(
            labels.len() > 4 && labels.len() < 12,
            "{} labels",
            labels.len()
        );
        for (ex, l) in items.iter().zip(&labels) {
            assert_eq!(l.output, expected_label(&ex.input));
        }
        let paid: f64 = srv.served().iter().map(|s| s.cost_under(&cfg)).sum();
        assert!(paid <= budget, "paid {paid} > budget {budget}");
        assert!((lab.spent() - paid).abs() < 1e-15);
        assert_eq!(
            srv.served().len(),
            labels.len(),
            "nothing paid beyond the kept labels"
        );
        // The stop is where the next worst case no longer fits what was actually spent.
        let next = worst_case_cost(
            &lab.request(&items[labels.len()].input, &[]),
            None,
            &cfg.prices(),
        );
        assert!(paid + next > budget);
        stops.push(labels.len());
    }
    assert_eq!(stops[0], stops[1], "same stop at concurrency 1 and 4");

    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = srv.openai_config("LAB_TEST_KEY_O2", dir.path());
    cfg.money_budget = Some(0.0);
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    assert_eq!(
        lab.label(&items, &[]).unwrap(),
        LabelOutcome::BudgetReached(vec![])
    );
    assert_eq!(srv.count("POST", "/v1/chat/completions"), 0);
}

#[test]
fn empty_replies_are_billed_and_stop_the_run_when_the_budget_cannot_cover_another_try() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = srv.openai_config("LAB_TEST_KEY_O9", dir.path());
    cfg.concurrency = 1;
    cfg.max_retries = 20;
    cfg.retry_base_s = 0.01;
    cfg.retry_max_s = 0.02;
    // Input priced high: an empty reply (input tokens only) costs most of a request's worst
    // case, so the budget pays for a few of them and then cannot hold the next try's.
    cfg.price_input_per_mtok = 100.0;
    cfg.money_budget = Some(0.03);
    let items = emails(2);
    for _ in 0..20 {
        srv.inject(Route::Chat, Fault::Empty);
    }
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let out = lab.label(&items, &[]).unwrap();
    let LabelOutcome::BudgetReached(labels) = out else {
        panic!("{out:?}")
    };
    assert!(labels.is_empty());
    let served = srv.served();
    assert!(
        served.len() >= 2 && served.iter().all(|s| s.empty),
        "{}",
        served.len()
    );
    let paid: f64 = served.iter().map(|s| s.cost_under(&cfg)).sum();
    assert!(
        (lab.spent() - paid).abs() < 1e-15,
        "{} vs {paid}",
        lab.spent()
    );
    assert!(lab.spent() <= 0.03, "the budget holds: {}", lab.spent());
    assert!(
        served.len() < 20,
        "stopped by the budget, not by running out of retries"
    );
}

#[test]
fn a_token_counter_replaces_the_estimate_in_the_worst_case() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = srv.openai_config("LAB_TEST_KEY_O9", dir.path());
    let items = emails(3);
    let lab = LlmLabeller::from_config(&cfg).unwrap();
    let estimate = worst_case_cost(&lab.request(&items[0].input, &[]), None, &cfg.prices());
    drop(lab);
    // Room for every item under the chars/3 estimate, none under a counter that says 100x.
    cfg.money_budget = Some(3.5 * estimate);
    let mut counted = LlmLabeller::from_config(&cfg).unwrap();
    counted
        .client_mut()
        .set_token_counter(Box::new(|t: &str| 100 * t.len()));
    assert_eq!(
        counted.label(&items, &[]).unwrap(),
        LabelOutcome::BudgetReached(vec![])
    );
    let mut estimated = LlmLabeller::from_config(&cfg).unwrap();
    assert_eq!(estimated.label(&items, &[]).unwrap().labels().len(), 3);
}

#[test]
fn the_budget_stops_at_the_same_label_whatever_the_cache_holds() {
    let items = emails(12);
    let srv = MockServer::start(Options::default());
    let stop_with = |cache: &std::path::Path, prefill: usize| -> (usize, f64, usize) {
        let mut cfg = srv.openai_config("LAB_TEST_KEY_O9", cache);
        if prefill > 0 {
            let mut unlimited = LlmLabeller::from_config(&cfg).unwrap();
            unlimited.label(&items[..prefill], &[]).unwrap();
        }
        let lab0 = LlmLabeller::from_config(&cfg).unwrap();
        let worst = worst_case_cost(&lab0.request(&items[0].input, &[]), None, &cfg.prices());
        cfg.money_budget = Some(4.5 * worst);
        let calls = srv.count("POST", "/v1/chat/completions");
        let mut lab = LlmLabeller::from_config(&cfg).unwrap();
        let LabelOutcome::BudgetReached(labels) = lab.label(&items, &[]).unwrap() else {
            panic!("expected the budget to stop the run")
        };
        let sent = srv.count("POST", "/v1/chat/completions") - calls;
        (labels.len(), lab.spent(), sent)
    };
    let empty = tempfile::tempdir().unwrap();
    let (stop, spent, sent) = stop_with(empty.path(), 0);
    assert!(stop > 4 && stop < 12, "{stop}");
    assert_eq!(sent, stop);
    for prefill in [3, 12] {
        let dir = tempfile::tempdir().unwrap();
        let (stop_c, spent_c, sent_c) = stop_with(dir.path(), prefill);
        assert_eq!(
            stop_c, stop,
            "cache holding {prefill} labels moved the stop"
        );
        assert!((spent_c - spent).abs() < 1e-15, "{spent_c} vs {spent}");
        assert_eq!(
            sent_c,
            stop.saturating_sub(prefill),
            "cached labels are not bought again"
        );
    }
}

#[test]
fn a_failure_after_the_budget_stop_point_keeps_the_clean_stop() {
    // Item 0 gets only empty replies, which use up the budget; item 1, in flight at the
    // same time, is refused (too long). The budget stops the run at item 0, before item 1,
    // so item 1's failure is no reason to abort.
    let srv = MockServer::start(Options {
        context_chars: Some(400),
        responder: std::sync::Arc::new(|turns| {
            let input = support::mock_openai::last_user(turns);
            if input.contains("EMPTY") {
                String::new()
            } else {
                support::mock_openai::subject_reply(&input)
            }
        }),
        ..Options::default()
    });
    let items = vec![
        example(1, "EMPTY reply for this one"),
        example(2, &"Too long for the context ".repeat(40)),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = srv.openai_config("LAB_TEST_KEY_O11", dir.path());
    cfg.concurrency = 2;
    cfg.max_retries = 50;
    cfg.price_input_per_mtok = 100.0;
    let lab0 = LlmLabeller::from_config(&cfg).unwrap();
    let worst_long = worst_case_cost(&lab0.request(&items[1].input, &[]), None, &cfg.prices());
    let worst_short = worst_case_cost(&lab0.request(&items[0].input, &[]), None, &cfg.prices());
    drop(lab0);
    cfg.money_budget = Some(worst_long + 3.0 * worst_short);
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let out = lab.label(&items, &[]).unwrap();
    assert_eq!(out, LabelOutcome::BudgetReached(vec![]));
    assert_eq!(
        srv.requests()
            .iter()
            .filter(|r| r.body.contains("Too long"))
            .count(),
        1,
        "the long item was sent (and refused)"
    );
}
