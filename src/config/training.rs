//! `[lora]` and `[train]`: how the acquisition model is fine-tuned after each query.
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PeftMethod {
    #[default]
    Lora,
    Dora,
    Qlora,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraConfig {
    pub method: PeftMethod,
    pub r: usize,
    pub alpha: f64,
    pub dropout: f64,
    pub target_modules: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            method: PeftMethod::Lora,
            r: 16,
            alpha: 32.0,
            dropout: 0.05,
            target_modules: [
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    #[default]
    Linear,
    Cosine,
    Constant,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub learning_rate: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub warmup_ratio: f64,
    pub schedule: LrSchedule,
    pub weight_decay: f64,
    /// Gradient clipping by global norm; 0 turns it off.
    pub max_grad_norm: f64,
    pub max_seq_len: usize,
    /// Fraction of the labeled set held out for early stopping.
    pub dev_fraction: Option<f64>,
    /// Epochs without dev improvement before stopping.
    pub patience: Option<usize>,
    /// Start every iteration from the base model instead of the previous adapter.
    pub from_scratch: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            learning_rate: 3e-4,
            epochs: 3,
            batch_size: 8,
            grad_accum: 1,
            warmup_ratio: 0.03,
            schedule: LrSchedule::Linear,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            max_seq_len: 256,
            dev_fraction: None,
            patience: None,
            from_scratch: false,
        }
    }
}
