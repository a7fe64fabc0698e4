//! One config-driven decoder for the llama, qwen2, qwen3 and gemma3 families, with LoRA-aware
//! linears, left-padding-aware masks and positions, and a KV cache.
use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};

use super::decoder_config::{Activation, DecoderConfig};
use super::decoder_int8_head::Int8Head;
pub use super::kv_cache::KvCache;
use super::kv_cache::LayerCache;
use super::lora::{dense_forward, transpose, ForwardMode, LoraLinear};
pub use super::masks::{position_tensor, positions_from_mask, Masks};
use super::rope::{self, RopeTables};

#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            Ok(super::fused_train::rms_norm_train(
                x,
                &self.weight,
                self.eps,
            )?)
        } else {
            Ok(candle_nn::ops::rms_norm(
                &x.contiguous()?,
                &self.weight,
                self.eps as f32,
            )?)
        }
    }
}

/// Names of the linear projections LoRA can target.
pub const LINEAR_NAMES: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

#[derive(Debug, Clone)]
pub struct Attention {
    pub q_proj: LoraLinear,
    pub k_proj: LoraLinear,
    pub v_proj: LoraLinear,
    pub o_proj: LoraLinear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    scale: f64,
}

#[derive(Debug, Clone)]
pub struct Mlp {
    pub gate_proj: LoraLinear,
    pub up_proj: LoraLinear,
    pub down_proj: LoraLinear,
    activation: Activation,
}

#[derive(Debug, Clone)]
pub struct Layer {
    pub attn: Attention,
    pub mlp: Mlp,
    input_norm: RmsNorm,
    post_attn_norm: Option<RmsNorm>,
    pre_mlp_norm: RmsNorm,
    post_mlp_norm: Option<RmsNorm>,
    sliding: bool,
}

impl Attention {
    /// Attention output `[b, queries, hidden]` for the last `queries` of the `t` positions in
    /// `x` (`queries == t`: all of them). Keys and values always cover every position.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        x: &Tensor,
        cos_sin: &(Tensor, Tensor),
        mask: &Tensor,
        cache: Option<&mut Option<LayerCache>>,
        mode: ForwardMode,
        stream: u64,
        queries: usize,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (h, kvh, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let heads = |y: Tensor, n: usize| -> Result<Tensor> {
            let rows = y.dim(1)?;
            Ok(y.reshape((b, rows, n, hd))?.transpose(1, 2)?.contiguous()?)
        };
        // The last `queries` of the t positions along `dim`.
        let tail = |y: &Tensor, dim: usize| -> Result<Tensor> {
            Ok(if queries == t {
                y.clone()
            } else {
                y.narrow(dim, t - queries, queries)?.contiguous()?
            })
        };
        let mut q = heads(self.q_proj.forward(&tail(x, 1)?, mode, stream)?, h)?;
        let mut k = heads(self.k_proj.forward(x, mode, stream + 1)?, kvh)?;
        let v = heads(self.v_proj.forward(x, mode, stream + 2)?, kvh)?;
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = qn.forward(&q, mode.train)?;
            k = kn.forward(&k, mode.train)?;
        }
        let (cos, sin) = cos_sin;
        let q = rope::apply(&q, &tail(cos, 1)?, &tail(sin, 1)?, mode.train)?;
        let k = rope::apply(&k, cos, sin, mode.train)?;
        let (k, v) = match cache {
            Some(slot) => LayerCache::append(slot, &k, &v)?,
            None => (k, v),
        };
        // The mask's rows (dimension 2) are the t queries.
        let mask = tail(mask, 2)?;
        let out = match super::fused_attention::fused_attention(
            &q, &k, &v, &mask, self.scale, mode.train,
        )? {
            Some(out) => out,
            None => self.composed_attention(&q, &k, &v, &mask)?,
        };
        let out = out.transpose(1, 2)?.reshape((b, queries, h * hd))?;
        self.o_proj.forward(&out, mode, stream + 3)
    }

    /// `softmax(scale · q kᵀ + mask) v` as candle ops, `[b, h, t, hd]`: the path off the CPU
    /// and the side-by-side baseline of the fused op (`LAB_UNFUSED=attention`).
    fn composed_attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
    ) -> Result<Tensor> {
        let (b, h, t, hd) = q.dims4()?;
        let (kvh, total) = (k.dim(1)?, k.dim(2)?);
        // Grouped-query attention without copying K/V: fold the query heads that share a
        // key/value head into the row dimension.
        let rep = h / kvh;
        let q = q.reshape((b, kvh, rep * t, hd))?;
        let raw = q.matmul(&k.t()?)?.reshape((b, h, t, total))?;
        // One pass for scale, mask and softmax (and, in training, one kept tensor).
        let probs = super::fused_softmax::scaled_masked_softmax(&raw, mask, self.scale)?;
        Ok(probs
            .reshape((b, kvh, rep * t, total))?
            .matmul(v)?
            .reshape((b, h, t, hd))?)
    }
}

