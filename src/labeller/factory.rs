//! Builds the labeller an experiment's `[labeller]` table asks for.
use crate::config::{Experiment, LabellerKind, Provider};
use crate::labeller::golden::GoldenLabeller;
use crate::labeller::human::HumanLabeller;
use crate::labeller::llm::LlmLabeller;
use crate::labeller::llm_config::{self, LlmLabellerConfig};
use crate::labeller::local::LocalLabeller;
use crate::labeller::spend_log::SPEND_LOG_FILE;
use crate::labeller::{Label, Labeller};
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Duration;

/// The labeller for one cell. `already_spent` is what the cell paid before a resume, and
/// `kept` the labels its state keeps: the money budget left for this labeller is the
/// experiment's budget minus what they and the cell's spend log (`spend_log.rs`) account for.
pub fn make_labeller(
    exp: &Experiment,
    cell_dir: &Path,
    already_spent: f64,
    kept: &[Label],
) -> Result<Box<dyn Labeller>> {
    let l = &exp.labeller;
    match l.kind {
        LabellerKind::Golden => Ok(Box::new(GoldenLabeller::new())),
        LabellerKind::Llm => {
            let cfg = llm_config_of(exp, already_spent)?;
            let mut labeller = LlmLabeller::from_config(&cfg).context("in [labeller]")?;
            // The state counts each kept label at its cost; the rest bought no label.
            let unlabelled = already_spent - kept.iter().map(|l| l.cost).sum::<f64>();
            labeller
                .client_mut()
                .keep_spend_log(&cell_dir.join(SPEND_LOG_FILE), unlabelled)
                .context("in [labeller]")?;
            Ok(Box::new(labeller))
        }
        LabellerKind::Local => {
            let model = l.model.as_deref().context(
                "labeller.kind = \"local\" needs labeller.model: a models-cache name, a .gguf \
                 file, a model folder or a hub id",
            )?;
            let system = l
                .system_prompt
                .clone()
                .or_else(|| exp.data.system_prompt.clone());
            Ok(Box::new(LocalLabeller::load(
                model,
                system,
                exp.data.input_template.clone(),
                l.max_tokens,
                exp.model.max_input_tokens,
            )?))
        }
        // The person labels in `lab serve`'s annotation page, through files in the cell folder.
        LabellerKind::Human => Ok(Box::new(
            HumanLabeller::new(cell_dir.to_path_buf(), Duration::from_millis(500))
                .with_prompt(&exp.data),
        )),
    }
}

/// The experiment file's provider as the LLM client's.
fn client_provider(p: Provider) -> llm_config::Provider {
    match p {
        Provider::Openai => llm_config::Provider::Openai,
        Provider::Anthropic => llm_config::Provider::Anthropic,
        Provider::Custom => llm_config::Provider::Custom,
    }
}

/// The experiment's `[labeller]` table as the LLM client's settings.
pub fn llm_config_of(exp: &Experiment, already_spent: f64) -> Result<LlmLabellerConfig> {
    let l = &exp.labeller;
    let provider = client_provider(l.provider.unwrap_or(Provider::Openai));
    let model = l
        .model
        .as_deref()
        .context("labeller.kind = \"llm\" needs labeller.model (the API's model name)")?;
    let mut cfg = LlmLabellerConfig::new(provider, model);
    cfg.base_url = l.base_url.clone();
    cfg.api_key_env = l.api_key_env.clone();
    cfg.temperature = l.temperature;
    cfg.max_tokens = u32::try_from(l.max_tokens).unwrap_or(u32::MAX);
    cfg.price_input_per_mtok = l.price_input_per_mtok;
    cfg.price_output_per_mtok = l.price_output_per_mtok;
    cfg.price_cached_input_per_mtok = l.price_cached_input_per_mtok;
    cfg.price_cache_write_per_mtok = l.price_cache_write_per_mtok;
    cfg.concurrency = l.concurrency;
    cfg.timeout_s = l.timeout_s as f64;
    cfg.max_retries = l.max_retries;
    cfg.batch_api = l.batch_api;
    cfg.few_shot = l.few_shot;
    cfg.max_input_chars = exp.data.max_input_chars;
    if let Some(s) = l
        .system_prompt
        .clone()
        .or_else(|| exp.data.system_prompt.clone())
    {
        cfg.system_prompt = s;
    }
    // Tests and shared machines can point the label cache elsewhere.
    cfg.cache_dir = std::env::var_os("LAB_LABEL_CACHE").map(std::path::PathBuf::from);
    cfg.money_budget = exp.al.money_budget.map(|b| (b - already_spent).max(0.0));
    cfg.validate()?;
    Ok(cfg)
}

/// The `llm_judge` metric's client and rubric, when the experiment has an `[eval.judge]` table.
pub struct Judge {
    pub client: crate::labeller::llm::LlmClient,
    pub rubric: String,
}

impl Judge {
    /// 1–5 scores of `predictions`, `inputs[i]` and `references[i]` belonging to prediction i.
    pub fn score(
        &self,
        inputs: &[String],
        predictions: &[String],
        references: &[Vec<String>],
    ) -> Result<Vec<f64>> {
        crate::labeller::judge::judge(&self.client, &self.rubric, inputs, predictions, references)
    }
}

/// An `[eval.judge]` table as the LLM client's settings, not yet validated.
pub fn judge_config_of(j: &crate::config::labeller::JudgeConfig) -> LlmLabellerConfig {
    let mut cfg = LlmLabellerConfig::new(client_provider(j.provider), &j.model);
    cfg.base_url = j.base_url.clone();
    cfg.api_key_env = j.api_key_env.clone();
    cfg.temperature = j.temperature;
    cfg.max_tokens = u32::try_from(j.max_tokens).unwrap_or(u32::MAX);
    cfg.price_input_per_mtok = j.price_input_per_mtok;
    cfg.price_output_per_mtok = j.price_output_per_mtok;
    cfg.price_cached_input_per_mtok = j.price_cached_input_per_mtok;
    cfg.price_cache_write_per_mtok = j.price_cache_write_per_mtok;
    cfg.concurrency = j.concurrency;
    cfg.timeout_s = j.timeout_s as f64;
    cfg.max_retries = j.max_retries;
    cfg.cache_dir = std::env::var_os("LAB_LABEL_CACHE").map(std::path::PathBuf::from);
    cfg.money_budget = j.money_budget;
    cfg
}

pub fn make_judge(exp: &Experiment) -> Result<Option<Judge>> {
    let Some(j) = &exp.eval.judge else {
        return Ok(None);
    };
    let cfg = judge_config_of(j);
    cfg.validate().context("in [eval.judge]")?;
    let mut client =
        crate::labeller::llm::LlmClient::from_config(&cfg).context("in [eval.judge]")?;
    // The judge's budget caps the dollars one `lab run` pays: scores already bought are free.
    client.treat_cache_hits_as_free();
    client.set_role(crate::labeller::llm::Role::Judge);
    Ok(Some(Judge {
        client,
        rubric: j
            .rubric
            .clone()
            .unwrap_or_else(|| crate::labeller::judge::DEFAULT_RUBRIC.to_string()),
    }))
}
