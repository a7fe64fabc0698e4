//! The experiment the runner_e2e* tests run through the `lab` binary, the edits they make to
//! its file, and what they read back: curves without the wall-clock column, labeled counts,
//! a cell's state, a refusal's message.
use super::tiny_run::{lab_in_fails, repo, stderr, TinyExperiment};
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

/// The experiment file at `path` with each `(from, to)` replaced in turn; panics when a `from`
/// is not in it, as the test would otherwise run the file unedited.
pub fn edit_experiment(path: &Path, replacements: &[(&str, &str)]) {
    let mut text = std::fs::read_to_string(path).unwrap();
    for (from, to) in replacements {
        assert!(
            text.contains(from),
            "{} holds no {from:?} to replace:\n{text}",
            path.display()
        );
        text = text.replace(from, to);
    }
    std::fs::write(path, text).unwrap();
}

/// `lines` (whole tables, `[[strategy]]`…) added at the end of the experiment file at `path`.
pub fn append_to_experiment(path: &Path, lines: &str) {
    let text = std::fs::read_to_string(path).unwrap() + lines;
    std::fs::write(path, text).unwrap();
}

/// `lab <args>` from the repository root, which must fail; what it said on stderr.
pub fn lab_refuses(args: &[&str]) -> String {
    stderr(&lab_in_fails(&repo(), args))
}

/// The labeled column of a curve read by `curve_without_seconds`, header left out.
pub fn labeled_counts(curve: &[String]) -> Vec<&str> {
    curve[1..]
        .iter()
        .map(|l| l.split(',').nth(1).unwrap())
        .collect()
}

/// The cell's state.json.
pub fn read_state(cell: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(cell.join("state.json")).unwrap()).unwrap()
}
