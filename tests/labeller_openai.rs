//! The OpenAI-compatible labeller against the mock server: labels, exact cost, budget stop,
//! label cache, retries, a server restart, fatal errors, and the key never leaking.
mod support;

use atgen_lab::labeller::budget::worst_case_cost;
use atgen_lab::labeller::llm::{LlmLabeller, LlmLabellerConfig, Provider};
use atgen_lab::labeller::{LabelOutcome, Labeller};
use std::time::{Duration, Instant};
use support::mock_openai::{expected_label, Fault, MockServer, Options, Route, Served, REFUSAL};
use support::{all_file_text, config, emails, example};

fn server() -> MockServer {
    MockServer::start(Options::default())
}

/// A config for `server` with its key put in the environment variable `var`.
fn setup(server: &MockServer, var: &str, cache: &std::path::Path) -> LlmLabellerConfig {
    std::env::set_var(var, &Options::default().api_key);
    config(
        Provider::Custom,
        &server.base_url(),
        "mock-model",
        var,
        cache,
    )
}

fn served_cost(cfg: &LlmLabellerConfig, s: &Served) -> f64 {
    cfg.prices().cost(s.input_tokens, s.output_tokens)
}

fn served_for<'a>(server: &'a [Served], input: &str) -> &'a Served {
    let found: Vec<&Served> = server.iter().filter(|s| s.input == input).collect();
    assert_eq!(found.len(), 1, "one paid completion for {input:?}");
    found[0]
}

#[test]
fn labels_match_and_cost_equals_usage_times_price() {
    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(&srv, "LAB_TEST_KEY_O1", dir.path());
    cfg.few_shot = 2;
    cfg.concurrency = 3;
    cfg.system_prompt = "Write the email's subject.".into();
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let items = emails(7);
    let shots = vec![
        atgen_lab::data::Example {
            output: "Shot one".into(),
            ..example(100, "First shot email")
        },
        atgen_lab::data::Example {
            output: "Shot two".into(),
            ..example(101, "Second shot email")
        },
        atgen_lab::data::Example {
            output: "Shot three".into(),
            ..example(102, "Third shot email")
        },
    ];
    let out = lab.label(&items, &shots).unwrap();
    let LabelOutcome::Complete(labels) = out else {
        panic!("expected Complete, got {out:?}")
    };
    assert_eq!(labels.len(), 7);
    let served = srv.served();
    let mut total = 0.0;
    for (ex, l) in items.iter().zip(&labels) {
        assert_eq!(l.id, ex.id);
        assert_eq!(
            l.output,
            expected_label(&ex.input),
            "think block removed, first line kept"
        );
        let s = served_for(&served, &ex.input);
        assert_eq!(
            (l.input_tokens, l.output_tokens),
            (s.input_tokens, s.output_tokens)
        );
        assert_eq!(l.cost, served_cost(&cfg, s), "cost = usage x price");
        assert!(l.cost > 0.0);
        total += l.cost;
    }
    assert!((lab.spent() - total).abs() < 1e-15);
    // The wire request: system prompt, two few-shot pairs, then the input; bearer key.
    let req = srv
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/chat/completions")
        .unwrap();
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {}", Options::default().api_key).as_str())
    );
    let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
    let roles: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "user", "assistant", "user"]
    );
    assert_eq!(body["messages"][0]["content"], "Write the email's subject.");
    assert_eq!(body["messages"][2]["content"], "Shot one");
    assert_eq!(body["max_tokens"], 64);
    assert_eq!(body["temperature"], 0.0);
}

