//! The language model other modules use: load, render prompts, generate, score, and fine-tune
//! through LoRA adapters saved with PEFT's tensor names.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

pub use super::chat::ChatTemplate;
pub use super::decoder_config::{DecoderConfig, Family};
pub use super::generate::{GenerateOptions, Generation};
pub use super::loader::ModelSource;
pub use super::lora::PeftMethod;

use super::adapter::PEFT_PREFIX;
use super::decoder::{Decoder, LINEAR_NAMES};
use super::lora::{Adapter, ForwardMode};
use super::tokenizer::TextTokenizer;
use super::trainable::TrainableModel;

/// LoRA hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraSettings {
    pub r: usize,
    pub alpha: f64,
    pub dropout: f32,
    /// Module names (`q_proj`, …, `down_proj`); empty = every linear except the LM head.
    pub targets: Vec<String>,
    pub method: PeftMethod,
    pub seed: u64,
}

impl Default for LoraSettings {
    fn default() -> Self {
        Self {
            r: 8,
            alpha: 16.0,
            dropout: 0.05,
            targets: Vec::new(),
            method: PeftMethod::Lora,
            seed: 0,
        }
    }
}

/// What `lab model info` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub source: String,
    pub architecture: String,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub vocab: usize,
    pub params: usize,
    pub chat_template: bool,
}

/// A clone shares the weights (tensors are reference-counted, and nothing writes into a
/// weight in place): attaching, merging or quantizing adapters on a clone replaces the
/// clone's own tensors and leaves the original as it was.
#[derive(Clone)]
pub struct LanguageModel {
    pub(super) decoder: Decoder,
    tokenizer: TextTokenizer,
    chat: ChatTemplate,
    source: String,
    /// Read by the adapter files' code (`adapter.rs`).
    pub(super) lora: Option<LoraSettings>,
    /// The attached adapters scale by alpha/√r (a PEFT `use_rslora` adapter was loaded).
    pub(super) rslora: bool,
}

impl LanguageModel {
    /// Load in f32 on the CPU (or the first CUDA device when built with `--features cuda`).
    pub fn load(spec: &ModelSource) -> Result<Self> {
        Self::load_on(spec, DType::F32, &default_device()?)
    }

    pub fn load_on(spec: &ModelSource, dtype: DType, device: &Device) -> Result<Self> {
        let loaded = super::loader::load(spec, dtype, device)
            .with_context(|| format!("cannot load language model `{spec}`"))?;
        Ok(Self::from_parts(
            loaded.decoder,
            loaded.tokenizer,
            loaded.chat,
            spec.to_string(),
        ))
    }

    pub fn from_parts(
        decoder: Decoder,
        tokenizer: TextTokenizer,
        chat: ChatTemplate,
        source: String,
    ) -> Self {
        Self {
            decoder,
            tokenizer,
            chat,
            source,
            lora: None,
            rslora: false,
        }
    }

    /// A tiny random model (2 layers, hidden 64) with a byte-level tokenizer and a ChatML
    /// template, for unit tests of other modules. Deterministic in `seed`.
    pub fn tiny_random(seed: u64, family: Family) -> Result<Self> {
        Self::tiny_random_on(seed, family, DType::F32, &Device::Cpu)
    }

    /// [`Self::tiny_random`] in `dtype` on `device`: the weights are drawn on the CPU and
    /// moved, so every device gets the same model for a seed.
    pub fn tiny_random_on(
        seed: u64,
        family: Family,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let tokenizer = TextTokenizer::tiny_byte_level()?;
        let config = tiny_config(family, tokenizer.vocab_size());
        let weights = super::loader::random_weights(&config, seed, &Device::Cpu)?
            .into_iter()
            .map(|(name, t)| Ok((name, t.to_device(device)?)))
            .collect::<Result<_>>()?;
        let decoder = Decoder::from_weights(config, weights, false, dtype, device)?;
        let chat = ChatTemplate::new(
            Some(TINY_CHATML.to_string()),
            tokenizer.bos_token.clone(),
            tokenizer.eos_token.clone(),
        );
        Ok(Self::from_parts(
            decoder,
            tokenizer,
            chat,
            format!("tiny-random-{}", family.name()),
        ))
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.decoder.config
    }

    pub fn info(&self) -> ModelInfo {
        let c = self.config();
        ModelInfo {
            source: self.source.clone(),
            architecture: c.family.name().to_string(),
            layers: c.num_layers,
            hidden: c.hidden_size,
            heads: c.num_heads,
            kv_heads: c.num_kv_heads,
            vocab: c.vocab_size,
            params: c.param_count(),
            chat_template: self.chat.has_template(),
        }
    }

    /// The model's prompt for one user turn, ending with the assistant cue.
    pub fn render_prompt(&self, system: Option<&str>, user: &str) -> Result<String> {
        self.chat.render(system, user)
    }

    /// Like `render_prompt`, but cuts the end of the user text so the whole prompt fits in
    /// `max_tokens` tokens (the template stays intact).
    pub fn render_prompt_within(
        &self,
        system: Option<&str>,
        user: &str,
        max_tokens: usize,
    ) -> Result<String> {
        self.fit_within(|u| self.render_prompt(system, u), user, max_tokens)
    }

