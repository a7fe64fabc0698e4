//! Tiny random decoders for tests (a few layers, hidden 64; no download): their weights, a
//! Hugging Face style folder holding one, and a GGUF file written the way llama.cpp's converter
//! writes one (Q and K rows permuted, llama.cpp tensor names, a GPT-2-style vocabulary).
use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::decoder_config::{DecoderConfig, Family};
use super::lm::LanguageModel;
use super::tokenizer::TextTokenizer;

/// Random weights (normal, std 0.2; norms near 1) under Hugging Face names, for tiny test models.
pub fn random_weights(
    config: &DecoderConfig,
    seed: u64,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = HashMap::new();
    let mut put = |name: String, shape: Vec<usize>, norm: bool| -> Result<()> {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| {
                // Box-Muller, std 0.2.
                let (u1, u2): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random());
                let x = 0.2 * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
                if norm {
                    1.0 + x * 0.1
                } else {
                    x
                }
            })
            .collect();
        out.insert(name, Tensor::from_vec(data, shape, device)?);
        Ok(())
    };
    let c = config;
    let (h, hd) = (c.hidden_size, c.head_dim);
    put(
        "model.embed_tokens.weight".into(),
        vec![c.vocab_size, h],
        false,
    )?;
    if !c.tie_word_embeddings {
        put("lm_head.weight".into(), vec![c.vocab_size, h], false)?;
    }
    for i in 0..c.num_layers {
        let p = format!("model.layers.{i}");
        let (q, kv) = (c.num_heads * hd, c.num_kv_heads * hd);
        for (name, out_dim, in_dim) in [
            ("self_attn.q_proj", q, h),
            ("self_attn.k_proj", kv, h),
            ("self_attn.v_proj", kv, h),
            ("self_attn.o_proj", h, q),
            ("mlp.gate_proj", c.intermediate_size, h),
            ("mlp.up_proj", c.intermediate_size, h),
            ("mlp.down_proj", h, c.intermediate_size),
        ] {
            put(format!("{p}.{name}.weight"), vec![out_dim, in_dim], false)?;
            if c.attention_bias
                && ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"].contains(&name)
            {
                put(format!("{p}.{name}.bias"), vec![out_dim], false)?;
            }
        }
        let mut norms = vec!["input_layernorm", "post_attention_layernorm"];
        if c.sandwich_norms {
            norms.extend(["pre_feedforward_layernorm", "post_feedforward_layernorm"]);
        }
        for n in norms {
            put(format!("{p}.{n}.weight"), vec![h], true)?;
        }
        if c.qk_norm {
            put(format!("{p}.self_attn.q_norm.weight"), vec![hd], true)?;
            put(format!("{p}.self_attn.k_norm.weight"), vec![hd], true)?;
        }
    }
    put("model.norm.weight".into(), vec![h], true)?;
    Ok(out)
}

