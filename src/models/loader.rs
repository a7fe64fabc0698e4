//! Loading a decoder, its tokenizer and chat template from a GGUF file, a Hugging Face style
//! folder, the Hugging Face hub, or the models cache; and writing tiny random models for tests.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::chat::ChatTemplate;
use super::decoder::Decoder;
use super::decoder_config::{DecoderConfig, Family};
use super::gguf::GgufFile;
use super::hub::{HubAccess, HubFiles};
use super::tokenizer::TextTokenizer;

/// Where a language model comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    Gguf(PathBuf),
    /// A folder with config.json, *.safetensors, tokenizer.json (tokenizer_config.json optional).
    Folder(PathBuf),
    Hub {
        id: String,
        revision: Option<String>,
        gguf_file: Option<String>,
    },
    /// A model in the models cache, e.g. `smollm2-135m-instruct`.
    Default(String),
}

impl ModelSource {
    /// Interpret a command-line value: a `.gguf` file, a folder (an existing one, or anything
    /// starting with `/`, `.` or `~`), a hub id `owner/name[@revision]`, else a cache name.
    pub fn parse(spec: &str) -> Self {
        let path = Path::new(spec);
        let looks_like_path =
            spec.starts_with('/') || spec.starts_with('.') || spec.starts_with('~');
        if spec.ends_with(".gguf") || path.is_file() {
            return Self::Gguf(path.to_path_buf());
        }
        if path.is_dir() || looks_like_path {
            return Self::Folder(path.to_path_buf());
        }
        if spec.contains('/') {
            let (id, revision) = match spec.split_once('@') {
                Some((id, rev)) => (id.to_string(), Some(rev.to_string())),
                None => (spec.to_string(), None),
            };
            return Self::Hub {
                id,
                revision,
                gguf_file: None,
            };
        }
        Self::Default(spec.to_string())
    }
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Gguf(p) | Self::Folder(p) => write!(f, "{}", p.display()),
            Self::Hub { id, revision, .. } => {
                write!(f, "{id}@{}", revision.as_deref().unwrap_or("main"))
            }
            Self::Default(name) => write!(f, "{name}"),
        }
    }
}

/// Everything a language model needs, as loaded.
pub struct LoadedModel {
    pub decoder: Decoder,
    pub tokenizer: TextTokenizer,
    pub chat: ChatTemplate,
}

pub fn load(source: &ModelSource, dtype: DType, device: &Device) -> Result<LoadedModel> {
    match source {
        ModelSource::Gguf(path) => load_gguf(path, dtype, device),
        ModelSource::Folder(dir) => load_folder(dir, dtype, device),
        ModelSource::Default(name) => {
            let dir = super::cache::default_model_dir(name);
            if !dir.is_dir() {
                bail!(
                    "model `{name}` is not in the models cache ({}); run `lab setup`",
                    dir.display()
                );
            }
            match find_gguf(&dir)? {
                Some(file) => load_gguf(&file, dtype, device),
                None if dir.join("config.json").exists() => load_folder(&dir, dtype, device),
                None => bail!(
                    "model `{name}` in {} has neither a .gguf file nor config.json; run `lab setup`",
                    dir.display()
                ),
            }
        }
        ModelSource::Hub {
            id,
            revision,
            gguf_file,
        } => load_hub(id, revision.as_deref(), gguf_file.as_deref(), dtype, device),
    }
}

fn find_gguf(dir: &Path) -> Result<Option<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .collect();
    found.sort();
    Ok(found.into_iter().next())
}