#[test]
fn budget_stop_keeps_labels_never_overshoots_and_ignores_timing() {
    let items = emails(12);
    let mut stops = Vec::new();
    for concurrency in [1, 4] {
        let srv = server();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = setup(&srv, "LAB_TEST_KEY_O2", dir.path());
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
        let paid: f64 = srv.served().iter().map(|s| served_cost(&cfg, s)).sum();
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

    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(&srv, "LAB_TEST_KEY_O2", dir.path());
    cfg.money_budget = Some(0.0);
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    assert_eq!(
        lab.label(&items, &[]).unwrap(),
        LabelOutcome::BudgetReached(vec![])
    );
    assert_eq!(srv.count("POST", "/v1/chat/completions"), 0);
}

#[test]
fn repeated_run_hits_the_cache_pays_nothing_and_counts_the_same_money() {
    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(&srv, "LAB_TEST_KEY_O3", dir.path());
    let items = emails(5);
    let first = LlmLabeller::from_config(&cfg)
        .unwrap()
        .label(&items, &[])
        .unwrap();
    let spent_first: f64 = first.labels().iter().map(|l| l.cost).sum();
    assert_eq!(srv.count("POST", "/v1/chat/completions"), 5);

    let mut again = LlmLabeller::from_config(&cfg).unwrap();
    let second = again.label(&items, &[]).unwrap();
    assert_eq!(srv.count("POST", "/v1/chat/completions"), 5, "no new calls");
    // No dollar is paid twice, but the run counts what its labels cost, so its money curve
    // and budget stop do not depend on what an earlier run left in the cache.
    assert_eq!(again.spent(), spent_first);
    for (a, b) in first.labels().iter().zip(second.labels()) {
        assert_eq!(a.output, b.output);
        assert_eq!(b.cost, a.cost);
        assert!(b.cost > 0.0);
    }

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(["labels", "stats", "--cache"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("entries:     5"), "{text}");
    assert!(
        text.contains(&format!("total spend: ${spent_first:.6}")),
        "{text}"
    );
    assert!(
        text.contains("hit rate:    50.0% (5 hits, 5 misses)"),
        "{text}"
    );
}

#[test]
fn transient_failures_are_retried_and_replies_that_may_have_been_billed_cost() {
    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(&srv, "LAB_TEST_KEY_O4", dir.path());
    cfg.concurrency = 1;
    cfg.timeout_s = 1.0;
    cfg.max_retries = 6;
    for f in [
        Fault::RateLimit(0.4),
        Fault::ServerError,
        Fault::MalformedJson,
        Fault::Empty,
        Fault::Slow(Duration::from_millis(2500)),
    ] {
        srv.inject(Route::Chat, f);
    }
    let items = emails(2);
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let start = Instant::now();
    let out = lab.label(&items, &[]).unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "Retry-After was honoured"
    );
    let LabelOutcome::Complete(labels) = out else {
        panic!("{out:?}")
    };
    assert_eq!(labels[1].output, expected_label(&items[1].input));
    assert_eq!(srv.count("POST", "/v1/chat/completions"), 7);
    // The slow request timed out on our side at 1 s, but the server answers it (and bills
    // it) at 2.5 s: wait for that before comparing with what the server billed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while srv.served().len() < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let served = srv.served();
    assert_eq!(
        served.len(),
        4,
        "errors cost nothing; the two labels, the empty completion and the timed-out \
         request were billed"
    );
    assert_eq!(served.iter().filter(|s| s.empty).count(), 1);
    let paid: f64 = served.iter().map(|s| served_cost(&cfg, s)).sum();
    // The timed-out request and the malformed 200 (which the mock does not bill, though a
    // provider would) are counted at their worst case: what they were billed is unknown.
    let worst = worst_case_cost(&lab.request(&items[0].input, &[]), None, &cfg.prices());
    // Item 0's reply was served twice (late, then in time), at the same usage.
    let item0: Vec<&Served> = served
        .iter()
        .filter(|s| s.input == items[0].input && !s.empty)
        .collect();
    assert_eq!(item0.len(), 2);
    let expected = paid - served_cost(&cfg, item0[0]) + 2.0 * worst;
    assert!(
        (lab.spent() - expected).abs() < 1e-12,
        "{} vs {expected}",
        lab.spent()
    );
    assert!(lab.spent() >= paid, "never less than the server billed");
    // The label whose first replies were empty, malformed or late cost all of them.
    let label_costs: f64 = labels.iter().map(|l| l.cost).sum();
    assert!(
        (label_costs - lab.spent()).abs() < 1e-15,
        "{label_costs} vs {}",
        lab.spent()
    );
}

#[test]
fn empty_replies_are_billed_and_stop_the_run_when_the_budget_cannot_cover_another_try() {
    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(&srv, "LAB_TEST_KEY_O9", dir.path());
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
    let paid: f64 = served.iter().map(|s| served_cost(&cfg, s)).sum();
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
fn a_server_restart_mid_run_is_retried_through() {
    let mut srv = server();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(&srv, "LAB_TEST_KEY_O5", dir.path());
    cfg.concurrency = 1;
    cfg.max_retries = 10;
    cfg.retry_base_s = 0.05;
    cfg.retry_max_s = 0.2;
    for _ in 0..8 {
        srv.inject(Route::Chat, Fault::Slow(Duration::from_millis(80)));
    }
    let items = emails(8);
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        srv.stop();
        std::thread::sleep(Duration::from_millis(500));
        srv.restart();
        srv
    });
    let start = Instant::now();
    let out = lab.label(&items, &[]).unwrap();
    // 8 x 80 ms of work cannot end before the server is back at 700 ms unless it waited.
    assert!(
        start.elapsed() >= Duration::from_millis(700),
        "{:?}",
        start.elapsed()
    );
    let srv = restarter.join().unwrap();
    let LabelOutcome::Complete(labels) = out else {
        panic!("{out:?}")
    };
    assert_eq!(labels.len(), 8);
    for (ex, l) in items.iter().zip(&labels) {
        assert_eq!(l.output, expected_label(&ex.input));
    }
    assert_eq!(srv.served().len(), 8);
}

