//! The decoder's hyper-parameters, from a Hugging Face `config.json` (llama, qwen2, qwen3,
//! gemma3 families) or from GGUF metadata.
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::gguf::GgufFile;
pub use super::rope::RopeScaling;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Llama,
    Qwen2,
    Qwen3,
    Gemma3,
}

impl Family {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "llama" | "mistral" => Some(Self::Llama),
            "qwen2" => Some(Self::Qwen2),
            "qwen3" => Some(Self::Qwen3),
            "gemma3" | "gemma3_text" => Some(Self::Gemma3),
            _ => None,
        }
    }

    /// A GGUF file's `general.architecture`, as llama.cpp names the families: only `llama`
    /// gets Q/K rows permuted by its converter (which writes Mistral models as `llama` too), so
    /// another name for a llama-family model comes from a writer whose row order is unknown.
    pub fn parse_gguf(arch: &str) -> Option<Self> {
        match arch {
            "llama" | "qwen2" | "qwen3" | "gemma3" => Self::parse(arch),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
            Self::Gemma3 => "gemma3",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// `gelu_pytorch_tanh`: the tanh approximation of GELU.
    GeluTanh,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DecoderConfig {
    pub family: Family,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// Rotary base of sliding-window layers (Gemma 3 uses a shorter one there).
    pub rope_local_theta: f64,
    /// Rope scaling of full-attention layers.
    pub rope_scaling: RopeScaling,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub activation: Activation,
    pub attention_bias: bool,
    pub qk_norm: bool,
    /// Gemma 3 norms the attention and MLP outputs as well as their inputs.
    pub sandwich_norms: bool,
    /// Multiply embeddings by this (Gemma: sqrt(hidden)).
    pub embed_scale: Option<f64>,
    /// Softmax scale of attention scores.
    pub attn_scale: f64,
    pub sliding_window: Option<usize>,
    /// Per layer: true when it attends only within `sliding_window`.
    pub sliding_layers: Vec<bool>,
}

impl DecoderConfig {
    pub fn validate(&self) -> Result<()> {
        if self.num_heads == 0
            || self.num_kv_heads == 0
            || !self.num_heads.is_multiple_of(self.num_kv_heads)
        {
            bail!(
                "attention heads ({}) must be a positive multiple of key/value heads ({})",
                self.num_heads,
                self.num_kv_heads
            );
        }
        if !self.head_dim.is_multiple_of(2) {
            bail!(
                "head_dim must be even for rotary embeddings, got {}",
                self.head_dim
            );
        }
        if self.sliding_layers.len() != self.num_layers {
            bail!(
                "sliding-window pattern lists {} layers but the model has {}",
                self.sliding_layers.len(),
                self.num_layers
            );
        }
        Ok(())
    }

    /// Number of parameters of the base model (tied embeddings counted once).
    pub fn param_count(&self) -> usize {
        let h = self.hidden_size;
        let q = self.num_heads * self.head_dim;
        let kv = self.num_kv_heads * self.head_dim;
        let mut layer = h * q * 2 + h * kv * 2 + 3 * h * self.intermediate_size + 2 * h;
        if self.attention_bias {
            layer += q + 2 * kv;
        }
        if self.qk_norm {
            layer += 2 * self.head_dim;
        }
        if self.sandwich_norms {
            layer += 2 * h;
        }
        let embed = self.vocab_size * h;
        let head = if self.tie_word_embeddings { 0 } else { embed };
        embed + head + self.num_layers * layer + h
    }

    /// The Hugging Face `config.json` that reads back as this config.
    pub fn to_hf_json(&self) -> serde_json::Value {
        let gemma = self.family == Family::Gemma3;
        let mut v = serde_json::json!({
            "model_type": if gemma { "gemma3_text" } else { self.family.name() },
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": match self.activation {
                Activation::Silu => "silu",
                Activation::GeluTanh => "gelu_pytorch_tanh",
            },
            "attention_bias": self.attention_bias,
        });
        match &self.rope_scaling {
            RopeScaling::Linear(f) => {
                v["rope_scaling"] = serde_json::json!({"rope_type": "linear", "factor": f});
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                v["rope_scaling"] = serde_json::json!({"rope_type": "llama3", "factor": factor,
                    "low_freq_factor": low_freq_factor, "high_freq_factor": high_freq_factor,
                    "original_max_position_embeddings": original_max_position_embeddings});
            }
            RopeScaling::None | RopeScaling::Divisors(_) => {}
        }
        let first_windowed = self.sliding_layers.iter().position(|s| *s);
        if let (false, Some(first)) = (gemma, first_windowed) {
            v["sliding_window"] = self.sliding_window.into();
            if self.family == Family::Llama {
                v["model_type"] = "mistral".into();
            } else {
                v["use_sliding_window"] = true.into();
                v["max_window_layers"] = first.into();
            }
        }
        if gemma {
            v["rope_local_base_freq"] = self.rope_local_theta.into();
            v["query_pre_attn_scalar"] = (1.0 / (self.attn_scale * self.attn_scale)).into();
            v["sliding_window"] = self.sliding_window.into();
            v["layer_types"] = self
                .sliding_layers
                .iter()
                .map(|s| {
                    if *s {
                        "sliding_attention"
                    } else {
                        "full_attention"
                    }
                })
                .collect::<Vec<_>>()
                .into();
        }
        v
    }

    /// Read a Hugging Face `config.json`.
    pub fn from_hf_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read model config {}", path.display()))?;
        Self::from_hf_json(&text).with_context(|| format!("in model config {}", path.display()))
    }

    pub fn from_hf_json(text: &str) -> Result<Self> {
        let raw: serde_json::Value = serde_json::from_str(text).context("invalid JSON")?;
        // Multimodal Gemma 3 keeps the language model's settings under `text_config`.
        let body = match raw.get("text_config") {
            Some(inner) if inner.is_object() => inner.clone(),
            _ => raw.clone(),
        };
        let model_type = body
            .get("model_type")
            .or_else(|| raw.get("model_type"))
            .and_then(|v| v.as_str())
            .context("key `model_type` is missing")?
            .to_string();
        let family = Family::parse(&model_type).with_context(|| {
            format!(
                "unknown architecture `model_type = {model_type}`: this loader runs llama (and \
                 mistral), qwen2, qwen3 and gemma3 decoders; pick a model of one of those \
                 families"
            )
        })?;
        refuse_heads_other_than_a_language_models(&raw)?;
        let hf: HfConfig = serde_json::from_value(body).map_err(|e| {
            anyhow::anyhow!(
                "{e}: config.json does not describe a {model_type} decoder as transformers \
                 saves one; compare it with the original model's config.json"
            )
        })?;
        hf.into_config(family, model_type == "mistral")
    }

    /// Build from GGUF metadata (keys `<arch>.block_count`, … as llama.cpp writes them).
    pub fn from_gguf(gguf: &GgufFile, vocab_size: usize, has_output: bool) -> Result<Self> {
        let arch = gguf.string("general.architecture")?;
        let family = Family::parse_gguf(&arch).with_context(|| {
            format!(
                "{}: unknown architecture `{arch}` (general.architecture): this loader runs \
                 GGUF files of llama, qwen2, qwen3 and gemma3 as llama.cpp's \
                 convert_hf_to_gguf.py writes them (Mistral models as `llama`); convert the \
                 model with it, or load the model's Hugging Face folder",
                gguf.path.display()
            )
        })?;
        let key = |k: &str| format!("{arch}.{k}");
        let hidden_size = gguf.usize(&key("embedding_length"))?;
        let num_heads = gguf.usize(&key("attention.head_count"))?;
        if num_heads == 0 {
            bail!(
                "{}: `{}` is 0; a decoder needs at least one attention head (the file is corrupt)",
                gguf.path.display(),
                key("attention.head_count")
            );
        }
        let num_kv_heads = gguf
            .opt_usize(&key("attention.head_count_kv"))?
            .unwrap_or(num_heads);
        let head_dim = gguf
            .opt_usize(&key("attention.key_length"))?
            .unwrap_or(hidden_size / num_heads);
        let num_layers = gguf.usize(&key("block_count"))?;
        let default_eps = if family == Family::Gemma3 { 1e-6 } else { 1e-5 };
        let rms_norm_eps = gguf
            .opt_f64(&key("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(default_eps);
        let rope_theta = gguf
            .opt_f64(&key("rope.freq_base"))?
            .unwrap_or(if family == Family::Gemma3 { 1e6 } else { 1e4 });
        // Llama 3 GGUFs carry their scaling as a `rope_freqs` tensor; the loader adds it.
        let rope_scaling = match gguf
            .get(&key("rope.scaling.type"))
            .and_then(|v| v.to_string().ok())
        {
            Some(t) if t == "linear" => {
                RopeScaling::Linear(gguf.opt_f64(&key("rope.scaling.factor"))?.unwrap_or(1.0))
            }
            Some(t) if t != "none" => bail!(
                "{}: rope scaling `{t}` ({arch}.rope.scaling.type) is not supported",
                gguf.path.display()
            ),
            _ => RopeScaling::None,
        };
        let context_length = gguf.opt_usize(&key("context_length"))?.unwrap_or(4096);
        if context_length == 0 {
            bail!(
                "{}: `{}` is 0; a model's context must be at least one token (the file is corrupt)",
                gguf.path.display(),
                key("context_length")
            );
        }
        let sliding_window = gguf.opt_usize(&key("attention.sliding_window"))?;
        let gemma = family == Family::Gemma3;
        let sliding_layers = (0..num_layers)
            .map(|i| gemma && sliding_window.is_some() && (i + 1) % 6 != 0)
            .collect();
        let config = Self {
            family,
            vocab_size,
            hidden_size,
            intermediate_size: gguf.usize(&key("feed_forward_length"))?,
            num_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps,
            rope_theta,
            rope_local_theta: if gemma { 1e4 } else { rope_theta },
            rope_scaling,
            max_position_embeddings: context_length,
            tie_word_embeddings: !has_output,
            activation: if gemma {
                Activation::GeluTanh
            } else {
                Activation::Silu
            },
            attention_bias: family == Family::Qwen2,
            qk_norm: matches!(family, Family::Qwen3 | Family::Gemma3),
            sandwich_norms: gemma,
            embed_scale: gemma.then(|| (hidden_size as f64).sqrt()),
            attn_scale: 1.0 / (head_dim as f64).sqrt(),
            sliding_window,
            sliding_layers,
        };
        config
            .validate()
            .with_context(|| format!("GGUF file {}", gguf.path.display()))?;
        Ok(config)
    }
}

/// A checkpoint of a classifier, a reward model or a bare `AutoModel` shares the decoder's
/// layers but not its LM head: with tied embeddings it would load and score with the input
/// embeddings, not with anything the model was trained to predict.
fn refuse_heads_other_than_a_language_models(raw: &serde_json::Value) -> Result<()> {
    let Some(names) = raw.get("architectures").and_then(|a| a.as_array()) else {
        return Ok(());
    };
    let names: Vec<&str> = names.iter().filter_map(|n| n.as_str()).collect();
    let generates =
        |n: &&str| n.ends_with("ForCausalLM") || n.ends_with("ForConditionalGeneration");
    if names.is_empty() || names.iter().any(generates) {
        return Ok(());
    }
    bail!(
        "key `architectures` is {names:?}: this checkpoint has no language-model head (a \
         classifier, reward model or bare encoder of the decoder's layers); load the model's \
         …ForCausalLM checkpoint instead"
    )
}

#[derive(Debug, Deserialize)]
struct HfConfig {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_local_base_freq: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
    hidden_act: Option<String>,
    hidden_activation: Option<String>,
    attention_bias: Option<bool>,
    query_pre_attn_scalar: Option<f64>,
    sliding_window: Option<usize>,
    sliding_window_pattern: Option<usize>,
    layer_types: Option<Vec<String>>,
    /// Qwen 2/3: the window applies only when this is true, to layers from `max_window_layers`.
    use_sliding_window: Option<bool>,
    max_window_layers: Option<usize>,
}

impl HfConfig {
    /// `mistral`: the model type is `mistral`, whose `sliding_window` applies to every layer
    /// (a llama config's is not read by transformers).
    fn into_config(self, family: Family, mistral: bool) -> Result<DecoderConfig> {
        if self.max_position_embeddings == Some(0) {
            bail!(
                "`max_position_embeddings` is 0: the model's context must be at least one \
                 token; set it to the model's context length (or remove the key for 4096)"
            );
        }
        let gemma = family == Family::Gemma3;
        let head_dim = self
            .head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1));
        let act_name = self
            .hidden_activation
            .or(self.hidden_act)
            .unwrap_or_else(|| if gemma { "gelu_pytorch_tanh" } else { "silu" }.to_string());
        let activation = match act_name.as_str() {
            "silu" | "swish" => Activation::Silu,
            "gelu_pytorch_tanh" | "gelu_tanh" => Activation::GeluTanh,
            other => bail!(
                "key `hidden_act`: unsupported activation `{other}` (silu, gelu_pytorch_tanh)"
            ),
        };
        let rope_scaling = match &self.rope_scaling {
            None | Some(serde_json::Value::Null) => RopeScaling::None,
            Some(v) => {
                let kind = v
                    .get("rope_type")
                    .or_else(|| v.get("type"))
                    .and_then(|t| t.as_str())
                    .context(
                        "key `rope_scaling` has no `rope_type` (or `type`); set it to the \
                         model's scaling (linear, llama3), or remove `rope_scaling` if the model \
                         has none",
                    )?;
                let num = |k: &str| -> Result<f64> {
                    v.get(k)
                        .and_then(|f| f.as_f64())
                        .with_context(|| format!("key `rope_scaling.{k}` is missing"))
                };
                match kind {
                    "linear" => RopeScaling::Linear(num("factor")?),
                    "llama3" => RopeScaling::Llama3 {
                        factor: num("factor")?,
                        low_freq_factor: num("low_freq_factor")?,
                        high_freq_factor: num("high_freq_factor")?,
                        original_max_position_embeddings: num("original_max_position_embeddings")?
                            as usize,
                    },
                    "default" => RopeScaling::None,
                    other => bail!(
                        "key `rope_scaling`: rope type `{other}` is not supported (linear, llama3)"
                    ),
                }
            }
        };
        let sliding_layers: Vec<bool> = match (&self.layer_types, self.sliding_window_pattern) {
            (Some(types), _) => types.iter().map(|t| t == "sliding_attention").collect(),
            (None, Some(p)) if gemma && p > 0 => (0..self.num_hidden_layers)
                .map(|i| (i + 1) % p != 0)
                .collect(),
            _ if gemma && self.sliding_window.is_some() => (0..self.num_hidden_layers)
                .map(|i| (i + 1) % 6 != 0)
                .collect(),
            // Mistral attends within `sliding_window` in every layer.
            _ if mistral && self.sliding_window.is_some() => {
                vec![true; self.num_hidden_layers]
            }
            _ if matches!(family, Family::Qwen2 | Family::Qwen3)
                && self.use_sliding_window == Some(true)
                && self.sliding_window.is_some() =>
            {
                let first = self.max_window_layers.unwrap_or(28);
                (0..self.num_hidden_layers).map(|i| i >= first).collect()
            }
            _ => vec![false; self.num_hidden_layers],
        };
        let windowed = sliding_layers.iter().any(|s| *s);
        if windowed && self.sliding_window.is_none() {
            bail!(
                "key `layer_types` marks sliding-attention layers but `sliding_window` is \
                 missing; set it to the model's window (or mark every layer full_attention)"
            );
        }
        // Windowed layers rotate without scaling (Gemma 3's local layers); another family's
        // would need the scaled rotation too.
        if windowed && !gemma && rope_scaling != RopeScaling::None {
            bail!(
                "a sliding window (`sliding_window`) together with `rope_scaling` is supported \
                 for gemma3 only; this {} model would rotate its windowed layers unscaled",
                family.name()
            );
        }
        let rope_theta = self.rope_theta.unwrap_or(if gemma { 1e6 } else { 1e4 });
        let config = DecoderConfig {
            family,
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_layers: self.num_hidden_layers,
            num_heads: self.num_attention_heads,
            num_kv_heads: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
            head_dim,
            rms_norm_eps: self.rms_norm_eps.unwrap_or(1e-6),
            rope_theta,
            rope_local_theta: if gemma {
                self.rope_local_base_freq.unwrap_or(1e4)
            } else {
                rope_theta
            },
            rope_scaling,
            max_position_embeddings: self.max_position_embeddings.unwrap_or(4096),
            tie_word_embeddings: self.tie_word_embeddings.unwrap_or(gemma),
            activation,
            attention_bias: self.attention_bias.unwrap_or(family == Family::Qwen2),
            qk_norm: matches!(family, Family::Qwen3 | Family::Gemma3),
            sandwich_norms: gemma,
            embed_scale: gemma.then(|| (self.hidden_size as f64).sqrt()),
            attn_scale: 1.0 / self.query_pre_attn_scalar.unwrap_or(head_dim as f64).sqrt(),
            sliding_window: self
                .sliding_window
                .filter(|_| sliding_layers.iter().any(|s| *s)),
            sliding_layers,
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
#[path = "decoder_config_tests.rs"]
mod tests;
