//! LoRA / DoRA adapter folders in PEFT's layout (`adapter_model.safetensors` +
//! `adapter_config.json`): writing ours, and reading ours or PEFT's when every tensor and
//! option in them is one this decoder applies.
use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use serde::Deserialize;

use super::decoder::LINEAR_NAMES;
use super::lm::{LanguageModel, LoraSettings};
use super::lora::PeftMethod;
use super::trainable::TrainableModel;

pub(super) const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
pub(super) const ADAPTER_CONFIG: &str = "adapter_config.json";
/// PEFT wraps the model twice, so its tensor names start with this before the module path.
pub(super) const PEFT_PREFIX: &str = "base_model.model.";

/// How many unused tensors an error lists by name before it only counts the rest.
const NAMED_UNUSED: usize = 8;

impl LanguageModel {
    /// Write `adapter_model.safetensors` and `adapter_config.json` into folder `dir` (PEFT layout).
    pub fn save_adapter(&self, dir: &Path) -> Result<()> {
        let settings = self.lora.as_ref().context("no LoRA adapter is attached")?;
        let vars = self.trainable_vars();
        let tensors: HashMap<String, Tensor> = vars
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        let tmp = tempfile::NamedTempFile::new()?;
        candle_core::safetensors::save(&tensors, tmp.path())?;
        let bytes = std::fs::read(tmp.path())?;
        crate::util::atomic_write(&dir.join(ADAPTER_WEIGHTS), &bytes)?;
        let targets: Vec<String> = if settings.targets.is_empty() {
            LINEAR_NAMES.iter().map(|s| s.to_string()).collect()
        } else {
            settings.targets.clone()
        };
        let config = serde_json::json!({
            "peft_type": "LORA",
            "r": settings.r,
            "lora_alpha": settings.alpha,
            "lora_dropout": settings.dropout,
            "target_modules": targets,
            "use_dora": settings.method == PeftMethod::Dora,
            "use_rslora": self.rslora,
            "bias": "none",
            "task_type": "CAUSAL_LM",
            "atgen_method": settings.method,
            "atgen_seed": settings.seed,
        });
        crate::util::atomic_write_string(
            &dir.join(ADAPTER_CONFIG),
            &serde_json::to_string_pretty(&config)?,
        )
    }

    /// Load an adapter folder written by `save_adapter` (or by PEFT with the same targets).
    /// Every tensor in the weights file must be applied: one this model would skip (a layer
    /// it lacks, a module `target_modules` does not list) is refused, not dropped.
    pub fn load_adapter(&mut self, dir: &Path) -> Result<()> {
        let config_path = dir.join(ADAPTER_CONFIG);
        let text = std::fs::read_to_string(&config_path)
            .with_context(|| format!("cannot read adapter config {}", config_path.display()))?;
        let config: PeftConfig = serde_json::from_str(&text)
            .with_context(|| format!("adapter config {} is not valid", config_path.display()))?;
        config.refuse_unsupported(&config_path)?;
        let method = config.atgen_method.unwrap_or(if config.use_dora {
            PeftMethod::Dora
        } else {
            PeftMethod::Lora
        });
        let settings = LoraSettings {
            r: config.r,
            alpha: config.lora_alpha,
            dropout: config.lora_dropout,
            targets: config.target_modules,
            method,
            seed: config.atgen_seed.unwrap_or(0),
        };
        let weights_path = dir.join(ADAPTER_WEIGHTS);
        let mut tensors = candle_core::safetensors::load(&weights_path, self.decoder.device())
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot read adapter weights {} ({e}); the file may be truncated or corrupt",
                    weights_path.display()
                )
            })?;
        self.attach_lora(&settings)
            .with_context(|| format!("adapter config {}", config_path.display()))?;
        if config.use_rslora {
            self.use_rslora_scale();
        }
        for (name, var) in self.trainable_vars() {
            let t = tensors.remove(&name).with_context(|| {
                format!("adapter {} lacks tensor `{name}`", weights_path.display())
            })?;
            if t.dims() != var.dims() {
                bail!(
                    "adapter {}: tensor `{name}` has shape {:?}, expected {:?}",
                    weights_path.display(),
                    t.dims(),
                    var.dims()
                );
            }
            var.set(&t.to_dtype(var.dtype())?)?;
        }
        if !tensors.is_empty() {
            let layers = self.config().num_layers;
            let mut unused: Vec<String> = tensors.into_keys().collect();
            unused.sort();
            self.detach_lora();
            bail!(
                "{}",
                unused_tensors_message(&unused, layers, &settings.targets, dir)
            );
        }
        Ok(())
    }
}

