//! Decoding steps read an LM head dequantized from Q8_0 (as GGUF files store it) in its exact
//! int8 form: the same greedy tokens and log-probabilities (to float rounding) as the f32 head.
use anyhow::Result;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

use atgen_lab::models::decoder::Decoder;
use atgen_lab::models::generate::{generate_ids, GenerateOptions};
use atgen_lab::models::lm::{tiny_config, Family};
use atgen_lab::models::loader::random_weights;
use atgen_lab::models::tokenizer::TextTokenizer;

/// A tiny decoder of `family` whose head (tied or not) went through Q8_0 and back, as a GGUF
/// model's does; with `q8` false, the random f32 head as drawn.
fn tiny_decoder(family: Family, q8: bool) -> Result<(Decoder, TextTokenizer)> {
    let tokenizer = TextTokenizer::tiny_byte_level()?;
    let config = tiny_config(family, tokenizer.vocab_size());
    let mut weights = random_weights(&config, 4, &Device::Cpu)?;
    if q8 {
        for name in ["model.embed_tokens.weight", "lm_head.weight"] {
            if let Some(w) = weights.get_mut(name) {
                *w = QTensor::quantize(w, GgmlDType::Q8_0)?.dequantize(&Device::Cpu)?;
            }
        }
    }
    let decoder = Decoder::from_weights(config, weights, false, DType::F32, &Device::Cpu)?;
    Ok((decoder, tokenizer))
}

#[test]
fn a_q8_head_decodes_from_int8_with_the_f32_heads_tokens_and_logprobs() -> Result<()> {
    // Llama ties the head to the embedding; Qwen2 has its own.
    for family in [Family::Llama, Family::Qwen2] {
        let (int8, tokenizer) = tiny_decoder(family, true)?;
        assert!(
            int8.has_int8_head(),
            "{family:?}: a Q8_0 head is exact in int8"
        );
        let f32_head = int8.with_f32_head();
        assert!(!f32_head.has_int8_head());

        let hidden = Tensor::randn(0f32, 1.0, (5, int8.config.hidden_size), &Device::Cpu)?;
        let (a, b) = (
            int8.next_token_logits(&hidden)?,
            f32_head.next_token_logits(&hidden)?,
        );
        assert_eq!(a.dims(), b.dims());
        let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-4, "{family:?}: logits differ by {diff}");

        let prompts: Vec<Vec<u32>> = ["hello there", "a b c d e f", "zz"]
            .iter()
            .map(|p| tokenizer.encode(p))
            .collect::<Result<_>>()?;
        let opts = GenerateOptions {
            max_new_tokens: 12,
            batch_size: 2,
            ..Default::default()
        };
        let from_int8 = generate_ids(&int8, &tokenizer, &prompts, &opts)?;
        let from_f32 = generate_ids(&f32_head, &tokenizer, &prompts, &opts)?;
        for (x, y) in from_int8.iter().zip(&from_f32) {
            assert_eq!(x[0].token_ids, y[0].token_ids, "{family:?}: greedy tokens");
            for (p, q) in x[0].token_logprobs.iter().zip(&y[0].token_logprobs) {
                assert!((p - q).abs() < 1e-4, "{family:?}: logprob {p} vs {q}");
            }
        }
    }
    Ok(())
}

#[test]
fn a_head_int8_cannot_hold_exactly_stays_f32() -> Result<()> {
    let (decoder, _) = tiny_decoder(Family::Llama, false)?;
    assert!(!decoder.has_int8_head());
    let hidden = Tensor::randn(0f32, 1.0, (2, decoder.config.hidden_size), &Device::Cpu)?;
    let (a, b) = (
        decoder.next_token_logits(&hidden)?,
        decoder.logits(&hidden)?,
    );
    assert_eq!(a.to_vec2::<f32>()?, b.to_vec2::<f32>()?);
    Ok(())
}
