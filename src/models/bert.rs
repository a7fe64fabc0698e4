//! A BERT encoder (the architecture of all-MiniLM-L6-v2) written on candle: embeddings with
//! layer norm, post-norm transformer layers with erf-GELU, padding-aware self-attention.
//! It returns the final hidden states; pooling lives in `encoder.rs`.
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{embedding, linear, Embedding, Linear, VarBuilder};

use super::layer_norm::InferenceLayerNorm;
use serde::Deserialize;
use std::path::Path;

/// The fields of a Hugging Face BERT `config.json` this implementation needs.
#[derive(Clone, Debug, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
}

fn default_type_vocab_size() -> usize {
    2
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_hidden_act() -> String {
    "gelu".into()
}
fn default_position_embedding_type() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Read and check `config.json`; errors name the file and the offending key.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read BERT config {}", path.display()))?;
        let config: Self = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a BERT config.json (needs vocab_size, hidden_size, num_hidden_layers, \
                 num_attention_heads, intermediate_size, max_position_embeddings)",
                path.display()
            )
        })?;
        config
            .validate()
            .with_context(|| format!("in {}", path.display()))?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        // transformers' "gelu" is the exact erf form; the tanh approximation would drift.
        if self.hidden_act != "gelu" {
            bail!(
                "hidden_act = {:?} is not supported (only \"gelu\", the erf form)",
                self.hidden_act
            );
        }
        if self.position_embedding_type != "absolute" {
            bail!(
                "position_embedding_type = {:?} is not supported (only \"absolute\")",
                self.position_embedding_type
            );
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            bail!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size,
                self.num_attention_heads
            );
        }
        Ok(())
    }
}

struct Embeddings {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: InferenceLayerNorm,
}

impl Embeddings {
    fn load(vb: VarBuilder, c: &BertConfig) -> candle_core::Result<Self> {
        Ok(Self {
            word: embedding(c.vocab_size, c.hidden_size, vb.pp("word_embeddings"))?,
            position: embedding(
                c.max_position_embeddings,
                c.hidden_size,
                vb.pp("position_embeddings"),
            )?,
            token_type: embedding(
                c.type_vocab_size,
                c.hidden_size,
                vb.pp("token_type_embeddings"),
            )?,
            norm: InferenceLayerNorm::load(c.hidden_size, c.layer_norm_eps, vb.pp("LayerNorm"))?,
        })
    }

    fn forward(&self, input_ids: &Tensor) -> candle_core::Result<Tensor> {
        let (_batch, seq) = input_ids.dims2()?;
        let device = input_ids.device();
        let positions = Tensor::arange(0u32, seq as u32, device)?;
        // Single-segment inputs: every token has type 0.
        let types = Tensor::zeros(seq, DType::U32, device)?;
        let words = self.word.forward(input_ids)?;
        let extra = (self.position.forward(&positions)? + self.token_type.forward(&types)?)?;
        self.norm.forward(&words.broadcast_add(&extra)?)
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: InferenceLayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: InferenceLayerNorm,
    heads: usize,
    head_dim: usize,
}

impl Layer {
    fn load(vb: VarBuilder, c: &BertConfig) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let att = vb.pp("attention");
        Ok(Self {
            query: linear(h, h, att.pp("self").pp("query"))?,
            key: linear(h, h, att.pp("self").pp("key"))?,
            value: linear(h, h, att.pp("self").pp("value"))?,
            attn_out: linear(h, h, att.pp("output").pp("dense"))?,
            attn_norm: InferenceLayerNorm::load(
                h,
                c.layer_norm_eps,
                att.pp("output").pp("LayerNorm"),
            )?,
            intermediate: linear(h, c.intermediate_size, vb.pp("intermediate").pp("dense"))?,
            output: linear(c.intermediate_size, h, vb.pp("output").pp("dense"))?,
            out_norm: InferenceLayerNorm::load(
                h,
                c.layer_norm_eps,
                vb.pp("output").pp("LayerNorm"),
            )?,
            heads: c.num_attention_heads,
            head_dim: h / c.num_attention_heads,
        })
    }

    /// `mask_bias` is `[batch, 1, 1, seq]`: 0 for tokens, a large negative for padding.
    fn forward(&self, x: &Tensor, mask_bias: &Tensor) -> candle_core::Result<Tensor> {
        let (b, s, h) = x.dims3()?;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, s, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        // The transposed view goes straight to gemm as strides; making it contiguous first
        // measured 8× slower for these small per-head blocks.
        let raw = q.matmul(&k.t()?)?;
        let probs = super::fused_softmax::scaled_masked_softmax(&raw, mask_bias, scale)?;
        let ctx = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, s, h))?;
        let x = self
            .attn_norm
            .forward(&(self.attn_out.forward(&ctx)? + x)?)?;
        let ff = super::fast_gelu::gelu_erf(&self.intermediate.forward(&x)?)?;
        self.out_norm.forward(&(self.output.forward(&ff)? + x)?)
    }
}

/// BERT weights and the forward pass to final hidden states.
pub struct Bert {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    config: BertConfig,
    device: Device,
}