impl LanguageModel {
    /// Scale every attached adapter by alpha/√r (rank-stabilised LoRA) instead of alpha/r.
    fn use_rslora_scale(&mut self) {
        let Some(settings) = self.lora.clone() else {
            return;
        };
        let scale = settings.alpha / (settings.r as f64).sqrt();
        for (_, linear) in self.decoder.linears_mut() {
            if let Some(adapter) = linear.adapter() {
                let rescaled = super::lora::Adapter {
                    scale,
                    ..adapter.clone()
                };
                linear.set_adapter(Some(rescaled));
            }
        }
        self.rslora = true;
    }
}

/// The refusal for adapter tensors nothing would apply: which, why each, and what to check.
fn unused_tensors_message(
    unused: &[String],
    num_layers: usize,
    targets: &[String],
    dir: &Path,
) -> String {
    let mut listed: Vec<String> = unused
        .iter()
        .take(NAMED_UNUSED)
        .map(|name| format!("`{name}` ({})", why_unused(name, num_layers, targets)))
        .collect();
    if unused.len() > NAMED_UNUSED {
        listed.push(format!("and {} more", unused.len() - NAMED_UNUSED));
    }
    format!(
        "adapter {}: {} tensor(s) would not be applied to this model: {}; check that the \
         adapter was trained for this model (it has {num_layers} layers) and that \
         `target_modules` in {} lists every module the weights adapt",
        dir.join(ADAPTER_WEIGHTS).display(),
        unused.len(),
        listed.join(", "),
        dir.join(ADAPTER_CONFIG).display()
    )
}

/// Why an adapter tensor has no place in the model: its layer is past the last one, or its
/// module is not a target.
fn why_unused(name: &str, num_layers: usize, targets: &[String]) -> String {
    let parts: Vec<&str> = name.split('.').collect();
    let layer = parts
        .iter()
        .position(|p| *p == "layers")
        .and_then(|i| parts.get(i + 1))
        .and_then(|n| n.parse::<usize>().ok());
    if let Some(layer) = layer.filter(|l| *l >= num_layers) {
        return format!(
            "layer {layer}, but the model has layers 0–{}",
            num_layers.max(1) - 1
        );
    }
    let module = parts
        .iter()
        .take_while(|p| !p.starts_with("lora_"))
        .last()
        .copied()
        .unwrap_or_default();
    if LINEAR_NAMES.contains(&module) {
        let listed = targets.iter().any(|t| t == module);
        if !listed {
            return format!("module `{module}` is not in target_modules");
        }
    }
    "not a LoRA tensor of a linear layer this decoder has".to_string()
}

#[derive(Deserialize)]
struct PeftConfig {
    r: usize,
    lora_alpha: f64,
    #[serde(default)]
    lora_dropout: f32,
    target_modules: Vec<String>,
    #[serde(default)]
    use_dora: bool,
    /// Rank-stabilised LoRA: the update is scaled by alpha/√r instead of alpha/r.
    #[serde(default)]
    use_rslora: bool,
    /// PEFT options this loader does not implement; each must be unset, null or empty.
    rank_pattern: Option<serde_json::Value>,
    alpha_pattern: Option<serde_json::Value>,
    layers_to_transform: Option<serde_json::Value>,
    layers_pattern: Option<serde_json::Value>,
    modules_to_save: Option<serde_json::Value>,
    atgen_method: Option<PeftMethod>,
    atgen_seed: Option<u64>,
}

