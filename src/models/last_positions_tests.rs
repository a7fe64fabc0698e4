//! The last layer run on the kept positions only (`Decoder::forward_hidden_last`) must give
//! the same hidden states, logits and LoRA gradients as the full pass.
use anyhow::Result;
use candle_core::{Device, Tensor, D};

use super::decoder::{position_tensor, positions_from_mask};
use super::decoder_config::Family;
use super::lm::{LanguageModel, LoraSettings};
use super::lora::{ForwardMode, PeftMethod};
use super::trainable::TrainableModel;

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

/// Key positions per row (`None`: padding).
type Keys = Vec<Vec<Option<u32>>>;

/// Two left-padded rows: 3 padding + 6 tokens, and 9 tokens.
fn batch(device: &Device) -> Result<(Tensor, Tensor, Keys)> {
    let ids: Vec<u32> = [0, 0, 0, 40, 41, 42, 43, 44, 45]
        .into_iter()
        .chain([50, 51, 52, 53, 54, 55, 56, 57, 58])
        .collect();
    let real: Vec<Vec<bool>> = vec![(0..9).map(|i| i >= 3).collect(), vec![true; 9]];
    let mask: Vec<u32> = real.iter().flatten().map(|&r| r as u32).collect();
    Ok((
        Tensor::from_vec(ids, (2, 9), device)?,
        Tensor::from_vec(mask, (2, 9), device)?,
        positions_from_mask(&real),
    ))
}

#[test]
fn kept_positions_equal_the_full_pass_in_every_family() -> Result<()> {
    for family in [Family::Llama, Family::Qwen3, Family::Gemma3] {
        let lm = LanguageModel::tiny_random(11, family)?;
        let decoder = lm.decoder();
        let (ids, _, keys) = batch(&Device::Cpu)?;
        let masks = decoder.build_masks(&keys, 9)?;
        let positions = position_tensor(&keys, 9, &Device::Cpu)?;
        let mode = ForwardMode::default();
        let full = decoder.forward_hidden(&ids, &positions, &masks, None, mode)?;
        for keep in [1, 4, 9] {
            let last = decoder.forward_hidden_last(&ids, &positions, &masks, None, mode, keep)?;
            assert_eq!(last.dims(), &[2, keep, full.dim(2)?]);
            let d = max_diff(&last, &full.narrow(1, 9 - keep, keep)?)?;
            assert!(d < 1e-5, "{family:?} keep {keep}: differs by {d}");
        }
        // Shifted by one position the rows differ, so the comparison above can fail.
        let d = max_diff(&full.narrow(1, 5, 4)?, &full.narrow(1, 4, 4)?)?;
        assert!(
            d > 1e-3,
            "{family:?}: neighbouring positions are alike ({d})"
        );
    }
    Ok(())
}

#[test]
fn training_on_target_rows_gives_the_full_pass_loss_and_gradients() -> Result<()> {
    let mut lm = LanguageModel::tiny_random(5, Family::Llama)?;
    lm.attach_lora(&LoraSettings {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: Vec::new(),
        method: PeftMethod::Lora,
        seed: 3,
    })?;
    // Non-zero B so every adapter changes the output and gets a gradient through A too.
    for (_, var) in lm.trainable_vars() {
        let noise = Tensor::randn(0f32, 0.3, var.shape(), &Device::Cpu)?;
        var.set(&(var.as_tensor() + noise)?)?;
    }
    let (ids, mask, _) = batch(&Device::Cpu)?;
    // Scored positions: the last three of row 0 and the last four of row 1 (flat row * 9 + t).
    let rows: Vec<u32> = vec![5, 6, 7, 14, 15, 16, 17];
    let targets = Tensor::new(&[43u32, 44, 45, 55, 56, 57, 58], &Device::Cpu)?;
    let rows = Tensor::new(rows.as_slice(), &Device::Cpu)?;
    let loss = |logits: Tensor| -> Result<Tensor> {
        let lp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        Ok(lp.gather(&targets.unsqueeze(1)?, 1)?.sum_all()?.neg()?)
    };
    let tail = lm.forward_train_rows(&ids, &mask, &rows, true, 0)?;
    let full = lm.forward_train(&ids, &mask, true, 0)?;
    let full = full.reshape((18, full.dim(2)?))?.index_select(&rows, 0)?;
    assert!(max_diff(&tail, &full)? < 1e-5);
    let (tail_loss, full_loss) = (loss(tail)?, loss(full)?);
    let diff = (tail_loss.to_scalar::<f32>()? - full_loss.to_scalar::<f32>()?).abs();
    assert!(diff < 1e-4, "losses differ by {diff}");
    let (g_tail, g_full) = (tail_loss.backward()?, full_loss.backward()?);
    let vars = lm.trainable_vars();
    assert!(vars.len() >= 14, "adapters on every linear of two layers");
    for (name, var) in vars {
        let (a, b) = (
            g_tail.get(var.as_tensor()).expect("a gradient"),
            g_full.get(var.as_tensor()).expect("a gradient"),
        );
        let size = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        assert!(size > 0.0, "{name} has a zero gradient");
        let d = max_diff(a, b)?;
        assert!(d <= 1e-4 * size.max(1.0), "{name}: gradients differ by {d}");
    }
    Ok(())
}