/// Write a Hugging Face style folder (config.json, model.safetensors, tokenizer.json,
/// tokenizer_config.json) holding the same model as `LanguageModel::tiny_random(seed, family)`.
pub fn write_tiny_folder(dir: &Path, family: Family, seed: u64) -> Result<()> {
    let tokenizer = TextTokenizer::tiny_byte_level()?;
    let config = super::lm::tiny_config(family, tokenizer.vocab_size());
    let mut weights = random_weights(&config, seed, &Device::Cpu)?;
    if family == Family::Gemma3 {
        // Hugging Face Gemma stores norms as w with the effective scale 1 + w.
        for (name, t) in weights.iter_mut() {
            if name.ends_with("norm.weight") {
                *t = (&*t - 1.0)?;
            }
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    crate::util::atomic_write_string(
        &dir.join("config.json"),
        &serde_json::to_string_pretty(&config.to_hf_json())?,
    )?;
    let tmp = crate::util::atomic::shareable_temp_file(dir, ".tmp", "")?;
    candle_core::safetensors::save(&weights, tmp.path())?;
    tmp.persist(dir.join("model.safetensors"))
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write weights into {}", dir.display()))?;
    tokenizer
        .inner()
        .save(dir.join("tokenizer.json"), false)
        .map_err(|e| anyhow::anyhow!("cannot write tokenizer.json: {e}"))?;
    let tok_config = serde_json::json!({
        "bos_token": tokenizer.bos_token,
        "eos_token": tokenizer.eos_token,
        "pad_token": "<|im_end|>",
        "chat_template": super::lm::TINY_CHATML,
    });
    crate::util::atomic_write_string(
        &dir.join("tokenizer_config.json"),
        &serde_json::to_string_pretty(&tok_config)?,
    )
}

/// A GGUF file of the same model as `LanguageModel::tiny_random(seed, Family::Llama)`.
pub fn write_tiny_gguf(path: &Path, seed: u64) -> Result<()> {
    write_tiny_gguf_with(path, seed, None, |_| {})
}

/// [`write_tiny_gguf`] with `vocab_tokens` tokenizer entries instead of the tokenizer's own
/// count (padded with `<extra_i>`), and its metadata changed by `edit` before writing: for
/// tests of how the loader meets odd files. Q/K rows are permuted as llama.cpp's converter
/// does.
pub fn write_tiny_gguf_with(
    path: &Path,
    seed: u64,
    vocab_tokens: Option<usize>,
    edit: impl Fn(&mut Vec<(&str, gguf_file::Value)>),
) -> Result<()> {
    let lm = LanguageModel::tiny_random(seed, Family::Llama)?;
    let c = lm.config().clone();
    let permute = |w: &Tensor, heads: usize| -> Result<Tensor> {
        let (rows, cols) = w.dims2()?;
        Ok(w.reshape((heads, 2, rows / heads / 2, cols))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((rows, cols))?)
    };
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mut weights: Vec<(String, Tensor)> = random_weights(&c, seed, &Device::Cpu)?
        .into_iter()
        .collect();
    // A fixed order, so the file's bytes depend on the seed only.
    weights.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in &weights {
        let gguf_name = name
            .replace("model.embed_tokens", "token_embd")
            .replace("model.norm", "output_norm")
            .replace("model.layers.", "blk.")
            .replace("self_attn.q_proj", "attn_q")
            .replace("self_attn.k_proj", "attn_k")
            .replace("self_attn.v_proj", "attn_v")
            .replace("self_attn.o_proj", "attn_output")
            .replace("mlp.gate_proj", "ffn_gate")
            .replace("mlp.up_proj", "ffn_up")
            .replace("mlp.down_proj", "ffn_down")
            .replace("post_attention_layernorm", "ffn_norm")
            .replace("input_layernorm", "attn_norm");
        let t = if gguf_name.ends_with("attn_q.weight") {
            permute(t, c.num_heads)?
        } else if gguf_name.ends_with("attn_k.weight") {
            permute(t, c.num_kv_heads)?
        } else {
            t.clone()
        };
        tensors.push((gguf_name, QTensor::quantize(&t, GgmlDType::F32)?));
    }
    let tok = lm.tokenizer().inner();
    let n = vocab_tokens.unwrap_or(tok.get_vocab_size(true));
    use gguf_file::Value as V;
    let tokens: Vec<V> = (0..n as u32)
        .map(|i| V::String(tok.id_to_token(i).unwrap_or_else(|| format!("<extra_{i}>"))))
        .collect();
    let types: Vec<V> = (0..n).map(|i| V::I32(if i < 3 { 3 } else { 1 })).collect();
    let count = |n: usize| V::U32(n as u32);
    let mut meta: Vec<(&str, V)> = vec![
        ("general.architecture", V::String("llama".into())),
        ("llama.block_count", count(c.num_layers)),
        ("llama.embedding_length", count(c.hidden_size)),
        ("llama.feed_forward_length", count(c.intermediate_size)),
        ("llama.attention.head_count", count(c.num_heads)),
        ("llama.attention.head_count_kv", count(c.num_kv_heads)),
        ("llama.rope.freq_base", V::F32(c.rope_theta as f32)),
        (
            "llama.attention.layer_norm_rms_epsilon",
            V::F32(c.rms_norm_eps as f32),
        ),
        ("llama.context_length", count(c.max_position_embeddings)),
        ("tokenizer.ggml.model", V::String("gpt2".into())),
        ("tokenizer.ggml.pre", V::String("gpt2".into())),
        ("tokenizer.ggml.tokens", V::Array(tokens)),
        ("tokenizer.ggml.token_type", V::Array(types)),
        ("tokenizer.ggml.merges", V::Array(Vec::new())),
        ("tokenizer.ggml.bos_token_id", V::U32(1)),
        ("tokenizer.ggml.eos_token_id", V::U32(2)),
        ("tokenizer.ggml.padding_token_id", V::U32(2)),
    ];
    edit(&mut meta);
    let meta_refs: Vec<(&str, &V)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(path)?;
    gguf_file::write(&mut file, &meta_refs, &tensor_refs)?;
    Ok(())
}
