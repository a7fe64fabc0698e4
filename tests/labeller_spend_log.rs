//! The cell's spend log (`llm_spend.jsonl`) in a labelling call against the mock server: money
//! a run paid for no label, which the cell's state does not count, is charged once to the
//! next run's first call; a label whose reply was logged but never reached the label cache is
//! not bought again. (`labeller_kill_resume.rs` kills a real run.)
mod support;

use atgen_lab::labeller::llm::{LlmLabeller, LlmLabellerConfig};
use atgen_lab::labeller::spend_log::SPEND_LOG_FILE;
use atgen_lab::labeller::Labeller;
use std::path::Path;
use support::mock_openai::{expected_label, last_user, subject_reply, MockServer, Options};
use support::{emails, example};

/// A labeller for `cfg` keeping the spend log of the cell in `cell`, whose state counts
/// `committed` dollars that bought no label.
fn labeller(cfg: &LlmLabellerConfig, cell: &Path, committed: f64) -> LlmLabeller {
    let mut lab = LlmLabeller::from_config(cfg).unwrap();
    lab.client_mut()
        .keep_spend_log(&cell.join(SPEND_LOG_FILE), committed)
        .unwrap();
    lab
}

#[test]
fn money_an_earlier_run_paid_for_no_label_is_charged_once_to_the_next_call() {
    let srv = MockServer::start(Options {
        responder: std::sync::Arc::new(|turns| {
            let input = last_user(turns);
            if input.contains("POISON") {
                String::new()
            } else {
                subject_reply(&input)
            }
        }),
        ..Options::default()
    });
    let cache = tempfile::tempdir().unwrap();
    let cell = tempfile::tempdir().unwrap();
    let mut cfg = srv.openai_config("LAB_TEST_KEY_SPEND1", cache.path());
    cfg.concurrency = 1;
    cfg.max_retries = 1;
    let mut items = emails(2);
    items.push(example(9, "POISON email that always gets an empty reply"));
    // Two labels, then the poison's two empty replies; the run dies before its cell records
    // anything.
    assert!(labeller(&cfg, cell.path(), 0.0).label(&items, &[]).is_err());
    let served = srv.served();
    let wasted: f64 = served
        .iter()
        .filter(|s| s.empty)
        .map(|s| s.cost_under(&cfg))
        .sum();
    let labels: f64 = served
        .iter()
        .filter(|s| !s.empty)
        .map(|s| s.cost_under(&cfg))
        .sum();
    assert!(wasted > 0.0 && labels > 0.0);

    let mut resumed = labeller(&cfg, cell.path(), 0.0);
    let out = resumed.label(&items[..2], &[]).unwrap();
    assert_eq!(out.labels().len(), 2);
    assert!(
        (resumed.spent() - labels - wasted).abs() < 1e-15,
        "the labels from the cache and the empty replies: {}",
        resumed.spent()
    );
    // The caller records it with this call, as money that bought no label.
    assert!((resumed.unlabelled_spent() - wasted).abs() < 1e-15);
    let before = resumed.spent();
    resumed.label(&items[..2], &[]).unwrap();
    assert!(
        (resumed.spent() - before - labels).abs() < 1e-15,
        "charged once"
    );

    // Once the cell's state counts it, a later run is not charged for it.
    let mut recorded = labeller(&cfg, cell.path(), wasted);
    recorded.label(&items[..2], &[]).unwrap();
    assert!((recorded.spent() - labels).abs() < 1e-15);
    assert_eq!(recorded.unlabelled_spent(), 0.0);
    assert_eq!(srv.served().len(), served.len(), "nothing bought again");
}

#[test]
fn a_label_paid_for_but_never_cached_is_not_bought_again() {
    let srv = MockServer::start(Options::default());
    let cache = tempfile::tempdir().unwrap();
    let cell = tempfile::tempdir().unwrap();
    let cfg = srv.openai_config("LAB_TEST_KEY_SPEND2", cache.path());
    let items = emails(3);
    labeller(&cfg, cell.path(), 0.0).label(&items, &[]).unwrap();
    let bought = srv.count("POST", "/v1/chat/completions");
    assert_eq!(bought, 3);
    // As if the run died between logging the replies and writing them to the label cache.
    std::fs::remove_file(cache.path().join("labels.jsonl")).unwrap();

    let out = labeller(&cfg, cell.path(), 0.0).label(&items, &[]).unwrap();
    for (ex, l) in items.iter().zip(out.labels()) {
        assert_eq!(l.output, expected_label(&ex.input));
    }
    assert_eq!(
        srv.count("POST", "/v1/chat/completions"),
        bought,
        "the logged labels were put in the cache"
    );
}