pub fn load_gguf(path: &Path, dtype: DType, device: &Device) -> Result<LoadedModel> {
    let gguf = GgufFile::open(path)?;
    let tokenizer = TextTokenizer::from_gguf(&gguf)?;
    let arch = gguf.string("general.architecture")?;
    let embed_rows = gguf
        .content
        .tensor_infos
        .get("token_embd.weight")
        .with_context(|| format!("{}: tensor `token_embd.weight` is missing", path.display()))?
        .shape
        .dims()
        .first()
        .copied()
        .with_context(|| format!("{}: tensor `token_embd.weight` has no rows", path.display()))?;
    let has_output = gguf.content.tensor_infos.contains_key("output.weight");
    let mut config = DecoderConfig::from_gguf(&gguf, embed_rows, has_output)?;
    if gguf.content.tensor_infos.contains_key("rope_freqs.weight") {
        let divisors = gguf.read_f32("rope_freqs.weight", device)?.flatten_all()?;
        config.rope_scaling = super::rope::RopeScaling::Divisors(divisors.to_vec1()?);
    }
    tokenizer.check_fits(config.vocab_size, path)?;
    let weights = gguf.load_tensors(&arch, config.num_heads, config.num_kv_heads, dtype, device)?;
    let decoder = Decoder::from_weights(config, weights, false, dtype, device)
        .with_context(|| format!("cannot build the decoder from {}", path.display()))?;
    let template = gguf
        .get("tokenizer.chat_template")
        .and_then(|v| v.to_string().ok().cloned());
    let chat = ChatTemplate::new(
        template,
        tokenizer.bos_token.clone(),
        tokenizer.eos_token.clone(),
        tokenizer.add_bos,
    );
    Ok(LoadedModel {
        decoder,
        tokenizer,
        chat,
    })
}

pub fn load_folder(dir: &Path, dtype: DType, device: &Device) -> Result<LoadedModel> {
    let config = DecoderConfig::from_hf_file(&dir.join("config.json"))?;
    let tokenizer = TextTokenizer::from_folder(dir)?;
    tokenizer.check_fits(config.vocab_size, &dir.join("tokenizer.json"))?;
    let mut weights = HashMap::new();
    for file in safetensors_files(dir)? {
        let tensors = candle_core::safetensors::load(&file, device).map_err(|e| {
            anyhow::anyhow!(
                "cannot read weights {} ({e}); the file may be truncated or corrupt",
                file.display()
            )
        })?;
        for (name, t) in tensors {
            weights.insert(hf_text_name(&name), t);
        }
    }
    let gemma = config.family == Family::Gemma3;
    let decoder = Decoder::from_weights(config, weights, gemma, dtype, device)
        .with_context(|| format!("cannot build the decoder from {}", dir.display()))?;
    let tok_config = match std::fs::read_to_string(dir.join("tokenizer_config.json")) {
        Ok(text) => Some(
            serde_json::from_str::<serde_json::Value>(&text).with_context(|| {
                format!(
                    "{} is not valid JSON",
                    dir.join("tokenizer_config.json").display()
                )
            })?,
        ),
        Err(_) => None,
    };
    let mut template = tok_config
        .as_ref()
        .and_then(ChatTemplate::source_from_tokenizer_config);
    if template.is_none() {
        template = std::fs::read_to_string(dir.join("chat_template.jinja")).ok();
    }
    let chat = ChatTemplate::new(
        template,
        tokenizer.bos_token.clone(),
        tokenizer.eos_token.clone(),
        tokenizer.add_bos,
    );
    Ok(LoadedModel {
        decoder,
        tokenizer,
        chat,
    })
}

/// Multimodal checkpoints nest the text model; map their names onto the plain decoder's.
fn hf_text_name(name: &str) -> String {
    for (from, to) in [
        ("model.language_model.", "model."),
        ("language_model.model.", "model."),
        ("language_model.lm_head.", "lm_head."),
    ] {
        if let Some(rest) = name.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    name.to_string()
}

fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index)
            .with_context(|| format!("cannot read {}", index.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", index.display()))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .with_context(|| format!("{}: key `weight_map` is missing", index.display()))?;
        let mut files: Vec<PathBuf> = map
            .values()
            .filter_map(|v| v.as_str())
            .map(|f| dir.join(f))
            .collect();
        files.sort();
        files.dedup();
        return Ok(files);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no *.safetensors weights in {}", dir.display());
    }
    Ok(files)
}

