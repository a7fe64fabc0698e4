//! The CUDA path against the CPU path (built only with `--features cuda`; needs a GPU). The
//! same tiny random models (weights and adapters drawn on the host, so both devices get the
//! same numbers) must score, generate, train and embed alike on both devices. The CPU side is
//! the tested reference: every fused CPU op is checked against candle's composed ops elsewhere.
use anyhow::Result;
use candle_core::{DType, Device};

use super::decoder_config::Family;
use super::encoder::SentenceEncoder;
use super::generate::{generate_ids, GenerateOptions};
use super::lm::{LanguageModel, LoraSettings};
use super::lora::PeftMethod;
use super::score::score_ids;
use super::train::{train, TrainExample, TrainOptions};
use super::trainable::TrainableModel;
use crate::config::DeviceKind;

const FAMILIES: [Family; 4] = [Family::Llama, Family::Qwen2, Family::Qwen3, Family::Gemma3];

fn gpu() -> Device {
    let device = super::device::resolve_device(DeviceKind::Cuda).expect(
        "these tests are built with --features cuda and need a CUDA GPU; run them on a GPU \
         machine, or build without the feature",
    );
    assert!(device.is_cuda());
    device
}

fn pair(family: Family, dtype: DType) -> Result<(LanguageModel, LanguageModel)> {
    Ok((
        LanguageModel::tiny_random_on(3, family, DType::F32, &Device::Cpu)?,
        LanguageModel::tiny_random_on(3, family, dtype, &gpu())?,
    ))
}

fn ids(lm: &LanguageModel, texts: &[&str]) -> Vec<Vec<u32>> {
    texts.iter().map(|t| lm.encode(t).unwrap()).collect()
}

const PROMPTS: [&str; 5] = [
    "Hi",
    "The cat sat on the mat.",
    "abc",
    "A longer prompt, with 123 digits!",
    "x y",
];
const OUTPUTS: [&str; 5] = ["there", "It did.", "def", "456", "z"];

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

#[test]
fn scores_match_the_cpu_for_every_family() -> Result<()> {
    for family in FAMILIES {
        let (cpu, cuda) = pair(family, DType::F32)?;
        let (p, o) = (ids(&cpu, &PROMPTS), ids(&cpu, &OUTPUTS));
        let pad = cpu.tokenizer().pad_id;
        let on_cpu = score_ids(cpu.decoder(), pad, &p, &o, 5)?;
        let on_gpu = score_ids(cuda.decoder(), pad, &p, &o, 5)?;
        let d = max_diff(&on_cpu, &on_gpu);
        assert!(d < 1e-4, "{family:?}: log-probs differ by {d}");
        assert!(on_gpu.iter().flatten().all(|v| *v < 0.0 && v.is_finite()));
    }
    Ok(())
}

#[test]
fn greedy_generation_matches_the_cpu_and_sampling_repeats() -> Result<()> {
    for family in FAMILIES {
        let (cpu, cuda) = pair(family, DType::F32)?;
        let prompts = ids(&cpu, &PROMPTS);
        let greedy = GenerateOptions {
            max_new_tokens: 12,
            batch_size: 3,
            ..GenerateOptions::default()
        };
        let a = generate_ids(cpu.decoder(), cpu.tokenizer(), &prompts, &greedy)?;
        let b = generate_ids(cuda.decoder(), cuda.tokenizer(), &prompts, &greedy)?;
        for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
            assert_eq!(x.token_ids, y.token_ids, "{family:?}: greedy tokens differ");
            let d = max_diff(
                &[x.token_logprobs.clone(), x.entropies.clone()],
                &[y.token_logprobs.clone(), y.entropies.clone()],
            );
            assert!(d < 1e-3, "{family:?}: log-probs/entropies differ by {d}");
        }
        let sampled = GenerateOptions {
            temperature: 1.0,
            top_p: 0.9,
            n: 2,
            seed: 7,
            ..greedy
        };
        let first = generate_ids(cuda.decoder(), cuda.tokenizer(), &prompts, &sampled)?;
        let again = generate_ids(cuda.decoder(), cuda.tokenizer(), &prompts, &sampled)?;
        assert_eq!(first, again, "{family:?}: same seed, different samples");
    }
    Ok(())
}

fn examples(lm: &LanguageModel) -> Vec<TrainExample> {
    PROMPTS
        .iter()
        .zip(OUTPUTS)
        .cycle()
        .take(8)
        .map(|(p, o)| TrainExample {
            prompt_ids: lm.encode(p).unwrap(),
            target_ids: lm.encode(o).unwrap(),
        })
        .collect()
}

