//! The OpenAI-compatible labeller against the mock server: labels at exactly usage times price,
//! the label cache, inputs cut to size, the API key never leaking, and config errors. The
//! money budget is in `labeller_openai_budget.rs`, retries and failures in
//! `labeller_openai_failures.rs`.
mod support;

use atgen_lab::labeller::llm::{LlmLabeller, LlmLabellerConfig, Provider};
use atgen_lab::labeller::{LabelOutcome, Labeller};
use support::mock_openai::{expected_label, served_for, Fault, MockServer, Options, Route};
use support::{all_file_text, emails, example};

#[test]
fn labels_match_and_cost_equals_usage_times_price() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = srv.openai_config("LAB_TEST_KEY_O1", dir.path());
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
        assert_eq!(l.cost, s.cost_under(&cfg), "cost = usage x price");
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
fn repeated_run_hits_the_cache_pays_nothing_and_counts_the_same_money() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let cfg = srv.openai_config("LAB_TEST_KEY_O3", dir.path());
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
fn a_cached_label_counts_its_own_tokens_at_the_current_prices_and_mode() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = srv.openai_config("LAB_TEST_KEY_O12", dir.path());
    cfg.concurrency = 1;
    let items = emails(2);
    // Item 0's first reply is empty: its label cost both replies when it was bought.
    srv.inject(Route::Chat, Fault::Empty);
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let first = lab.label(&items, &[]).unwrap();
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
        .map(|s| s.cost_under(&cfg))
        .sum();
    assert!(wasted > 0.0);
    // The label counts its own tokens, as it does from the cache; the empty reply is money
    // that bought no label, which the cell records all the same. (Folded into the label's
    // cost, it could not be told apart in the cell's state from money a killed run left
    // unrecorded: see `spend_log.rs`.)
    assert!((first.labels()[0].cost - own(&items[0]).cost_under(&cfg)).abs() < 1e-15);
    assert!((lab.unlabelled_spent() - wasted).abs() < 1e-15);
    let labels: f64 = first.labels().iter().map(|l| l.cost).sum();
    assert!((lab.spent() - labels - wasted).abs() < 1e-15);
    // The cache keeps what the label cost when it was bought.
    let bought = atgen_lab::labeller::cache::summarize(dir.path()).unwrap();
    assert!((bought.total_cost - labels - wasted).abs() < 1e-15);

    // From the cache: each label counts its own tokens (not the empty reply before it) ...
    let again = LlmLabeller::from_config(&cfg)
        .unwrap()
        .label(&items, &[])
        .unwrap();
    for (ex, l) in items.iter().zip(again.labels()) {
        assert!((l.cost - own(ex).cost_under(&cfg)).abs() < 1e-15, "{l:?}");
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
            (l.cost - own(ex).cost_under(&dearer)).abs() < 1e-15,
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
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let cfg = srv.openai_config("LAB_TEST_KEY_O13", dir.path());
    std::fs::write(dir.path().join("stats.json"), "not json").unwrap();
    let items = emails(2);
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let out = lab.label(&items, &[]).unwrap();
    assert_eq!(out.labels().len(), 2);
    for (ex, l) in items.iter().zip(out.labels()) {
        assert_eq!(l.output, expected_label(&ex.input));
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
    let mut cfg = srv.openai_config("LAB_TEST_KEY_O10", dir.path());
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
fn the_api_key_never_leaks() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let key = Options::default().api_key;
    let cfg = srv.openai_config("LAB_TEST_KEY_O8", dir.path());
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