fn load_hub(
    id: &str,
    revision: Option<&str>,
    gguf_file: Option<&str>,
    dtype: DType,
    device: &Device,
) -> Result<LoadedModel> {
    load_hub_with(
        &HubAccess::from_env(),
        id,
        revision,
        gguf_file,
        dtype,
        device,
    )
}

pub fn load_hub_with(
    access: &HubAccess,
    id: &str,
    revision: Option<&str>,
    gguf_file: Option<&str>,
    dtype: DType,
    device: &Device,
) -> Result<LoadedModel> {
    let hub = HubFiles::open(access, id, revision)?;
    let fetch = |file: &str| hub.get(file);
    if let Some(file) = gguf_file {
        return load_gguf(&fetch(file)?, dtype, device);
    }
    let config = fetch("config.json")?;
    fetch("tokenizer.json")?;
    for optional in ["tokenizer_config.json", "generation_config.json"] {
        // Optional files: absent is fine.
        let _ = fetch(optional);
    }
    match fetch("model.safetensors.index.json") {
        Ok(index) => {
            let text = std::fs::read_to_string(&index)?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", index.display()))?;
            let mut shards: Vec<String> = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .map(|m| {
                    m.values()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            shards.sort();
            shards.dedup();
            for shard in shards {
                fetch(&shard)?;
            }
        }
        Err(_) => {
            fetch("model.safetensors")?;
        }
    }
    let dir = config
        .parent()
        .context("hub cache path has no parent folder")?;
    load_folder(dir, dtype, device)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_specs_parse_by_shape() {
        assert_eq!(
            ModelSource::parse("smollm2-135m-instruct"),
            ModelSource::Default("smollm2-135m-instruct".into())
        );
        assert_eq!(
            ModelSource::parse("/no/such/model.gguf"),
            ModelSource::Gguf("/no/such/model.gguf".into())
        );
        assert_eq!(
            ModelSource::parse("./no-such-folder"),
            ModelSource::Folder("./no-such-folder".into())
        );
        assert_eq!(
            ModelSource::parse("Qwen/Qwen3-0.6B@abc"),
            ModelSource::Hub {
                id: "Qwen/Qwen3-0.6B".into(),
                revision: Some("abc".into()),
                gguf_file: None
            }
        );
    }

    /// A config with fewer layers than the weights (or no biases where they have some) is
    /// refused, naming a tensor it would ignore.
    #[test]
    fn weights_the_config_does_not_use_are_refused() -> Result<()> {
        let dir = tempfile::tempdir()?;
        write_tiny_folder(dir.path(), Family::Llama, 3)?;
        let path = dir.path().join("config.json");
        let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        let layers = config["num_hidden_layers"].as_u64().unwrap();
        config["num_hidden_layers"] = (layers - 1).into();
        std::fs::write(&path, config.to_string())?;
        let err = load_folder(dir.path(), DType::F32, &Device::Cpu)
            .err()
            .expect("a truncated config must not load");
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!("`model.layers.{}.", layers - 1)) && msg.contains("layer count"),
            "{msg}"
        );
        Ok(())
    }

    #[test]
    fn a_zero_context_in_config_json_is_refused() -> Result<()> {
        let dir = tempfile::tempdir()?;
        write_tiny_folder(dir.path(), Family::Llama, 3)?;
        let path = dir.path().join("config.json");
        let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        config["max_position_embeddings"] = 0.into();
        std::fs::write(&path, config.to_string())?;
        let err = load_folder(dir.path(), DType::F32, &Device::Cpu)
            .err()
            .expect("a zero context must not load");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("`max_position_embeddings` is 0") && msg.contains("config.json"),
            "{msg}"
        );
        Ok(())
    }
}