fn adapter_weights(lm: &LanguageModel) -> Vec<Vec<f32>> {
    let mut vars = lm.trainable_vars();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.iter()
        .map(|(_, v)| {
            v.as_tensor()
                .to_dtype(DType::F32)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1())
                .unwrap()
        })
        .collect()
}

/// A few optimizer steps with dropout, clipping and a warm-up: the losses and the adapters
/// after training agree. QLoRA's 4-bit products are computed differently on each device (the
/// CPU quantizes the activations too), so it gets a looser bound.
#[test]
fn lora_dora_and_qlora_training_match_the_cpu() -> Result<()> {
    for (method, tol) in [
        (PeftMethod::Lora, 1e-4),
        (PeftMethod::Dora, 1e-4),
        (PeftMethod::Qlora, 2e-2),
    ] {
        let (mut cpu, mut cuda) = pair(Family::Llama, DType::F32)?;
        let settings = LoraSettings {
            r: 4,
            alpha: 8.0,
            dropout: 0.1,
            method,
            seed: 5,
            ..LoraSettings::default()
        };
        cpu.attach_lora(&settings)?;
        cuda.attach_lora(&settings)?;
        let opts = TrainOptions {
            learning_rate: 5e-3,
            epochs: 2,
            batch_size: 4,
            warmup_ratio: 0.25,
            max_seq_len: 48,
            seed: 9,
            pad_id: cpu.tokenizer().pad_id,
            ..TrainOptions::default()
        };
        let data = examples(&cpu);
        let a = train(&cpu, &data, &[], &opts, None)?;
        let b = train(&cuda, &data, &[], &opts, None)?;
        assert_eq!(a.steps, 4);
        assert_eq!(a.steps, b.steps);
        for (x, y) in a.losses.iter().zip(&b.losses) {
            assert!(
                (x - y).abs() <= tol * x.abs().max(1.0),
                "{method:?}: losses {:?} on the CPU, {:?} on the GPU",
                a.losses,
                b.losses
            );
        }
        let d = max_diff(&adapter_weights(&cpu), &adapter_weights(&cuda));
        assert!(
            d < tol.max(1e-3),
            "{method:?}: adapters differ by {d} after training"
        );
        assert!(a.losses.last() < a.losses.first(), "{:?}", a.losses);
    }
    Ok(())
}

/// bf16 on the GPU: log-probs near the f32 ones (bf16 keeps 8 bits of mantissa) and LoRA
/// training still lowers the loss.
#[test]
fn bf16_scores_near_f32_and_trains() -> Result<()> {
    let (cpu, mut half) = pair(Family::Qwen3, DType::BF16)?;
    let (p, o) = (ids(&cpu, &PROMPTS), ids(&cpu, &OUTPUTS));
    let pad = cpu.tokenizer().pad_id;
    let full = score_ids(cpu.decoder(), pad, &p, &o, 5)?;
    let low = score_ids(half.decoder(), pad, &p, &o, 5)?;
    let d = max_diff(&full, &low);
    assert!(d < 0.15, "bf16 log-probs differ from f32 by {d}");
    half.attach_lora(&LoraSettings {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        ..LoraSettings::default()
    })?;
    let opts = TrainOptions {
        learning_rate: 1e-2,
        epochs: 4,
        batch_size: 8,
        max_seq_len: 48,
        pad_id: pad,
        ..TrainOptions::default()
    };
    let report = train(&half, &examples(&cpu), &[], &opts, None)?;
    assert!(report.losses.iter().all(|l| l.is_finite()));
    assert!(
        report.losses.last() < report.losses.first(),
        "{:?}",
        report.losses
    );
    Ok(())
}

#[test]
fn encoder_embeddings_match_the_cpu() -> Result<()> {
    let dir = super::encoder::tests::tiny_model(14, None);
    let cpu = SentenceEncoder::load(dir.path())?.with_batch_size(3);
    let cuda = SentenceEncoder::load_on(dir.path(), &gpu())?.with_batch_size(3);
    let texts: Vec<String> = ["hello world", "", "The cat sat on the mat", "unbelievable"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (a, b) = (cpu.embed(&texts)?, cuda.embed(&texts)?);
    assert_eq!((a.rows, a.cols), (b.rows, b.cols));
    for i in 0..a.rows {
        let cos: f32 = a.row(i).iter().zip(b.row(i)).map(|(x, y)| x * y).sum();
        assert!(cos > 0.99999, "row {i}: cosine {cos}");
    }
    Ok(())
}
