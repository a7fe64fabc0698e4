//! The experiment runner: the AL loop per (strategy, seed) cell, persistence and resume,
//! stopping criteria, shards for spreading a batch over machines, `lab run` / `lab bench`.
pub mod adapters;
pub mod cell;
pub mod cli;
pub mod crash_point;
pub mod curve;
pub mod ed_order;
pub mod embed;
pub mod embedding_cache;
pub mod evaluate;
pub mod experiment;
pub mod finetune;
pub mod first_iteration;
pub mod fresh;
pub mod host;
pub mod memory;
pub mod persist;
pub mod profile;
pub mod progress;
pub mod prompting;
pub mod reconcile;
pub mod script_identity;
pub mod select;
pub mod shard;
pub mod state;
pub mod status;
pub mod stopping;

pub use embedding_cache::{dataset_key, embedding_cache_dir, remove_stale_embedding_temporaries};
pub use profile::Profile;

use crate::config::Experiment;
use crate::models::lm::{LoraSettings, ModelSource, PeftMethod};
use crate::runner::stopping::StoppingCriteria;
use crate::strategy::sandbox::SandboxLimits;

/// The stopping criteria of an experiment's `[al]` table.
pub fn criteria_of(exp: &Experiment) -> StoppingCriteria {
    StoppingCriteria::from(&exp.al)
}

/// Name prefix of the tiny random in-process models (`tiny-random-llama`, `tiny-random-qwen3`,
/// …): no download, seconds per iteration — for tests and for trying the loop end to end.
pub const TINY_MODEL_PREFIX: &str = "tiny-random-";

/// Load the experiment's acquisition model (a fresh copy, no adapter attached).
pub fn load_model(exp: &Experiment) -> anyhow::Result<crate::models::lm::LanguageModel> {
    use crate::models::decoder_config::Family;
    use crate::models::device::{resolve_device, resolve_dtype};
    use crate::models::lm::LanguageModel;
    let device =
        resolve_device(exp.model.device).map_err(|e| anyhow::anyhow!("model.device: {e}"))?;
    let dtype = resolve_dtype(exp.model.dtype);
    if exp.model.path.is_none() && exp.model.hub_id.is_none() {
        if let Some(family) = exp.model.name.strip_prefix(TINY_MODEL_PREFIX) {
            let family = Family::parse(family).ok_or_else(|| {
                anyhow::anyhow!(
                    "model.name = {:?}: unknown family; use tiny-random-llama, tiny-random-qwen2, \
                     tiny-random-qwen3 or tiny-random-gemma3",
                    exp.model.name
                )
            })?;
            return LanguageModel::tiny_random_on(0, family, dtype, &device);
        }
    }
    LanguageModel::load_on(&model_source_of(exp), dtype, &device)
}

/// Where the acquisition model comes from: an explicit path, a hub id, or a default model.
pub fn model_source_of(exp: &Experiment) -> ModelSource {
    let m = &exp.model;
    if let Some(path) = &m.path {
        if path.extension().is_some_and(|e| e == "gguf") {
            ModelSource::Gguf(path.clone())
        } else if let Some(file) = m.gguf_file.as_ref().filter(|_| path.is_dir()) {
            // README: gguf_file picks "which .gguf in hub_id or path".
            ModelSource::Gguf(path.join(file))
        } else {
            ModelSource::Folder(path.clone())
        }
    } else if let Some(id) = &m.hub_id {
        ModelSource::Hub {
            id: id.clone(),
            revision: m.revision.clone(),
            gguf_file: m.gguf_file.clone(),
        }
    } else {
        ModelSource::Default(m.name.clone())
    }
}

pub fn lora_settings_of(exp: &Experiment, seed: u64) -> LoraSettings {
    let l = &exp.lora;
    LoraSettings {
        r: l.r,
        alpha: l.alpha,
        dropout: l.dropout as f32,
        targets: l.target_modules.clone(),
        method: match l.method {
            crate::config::PeftMethod::Lora => PeftMethod::Lora,
            crate::config::PeftMethod::Dora => PeftMethod::Dora,
            crate::config::PeftMethod::Qlora => PeftMethod::Qlora,
        },
        seed,
    }
}

pub fn sandbox_limits(exp: &Experiment) -> SandboxLimits {
    let s = &exp.sandbox;
    SandboxLimits {
        max_operations: s.max_operations,
        max_call_levels: s.max_call_levels,
        max_string_size: s.max_string_size,
        max_array_size: s.max_array_size,
        max_map_size: s.max_map_size,
        ..SandboxLimits::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DeviceKind, Dtype, Experiment};

    fn tiny(device: DeviceKind, dtype: Dtype) -> Experiment {
        let mut exp = Experiment::default();
        exp.model.name = format!("{TINY_MODEL_PREFIX}llama");
        exp.model.device = device;
        exp.model.dtype = dtype;
        exp
    }

    #[test]
    fn model_device_and_dtype_are_honoured() {
        let lm = load_model(&tiny(DeviceKind::Cpu, Dtype::Bf16)).unwrap();
        assert_eq!(lm.decoder().dtype(), candle_core::DType::BF16);
        assert!(lm.decoder().device().is_cpu());
        let lm = load_model(&tiny(DeviceKind::Auto, Dtype::F32)).unwrap();
        assert_eq!(lm.decoder().dtype(), candle_core::DType::F32);
        assert_eq!(
            lm.decoder().device().is_cuda(),
            crate::models::device::cuda_available()
        );
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_in_a_cpu_build_is_an_error_naming_the_key() {
        let err = load_model(&tiny(DeviceKind::Cuda, Dtype::F32))
            .err()
            .unwrap();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("model.device") && msg.contains("--features cuda"),
            "{msg}"
        );
    }

    /// A folder with a.gguf and b.gguf as model.path: gguf_file picked nothing, and loading
    /// failed with "holds several .gguf files; pass the one to load as --model".
    #[test]
    fn gguf_file_picks_the_gguf_in_a_model_path_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.gguf"), b"not a model").unwrap();
        std::fs::write(dir.path().join("b.gguf"), b"not a model").unwrap();
        let mut exp = Experiment::default();
        exp.model.path = Some(dir.path().to_path_buf());
        exp.model.gguf_file = Some("a.gguf".into());
        assert_eq!(
            model_source_of(&exp),
            crate::models::loader::ModelSource::Gguf(dir.path().join("a.gguf"))
        );
        let msg = format!("{:#}", load_model(&exp).err().unwrap());
        assert!(!msg.contains("holds several"), "{msg}");
    }
}
