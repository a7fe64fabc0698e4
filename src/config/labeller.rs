//! `[labeller]`: who labels the queried examples. Secrets never live in the experiment file;
//! only the name of the environment variable that holds the API key does.
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LabellerKind {
    /// The dataset's gold outputs.
    #[default]
    Golden,
    /// A remote LLM over HTTP.
    Llm,
    /// A local model run by the lab.
    Local,
    Human,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Openai,
    Anthropic,
    /// Any OpenAI-compatible server at `base_url`.
    Custom,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabellerConfig {
    pub kind: LabellerKind,
    pub provider: Option<Provider>,
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub api_key_env: Option<String>,
    pub temperature: f64,
    pub max_tokens: usize,
    /// US dollars per million tokens.
    pub price_input_per_mtok: f64,
    pub price_output_per_mtok: f64,
    /// Input tokens read from the provider's prompt cache; unset: at the input price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_cached_input_per_mtok: Option<f64>,
    /// Input tokens written to Anthropic's prompt cache; unset: twice the input price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_cache_write_per_mtok: Option<f64>,
    pub concurrency: usize,
    pub timeout_s: u64,
    pub max_retries: u32,
    pub batch_api: bool,
    /// Labeled examples shown to the LLM in each prompt.
    pub few_shot: usize,
    pub system_prompt: Option<String>,
}

impl Default for LabellerConfig {
    fn default() -> Self {
        Self {
            kind: LabellerKind::Golden,
            provider: None,
            base_url: None,
            model: None,
            api_key_env: None,
            temperature: 0.0,
            max_tokens: 64,
            price_input_per_mtok: 0.0,
            price_output_per_mtok: 0.0,
            price_cached_input_per_mtok: None,
            price_cache_write_per_mtok: None,
            concurrency: 4,
            timeout_s: 60,
            max_retries: 5,
            batch_api: false,
            few_shot: 3,
            system_prompt: None,
        }
    }
}

/// `[eval.judge]`: the LLM behind the `llm_judge` metric (G-Eval style 1–5 scores of test-set
/// predictions). Same client as the LLM labeller: retries, label cache (an unchanged prediction
/// is never paid twice, so re-evaluating a resumed run is free), and a money budget of its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JudgeConfig {
    pub provider: Provider,
    pub base_url: Option<String>,
    pub model: String,
    pub api_key_env: Option<String>,
    pub temperature: f64,
    /// The answer is one digit; a few tokens leave room for a stray space or newline.
    pub max_tokens: usize,
    pub price_input_per_mtok: f64,
    pub price_output_per_mtok: f64,
    /// As in `[labeller]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_cached_input_per_mtok: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_cache_write_per_mtok: Option<f64>,
    pub concurrency: usize,
    pub timeout_s: u64,
    pub max_retries: u32,
    /// Dollars the judge may spend in one `lab run`; unset: unlimited.
    pub money_budget: Option<f64>,
    /// What a good output is; default: content agrees with the references, fluent, supported
    /// by the input.
    pub rubric: Option<String>,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            provider: Provider::Openai,
            base_url: None,
            model: String::new(),
            api_key_env: None,
            temperature: 0.0,
            max_tokens: 4,
            price_input_per_mtok: 0.0,
            price_output_per_mtok: 0.0,
            price_cached_input_per_mtok: None,
            price_cache_write_per_mtok: None,
            concurrency: 4,
            timeout_s: 60,
            max_retries: 5,
            money_budget: None,
            rubric: None,
        }
    }
}