impl Mlp {
    fn forward(&self, x: &Tensor, mode: ForwardMode, stream: u64) -> Result<Tensor> {
        let gate = self.gate_proj.forward(x, mode, stream)?;
        let up = self.up_proj.forward(x, mode, stream + 1)?;
        let hidden = match self.activation {
            Activation::Silu => super::fused_train::swiglu_train(&gate, &up)?,
            Activation::GeluTanh => (gate.gelu()? * up)?,
        };
        self.down_proj.forward(&hidden, mode, stream + 2)
    }
}

#[derive(Debug, Clone)]
pub struct Decoder {
    pub config: DecoderConfig,
    embed: Tensor,
    /// The LM head transposed, `[hidden, vocab]` contiguous (a copy even when tied: decode
    /// spends a fifth of its time here and the transposed layout is twice as fast).
    lm_head_t: Tensor,
    /// The head in a quarter of the bytes for decoding steps, where it is exact (see
    /// `decoder_int8_head`); shared by clones.
    int8_head: Option<std::sync::Arc<Int8Head>>,
    pub layers: Vec<Layer>,
    norm: RmsNorm,
    rope_global: RopeTables,
    rope_local: Option<RopeTables>,
    dtype: DType,
    device: Device,
}

/// Takes tensors out of a name → tensor map, naming what is missing.
struct Weights<'a> {
    map: &'a mut HashMap<String, Tensor>,
    dtype: DType,
    norm_offset: f64,
}

impl Weights<'_> {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self
            .map
            .remove(name)
            .with_context(|| format!("tensor `{name}` is missing from the model weights"))?;
        if t.dims() != shape {
            bail!(
                "tensor `{name}` has shape {:?}, the config implies {shape:?}",
                t.dims()
            );
        }
        Ok(t.to_dtype(self.dtype)?)
    }

    fn linear(&mut self, prefix: &str, out: usize, inp: usize, bias: bool) -> Result<LoraLinear> {
        let w = self.take(&format!("{prefix}.weight"), &[out, inp])?;
        let b = if bias {
            Some(self.take(&format!("{prefix}.bias"), &[out])?)
        } else {
            None
        };
        LoraLinear::new(w, b)
    }

    fn norm(&mut self, name: &str, dim: usize, eps: f64) -> Result<RmsNorm> {
        let mut weight = self.take(&format!("{name}.weight"), &[dim])?;
        if self.norm_offset != 0.0 {
            weight = (weight + self.norm_offset)?;
        }
        Ok(RmsNorm { weight, eps })
    }
}

/// Layer tensors left after building mean the config describes a smaller model than the
/// weights (fewer layers, no biases): running it would silently compute something else.
/// Other leftovers (a vision tower, precomputed rotary frequencies) are not the decoder's.
fn refuse_unused_layer_tensors(map: &HashMap<String, Tensor>, num_layers: usize) -> Result<()> {
    let mut unused: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|n| n.starts_with("model.layers.") && !n.ends_with("rotary_emb.inv_freq"))
        .collect();
    if unused.is_empty() {
        return Ok(());
    }
    unused.sort_unstable();
    let shown = unused
        .iter()
        .take(3)
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>();
    bail!(
        "the weights hold {} layer tensor(s) the config does not use ({}{}): the config \
         (config.json, or the GGUF header) describes another model than these weights — check \
         its layer count ({num_layers}) and attention_bias against the checkpoint",
        unused.len(),
        shown.join(", "),
        if unused.len() > 3 { ", …" } else { "" }
    )
}

