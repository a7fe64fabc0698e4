//! Mistakes in a file's shape (unknown keys, wrong types, bad enum values, TOML syntax) named
//! by key and line with a fix, all in one report.
use super::*;

#[test]
fn misspelt_key_names_file_path_line_and_fix() {
    let text = MINIMAL.replace("[al]", "[train]\nepochs = 2\nlerning_rate = 1e-4\n\n[al]");
    let err = error_of(&text);
    assert_eq!(
        err,
        "unknown key `train.lerning_rate` in experiments/x.toml line 7; did you mean `learning_rate`?"
    );
}

#[test]
fn misspelt_key_inside_a_strategy_table_names_its_index() {
    let text = format!("{MINIMAL}\n[[strategy]]\nname = \"mnlp\"\nlable = \"m\"\n");
    let err = error_of(&text);
    assert!(
        err.starts_with("unknown key `strategy[1].lable` in experiments/x.toml line 13"),
        "{err}"
    );
    assert!(err.ends_with("did you mean `label`?"), "{err}");
}

#[test]
fn unrelated_unknown_key_lists_the_valid_ones() {
    let err = error_of(&MINIMAL.replace("[al]", "[al]\nzzzzzz = 1"));
    assert!(err.contains("unknown key `al.zzzzzz`"), "{err}");
    assert!(
        err.contains("valid keys here: init_size, query_size, iterations"),
        "{err}"
    );
}

#[test]
fn bad_enum_value_lists_valid_values() {
    let err = error_of(&format!("{MINIMAL}\n[lora]\nmethod = \"qlra\"\n"));
    assert_eq!(
        err,
        "`lora.method` in experiments/x.toml line 12: unknown value `qlra`; valid values: lora, dora, qlora (did you mean `qlora`?)"
    );
}

#[test]
fn wrong_type_names_key_and_line() {
    let err = error_of(&format!("{MINIMAL}\n[model]\nbatch_size = \"big\"\n"));
    assert_eq!(
        err,
        "`model.batch_size` in experiments/x.toml line 12: expected a whole number ≥ 0, like 3 (got \"big\")"
    );
}

/// serde's own words ("invalid value: integer `-5`, expected usize") name Rust types; the
/// messages say what to write instead.
#[test]
fn type_errors_say_what_to_write_in_the_files_terms() {
    let with = |table: &str, line: &str| error_of(&format!("{MINIMAL}\n[{table}]\n{line}\n"));
    for (table, line, expected) in [
        (
            "train",
            "epochs = 2.5",
            "expected a whole number ≥ 0, like 3 (got 2.5)",
        ),
        (
            "train",
            "epochs = -2",
            "must be a whole number ≥ 0, not negative (got -2)",
        ),
        (
            "train",
            "learning_rate = \"fast\"",
            "expected a number, like 0.5 (got \"fast\")",
        ),
        (
            "train",
            "from_scratch = 1",
            "expected true or false (got 1)",
        ),
        (
            "model",
            "name = 3",
            "expected text in quotes, like \"…\" (got 3)",
        ),
        (
            "eval",
            "metrics = \"rouge2\"",
            "expected a list in brackets, like [0, 1] (got \"rouge2\")",
        ),
    ] {
        let err = with(table, line);
        let key = line.split(' ').next().unwrap();
        assert_eq!(
            err,
            format!("`{table}.{key}` in experiments/x.toml line 12: {expected}"),
            "{line}"
        );
    }
}

/// A file with several mistakes gets them all in one report, each with its line, instead of
/// one per `lab check`; the checks a left-out key would make misleading are held back.
#[test]
fn every_problem_in_a_file_is_reported_at_once() {
    let text = r#"seeds = [1, 1]
[data]
path = "data/aeslc"
input_feild = "email"
[model]
batch_size = "big"
device = "gpu"
[train]
epochs = 0
[al]
iterations = "three"
query_size = 0
label_budget = -5
[eval]
metrics = ["rouge_2"]
[[strategy]]
name = "random"
[[strategy]]
label = "second"
"#;
    let err = error_of(text);
    let lines: Vec<&str> = err.lines().collect();
    for needle in [
        "unknown key `data.input_feild` in experiments/x.toml line 4; did you mean `input_field`?",
        "`model.batch_size` in experiments/x.toml line 6: expected a whole number",
        "`model.device` in experiments/x.toml line 7: unknown value `gpu`; valid values: auto, cpu, cuda",
        "`al.iterations` in experiments/x.toml line 11: expected a whole number",
        "`al.label_budget` in experiments/x.toml line 13: must be a whole number ≥ 0, not negative (got -5)",
        "`strategy[1].name` in experiments/x.toml line 18: is required",
        // Semantic problems beside them: in untouched tables, or with a value as written.
        "`seeds` in experiments/x.toml line 1: lists a seed twice",
        "`train.epochs` in experiments/x.toml line 9: must be greater than 0 (got 0)",
        "`al.query_size` in experiments/x.toml line 12: must be at least 1",
        "`eval.metrics` in experiments/x.toml line 15: unknown metric `rouge_2`",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(needle)),
            "missing {needle:?} in:\n{err}"
        );
    }
    assert_eq!(lines.len(), 10, "{err}");
    // `al.iterations` was left out as unreadable: [al] is not also said to lack a stopping
    // criterion, nor strategy[1] to have an empty name.
    assert!(!err.contains("stopping criterion"), "{err}");
    assert!(!err.contains("must be non-empty"), "{err}");
    // `lab run` (load_experiment) reports the same set.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.toml");
    std::fs::write(&file, text).unwrap();
    let run = format!("{:#}", load_experiment(&file).unwrap_err());
    assert!(
        run.contains("input_feild")
            && run.contains("lists a seed twice")
            && run.contains("label_budget"),
        "{run}"
    );
}

#[test]
fn missing_strategy_name_is_reported() {
    let err = error_of(&format!("{MINIMAL}\n[[strategy]]\nlabel = \"b\"\n"));
    assert!(
        err.contains("`strategy[1].name` in experiments/x.toml line 11: is required")
            && err.contains("`script = \"path/to/x.rhai\"`"),
        "{err}"
    );
}

#[test]
fn single_bracket_strategy_table_gets_double_bracket_advice() {
    let err = error_of(&MINIMAL.replace("[[strategy]]", "[strategy]"));
    assert!(
        err.contains("`strategy` in experiments/x.toml line 8"),
        "{err}"
    );
    assert!(
        err.contains("[[strategy]] header (double brackets)"),
        "{err}"
    );
}

#[test]
fn syntax_error_names_line_and_column() {
    let err = error_of("[data]\npath = \n");
    assert!(
        err.starts_with("experiments/x.toml line 2, column"),
        "{err}"
    );
    assert!(err.contains("invalid TOML"), "{err}");
}

#[test]
fn check_rejects_unsupported_extensions_naming_supported_ones() {
    let err = check::check_file(Path::new("strategies/x.py"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot check `.py` files; supported: .toml"),
        "{err}"
    );
}
