//! A BERT encoder (the architecture of all-MiniLM-L6-v2) written on candle: embeddings with
//! layer norm, post-norm transformer layers with erf-GELU, padding-aware self-attention.
//! It returns the final hidden states; pooling lives in `encoder.rs`.
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{embedding, Embedding, VarBuilder};

use super::encoder_dense::EncoderDense;
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

    /// `input_ids` `[batch, seq]`, every row starting at position 0.
    fn forward(&self, input_ids: &Tensor) -> candle_core::Result<Tensor> {
        let (_batch, seq) = input_ids.dims2()?;
        let positions = Tensor::arange(0u32, seq as u32, input_ids.device())?;
        self.forward_at(input_ids, &positions)
    }

    /// Token embeddings plus the position embeddings of `positions` (broadcast over leading
    /// dimensions), plus segment 0 (single-segment inputs), layer-normed.
    fn forward_at(&self, input_ids: &Tensor, positions: &Tensor) -> candle_core::Result<Tensor> {
        let types = Tensor::zeros(1, DType::U32, input_ids.device())?;
        let words = self.word.forward(input_ids)?;
        let extra = self
            .position
            .forward(positions)?
            .broadcast_add(&self.token_type.forward(&types)?)?;
        self.norm.forward(&words.broadcast_add(&extra)?)
    }
}

struct Layer {
    /// Query, key and value in one `[3·hidden, hidden]` product (one gemm instead of three
    /// narrow ones; the rows are query, then key, then value).
    qkv: EncoderDense,
    attn_out: EncoderDense,
    attn_norm: InferenceLayerNorm,
    intermediate: EncoderDense,
    output: EncoderDense,
    out_norm: InferenceLayerNorm,
    heads: usize,
    head_dim: usize,
}

impl Layer {
    fn load(vb: VarBuilder, c: &BertConfig) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let att = vb.pp("attention");
        let parts = ["query", "key", "value"].map(|name| {
            let vb = att.pp("self").pp(name);
            Ok::<_, candle_core::Error>((vb.get((h, h), "weight")?, vb.get(h, "bias")?))
        });
        let mut weights = Vec::with_capacity(3);
        let mut biases = Vec::with_capacity(3);
        for part in parts {
            let (w, b) = part?;
            weights.push(w);
            biases.push(b);
        }
        Ok(Self {
            qkv: EncoderDense::new(&Tensor::cat(&weights, 0)?, &Tensor::cat(&biases, 0)?)?,
            attn_out: EncoderDense::load(h, h, att.pp("output").pp("dense"))?,
            attn_norm: InferenceLayerNorm::load(
                h,
                c.layer_norm_eps,
                att.pp("output").pp("LayerNorm"),
            )?,
            intermediate: EncoderDense::load(
                h,
                c.intermediate_size,
                vb.pp("intermediate").pp("dense"),
            )?,
            output: EncoderDense::load(c.intermediate_size, h, vb.pp("output").pp("dense"))?,
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
        // [b, s, 3, heads, head_dim] → [3, b, heads, s, head_dim]: one copy for all three.
        let qkv = self
            .qkv
            .forward_bias(x)?
            .reshape((b, s, 3, self.heads, self.head_dim))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?;
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        let ctx = self
            .attend(&q, &k, &v, mask_bias)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, s, h))?;
        self.feed_forward(x, &ctx)
    }

    /// The same layer over sequences laid end to end (`x` is `[tokens, hidden]`): every
    /// product runs on real tokens only.
    fn forward_packed(
        &self,
        x: &Tensor,
        packing: &Packing,
        fused_attention: bool,
    ) -> candle_core::Result<Tensor> {
        let (t, h) = x.dims2()?;
        let qkv = self.qkv.forward_bias(x)?;
        let fused = match fused_attention {
            true => self.packed_attention_cpu(&qkv, packing)?,
            false => None,
        };
        let ctx = if let Some(ctx) = fused {
            ctx
        } else {
            let rows = qkv.reshape((t * 3 * self.heads, self.head_dim))?;
            let padded = packing.padded(x.device())?;
            let block = (packing.batch(), self.heads, padded.width, self.head_dim);
            let [q, k, v] = &padded.to_padded;
            let (q, k, v) = (
                rows.index_select(q, 0)?.reshape(block)?,
                rows.index_select(k, 0)?.reshape(block)?,
                rows.index_select(v, 0)?.reshape(block)?,
            );
            self.attend(&q, &k, &v, &padded.mask_bias)?
                .reshape((packing.batch() * self.heads * padded.width, self.head_dim))?
                .index_select(&padded.to_packed, 0)?
                .reshape((t, h))?
        };
        self.feed_forward(x, &ctx)
    }

    /// Attention straight from the fused qkv rows on the CPU in f32 (see
    /// `packed_attention.rs`); `None` on other devices and dtypes.
    fn packed_attention_cpu(
        &self,
        qkv: &Tensor,
        packing: &Packing,
    ) -> candle_core::Result<Option<Tensor>> {
        if !(qkv.device().is_cpu() && qkv.dtype() == DType::F32) {
            return Ok(None);
        }
        let (storage, layout) = qkv.storage_and_layout();
        let values =
            super::cpu_slice::cpu_contiguous_f32(&storage, layout, "packed attention: qkv")?;
        let ctx = super::packed_attention::packed_attention(
            values,
            &packing.lengths,
            self.heads,
            self.head_dim,
        );
        let tokens = qkv.dim(0)?;
        Tensor::from_vec(ctx, (tokens, self.heads * self.head_dim), qkv.device()).map(Some)
    }

    /// Softmax attention over `[b, heads, s, head_dim]` blocks.
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask_bias: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        // The transposed view goes straight to gemm as strides; making it contiguous first
        // measured 8× slower for these small per-head blocks.
        let raw = q.matmul(&k.t()?)?;
        let probs = super::fused_softmax::scaled_masked_softmax(&raw, mask_bias, scale)?;
        probs.matmul(v)
    }

    /// Attention output projection, then the feed-forward block, each with residual + norm.
    fn feed_forward(&self, x: &Tensor, ctx: &Tensor) -> candle_core::Result<Tensor> {
        let x = self
            .attn_out
            .forward_bias_residual_norm(ctx, x, &self.attn_norm)?;
        let ff = self.intermediate.forward_bias_gelu(&x)?;
        self.output
            .forward_bias_residual_norm(&ff, &x, &self.out_norm)
    }
}

