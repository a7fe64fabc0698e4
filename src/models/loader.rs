//! Loading a decoder, its tokenizer and chat template from a GGUF file, a Hugging Face style
//! folder (or one holding a single GGUF file), the Hugging Face hub, or the models cache.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};

use super::chat::ChatTemplate;
use super::decoder::Decoder;
use super::decoder_config::{DecoderConfig, Family};
use super::gguf::GgufFile;
use super::hub::{HubAccess, HubFiles};
pub use super::tiny_models::{random_weights, write_tiny_folder};
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
    /// starting with `/`, `.` or `~`; `~/` is the home folder, as a shell would expand it), a
    /// hub id `owner/name[@revision]`, else a cache name.
    pub fn parse(spec: &str) -> Self {
        let expanded = expand_user_home(spec);
        let path = expanded.as_path();
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

/// `spec` with a leading `~` or `~/` made the user's home folder (`$HOME`, else the
/// system's record of it), as a shell would expand it.
pub(crate) fn expand_user_home(spec: &str) -> PathBuf {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(dirs::home_dir);
    expand_home(spec, home.as_deref())
}

/// `~` or `~/rest` with `home` put in place of the `~`; anything else (including `~user`)
/// unchanged. Programs get `~` literally when it is quoted or written in a config file.
fn expand_home(spec: &str, home: Option<&Path>) -> PathBuf {
    let Some(home) = home else {
        return PathBuf::from(spec);
    };
    if spec == "~" {
        return home.to_path_buf();
    }
    match spec.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None => PathBuf::from(spec),
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
        ModelSource::Folder(dir) => match folder_contents(dir)? {
            FolderModel::Weights => load_folder(dir, dtype, device),
            FolderModel::Gguf(file) => load_gguf(&file, dtype, device),
            FolderModel::Nothing => bail!(
                "model folder {} has neither config.json (a Hugging Face folder: config.json, \
                 tokenizer.json, *.safetensors) nor a .gguf file; pass a model folder, a .gguf \
                 file, a models-cache name or a hub id `owner/name`",
                dir.display()
            ),
        },
        ModelSource::Default(name) => {
            super::cache::load_cached(&super::cache::models_dir(), name, dtype, device)
        }
        ModelSource::Hub {
            id,
            revision,
            gguf_file,
        } => load_hub(id, revision.as_deref(), gguf_file.as_deref(), dtype, device).map_err(|e| {
            match misread_folder_hint(id) {
                Some(hint) => e.context(hint),
                None => e,
            }
        }),
    }
}

/// When `id`'s first part is a folder here but `id` itself is not, `id` is more likely a
/// misspelt model folder than a hub id (`--model models/my-modle`): say how it was read.
fn misread_folder_hint(id: &str) -> Option<String> {
    let first = Path::new(id).components().next()?;
    let first = Path::new(first.as_os_str());
    if !first.is_dir() || Path::new(id).exists() {
        return None;
    }
    let entries: Vec<String> = std::fs::read_dir(first)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    let name = Path::new(id).file_name()?.to_string_lossy().into_owned();
    let nearest = crate::config::diagnose::suggest(&name, &entries)
        .map(|n| format!(" (did you mean {}?)", first.join(n).display()))
        .unwrap_or_default();
    Some(format!(
        "`{id}` is not a file or folder here, so it was read as a Hugging Face hub id; if you \
         meant a model folder inside {}, check its name{nearest}",
        first.display()
    ))
}

/// What a model folder holds that the loader can read.
enum FolderModel {
    /// config.json (with tokenizer.json and safetensors weights beside it).
    Weights,
    /// A single GGUF file, e.g. a folder `lab setup` filled.
    Gguf(PathBuf),
    Nothing,
}

/// A folder's model: config.json first (a Hugging Face folder), else its one .gguf file.
fn folder_contents(dir: &Path) -> Result<FolderModel> {
    if !dir.is_dir() {
        bail!(
            "model folder {} does not exist; pass a model folder, a .gguf file, a models-cache \
             name or a hub id `owner/name`",
            dir.display()
        );
    }
    let has_config = dir.join("config.json").exists();
    // GGUF repositories often keep the original config.json beside the .gguf files; without
    // safetensors weights the folder's model is its .gguf.
    if has_config && holds_safetensors(dir) {
        return Ok(FolderModel::Weights);
    }
    Ok(match find_gguf(dir)? {
        Some(file) => FolderModel::Gguf(file),
        None if has_config => FolderModel::Weights,
        None => FolderModel::Nothing,
    })
}

fn holds_safetensors(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(|e| e.ok()).any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".safetensors") || name == "model.safetensors.index.json"
        })
    })
}