#[test]
fn fatal_errors_are_clear_immediate_and_free() {
    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(&srv, "LAB_TEST_KEY_O6", dir.path());
    cfg.model = "no-such-model".into();
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let err = format!("{:#}", lab.label(&emails(1), &[]).unwrap_err());
    assert!(
        err.contains("HTTP 404") && err.contains("model_not_found") && err.contains("model name"),
        "{err}"
    );
    assert_eq!(
        srv.count("POST", "/v1/chat/completions"),
        1,
        "no retries for 404"
    );
    assert_eq!(lab.spent(), 0.0);

    // Replies that stay malformed or empty: retried, then a clear error, nothing paid.
    for (fault, words) in [
        (Fault::MalformedJson, "not JSON"),
        (Fault::Empty, "empty completion"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = setup(&srv, "LAB_TEST_KEY_O6", dir.path());
        cfg.max_retries = 2;
        for _ in 0..3 {
            srv.inject(Route::Chat, fault.clone());
        }
        let before = srv.served().len();
        let mut lab = LlmLabeller::from_config(&cfg).unwrap();
        let err = format!("{:#}", lab.label(&emails(1), &[]).unwrap_err());
        assert!(err.contains(words) && err.contains("3 attempts"), "{err}");
        // Empty completions were billed, each one, and are counted at their usage. The mock
        // bills no malformed body, but a provider may have: each of those 200s is counted
        // at its worst case, as what it was billed cannot be read.
        let billed: f64 = srv.served()[before..]
            .iter()
            .map(|s| served_cost(&cfg, s))
            .sum();
        assert_eq!(billed > 0.0, matches!(fault, Fault::Empty));
        let counted = match fault {
            Fault::Empty => billed,
            _ => 3.0 * worst_case_cost(&lab.request(&emails(1)[0].input, &[]), None, &cfg.prices()),
        };
        assert!(
            (lab.spent() - counted).abs() < 1e-15,
            "{} vs {counted}",
            lab.spent()
        );
        assert!((lab.client().unlabelled_spent() - counted).abs() < 1e-15);
    }
}

#[test]
fn paid_labels_survive_a_failure_later_in_the_run() {
    let opts = Options {
        responder: std::sync::Arc::new(|turns| {
            let input = support::mock_openai::last_user(turns);
            if input.contains("POISON") {
                String::new()
            } else {
                support::mock_openai::subject_reply(&input)
            }
        }),
        ..Options::default()
    };
    let srv = MockServer::start(opts);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(&srv, "LAB_TEST_KEY_O7", dir.path());
    cfg.concurrency = 1;
    cfg.max_retries = 1;
    let mut items = emails(3);
    items.push(example(9, "POISON email that always gets an empty reply"));
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let err = format!("{:#}", lab.label(&items, &[]).unwrap_err());
    assert!(
        err.contains("item 4 of 4") && err.contains("kept in the label cache"),
        "{err}"
    );
    // The poison's two empty replies were billed too, but bought no label.
    let wasted: f64 = srv
        .served()
        .iter()
        .filter(|s| s.empty)
        .map(|s| served_cost(&cfg, s))
        .sum();
    assert!(wasted > 0.0);
    // Recorded by the runner when the call fails, so a resumed run does not spend it again.
    assert!((lab.unlabelled_spent() - wasted).abs() < 1e-15);
    let paid_first = lab.spent() - wasted;
    assert!(paid_first > 0.0);
    let calls = srv.count("POST", "/v1/chat/completions");
    let mut rerun = LlmLabeller::from_config(&cfg).unwrap();
    let out = rerun.label(&items[..3], &[]).unwrap();
    assert_eq!(out.labels().len(), 3);
    assert_eq!(
        srv.count("POST", "/v1/chat/completions"),
        calls,
        "the three paid labels come from the cache"
    );
    assert!(
        (rerun.spent() - paid_first).abs() < 1e-15,
        "counted at their price"
    );
}

#[test]
fn the_api_key_never_leaks() {
    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let key = Options::default().api_key;
    let cfg = setup(&srv, "LAB_TEST_KEY_O8", dir.path());
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    lab.label(&emails(3), &[]).unwrap();
    let mut errors = Vec::new();

    // A wrong key the server echoes back in its 401 body.
    let wrong = "sk-wrong-key-ABCDEFGHIJ";
    std::env::set_var("LAB_TEST_KEY_O8_WRONG", wrong);
    let mut bad = cfg.clone();
    bad.api_key_env = Some("LAB_TEST_KEY_O8_WRONG".into());
    let mut lab_bad = LlmLabeller::from_config(&bad).unwrap();
    let unseen = [example(50, "An email nobody labeled before")];
    let err = lab_bad.label(&unseen, &[]).unwrap_err();
    let text = format!("{err:#} {err:?}");
    assert!(
        text.contains("HTTP 401") && text.contains("LAB_TEST_KEY_O8_WRONG"),
        "{text}"
    );
    assert_eq!(
        srv.count("POST", "/v1/chat/completions"),
        4,
        "401 is not retried"
    );
    assert_eq!(lab_bad.spent(), 0.0);
    errors.push(text);

    srv.inject(Route::Chat, Fault::Unauthorized);
    let err = lab.label(&emails(5), &[]).unwrap_err();
    errors.push(format!("{err:#} {err:?}"));

    // A page that echoes the key across the point where error bodies are cut.
    srv.inject(Route::Chat, Fault::EchoHeaders);
    let err = lab.label(&emails(7), &[]).unwrap_err();
    let text = format!("{err:#} {err:?}");
    assert!(text.contains("HTTP 400"), "{text}");
    assert!(
        !text.contains(&key[..12]),
        "part of the key in error: {text}"
    );
    errors.push(text);

    for text in &errors {
        assert!(
            !text.contains(&key) && !text.contains(wrong),
            "key in error: {text}"
        );
    }
    for (path, text) in all_file_text(dir.path()) {
        assert!(
            !text.contains(&key) && !text.contains(wrong),
            "key in {path}"
        );
    }
    assert!(!format!("{cfg:?}").contains(&key));
}

#[test]
fn a_missing_key_variable_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = LlmLabellerConfig::new(Provider::Openai, "gpt-4o-mini");
    cfg.cache_dir = Some(dir.path().to_path_buf());
    cfg.api_key_env = Some("LAB_TEST_KEY_NOT_SET_ANYWHERE".into());
    let err = LlmLabeller::from_config(&cfg).err().unwrap().to_string();
    assert!(
        err.contains("LAB_TEST_KEY_NOT_SET_ANYWHERE") && err.contains("not set"),
        "{err}"
    );
}