    /// The plain format (`prompt_format = "plain"`), its user text cut as in
    /// [`Self::render_prompt_within`].
    pub fn render_plain_within(
        &self,
        system: Option<&str>,
        user: &str,
        max_tokens: usize,
    ) -> Result<String> {
        self.fit_within(
            |u| Ok(super::chat::render_plain(system, u)),
            user,
            max_tokens,
        )
    }

    /// `render(user)`, with the end of `user` cut until its prompt ids (BOS included) number
    /// at most `max_tokens`.
    fn fit_within(
        &self,
        render: impl Fn(&str) -> Result<String>,
        user: &str,
        max_tokens: usize,
    ) -> Result<String> {
        let full = render(user)?;
        let total = self.tokenizer.encode_prompt(&full)?.len();
        if total <= max_tokens {
            return Ok(full);
        }
        let frame = self.tokenizer.encode_prompt(&render("")?)?.len();
        if frame >= max_tokens {
            bail!("the prompt template alone takes {frame} tokens, more than max_input_tokens = {max_tokens}");
        }
        let user_ids = self.tokenizer.encode(user)?;
        let mut keep = (max_tokens - frame).min(user_ids.len());
        // Re-tokenizing at the seam can shift counts by a token or two: shrink until it fits.
        loop {
            let cut = self.tokenizer.decode(&user_ids[..keep], false)?;
            let prompt = render(&cut)?;
            if self.tokenizer.encode_prompt(&prompt)?.len() <= max_tokens || keep == 0 {
                return Ok(prompt);
            }
            keep -= 1;
        }
    }

    /// Ids of a continuation (an output): no BOS.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text)
    }

    /// Ids of a prompt: one BOS first when the tokenizer asks for it (see
    /// [`TextTokenizer::encode_prompt`]).
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode_prompt(text)
    }

    /// `opts.n` generations for each rendered prompt.
    pub fn generate(
        &self,
        prompts: &[String],
        opts: &GenerateOptions,
    ) -> Result<Vec<Vec<Generation>>> {
        let ids = prompts
            .iter()
            .map(|p| self.tokenizer.encode_prompt(p))
            .collect::<Result<Vec<_>>>()?;
        super::generate::generate_ids(&self.decoder, &self.tokenizer, &ids, opts)
    }

    /// Teacher-forced log-probabilities of each output's tokens after its (rendered) prompt.
    pub fn score(
        &self,
        prompts: &[String],
        outputs: &[String],
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let p = prompts
            .iter()
            .map(|p| self.tokenizer.encode_prompt(p))
            .collect::<Result<Vec<_>>>()?;
        let o = outputs
            .iter()
            .map(|o| self.tokenizer.encode(o))
            .collect::<Result<Vec<_>>>()?;
        super::score::score_ids(&self.decoder, self.tokenizer.pad_id, &p, &o, batch_size)
    }

    /// Logits `[b, t, vocab]` for a left-padded batch (used by tests and the training loop).
    pub fn forward_logits(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        Ok(self.forward_train(input_ids, attention_mask, false, 0)?)
    }

    pub fn lora_settings(&self) -> Option<&LoraSettings> {
        self.lora.as_ref()
    }

    /// Attach fresh adapters to the target linears (QLoRA first quantizes every base linear).
    pub fn attach_lora(&mut self, s: &LoraSettings) -> Result<()> {
        for t in &s.targets {
            if !LINEAR_NAMES.contains(&t.as_str()) {
                bail!(
                    "unknown LoRA target `{t}`; choose from {}",
                    LINEAR_NAMES.join(", ")
                );
            }
        }
        self.unmerge_lora();
        for (i, (name, linear)) in self.decoder.linears_mut().into_iter().enumerate() {
            if s.method == PeftMethod::Qlora {
                linear.quantize_base()?;
            }
            let module = name.rsplit('.').next().unwrap_or_default();
            if s.targets.is_empty() || s.targets.iter().any(|t| t == module) {
                let seed = s
                    .seed
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(i as u64);
                linear.attach(s.r, s.alpha, s.dropout, s.method == PeftMethod::Dora, seed)?;
            } else {
                linear.set_adapter(None);
            }
        }
        self.lora = Some(s.clone());
        self.rslora = false;
        Ok(())
    }

    pub fn detach_lora(&mut self) {
        self.unmerge_lora();
        for (_, l) in self.decoder.linears_mut() {
            l.set_adapter(None);
        }
        self.lora = None;
        self.rslora = false;
    }

    pub fn merge_lora(&mut self) -> Result<()> {
        for (_, l) in self.decoder.linears_mut() {
            l.merge()?;
        }
        Ok(())
    }

    pub fn unmerge_lora(&mut self) {
        for (_, l) in self.decoder.linears_mut() {
            l.unmerge();
        }
    }
}

