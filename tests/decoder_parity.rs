//! Parity of our decoder and tokenizer with Hugging Face transformers on SmolLM2-135M-Instruct
//! (the real GGUF from the models cache; `lab setup` fills it).
use std::path::PathBuf;

use anyhow::{Context, Result};
use atgen_lab::models::generate::{generate_ids, GenerateOptions};
use atgen_lab::models::lm::{LanguageModel, ModelSource};
use atgen_lab::models::score::score_ids;
use candle_core::{Tensor, D};
use serde::Deserialize;

const MODEL: &str = "smollm2-135m-instruct";

#[derive(Deserialize)]
struct Reference {
    prompt: String,
    input_ids: Vec<u32>,
    last_top10_ids: Vec<u32>,
    last_top10_logprobs: Vec<f32>,
    token_logprobs: Vec<f32>,
    greedy_16: Vec<u32>,
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn references() -> Result<Vec<Reference>> {
    let text = std::fs::read_to_string(fixture("smollm2_reference.jsonl"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).context("bad fixture line"))
        .collect()
}

fn model() -> Result<LanguageModel> {
    let dir = atgen_lab::models::cache::default_model_dir(MODEL);
    assert!(
        dir.is_dir(),
        "model {MODEL} is not in the models cache ({}): run `lab setup`",
        dir.display()
    );
    LanguageModel::load(&ModelSource::Default(MODEL.into()))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Everything that needs the 135M model runs in one test so it is loaded once.
#[test]
fn smollm2_matches_transformers() -> Result<()> {
    let lm = model()?;
    let refs = references()?;
    let pad = lm.tokenizer().pad_id;
    let mut worst_token = 0f32;
    let mut worst_top10 = 0f32;
    for r in &refs {
        let ids = lm.encode(&r.prompt)?;
        assert_eq!(ids, r.input_ids, "input ids of {:?}", r.prompt);

        // Every token's log-probability, teacher-forced.
        let lp = score_ids(
            lm.decoder(),
            pad,
            &[ids[..1].to_vec()],
            &[ids[1..].to_vec()],
            1,
        )?;
        let d = max_abs_diff(&lp[0], &r.token_logprobs);
        worst_token = worst_token.max(d);
        assert!(d < 2e-3, "token log-probs of {:?} differ by {d}", r.prompt);

        // Top-10 next-token log-probabilities after the prompt.
        let input = Tensor::new(ids.as_slice(), lm.decoder().device())?.unsqueeze(0)?;
        let mask = input.ones_like()?;
        let logits = lm.forward_logits(&input, &mask)?;
        let last = logits.narrow(1, ids.len() - 1, 1)?.flatten_all()?;
        let logprobs = candle_nn::ops::log_softmax(&last, D::Minus1)?.to_vec1::<f32>()?;
        let ours: Vec<f32> = r
            .last_top10_ids
            .iter()
            .map(|i| logprobs[*i as usize])
            .collect();
        let d = max_abs_diff(&ours, &r.last_top10_logprobs);
        worst_top10 = worst_top10.max(d);
        assert!(d < 2e-3, "top-10 log-probs of {:?} differ by {d}", r.prompt);
        let mut order: Vec<usize> = (0..logprobs.len()).collect();
        order.sort_by(|a, b| logprobs[*b].total_cmp(&logprobs[*a]));
        assert_eq!(
            order[0] as u32, r.last_top10_ids[0],
            "argmax of {:?}",
            r.prompt
        );
    }
    eprintln!("max |Δ| token log-prob {worst_token:.2e}, top-10 {worst_top10:.2e}");

    // 16 greedy tokens, one prompt at a time and all four as one left-padded batch.
    let prompts: Vec<Vec<u32>> = refs.iter().map(|r| r.input_ids.clone()).collect();
    let opts = GenerateOptions {
        max_new_tokens: 16,
        batch_size: 1,
        ..GenerateOptions::default()
    };
    let single = generate_ids(lm.decoder(), lm.tokenizer(), &prompts, &opts)?;
    let batched = generate_ids(
        lm.decoder(),
        lm.tokenizer(),
        &prompts,
        &GenerateOptions {
            batch_size: 4,
            ..opts.clone()
        },
    )?;
    let mut worst_batch = 0f32;
    for ((r, s), b) in refs.iter().zip(&single).zip(&batched) {
        assert_eq!(
            s[0].token_ids, r.greedy_16,
            "greedy tokens of {:?}",
            r.prompt
        );
        assert_eq!(
            b[0].token_ids, r.greedy_16,
            "batched greedy tokens of {:?}",
            r.prompt
        );
        worst_batch = worst_batch.max(max_abs_diff(&s[0].token_logprobs, &b[0].token_logprobs));
    }

    // Teacher-forced scoring: a mixed-length batch equals one-by-one.
    let heads: Vec<Vec<u32>> = prompts.iter().map(|p| p[..1].to_vec()).collect();
    let tails: Vec<Vec<u32>> = prompts.iter().map(|p| p[1..].to_vec()).collect();
    let one = score_ids(lm.decoder(), pad, &heads, &tails, 1)?;
    let all = score_ids(lm.decoder(), pad, &heads, &tails, 4)?;
    for (a, b) in one.iter().zip(&all) {
        worst_batch = worst_batch.max(max_abs_diff(a, b));
    }
    eprintln!("max |Δ| batched vs one-by-one {worst_batch:.2e}");
    assert!(
        worst_batch < 1e-4,
        "batched differs from one-by-one by {worst_batch}"
    );
    Ok(())
}

/// Our tokenizer built from GGUF metadata gives the same ids as the reference tokenizer.json on
/// a few hundred real strings (with ChatML special tokens mixed in).
#[test]
fn gguf_tokenizer_matches_reference_tokenizer_json() -> Result<()> {
    let lm = model()?;
    let reference =
        tokenizers::Tokenizer::from_file(fixture("smollm2-135m-instruct.tokenizer.json"))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut texts = Vec::new();
    for (file, keys) in [
        ("data/aeslc/dev.jsonl", &["email", "subject"][..]),
        ("data/gsm8k/test.jsonl", &["question", "answer"][..]),
    ] {
        let text = std::fs::read_to_string(root.join(file))?;
        for line in text.lines().take(100) {
            let v: serde_json::Value = serde_json::from_str(line)?;
            for k in keys {
                if let Some(s) = v.get(*k).and_then(|s| s.as_str()) {
                    texts.push(s.to_string());
                }
            }
        }
    }
    let extra: Vec<String> = texts
        .iter()
        .take(20)
        .map(|t| format!("<|im_start|>user\n{t}<|im_end|>\n<|im_start|>assistant\n"))
        .collect();
    texts.extend(extra);
    texts.push("  leading spaces, 12345 digits, émojis 🎉 and\ttabs\n\n".into());
    assert!(texts.len() >= 300, "only {} strings", texts.len());
    for t in &texts {
        let ours = lm.encode(t)?;
        let theirs = reference
            .encode(t.as_str(), false)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(ours, theirs.get_ids(), "ids differ for {t:?}");
        assert_eq!(lm.tokenizer().decode(&ours, false)?, *t);
    }
    Ok(())
}
