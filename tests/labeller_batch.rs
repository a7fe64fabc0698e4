//! OpenAI Batch API mode against the mock server: labels at the discounted price, the budget
//! stop, failed lines, and a resumed run re-attaching to a submitted job.
mod support;

use atgen_lab::labeller::budget::worst_case_cost;
use atgen_lab::labeller::llm::{LlmLabeller, LlmLabellerConfig, Provider};
use atgen_lab::labeller::{LabelOutcome, Labeller};
use serde_json::Value;
use std::sync::Arc;
use support::mock_openai::{
    expected_label, last_user, subject_reply, Fault, MockServer, Options, Route, Turn, REFUSAL,
};
use support::{config, emails, example};

fn setup(server: &MockServer, var: &str, cache: &std::path::Path) -> LlmLabellerConfig {
    std::env::set_var(var, Options::default().api_key);
    let mut c = config(
        Provider::Custom,
        &server.base_url(),
        "mock-model",
        var,
        cache,
    );
    c.batch_api = true;
    c
}

/// The JSONL input files of every batch created, in order.
fn submitted_files(server: &MockServer) -> Vec<Vec<Value>> {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/batches")
        .map(|r| {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            let file = server
                .file(body["input_file_id"].as_str().unwrap())
                .unwrap();
            file.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        })
        .collect()
}

/// Jobs saved as still to be read (`batches/<id>.json`; read jobs leave a `.read` marker).
fn saved_jobs(cache: &std::path::Path) -> usize {
    std::fs::read_dir(cache.join("batches"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "json")
            })
            .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_batch_labels_everything_at_the_discounted_price() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(&srv, "LAB_TEST_KEY_B1", dir.path());
    let items = emails(5);
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let out = lab.label(&items, &[]).unwrap();
    let LabelOutcome::Complete(labels) = out else {
        panic!("{out:?}")
    };
    let half = cfg.prices().scaled(0.5);
    let served = srv.served();
    for (ex, l) in items.iter().zip(&labels) {
        assert_eq!(l.output, expected_label(&ex.input));
        let s = served.iter().find(|s| s.input == ex.input).unwrap();
        assert!(s.batch);
        assert_eq!(l.cost, half.cost(s.input_tokens, s.output_tokens));
    }
    assert_eq!(srv.count("POST", "/v1/files"), 1);
    assert_eq!(srv.count("POST", "/v1/batches"), 1);
    assert_eq!(srv.count("POST", "/v1/chat/completions"), 0);
    let lines = &submitted_files(&srv)[0];
    assert_eq!(lines.len(), 5);
    for l in lines {
        assert_eq!(l["method"], "POST");
        assert_eq!(l["url"], "/v1/chat/completions");
        assert_eq!(l["body"]["model"], "mock-model");
        assert_eq!(l["custom_id"].as_str().unwrap().len(), 64);
    }
    assert_eq!(saved_jobs(dir.path()), 0, "finished jobs are forgotten");

    let mut again = LlmLabeller::from_config(&cfg).unwrap();
    assert_eq!(again.label(&items, &[]).unwrap().labels().len(), 5);
    // Counted at the price paid (the stop point must not depend on the cache), paid once.
    assert!((again.spent() - lab.spent()).abs() < 1e-15);
    assert_eq!(
        srv.count("POST", "/v1/batches"),
        1,
        "cache hits need no new batch"
    );
}

#[test]
fn a_resumed_run_reattaches_instead_of_submitting_again() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(&srv, "LAB_TEST_KEY_B2", dir.path());
    let items = emails(4);
    // The run dies while polling (a fatal error stands in for a killed process).
    srv.inject(Route::BatchGet, Fault::Unauthorized);
    let err = LlmLabeller::from_config(&cfg)
        .unwrap()
        .label(&items, &[])
        .unwrap_err();
    assert!(format!("{err:#}").contains("HTTP 401"), "{err:#}");
    assert_eq!(
        saved_jobs(dir.path()),
        1,
        "the job id was saved before polling"
    );

    let mut resumed = LlmLabeller::from_config(&cfg).unwrap();
    let out = resumed.label(&items, &[]).unwrap();
    let LabelOutcome::Complete(labels) = out else {
        panic!("{out:?}")
    };
    for (ex, l) in items.iter().zip(&labels) {
        assert_eq!(l.output, expected_label(&ex.input));
        assert!(l.cost > 0.0, "paid in the run that collected it");
    }
    assert_eq!(
        srv.count("POST", "/v1/batches"),
        1,
        "re-attached, not resubmitted"
    );
    assert_eq!(srv.count("POST", "/v1/files"), 1);
    assert_eq!(saved_jobs(dir.path()), 0);
}

