//! Where a greedy decoding step's time goes, for any model `lab` loads: the layers, the LM
//! head, the next-token statistics (argmax, log-normaliser, entropy) and detokenizing; then
//! end-to-end generation (`generate_ids`) for one prompt and for a batch, as tokens/s.
//!
//!     cargo run --release --example decode_speed -- gemma3-270m
//!     cargo run --release --example decode_speed -- smollm2-135m-instruct 16
//!
//! The second argument is the batch's rows (default 16, the runner's batch size). Every
//! figure is the best of a few rounds, on as many threads as `lab` uses.
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};

use atgen_lab::models::decoder::{position_tensor, Decoder, KvCache};
use atgen_lab::models::fast_exp::row_stats;
use atgen_lab::models::generate::{generate_ids, GenerateOptions};
use atgen_lab::models::lm::LanguageModel;
use atgen_lab::models::loader::ModelSource;
use atgen_lab::models::lora::ForwardMode;

const PROMPT: &str = "Write a short subject line for this email: the quarterly budget review \
                      moved from Tuesday to Thursday at ten, in the large meeting room.";
const NEW_TOKENS: usize = 32;
const ROUNDS: usize = 3;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let model = args.next().unwrap_or_else(|| "gemma3-270m".into());
    let rows: usize = match args.next() {
        Some(r) => r
            .parse()
            .context("the second argument is the batch's rows")?,
        None => 16,
    };
    let lm = LanguageModel::load_on(&ModelSource::parse(&model), DType::F32, &Device::Cpu)?;
    let c = lm.config();
    println!(
        "{model}: vocab {} × hidden {}, {} layers; {} threads",
        c.vocab_size,
        c.hidden_size,
        c.num_layers,
        candle_core::utils::get_num_threads()
    );
    atgen_lab::util::worker::on_rayon_worker(|| report(&lm, rows))
}

fn report(lm: &LanguageModel, rows: usize) -> Result<()> {
    let prompt = lm.encode(PROMPT)?;
    let int8 = lm.decoder().clone();
    let f32_head = int8.with_f32_head();
    if !int8.has_int8_head() {
        println!("this model's head is not exactly int8: both columns run the f32 head");
    }
    let heads = [("f32 head", &f32_head), ("int8 head", &int8)];
    println!(
        "\nper decoding step, ms (best of {ROUNDS}; prompt {} tokens):",
        prompt.len()
    );
    println!(
        "{:>10} {:>5}  {:>8} {:>8} {:>8} {:>8}",
        "", "rows", "layers", "head", "stats", "detok"
    );
    for r in [1, rows] {
        for (name, decoder) in heads {
            let s = step_breakdown(lm, decoder, &prompt, r)?;
            println!(
                "{name:>10} {r:>5}  {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                s[0] * 1e3,
                s[1] * 1e3,
                s[2] * 1e3,
                s[3] * 1e3
            );
        }
    }
    println!("\nend to end (generate_ids, greedy, {NEW_TOKENS} new tokens), tokens/s:");
    for r in [1, rows] {
        let mut rates = Vec::new();
        for (name, decoder) in heads {
            let (tokens, secs) = end_to_end(decoder, lm, &prompt, r)?;
            println!(
                "{name:>10} {r:>5} rows: {tokens} tokens in {secs:.2} s = {:.1}",
                tokens as f64 / secs
            );
            rates.push(tokens as f64 / secs);
        }
        println!("{:>16} ratio int8 / f32: {:.2}×", "", rates[1] / rates[0]);
    }
    agreement(lm, &f32_head, &int8)
}

/// Greedy tokens of both heads on a few prompts, and the largest difference between the
/// log-probabilities they give the chosen tokens.
fn agreement(lm: &LanguageModel, a: &Decoder, b: &Decoder) -> Result<()> {
    let prompts: Vec<Vec<u32>> = [
        PROMPT,
        "The capital of France is",
        "Once upon a time, in a village by the sea,",
        "def fibonacci(n):",
        "Subject: Lunch on Friday?\n\nHi team, I booked",
    ]
    .iter()
    .map(|p| lm.encode(p))
    .collect::<Result<_>>()?;
    let opts = GenerateOptions {
        max_new_tokens: NEW_TOKENS,
        batch_size: prompts.len(),
        ..Default::default()
    };
    let (ga, gb) = (
        generate_ids(a, lm.tokenizer(), &prompts, &opts)?,
        generate_ids(b, lm.tokenizer(), &prompts, &opts)?,
    );
    let mut same = 0;
    let mut max_diff = 0f32;
    for (x, y) in ga.iter().zip(&gb) {
        let (x, y) = (&x[0], &y[0]);
        same += usize::from(x.token_ids == y.token_ids);
        for (p, q) in x.token_logprobs.iter().zip(&y.token_logprobs) {
            max_diff = max_diff.max((p - q).abs());
        }
    }
    println!(
        "\ngreedy tokens identical on {same} of {} prompts; max |Δ logprob| {max_diff:.2e}",
        prompts.len()
    );
    Ok(())
}

