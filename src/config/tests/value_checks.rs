//! Values of the right type that cannot work (ranges, non-finite numbers, unknown metrics and
//! modules, duplicate strategies), each named by key and line.
use super::*;

#[test]
fn semantic_problems_are_all_reported_with_lines() {
    let text = r#"seeds = [1, 1]
[data]
path = "d"
input_template = "no placeholder"
test_ratio = 1.5

[train]
learning_rate = -1.0

[al]
query_size = 2.5

[[strategy]]
name = "random"
"#;
    let err = error_of(text);
    for needle in [
        "`seeds` in experiments/x.toml line 1: lists a seed twice",
        "`data.input_template` in experiments/x.toml line 4: must contain `{input}`",
        "`data.test_ratio` in experiments/x.toml line 5: must be in (0, 1) (got 1.5)",
        "`train.learning_rate` in experiments/x.toml line 8: must be a finite number greater than 0 (got -1)",
        "`al.query_size` in experiments/x.toml line 11: a fraction of the pool must be in (0, 1]",
        "`al` in experiments/x.toml line 10: needs a stopping criterion",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn unknown_metric_suggests_nearest_registered_one() {
    let text = MINIMAL.replace(
        "[al]",
        "[eval]\nmetrics = [\"rouge2\", \"rouge_l\"]\n\n[al]",
    );
    let err = error_of(&text);
    assert!(
        err.contains("unknown metric `rouge_l`; did you mean `rougeL`?"),
        "{err}"
    );
    // Without the registry the same file passes structural validation.
    validate(&parse_experiment(&text, Path::new("x.toml")).unwrap()).unwrap();
}

#[test]
fn required_performance_must_be_an_evaluated_metric() {
    let text = MINIMAL.replace(
        "iterations = 3",
        "required_performance = { sacrebleu = 30.0 }",
    );
    let err = error_of(&text);
    assert!(err.contains("`al.required_performance.sacrebleu`"), "{err}");
    assert!(err.contains("add it to eval.metrics"), "{err}");
}

#[test]
fn duplicate_strategy_needs_a_label() {
    let twice = format!("{MINIMAL}\n[[strategy]]\nname = \"random\"\n");
    assert!(error_of(&twice).contains("strategy `random` appears twice"));
    let labelled = format!("{twice}label = \"random-2\"\n");
    let exp = parse(&labelled).unwrap();
    assert_eq!(exp.strategies[1].key(), "random-2");
}

#[test]
fn a_non_ascii_label_is_refused_saying_ascii_letters() {
    // `ü` is a letter, so "use only letters" did not say why `zufällig` was refused.
    let text = format!("{MINIMAL}label = \"zufällig\"\n");
    let err = error_of(&text);
    assert!(err.contains("`zufällig` must be non-empty"), "{err}");
    assert!(err.contains("only ASCII letters and digits"), "{err}");
}

#[test]
fn nan_and_infinite_numbers_are_refused_naming_the_key() {
    for (table, line, key) in [
        ("lora", "alpha = nan", "lora.alpha"),
        ("lora", "alpha = inf", "lora.alpha"),
        ("train", "learning_rate = nan", "train.learning_rate"),
        ("train", "learning_rate = inf", "train.learning_rate"),
        ("train", "max_seq_len = 1", "train.max_seq_len"),
    ] {
        let err = error_of(&format!("{MINIMAL}\n[{table}]\n{line}\n"));
        assert!(
            err.contains(&format!("`{key}` in experiments/x.toml")),
            "{line}: {err}"
        );
    }
    let budget = MINIMAL.replace("iterations = 3", "iterations = 3\nmoney_budget = nan");
    let err = error_of(&budget);
    assert!(err.contains("`al.money_budget`"), "{err}");
    assert!(err.contains("finite number greater than 0"), "{err}");
}

#[test]
fn a_misspelled_lora_target_is_refused_with_a_suggestion() {
    let err = error_of(&format!(
        "{MINIMAL}\n[lora]\ntarget_modules = [\"q_proj\", \"q_porj\"]\n"
    ));
    assert!(err.contains("`lora.target_modules`"), "{err}");
    assert!(
        err.contains("unknown module `q_porj`; did you mean `q_proj`?"),
        "{err}"
    );
    assert!(!err.contains("unknown module `q_proj`"), "{err}");
}
