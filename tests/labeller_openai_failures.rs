//! The OpenAI-compatible labeller when calls fail, against the mock server: retries, a server
//! restart, fatal errors, labels paid before a failure, and refusals.
mod support;

use atgen_lab::labeller::budget::worst_case_cost;
use atgen_lab::labeller::llm::LlmLabeller;
use atgen_lab::labeller::{LabelOutcome, Labeller};
use std::time::{Duration, Instant};
use support::mock_openai::{expected_label, Fault, MockServer, Options, Route, Served, REFUSAL};
use support::{emails, example};

#[test]
fn transient_failures_are_retried_and_replies_that_may_have_been_billed_cost() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = srv.openai_config("LAB_TEST_KEY_O4", dir.path());
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
    let paid: f64 = served.iter().map(|s| s.cost_under(&cfg)).sum();
    // The timed-out request and the malformed 200 (which the mock does not bill, though a
    // provider would) are counted at their worst case: what they were billed is unknown.
    let worst = worst_case_cost(&lab.request(&items[0].input, &[]), None, &cfg.prices());
    // Item 0's reply was served twice (late, then in time), at the same usage.
    let item0: Vec<&Served> = served
        .iter()
        .filter(|s| s.input == items[0].input && !s.empty)
        .collect();
    assert_eq!(item0.len(), 2);
    let expected = paid - item0[0].cost_under(&cfg) + 2.0 * worst;
    assert!(
        (lab.spent() - expected).abs() < 1e-12,
        "{} vs {expected}",
        lab.spent()
    );
    assert!(lab.spent() >= paid, "never less than the server billed");
    // The labels count their own tokens; the empty, malformed and late replies before one
    // of them are money that bought no label.
    let label_costs: f64 = labels.iter().map(|l| l.cost).sum();
    assert!(
        (label_costs + lab.unlabelled_spent() - lab.spent()).abs() < 1e-15,
        "{label_costs} + {} vs {}",
        lab.unlabelled_spent(),
        lab.spent()
    );
    assert!(
        (lab.unlabelled_spent()
            - 2.0 * worst
            - served
                .iter()
                .filter(|s| s.empty)
                .map(|s| s.cost_under(&cfg))
                .sum::<f64>())
        .abs()
            < 1e-12
    );
}

#[test]
fn a_server_restart_mid_run_is_retried_through() {
    let mut srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = srv.openai_config("LAB_TEST_KEY_O5", dir.path());
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
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = srv.openai_config("LAB_TEST_KEY_O6", dir.path());
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
        let mut cfg = srv.openai_config("LAB_TEST_KEY_O6", dir.path());
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
            .map(|s| s.cost_under(&cfg))
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
    let mut cfg = srv.openai_config("LAB_TEST_KEY_O7", dir.path());
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
        .map(|s| s.cost_under(&cfg))
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

/// A refusal (`message.refusal`, no content) is billed but no label, and asking again would be
/// refused and billed again: the call ends at once with an error that quotes it and says what
/// to do, its cost counted as money that bought no label. It used to be taken for an empty
/// reply and asked again up to max_retries times, ending in "empty completion".
#[test]
fn a_refusal_ends_the_call_at_once_with_what_to_do_and_its_cost_counted() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = srv.openai_config("LAB_TEST_KEY_O_REFUSAL", dir.path());
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
    let billed = served[0].cost_under(&cfg);
    assert!(billed > 0.0);
    assert!((lab.unlabelled_spent() - billed).abs() < 1e-15);
    assert!((lab.spent() - billed).abs() < 1e-15);
}

/// A refusal is remembered in the label cache: a rerun fails at the refused request with the
/// same advice, and where to undo it, without sending it, so the refusal is billed once. It
/// used to be asked (and billed) again by every rerun.
#[test]
fn a_rerun_does_not_ask_a_refused_request_again() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = srv.openai_config("LAB_TEST_KEY_O_REFUSED_RERUN", dir.path());
    cfg.concurrency = 1;
    let items = emails(3);
    srv.inject(Route::Chat, Fault::Refusal);
    assert!(LlmLabeller::from_config(&cfg)
        .unwrap()
        .label(&items, &[])
        .is_err());
    assert_eq!(srv.count("POST", "/v1/chat/completions"), 1);

    let mut rerun = LlmLabeller::from_config(&cfg).unwrap();
    let err = rerun.label(&items, &[]).map(|_| ()).unwrap_err();
    assert_eq!(
        srv.count("POST", "/v1/chat/completions"),
        1,
        "not asked again"
    );
    let err = format!("{err:#}");
    assert!(
        err.contains("labelling item id 0")
            && err.contains(REFUSAL)
            && err.contains("take the item out of the data")
            && err.contains("refusals.jsonl"),
        "{err}"
    );
    assert_eq!(rerun.spent(), 0.0);
    // The other items are labelled as usual.
    let out = rerun.label(&items[1..], &[]).unwrap();
    for (ex, l) in items[1..].iter().zip(out.labels()) {
        assert_eq!(l.output, expected_label(&ex.input));
    }
}

/// A 200 whose `message.content` is not text was quoted as it came: from a server echoing the
/// request's headers, with the API key in it. It is redacted like every other reply quote.
#[test]
fn content_that_is_not_text_is_quoted_without_the_key() {
    let srv = MockServer::start(Options::default());
    let key = Options::default().api_key;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = srv.openai_config("LAB_TEST_KEY_O_ECHO_CONTENT", dir.path());
    cfg.concurrency = 1;
    cfg.max_retries = 1;
    cfg.retry_base_s = 0.01;
    for _ in 0..=cfg.max_retries {
        srv.inject(Route::Chat, Fault::EchoHeadersAsContent);
    }
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let err = lab.label(&emails(1), &[]).unwrap_err();
    let text = format!("{err:#} {err:?}");
    assert!(
        text.contains("content is not text")
            && text.contains("LAB_TEST_KEY_O_ECHO_CONTENT redacted"),
        "{text}"
    );
    assert!(!text.contains(&key), "the key is in the error: {text}");
}