/// `rows` copies of the prompt, each with a different last token so no two rows are alike.
fn batch_of(prompt: &[u32], rows: usize) -> Vec<Vec<u32>> {
    (0..rows)
        .map(|r| {
            let mut ids = prompt.to_vec();
            ids.push(prompt[r % prompt.len()]);
            ids
        })
        .collect()
}

/// Seconds per step in the layers, the head, the statistics and detokenizing, each the best
/// over `ROUNDS` runs of `NEW_TOKENS` greedy steps for `rows` rows.
fn step_breakdown(
    lm: &LanguageModel,
    decoder: &Decoder,
    prompt: &[u32],
    rows: usize,
) -> Result<[f64; 4]> {
    let device = decoder.device();
    let prompts = batch_of(prompt, rows);
    let t = prompts[0].len();
    let mut best = [f64::INFINITY; 4];
    for _ in 0..ROUNDS {
        let mut keys: Vec<Vec<Option<u32>>> =
            vec![(0..t as u32).map(Some).collect::<Vec<_>>(); rows];
        let mut cache: KvCache = decoder.new_cache();
        let ids = Tensor::from_vec(prompts.concat(), (rows, t), device)?;
        let masks = decoder.build_masks(&keys, t)?;
        let positions = position_tensor(&keys, t, device)?;
        let mode = ForwardMode::default();
        let mut hidden =
            decoder.forward_hidden_last(&ids, &positions, &masks, Some(&mut cache), mode, 1)?;
        let mut spent = [0f64; 4];
        let mut generated = vec![Vec::new(); rows];
        for _ in 0..NEW_TOKENS {
            let start = Instant::now();
            let logits = decoder.next_token_logits(&hidden.squeeze(1)?)?;
            let flat = logits.flatten_all()?.to_vec1::<f32>()?;
            spent[1] += start.elapsed().as_secs_f64();
            let start = Instant::now();
            let vocab = flat.len() / rows;
            let next: Vec<u32> = flat
                .chunks(vocab)
                .map(|row| row_stats(row).argmax as u32)
                .collect();
            spent[2] += start.elapsed().as_secs_f64();
            for (g, id) in generated.iter_mut().zip(&next) {
                g.push(*id);
            }
            let start = Instant::now();
            let next_pos = keys[0].len() as u32;
            for k in keys.iter_mut() {
                k.push(Some(next_pos));
            }
            let ids = Tensor::from_vec(next, (rows, 1), device)?;
            let masks = decoder.build_masks(&keys, 1)?;
            let positions = position_tensor(&keys, 1, device)?;
            hidden = decoder.forward_hidden(&ids, &positions, &masks, Some(&mut cache), mode)?;
            spent[0] += start.elapsed().as_secs_f64();
        }
        let start = Instant::now();
        for g in &generated {
            lm.tokenizer().decode(g, true)?;
        }
        spent[3] += start.elapsed().as_secs_f64();
        for (b, s) in best.iter_mut().zip(spent) {
            *b = b.min(s / NEW_TOKENS as f64);
        }
    }
    Ok(best)
}

/// Generated tokens and the best seconds of `ROUNDS` greedy `generate_ids` calls over `rows`
/// prompts in one batch.
fn end_to_end(
    decoder: &Decoder,
    lm: &LanguageModel,
    prompt: &[u32],
    rows: usize,
) -> Result<(usize, f64)> {
    let prompts = batch_of(prompt, rows);
    let opts = GenerateOptions {
        max_new_tokens: NEW_TOKENS,
        batch_size: rows,
        ..Default::default()
    };
    let mut best = (0, f64::INFINITY);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let gens = generate_ids(decoder, lm.tokenizer(), &prompts, &opts)?;
        let secs = start.elapsed().as_secs_f64();
        let tokens = gens.iter().map(|g| g[0].token_ids.len()).sum();
        if secs < best.1 {
            best = (tokens, secs);
        }
    }
    Ok(best)
}
