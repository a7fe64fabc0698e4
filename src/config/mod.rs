//! The experiment file: schema, defaults, validation with messages that name the file, the key
//! and the line.
pub mod al;
pub mod check;
pub mod diagnose;
pub mod labeller;
mod model_paths;
pub mod parse;
pub mod schema;
pub mod training;
pub mod validate;

pub use al::{AlConfig, Size, StrategyConfig};
pub use labeller::{JudgeConfig, LabellerConfig, LabellerKind, Provider};
pub use schema::{
    DataConfig, DataFormat, DeviceKind, Dtype, EncoderConfig, EvalConfig, Experiment, ModelConfig,
    OnBadRow, PromptFormat, SandboxConfig,
};
pub use training::{LoraConfig, LrSchedule, PeftMethod, TrainConfig};
pub use validate::{validate, validate_with};

use anyhow::Context;
use std::path::Path;

/// Read an experiment file: parse, fill defaults (the name defaults to the file stem), and
/// validate everything but metric names (see [`validate_with`], which callers holding the
/// metrics registry run as well). Every problem is reported, not only the first.
pub fn load_experiment(path: &Path) -> anyhow::Result<Experiment> {
    parse_and_validate(&read_experiment_text(path)?, path, None)
}

/// The text of an experiment file, or what to pass instead: the OS's own words ("No such
/// file or directory", "Is a directory") said what went wrong but not what to do.
pub fn read_experiment_text(path: &Path) -> anyhow::Result<String> {
    let shown = path.display();
    if path.is_dir() {
        let mut tomls: Vec<String> = std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .map(|p| p.display().to_string())
            .collect();
        tomls.sort();
        anyhow::bail!(
            "{shown} is a folder: pass an experiment file (.toml){}",
            match tomls.len() {
                0 => "; it holds none".to_string(),
                1..=6 => format!(" such as {}", tomls.join(", ")),
                n => format!(" such as {} ({n} in all)", tomls[..6].join(", ")),
            }
        );
    }
    if !path.exists() {
        anyhow::bail!(
            "experiment file {shown} does not exist: pass the path of a .toml file from the \
             folder you run lab in (experiments/quickstart.toml is the example)"
        );
    }
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read experiment file {shown}"))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        anyhow::anyhow!(
            "experiment file {shown} line {line}: not UTF-8 text (TOML files are UTF-8); save \
             it as UTF-8"
        )
    })
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
