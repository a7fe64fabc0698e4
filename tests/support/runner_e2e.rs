//! The experiment the runner_e2e* tests run through the `lab` binary, and its curves read back
//! without the wall-clock column.
use super::tiny_run::TinyExperiment;
use std::path::{Path, PathBuf};

/// `<dir>/<name>.toml`: the tiny experiment with two references per example, rouge1 and
/// rouge2, training batches of 4, `extra_al` lines under `[al]` and the shipped `strategies`.
pub fn experiment(dir: &Path, name: &str, extra_al: &str, strategies: &[&str]) -> PathBuf {
    TinyExperiment {
        name,
        data: r#"reference_fields = ["subject", "annotations"]"#,
        train: "epochs = 1\nbatch_size = 4",
        al: extra_al,
        metrics: &["rouge1", "rouge2"],
        strategies,
        ..TinyExperiment::default()
    }
    .write(dir)
}

/// curve.csv without the wall-clock column, which legitimately differs between runs.
pub fn curve_without_seconds(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| {
            let cols: Vec<&str> = l.split(',').collect();
            cols.iter()
                .enumerate()
                .filter(|(i, _)| *i != 4)
                .map(|(_, c)| *c)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}
