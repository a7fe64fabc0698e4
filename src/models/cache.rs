//! Where model files live on disk. `lab setup` fills this folder; loaders read from it by a
//! model's folder name, and a name that is not there gets the command or the names to use.
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use candle_core::{DType, Device};

use super::loader::{find_gguf, load_folder, load_gguf, LoadedModel};

/// The models cache: `$LAB_MODELS` if set, else `<user cache dir>/atgen-lab/models`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LAB_MODELS") {
        return PathBuf::from(dir);
    }
    dirs::cache_dir()
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("atgen-lab")
        .join("models")
}

/// Folder of one default model inside the cache, e.g. `smollm2-135m-instruct`.
pub fn default_model_dir(name: &str) -> PathBuf {
    models_dir().join(name)
}

/// A language model of the models cache `models_dir` by its folder name.
pub(super) fn load_cached(
    models_dir: &Path,
    name: &str,
    dtype: DType,
    device: &Device,
) -> Result<LoadedModel> {
    if name == super::encoder::DEFAULT_ENCODER {
        bail!(
            "`{name}` is the sentence encoder (`lab model embed` and experiments' [encoder] use \
             it), not a language model; --model takes a language model such as {}",
            cached_language_models(models_dir).join(", ")
        );
    }
    let dir = models_dir.join(name);
    let fetch = super::setup::setup_command(name);
    if !dir.is_dir() {
        bail!("{}", not_cached_message(models_dir, name));
    }
    match find_gguf(&dir)? {
        Some(file) => load_gguf(&file, dtype, device),
        None if dir.join("config.json").exists() => load_folder(&dir, dtype, device),
        None => bail!(
            "model `{name}` in {} has neither a .gguf file nor config.json; {}",
            dir.display(),
            match fetch {
                Some(command) => format!("run `{command}` to fetch it again"),
                None =>
                    "put the model's files there, or pass its folder or file as --model".to_string(),
            }
        ),
    }
}

/// Why `name` is not in the cache and what to do: the command that fetches a known model, else
/// the nearest names (a typo or a shortened name) and what --model takes.
fn not_cached_message(models_dir: &Path, name: &str) -> String {
    if let Some(command) = super::setup::setup_command(name) {
        return format!(
            "model `{name}` is not in the models cache ({}); run `{command}` to fetch it",
            models_dir.join(name).display()
        );
    }
    let known = cached_language_models(models_dir);
    let word = name.to_lowercase();
    let mut near: Vec<&str> = known
        .iter()
        .map(String::as_str)
        .filter(|k| k.to_lowercase().contains(&word) || word.contains(&k.to_lowercase()))
        .collect();
    if let Some(typo) = crate::config::diagnose::suggest(name, &known) {
        if !near.contains(&typo) {
            near.push(typo);
        }
    }
    let hint = match near.as_slice() {
        [] => String::new(),
        names => {
            let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            format!("did you mean {}? ", quoted.join(" or "))
        }
    };
    format!(
        "no model `{name}` in the models cache ({}); {hint}--model takes a models-cache name \
         ({}; `lab setup` fetches {}, `lab setup --with-gemma` also {}), a .gguf file, a model \
         folder or a hub id `owner/name`",
        models_dir.display(),
        known.join(", "),
        super::setup::DEFAULT_LANGUAGE_MODEL,
        super::setup::GEMMA_MODEL
    )
}

/// The language models `lab setup` knows and any other model folders in the cache, sorted.
fn cached_language_models(models_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = super::setup::known_models()
        .into_iter()
        .map(|m| m.name)
        .collect();
    if let Ok(entries) = std::fs::read_dir(models_dir) {
        names.extend(
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                // Hidden folders are work in progress (temporary downloads), not models.
                .filter(|n| !n.starts_with('.')),
        );
    }
    names.retain(|n| n != super::encoder::DEFAULT_ENCODER);
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached_error(models_dir: &Path, name: &str) -> String {
        let err = load_cached(models_dir, name, DType::F32, &Device::Cpu)
            .err()
            .expect("nothing is cached");
        format!("{err:#}")
    }

    #[test]
    fn an_uncached_model_names_the_setup_command_that_fetches_it() {
        let cache = tempfile::tempdir().unwrap();
        let gemma = cached_error(cache.path(), "gemma3-270m");
        assert!(gemma.contains("run `lab setup --with-gemma`"), "{gemma}");
        let smollm = cached_error(cache.path(), "smollm2-135m-instruct");
        assert!(smollm.contains("run `lab setup` to fetch it"), "{smollm}");
    }

    #[test]
    fn an_unknown_model_name_gets_the_nearest_known_ones() -> Result<()> {
        let cache = tempfile::tempdir()?;
        std::fs::create_dir(cache.path().join("my-finetune"))?;
        let short = cached_error(cache.path(), "smollm2");
        assert!(
            short.contains("did you mean `smollm2-135m-instruct`?")
                && short.contains("gemma3-270m, my-finetune, smollm2-135m-instruct;")
                && !short.contains("run `lab setup`"),
            "{short}"
        );
        let typo = cached_error(cache.path(), "gemma3-207m");
        assert!(typo.contains("did you mean `gemma3-270m`?"), "{typo}");
        let far = cached_error(cache.path(), "mistral");
        assert!(
            !far.contains("did you mean") && far.contains("a hub id `owner/name`"),
            "{far}"
        );
        Ok(())
    }

    #[test]
    fn the_encoder_is_not_taken_for_a_language_model() {
        let cache = tempfile::tempdir().unwrap();
        let msg = cached_error(cache.path(), "all-minilm-l6-v2");
        assert!(msg.contains("is the sentence encoder"), "{msg}");
    }
}