#[test]
fn config_rejects_unknown_keys_and_bad_values() {
    let err = toml::from_str::<LlmLabellerConfig>(
        "provider = \"openai\"\nmodel = \"m\"\ntemprature = 0.5",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("temprature"), "{err}");
    let mut c = LlmLabellerConfig::new(Provider::Custom, "m");
    assert!(c.validate().unwrap_err().to_string().contains("base_url"));
    c.base_url = Some("http://x/v1".into());
    c.validate().unwrap();
    c.money_budget = Some(-1.0);
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("labeller.money_budget"));
    let mut a = LlmLabellerConfig::new(Provider::Anthropic, "claude");
    a.batch_api = true;
    assert!(a.validate().unwrap_err().to_string().contains("batch_api"));
}

#[test]
fn a_token_counter_replaces_the_estimate_in_the_worst_case() {
    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(&srv, "LAB_TEST_KEY_O9", dir.path());
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
    let srv = server();
    let stop_with = |cache: &std::path::Path, prefill: usize| -> (usize, f64, usize) {
        let mut cfg = setup(&srv, "LAB_TEST_KEY_O9", cache);
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
fn inputs_are_cut_to_max_input_chars_and_a_refused_item_is_named() {
    let srv = MockServer::start(Options {
        context_chars: Some(400),
        ..Options::default()
    });
    let long = "Budget review ".repeat(60);
    let mut items = emails(2);
    items.push(example(77, &long));
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(&srv, "LAB_TEST_KEY_O10", dir.path());
    cfg.concurrency = 1;
    // Uncut, the long input is refused: the error names the item and what to change.
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let err = format!("{:#}", lab.label(&items, &[]).unwrap_err());
    assert!(
        err.contains("item id 77")
            && err.contains("context_length_exceeded")
            && err.contains("data.max_input_chars lower (not set)"),
        "{err}"
    );
    // Cut as data.max_input_chars cuts it for the model and the annotator, it is labelled.
    cfg.max_input_chars = Some(120);
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let out = lab.label(&items, &[]).unwrap();
    assert_eq!(out.labels().len(), 3);
    let cut = atgen_lab::data::render_input("{input}", &long, Some(120));
    assert_eq!(out.labels()[2].output, expected_label(&cut));
    let last: serde_json::Value =
        serde_json::from_str(&srv.requests().last().unwrap().body).unwrap();
    assert_eq!(last["messages"][1]["content"], cut.as_str());
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
    let mut cfg = setup(&srv, "LAB_TEST_KEY_O11", dir.path());
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

#[test]
fn a_cached_label_counts_its_own_tokens_at_the_current_prices_and_mode() {
    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(&srv, "LAB_TEST_KEY_O12", dir.path());
    cfg.concurrency = 1;
    let items = emails(2);
    // Item 0's first reply is empty: its label cost both replies when it was bought.
    srv.inject(Route::Chat, Fault::Empty);
    let first = LlmLabeller::from_config(&cfg)
        .unwrap()
        .label(&items, &[])
        .unwrap();
    let served = srv.served();
    let own = |ex: &atgen_lab::data::Example| {
        served
            .iter()
            .find(|s| s.input == ex.input && !s.empty)
            .unwrap()
            .clone()
    };
    let wasted: f64 = served
        .iter()
        .filter(|s| s.empty)
        .map(|s| served_cost(&cfg, s))
        .sum();
    assert!(wasted > 0.0);
    assert!((first.labels()[0].cost - served_cost(&cfg, &own(&items[0])) - wasted).abs() < 1e-15);

    // From the cache: each label counts its own tokens (not the empty reply before it) ...
    let again = LlmLabeller::from_config(&cfg)
        .unwrap()
        .label(&items, &[])
        .unwrap();
    for (ex, l) in items.iter().zip(again.labels()) {
        assert!(
            (l.cost - served_cost(&cfg, &own(ex))).abs() < 1e-15,
            "{l:?}"
        );
    }
    // ... at today's prices ...
    let mut dearer = cfg.clone();
    dearer.price_output_per_mtok = 6.0;
    let again = LlmLabeller::from_config(&dearer)
        .unwrap()
        .label(&items, &[])
        .unwrap();
    for (ex, l) in items.iter().zip(again.labels()) {
        assert!(
            (l.cost - served_cost(&dearer, &own(ex))).abs() < 1e-15,
            "{l:?}"
        );
    }
    // ... and in today's mode: a batch run counts them at the batch discount.
    let mut batch = cfg.clone();
    batch.batch_api = true;
    let mut lab = LlmLabeller::from_config(&batch).unwrap();
    let again = lab.label(&items, &[]).unwrap();
    let mut total = 0.0;
    for (ex, l) in items.iter().zip(again.labels()) {
        let s = own(ex);
        let half = cfg
            .prices()
            .scaled(0.5)
            .cost(s.input_tokens, s.output_tokens);
        assert!((l.cost - half).abs() < 1e-15, "{l:?}");
        total += half;
    }
    assert!((lab.spent() - total).abs() < 1e-15);
    assert_eq!(srv.served().len(), served.len(), "nothing bought again");
}

#[test]
fn an_unreadable_stats_file_does_not_turn_paid_labels_into_an_error() {
    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(&srv, "LAB_TEST_KEY_O13", dir.path());
    std::fs::write(dir.path().join("stats.json"), "not json").unwrap();
    let items = emails(2);
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let out = lab.label(&items, &[]).unwrap();
    assert_eq!(out.labels().len(), 2);
    for (ex, l) in items.iter().zip(out.labels()) {
        assert_eq!(l.output, expected_label(&ex.input));
    }
}

/// A refusal (`message.refusal`, no content) is billed but no label, and asking again would be
/// refused and billed again: the call ends at once with an error that quotes it and says what
/// to do, its cost counted as money that bought no label. It used to be taken for an empty
/// reply and asked again up to max_retries times, ending in "empty completion".
#[test]
fn a_refusal_ends_the_call_at_once_with_what_to_do_and_its_cost_counted() {
    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(&srv, "LAB_TEST_KEY_O_REFUSAL", dir.path());
    cfg.concurrency = 1;
    let items = emails(3);
    srv.inject(Route::Chat, Fault::Refusal);
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let err = format!("{:#}", lab.label(&items, &[]).unwrap_err());
    assert!(
        err.contains("labelling item id 0")
            && err.contains("refused")
            && err.contains(REFUSAL)
            && err.contains("take the item out of the data"),
        "{err}"
    );
    assert_eq!(
        srv.count("POST", "/v1/chat/completions"),
        1,
        "not asked again"
    );
    let served = srv.served();
    let billed = served_cost(&cfg, &served[0]);
    assert!(billed > 0.0);
    assert!((lab.unlabelled_spent() - billed).abs() < 1e-15);
    assert!((lab.spent() - billed).abs() < 1e-15);
}
