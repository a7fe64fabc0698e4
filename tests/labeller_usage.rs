//! What a reply counts for against the money budget when its `usage` is missing or reports
//! cached input tokens (chat, Batch and Anthropic replies from the mock server).
mod support;

use atgen_lab::labeller::budget::worst_case_cost;
use atgen_lab::labeller::llm::{LlmLabeller, LlmLabellerConfig, Provider};
use atgen_lab::labeller::{LabelOutcome, Labeller};
use serde_json::{json, Value};
use std::sync::Arc;
use support::mock_openai::{
    expected_label, usable_then_empty, MockServer, Options, ReplyEditor, Served,
};
use support::{config, emails};

fn without_usage() -> Option<ReplyEditor> {
    Some(Arc::new(|body: &mut Value| {
        body.as_object_mut().unwrap().remove("usage");
    }))
}

fn batch_config(srv: &MockServer, var: &str, cache: &std::path::Path) -> LlmLabellerConfig {
    let mut cfg = srv.openai_config(var, cache);
    cfg.batch_api = true;
    cfg
}

/// The most each item's request can cost at the batch price.
fn worst_cases(lab: &LlmLabeller, cfg: &LlmLabellerConfig, n: usize) -> Vec<f64> {
    let prices = cfg.prices().scaled(cfg.batch_discount);
    emails(n)
        .iter()
        .map(|ex| worst_case_cost(&lab.request(&ex.input, &[]), None, &prices))
        .collect()
}