/// The folder's one `.gguf` file, if any; several are refused, since picking one would be a
/// guess.
pub(super) fn find_gguf(dir: &Path) -> Result<Option<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .collect();
    found.sort();
    if found.len() > 1 {
        let names: Vec<String> = found
            .iter()
            .map(|p| format!("`{}`", p.file_name().unwrap_or_default().to_string_lossy()))
            .collect();
        bail!(
            "{} holds several .gguf files ({}); name the one to load: `model.gguf_file` in an \
             experiment file, or its path as --model",
            dir.display(),
            names.join(", ")
        );
    }
    Ok(found.pop())
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
    check_lm_head(&weights, &config, path, "output.weight")?;
    let decoder = Decoder::from_weights(config, weights, false, dtype, device)
        .with_context(|| format!("cannot build the decoder from {}", path.display()))?;
    let template = gguf
        .get("tokenizer.chat_template")
        .and_then(|v| v.to_string().ok().cloned());
    let chat = ChatTemplate::new(
        template,
        tokenizer.bos_token.clone(),
        tokenizer.eos_token.clone(),
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
    // Which file each tensor came from: a tensor in two files means the folder mixes models.
    let mut origin: HashMap<String, PathBuf> = HashMap::new();
    for file in safetensors_files(dir)? {
        let tensors = candle_core::safetensors::load(&file, device).map_err(|e| {
            anyhow::anyhow!(
                "cannot read weights {} ({e}); the file may be truncated or corrupt",
                file.display()
            )
        })?;
        for (name, t) in tensors {
            let name = hf_text_name(&name);
            if let Some(first) = origin.get(&name) {
                bail!(
                    "tensor `{name}` is in both {} and {}: the folder holds the weights of more \
                     than one model; keep one model's *.safetensors files in {} (or list them \
                     in model.safetensors.index.json)",
                    first.display(),
                    file.display(),
                    dir.display()
                );
            }
            origin.insert(name.clone(), file.clone());
            weights.insert(name, t);
        }
    }
    check_lm_head(&weights, &config, dir, "lm_head.weight")?;
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
    );
    Ok(LoadedModel {
        decoder,
        tokenizer,
        chat,
    })
}

/// An untied model's LM head must be there and be `[vocab, hidden]`: a missing one is a
/// checkpoint saved without it (transformers' `AutoModel`), and another shape would give
/// logits over ids the tokenizer does not have (or fail mid-run on a shape error).
/// `stored_as` is the head's name in the source's own naming.
fn check_lm_head(
    weights: &HashMap<String, candle_core::Tensor>,
    config: &DecoderConfig,
    source: &Path,
    stored_as: &str,
) -> Result<()> {
    if config.tie_word_embeddings {
        return Ok(());
    }
    let expected = [config.vocab_size, config.hidden_size];
    match weights.get("lm_head.weight") {
        None => bail!(
            "{}: the weights have no LM head (`{stored_as}`) and the config says the \
             embeddings are not tied (tie_word_embeddings is false or absent): this checkpoint \
             was saved without its head; load the full causal-LM checkpoint (or, if the model \
             shares its embeddings with its head, set `tie_word_embeddings: true` in \
             config.json)",
            source.display()
        ),
        Some(head) if head.dims() != expected => bail!(
            "{}: the LM head `{stored_as}` has shape {:?} but the config says [vocab_size, \
             hidden_size] = {expected:?}; the config and the weights belong to different models",
            source.display(),
            head.dims()
        ),
        Some(_) => Ok(()),
    }
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
        if files.is_empty() {
            bail!(
                "{}: `weight_map` lists no files; download the index again with the model",
                index.display()
            );
        }
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            bail!(
                "{} lists the shard `{}`, which is not in {}; download every shard the index \
                 names into that folder (or remove the index from a single-file model)",
                index.display(),
                missing.strip_prefix(dir).unwrap_or(missing).display(),
                dir.display()
            );
        }
        return Ok(files);
    }
    // As transformers reads a folder: model.safetensors is the model; other files beside it
    // (a consolidated.safetensors of another naming, an adapter) are not.
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
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
    // A GGUF repository has no safetensors weights (often no config.json either): on any
    // miss, say which of its cached files to name instead.
    let gguf_advice = |e: anyhow::Error| {
        let ggufs = hub.cached_gguf_files();
        if ggufs.is_empty() {
            return e;
        }
        let names: Vec<String> = ggufs
            .iter()
            .map(|p| format!("`{}`", p.file_name().unwrap_or_default().to_string_lossy()))
            .collect();
        e.context(format!(
            "`{id}` has no safetensors model but its cached snapshot holds {}: name the one \
             to load as `model.gguf_file` in an experiment file, or pass its path as --model \
             (e.g. {})",
            names.join(", "),
            ggufs[0].display()
        ))
    };
    let config = fetch_folder_files(&fetch).map_err(gguf_advice)?;
    let dir = config
        .parent()
        .context("hub cache path has no parent folder")?;
    load_folder(dir, dtype, device)
}

/// Fetch a Hugging Face folder's files (config.json, tokenizer, weights) through `fetch`;
/// returns config.json's path.
fn fetch_folder_files(fetch: &dyn Fn(&str) -> Result<PathBuf>) -> Result<PathBuf> {
    let config = fetch("config.json")?;
    // Refuse an architecture the decoder cannot run before downloading its weights.
    DecoderConfig::from_hf_file(&config)?;
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
    Ok(config)
}

#[cfg(test)]
#[path = "loader_tests.rs"]
mod tests;