/// The int8 form of a CPU f32 head `[vocab, hidden]` when it holds the weights exactly.
fn int8_head_of(lm_head: &Tensor) -> Result<Option<std::sync::Arc<Int8Head>>> {
    if !lm_head.device().is_cpu() || lm_head.dtype() != DType::F32 {
        return Ok(None);
    }
    let (vocab, hidden) = lm_head.dims2()?;
    let lm_head = lm_head.contiguous()?;
    let (storage, layout) = lm_head.storage_and_layout();
    let (candle_core::Storage::Cpu(candle_core::CpuStorage::F32(values)), Some((start, end))) =
        (&*storage, layout.contiguous_offsets())
    else {
        return Ok(None);
    };
    Ok(Int8Head::exact(&values[start..end], vocab, hidden).map(std::sync::Arc::new))
}

impl Decoder {
    /// Build from Hugging Face-named tensors. `gemma_norm_offset` is true for Hugging Face Gemma
    /// weights, whose norms multiply by `1 + w` (GGUF files already store `1 + w`).
    pub fn from_weights(
        config: DecoderConfig,
        mut map: HashMap<String, Tensor>,
        gemma_norm_offset: bool,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let c = &config;
        let (hd, hsz) = (c.head_dim, c.hidden_size);
        let embed = map
            .remove("model.embed_tokens.weight")
            .context("tensor `model.embed_tokens.weight` is missing from the model weights")?;
        let (vocab, emb_dim) = embed.dims2()?;
        if emb_dim != hsz || vocab != c.vocab_size {
            bail!(
                "embedding has shape [{vocab}, {emb_dim}] but the config says vocab {} × hidden {hsz}",
                c.vocab_size
            );
        }
        let embed = embed.to_dtype(dtype)?;
        let lm_head = if c.tie_word_embeddings {
            map.remove("lm_head.weight");
            embed.clone()
        } else {
            map.remove("lm_head.weight")
                .context("tensor `lm_head.weight` is missing (and embeddings are not tied)")?
                .to_dtype(dtype)?
        };
        let lm_head_t = transpose(&lm_head)?;
        let int8_head = int8_head_of(&lm_head)?;
        let mut w = Weights {
            map: &mut map,
            dtype,
            norm_offset: if gemma_norm_offset { 1.0 } else { 0.0 },
        };
        let eps = c.rms_norm_eps;
        let mut layers = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let p = format!("model.layers.{i}");
            let a = format!("{p}.self_attn");
            let (q_dim, kv_dim) = (c.num_heads * hd, c.num_kv_heads * hd);
            let attn = Attention {
                q_proj: w.linear(&format!("{a}.q_proj"), q_dim, hsz, c.attention_bias)?,
                k_proj: w.linear(&format!("{a}.k_proj"), kv_dim, hsz, c.attention_bias)?,
                v_proj: w.linear(&format!("{a}.v_proj"), kv_dim, hsz, c.attention_bias)?,
                o_proj: w.linear(&format!("{a}.o_proj"), hsz, q_dim, false)?,
                q_norm: c
                    .qk_norm
                    .then(|| w.norm(&format!("{a}.q_norm"), hd, eps))
                    .transpose()?,
                k_norm: c
                    .qk_norm
                    .then(|| w.norm(&format!("{a}.k_norm"), hd, eps))
                    .transpose()?,
                num_heads: c.num_heads,
                num_kv_heads: c.num_kv_heads,
                head_dim: hd,
                scale: c.attn_scale,
            };
            let m = format!("{p}.mlp");
            let mlp = Mlp {
                gate_proj: w.linear(&format!("{m}.gate_proj"), c.intermediate_size, hsz, false)?,
                up_proj: w.linear(&format!("{m}.up_proj"), c.intermediate_size, hsz, false)?,
                down_proj: w.linear(&format!("{m}.down_proj"), hsz, c.intermediate_size, false)?,
                activation: c.activation,
            };
            let (post_attn_norm, pre_mlp_norm, post_mlp_norm) = if c.sandwich_norms {
                (
                    Some(w.norm(&format!("{p}.post_attention_layernorm"), hsz, eps)?),
                    w.norm(&format!("{p}.pre_feedforward_layernorm"), hsz, eps)?,
                    Some(w.norm(&format!("{p}.post_feedforward_layernorm"), hsz, eps)?),
                )
            } else {
                (
                    None,
                    w.norm(&format!("{p}.post_attention_layernorm"), hsz, eps)?,
                    None,
                )
            };
            layers.push(Layer {
                attn,
                mlp,
                input_norm: w.norm(&format!("{p}.input_layernorm"), hsz, eps)?,
                post_attn_norm,
                pre_mlp_norm,
                post_mlp_norm,
                sliding: c.sliding_layers[i],
            });
        }
        let norm = w.norm("model.norm", hsz, eps)?;
        refuse_unused_layer_tensors(&map, c.num_layers)?;
        let max_pos = c
            .max_position_embeddings
            .clamp(1, super::rope::MAX_TABLE_POSITIONS);
        let rope_global =
            RopeTables::new(hd, c.rope_theta, &c.rope_scaling, max_pos, dtype, device)?
                .with_configured_context(c.max_position_embeddings);
        let rope_local = if c.sliding_layers.iter().any(|s| *s) {
            Some(
                RopeTables::new(
                    hd,
                    c.rope_local_theta,
                    &super::rope::RopeScaling::None,
                    max_pos,
                    dtype,
                    device,
                )?
                .with_configured_context(c.max_position_embeddings),
            )
        } else {
            None
        };
        Ok(Self {
            config,
            embed,
            lm_head_t,
            int8_head,
            layers,
            norm,
            rope_global,
            rope_local,
            dtype,
            device: device.clone(),
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The longest sequence (prompt and output tokens) this decoder runs: the configured
    /// context, or `rope::MAX_TABLE_POSITIONS` when that is shorter.
    pub fn max_positions(&self) -> usize {
        self.rope_global.max_positions()
    }

    /// The context as error messages should state it (see `rope::describe_context`).
    pub fn describe_context(&self) -> String {
        super::rope::describe_context(self.max_positions(), self.config.max_position_embeddings)
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.layers.len())
    }

    pub fn build_masks(&self, key_positions: &[Vec<Option<u32>>], t: usize) -> Result<Masks> {
        Masks::build(
            key_positions,
            t,
            self.config.sliding_window,
            self.dtype,
            &self.device,
        )
    }

    /// Final hidden states `[b, t, hidden]` for token ids `[b, t]` at `positions` `[b, t]`.
    pub fn forward_hidden(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        masks: &Masks,
        cache: Option<&mut KvCache>,
        mode: ForwardMode,
    ) -> Result<Tensor> {
        let t = ids.dim(1)?;
        self.forward_hidden_last(ids, positions, masks, cache, mode, t)
    }

    /// Final hidden states `[b, keep, hidden]` of the last `keep` positions only.
    ///
    /// The other positions still feed every layer's keys and values, but in the last layer
    /// nothing reads their outputs: its queries, attention, output projection and MLP run on
    /// the kept positions alone. Scoring keeps the output span, training the target span and
    /// a generation prefill one position; the values equal `forward_hidden`'s kept rows.
    pub fn forward_hidden_last(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        masks: &Masks,
        mut cache: Option<&mut KvCache>,
        mode: ForwardMode,
        keep: usize,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if keep > t || (keep == 0 && t > 0) {
            bail!("forward_hidden_last: keep {keep} of {t} positions (must be 1..={t})");
        }
        if keep < t && !super::fused_train::fused("last") {
            let full = self.forward_hidden_last(ids, positions, masks, cache, mode, t)?;
            return Ok(full.narrow(1, t - keep, keep)?);
        }
        let mut x = self.embed.index_select(&ids.flatten_all()?, 0)?.reshape((
            b,
            t,
            self.config.hidden_size,
        ))?;
        if let Some(scale) = self.config.embed_scale {
            // Gemma rounds the scale to the weights' dtype before multiplying.
            let scale = Tensor::new(scale as f32, &self.device)?.to_dtype(self.dtype)?;
            x = x.broadcast_mul(&scale)?;
        }
        let global = self.rope_global.gather(positions)?;
        let local = self
            .rope_local
            .as_ref()
            .map(|r| r.gather(positions))
            .transpose()?;
        for (i, layer) in self.layers.iter().enumerate() {
            let (cs, mask) = match (layer.sliding, &local, &masks.sliding) {
                (true, Some(l), Some(m)) => (l, m),
                _ => (&global, &masks.global),
            };
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            let stream = (i as u64) * 16;
            let queries = if i + 1 == self.layers.len() { keep } else { t };
            let h = layer.input_norm.forward(&x, mode.train)?;
            let mut h = layer
                .attn
                .forward(&h, cs, mask, slot, mode, stream, queries)?;
            if let Some(n) = &layer.post_attn_norm {
                h = n.forward(&h, mode.train)?;
            }
            let residual = if queries == t {
                x
            } else {
                x.narrow(1, t - queries, queries)?
            };
            let x_mid = (residual + h)?;
            let h = layer.pre_mlp_norm.forward(&x_mid, mode.train)?;
            let mut h = layer.mlp.forward(&h, mode, stream + 8)?;
            if let Some(n) = &layer.post_mlp_norm {
                h = n.forward(&h, mode.train)?;
            }
            x = (x_mid + h)?;
        }
        self.norm.forward(&x, mode.train)
    }

    /// Logits `[..., vocab]` (f32) from hidden states `[..., hidden]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        // Tied embeddings are the head's `[vocab, hidden]` layout, which its backward reads.
        let lm_head = self.config.tie_word_embeddings.then_some(&self.embed);
        Ok(dense_forward(hidden, &self.lm_head_t, lm_head)?.to_dtype(DType::F32)?)
    }

