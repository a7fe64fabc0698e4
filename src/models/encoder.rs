//! Sentence embeddings the sentence-transformers way: BERT, mean pooling over the attention
//! mask, L2 normalisation. Texts are batched by length so padding stays small.
use crate::metrics::bertscore::TokenVectors;
use crate::models::bert::{Bert, BertConfig};
use crate::strategy::Matrix;
use anyhow::{anyhow, bail, Context, Result};
use candle_core::{Device, Tensor};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

/// The default encoder's folder name in the models cache.
pub const DEFAULT_ENCODER: &str = "all-minilm-l6-v2";

/// sentence-transformers' `max_seq_length` for all-MiniLM-L6-v2 (its
/// `sentence_bert_config.json`): 256 word pieces including `[CLS]` and `[SEP]`. The tokenizer.json
/// in the model folder says 128 with fixed padding, which sentence-transformers overrides.
pub const DEFAULT_MAX_SEQ_LENGTH: usize = 256;

/// Texts per forward pass.
pub const DEFAULT_BATCH_SIZE: usize = 64;

/// Embedding more texts than this shows a progress bar.
const PROGRESS_THRESHOLD: usize = 256;

/// Where the sentence encoder comes from: `[encoder]`'s `path`, `hub_id`, or `name` (a model of
/// the models cache that `lab setup` fetches).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncoderSource {
    Default(String),
    Folder(PathBuf),
    Hub(String),
}

impl EncoderSource {
    /// As `--encoder` takes it: an existing folder or a path-like spec is a folder, a spec
    /// with `/` a hub id, anything else a models-cache name (like `--model`).
    pub fn parse(spec: &str) -> Self {
        let path = std::path::Path::new(spec);
        let looks_like_path =
            spec.starts_with('/') || spec.starts_with('.') || spec.starts_with('~');
        if path.is_dir() || looks_like_path {
            EncoderSource::Folder(path.to_path_buf())
        } else if spec.contains('/') {
            EncoderSource::Hub(spec.to_string())
        } else {
            EncoderSource::Default(spec.to_string())
        }
    }
}

pub struct SentenceEncoder {
    bert: Bert,
    /// Cuts texts at `max_seq_length`, as sentence-transformers does for sentence embeddings.
    tokenizer: Tokenizer,
    /// Cuts texts only at the model's positions (512 for MiniLM), as `bert_score` does for
    /// the token embeddings BERTScore matches.
    token_tokenizer: Tokenizer,
    pad_id: u32,
    batch_size: usize,
    max_seq_length: usize,
    model_hash: String,
}

