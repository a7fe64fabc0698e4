//! The experiment file: schema, defaults, validation with messages that name the file, the key
//! and the line.
pub mod al;
pub mod check;
pub mod diagnose;
pub mod labeller;
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
/// metrics registry run as well).
pub fn load_experiment(path: &Path) -> anyhow::Result<Experiment> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read experiment file {}", path.display()))?;
    let experiment = parse_experiment(&text, path)?;
    validate(&experiment)?;
    Ok(experiment)
}

/// Parse experiment TOML read from `path` (used only for messages and the default name).
pub fn parse_experiment(text: &str, path: &Path) -> anyhow::Result<Experiment> {
    let source = diagnose::Source {
        path: path.to_path_buf(),
        text: text.to_string(),
    };
    let mut experiment: Experiment =
        toml::from_str(text).map_err(|e| diagnose::explain(&e, &source))?;
    if experiment.name.is_empty() {
        experiment.name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    experiment.source = Some(source);
    Ok(experiment)
}

#[cfg(test)]
mod tests;