    /// [`Self::logits`] for a decoding step's hidden states `[rows, hidden]` (no gradient):
    /// from the int8 head where the model has one, which reads a quarter of the bytes and
    /// multiplies the same weights (`LAB_UNFUSED=compact_head`: the f32 head).
    pub fn next_token_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let head = self
            .int8_head
            .as_ref()
            .filter(|_| super::fused_train::fused("compact_head"));
        match head {
            Some(head) if hidden.dtype() == DType::F32 && hidden.device().is_cpu() => {
                let (rows, _) = hidden.dims2()?;
                let x = hidden.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
                let y = head.logits(&x, rows);
                Ok(Tensor::from_vec(y, (rows, head.vocab()), &self.device)?)
            }
            _ => self.logits(hidden),
        }
    }

    /// Whether decoding steps read the head as int8 (see [`Self::next_token_logits`]).
    pub fn has_int8_head(&self) -> bool {
        self.int8_head.is_some()
    }

    /// This decoder with its decoding steps reading the f32 head: the side-by-side baseline.
    pub fn with_f32_head(&self) -> Self {
        Self {
            int8_head: None,
            ..self.clone()
        }
    }

    /// Every LoRA-aware linear with its module path, e.g. `model.layers.0.self_attn.q_proj`.
    pub fn linears_mut(&mut self) -> Vec<(String, &mut LoraLinear)> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter_mut().enumerate() {
            let a = format!("model.layers.{i}.self_attn");
            let m = format!("model.layers.{i}.mlp");
            out.push((format!("{a}.q_proj"), &mut l.attn.q_proj));
            out.push((format!("{a}.k_proj"), &mut l.attn.k_proj));
            out.push((format!("{a}.v_proj"), &mut l.attn.v_proj));
            out.push((format!("{a}.o_proj"), &mut l.attn.o_proj));
            out.push((format!("{m}.gate_proj"), &mut l.mlp.gate_proj));
            out.push((format!("{m}.up_proj"), &mut l.mlp.up_proj));
            out.push((format!("{m}.down_proj"), &mut l.mlp.down_proj));
        }
        out
    }

    pub fn linears(&self) -> Vec<(String, &LoraLinear)> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let a = format!("model.layers.{i}.self_attn");
            let m = format!("model.layers.{i}.mlp");
            out.push((format!("{a}.q_proj"), &l.attn.q_proj));
            out.push((format!("{a}.k_proj"), &l.attn.k_proj));
            out.push((format!("{a}.v_proj"), &l.attn.v_proj));
            out.push((format!("{a}.o_proj"), &l.attn.o_proj));
            out.push((format!("{m}.gate_proj"), &l.mlp.gate_proj));
            out.push((format!("{m}.up_proj"), &l.mlp.up_proj));
            out.push((format!("{m}.down_proj"), &l.mlp.down_proj));
        }
        out
    }
}