impl Bert {
    /// Build from safetensors bytes. Accepts both bare names (`embeddings.…`, as
    /// sentence-transformers saves them) and the `bert.` prefix of `BertForX` checkpoints.
    pub fn from_safetensors(
        bytes: Vec<u8>,
        config: BertConfig,
        device: &Device,
        origin: &Path,
    ) -> Result<Self> {
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, device).with_context(
            || {
                format!(
                    "{} is not a readable safetensors file (corrupt or truncated?); \
                     run `lab setup` to fetch it again",
                    origin.display()
                )
            },
        )?;
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            vb
        } else {
            vb.pp("bert")
        };
        let describe = || {
            format!(
                "{} does not hold the BERT weights its config.json describes \
                 (missing tensor or wrong shape)",
                origin.display()
            )
        };
        let embeddings = Embeddings::load(vb.pp("embeddings"), &config).with_context(describe)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(vb.pp("encoder").pp("layer").pp(i), &config))
            .collect::<candle_core::Result<Vec<_>>>()
            .with_context(describe)?;
        Ok(Self {
            embeddings,
            layers,
            config,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Final hidden states `[batch, seq, hidden]` for right-padded `input_ids` `[batch, seq]`
    /// (u32) with `attention_mask` `[batch, seq]` (u32 or f32, 1 = token, 0 = padding).
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let (b, s) = input_ids.dims2()?;
        if s > self.config.max_position_embeddings {
            bail!(
                "sequence of {s} tokens is longer than the model's {} positions",
                self.config.max_position_embeddings
            );
        }
        let mask = attention_mask.to_dtype(DType::F32)?;
        // exp(-1e9 - max) underflows to exactly 0, so padding gets no weight; -inf would
        // give NaN if a row were all padding.
        let mask_bias = ((mask - 1.0)? * 1e9)?.reshape((b, 1, 1, s))?;
        let mut x = self.embeddings.forward(input_ids)?;
        for layer in &self.layers {
            x = layer.forward(&x, &mask_bias)?;
        }
        Ok(x)
    }
}

/// Mean of the hidden states over the attention mask: `[batch, seq, hidden]` → `[batch, hidden]`.
pub fn mean_pool(hidden: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
    let mask = attention_mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    // sentence-transformers clamps the count at 1e-9 so an all-padding row stays finite.
    let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
    Ok(summed.broadcast_div(&counts)?)
}

/// Random weights of the shape `config` describes, saved as safetensors (for tests that
/// need a BERT but not its knowledge).
#[cfg(test)]
pub(crate) fn save_random_bert(config: &BertConfig, path: &Path) {
    let device = Device::Cpu;
    let varmap = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    Embeddings::load(vb.pp("embeddings"), config).expect("fresh variables");
    for i in 0..config.num_hidden_layers {
        Layer::load(vb.pp("encoder").pp("layer").pp(i), config).expect("fresh variables");
    }
    varmap.save(path).expect("temporary folder is writable");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_config() -> BertConfig {
        BertConfig {
            vocab_size: 50,
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 32,
            max_position_embeddings: 32,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".into(),
            position_embedding_type: "absolute".into(),
        }
    }

    /// A random tiny BERT saved as safetensors and loaded back through the real loader.
    fn tiny_bert() -> Bert {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        save_random_bert(&tiny_config(), &path);
        let bytes = std::fs::read(&path).unwrap();
        Bert::from_safetensors(bytes, tiny_config(), &Device::Cpu, &path).unwrap()
    }

    #[test]
    fn padding_does_not_change_the_real_tokens() {
        let bert = tiny_bert();
        let dev = Device::Cpu;
        let alone = Tensor::new(&[[5u32, 7, 9]], &dev).unwrap();
        let alone_mask = Tensor::new(&[[1u32, 1, 1]], &dev).unwrap();
        let padded = Tensor::new(&[[5u32, 7, 9, 0, 0]], &dev).unwrap();
        let padded_mask = Tensor::new(&[[1u32, 1, 1, 0, 0]], &dev).unwrap();
        let a = bert.forward(&alone, &alone_mask).unwrap();
        let p = bert.forward(&padded, &padded_mask).unwrap();
        let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let p: Vec<f32> = p
            .narrow(1, 0, 3)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let max_diff = a
            .iter()
            .zip(&p)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            max_diff < 1e-5,
            "padding leaked into real tokens: {max_diff}"
        );
    }

    #[test]
    fn mean_pool_ignores_padding() {
        let dev = Device::Cpu;
        let hidden = Tensor::new(&[[[1f32, 2.], [3., 4.], [100., 100.]]], &dev).unwrap();
        let mask = Tensor::new(&[[1u32, 1, 0]], &dev).unwrap();
        let pooled: Vec<Vec<f32>> = mean_pool(&hidden, &mask).unwrap().to_vec2().unwrap();
        assert_eq!(pooled, vec![vec![2.0, 3.0]]);
    }

    #[test]
    fn rejects_tanh_gelu_and_bad_head_count() {
        let mut c = tiny_config();
        c.hidden_act = "gelu_new".into();
        assert!(c.validate().unwrap_err().to_string().contains("hidden_act"));
        let mut c = tiny_config();
        c.num_attention_heads = 5;
        assert!(c.validate().unwrap_err().to_string().contains("divisible"));
    }

    #[test]
    fn truncated_weights_give_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let err = Bert::from_safetensors(vec![1, 2, 3], tiny_config(), &Device::Cpu, &path)
            .err()
            .expect("three bytes are not a safetensors file");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("model.safetensors") && msg.contains("lab setup"),
            "{msg}"
        );
    }
}
