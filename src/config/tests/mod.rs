//! Experiment files: the shared minimal file and helpers; each child module covers one kind of
//! check.
use super::*;

mod defaults;
mod key_errors;
mod labeller_keys;
mod value_checks;

const METRICS: &[&str] = &[
    "exact_match",
    "exact_match_strict",
    "gsm8k_accuracy",
    "rouge1",
    "rouge2",
    "rougeL",
    "rougeLsum",
    "sacrebleu",
    "sentence_bleu",
    "bertscore_minilm",
];

const MINIMAL: &str = r#"
[data]
path = "data/aeslc"

[al]
iterations = 3

[[strategy]]
name = "random"
"#;

/// Parse and validate as `lab check` does: every problem in one report.
fn parse(text: &str) -> anyhow::Result<Experiment> {
    parse_and_validate(text, Path::new("experiments/x.toml"), Some(METRICS))
}

fn error_of(text: &str) -> String {
    format!(
        "{:#}",
        parse(text).expect_err("the file should be rejected")
    )
}
