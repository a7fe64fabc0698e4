//! The experiment file: schema, defaults, validation with messages that name the file, the key
//! and the line.
pub mod al;
pub mod check;
pub mod diagnose;
mod file_text;
pub mod labeller;
mod model_paths;
pub use model_paths::model_path_problems;
pub mod parse;
pub mod schema;
pub mod training;
pub mod validate;

pub use al::{AlConfig, Size, StrategyConfig};
pub use file_text::{missing_file, nearest_entry, read_experiment_text};
pub use labeller::{JudgeConfig, LabellerConfig, LabellerKind, Provider};
pub use schema::{
    DataConfig, DataFormat, DeviceKind, Dtype, EncoderConfig, EvalConfig, Experiment, ModelConfig,
    OnBadRow, PromptFormat, SandboxConfig,
};
pub use training::{LoraConfig, LrSchedule, PeftMethod, TrainConfig};
pub use validate::{validate, validate_with};

use std::path::Path;

/// Read an experiment file: parse, fill defaults (the name defaults to the file stem), and
/// validate everything but metric names (see [`validate_with`], which callers holding the
/// metrics registry run as well). Every problem is reported, not only the first.
pub fn load_experiment(path: &Path) -> anyhow::Result<Experiment> {
    parse_and_validate(&read_experiment_text(path)?, path, None)
}

/// Parse experiment TOML read from `path` (used only for messages and the default name).
/// Reports every unknown key, wrong type and bad value in the file at once.
pub fn parse_experiment(text: &str, path: &Path) -> anyhow::Result<Experiment> {
    let parsed = parse_with_problems(text, path)?;
    if !parsed.errors.is_empty() {
        anyhow::bail!("{}", parsed.errors.join("\n"));
    }
    Ok(parsed.experiment)
}

/// [`parse_experiment`] and [`validate`] (or [`validate_with`] given `known_metrics`) in one
/// report: the file's structural problems and, beside them, the semantic problems of the
/// tables they do not touch (a table with a bad key is checked once that key is fixed).
pub fn parse_and_validate(
    text: &str,
    path: &Path,
    known_metrics: Option<&[&str]>,
) -> anyhow::Result<Experiment> {
    let found = find_problems(text, path, known_metrics)?;
    if !found.lines.is_empty() {
        anyhow::bail!("{}", found.lines.join("\n"));
    }
    Ok(found.experiment)
}

/// What [`find_problems`] found in an experiment file.
pub struct FileProblems {
    /// The experiment as parsed, defaults in place of the keys with structural problems.
    pub experiment: Experiment,
    /// One line per problem, naming the file, key and line.
    pub lines: Vec<String>,
    /// The keys those lines are about (`al.iterations`, `strategy[1].name`).
    pub keys: Vec<String>,
}

/// The file's structural problems and, beside them, the semantic problems of the tables they
/// do not touch; fails only where parsing cannot go on (a TOML syntax error).
pub fn find_problems(
    text: &str,
    path: &Path,
    known_metrics: Option<&[&str]>,
) -> anyhow::Result<FileProblems> {
    let parsed = parse_with_problems(text, path)?;
    let mut lines = parsed.errors.clone();
    let mut keys = parsed.keys.clone();
    for problem in validate::problem_list(&parsed.experiment, known_metrics) {
        if !parsed.affected(&problem.key, problem.own_value) {
            lines.push(problem.line);
            keys.push(problem.key);
        }
    }
    Ok(FileProblems {
        experiment: parsed.experiment,
        lines,
        keys,
    })
}

/// [`parse::parse_all`] with the name defaulted to the file stem and the source kept. Errors
/// only on a TOML syntax error or a problem it cannot go past; the others are in `errors`.
pub fn parse_with_problems(text: &str, path: &Path) -> anyhow::Result<parse::Parsed> {
    let mut parsed = parse::parse_all(text, path)?;
    let experiment = &mut parsed.experiment;
    if experiment.name.is_empty() {
        experiment.name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    for strategy in &mut experiment.strategies {
        if strategy.name.is_empty() {
            if let Some(stem) = strategy.script.as_deref().and_then(Path::file_stem) {
                strategy.name = stem.to_string_lossy().into_owned();
            }
        }
    }
    experiment.source = Some(diagnose::Source {
        path: path.to_path_buf(),
        text: text.to_string(),
    });
    Ok(parsed)
}

#[cfg(test)]
mod tests;