#[test]
fn the_budget_limits_what_goes_into_the_batch() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(&srv, "LAB_TEST_KEY_B3", dir.path());
    let items = emails(5);
    let lab = LlmLabeller::from_config(&cfg).unwrap();
    let worst = worst_case_cost(
        &lab.request(&items[0].input, &[]),
        None,
        &cfg.prices().scaled(0.5),
    );
    drop(lab);
    cfg.money_budget = Some(3.5 * worst);
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let out = lab.label(&items, &[]).unwrap();
    let LabelOutcome::BudgetReached(labels) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        labels.len(),
        3,
        "a batch reserves every request's worst case up front"
    );
    assert_eq!(submitted_files(&srv)[0].len(), 3);
    assert!(lab.spent() <= 3.5 * worst);
}

#[test]
fn failed_lines_are_reported_and_only_they_are_resent_on_every_rerun() {
    let opts = Options {
        batch_fail_marker: Some("POISON".into()),
        ..Options::default()
    };
    let srv = MockServer::start(opts);
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(&srv, "LAB_TEST_KEY_B4", dir.path());
    let mut items = emails(3);
    items.push(example(7, "POISON email the batch cannot process"));
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let err = format!("{:#}", lab.label(&items, &[]).unwrap_err());
    assert!(
        err.contains("1 batch request(s) failed") && err.contains("HTTP 500"),
        "{err}"
    );
    let paid = lab.spent();
    let good: f64 = srv
        .served()
        .iter()
        .map(|s| {
            cfg.prices()
                .scaled(0.5)
                .cost(s.input_tokens, s.output_tokens)
        })
        .sum();
    assert!((paid - good).abs() < 1e-15, "the failed line costs nothing");

    let mut rerun = LlmLabeller::from_config(&cfg).unwrap();
    assert!(rerun.label(&items, &[]).is_err());
    let files = submitted_files(&srv);
    assert_eq!(files.len(), 2);
    assert_eq!(files[1].len(), 1, "only the failed request is sent again");
    assert!(
        (rerun.spent() - paid).abs() < 1e-15,
        "the three cached labels count at their price, the failed one at nothing"
    );
    // The second rerun holds the same request as the first rerun's job, which is finished
    // and read: the request is sent again, not re-attached to that job.
    let mut again = LlmLabeller::from_config(&cfg).unwrap();
    assert!(again.label(&items, &[]).is_err());
    let files = submitted_files(&srv);
    assert_eq!(files.len(), 3, "every rerun resends the failed line");
    assert_eq!(files[2].len(), 1);
    assert_eq!(files[2][0]["custom_id"], files[1][0]["custom_id"]);
}

