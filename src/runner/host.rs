//! The runner's side of the strategy contract: the real primitives (the acquisition model,
//! the base model, the sentence encoder, metrics) behind `StrategyHost`.
use crate::data::Example;
use crate::metrics::bertscore::TokenEmbedder;
use crate::models::encoder::{EncoderSource, SentenceEncoder};
use crate::models::hub::HubAccess;
use crate::models::lm::{GenerateOptions, LanguageModel};
use crate::runner::prompting::Prompter;
use crate::strategy::host::{EmbedModel, GenOpts, GenerationRecord, Generations, StrategyHost};
use crate::strategy::Matrix;
use anyhow::{Context, Result};
use std::sync::{Arc, OnceLock};

/// Loads the sentence encoder on first use: strategies that never embed never pay for it.
pub struct LazyEncoder {
    cell: OnceLock<Result<SentenceEncoder, String>>,
    source: EncoderSource,
    batch_size: usize,
    /// Where a `hub_id` encoder is read from.
    hub: HubAccess,
    /// A `hub_id` encoder's embedding-cache key, taken when it was loaded: the hub cache may
    /// move to a newer revision during a long run, while this process keeps the one it loaded.
    loaded_hub_key: OnceLock<Option<String>>,
}

impl LazyEncoder {
    pub fn new(source: EncoderSource, batch_size: usize) -> Self {
        Self::with_hub(source, batch_size, HubAccess::from_env())
    }

    pub fn with_hub(source: EncoderSource, batch_size: usize, hub: HubAccess) -> Self {
        Self {
            cell: OnceLock::new(),
            source,
            batch_size,
            hub,
            loaded_hub_key: OnceLock::new(),
        }
    }

    /// The encoder `[encoder]` names: `path`, `hub_id`, or the cached `name`.
    pub fn of(exp: &crate::config::Experiment) -> Self {
        let e = &exp.encoder;
        let source = match (&e.path, &e.hub_id) {
            (Some(p), _) => EncoderSource::Folder(p.clone()),
            (None, Some(id)) => EncoderSource::Hub(id.clone()),
            (None, None) => EncoderSource::Default(e.name.clone()),
        };
        Self::new(source, e.batch_size)
    }

    pub fn get(&self) -> Result<&SentenceEncoder> {
        let loaded = self.cell.get_or_init(|| {
            let encoder =
                match &self.source {
                    EncoderSource::Hub(id) => {
                        let encoder = SentenceEncoder::load_hub_with(&self.hub, id);
                        let _ = self.loaded_hub_key.set(
                            crate::runner::embedding_cache::hub_encoder_key(&self.hub, id),
                        );
                        encoder
                    }
                    source => SentenceEncoder::load_source(source),
                };
            encoder
                .map(|e| e.with_batch_size(self.batch_size))
                .map_err(|e| format!("{e:#}"))
        });
        match loaded {
            Ok(e) => Ok(e),
            Err(msg) => anyhow::bail!("cannot load the sentence encoder: {msg}"),
        }
    }

    /// For a `hub_id` encoder, the embedding-cache key of its files: those it was loaded
    /// from, or before it is loaded those a load would read now (`None` while the hub cache
    /// does not hold them).
    pub fn hub_key(&self, id: &str) -> Option<String> {
        match self.loaded_hub_key.get() {
            Some(loaded) => loaded.clone(),
            None => crate::runner::embedding_cache::hub_encoder_key(&self.hub, id),
        }
    }
}

impl TokenEmbedder for LazyEncoder {
    fn token_embeddings(
        &self,
        texts: &[String],
    ) -> Result<Vec<crate::metrics::bertscore::TokenVectors>> {
        self.get()?.token_embeddings(texts)
    }
}

/// The primitives one query step sees. `model` is the acquisition model in its current state
/// (adapter attached); `base` is the untouched base model (may be the same object before any
/// training has happened).
pub struct ModelHost<'a> {
    pub model: &'a LanguageModel,
    pub base: &'a LanguageModel,
    pub encoder: &'a LazyEncoder,
    pub prompter: Prompter<'a>,
    pub batch_size: usize,
    /// Names the model state in generation cache keys (e.g. `iter-3`).
    pub state_key: String,
}

impl ModelHost<'_> {
    fn lm(&self, base_model: bool) -> &LanguageModel {
        if base_model {
            self.base
        } else {
            self.model
        }
    }
}

impl StrategyHost for ModelHost<'_> {
    fn generate(
        &self,
        items: &[Example],
        opts: &GenOpts,
        base_model: bool,
    ) -> Result<Arc<Generations>> {
        let lm = self.lm(base_model);
        let prompts = self.prompter.prompts(lm, items)?;
        let options = GenerateOptions {
            max_new_tokens: opts.max_new_tokens,
            temperature: opts.temperature,
            top_p: opts.top_p,
            n: opts.n.max(1),
            seed: opts.seed,
            batch_size: self.batch_size,
            max_input_tokens: None,
        };
        let out = lm
            .generate(&prompts, &options)
            .with_context(|| format!("generation for {} pool items failed", items.len()))?;
        let per_item = out
            .into_iter()
            .map(|samples| {
                samples
                    .into_iter()
                    .map(|g| GenerationRecord {
                        text: self.prompter.postprocess(&g.text),
                        token_logprobs: g.token_logprobs,
                        entropies: g.entropies,
                    })
                    .collect()
            })
            .collect();
        Ok(Arc::new(Generations { per_item }))
    }

    fn score(&self, items: &[Example], outputs: &[String]) -> Result<Vec<Vec<f32>>> {
        let prompts = self.prompter.prompts(self.model, items)?;
        self.model.score(&prompts, outputs, self.batch_size)
    }

    fn embed(
        &self,
        texts: &[String],
        model: EmbedModel,
        _cache_key: Option<&str>,
    ) -> Result<Arc<Matrix>> {
        match model {
            EmbedModel::Encoder => Ok(Arc::new(self.encoder.get()?.embed(texts)?)),
            EmbedModel::Acquisition => Ok(Arc::new(crate::runner::embed::mean_hidden_states(
                self.model,
                texts,
                self.batch_size,
            )?)),
        }
    }

    fn sentence_bleu(&self, hyp: &str, refs: &[&str]) -> f64 {
        crate::metrics::sentence_bleu(hyp, refs)
    }

    fn stem_words(&self, text: &str) -> Vec<String> {
        crate::metrics::tokenize_words_stemmed(text)
    }

    fn bertscore_precision(&self, hyps: &[String], refs: &[String]) -> Result<Vec<f64>> {
        crate::metrics::bertscore::bertscore_precision(self.encoder, hyps, refs)
    }

    fn model_state(&self) -> String {
        self.state_key.clone()
    }
}
