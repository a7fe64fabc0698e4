//! Where model files live on disk. `lab setup` fills this folder; loaders read from it.
use std::path::PathBuf;

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