/// The sequence lengths of a packed batch, and (built on first use, for devices without the
/// fused CPU attention) where each token goes in padded head blocks and back.
struct Packing {
    lengths: Vec<usize>,
    heads: usize,
    padded: std::sync::OnceLock<PaddedBlocks>,
}

/// Padded slots point at a real token of their own sequence (finite values); the mask gives
/// them zero weight as keys, and their rows as queries are never gathered back.
struct PaddedBlocks {
    width: usize,
    /// Row indices into the qkv output viewed as `[tokens·3·heads, head_dim]`, in
    /// `[batch, heads, width]` order: query, key, value.
    to_padded: [Tensor; 3],
    /// Row indices into the attention output viewed as `[batch·heads·width, head_dim]`, in
    /// `[tokens, heads]` order.
    to_packed: Tensor,
    /// `[batch, 1, 1, width]`: 0 for tokens, a large negative for padding.
    mask_bias: Tensor,
}

impl Packing {
    fn new(lengths: &[usize], heads: usize) -> Result<Self> {
        if let Some(seq) = lengths.iter().position(|&n| n == 0) {
            bail!("sequence {seq} of a packed batch has no tokens");
        }
        Ok(Self {
            lengths: lengths.to_vec(),
            heads,
            padded: std::sync::OnceLock::new(),
        })
    }

    fn batch(&self) -> usize {
        self.lengths.len()
    }

    fn padded(&self, device: &Device) -> candle_core::Result<&PaddedBlocks> {
        if let Some(blocks) = self.padded.get() {
            return Ok(blocks);
        }
        let blocks = self.build_padded(device)?;
        Ok(self.padded.get_or_init(|| blocks))
    }

    fn build_padded(&self, device: &Device) -> candle_core::Result<PaddedBlocks> {
        let (batch, heads) = (self.batch(), self.heads);
        let width = self.lengths.iter().copied().max().unwrap_or(0);
        let tokens: usize = self.lengths.iter().sum();
        let mut to_padded = [(); 3].map(|_| Vec::with_capacity(batch * heads * width));
        let mut to_packed = vec![0u32; tokens * heads];
        let mut mask_bias = Vec::with_capacity(batch * width);
        let mut start = 0;
        for (seq, &len) in self.lengths.iter().enumerate() {
            for head in 0..heads {
                for pos in 0..width {
                    let token = start + pos.min(len - 1);
                    for (kind, idx) in to_padded.iter_mut().enumerate() {
                        idx.push(((token * 3 + kind) * heads + head) as u32);
                    }
                    if pos < len {
                        to_packed[token * heads + head] =
                            ((seq * heads + head) * width + pos) as u32;
                    }
                }
            }
            mask_bias.extend((0..width).map(|pos| if pos < len { 0f32 } else { -1e9 }));
            start += len;
        }
        let [q, k, v] = to_padded.map(|idx| Tensor::from_vec(idx, batch * heads * width, device));
        Ok(PaddedBlocks {
            width,
            to_padded: [q?, k?, v?],
            to_packed: Tensor::from_vec(to_packed, tokens * heads, device)?,
            mask_bias: Tensor::from_vec(mask_bias, (batch, 1, 1, width), device)?,
        })
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

    /// Final hidden states `[tokens, hidden]` of sequences laid end to end: `ids` holds every
    /// sequence's tokens in turn, `lengths` how many each has. The same values as [`forward`]
    /// on the padded batch, without spending the linear layers on padding.
    ///
    /// [`forward`]: Bert::forward
    pub fn forward_packed(&self, ids: &[u32], lengths: &[usize]) -> Result<Tensor> {
        // `LAB_UNFUSED=attention`: candle's ops on padded head blocks (the side-by-side
        // baseline of the fused kernel, and the path on devices without it).
        self.forward_packed_with(ids, lengths, super::fused_train::fused("attention"))
    }

    fn forward_packed_with(
        &self,
        ids: &[u32],
        lengths: &[usize],
        fused_attention: bool,
    ) -> Result<Tensor> {
        let tokens: usize = lengths.iter().sum();
        if tokens != ids.len() {
            bail!(
                "packed batch: lengths add up to {tokens} tokens but {} ids were given",
                ids.len()
            );
        }
        let longest = lengths.iter().copied().max().unwrap_or(0);
        if longest > self.config.max_position_embeddings {
            bail!(
                "sequence of {longest} tokens is longer than the model's {} positions",
                self.config.max_position_embeddings
            );
        }
        let positions: Vec<u32> = lengths.iter().flat_map(|&n| 0..n as u32).collect();
        let packing = Packing::new(lengths, self.config.num_attention_heads)?;
        let ids = Tensor::from_slice(ids, tokens, &self.device)?;
        let positions = Tensor::from_vec(positions, tokens, &self.device)?;
        let mut x = self.embeddings.forward_at(&ids, &positions)?;
        for layer in &self.layers {
            x = layer.forward_packed(&x, &packing, fused_attention)?;
        }
        Ok(x)
    }
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
#[path = "bert_tests.rs"]
mod tests;
