//! End to end through the `lab` binary: the stopping criteria stop where they should, and
//! experiments that cannot work are refused before anything trains.
mod support;

use support::runner_e2e::{
    curve_without_seconds, edit_experiment, experiment, lab_refuses, labeled_counts, read_state,
};
use support::tiny_run::{assert_ok, lab};

#[test]
fn label_budget_trims_the_last_query_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path(), "budget", "label_budget = 9", &["random"]);
    assert_ok(&lab(&["run", exp.to_str().unwrap()]));
    let cell = dir.path().join("results/budget/random/seed-0");
    let curve = curve_without_seconds(&cell.join("curve.csv"));
    assert_eq!(
        labeled_counts(&curve),
        ["4", "7", "9"],
        "4 + 3 + a trimmed 2 = the budget of 9"
    );
    let state = read_state(&cell);
    assert_eq!(state["finished"], true);
    assert_eq!(state["stop_reason"]["kind"], "label_budget");
    assert_eq!(state["last_query_cut"], true);
    // A fresh run with budget 12 labels 4, 7, 10, 12: extending this one (…, 9, 12) would not.
    edit_experiment(&exp, &[("label_budget = 9", "label_budget = 12")]);
    let err = lab_refuses(&["run", exp.to_str().unwrap()]);
    assert!(
        err.contains("cut short") && err.contains("--fresh --strategy random"),
        "{err}"
    );
    assert_ok(&lab(&["run", exp.to_str().unwrap(), "--fresh"]));
    let curve = curve_without_seconds(&cell.join("curve.csv"));
    assert_eq!(labeled_counts(&curve), ["4", "7", "10", "12"]);
}

#[test]
fn required_performance_stops_once_reached() {
    let dir = tempfile::tempdir().unwrap();
    // rouge1 ≥ 0 holds at once: the cell stops after its first iteration although
    // ten iterations are allowed.
    let exp = experiment(
        dir.path(),
        "perf",
        "iterations = 10\nrequired_performance = { rouge1 = 0.0 }",
        &["random"],
    );
    assert_ok(&lab(&["run", exp.to_str().unwrap()]));
    let cell = dir.path().join("results/perf/random/seed-0");
    let curve = curve_without_seconds(&cell.join("curve.csv"));
    assert_eq!(curve.len(), 2, "one iteration then stop: {curve:?}");
    assert_eq!(read_state(&cell)["stop_reason"]["kind"], "performance");
}

#[test]
fn references_a_metric_cannot_score_are_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let path = experiment(dir.path(), "gsm", "iterations = 1", &["random"]);
    // Email subjects hold no GSM8K answer ("#### 18" or a number).
    edit_experiment(
        &path,
        &[
            (
                "reference_fields = [\"subject\", \"annotations\"]",
                "reference_fields = [\"subject\"]",
            ),
            (
                "metrics = [\"rouge1\", \"rouge2\"]",
                "metrics = [\"gsm8k_accuracy\"]",
            ),
        ],
    );
    let err = lab_refuses(&["run", path.to_str().unwrap()]);
    assert!(
        err.contains("gsm8k_accuracy")
            && err.contains("test example id")
            && err.contains("gsm.toml"),
        "{err}"
    );
    assert!(
        !dir.path()
            .join("results/gsm/random/seed-0/curve.csv")
            .exists(),
        "nothing was trained or written"
    );
}

#[test]
fn sizes_that_cannot_work_are_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    // The pool holds 30 items.
    let path = experiment(dir.path(), "sizes", "iterations = 1", &["random"]);
    edit_experiment(&path, &[("init_size = 4", "init_size = 40")]);
    let err = lab_refuses(&["run", path.to_str().unwrap()]);
    assert!(
        err.contains("`al.init_size` in ") && err.contains("is 40 but the pool has only 30 items"),
        "{err}"
    );
    // A prompt and its generation that cannot fit in the model's context (512 tokens for the
    // tiny model) are refused before any training.
    let fits = std::fs::read_to_string(&path).unwrap();
    edit_experiment(
        &path,
        &[
            ("max_input_tokens = 96", "max_input_tokens = 510"),
            ("init_size = 40", "init_size = 4"),
        ],
    );
    let err = lab_refuses(&["run", path.to_str().unwrap()]);
    assert!(
        err.contains("model.max_input_tokens = 510 plus model.max_new_tokens = 6 is 516")
            && err.contains("is 516 tokens, beyond the model's context of 512"),
        "{err}"
    );
    assert!(!dir.path().join("results/sizes").exists(), "nothing ran");
    std::fs::write(&path, fits).unwrap();
    // A label budget below the initial set is caught by the check itself.
    edit_experiment(
        &path,
        &[
            ("init_size = 40", "init_size = 4"),
            ("iterations = 1", "label_budget = 2"),
        ],
    );
    let err = lab_refuses(&["check", path.to_str().unwrap()]);
    assert!(
        err.contains("al.label_budget") && err.contains("fewer than al.init_size = 4"),
        "{err}"
    );
}