impl TrainableModel for LanguageModel {
    fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.decoder.trainable_vars()
    }

    fn forward_train(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
        dropout_seed: u64,
    ) -> candle_core::Result<Tensor> {
        self.decoder
            .forward_train(input_ids, attention_mask, train, dropout_seed)
    }

    fn forward_train_rows(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        rows: &Tensor,
        train: bool,
        dropout_seed: u64,
    ) -> candle_core::Result<Tensor> {
        self.decoder
            .forward_train_rows(input_ids, attention_mask, rows, train, dropout_seed)
    }
}

impl TrainableModel for Decoder {
    fn trainable_vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (name, linear) in self.linears() {
            let Some(Adapter {
                a, b, magnitude, ..
            }) = linear.adapter()
            else {
                continue;
            };
            let p = format!("{PEFT_PREFIX}{name}");
            out.push((format!("{p}.lora_A.weight"), a.clone()));
            out.push((format!("{p}.lora_B.weight"), b.clone()));
            if let Some(m) = magnitude {
                out.push((format!("{p}.lora_magnitude_vector"), m.clone()));
            }
        }
        out.sort_by(|x, y| x.0.cmp(&y.0));
        out
    }

    fn forward_train(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
        dropout_seed: u64,
    ) -> candle_core::Result<Tensor> {
        let run = || -> Result<Tensor> {
            let t = input_ids.dim(1)?;
            let hidden = self.train_hidden(input_ids, attention_mask, train, dropout_seed, t)?;
            self.logits(&hidden)
        };
        run().map_err(|e| candle_core::Error::Msg(format!("{e:#}")))
    }

    fn forward_train_rows(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        rows: &Tensor,
        train: bool,
        dropout_seed: u64,
    ) -> candle_core::Result<Tensor> {
        let run = || -> Result<Tensor> {
            let t = input_ids.dim(1)?;
            // Targets end every left-padded row: only the positions from the first scored one
            // on need final hidden states (the last layer skips the rest).
            let flat = rows.to_dtype(DType::U32)?.to_vec1::<u32>()?;
            let first = flat
                .iter()
                .map(|&r| r as usize % t.max(1))
                .min()
                .unwrap_or(0);
            let keep = t - first;
            let hidden = self.train_hidden(input_ids, attention_mask, train, dropout_seed, keep)?;
            let (b, _, h) = hidden.dims3()?;
            let tail: Vec<u32> = flat
                .iter()
                .map(|&r| ((r as usize / t) * keep + r as usize % t - first) as u32)
                .collect();
            let tail = Tensor::from_vec(tail, flat.len(), rows.device())?;
            self.logits(&hidden.reshape((b * keep, h))?.index_select(&tail, 0)?)
        };
        run().map_err(|e| candle_core::Error::Msg(format!("{e:#}")))
    }
}

impl Decoder {
    /// Final hidden states of the last `keep` positions of a left-padded training batch
    /// (`attention_mask` 1 = token).
    fn train_hidden(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
        dropout_seed: u64,
        keep: usize,
    ) -> Result<Tensor> {
        let (_, t) = input_ids.dims2()?;
        let mask: Vec<Vec<bool>> = attention_mask
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?
            .into_iter()
            .map(|row| row.into_iter().map(|m| m > 0.5).collect())
            .collect();
        let keys = super::decoder::positions_from_mask(&mask);
        let masks = self.build_masks(&keys, t)?;
        let positions = super::decoder::position_tensor(&keys, t, self.device())?;
        let mode = ForwardMode {
            train,
            dropout_seed,
        };
        self.forward_hidden_last(input_ids, &positions, &masks, None, mode, keep)
    }
}

/// CUDA device 0 when built with `--features cuda` and one is present, else the CPU.
pub fn default_device() -> Result<Device> {
    super::device::resolve_device(crate::config::DeviceKind::Auto)
}

pub(crate) const TINY_CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// 2 layers, hidden 64, 4 heads over 2 KV heads; family features (bias, qk-norm, Gemma's
/// sandwich norms, sliding window on layer 0) switched on as the family has them.
pub fn tiny_config(family: Family, vocab_size: usize) -> DecoderConfig {
    let gemma = family == Family::Gemma3;
    let head_dim = 16;
    DecoderConfig {
        family,
        vocab_size,
        hidden_size: 64,
        intermediate_size: 128,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim,
        rms_norm_eps: 1e-6,
        rope_theta: 10_000.0,
        rope_local_theta: if gemma { 1_000.0 } else { 10_000.0 },
        rope_scaling: super::rope::RopeScaling::None,
        max_position_embeddings: 512,
        tie_word_embeddings: family != Family::Qwen2,
        activation: if gemma {
            super::decoder_config::Activation::GeluTanh
        } else {
            super::decoder_config::Activation::Silu
        },
        attention_bias: family == Family::Qwen2,
        qk_norm: matches!(family, Family::Qwen3 | Family::Gemma3),
        sandwich_norms: gemma,
        embed_scale: gemma.then_some(8.0),
        attn_scale: 1.0 / (head_dim as f64).sqrt(),
        sliding_window: gemma.then_some(4),
        sliding_layers: vec![gemma, false],
    }
}
