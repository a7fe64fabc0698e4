//! Tiny random decoders as the decoder_tiny* tests compare them: one of each family, prompts of
//! different lengths, a probe sentence's logits, and the largest difference between results.
use anyhow::Result;
use atgen_lab::models::lm::{Family, LanguageModel};
use candle_core::{Device, Tensor};

/// One of each decoder family the host runs.
pub const FAMILIES: [Family; 4] = [Family::Llama, Family::Qwen2, Family::Qwen3, Family::Gemma3];

/// Prompts of different lengths, so a batch of them is left-padded.
pub fn texts() -> Vec<String> {
    [
        "Hi",
        "The cat sat on the mat.",
        "abc",
        "A longer prompt, with 123 digits!",
        "x y",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The largest absolute difference between two tensors of one shape.
pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f32>())
        .expect("same shapes")
}

/// The largest absolute difference between two equally long slices.
pub fn vec_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The logits of one fixed sentence: what tests compare two models by.
pub fn probe_logits(lm: &LanguageModel) -> Result<Tensor> {
    let ids = Tensor::new(
        lm.encode("The cat sat on the mat.")?.as_slice(),
        &Device::Cpu,
    )?
    .unsqueeze(0)?;
    lm.forward_logits(&ids, &ids.ones_like()?)
}