/// A refused line is billed once: the refusal is remembered in the label cache, so a resumed
/// run that re-attaches to the job, and every run after it, fails with the same advice
/// without sending the line again. The resumed run used to put it in a new job at once, and
/// every rerun again, each billed.
#[test]
fn a_refused_line_is_not_sent_again_by_a_resumed_run() {
    let srv = MockServer::start(Options {
        batch_refusal_marker: Some("REFUSE".into()),
        ..Options::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(&srv, "LAB_TEST_KEY_B_REFUSED", dir.path());
    let mut items = emails(3);
    items.push(example(
        7,
        "REFUSE this email, the model will not summarise it",
    ));
    let refused_lines = || {
        submitted_files(&srv)
            .iter()
            .flatten()
            .filter(|line| line.to_string().contains("REFUSE this email"))
            .count()
    };
    // The run dies while polling; the resumed run re-attaches to the job and collects it.
    srv.inject(Route::BatchGet, Fault::Unauthorized);
    assert!(LlmLabeller::from_config(&cfg)
        .unwrap()
        .label(&items, &[])
        .is_err());
    let mut resumed = LlmLabeller::from_config(&cfg).unwrap();
    let err = format!("{:#}", resumed.label(&items, &[]).unwrap_err());
    assert_eq!(
        refused_lines(),
        1,
        "the resumed run sent the refused line again"
    );
    assert!(
        err.contains(REFUSAL)
            && err.contains("take the item out of the data")
            && err.contains("not the refused ones"),
        "{err}"
    );
    // Later runs get the same advice, and where the refusal is remembered.
    for _ in 0..2 {
        let mut again = LlmLabeller::from_config(&cfg).unwrap();
        let err = format!("{:#}", again.label(&items, &[]).unwrap_err());
        assert!(
            err.contains("labelling item id 7")
                && err.contains(REFUSAL)
                && err.contains("take the item out of the data")
                && err.contains("refusals.jsonl"),
            "{err}"
        );
    }
    assert_eq!(refused_lines(), 1, "a rerun sent the refused line again");
    assert_eq!(
        srv.count("POST", "/v1/files"),
        1,
        "no job was sent after the first"
    );
    assert_eq!(srv.served().iter().filter(|s| s.refused).count(), 1);
    // What the job bought is in the cache.
    let mut without = LlmLabeller::from_config(&cfg).unwrap();
    assert_eq!(without.label(&items[..3], &[]).unwrap().labels().len(), 3);
    assert_eq!(srv.count("POST", "/v1/batches"), 1);
}

#[test]
fn a_job_whose_id_was_never_saved_is_found_by_its_metadata() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(&srv, "LAB_TEST_KEY_B5", dir.path());
    let items = emails(3);
    // A file where the jobs folder should be: the id cannot be saved, as if the run died
    // right after creating the job.
    std::fs::write(dir.path().join("batches"), "in the way").unwrap();
    let err = LlmLabeller::from_config(&cfg)
        .unwrap()
        .label(&items, &[])
        .unwrap_err();
    assert!(format!("{err:#}").contains("could not be saved"), "{err:#}");
    std::fs::remove_file(dir.path().join("batches")).unwrap();

    let mut resumed = LlmLabeller::from_config(&cfg).unwrap();
    let out = resumed.label(&items, &[]).unwrap();
    assert_eq!(out.labels().len(), 3);
    for (ex, l) in items.iter().zip(out.labels()) {
        assert_eq!(l.output, expected_label(&ex.input));
    }
    assert_eq!(
        srv.count("POST", "/v1/batches"),
        1,
        "found, not resubmitted"
    );
    let created: Value = serde_json::from_str(
        &srv.requests()
            .iter()
            .find(|r| r.path == "/v1/batches")
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(
        created["metadata"]["atgen_lab_job"].as_str().unwrap().len(),
        32
    );
}

/// A request repeated inside one call goes into the batch once, and each copy counts at the
/// price of that one label, after passing the same worst-case budget test as a new request:
/// with room for 3.5 worst cases, [a, b, a, c, a] stops before c, as five distinct requests
/// would, and the job holds a and b only.
#[test]
fn repeats_inside_one_call_are_bought_once_and_each_counted_at_its_price() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = setup(&srv, "LAB_TEST_KEY_B6", dir.path());
    let distinct = emails(3);
    let copy = |id: u64, from: usize| example(id, &distinct[from].input);
    let items = vec![
        distinct[0].clone(),
        distinct[1].clone(),
        copy(10, 0),
        distinct[2].clone(),
        copy(11, 0),
    ];

    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let LabelOutcome::Complete(labels) = lab.label(&items, &[]).unwrap() else {
        panic!("no budget set: everything is labelled")
    };
    assert_eq!(labels.len(), 5);
    let files = submitted_files(&srv);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].len(), 3, "one line per distinct request");
    for (ex, l) in items.iter().zip(&labels) {
        assert_eq!(l.output, expected_label(&ex.input));
    }
    assert_eq!(labels[2].cost, labels[0].cost);
    assert_eq!(labels[4].cost, labels[0].cost);
    let total: f64 = labels.iter().map(|l| l.cost).sum();
    assert!(
        (lab.spent() - total).abs() < 1e-15,
        "{} vs {total}",
        lab.spent()
    );
    assert!(labels[0].cost > 0.0);

    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    cfg = setup(&srv, "LAB_TEST_KEY_B6", dir.path());
    let worst = worst_case_cost(
        &lab.request(&items[0].input, &[]),
        None,
        &cfg.prices().scaled(0.5),
    );
    cfg.money_budget = Some(3.5 * worst);
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let LabelOutcome::BudgetReached(labels) = lab.label(&items, &[]).unwrap() else {
        panic!("3.5 worst cases cannot label five requests")
    };
    assert_eq!(labels.len(), 3, "a, b and the repeat of a; c does not fit");
    assert_eq!(submitted_files(&srv)[0].len(), 2, "the job holds a and b");
    assert_eq!(labels[2].output, labels[0].output);
    let total: f64 = labels.iter().map(|l| l.cost).sum();
    assert!(
        (lab.spent() - total).abs() < 1e-15,
        "{} vs {total}",
        lab.spent()
    );
    assert!(lab.spent() <= 3.5 * worst);
}