impl SentenceEncoder {
    /// Load from a folder holding `config.json`, `model.safetensors` and `tokenizer.json`
    /// (and optionally `sentence_bert_config.json` for `max_seq_length`), on the CPU.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_on(dir, &Device::Cpu)
    }

    /// The default encoder from the models cache, fetching it first when missing.
    pub fn load_default() -> Result<Self> {
        crate::models::setup::ensure_default_models(&[DEFAULT_ENCODER])?;
        Self::load(&crate::models::cache::default_model_dir(DEFAULT_ENCODER))
    }

    /// Load from `source` on the CPU: a cached default (fetched first when missing), a
    /// folder, or a hub repository (from the local Hugging Face cache first, see `HubFiles`).
    pub fn load_source(source: &EncoderSource) -> Result<Self> {
        match source {
            EncoderSource::Default(name) => {
                crate::models::setup::ensure_default_models(&[name.as_str()])?;
                Self::load(&crate::models::cache::default_model_dir(name))
            }
            EncoderSource::Folder(dir) => {
                Self::load(dir).with_context(|| format!("encoder.path = {}", dir.display()))
            }
            EncoderSource::Hub(id) => {
                Self::load_hub_with(&crate::models::hub::HubAccess::from_env(), id)
            }
        }
    }

    pub(crate) fn load_hub_with(access: &crate::models::hub::HubAccess, id: &str) -> Result<Self> {
        let load = || -> Result<Self> {
            let hub = crate::models::hub::HubFiles::open(access, id, None)?;
            let config = hub.get("config.json")?;
            hub.get("model.safetensors")?;
            hub.get("tokenizer.json")?;
            for optional in ["sentence_bert_config.json", "1_Pooling/config.json"] {
                // Absent is fine: defaults apply.
                let _ = hub.get(optional);
            }
            let dir = config
                .parent()
                .context("hub cache path has no parent folder")?;
            Self::load(dir)
        };
        load().with_context(|| format!("encoder.hub_id = {id}"))
    }

    pub fn load_on(dir: &Path, device: &Device) -> Result<Self> {
        check_mean_pooling(dir)?;
        let config = BertConfig::from_file(&dir.join("config.json"))?;
        let weights_path = dir.join("model.safetensors");
        let bytes = std::fs::read(&weights_path).with_context(|| {
            format!(
                "cannot read {} (run `lab setup` to fetch the default encoder)",
                weights_path.display()
            )
        })?;
        let model_hash = hex::encode(Sha256::digest(&bytes));
        let max_seq_length = read_max_seq_length(dir)?.min(config.max_position_embeddings);

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("cannot load tokenizer {}", tokenizer_path.display()))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                ..Default::default()
            }))
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("cannot set truncation on {}", tokenizer_path.display()))?;
        let vocab = tokenizer.get_vocab_size(true);
        if vocab > config.vocab_size {
            bail!(
                "tokenizer {} has {vocab} tokens but the model in {} has only {} embeddings; \
                 the files belong to different models",
                tokenizer_path.display(),
                dir.display(),
                config.vocab_size
            );
        }
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0);
        let mut token_tokenizer = tokenizer.clone();
        token_tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: config.max_position_embeddings,
                ..Default::default()
            }))
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("cannot set truncation on {}", tokenizer_path.display()))?;
        let bert = Bert::from_safetensors(bytes, config, device, &weights_path)?;
        Ok(Self {
            bert,
            tokenizer,
            token_tokenizer,
            pad_id,
            batch_size: DEFAULT_BATCH_SIZE,
            max_seq_length,
            model_hash,
        })
    }

    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// sha256 of `model.safetensors`, hex: a key for on-disk embedding caches.
    pub fn model_hash(&self) -> &str {
        &self.model_hash
    }

    pub fn dim(&self) -> usize {
        self.bert.config().hidden_size
    }

    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    pub fn config(&self) -> &BertConfig {
        self.bert.config()
    }

    /// Word pieces per text after truncation, `[CLS]` and `[SEP]` included.
    pub fn token_counts(&self, texts: &[String]) -> Result<Vec<usize>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| anyhow!("{e}"))
            .context("cannot tokenize texts for the sentence encoder")?;
        Ok(encodings.iter().map(|e| e.get_ids().len()).collect())
    }

    /// One L2-normalised row per text, in input order.
    pub fn embed(&self, texts: &[String]) -> Result<Matrix> {
        let dim = self.dim();
        let mut out = Matrix::zeros(texts.len(), dim);
        self.for_each_batch(
            &self.tokenizer,
            texts,
            "embed",
            |rows, hidden, _encodings| {
                for (&row, states) in rows.iter().zip(hidden) {
                    mean_pool_into(states, dim, out.row_mut(row));
                }
                Ok(())
            },
        )?;
        out.l2_normalize_rows();
        Ok(out)
    }

    /// Final hidden states of each text's word pieces, `[CLS]` and `[SEP]` included and
    /// flagged (for BERTScore, which matches against them but does not average them). Texts
    /// are cut at the model's positions, not at `max_seq_length`, as `bert_score` cuts them.
    pub fn token_embeddings(&self, texts: &[String]) -> Result<Vec<TokenVectors>> {
        let dim = self.dim();
        let mut out = vec![TokenVectors::default(); texts.len()];
        let tokenizer = &self.token_tokenizer;
        self.for_each_batch(
            tokenizer,
            texts,
            "embed tokens",
            |rows, hidden, encodings| {
                for ((&row, states), encoding) in rows.iter().zip(hidden).zip(encodings) {
                    out[row] = TokenVectors {
                        vectors: states.chunks_exact(dim).map(<[f32]>::to_vec).collect(),
                        content: encoding
                            .get_special_tokens_mask()
                            .iter()
                            .map(|&special| special == 0)
                            .collect(),
                    };
                }
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Tokenize, sort by length, and run BERT batch by batch. `visit` gets the original row
    /// of each batch member, each member's hidden states (`tokens × hidden`, row-major, real
    /// tokens only) and the encodings.
    fn for_each_batch(
        &self,
        tokenizer: &Tokenizer,
        texts: &[String],
        label: &str,
        mut visit: impl FnMut(&[usize], &[&[f32]], &[&Encoding]) -> Result<()>,
    ) -> Result<()> {
        if texts.is_empty() {
            return Ok(());
        }
        let encodings = tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| anyhow!("{e}"))
            .context("cannot tokenize texts for the sentence encoder")?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        // Stable sort: equal lengths keep input order, so batching is deterministic.
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].get_ids().len()));
        let bar = (texts.len() > PROGRESS_THRESHOLD)
            .then(|| crate::util::progress::bar(texts.len() as u64, label));
        let dim = self.dim();
        for rows in order.chunks(self.batch_size) {
            let batch: Vec<&Encoding> = rows.iter().map(|&i| &encodings[i]).collect();
            let lengths: Vec<usize> = batch.iter().map(|e| e.get_ids().len()).collect();
            let hidden = if super::fused_train::fused("packed") {
                let ids: Vec<u32> = batch.iter().flat_map(|e| e.get_ids()).copied().collect();
                self.bert.forward_packed(&ids, &lengths)?
            } else {
                self.forward_padded(&batch, &lengths)?
            };
            let hidden: Vec<f32> = hidden.flatten_all()?.to_vec1()?;
            let mut per_text = Vec::with_capacity(rows.len());
            let mut rest = hidden.as_slice();
            for &n in &lengths {
                let (states, tail) = rest.split_at(n * dim);
                per_text.push(states);
                rest = tail;
            }
            visit(rows, &per_text, &batch)?;
            if let Some(bar) = &bar {
                bar.inc(rows.len() as u64);
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok(())
    }

    /// The batch right-padded to its longest member (the side-by-side baseline for packing,
    /// `LAB_UNFUSED=packed`), hidden states of the real tokens laid end to end.
    fn forward_padded(&self, batch: &[&Encoding], lengths: &[usize]) -> Result<Tensor> {
        let width = lengths.iter().copied().max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch.len() * width);
        let mut mask = Vec::with_capacity(batch.len() * width);
        for e in batch {
            let n = e.get_ids().len();
            ids.extend_from_slice(e.get_ids());
            ids.extend(std::iter::repeat_n(self.pad_id, width - n));
            mask.extend(std::iter::repeat_n(1u32, n));
            mask.extend(std::iter::repeat_n(0u32, width - n));
        }
        let device = self.bert.device();
        let ids = Tensor::from_vec(ids, (batch.len(), width), device)?;
        let mask = Tensor::from_vec(mask, (batch.len(), width), device)?;
        let hidden = self.bert.forward(&ids, &mask)?;
        let rows = lengths
            .iter()
            .enumerate()
            .map(|(i, &n)| hidden.get(i)?.narrow(0, 0, n))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::cat(&rows, 0)?)
    }
}