/// A batch line with a reply but no `usage` was an error ("no usage in the batch reply") that
/// counted nothing: the reply was billed, and the budget took it for free. Now it is a label,
/// counted at the worst-case input and the estimated output, never below what was billed.
#[test]
fn a_batch_reply_without_usage_is_a_label_counted_at_an_estimate() {
    let srv = MockServer::start(Options {
        edit_reply: without_usage(),
        ..Options::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = batch_config(&srv, "LAB_TEST_KEY_USAGE_BATCH", dir.path());
    let (lab, counted) = label_emails(&srv, &cfg, 3);
    let worst = worst_cases(&lab, &cfg, 3);
    let prices = cfg.prices().scaled(cfg.batch_discount);
    assert_eq!(srv.served().len(), 3);
    for ((cost, served), worst) in counted.iter().zip(&worst) {
        let billed = prices.cost(served.input_tokens, served.output_tokens);
        assert!(
            *cost >= billed && cost <= worst,
            "counted {cost} for a reply billed {billed} (worst case {worst})"
        );
    }
    let total: f64 = counted.iter().map(|(cost, _)| cost).sum();
    assert!((lab.spent() - total).abs() < 1e-12);
    assert_eq!(lab.client().replies_without_usage(), 3);
}

/// An empty batch reply without `usage` bought no label but was billed: it counted nothing
/// toward the money spent on no label, so a resumed run had that money again.
#[test]
fn an_empty_batch_reply_without_usage_counts_as_money_spent_on_no_label() {
    let run = failed_batch(
        Options {
            edit_reply: without_usage(),
            responder: usable_then_empty(1),
            ..Options::default()
        },
        "LAB_TEST_KEY_USAGE_EMPTY",
    );
    assert!(run.err.contains("empty completion"), "{}", run.err);
    let empty = run.srv.served().into_iter().find(|s| s.empty).unwrap();
    let billed = run
        .cfg
        .prices()
        .scaled(run.cfg.batch_discount)
        .cost(empty.input_tokens, empty.output_tokens);
    let counted = run.lab.unlabelled_spent();
    assert!(
        counted >= billed && counted <= run.worst[0].max(run.worst[1]),
        "counted {counted} for an empty reply billed {billed}"
    );
    assert_eq!(run.lab.client().replies_without_usage(), 2);
}

/// A batch labelling of two emails that failed, with what it ran against.
struct FailedBatch {
    srv: MockServer,
    cfg: LlmLabellerConfig,
    lab: LlmLabeller,
    /// Each request's worst case at the batch price.
    worst: Vec<f64>,
    err: String,
    _cache: tempfile::TempDir,
}

fn failed_batch(options: Options, var: &str) -> FailedBatch {
    let srv = MockServer::start(options);
    let cache = tempfile::tempdir().unwrap();
    let cfg = batch_config(&srv, var, cache.path());
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let worst = worst_cases(&lab, &cfg, 2);
    let err = format!("{:#}", lab.label(&emails(2), &[]).unwrap_err());
    FailedBatch {
        srv,
        cfg,
        lab,
        worst,
        err,
        _cache: cache,
    }
}

/// OpenAI's usage with half the prompt read from its prompt cache.
fn half_cached() -> Option<ReplyEditor> {
    Some(Arc::new(|body: &mut Value| {
        let prompt = body["usage"]["prompt_tokens"].as_u64().unwrap();
        body["usage"]["prompt_tokens_details"] = json!({"cached_tokens": prompt / 2});
    }))
}

/// Labels `n` emails through `cfg`; returns the labeller, and each label's cost with what
/// the server served for its input.
fn label_emails(
    srv: &MockServer,
    cfg: &LlmLabellerConfig,
    n: usize,
) -> (LlmLabeller, Vec<(f64, Served)>) {
    let items = emails(n);
    let mut lab = LlmLabeller::from_config(cfg).unwrap();
    let out = lab.label(&items, &[]).unwrap();
    let LabelOutcome::Complete(labels) = out else {
        panic!("{out:?}")
    };
    let served = srv.served();
    let counted = items
        .iter()
        .zip(labels)
        .map(|(ex, l)| {
            assert_eq!(l.output, expected_label(&ex.input));
            let s = served.iter().find(|s| s.input == ex.input).unwrap();
            (l.cost, s.clone())
        })
        .collect();
    (lab, counted)
}

/// Each label's cost with what the server served for its input (see [`label_emails`]).
fn costs_and_served(srv: &MockServer, cfg: &LlmLabellerConfig, n: usize) -> Vec<(f64, Served)> {
    label_emails(srv, cfg, n).1
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1e-9)
}

/// OpenAI's cached input tokens (`prompt_tokens_details.cached_tokens`) were counted at the
/// full input price. With `price_cached_input_per_mtok` they count at that price; without it
/// they still count at the input price (an over-count, never an under-count).
#[test]
fn openai_cached_input_counts_at_the_cached_price_when_one_is_set() {
    let srv = MockServer::start(Options {
        edit_reply: half_cached(),
        ..Options::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = srv.openai_config("LAB_TEST_KEY_USAGE_CACHED", dir.path());
    cfg.price_cached_input_per_mtok = Some(0.03);
    for (cost, s) in costs_and_served(&srv, &cfg, 3) {
        let cached = s.input_tokens / 2;
        let expected = ((s.input_tokens - cached) as f64 * 0.15
            + cached as f64 * 0.03
            + s.output_tokens as f64 * 0.6)
            / 1e6;
        assert!(close(cost, expected), "counted {cost}, billed {expected}");
    }

    let unset = tempfile::tempdir().unwrap();
    let mut cfg = srv.openai_config("LAB_TEST_KEY_USAGE_CACHED", unset.path());
    cfg.price_cached_input_per_mtok = None;
    for (cost, s) in costs_and_served(&srv, &cfg, 3) {
        assert!(close(cost, s.cost_under(&cfg)), "{cost}");
    }
}

/// Anthropic reports the tokens read from and written to its prompt cache apart from
/// `input_tokens`, and they were not counted at all: money spent past the budget's count.
/// Now reads count at `price_cached_input_per_mtok` (else the input price) and writes at
/// `price_cache_write_per_mtok` (else twice the input price, the most Anthropic charges).
#[test]
fn anthropic_prompt_cache_tokens_are_counted() {
    let srv = MockServer::start(Options {
        edit_reply: Some(Arc::new(|body: &mut Value| {
            body["usage"]["cache_read_input_tokens"] = json!(300);
            body["usage"]["cache_creation_input_tokens"] = json!(100);
        })),
        ..Options::default()
    });
    let var = "LAB_TEST_KEY_USAGE_ANTHROPIC";
    std::env::set_var(var, Options::default().api_key);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        Provider::Anthropic,
        &srv.host_url(),
        "mock-model",
        var,
        dir.path(),
    );
    for (cost, s) in costs_and_served(&srv, &cfg, 2) {
        let expected = (s.input_tokens as f64 * 0.15
            + 300.0 * 0.15
            + 100.0 * 0.30
            + s.output_tokens as f64 * 0.6)
            / 1e6;
        assert!(close(cost, expected), "counted {cost}, at least {expected}");
    }

    let told = tempfile::tempdir().unwrap();
    cfg.cache_dir = Some(told.path().to_path_buf());
    cfg.price_cached_input_per_mtok = Some(0.015);
    cfg.price_cache_write_per_mtok = Some(0.1875);
    for (cost, s) in costs_and_served(&srv, &cfg, 2) {
        let expected = (s.input_tokens as f64 * 0.15
            + 300.0 * 0.015
            + 100.0 * 0.1875
            + s.output_tokens as f64 * 0.6)
            / 1e6;
        assert!(close(cost, expected), "counted {cost}, billed {expected}");
    }
}

/// A batch line answered with 200 whose body is not a completion (its content not text)
/// counted nothing, though the provider most likely billed it; a live reply that cannot be
/// read counts at its worst case, and now so does the batch line.
#[test]
fn an_unreadable_batch_reply_counts_at_its_worst_case() {
    let run = failed_batch(
        Options {
            edit_reply: Some(Arc::new(|body: &mut Value| {
                let content = &mut body["choices"][0]["message"]["content"];
                if content.as_str().is_some_and(|t| t.contains("number 1 ")) {
                    *content = json!({"unexpected": "object"});
                }
            })),
            ..Options::default()
        },
        "LAB_TEST_KEY_USAGE_UNREADABLE",
    );
    assert!(run.err.contains("content is not text"), "{}", run.err);
    let counted = run.lab.unlabelled_spent();
    assert!(
        close(counted, run.worst[1]),
        "counted {counted} for the unreadable reply, worst case {}",
        run.worst[1]
    );
}
