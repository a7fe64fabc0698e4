//! Generation with tiny random decoders (2 layers, hidden 64) of every family: batching, the KV
//! cache, shared prompt openings, seeded sampling, prompt truncation and refused options.
mod support;

use anyhow::Result;
use atgen_lab::models::generate::{generate_ids, generate_ids_with, GenerateOptions, PromptPrefix};
use atgen_lab::models::lm::{Family, LanguageModel};
use atgen_lab::models::score::score_ids;
use candle_core::{Device, Tensor, D};
use support::tiny_decoder::{max_diff, texts, vec_diff, FAMILIES};

/// Left-padded batch logits equal each row run alone (at the real positions).
#[test]
fn batched_equals_unbatched_for_every_family() -> Result<()> {
    for family in FAMILIES {
        let lm = LanguageModel::tiny_random(1, family)?;
        let prompts: Vec<Vec<u32>> = texts()
            .iter()
            .map(|t| lm.encode(t))
            .collect::<Result<_>>()?;
        let outputs: Vec<Vec<u32>> = texts()
            .iter()
            .rev()
            .map(|t| lm.encode(t))
            .collect::<Result<_>>()?;
        let pad = lm.tokenizer().pad_id;
        let one = score_ids(lm.decoder(), pad, &prompts, &outputs, 1)?;
        let all = score_ids(lm.decoder(), pad, &prompts, &outputs, 5)?;
        for (a, b) in one.iter().zip(&all) {
            let d = vec_diff(a, b);
            assert!(d < 1e-4, "{family:?}: batched scores differ by {d}");
        }
        // The same through the training entry point with an explicit mask.
        let longest = prompts.iter().map(Vec::len).max().unwrap();
        let mut ids = Vec::new();
        let mut mask = Vec::new();
        for p in &prompts {
            let pad_n = longest - p.len();
            ids.extend(std::iter::repeat_n(pad, pad_n).chain(p.iter().copied()));
            mask.extend((0..longest).map(|i| u32::from(i >= pad_n)));
        }
        let ids = Tensor::from_vec(ids, (prompts.len(), longest), &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, (prompts.len(), longest), &Device::Cpu)?;
        let batch = lm.forward_logits(&ids, &mask)?;
        for (r, p) in prompts.iter().enumerate() {
            let alone_ids = Tensor::new(p.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
            let alone = lm.forward_logits(&alone_ids, &alone_ids.ones_like()?)?;
            let row = batch
                .narrow(0, r, 1)?
                .narrow(1, longest - p.len(), p.len())?;
            let d = max_diff(&row, &alone);
            assert!(d < 1e-4, "{family:?}: row {r} differs by {d}");
        }
    }
    Ok(())
}

/// Greedy decoding by recomputing the whole sequence each step, stopping like `generate`.
fn greedy_recompute(lm: &LanguageModel, prompt: &[u32], steps: usize) -> Result<Vec<u32>> {
    let mut seq = prompt.to_vec();
    let mut out = Vec::new();
    for _ in 0..steps {
        let ids = Tensor::new(seq.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let logits = lm.forward_logits(&ids, &ids.ones_like()?)?;
        let next = logits
            .narrow(1, seq.len() - 1, 1)?
            .flatten_all()?
            .argmax(D::Minus1)?
            .to_scalar::<u32>()?;
        out.push(next);
        seq.push(next);
        if lm.tokenizer().eos_ids.contains(&next) {
            break;
        }
    }
    Ok(out)
}

#[test]
fn kv_cached_generation_equals_full_recompute() -> Result<()> {
    for family in FAMILIES {
        let lm = LanguageModel::tiny_random(2, family)?;
        let prompts: Vec<Vec<u32>> = texts()
            .iter()
            .map(|t| lm.encode(t))
            .collect::<Result<_>>()?;
        let opts = GenerateOptions {
            max_new_tokens: 12,
            batch_size: 3,
            ..GenerateOptions::default()
        };
        let gens = generate_ids(lm.decoder(), lm.tokenizer(), &prompts, &opts)?;
        for (p, g) in prompts.iter().zip(&gens) {
            let expected = greedy_recompute(&lm, p, 12)?;
            assert_eq!(g[0].token_ids, expected, "{family:?}");
            assert_eq!(g[0].token_logprobs.len(), expected.len());
            assert_eq!(g[0].entropies.len(), expected.len());
            assert!(g[0].entropies.iter().all(|h| *h >= 0.0 && h.is_finite()));
            assert!(g[0].token_logprobs.iter().all(|l| *l <= 0.0));
        }
    }
    Ok(())
}

/// Prompts that open alike (a chat template's system turn and instruction) computed once and
/// shared give what every row running its whole prompt gives, greedy and sampled, in every
/// family (Gemma 3's sliding window included).
#[test]
fn a_shared_prompt_opening_generates_as_separate_prompts() -> Result<()> {
    for family in FAMILIES {
        let lm = LanguageModel::tiny_random(4, family)?;
        let opening = "You write short subject lines. Write one for this email: ";
        let prompts: Vec<Vec<u32>> = texts()
            .iter()
            .map(|t| lm.encode(&format!("{opening}{t}")))
            .collect::<Result<_>>()?;
        let common = prompts[0]
            .iter()
            .zip(&prompts[1])
            .take_while(|(a, b)| a == b)
            .count();
        assert!(
            common >= 10,
            "the prompts must open alike ({common} tokens)"
        );
        for opts in [
            GenerateOptions {
                max_new_tokens: 8,
                batch_size: 3,
                ..GenerateOptions::default()
            },
            GenerateOptions {
                max_new_tokens: 8,
                temperature: 1.0,
                n: 2,
                seed: 9,
                batch_size: 4,
                ..GenerateOptions::default()
            },
        ] {
            let run =
                |prefix| generate_ids_with(lm.decoder(), lm.tokenizer(), &prompts, &opts, prefix);
            let shared = run(PromptPrefix::Shared)?;
            let separate = run(PromptPrefix::Separate)?;
            for (a, b) in shared.iter().flatten().zip(separate.iter().flatten()) {
                assert_eq!(a.token_ids, b.token_ids, "{family:?}");
                let d = vec_diff(&a.token_logprobs, &b.token_logprobs);
                assert!(d < 1e-4, "{family:?}: log-probs differ by {d}");
                let d = vec_diff(&a.entropies, &b.entropies);
                assert!(d < 1e-4, "{family:?}: entropies differ by {d}");
            }
        }
        // And as recomputing every step from scratch.
        let opts = GenerateOptions {
            max_new_tokens: 6,
            batch_size: 5,
            ..GenerateOptions::default()
        };
        let gens = generate_ids_with(
            lm.decoder(),
            lm.tokenizer(),
            &prompts,
            &opts,
            PromptPrefix::Shared,
        )?;
        for (p, g) in prompts.iter().zip(&gens) {
            assert_eq!(g[0].token_ids, greedy_recompute(&lm, p, 6)?, "{family:?}");
        }
    }
    Ok(())
}

#[test]
fn sampling_is_deterministic_and_independent_of_batching() -> Result<()> {
    let lm = LanguageModel::tiny_random(3, Family::Llama)?;
    let prompts: Vec<String> = texts();
    let opts = GenerateOptions {
        max_new_tokens: 10,
        temperature: 1.0,
        top_p: 0.9,
        n: 3,
        seed: 42,
        batch_size: 4,
        max_input_tokens: None,
    };
    let a = lm.generate(&prompts, &opts)?;
    let b = lm.generate(&prompts, &opts)?;
    assert_eq!(a, b, "same seed must give the same samples");
    assert_eq!(a[0].len(), 3);
    // A different batch size and a subset of the prompts leave each prompt's samples unchanged
    // (token ids; log-probs may differ in the last bits).
    let c = lm.generate(
        &prompts[1..3],
        &GenerateOptions {
            batch_size: 1,
            ..opts.clone()
        },
    )?;
    for (x, y) in a[1..3].iter().zip(&c) {
        let ids = |g: &Vec<atgen_lab::models::lm::Generation>| {
            g.iter().map(|s| s.token_ids.clone()).collect::<Vec<_>>()
        };
        assert_eq!(ids(x), ids(y));
    }
    let d = lm.generate(
        &prompts,
        &GenerateOptions {
            seed: 43,
            ..opts.clone()
        },
    )?;
    assert_ne!(a, d, "another seed should give other samples");
    // Samples of one prompt differ from each other.
    assert!(a.iter().any(|s| s[0].token_ids != s[1].token_ids));
    Ok(())
}

#[test]
fn truncation_keeps_the_template() -> Result<()> {
    let lm = LanguageModel::tiny_random(1, Family::Llama)?;
    let user = "word ".repeat(100);
    let prompt = lm.render_prompt_within(Some("sys"), &user, 60)?;
    assert!(lm.encode(&prompt)?.len() <= 60);
    assert!(prompt.starts_with("<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nword word"));
    assert!(prompt.ends_with("<|im_end|>\n<|im_start|>assistant\n"));
    let short = lm.render_prompt_within(None, "hi", 60)?;
    assert_eq!(short, lm.render_prompt(None, "hi")?);
    // Generation-time truncation keeps the last tokens.
    let opts = GenerateOptions {
        max_new_tokens: 3,
        max_input_tokens: Some(8),
        ..GenerateOptions::default()
    };
    let long = lm.generate(std::slice::from_ref(&user), &opts)?;
    let tail = lm.generate(&["word word ".to_string()], &opts)?;
    // "word word " is 10 bytes → its last 8 tokens are "rd word " as in the long prompt.
    let tail8 = lm.generate(
        &["rd word ".to_string()],
        &GenerateOptions {
            max_input_tokens: None,
            ..opts.clone()
        },
    )?;
    assert_eq!(long[0][0].token_ids, tail8[0][0].token_ids);
    assert_eq!(tail[0][0].token_ids, tail8[0][0].token_ids);
    Ok(())
}

#[test]
fn nan_or_infinite_sampling_options_are_refused_with_the_values() -> Result<()> {
    let lm = LanguageModel::tiny_random(3, Family::Llama)?;
    let prompts: Vec<String> = texts();
    for (temperature, top_p) in [(f64::NAN, 0.9), (f64::INFINITY, 0.9), (1.0, f64::NAN)] {
        let opts = GenerateOptions {
            max_new_tokens: 2,
            temperature,
            top_p,
            ..GenerateOptions::default()
        };
        let err = lm.generate(&prompts[..1], &opts).unwrap_err().to_string();
        assert!(err.contains("temperature must be a finite number"), "{err}");
    }
    Ok(())
}