impl PeftConfig {
    /// Refuse a PEFT option that would change which weights are adapted, or how much, in a
    /// way this loader does not reproduce (loading without it would give another model).
    fn refuse_unsupported(&self, path: &Path) -> Result<()> {
        let modules_to_save = "stores whole trained copies of modules (e.g. the LM head)";
        let options = [
            (
                "rank_pattern",
                &self.rank_pattern,
                "gives some modules another `r`",
            ),
            (
                "alpha_pattern",
                &self.alpha_pattern,
                "gives some modules another `lora_alpha`",
            ),
            (
                "layers_to_transform",
                &self.layers_to_transform,
                "adapts only some layers",
            ),
            (
                "layers_pattern",
                &self.layers_pattern,
                "adapts only some layers",
            ),
            ("modules_to_save", &self.modules_to_save, modules_to_save),
        ];
        for (key, value, meaning) in options {
            let Some(value) = value.as_ref().filter(|v| is_set(v)) else {
                continue;
            };
            bail!(
                "adapter config {}: `{key}` = {value} {meaning}; this loader does not support \
                 `{key}`: use an adapter trained without it (one `r` and `lora_alpha` for every \
                 target module of every layer, no modules_to_save)",
                path.display()
            );
        }
        Ok(())
    }
}

/// Whether an optional PEFT value says anything: null, `{}`, `[]` and `""` are PEFT's "unset".
fn is_set(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Null => false,
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::String(text) => !text.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::lm::Family;

    fn settings(targets: &[&str]) -> LoraSettings {
        LoraSettings {
            r: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: targets.iter().map(|t| t.to_string()).collect(),
            method: PeftMethod::Lora,
            seed: 1,
        }
    }

    /// An adapter of the tiny llama adapting `targets`, saved into a fresh temporary folder.
    fn saved_adapter(targets: &[&str]) -> Result<tempfile::TempDir> {
        let dir = tempfile::tempdir()?;
        let mut lm = LanguageModel::tiny_random(3, Family::Llama)?;
        lm.attach_lora(&settings(targets))?;
        lm.save_adapter(dir.path())?;
        Ok(dir)
    }

    fn load_error(dir: &Path) -> String {
        let mut lm = LanguageModel::tiny_random(3, Family::Llama).unwrap();
        let err = lm
            .load_adapter(dir)
            .expect_err("the adapter must be refused");
        assert!(lm.lora_settings().is_none(), "a refused adapter stays off");
        format!("{err:#}")
    }

    #[test]
    fn adapter_for_a_deeper_model_is_refused_naming_the_extra_layer() -> Result<()> {
        let dir = saved_adapter(&["q_proj"])?;
        // What an adapter of a 3-layer model holds: layer 1's tensors again as layer 2's.
        let path = dir.path().join(ADAPTER_WEIGHTS);
        let mut tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu)?;
        let extra: Vec<(String, Tensor)> = tensors
            .iter()
            .filter(|(name, _)| name.contains(".layers.1."))
            .map(|(name, t)| (name.replace(".layers.1.", ".layers.2."), t.clone()))
            .collect();
        tensors.extend(extra);
        candle_core::safetensors::save(&tensors, &path)?;
        let msg = load_error(dir.path());
        assert!(
            msg.contains("`base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight`")
                && msg.contains("layer 2, but the model has layers 0–1")
                && msg.contains("trained for this model"),
            "{msg}"
        );
        Ok(())
    }

    #[test]
    fn adapter_tensors_of_unlisted_modules_are_refused() -> Result<()> {
        let dir = saved_adapter(&["q_proj", "o_proj"])?;
        let path = dir.path().join(ADAPTER_CONFIG);
        let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        config["target_modules"] = serde_json::json!(["q_proj"]);
        std::fs::write(&path, config.to_string())?;
        let msg = load_error(dir.path());
        assert!(
            msg.contains("`base_model.model.model.layers.0.self_attn.o_proj.lora_A.weight`")
                && msg.contains("module `o_proj` is not in target_modules")
                && msg.contains("adapter_config.json"),
            "{msg}"
        );
        Ok(())
    }

    #[test]
    fn many_unused_tensors_are_counted_past_the_first_few() {
        let names: Vec<String> = (0..11).map(|i| format!("extra.{i}")).collect();
        let msg = unused_tensors_message(&names, 2, &[], Path::new("/a"));
        assert!(
            msg.contains("11 tensor(s)")
                && msg.contains("`extra.7`")
                && !msg.contains("`extra.8`")
                && msg.contains("and 3 more"),
            "{msg}"
        );
    }

    /// Rewrite keys of the saved adapter's adapter_config.json.
    fn edit_config(dir: &Path, edits: serde_json::Value) -> Result<()> {
        let path = dir.join(ADAPTER_CONFIG);
        let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        for (key, value) in edits.as_object().expect("edits are an object") {
            config[key] = value.clone();
        }
        Ok(std::fs::write(&path, config.to_string())?)
    }

    /// An adapter with non-zero B (a fresh one changes nothing, whatever its scale).
    fn trained_adapter(r: usize, alpha: f64) -> Result<tempfile::TempDir> {
        let dir = tempfile::tempdir()?;
        let mut lm = LanguageModel::tiny_random(3, Family::Llama)?;
        lm.attach_lora(&LoraSettings {
            r,
            alpha,
            ..settings(&["q_proj", "v_proj"])
        })?;
        for (name, var) in lm.trainable_vars() {
            if name.contains("lora_B") {
                var.set(&Tensor::randn(
                    0f32,
                    0.5,
                    var.dims(),
                    &candle_core::Device::Cpu,
                )?)?;
            }
        }
        lm.save_adapter(dir.path())?;
        Ok(dir)
    }

    fn logits_with(dir: &Path) -> Result<Vec<f32>> {
        let mut lm = LanguageModel::tiny_random(3, Family::Llama)?;
        lm.load_adapter(dir)?;
        let ids = Tensor::new(&[[5u32, 17, 99, 42]], &candle_core::Device::Cpu)?;
        let mask = Tensor::ones((1, 4), candle_core::DType::U32, &candle_core::Device::Cpu)?;
        Ok(lm.forward_logits(&ids, &mask)?.flatten_all()?.to_vec1()?)
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// rsLoRA scales by alpha/√r: r 4, alpha 8 is plain LoRA's alpha 16 (scale 4), not alpha 8.
    #[test]
    fn rslora_adapters_scale_by_alpha_over_root_r() -> Result<()> {
        let dir = trained_adapter(4, 8.0)?;
        let plain = logits_with(dir.path())?;
        edit_config(dir.path(), serde_json::json!({"use_rslora": true}))?;
        let rslora = logits_with(dir.path())?;
        edit_config(
            dir.path(),
            serde_json::json!({"use_rslora": false, "lora_alpha": 16.0}),
        )?;
        let doubled = logits_with(dir.path())?;
        assert!(
            max_diff(&plain, &doubled) > 1e-3,
            "the test adapter must matter"
        );
        assert!(
            max_diff(&rslora, &doubled) < 1e-5,
            "{}",
            max_diff(&rslora, &doubled)
        );
        Ok(())
    }

    /// A loaded rsLoRA adapter saved again keeps its scale.
    #[test]
    fn rslora_adapters_save_as_rslora() -> Result<()> {
        let dir = trained_adapter(4, 8.0)?;
        edit_config(dir.path(), serde_json::json!({"use_rslora": true}))?;
        let before = logits_with(dir.path())?;
        let mut lm = LanguageModel::tiny_random(3, Family::Llama)?;
        lm.load_adapter(dir.path())?;
        let again = tempfile::tempdir()?;
        lm.save_adapter(again.path())?;
        assert!(max_diff(&before, &logits_with(again.path())?) < 1e-6);
        Ok(())
    }

    #[test]
    fn peft_options_this_loader_lacks_are_refused_by_key() -> Result<()> {
        let dir = trained_adapter(4, 8.0)?;
        for (key, value) in [
            ("rank_pattern", serde_json::json!({"q_proj": 8})),
            ("alpha_pattern", serde_json::json!({"v_proj": 32})),
            ("layers_to_transform", serde_json::json!([0])),
            ("layers_pattern", serde_json::json!("layers")),
            ("modules_to_save", serde_json::json!(["lm_head"])),
        ] {
            edit_config(dir.path(), serde_json::json!({ key: value }))?;
            let msg = load_error(dir.path());
            assert!(
                msg.contains(&format!("`{key}` = {value}"))
                    && msg.contains("adapter_config.json")
                    && msg.contains("does not support"),
                "{msg}"
            );
            edit_config(dir.path(), serde_json::json!({ key: null }))?;
        }
        // PEFT's own defaults for the same keys load.
        edit_config(
            dir.path(),
            serde_json::json!({"rank_pattern": {}, "alpha_pattern": {}, "layers_to_transform": null,
                               "layers_pattern": null, "modules_to_save": null}),
        )?;
        LanguageModel::tiny_random(3, Family::Llama)?.load_adapter(dir.path())?;
        Ok(())
    }
}
