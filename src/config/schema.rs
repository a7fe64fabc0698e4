//! The experiment file: one TOML document describing a whole comparison. Every table denies
//! unknown keys and fills missing ones from the defaults below, so a resolved `Experiment`
//! written back with `to_toml_string` states every setting a run used.
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use super::al::{AlConfig, StrategyConfig};
use super::labeller::LabellerConfig;
use super::training::{LoraConfig, TrainConfig};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Experiment {
    /// Names the results folder. Defaults to the file stem.
    pub name: String,
    pub description: Option<String>,
    pub seeds: Vec<u64>,
    pub results_dir: PathBuf,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub encoder: EncoderConfig,
    pub lora: LoraConfig,
    pub train: TrainConfig,
    pub al: AlConfig,
    pub labeller: LabellerConfig,
    pub eval: EvalConfig,
    pub sandbox: SandboxConfig,
    #[serde(rename = "strategy")]
    pub strategies: Vec<StrategyConfig>,
    /// Where the experiment was read from, to locate keys in error messages. Not part of the file.
    #[serde(skip)]
    pub source: Option<super::diagnose::Source>,
}

impl Default for Experiment {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: None,
            seeds: vec![0],
            results_dir: PathBuf::from("results"),
            data: DataConfig::default(),
            model: ModelConfig::default(),
            encoder: EncoderConfig::default(),
            lora: LoraConfig::default(),
            train: TrainConfig::default(),
            al: AlConfig::default(),
            labeller: LabellerConfig::default(),
            eval: EvalConfig::default(),
            sandbox: SandboxConfig::default(),
            strategies: Vec::new(),
            source: None,
        }
    }
}

impl Experiment {
    /// The fully resolved configuration as TOML, for `results/.../config.toml`. It cannot hold a
    /// secret: the schema only has the *name* of the environment variable with the API key.
    pub fn to_toml_string(&self) -> anyhow::Result<String> {
        toml::to_string(self)
            .map_err(|e| anyhow::anyhow!("cannot write experiment `{}` as TOML: {e}", self.name))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// Decided by each file's extension.
    #[default]
    Auto,
    Jsonl,
    Json,
    Csv,
    Parquet,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnBadRow {
    #[default]
    Fail,
    /// Skip the row with a warning naming the file and row.
    Skip,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// A dataset folder, a single file, or a Hugging Face hub cache snapshot folder.
    pub path: PathBuf,
    pub train: Option<String>,
    pub dev: Option<String>,
    pub test: Option<String>,
    pub format: DataFormat,
    pub input_field: String,
    pub output_field: String,
    /// Evaluation references; nested paths (`answer.aliases`, `annotations.0`), list values
    /// flatten. Empty means `[output_field]`.
    pub reference_fields: Vec<String>,
    /// Fractions of train split off as test / dev when the dataset has no such file.
    pub test_ratio: Option<f64>,
    pub dev_ratio: Option<f64>,
    /// A fixed test subset, the same for every seed.
    pub test_size: Option<usize>,
    /// A fixed pool subsample, the same for every seed.
    pub pool_size: Option<usize>,
    pub on_bad_row: OnBadRow,
    pub input_template: String,
    pub system_prompt: Option<String>,
    pub max_input_chars: Option<usize>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            train: None,
            dev: None,
            test: None,
            format: DataFormat::Auto,
            input_field: "input".into(),
            output_field: "output".into(),
            reference_fields: Vec::new(),
            test_ratio: None,
            dev_ratio: None,
            test_size: None,
            pool_size: None,
            on_bad_row: OnBadRow::Fail,
            input_template: "{input}".into(),
            system_prompt: None,
            max_input_chars: None,
        }
    }
}

impl DataConfig {
    /// The reference fields in effect: the configured ones, or just the output field.
    pub fn effective_reference_fields(&self) -> Vec<String> {
        if self.reference_fields.is_empty() {
            vec![self.output_field.clone()]
        } else {
            self.reference_fields.clone()
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PromptFormat {
    /// The model's own chat template.
    #[default]
    Chat,
    Plain,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    #[default]
    F32,
    Bf16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// The first CUDA GPU when built with `--features cuda` and one is present, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// A model in the lab's models cache; used when neither `path` nor `hub_id` is set.
    pub name: String,
    /// A local Hugging Face folder or a `.gguf` file.
    pub path: Option<PathBuf>,
    pub hub_id: Option<String>,
    pub revision: Option<String>,
    pub gguf_file: Option<String>,
    pub prompt_format: PromptFormat,
    pub max_input_tokens: usize,
    pub max_new_tokens: usize,
    pub batch_size: usize,
    pub dtype: Dtype,
    pub device: DeviceKind,
    /// Keep only the first line of each generation.
    pub first_line_only: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            name: "smollm2-135m-instruct".into(),
            path: None,
            hub_id: None,
            revision: None,
            gguf_file: None,
            prompt_format: PromptFormat::Chat,
            max_input_tokens: 128,
            max_new_tokens: 16,
            batch_size: 16,
            dtype: Dtype::F32,
            device: DeviceKind::Auto,
            first_line_only: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderConfig {
    pub name: String,
    pub path: Option<PathBuf>,
    pub hub_id: Option<String>,
    pub batch_size: usize,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            name: "all-minilm-l6-v2".into(),
            path: None,
            hub_id: None,
            batch_size: 64,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Metric names from the metrics registry.
    pub metrics: Vec<String>,
    pub batch_size: usize,
    /// The LLM that computes `llm_judge`; required when `metrics` lists it.
    pub judge: Option<crate::config::labeller::JudgeConfig>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            metrics: vec!["rouge1".into(), "rouge2".into(), "rougeL".into()],
            batch_size: 16,
            judge: None,
        }
    }
}

/// Limits for strategy scripts, so a runaway script fails instead of hanging the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            max_operations: 50_000_000,
            max_call_levels: 64,
            max_string_size: 1_000_000,
            max_array_size: 1_000_000,
            max_map_size: 100_000,
        }
    }
}