/// A job an earlier run submitted for more requests than this call wants (the run died while
/// polling, and the resumed call wants only some of them, or the others were bought
/// meanwhile) is collected: the wanted replies are used, the others go into the cache, and
/// nothing in the job is bought again. It used to be skipped unless every one of its requests
/// was wanted, so the wanted ones were submitted (and paid) a second time, and the job's
/// other replies never reached the cache.
#[test]
fn a_job_only_partly_wanted_is_collected_and_nothing_in_it_is_bought_again() {
    let srv = MockServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(&srv, "LAB_TEST_KEY_B7", dir.path());
    let items = emails(4);
    srv.inject(Route::BatchGet, Fault::Unauthorized);
    assert!(LlmLabeller::from_config(&cfg)
        .unwrap()
        .label(&items, &[])
        .is_err());
    assert_eq!(saved_jobs(dir.path()), 1);

    let half = cfg.prices().scaled(0.5);
    let price_of = |srv: &MockServer, input: &str| {
        let s = srv.served().into_iter().find(|s| s.input == input).unwrap();
        half.cost(s.input_tokens, s.output_tokens)
    };
    let mut resumed = LlmLabeller::from_config(&cfg).unwrap();
    let LabelOutcome::Complete(labels) = resumed.label(&items[..2], &[]).unwrap() else {
        panic!("no budget set")
    };
    for (ex, l) in items[..2].iter().zip(&labels) {
        assert_eq!(l.output, expected_label(&ex.input));
        assert_eq!(l.cost, price_of(&srv, &ex.input));
    }
    assert_eq!(
        srv.count("POST", "/v1/batches"),
        1,
        "the wanted requests came from the first job"
    );
    assert_eq!(saved_jobs(dir.path()), 0, "the job was collected");
    let wanted: f64 = labels.iter().map(|l| l.cost).sum();
    assert!(
        (resumed.spent() - wanted).abs() < 1e-15,
        "only the wanted replies count in this call: {} vs {wanted}",
        resumed.spent()
    );

    let mut later = LlmLabeller::from_config(&cfg).unwrap();
    let out = later.label(&items[2..], &[]).unwrap();
    for (ex, l) in items[2..].iter().zip(out.labels()) {
        assert_eq!(l.output, expected_label(&ex.input));
        assert_eq!(l.cost, price_of(&srv, &ex.input), "counted when taken");
    }
    assert_eq!(srv.count("POST", "/v1/batches"), 1, "the rest was cached");
    assert_eq!(srv.served().len(), 4, "each request answered once");
}

/// A batch line answered with an empty completion was billed (its usage is in the reply): it
/// is counted as money that bought no label, so a failed call records it and a resumed run's
/// budget does not spend it again. It used to count as nothing, like a line the server never
/// ran.
#[test]
fn an_empty_batch_reply_counts_as_money_that_bought_no_label() {
    let opts = Options {
        responder: Arc::new(|turns: &[Turn]| {
            let input = last_user(turns);
            if input.contains("SILENT") {
                String::new()
            } else {
                subject_reply(&input)
            }
        }),
        ..Options::default()
    };
    let srv = MockServer::start(opts);
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(&srv, "LAB_TEST_KEY_B8", dir.path());
    let mut items = emails(2);
    items.push(example(9, "SILENT email that gets an empty answer"));
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let err = format!("{:#}", lab.label(&items, &[]).unwrap_err());
    assert!(err.contains("empty completion"), "{err}");
    let half = cfg.prices().scaled(0.5);
    let served = srv.served();
    let empty = served.iter().find(|s| s.empty).expect("one empty reply");
    let billed = half.cost(empty.input_tokens, empty.output_tokens);
    assert!(billed > 0.0);
    assert!(
        (lab.unlabelled_spent() - billed).abs() < 1e-15,
        "{} vs {billed}",
        lab.unlabelled_spent()
    );
    let all: f64 = served
        .iter()
        .map(|s| half.cost(s.input_tokens, s.output_tokens))
        .sum();
    assert!(
        (lab.spent() - all).abs() < 1e-15,
        "{} vs {all}",
        lab.spent()
    );
}

/// Two runs sharing a cache both re-attach to one saved job: the one that finishes second
/// finds the job already forgotten by the other, which is not an error (it used to fail on
/// removing the saved job's file, after its labels were cached).
#[test]
fn two_runs_collecting_one_job_both_succeed() {
    let srv = MockServer::start(Options {
        batch_polls: 6,
        ..Options::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(&srv, "LAB_TEST_KEY_B9", dir.path());
    let items = emails(3);
    srv.inject(Route::BatchGet, Fault::Unauthorized);
    assert!(LlmLabeller::from_config(&cfg)
        .unwrap()
        .label(&items, &[])
        .is_err());
    let start = std::sync::Barrier::new(2);
    let outcomes: Vec<_> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..2)
            .map(|_| {
                let mut lab = LlmLabeller::from_config(&cfg).unwrap();
                let (start, items) = (&start, &items);
                s.spawn(move || {
                    start.wait();
                    lab.label(items, &[]).map_err(|e| format!("{e:#}"))
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for out in outcomes {
        let out = out.unwrap();
        for (ex, l) in items.iter().zip(out.labels()) {
            assert_eq!(l.output, expected_label(&ex.input));
        }
    }
    assert_eq!(srv.count("POST", "/v1/batches"), 1);
    assert_eq!(saved_jobs(dir.path()), 0);
}