/// sentence-transformers' mean pooling: the average of a text's token states (every real
/// token, [CLS] and [SEP] included).
fn mean_pool_into(states: &[f32], dim: usize, out: &mut [f32]) {
    out.fill(0.0);
    let mut count = 0usize;
    for row in states.chunks_exact(dim) {
        out.iter_mut().zip(row).for_each(|(o, v)| *o += v);
        count += 1;
    }
    // sentence-transformers clamps the count at 1e-9 so an empty text stays finite.
    let count = (count as f32).max(1e-9);
    out.iter_mut().for_each(|o| *o /= count);
}

/// `max_seq_length` from `sentence_bert_config.json` when the folder has one.
/// sentence-transformers models say how they pool in `1_Pooling/config.json`; this encoder
/// mean-pools, so a model that pools otherwise (the [CLS] token, max) is refused rather than
/// embedded wrongly. No file: mean pooling, as for a plain BERT folder.
fn check_mean_pooling(dir: &Path) -> Result<()> {
    let path = dir.join("1_Pooling/config.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    let mode = |key: &str| value.get(key).and_then(|v| v.as_bool()).unwrap_or(false);
    let others = [
        "pooling_mode_cls_token",
        "pooling_mode_max_tokens",
        "pooling_mode_mean_sqrt_len_tokens",
        "pooling_mode_weightedmean_tokens",
        "pooling_mode_lasttoken",
    ];
    if !mode("pooling_mode_mean_tokens") || others.iter().any(|k| mode(k)) {
        bail!(
            "{} asks for a pooling other than the mean of the token states; this encoder \
             mean-pools only: choose a mean-pooling sentence-transformers model",
            path.display()
        );
    }
    Ok(())
}

fn read_max_seq_length(dir: &Path) -> Result<usize> {
    let path = dir.join("sentence_bert_config.json");
    if !path.exists() {
        return Ok(DEFAULT_MAX_SEQ_LENGTH);
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    match value.get("max_seq_length") {
        None => Ok(DEFAULT_MAX_SEQ_LENGTH),
        Some(v) => v
            .as_u64()
            .filter(|&n| n >= 2)
            .map(|n| n as usize)
            .ok_or_else(|| {
                anyhow!(
                    "{}: max_seq_length must be an integer ≥ 2, found {v}",
                    path.display()
                )
            }),
    }
}

impl crate::metrics::bertscore::TokenEmbedder for SentenceEncoder {
    fn token_embeddings(&self, texts: &[String]) -> Result<Vec<TokenVectors>> {
        SentenceEncoder::token_embeddings(self, texts)
    }
}

#[cfg(test)]
#[path = "encoder_tests.rs"]
pub(crate) mod tests;
