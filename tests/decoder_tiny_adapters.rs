//! LoRA, DoRA and QLoRA adapters on tiny random decoders: save, load, merge and unmerge, clones
//! left unchanged, and a seeded, differentiable training forward pass.
mod support;

use anyhow::Result;
use atgen_lab::models::lm::{Family, LanguageModel, LoraSettings, PeftMethod};
use atgen_lab::models::trainable::TrainableModel;
use candle_core::{Device, Tensor};
use support::tiny_decoder::{max_diff, probe_logits};

fn perturb_adapters(lm: &LanguageModel) -> Result<()> {
    for (i, (name, var)) in lm.trainable_vars().into_iter().enumerate() {
        if name.contains("lora_B") {
            let t = Tensor::randn(0f32, 0.3, var.shape(), &Device::Cpu)?;
            var.set(&((t * (1.0 + i as f64 * 0.01))?))?;
        }
    }
    Ok(())
}

#[test]
fn adapters_save_load_merge_for_lora_dora_qlora() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for (family, method) in [
        (Family::Llama, PeftMethod::Lora),
        (Family::Qwen3, PeftMethod::Dora),
        (Family::Gemma3, PeftMethod::Qlora),
    ] {
        let settings = LoraSettings {
            r: 4,
            alpha: 8.0,
            dropout: 0.1,
            targets: Vec::new(),
            method,
            seed: 9,
        };
        let mut lm = LanguageModel::tiny_random(4, family)?;
        let base = probe_logits(&lm)?;
        lm.attach_lora(&settings)?;
        let names: Vec<String> = lm.trainable_vars().into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(
            &"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight".to_string()
        ));
        let per_module = if method == PeftMethod::Dora { 3 } else { 2 };
        assert_eq!(names.len(), 2 * 7 * per_module, "2 layers × 7 linears");
        if method != PeftMethod::Qlora {
            let fresh = probe_logits(&lm)?;
            assert!(
                max_diff(&base, &fresh) < 1e-4,
                "{method:?}: B = 0 must not change logits"
            );
        }
        perturb_adapters(&lm)?;
        let adapted = probe_logits(&lm)?;
        assert!(
            max_diff(&base, &adapted) > 1e-3,
            "{method:?}: adapter has no effect"
        );

        let path = dir.path().join(format!("{method:?}"));
        lm.save_adapter(&path)?;
        let mut other = LanguageModel::tiny_random(4, family)?;
        other.load_adapter(&path)?;
        let loaded = probe_logits(&other)?;
        assert_eq!(
            loaded.flatten_all()?.to_vec1::<f32>()?,
            adapted.flatten_all()?.to_vec1::<f32>()?,
            "{method:?}: save → load must give identical logits"
        );

        lm.merge_lora()?;
        let merged = probe_logits(&lm)?;
        let d = max_diff(&merged, &adapted);
        // QLoRA inference multiplies 4-bit blocks with 8-bit-quantized activations; the merged
        // weight is dense, so they agree only to that precision.
        let scale = adapted.abs()?.max_all()?.to_scalar::<f32>()?;
        let tolerance = if method == PeftMethod::Qlora {
            0.02 * scale
        } else {
            1e-3
        };
        assert!(
            d < tolerance,
            "{method:?}: merged differs from unmerged by {d}"
        );
        lm.unmerge_lora();
        assert_eq!(
            probe_logits(&lm)?.flatten_all()?.to_vec1::<f32>()?,
            adapted.flatten_all()?.to_vec1::<f32>()?
        );
    }
    Ok(())
}

#[test]
fn adapters_on_a_clone_leave_the_original_unchanged() -> Result<()> {
    // The runner gives every cell a clone of the experiment's model.
    for method in [PeftMethod::Lora, PeftMethod::Dora, PeftMethod::Qlora] {
        let original = LanguageModel::tiny_random(6, Family::Llama)?;
        let before = probe_logits(&original)?.flatten_all()?.to_vec1::<f32>()?;
        let mut clone = original.clone();
        assert_eq!(
            probe_logits(&clone)?.flatten_all()?.to_vec1::<f32>()?,
            before
        );
        clone.attach_lora(&LoraSettings {
            r: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: Vec::new(),
            method,
            seed: 2,
        })?;
        perturb_adapters(&clone)?;
        clone.merge_lora()?;
        assert!(
            max_diff(&probe_logits(&clone)?, &probe_logits(&original)?) > 1e-3,
            "{method:?}: the merged adapter changes the clone"
        );
        assert_eq!(
            probe_logits(&original)?.flatten_all()?.to_vec1::<f32>()?,
            before,
            "{method:?}: the original must not see the clone's adapter"
        );
        assert!(original.trainable_vars().is_empty());
    }
    Ok(())
}

#[test]
fn training_forward_is_seeded_and_differentiable() -> Result<()> {
    let mut lm = LanguageModel::tiny_random(5, Family::Qwen2)?;
    lm.attach_lora(&LoraSettings {
        r: 2,
        alpha: 4.0,
        dropout: 0.3,
        targets: vec!["q_proj".into(), "down_proj".into()],
        method: PeftMethod::Lora,
        seed: 1,
    })?;
    assert_eq!(lm.trainable_vars().len(), 2 * 2 * 2);
    perturb_adapters(&lm)?;
    let ids = Tensor::new(
        &[[2u32, 2, 40, 50, 60], [70, 80, 90, 100, 110]],
        &Device::Cpu,
    )?;
    let mask = Tensor::new(&[[0u32, 0, 1, 1, 1], [1, 1, 1, 1, 1]], &Device::Cpu)?;
    let a = lm.forward_train(&ids, &mask, true, 7)?;
    let b = lm.forward_train(&ids, &mask, true, 7)?;
    let c = lm.forward_train(&ids, &mask, true, 8)?;
    assert_eq!(max_diff(&a, &b), 0.0, "same dropout seed, same logits");
    assert!(
        max_diff(&a, &c) > 0.0,
        "another dropout seed drops other units"
    );
    // Without dropout the differentiable path equals the fast inference path.
    let eval_slow = lm.forward_train(&ids, &mask, false, 0)?;
    let eval_fast = lm.forward_logits(&ids, &mask)?;
    assert!(max_diff(&eval_slow, &eval_fast) < 1e-4);
    let loss = candle_nn::loss::cross_entropy(
        &a.narrow(1, 2, 2)?.reshape((4, a.dim(2)?))?,
        &Tensor::new(&[50u32, 60, 80, 90], &Device::Cpu)?,
    )?;
    let grads = loss.backward()?;
    for (name, var) in lm.trainable_vars() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        assert!(
            g.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0,
            "zero gradient for {name}"
        );
    }
    Ok(())
}
